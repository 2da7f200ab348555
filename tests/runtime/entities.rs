//! Entity declarations: embedded and checked at compile time by `entities!`, checked again at
//! startup against the extensions they depend on.

use std::sync::Arc;

use annex_core::extension::{Entities, entity_format};
use annex_core::{Extension, Metadata};

struct Declares {
    metadata: Metadata,
    entities: Entities,
}

#[annex_core::async_trait]
impl Extension for Declares {
    fn metadata(&self) -> Metadata {
        self.metadata.clone()
    }
    fn entities(&self) -> Option<Entities> {
        Some(self.entities.clone())
    }
}

fn workorders() -> Arc<dyn Extension> {
    Arc::new(Declares {
        metadata: Metadata::new("workorders", "1.0.0"),
        entities: annex_core::entities!("tests/runtime/fixtures/workorders.entities.toml"),
    })
}

const QUALITY: &str = r#"
version = 1
[enum_extensions."workorders.status"]
values = ["on_hold"]
[entities.inspection.fields]
work_order = { type = "relation", kind = "many-to-one", to = "workorders.work_order", required = true }
state = { type = "enum", enum = "workorders.status", default = "on_hold" }
"#;

fn quality(metadata: Metadata) -> Arc<dyn Extension> {
    let declaration = entity_format::parse_toml(QUALITY).expect("the test declaration parses");
    Arc::new(Declares { metadata, entities: Entities::from_declaration(declaration) })
}

#[test]
fn the_embedded_declaration_is_the_file() {
    let e = annex_core::entities!("tests/runtime/fixtures/workorders.entities.toml");
    let d = e.declaration().expect("parsed");
    assert_eq!(e.source(), "tests/runtime/fixtures/workorders.entities.toml");
    assert_eq!(d.enums["status"].labels["de"]["open"], "Offen");
    assert_eq!(d.entities["work_order"].fields.len(), 6);
    assert_eq!(d.entities.len(), 3);
}

#[test]
fn a_relation_to_a_dependency_s_entity_passes_startup_validation() {
    let q = quality(Metadata::new("quality", "1.0.0").depends_on("workorders", "^1"));
    let names = annex_core::host::validate(vec![workorders(), q]).expect("valid");
    assert_eq!(names, ["workorders", "quality"]);
}

#[test]
fn a_relation_to_an_extension_not_depended_on_fails_with_the_pointer_and_the_fix() {
    let q = quality(Metadata::new("quality", "1.0.0"));
    let errors = annex_core::host::validate(vec![workorders(), q])
        .expect_err("quality lacks its dependency")
        .to_string();
    assert!(errors.contains("extension `quality` declares entities"), "{errors}");
    assert!(
        errors.contains("/entities/inspection/fields/work_order/to: relation `work_order` refers to extension `workorders`, which `quality` does not depend on: add `.depends_on(\"workorders\""),
        "{errors}"
    );
    assert!(errors.contains("/enum_extensions/workorders.status"), "the enum extension too: {errors}");
}

#[test]
fn two_extensions_adding_the_same_enum_value_are_reported() {
    let q = quality(Metadata::new("quality", "1.0.0").depends_on("workorders", "^1"));
    let mut other = Metadata::new("audits", "1.0.0").depends_on("workorders", "^1");
    other.description = "adds on_hold too".into();
    let declaration = entity_format::parse_toml(
        "version = 1\n[enum_extensions.\"workorders.status\"]\nvalues = [\"on_hold\"]\n",
    )
    .expect("parses");
    let a: Arc<dyn Extension> =
        Arc::new(Declares { metadata: other, entities: Entities::from_declaration(declaration) });
    let errors = annex_core::host::validate(vec![workorders(), q, a]).expect_err("collision").to_string();
    assert!(errors.contains("also adds value `on_hold` to enum `workorders.status`"), "{errors}");
}

fn declaring(name: &str) -> crate::common::Scripted {
    crate::common::Scripted::new(
        name,
        vec![crate::common::step(1, "notes", "create table notes (body text)", "drop table notes")],
    )
    .with_entities(annex_core::entities!("tests/runtime/fixtures/workorders.entities.toml"))
}

/// `Err` with the database's message, asserting it names `needle`.
fn refused(result: Result<Option<String>, String>, needle: &str, what: &str) {
    match result {
        Err(e) => assert!(e.contains(needle), "{what}: expected `{needle}` in the error, got {e}"),
        Ok(v) => panic!("{what}: PostgreSQL accepted it ({v:?})"),
    }
}

#[tokio::test]
async fn the_database_enforces_every_rule_of_the_declaration_even_for_raw_sql() {
    let t = annex_core::testkit::TestHost::builder()
        .extension(declaring("orders"))
        .start()
        .await
        .expect("host starts");
    let sql = |q: &'static str| crate::common::sql(&t, "orders", q);
    // Hand-written and generated steps share one ledger.
    assert_eq!(sql("select count(*)::text from notes").await, Ok(Some("0".into())));
    let ok = "insert into work_order (number, title) values (1, 'Fix the press') returning status";
    assert_eq!(sql(ok).await, Ok(Some("open".into())), "the enum's default applies");
    refused(
        sql("insert into work_order (number, title) values (2, 'ab')").await,
        "work_order_title_check",
        "min_length",
    );
    refused(
        sql("insert into work_order (number, title) values (0, 'Valid title')").await,
        "work_order_number_check",
        "min",
    );
    refused(
        sql("insert into work_order (title) values ('No number')").await,
        "null value in column \"number\"",
        "required",
    );
    refused(
        sql("insert into work_order (number, title, status) values (3, 'Valid title', 'bogus')").await,
        "work_order_status_fkey",
        "enum value",
    );
    refused(
        sql("insert into work_order (number, title, cost) values (4, 'Valid title', -1)").await,
        "work_order_cost_check",
        "decimal min",
    );
    refused(
        sql("insert into work_order (number, title) values (1, 'Fix the press')").await,
        "work_order_number_title_key",
        "composite unique",
    );
    refused(
        sql("insert into comment (body, work_order_id) values ('hi', gen_random_uuid())").await,
        "comment_work_order_id_fkey",
        "relation to a missing row",
    );
    // A comment on the work order, removed with it (on_delete = cascade).
    sql("insert into comment (body, work_order_id) select 'first', id from work_order where number = 1")
        .await
        .expect("comment");
    let before = sql("select updated_at::text from work_order where number = 1").await.expect("row");
    sql("update work_order set title = 'Fix the press now' where number = 1").await.expect("update");
    let after = sql("select updated_at::text from work_order where number = 1").await.expect("row");
    assert_ne!(before, after, "updated_at is kept by the database");
    sql("delete from work_order where number = 1").await.expect("delete");
    assert_eq!(sql("select count(*)::text from comment").await, Ok(Some("0".into())), "comments cascade");
    t.shutdown().await;
}

#[tokio::test]
async fn the_generated_step_is_in_the_ledger_and_rolls_back_like_any_migration() {
    let url = annex_core::testkit::test_database_url().await.expect("fresh database");
    let dir = tempfile::tempdir().expect("tempdir");
    let mut config = annex_core::config::Config { data_dir: dir.path().to_owned(), ..Default::default() };
    config.database.url = Some(url.clone());
    config.server.secret = Some(annex_core::testkit::TEST_SECRET.to_owned());
    config.extensions.entry("orders".into()).or_default().enabled = Some(false);
    let ext: Arc<dyn Extension> = Arc::new(declaring("orders"));
    let admin = annex_core::admin::Admin::connect(&config, &[ext]).await.expect("admin");
    let applied = admin.migrate("orders", |_| {}).await.expect("migrate");
    let versions: Vec<(i64, String)> = applied.iter().map(|s| (s.version, s.description.clone())).collect();
    assert_eq!(versions, [(1, "notes".to_owned()), (1_000_000_001, "entities_v1".to_owned())]);
    let db = crate::common::superuser(&url).await;
    let exists = |table: &'static str| {
        let db = db.clone();
        async move {
            sqlx::query_scalar::<_, bool>("select to_regclass($1) is not null")
                .bind(table)
                .fetch_one(&db)
                .await
                .expect("query")
        }
    };
    assert!(exists("ext_orders.work_order").await && exists("ext_orders._enum_status").await);
    let reverted = admin.rollback("orders", 1, |_| {}).await.expect("rollback");
    assert_eq!(reverted.iter().map(|s| s.version).collect::<Vec<_>>(), [1_000_000_001]);
    assert!(!exists("ext_orders.work_order").await, "the generated down drops the tables");
    assert!(!exists("ext_orders.comment").await && !exists("ext_orders._enum_status").await);
    assert!(exists("ext_orders.notes").await, "the hand-written step stays");
    admin.migrate("orders", |_| {}).await.expect("migrate again");
    assert!(exists("ext_orders.work_order").await);
    db.close().await;
    admin.close().await;
}

mod api {
    use reqwest::Method;
    use serde_json::{Value, json};

    const TOKEN: &str = "entities-admin-token";

    async fn host() -> annex_core::testkit::TestHost {
        annex_core::testkit::TestHost::builder()
            .extension(super::declaring("orders"))
            .config(|c| c.server.admin_token = Some(TOKEN.into()))
            .start()
            .await
            .expect("host starts")
    }

    async fn call(
        t: &annex_core::testkit::TestHost,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut req =
            t.client().request(method, t.url(&format!("/ext/orders/entities{path}"))).bearer_auth(TOKEN);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let res = req.send().await.expect("request");
        let status = res.status().as_u16();
        let text = res.text().await.expect("body");
        (status, if text.is_empty() { Value::Null } else { serde_json::from_str(&text).expect("JSON") })
    }

    fn pointers(b: &Value) -> Vec<&str> {
        b["error"]["fields"]
            .as_array()
            .map(|a| a.iter().filter_map(|e| e["pointer"].as_str()).collect())
            .unwrap_or_default()
    }

    #[tokio::test]
    async fn create_get_patch_delete_with_every_refusal_named_by_field() {
        let t = host().await;
        let (s, order) =
            call(&t, Method::POST, "/work_order", Some(json!({ "number": 1, "title": "Fix the press" })))
                .await;
        assert_eq!(s, 201, "{order}");
        assert_eq!(order["status"], "open", "the default");
        let id = order["id"].as_str().expect("an id").to_owned();

        let (s, b) = call(
            &t,
            Method::POST,
            "/work_order",
            Some(json!({ "title": "ab", "number": 0, "status": "bogus", "colour": 1 })),
        )
        .await;
        assert_eq!(s, 422, "{b}");
        assert_eq!(b["error"]["code"], "invalid_fields");
        assert_eq!(pointers(&b), ["/colour", "/number", "/status", "/title"]);
        let (s, b) =
            call(&t, Method::POST, "/work_order", Some(json!({ "number": 1, "title": "Fix the press" })))
                .await;
        assert_eq!((s, b["error"]["code"].as_str()), (409, Some("unique_violation")), "{b}");
        let (s, b) = call(&t, Method::POST, "/work_order", Some(json!([1, 2]))).await;
        assert_eq!((s, b["error"]["code"].as_str()), (422, Some("invalid_body")), "{b}");
        let missing = "00000000-0000-0000-0000-000000000000";
        let (s, b) =
            call(&t, Method::POST, "/comment", Some(json!({ "body": "hi", "work_order_id": missing }))).await;
        assert_eq!(s, 422, "a reference to no row is the client's error: {b}");
        assert_eq!(pointers(&b), ["/work_order_id"]);

        let (s, got) = call(&t, Method::GET, &format!("/work_order/{id}"), None).await;
        assert_eq!((s, &got["title"]), (200, &json!("Fix the press")));
        let (s, b) = call(&t, Method::GET, &format!("/work_order/{missing}"), None).await;
        assert_eq!((s, b["error"]["code"].as_str()), (404, Some("not_found")));
        assert_eq!(call(&t, Method::GET, "/work_order/not-a-uuid", None).await.0, 404);

        let (s, patched) =
            call(&t, Method::PATCH, &format!("/work_order/{id}"), Some(json!({ "status": "closed" }))).await;
        assert_eq!((s, &patched["status"]), (200, &json!("closed")), "{patched}");
        let (s, b) =
            call(&t, Method::PATCH, &format!("/work_order/{id}"), Some(json!({ "title": null }))).await;
        assert_eq!((s, pointers(&b)), (422, vec!["/title"]), "a required field cannot be cleared: {b}");

        let (s, _) =
            call(&t, Method::POST, "/attachment", Some(json!({ "name": "photo", "work_order_id": id })))
                .await;
        assert_eq!(s, 201);
        let (s, b) = call(&t, Method::DELETE, &format!("/work_order/{id}"), None).await;
        assert_eq!(
            (s, b["error"]["code"].as_str()),
            (409, Some("restricted")),
            "an attachment restricts it: {b}"
        );
        let (_, list) = call(&t, Method::GET, "/attachment", None).await;
        let attachment = list["items"][0]["id"].as_str().expect("attachment").to_owned();
        assert_eq!(call(&t, Method::DELETE, &format!("/attachment/{attachment}"), None).await.0, 204);
        assert_eq!(call(&t, Method::DELETE, &format!("/work_order/{id}"), None).await.0, 204);
        assert_eq!(call(&t, Method::DELETE, &format!("/work_order/{id}"), None).await.0, 404);

        let res = t.client().get(t.url("/ext/orders/entities/work_order")).send().await.expect("request");
        assert_eq!(res.status(), 401, "closed by default: no identity, no access");
        t.shutdown().await;
    }

    #[tokio::test]
    async fn every_filter_operator_returns_exactly_the_matching_rows_and_injection_finds_nothing() {
        let t = host().await;
        for n in 1..=10 {
            let title = if n % 3 == 0 { format!("Bolt {n}") } else { format!("Nut {n}") };
            let mut row = json!({ "number": n, "title": title, "cost": n * 10 });
            if n > 5 {
                row["due"] = json!("2026-12-24");
            }
            assert_eq!(call(&t, Method::POST, "/work_order", Some(row)).await.0, 201);
        }
        let count = |filter: &'static str| {
            let t = &t;
            async move {
                let path = format!("/work_order?per_page=500&filter={}", urlencode(filter));
                let (s, b) = call(t, Method::GET, &path, None).await;
                assert_eq!(s, 200, "{filter}: {b}");
                b["total_items"].as_u64().expect("total")
            }
        };
        assert_eq!(count("number = 3").await, 1);
        assert_eq!(count("number != 3").await, 9);
        assert_eq!(count("number > 7").await, 3);
        assert_eq!(count("number >= 7").await, 4);
        assert_eq!(count("number < 3").await, 2);
        assert_eq!(count("number <= 3").await, 3);
        assert_eq!(count("title ~ 'bolt'").await, 3, "contains, case-insensitive");
        assert_eq!(count("title !~ 'bolt'").await, 7);
        assert_eq!(count("due = null").await, 5);
        assert_eq!(count("due != null").await, 5);
        assert_eq!(count("due >= '2026-12-01' && cost > 60").await, 4);
        assert_eq!(count("(number = 1 || number = 2) && title ~ 'nut'").await, 2);
        assert_eq!(count("title ~ '%'").await, 0, "% is literal");
        assert_eq!(count("title = 'x''; drop table work_order; --'").await, 0);
        assert_eq!(count("number >= 1").await, 10, "and the table is still there");

        let (s, b) = call(&t, Method::GET, "/work_order?filter=number%20%3E%3D", None).await;
        assert_eq!((s, b["error"]["code"].as_str()), (400, Some("invalid_filter")), "{b}");
        assert!(b["error"]["message"].as_str().is_some_and(|m| m.contains("at character 10")), "{b}");
        let (s, b) = call(&t, Method::GET, "/work_order?filter=due%3D%272026-13-45%27", None).await;
        assert_eq!(
            (s, b["error"]["code"].as_str()),
            (400, Some("invalid_value")),
            "a date PostgreSQL rejects: {b}"
        );
        assert_eq!(call(&t, Method::GET, "/work_order?per_page=501", None).await.0, 400);
        assert_eq!(call(&t, Method::GET, "/work_order?sort=colour", None).await.0, 400);
        assert_eq!(call(&t, Method::GET, "/work_order?colour=red", None).await.0, 400);

        let (_, page) = call(&t, Method::GET, "/work_order?sort=-number&page=2&per_page=3", None).await;
        let numbers: Vec<i64> =
            page["items"].as_array().expect("items").iter().filter_map(|i| i["number"].as_i64()).collect();
        assert_eq!(numbers, [7, 6, 5]);
        assert_eq!((page["total_items"].as_u64(), page["total_pages"].as_u64()), (Some(10), Some(4)));
        t.shutdown().await;
    }

    #[tokio::test]
    async fn random_filters_sorts_and_pages_never_answer_500() {
        let t = host().await;
        assert_eq!(
            call(&t, Method::POST, "/work_order", Some(json!({ "number": 1, "title": "Bolt" }))).await.0,
            201
        );
        let alphabet: Vec<char> =
            "number title due cost status id ()=!<>~&|'\"\\-.0123456789eE null true ;%_,+-é\u{0}"
                .chars()
                .collect();
        let mut seed: u64 = 0x2545_f491_4f6c_dd1d;
        for round in 0..300u32 {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let len = usize::try_from(seed % 30).unwrap_or(0);
            let text: String = (0..len)
                .map(|i| {
                    alphabet[usize::try_from(
                        seed.rotate_left(u32::try_from(i).unwrap_or(0) * 7) % alphabet.len() as u64,
                    )
                    .unwrap_or(0)]
                })
                .collect();
            let key = ["filter", "sort", "page", "per_page"][usize::try_from(round % 4).unwrap_or(0)];
            let (s, b) =
                call(&t, Method::GET, &format!("/work_order?{key}={}", urlencode(&text)), None).await;
            assert!(s == 200 || s == 400, "{key}={text:?}: {s} {b}");
        }
        let (s, _) = call(&t, Method::GET, "/work_order?filter=number%3E%3D1", None).await;
        assert_eq!(s, 200, "still serving");
        t.shutdown().await;
    }

    #[tokio::test]
    async fn expand_takes_one_query_per_level_and_fields_trim_the_rows() {
        let t = host().await;
        let mut orders = Vec::new();
        for n in 1..=3 {
            let (_, o) = call(
                &t,
                Method::POST,
                "/work_order",
                Some(json!({ "number": n, "title": format!("Order {n}") })),
            )
            .await;
            orders.push(o["id"].as_str().expect("id").to_owned());
        }
        for (i, id) in orders.iter().enumerate() {
            for c in 0..=i {
                let body = json!({ "body": format!("comment {c} on {i}"), "work_order_id": id });
                assert_eq!(call(&t, Method::POST, "/comment", Some(body)).await.0, 201);
            }
        }
        let res = t
            .client()
            .get(t.url("/ext/orders/entities/comment?expand=work_order.comments&sort=body&fields=id,body"))
            .bearer_auth(TOKEN)
            .send()
            .await
            .expect("request");
        assert_eq!(res.status(), 200);
        assert_eq!(
            res.headers()["x-annex-queries"],
            "4",
            "rows + count + one per expand level, not one per row"
        );
        let page: Value = res.json().await.expect("json");
        let items = page["items"].as_array().expect("items");
        assert_eq!(items.len(), 6);
        let first = &items[0];
        assert_eq!(
            first.as_object().map(|o| o.keys().cloned().collect::<Vec<_>>()),
            Some(vec!["body".into(), "expand".into(), "id".into()])
        );
        let order = &first["expand"]["work_order"];
        assert!(order["title"].as_str().is_some_and(|t| t.starts_with("Order")), "{first}");
        let siblings = order["expand"]["comments"].as_array().expect("the order's comments");
        assert!(
            siblings.iter().any(|c| c["id"] == first["id"]),
            "the second level comes back round: {first}"
        );
        let (s, b) = call(&t, Method::GET, "/comment?expand=a.b.c.d", None).await;
        assert_eq!((s, b["error"]["code"].as_str()), (400, Some("invalid_expand")));
        let (s, _) = call(&t, Method::GET, "/comment?expand=body", None).await;
        assert_eq!(s, 400, "a field that is not a relation");
        t.shutdown().await;
    }

    #[tokio::test]
    async fn a_batch_is_all_or_nothing_and_names_the_failing_operation() {
        let t = host().await;
        let ok = json!({ "operations": [
            { "op": "create", "entity": "work_order", "data": { "number": 1, "title": "First" } },
            { "op": "create", "entity": "work_order", "data": { "number": 2, "title": "Second" } },
        ]});
        let (s, b) = call(&t, Method::POST, "/_batch", Some(ok)).await;
        assert_eq!(s, 200, "{b}");
        let first = b["results"][0]["item"]["id"].as_str().expect("id").to_owned();
        let bad = json!({ "operations": [
            { "op": "patch", "entity": "work_order", "id": first, "data": { "title": "Changed" } },
            { "op": "create", "entity": "work_order", "data": { "number": 3, "title": "x" } },
        ]});
        let (s, b) = call(&t, Method::POST, "/_batch", Some(bad)).await;
        assert_eq!(s, 422, "{b}");
        assert!(b["error"]["message"].as_str().is_some_and(|m| m.starts_with("operation 1:")), "{b}");
        assert_eq!(pointers(&b), ["/operations/1/data/title"]);
        let (_, got) = call(&t, Method::GET, &format!("/work_order/{first}"), None).await;
        assert_eq!(got["title"], "First", "the patch before the failure was rolled back");
        let (s, b) = call(
            &t,
            Method::POST,
            "/_batch",
            Some(json!({ "operations": [{ "op": "drop", "entity": "x" }] })),
        )
        .await;
        assert_eq!((s, b["error"]["code"].as_str()), (422, Some("invalid_batch")));
        let (s, b) = call(
            &t,
            Method::POST,
            "/_batch",
            Some(json!({ "operations": [{ "op": "delete", "entity": "nope", "id": first }] })),
        )
        .await;
        assert_eq!(s, 404, "{b}");
        let (_, list) = call(&t, Method::GET, "/work_order", None).await;
        assert_eq!(list["total_items"], 2);
        t.shutdown().await;
    }

    #[tokio::test]
    async fn a_site_scoped_entity_keeps_each_site_to_its_own_rows() {
        let declaration = annex_core::extension::entity_format::parse_toml(
            "version = 1\n[entities.reading]\nsite_scoped = true\n[entities.reading.fields]\nvalue = { type = \"int\", required = true }\n",
        )
        .expect("parses");
        let ext = crate::common::Scripted::new("meters", vec![])
            .with_entities(annex_core::extension::Entities::from_declaration(declaration));
        let t = annex_core::testkit::TestHost::builder()
            .extension(ext)
            .config(|c| c.server.admin_token = Some(TOKEN.into()))
            .start()
            .await
            .expect("host starts");
        let db = crate::common::superuser(t.database_url()).await;
        let (a, b) = (
            crate::sites::create_site(&db, "plant-a").await,
            crate::sites::create_site(&db, "plant-b").await,
        );
        for site in [a, b] {
            crate::sites::activate(&db, site, "meters", json!({})).await;
            t.host().reload_site(site).await.expect("reload");
        }
        let at = |slug: &str, method: Method, path: &str, body: Option<Value>| {
            let mut req = t
                .client()
                .request(method, t.url(&format!("/sites/{slug}/ext/meters/entities{path}")))
                .bearer_auth(TOKEN);
            if let Some(b) = body {
                req = req.json(&b);
            }
            async move {
                let res = req.send().await.expect("request");
                let status = res.status().as_u16();
                let text = res.text().await.expect("body");
                (status, serde_json::from_str::<Value>(&text).unwrap_or(Value::Null))
            }
        };
        let (s, row_a) = at("plant-a", Method::POST, "/reading", Some(json!({ "value": 1 }))).await;
        assert_eq!(s, 201, "{row_a}");
        assert_eq!(row_a["site_id"], json!(a.to_string()), "the database fills in the site");
        assert_eq!(at("plant-b", Method::POST, "/reading", Some(json!({ "value": 2 }))).await.0, 201);
        let (_, list_a) = at("plant-a", Method::GET, "/reading", None).await;
        assert_eq!(list_a["total_items"], 1, "{list_a}");
        assert_eq!(list_a["items"][0]["value"], 1);
        let (_, list_b) = at("plant-b", Method::GET, "/reading?filter=value%3E%3D0", None).await;
        assert_eq!(list_b["total_items"], 1);
        let id_a = row_a["id"].as_str().expect("id");
        let (s, _) =
            at("plant-b", Method::PATCH, &format!("/reading/{id_a}"), Some(json!({ "value": 9 }))).await;
        assert_eq!(s, 404, "site B cannot see site A's row");
        assert_eq!(at("plant-b", Method::DELETE, &format!("/reading/{id_a}"), None).await.0, 404);
        let (s, b) =
            at("plant-a", Method::POST, "/reading", Some(json!({ "value": 3, "site_id": b.to_string() })))
                .await;
        assert_eq!(s, 422, "site_id is not the client's to set: {b}");
        let res = t
            .client()
            .get(t.url("/ext/meters/entities/reading"))
            .bearer_auth(TOKEN)
            .send()
            .await
            .expect("request");
        assert_eq!(res.status(), 404, "outside a site");
        db.close().await;
        t.shutdown().await;
    }

    fn urlencode(s: &str) -> String {
        s.bytes()
            .map(|b| if b.is_ascii_alphanumeric() { (b as char).to_string() } else { format!("%{b:02X}") })
            .collect()
    }
}
