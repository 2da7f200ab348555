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
    let other = Metadata::new("audits", "1.0.0").depends_on("workorders", "^1");
    let declaration = entity_format::parse_toml(
        "version = 1\n[enum_extensions.\"workorders.status\"]\nvalues = [\"on_hold\"]\n",
    )
    .expect("parses");
    let a: Arc<dyn Extension> =
        Arc::new(Declares { metadata: other, entities: Entities::from_declaration(declaration) });
    let errors = annex_core::host::validate(vec![workorders(), q, a]).expect_err("collision").to_string();
    assert!(errors.contains("also adds value `on_hold` to enum `workorders.status`"), "{errors}");
}

/// A request with `token`; the status and the JSON body (`null` when empty).
async fn request(
    t: &annex_core::testkit::TestHost,
    token: &str,
    method: reqwest::Method,
    path: &str,
    body: Option<serde_json::Value>,
) -> (u16, serde_json::Value) {
    let mut req = t.client().request(method, t.url(path)).bearer_auth(token);
    if let Some(b) = body {
        req = req.json(&b);
    }
    let res = req.send().await.expect("request");
    let status = res.status().as_u16();
    let text = res.text().await.expect("body");
    (
        status,
        if text.is_empty() { serde_json::Value::Null } else { serde_json::from_str(&text).expect("JSON") },
    )
}

/// A host running extension `name` with the declaration `toml`, the admin token `token`.
async fn declared_host(name: &str, toml: &str, token: &str) -> annex_core::testkit::TestHost {
    let d = annex_core::extension::entity_format::parse_toml(toml).expect("the test declaration parses");
    let ext = crate::common::Scripted::new(name, vec![])
        .with_entities(annex_core::extension::Entities::from_declaration(d));
    let token = token.to_owned();
    annex_core::testkit::TestHost::builder()
        .extension(ext)
        .config(move |c| c.server.admin_token = Some(token))
        .start()
        .await
        .expect("host starts")
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
        super::request(t, TOKEN, method, &format!("/ext/orders/entities{path}"), body).await
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
    async fn the_admin_api_shows_declarations_and_validates_one_without_registering_it() {
        let t = host().await;
        let (s, view) =
            super::request(&t, TOKEN, Method::GET, "/api/v1/extensions/orders/entities", None).await;
        assert_eq!(s, 200, "{view}");
        assert_eq!(view["declared"]["version"], 1);
        assert_eq!(view["applied"][0]["version"], 1, "{view}");
        assert_eq!(view["applied"][0]["checksum"].as_str().map(str::len), Some(64));
        let (s, _) = super::request(&t, TOKEN, Method::GET, "/api/v1/extensions/nope/entities", None).await;
        assert_eq!(s, 404);

        let bad = json!({ "version": 1, "entities": { "x": { "fields": {
            "id": { "type": "string" },
            "n": { "type": "int", "min": 5, "max": 1 },
            "r": { "type": "relation", "kind": "many-to-one", "to": "other.thing" } } } } });
        let (s, check) =
            super::request(&t, TOKEN, Method::POST, "/api/v1/entities/validate", Some(bad.clone())).await;
        assert_eq!((s, &check["valid"]), (200, &json!(false)), "{check}");
        let pointers: Vec<&str> = check["problems"]
            .as_array()
            .expect("problems")
            .iter()
            .filter_map(|p| p["pointer"].as_str())
            .collect();
        assert_eq!(
            pointers,
            ["/entities/x/fields/id", "/entities/x/fields/n/min"],
            "alone, foreign references are not judged"
        );
        let (_, check) =
            super::request(&t, TOKEN, Method::POST, "/api/v1/entities/validate?extension=orders", Some(bad))
                .await;
        assert!(
            check["problems"]
                .as_array()
                .expect("problems")
                .iter()
                .any(|p| p["code"] == "undeclared_dependency"),
            "as `orders`, the relation to an extension it does not depend on is named: {check}"
        );
        let (s, check) =
            super::request(&t, TOKEN, Method::POST, "/api/v1/entities/validate", Some(json!([1]))).await;
        assert_eq!((s, check["problems"][0]["code"].as_str()), (200, Some("invalid_format")), "{check}");
        let (s, _) = super::request(
            &t,
            TOKEN,
            Method::POST,
            "/api/v1/entities/validate?extension=nope",
            Some(json!({})),
        )
        .await;
        assert_eq!(s, 404);
        let (_, view) =
            super::request(&t, TOKEN, Method::GET, "/api/v1/extensions/orders/entities", None).await;
        assert_eq!(view["applied"].as_array().map(Vec::len), Some(1), "validation registered nothing");
        t.shutdown().await;
    }

    #[tokio::test]
    async fn every_entity_is_in_the_openapi_document_with_its_rules() {
        let t = host().await;
        let (s, doc) = super::request(&t, TOKEN, Method::GET, "/api/v1/openapi.json", None).await;
        assert_eq!(s, 200);
        let paths = doc["paths"].as_object().expect("paths");
        for (path, methods) in [
            ("/ext/orders/entities/work_order", &["get", "post"][..]),
            ("/ext/orders/entities/work_order/{id}", &["get", "patch", "delete"][..]),
            ("/ext/orders/entities/comment", &["get", "post"][..]),
            ("/ext/orders/entities/_batch", &["post"][..]),
        ] {
            for m in methods {
                assert!(paths.get(path).and_then(|p| p.get(*m)).is_some(), "{m} {path} is documented");
            }
        }
        let schemas = &doc["components"]["schemas"];
        let row = &schemas["orders.work_order.input"];
        assert_eq!(row["properties"]["title"]["maxLength"], 200);
        assert_eq!(row["properties"]["title"]["minLength"], 3);
        assert_eq!(row["properties"]["number"]["minimum"], 1.0);
        assert_eq!(
            row["properties"]["status"]["enum"],
            json!(["closed", "in_progress", "open"]),
            "every value, sorted"
        );
        assert_eq!(row["required"], json!(["number", "title"]), "status has a default");
        assert_eq!(schemas["orders.comment"]["properties"]["work_order_id"]["format"], "uuid");
        t.shutdown().await;
    }

    #[tokio::test]
    async fn operator_tokens_carry_their_roles_to_the_entity_access_rules() {
        let t = host().await;
        let db = crate::common::superuser(t.database_url()).await;
        let add = |username: &'static str, roles: &'static [&'static str]| {
            let db = db.clone();
            async move {
                let new = annex_core::access::NewOperator {
                    username: username.into(),
                    printed_name: username.into(),
                    roles: roles.iter().map(|r| (*r).to_owned()).collect(),
                    sites: None,
                    password: "a long enough password".into(),
                };
                annex_core::access::operators::add(&db, "test", &new).await.expect("operator").1
            }
        };
        let viewer = add("vera", &["viewer"]).await;
        let planner = add("sam", &["site-admin"]).await;
        let path = "/ext/orders/entities/work_order";
        let body = json!({ "number": 1, "title": "Planned" });
        assert_eq!(
            super::request(&t, &planner, Method::POST, path, Some(body.clone())).await.0,
            201,
            "site-admin may create"
        );
        let (s, b) = super::request(&t, &viewer, Method::POST, path, Some(body)).await;
        assert_eq!((s, b["error"]["code"].as_str()), (403, Some("forbidden")), "a viewer may not: {b}");
        let (s, list) = super::request(&t, &viewer, Method::GET, path, None).await;
        assert_eq!((s, &list["total_items"]), (200, &json!(1)), "a viewer may read: {list}");
        let (s, _) = super::request(
            &t,
            &viewer,
            Method::DELETE,
            &format!("{path}/{}", list["items"][0]["id"].as_str().unwrap_or("")),
            None,
        )
        .await;
        assert_eq!(s, 403, "delete is admin only");
        annex_core::access::operators::update(
            &db,
            "test",
            "vera",
            &annex_core::access::OperatorChange::Disabled(true),
        )
        .await
        .expect("disable");
        assert_eq!(
            super::request(&t, &viewer, Method::GET, path, None).await.0,
            401,
            "a disabled operator is nobody"
        );
        db.close().await;
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
        let meters = "version = 1\n[entities.reading]\nsite_scoped = true\n[entities.reading.fields]\nvalue = { type = \"int\", required = true }\n";
        let t = super::declared_host("meters", meters, TOKEN).await;
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
            let path = format!("/sites/{slug}/ext/meters/entities{path}");
            let t = &t;
            async move { super::request(t, TOKEN, method, &path, body).await }
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

/// The examples: quality's inspections reference workorders' work orders by a real foreign key
/// across the two schemas, and quality adds a value to workorders' enum.
#[cfg(all(feature = "ext-workorders", feature = "ext-quality"))]
mod examples {
    use reqwest::Method;
    use serde_json::{Value, json};

    const TOKEN: &str = "examples-admin-token";

    #[tokio::test]
    async fn a_relation_across_extensions_is_a_real_foreign_key_with_exactly_the_grants_it_needs() {
        let t = annex_core::testkit::TestHost::builder()
            .extension(annex_ext_workorders::WorkOrders)
            .extension(annex_ext_quality::Quality)
            .config(|c| c.server.admin_token = Some(TOKEN.into()))
            .start()
            .await
            .expect("host starts");
        let call = |method: Method, path: &str, body: Option<Value>| {
            let (t, path) = (&t, path.to_owned());
            async move { super::request(t, TOKEN, method, &path, body).await }
        };
        let (s, order) = call(
            Method::POST,
            "/ext/workorders/entities/work_order",
            Some(json!({ "number": 7, "title": "Calibrate" })),
        )
        .await;
        assert_eq!(s, 201, "{order}");
        let id = order["id"].as_str().expect("id").to_owned();
        let (s, open) = call(Method::GET, "/ext/workorders/open", None).await;
        assert_eq!(s, 200, "the extension's own handler reads its entity typed: {open}");
        assert_eq!(
            (open[0]["number"].as_i64(), open[0]["status"].as_str()),
            (Some(7), Some("open")),
            "{open}"
        );
        let (s, b) = call(
            Method::PATCH,
            &format!("/ext/workorders/entities/work_order/{id}"),
            Some(json!({ "status": "on_hold" })),
        )
        .await;
        assert_eq!(s, 200, "quality's added enum value is a value of workorders' status: {b}");
        let inspection = json!({ "work_order_id": id, "verdict": "pass", "inspector": "Dana" });
        let (s, b) = call(Method::POST, "/ext/quality/entities/inspection", Some(inspection)).await;
        assert_eq!(s, 201, "{b}");
        let dangling = json!({ "work_order_id": "00000000-0000-0000-0000-000000000000", "verdict": "pass", "inspector": "Dana" });
        let (s, b) = call(Method::POST, "/ext/quality/entities/inspection", Some(dangling)).await;
        assert_eq!(s, 422, "the foreign key across schemas refuses a missing work order: {b}");
        let (s, b) = call(Method::DELETE, &format!("/ext/workorders/entities/work_order/{id}"), None).await;
        assert_eq!(
            (s, b["error"]["code"].as_str()),
            (409, Some("restricted")),
            "the inspection restricts it: {b}"
        );

        // Quality's role may read the referenced table (the grant) but not write it.
        let db = crate::common::superuser(t.database_url()).await;
        let role: String =
            sqlx::query_scalar("select role from annex.extension_roles where extension = 'quality'")
                .fetch_one(&db)
                .await
                .expect("quality has a role");
        let may = |privilege: &'static str| {
            let (db, role) = (db.clone(), role.clone());
            async move {
                sqlx::query_scalar::<_, bool>(
                    "select has_table_privilege($1, 'ext_workorders.work_order', $2)",
                )
                .bind(role)
                .bind(privilege)
                .fetch_one(&db)
                .await
                .expect("privilege")
            }
        };
        assert!(may("REFERENCES").await && may("SELECT").await);
        for denied in ["INSERT", "UPDATE", "DELETE", "TRUNCATE"] {
            assert!(!may(denied).await, "quality must not hold {denied} on workorders' table");
        }
        db.close().await;
        t.shutdown().await;
    }
}

/// Declaration versions: each change is a generated step diffed against what is applied.
mod versions {
    use std::sync::Arc;

    use annex_core::extension::{Entities, entity_format};
    use annex_core::testkit::TestHost;

    const V1: &str = r#"
version = 1
[entities.part.fields]
title = { type = "string", required = true }
qty = { type = "int" }
"#;
    const V2_ADD: &str = r#"
version = 2
[entities.part.fields]
title = { type = "string", required = true }
qty = { type = "int" }
note = { type = "text", max_length = 50 }
"#;
    const V2_RENAME: &str = r#"
version = 2
[entities.part.fields]
name = { type = "string", required = true, renamed_from = "title" }
qty = { type = "bigint" }
"#;
    const V2_LINKS: &str = r#"
version = 2
[entities.part.fields]
title = { type = "string", required = true }
qty = { type = "int" }
tags = { type = "relation", kind = "many-to-many", to = "tag" }
[entities.tag.fields]
name = { type = "string", required = true }
"#;
    const V3_DROP: &str = r#"
version = 3
[entities.part.fields]
title = { type = "string", required = true }
note = { type = "text", max_length = 50 }
"#;

    fn parts(declaration: &str) -> crate::common::Scripted {
        let d = entity_format::parse_toml(declaration).expect("the test declaration parses");
        crate::common::Scripted::new("parts", vec![]).with_entities(Entities::from_declaration(d))
    }

    async fn start(url: Option<&str>, declaration: &str) -> TestHost {
        let mut b = TestHost::builder().extension(parts(declaration));
        if let Some(url) = url {
            b = b.database_url(url);
        }
        b.start().await.expect("host starts")
    }

    async fn columns(db: &sqlx::PgPool) -> Vec<String> {
        sqlx::query_scalar(
            "select column_name::text from information_schema.columns
              where table_schema = 'ext_parts' and table_name = 'part' order by column_name",
        )
        .fetch_all(db)
        .await
        .expect("columns")
    }

    async fn admin(url: &str, declaration: &str, dir: &std::path::Path) -> annex_core::admin::Admin {
        let mut config = annex_core::config::Config { data_dir: dir.to_owned(), ..Default::default() };
        config.database.url = Some(url.to_owned());
        config.server.secret = Some(annex_core::testkit::TEST_SECRET.to_owned());
        config.extensions.entry("parts".into()).or_default().enabled = Some(false);
        let ext: Arc<dyn annex_core::Extension> = Arc::new(parts(declaration));
        annex_core::admin::Admin::connect(&config, &[ext]).await.expect("admin")
    }

    #[tokio::test]
    async fn a_new_field_migrates_at_start_and_rolls_back_to_the_old_table() {
        let t = start(None, V1).await;
        let url = t.database_url().to_owned();
        crate::common::sql(&t, "parts", "insert into part (title, qty) values ('bolt', 3)")
            .await
            .expect("row");
        t.shutdown().await;
        let db = crate::common::superuser(&url).await;
        assert!(!columns(&db).await.contains(&"note".to_owned()));

        let t = start(Some(&url), V2_ADD).await;
        assert_eq!(
            crate::common::sql(&t, "parts", "select title || ':' || coalesce(note, '-') from part").await,
            Ok(Some("bolt:-".into())),
            "the new field is there and the old rows are kept"
        );
        let too_long =
            crate::common::sql(&t, "parts", &format!("update part set note = '{}'", "x".repeat(51))).await;
        assert!(too_long.expect_err("the new field's rule is a constraint").contains("part_note_check"));
        t.shutdown().await;

        let dir = tempfile::tempdir().expect("tempdir");
        let admin = admin(&url, V2_ADD, dir.path()).await;
        let plan = admin.entity_plan("parts").await.expect("plan");
        assert_eq!((plan.applied_version, plan.declared_version), (Some(2), 2), "up to date");
        let report = admin.migration_report("parts").await.expect("report");
        let states: Vec<(i64, &str)> = report.steps.iter().map(|s| (s.version, s.state.as_str())).collect();
        assert_eq!(
            states,
            [(1_000_000_001, "applied"), (1_000_000_002, "applied")],
            "the step of version 1 is rebuilt from what was applied, not shown as unknown or changed"
        );
        let undone = admin.rollback("parts", 1_000_000_001, |_| {}).await.expect("rollback");
        assert_eq!(undone.iter().map(|s| s.version).collect::<Vec<_>>(), [1_000_000_002]);
        assert_eq!(
            columns(&db).await,
            ["created_at", "id", "qty", "title", "updated_at"],
            "the old table again"
        );
        let versions: Vec<i32> = sqlx::query_scalar(
            "select version from annex.entity_schemas where extension = 'parts' order by version",
        )
        .fetch_all(&db)
        .await
        .expect("versions");
        assert_eq!(versions, [1], "the undone declaration is forgotten");
        admin.close().await;
        db.close().await;
    }

    #[tokio::test]
    async fn a_rename_keeps_the_data_and_a_widened_type_keeps_the_values() {
        let t = start(None, V1).await;
        let url = t.database_url().to_owned();
        crate::common::sql(&t, "parts", "insert into part (title, qty) values ('nut', 9)")
            .await
            .expect("row");
        t.shutdown().await;
        let t = start(Some(&url), V2_RENAME).await;
        assert_eq!(
            crate::common::sql(&t, "parts", "select name || ':' || qty from part").await,
            Ok(Some("nut:9".into()))
        );
        let db = crate::common::superuser(&url).await;
        let qty_type: String = sqlx::query_scalar(
            "select data_type::text from information_schema.columns where table_schema = 'ext_parts' and column_name = 'qty'",
        )
        .fetch_one(&db)
        .await
        .expect("type");
        assert_eq!(qty_type, "bigint");
        db.close().await;
        t.shutdown().await;
    }

    #[tokio::test]
    async fn a_new_entity_and_a_many_to_many_relation_to_it_migrate_and_roll_back() {
        let t = start(None, V1).await;
        let url = t.database_url().to_owned();
        t.shutdown().await;
        let t = start(Some(&url), V2_LINKS).await;
        crate::common::sql(&t, "parts", "insert into tag (name) values ('steel')")
            .await
            .expect("the new entity");
        crate::common::sql(&t, "parts", "insert into part (title) values ('bolt')").await.expect("a part");
        crate::common::sql(&t, "parts", "insert into part_tags select p.id, t.id from part p, tag t")
            .await
            .expect("the junction table");
        t.shutdown().await;
        let dir = tempfile::tempdir().expect("tempdir");
        let admin = admin(&url, V2_LINKS, dir.path()).await;
        admin.rollback("parts", 1_000_000_001, |_| {}).await.expect("rollback");
        let db = crate::common::superuser(&url).await;
        let tables: Vec<String> = sqlx::query_scalar(
            "select table_name::text from information_schema.tables where table_schema = 'ext_parts' order by 1",
        )
        .fetch_all(&db)
        .await
        .expect("tables");
        assert_eq!(tables, ["part"], "the junction and the new entity are gone, the part stays");
        admin.close().await;
        db.close().await;
    }

    #[tokio::test]
    async fn dropping_a_field_is_refused_at_start_and_applied_only_when_allowed() {
        let t = start(None, V2_ADD).await;
        let url = t.database_url().to_owned();
        t.shutdown().await;
        let t = start(Some(&url), V3_DROP).await;
        let state = t.host().state("parts");
        let reason = format!("{state:?}");
        assert!(reason.contains("would lose data") && reason.contains("--allow-destructive"), "{reason}");
        t.shutdown().await;
        let db = crate::common::superuser(&url).await;
        assert!(columns(&db).await.contains(&"qty".to_owned()), "nothing was dropped");

        let dir = tempfile::tempdir().expect("tempdir");
        let admin = admin(&url, V3_DROP, dir.path()).await;
        let plan = admin.entity_plan("parts").await.expect("plan");
        assert!(plan.changes.iter().any(|c| c.destructive), "{plan:?}");
        assert!(plan.up.iter().any(|s| s.contains("drop column \"qty\"")), "{:?}", plan.up);
        let refused = admin.migrate("parts", |_| {}).await.expect_err("refused without the flag");
        assert!(refused.to_string().contains("--allow-destructive"), "{refused}");
        admin.apply_entities("parts", true, |_| {}).await.expect("applied when allowed");
        assert!(!columns(&db).await.contains(&"qty".to_owned()));
        admin.close().await;
        db.close().await;
    }
}

/// Every field type and every rule, enforced by the API (422 naming the field) and, for raw SQL
/// as the extension's role, by PostgreSQL.
mod every_type {
    use reqwest::Method;
    use serde_json::{Value, json};

    const TOKEN: &str = "types-admin-token";
    const ALL: &str = r#"
version = 1
[enums.level]
values = ["low", "high"]
[entities.thing.fields]
s = { type = "string", required = true, min_length = 2, max_length = 8, pattern = "[a-z]+" }
t = { type = "text", max_length = 20 }
i = { type = "int", min = 1, max = 10 }
b = { type = "bigint", min = 0 }
f = { type = "float", max = 1.5 }
d = { type = "decimal", min = 0 }
yes = { type = "boolean", default = false }
day = { type = "date" }
at = { type = "datetime" }
doc = { type = "json" }
key = { type = "uuid", unique = true }
lvl = { type = "enum", enum = "level", default = "low" }
[entities.other.fields]
thing = { type = "relation", kind = "many-to-one", to = "thing" }
"#;

    #[tokio::test]
    async fn each_type_and_rule_is_checked_by_the_api_and_by_the_database() {
        let t = super::declared_host("types", ALL, TOKEN).await;
        let post = |entity: &'static str, body: Value| {
            let t = &t;
            async move {
                super::request(t, TOKEN, Method::POST, &format!("/ext/types/entities/{entity}"), Some(body))
                    .await
            }
        };
        let good = json!({
            "s": "abc", "t": "hello", "i": 5, "b": 9_000_000_000i64, "f": 1.25, "d": 12.5, "yes": true,
            "day": "2026-12-01", "at": "2026-12-01T09:00:00Z", "doc": { "nested": [1, 2] },
            "key": "6f9a3ead-5469-4644-8000-000000000010", "lvl": "high"
        });
        let (s, row) = post("thing", good.clone()).await;
        assert_eq!(s, 201, "{row}");
        assert_eq!((row["doc"]["nested"][1].as_i64(), row["b"].as_i64()), (Some(2), Some(9_000_000_000)));
        let (s, row) = post("other", json!({ "thing_id": row["id"] })).await;
        assert_eq!(s, 201, "{row}");
        // One bad value per field: each is named.
        let bad = [
            ("s", json!("A")),
            ("t", json!("x".repeat(21))),
            ("i", json!(11)),
            ("b", json!(-1)),
            ("f", json!(2.0)),
            ("d", json!(-0.5)),
            ("yes", json!("yes")),
            ("day", json!("1st of May")),
            ("at", json!("yesterday")),
            ("key", json!("not-a-uuid")),
            ("lvl", json!("medium")),
        ];
        for (field, value) in bad {
            let mut body = good.clone();
            body[field] = value.clone();
            body["key"] = json!(format!("6f9a3ead-5469-4644-8000-{:012}", field.len()));
            if field == "key" {
                body["key"] = value.clone();
            }
            let (s, b) = post("thing", body).await;
            assert_eq!(s, 422, "{field} = {value}: {b}");
            let pointers: Vec<&str> = b["error"]["fields"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|e| e["pointer"].as_str())
                .collect();
            assert_eq!(pointers, [format!("/{field}")], "{field}: {b}");
        }
        let (s, b) = post("thing", good.clone()).await;
        assert_eq!((s, b["error"]["code"].as_str()), (409, Some("unique_violation")), "key is unique: {b}");
        let (s, b) = post("thing", json!({ "s": "'; drop table thing; --" })).await;
        assert_eq!(s, 422, "a hostile value is only a value: {b}");
        let (s, b) = post("thing", json!({ "s": "ok", "t": "'; drop table x; --" })).await;
        assert_eq!(s, 201, "stored as text: {b}");
        assert_eq!(b["t"], "'; drop table x; --");

        // The same rules as constraints, for raw SQL as the extension's role.
        for (sql, constraint) in [
            ("insert into thing (s) values ('A')", "thing_s_check"),
            ("insert into thing (s, t) values ('ab', repeat('x', 21))", "thing_t_check"),
            ("insert into thing (s, i) values ('ab', 0)", "thing_i_check"),
            ("insert into thing (s, b) values ('ab', -1)", "thing_b_check"),
            ("insert into thing (s, f) values ('ab', 9.5)", "thing_f_check"),
            ("insert into thing (s, d) values ('ab', -1)", "thing_d_check"),
            ("insert into thing (s, lvl) values ('ab', 'medium')", "thing_lvl_fkey"),
            ("insert into thing (t) values ('no s')", "null value in column \"s\""),
            ("insert into other (thing_id) values (gen_random_uuid())", "other_thing_id_fkey"),
        ] {
            let err = crate::common::sql(&t, "types", sql).await.expect_err(sql);
            assert!(err.contains(constraint), "{sql}: expected {constraint} in {err}");
        }
        assert_eq!(
            crate::common::sql(&t, "types", "select count(*)::text from thing").await,
            Ok(Some("2".into())),
            "the table is still there"
        );
        t.shutdown().await;
    }
}

/// Many-to-many links: written as an array of ids, replaced on patch, read back with expand.
mod links {
    use reqwest::Method;
    use serde_json::{Value, json};

    const TOKEN: &str = "links-admin-token";
    const POSTS: &str = r#"
version = 1
[entities.post.fields]
title = { type = "string", required = true }
tags = { type = "relation", kind = "many-to-many", to = "tag" }
[entities.tag.fields]
name = { type = "string", required = true, unique = true }
"#;

    #[tokio::test]
    async fn links_are_written_replaced_refused_when_dangling_and_expanded_in_one_query() {
        let t = super::declared_host("blog", POSTS, TOKEN).await;
        let call = |method: Method, path: &str, body: Option<Value>| {
            let (t, path) = (&t, format!("/ext/blog/entities{path}"));
            async move { super::request(t, TOKEN, method, &path, body).await }
        };
        let mut tags = Vec::new();
        for name in ["rust", "sql"] {
            let (_, tag) = call(Method::POST, "/tag", Some(json!({ "name": name }))).await;
            tags.push(tag["id"].as_str().expect("id").to_owned());
        }
        let (s, post) = call(Method::POST, "/post", Some(json!({ "title": "Hello", "tags": tags }))).await;
        assert_eq!(s, 201, "{post}");
        let id = post["id"].as_str().expect("id").to_owned();
        let names = |page: &Value| -> Vec<String> {
            page["items"][0]["expand"]["tags"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|t| t["name"].as_str().map(str::to_owned))
                .collect()
        };
        let (_, page) = call(Method::GET, "/post?expand=tags", None).await;
        assert_eq!(names(&page), ["rust", "sql"]);
        let (s, _) = call(Method::PATCH, &format!("/post/{id}"), Some(json!({ "tags": [tags[1]] }))).await;
        assert_eq!(s, 200);
        let (_, page) = call(Method::GET, "/post?expand=tags", None).await;
        assert_eq!(names(&page), ["sql"], "a patch replaces the links");

        let dangling = json!({ "title": "Ghost", "tags": ["00000000-0000-0000-0000-000000000000"] });
        let (s, b) = call(Method::POST, "/post", Some(dangling)).await;
        assert_eq!(s, 422, "{b}");
        assert_eq!(b["error"]["fields"][0]["pointer"], "/tags");
        let (_, all) = call(Method::GET, "/post", None).await;
        assert_eq!(all["total_items"], 1, "the refused post was rolled back with its links");
        let (s, b) = call(Method::POST, "/post", Some(json!({ "title": "Bad", "tags": "rust" }))).await;
        assert_eq!((s, b["error"]["fields"][0]["pointer"].as_str()), (422, Some("/tags")), "{b}");

        assert_eq!(call(Method::DELETE, &format!("/tag/{}", tags[1]), None).await.0, 204);
        let (_, page) = call(Method::GET, "/post?expand=tags", None).await;
        assert!(names(&page).is_empty(), "deleting a tag removes its links");
        t.shutdown().await;
    }
}

/// `entity_types!`: a Rust type per entity and enum, read with `sqlx::FromRow` and serde.
mod typed {
    use annex_core::__private::{chrono, rust_decimal};
    use reqwest::Method;
    use serde_json::json;

    annex_core::entity_types!("tests/runtime/fixtures/workorders.entities.toml");

    const TOKEN: &str = "typed-admin-token";

    #[tokio::test]
    async fn generated_types_read_the_rows_typed_and_serialize_like_the_api() {
        let t = annex_core::testkit::TestHost::builder()
            .extension(super::declaring("orders"))
            .config(|c| c.server.admin_token = Some(TOKEN.into()))
            .start()
            .await
            .expect("host starts");
        let body = json!({ "number": 1, "title": "Typed order", "due": "2026-12-24", "cost": 12.5 });
        let (s, api_row) =
            super::request(&t, TOKEN, Method::POST, "/ext/orders/entities/work_order", Some(body)).await;
        assert_eq!(s, 201, "{api_row}");
        let comment = json!({ "body": "first", "work_order_id": api_row["id"] });
        assert_eq!(
            super::request(&t, TOKEN, Method::POST, "/ext/orders/entities/comment", Some(comment)).await.0,
            201
        );

        let db = crate::common::superuser(t.database_url()).await;
        let orders: Vec<WorkOrder> =
            sqlx::query_as("select * from ext_orders.work_order").fetch_all(&db).await.expect("typed rows");
        let o = &orders[0];
        assert_eq!((o.number, o.title.as_str(), &o.status), (1, "Typed order", &Status::Open));
        assert_eq!(o.due, chrono::NaiveDate::from_ymd_opt(2026, 12, 24));
        assert_eq!(o.cost, Some(rust_decimal::Decimal::new(125, 1)));
        assert_eq!(o.id.to_string(), api_row["id"].as_str().unwrap_or_default());
        let comments: Vec<Comment> =
            sqlx::query_as("select * from ext_orders.comment").fetch_all(&db).await.expect("typed");
        assert_eq!((comments[0].work_order_id, comments[0].body.as_str()), (o.id, "first"));
        let value = serde_json::to_value(o).expect("serialize");
        assert_eq!((value["status"].as_str(), value["title"].as_str()), (Some("open"), Some("Typed order")));
        assert_eq!(
            Status::from("on_hold"),
            Status::Other("on_hold".into()),
            "values other extensions add are kept"
        );
        db.close().await;
        t.shutdown().await;
    }
}
