//! Site-scoped requests on a real PostgreSQL: `/sites/<slug>/ext/<name>/…` with each site's own
//! config, the per-(site, extension) gate (unknown site, suspended site, not active there, a
//! site-scoped extension under `/ext/`), `Context::site_tx` under a FORCE'd row-level-security
//! policy, and the gates following `NOTIFY annex_sites` on another replica within a second.
//! Sites and activations are written with plain SQL, as the sites domain's transaction does.

use std::time::{Duration, Instant};

use annex_core::testkit::TestHost;
use annex_core::{ApiError, Context, Extension, Json, Metadata, Migration, Migrations, Registrar};
use serde_json::{Value, json};
use sqlx::types::Uuid;
use sqlx::{PgPool, Row};

use crate::common::{json_body, superuser};

/// Answers with its site and its config there.
struct Greeter;

#[annex_core::async_trait]
impl Extension for Greeter {
    fn metadata(&self) -> Metadata {
        Metadata::new("greeter", "1.0.0")
    }
    fn register(&self, r: &mut Registrar) {
        r.get("/hello", |cx: Context| async move {
            Json(json!({
                "site": cx.site().map(|s| s.slug().to_owned()),
                "site_id": cx.site().map(|s| s.id()),
                "greeting": cx.config().get("greeting").cloned(),
            }))
        });
    }
}

/// Site-scoped, with table `t` under a FORCE'd policy on `annex_site_id()`. `POST /sql` runs
/// the body in `cx.site_tx()`, `POST /plain-sql` on its pool outside one; both answer
/// `{"rows": [first column as text, …]}` or `{"error": "<PostgreSQL's message>"}`.
struct Tenanted;

const RLS_TABLE: &str = "
    create table t (id bigserial primary key, site_id uuid not null, body text not null);
    alter table t enable row level security;
    alter table t force row level security;
    create policy by_site on t
        using (site_id = annex_api.annex_site_id())
        with check (site_id = annex_api.annex_site_id());";

#[annex_core::async_trait]
impl Extension for Tenanted {
    fn metadata(&self) -> Metadata {
        Metadata::new("tenanted", "1.0.0").site_scoped()
    }
    fn migrations(&self) -> Migrations {
        Migrations::new(vec![Migration::new(1, "rls table", RLS_TABLE, Some("drop table t;"))])
    }
    fn register(&self, r: &mut Registrar) {
        r.post("/sql", site_sql);
        r.post("/plain-sql", plain_sql);
        r.get("/ping", || async { "pong" });
    }
}

async fn site_sql(cx: Context, sql: String) -> Result<Json<Value>, ApiError> {
    let mut tx = cx.site_tx().await?;
    let out = rows(sqlx::query(&sql).fetch_all(&mut *tx).await);
    tx.commit().await?;
    Ok(out)
}

async fn plain_sql(cx: Context, sql: String) -> Result<Json<Value>, ApiError> {
    Ok(rows(sqlx::query(&sql).fetch_all(cx.db()?).await))
}

fn rows(result: Result<Vec<sqlx::postgres::PgRow>, sqlx::Error>) -> Json<Value> {
    match result {
        Ok(rows) => {
            let values: Vec<Option<String>> =
                rows.iter().map(|r| r.try_get::<Option<String>, _>(0).ok().flatten()).collect();
            Json(json!({ "rows": values }))
        }
        Err(e) => Json(json!({ "error": e.to_string() })),
    }
}

pub(crate) async fn create_site(db: &PgPool, slug: &str) -> Uuid {
    sqlx::query_scalar("insert into annex.sites (slug, name) values ($1, $1) returning id")
        .bind(slug)
        .fetch_one(db)
        .await
        .expect("site created")
}

/// Activates `extension` at `site` with `config` and notifies, in one transaction, as the
/// sites domain's activation does.
pub(crate) async fn activate(db: &PgPool, site: Uuid, extension: &str, config: Value) {
    let mut tx = db.begin().await.expect("begin");
    sqlx::query(
        "insert into annex.site_extensions (site_id, extension, version, config, config_hash, state, activated_at)
         values ($1, $2, '1.0.0', $3, $4, 'active', now())
         on conflict (site_id, extension) do update
            set config = excluded.config, config_hash = excluded.config_hash, state = 'active', updated_at = now()",
    )
    .bind(site)
    .bind(extension)
    .bind(&config)
    .bind(annex_core::sites::config_hash(&config))
    .execute(&mut *tx)
    .await
    .expect("activated");
    notify(&mut tx, site).await;
    tx.commit().await.expect("commit");
}

async fn notify(tx: &mut sqlx::PgConnection, site: Uuid) {
    sqlx::query("select pg_notify('annex_sites', $1::text)").bind(site).execute(tx).await.expect("notify");
}

/// Polls until `check` holds or `limit` passes; how long it took.
async fn eventually<F, Fut>(limit: Duration, mut check: F) -> Option<Duration>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = Instant::now();
    loop {
        if check().await {
            return Some(start.elapsed());
        }
        if start.elapsed() >= limit {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn status_and_code(t: &TestHost, path: &str) -> (u16, String) {
    let res = t.get(path).await;
    let status = res.status().as_u16();
    let body: Value = res.json().await.unwrap_or_default();
    (status, body["error"]["code"].as_str().unwrap_or_default().to_owned())
}

#[tokio::test]
async fn two_sites_run_the_same_extension_each_with_its_own_config() {
    let t = TestHost::builder().extension(Greeter).start().await.expect("host starts");
    let db = superuser(t.database_url()).await;
    let (a, b) = (create_site(&db, "plant-a").await, create_site(&db, "plant-b").await);
    activate(&db, a, "greeter", json!({ "greeting": "moin" })).await;
    activate(&db, b, "greeter", json!({ "greeting": "servus" })).await;
    // What the lead calls right after a local activation commits: no wait for the NOTIFY.
    t.host().reload_site(a).await.expect("reload a");
    t.host().reload_site(b).await.expect("reload b");

    let body = json_body(t.get("/sites/plant-a/ext/greeter/hello").await).await;
    assert_eq!(body, json!({ "site": "plant-a", "site_id": a, "greeting": "moin" }));
    let body = json_body(t.get("/sites/plant-b/ext/greeter/hello").await).await;
    assert_eq!(body, json!({ "site": "plant-b", "site_id": b, "greeting": "servus" }));
    // The global route keeps the global config and has no site.
    let body = json_body(t.get("/ext/greeter/hello").await).await;
    assert_eq!(body, json!({ "site": null, "site_id": null, "greeting": null }));
    db.close().await;
    t.shutdown().await;
}

#[tokio::test]
async fn unknown_sites_sites_without_the_extension_and_suspended_sites_are_refused() {
    let t = TestHost::builder().extension(Greeter).start().await.expect("host starts");
    let db = superuser(t.database_url()).await;
    let (a, idle) = (create_site(&db, "plant-a").await, create_site(&db, "idle").await);
    activate(&db, a, "greeter", json!({ "greeting": "moin" })).await;
    t.host().reload_site(a).await.expect("reload a");
    t.host().reload_site(idle).await.expect("reload idle");

    assert_eq!(status_and_code(&t, "/sites/nowhere/ext/greeter/hello").await, (404, "unknown_site".into()));
    let res = t.get("/sites/idle/ext/greeter/hello").await;
    assert_eq!(res.status(), 404);
    let body = json_body(res).await;
    assert_eq!(body["error"]["code"], "extension_not_active", "{body}");
    let message = body["error"]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("`greeter`") && message.contains("`idle`") && message.contains("activate"),
        "{message}"
    );

    // A suspension arrives by NOTIFY alone: the sentinel is the 503 itself.
    assert_eq!(t.get("/sites/plant-a/ext/greeter/hello").await.status(), 200);
    let mut tx = db.begin().await.expect("begin");
    sqlx::query("update annex.sites set status = 'suspended' where id = $1")
        .bind(a)
        .execute(&mut *tx)
        .await
        .expect("suspend");
    notify(&mut tx, a).await;
    tx.commit().await.expect("commit");
    let took = eventually(Duration::from_secs(5), || async {
        status_and_code(&t, "/sites/plant-a/ext/greeter/hello").await == (503, "site_suspended".into())
    })
    .await;
    assert!(took.is_some(), "the suspension was not applied after NOTIFY");

    // The extension's own gate still applies under a site.
    sqlx::query("update annex.sites set status = 'active' where id = $1")
        .bind(a)
        .execute(&db)
        .await
        .expect("resume");
    t.host().reload_site(a).await.expect("reload a");
    t.host().disable("greeter", false).await.expect("disabled");
    assert_eq!(
        status_and_code(&t, "/sites/plant-a/ext/greeter/hello").await,
        (503, "extension_disabled".into())
    );
    db.close().await;
    t.shutdown().await;
}

#[tokio::test]
async fn a_site_scoped_extension_is_reachable_only_under_a_site_where_it_is_active() {
    let t = TestHost::builder().extension(Tenanted).start().await.expect("host starts");
    let db = superuser(t.database_url()).await;
    let (a, b) = (create_site(&db, "plant-a").await, create_site(&db, "plant-b").await);
    activate(&db, a, "tenanted", json!({})).await;
    t.host().reload_site(a).await.expect("reload a");
    t.host().reload_site(b).await.expect("reload b");

    let res = t.get("/ext/tenanted/ping").await;
    assert_eq!(res.status(), 404);
    let body = json_body(res).await;
    assert_eq!(body["error"]["code"], "site_scoped", "{body}");
    let message = body["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("/sites/<slug>/ext/tenanted/"), "{message}");
    assert_eq!(t.get("/sites/plant-a/ext/tenanted/ping").await.status(), 200);
    assert_eq!(
        status_and_code(&t, "/sites/plant-b/ext/tenanted/ping").await,
        (404, "extension_not_active".into())
    );
    db.close().await;
    t.shutdown().await;
}

async fn sql_at(t: &TestHost, slug: &str, sql: &str) -> Value {
    let res = t
        .client()
        .post(t.url(&format!("/sites/{slug}/ext/tenanted/sql")))
        .body(sql.to_owned())
        .send()
        .await
        .expect("sent");
    assert_eq!(res.status(), 200, "POST /sites/{slug}/ext/tenanted/sql");
    res.json().await.expect("json")
}

async fn plain_sql_at(t: &TestHost, slug: &str, sql: &str) -> Value {
    let url = t.url(&format!("/sites/{slug}/ext/tenanted/plain-sql"));
    let res = t.client().post(url).body(sql.to_owned()).send().await.expect("sent");
    assert_eq!(res.status(), 200, "POST /sites/{slug}/ext/tenanted/plain-sql");
    res.json().await.expect("json")
}

#[tokio::test]
async fn row_level_security_shows_a_site_only_its_own_rows_and_refuses_another_sites_insert() {
    let t = TestHost::builder().extension(Tenanted).start().await.expect("host starts");
    let db = superuser(t.database_url()).await;
    let (a, b) = (create_site(&db, "plant-a").await, create_site(&db, "plant-b").await);
    for site in [a, b] {
        activate(&db, site, "tenanted", json!({})).await;
        t.host().reload_site(site).await.expect("reload");
    }

    // Each site writes its own row, naming its own id (the policy's WITH CHECK accepts it).
    for (slug, id) in [("plant-a", a), ("plant-b", b)] {
        let out = sql_at(
            &t,
            slug,
            &format!("insert into t (site_id, body) values ('{id}', '{slug} row') returning body"),
        )
        .await;
        assert_eq!(out, json!({ "rows": [format!("{slug} row")] }));
    }
    // No where clause: site A sees only its row, and annex_site_id() is its id.
    let out = sql_at(&t, "plant-a", "select body from t order by id").await;
    assert_eq!(out, json!({ "rows": ["plant-a row"] }));
    let out = sql_at(&t, "plant-a", "select annex_api.annex_site_id()::text").await;
    assert_eq!(out, json!({ "rows": [a.to_string()] }));
    // A row for site B from site A's transaction: PostgreSQL refuses it.
    let out = sql_at(
        &t,
        "plant-a",
        &format!("insert into t (site_id, body) values ('{b}', 'smuggled') returning body"),
    )
    .await;
    let error = out["error"].as_str().unwrap_or_default();
    assert!(error.contains("new row violates row-level security policy"), "{out}");
    // Nor can site A move its row to site B.
    let out = sql_at(&t, "plant-a", &format!("update t set site_id = '{b}' returning body")).await;
    assert!(out["error"].as_str().unwrap_or_default().contains("row-level security"), "{out}");

    // Outside a site transaction, on the same pool as the same role, the policy shows nothing
    // and refuses every write.
    let out = plain_sql_at(&t, "plant-a", "select count(*)::text from t").await;
    assert_eq!(
        out,
        json!({ "rows": ["0"] }),
        "no site set: the forced policy hides every row from the owner"
    );
    let out =
        plain_sql_at(&t, "plant-a", &format!("insert into t (site_id, body) values ('{a}', 'no site')"))
            .await;
    assert!(out["error"].as_str().unwrap_or_default().contains("row-level security"), "{out}");
    // Both rows are there, and nothing was smuggled in.
    let all: Vec<String> =
        sqlx::query_scalar("select body from ext_tenanted.t order by id").fetch_all(&db).await.expect("rows");
    assert_eq!(all, ["plant-a row", "plant-b row"]);
    db.close().await;
    t.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_activation_written_on_one_replicas_database_is_served_by_another_within_a_second() {
    let one = TestHost::builder().extension(Greeter).start().await.expect("replica 1 starts");
    let two = TestHost::builder()
        .extension(Greeter)
        .database_url(one.database_url())
        .start()
        .await
        .expect("replica 2 starts");
    let db = superuser(one.database_url()).await;
    // Sentinel: replica 2's listener is live once a site created with a NOTIFY reaches it.
    let mut tx = db.begin().await.expect("begin");
    let site: Uuid =
        sqlx::query_scalar("insert into annex.sites (slug, name) values ('plant-r', 'R') returning id")
            .fetch_one(&mut *tx)
            .await
            .expect("site");
    notify(&mut tx, site).await;
    tx.commit().await.expect("commit");
    let live = eventually(Duration::from_secs(10), || async {
        status_and_code(&two, "/sites/plant-r/ext/greeter/hello").await.1 == "extension_not_active"
    })
    .await;
    assert!(live.is_some(), "replica 2 never learned of the new site");

    let started = Instant::now();
    activate(&db, site, "greeter", json!({ "greeting": "from replica 1" })).await;
    let served = eventually(Duration::from_secs(1), || async {
        let res = two.get("/sites/plant-r/ext/greeter/hello").await;
        res.status() == 200 && res.json::<Value>().await.unwrap_or_default()["greeting"] == "from replica 1"
    })
    .await;
    let took = started.elapsed();
    assert!(
        served.is_some() && took <= Duration::from_secs(1),
        "replica 2 served the activation after {took:?}"
    );

    // A config change follows the same way.
    activate(&db, site, "greeter", json!({ "greeting": "changed" })).await;
    let changed = eventually(Duration::from_secs(1), || async {
        json_body(two.get("/sites/plant-r/ext/greeter/hello").await).await["greeting"] == "changed"
    })
    .await;
    assert!(changed.is_some(), "replica 2 kept the old config after 1 s");
    db.close().await;
    two.shutdown().await;
    one.shutdown().await;
}

#[cfg(feature = "ext-notes")]
#[tokio::test]
async fn the_notes_example_keeps_each_sites_notes_to_itself() {
    let t = TestHost::builder().extension(annex_ext_notes::Notes).start().await.expect("host starts");
    let db = superuser(t.database_url()).await;
    let (a, b) = (create_site(&db, "plant-a").await, create_site(&db, "plant-b").await);
    activate(&db, a, "notes", json!({ "title": "Plant A log" })).await;
    activate(&db, b, "notes", json!({})).await;
    for site in [a, b] {
        t.host().reload_site(site).await.expect("reload");
    }
    for (slug, note) in [("plant-a", "pump 3 serviced"), ("plant-b", "line 2 stopped")] {
        let res = t
            .client()
            .post(t.url(&format!("/sites/{slug}/ext/notes/notes")))
            .json(&json!({ "body": note }))
            .send()
            .await
            .expect("sent");
        assert_eq!(res.status(), 200, "{}", res.text().await.unwrap_or_default());
    }
    let list = json_body(t.get("/sites/plant-a/ext/notes/notes").await).await;
    assert_eq!(list["title"], "Plant A log");
    assert_eq!(list["site"], "plant-a");
    let bodies: Vec<&str> =
        list["notes"].as_array().into_iter().flatten().filter_map(|n| n["body"].as_str()).collect();
    assert_eq!(bodies, ["pump 3 serviced"]);
    let list = json_body(t.get("/sites/plant-b/ext/notes/notes").await).await;
    assert_eq!(list["title"], "Notes");
    assert_eq!(list["notes"].as_array().map(Vec::len), Some(1));
    assert_eq!(t.get("/ext/notes/notes").await.status(), 404);
    db.close().await;
    t.shutdown().await;
}
