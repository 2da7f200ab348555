//! Site-scoped requests across two real `annex serve` processes on one database: an activation
//! written with SQL and `NOTIFY annex_sites` (as the sites domain's transaction does) is served
//! by the other replica within a second, each site's rows stay its own through the `notes`
//! example's row-level-security policy, and a suspension reaches both replicas.
#![cfg(feature = "ext-notes")]

use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use sqlx::types::Uuid;

use crate::support::{Server, TOKEN, eventually};

fn serve(url: &str, config_dir: &std::path::Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_annex"));
    c.args(["serve", "--bind", "127.0.0.1:0"])
        .env("DATABASE_URL", url)
        .env("ANNEX_ADMIN_TOKEN", TOKEN)
        .current_dir(config_dir);
    c
}

async fn get(url: String) -> (u16, Value) {
    let res = reqwest::get(&url).await.expect("sent");
    let status = res.status().as_u16();
    (status, res.json().await.unwrap_or_default())
}

async fn notify(tx: &mut sqlx::PgConnection, site: Uuid) {
    sqlx::query("select pg_notify('annex_sites', $1::text)").bind(site).execute(tx).await.expect("notify");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_activation_on_one_serve_process_is_served_by_the_other_within_a_second() {
    let url = annex_core::testkit::test_database_url().await.expect("database");
    let config = tempfile::tempdir().expect("tempdir");
    // Extensions compiled in by default are valid only with their permissions granted.
    if cfg!(feature = "ext-webhooks") {
        let grant =
            "[extensions.webhooks]\npermissions = [\"database\", \"events:subscribe\", \"http:outbound\"]\n";
        std::fs::write(config.path().join("annex.toml"), grant).expect("annex.toml");
    }
    let (da, dbb) = (tempfile::tempdir().expect("tempdir"), tempfile::tempdir().expect("tempdir"));
    let one = Server::start(serve(&url, config.path()), da.path());
    let two = Server::start(serve(&url, config.path()), dbb.path());
    let db = sqlx::PgPool::connect(&url).await.expect("superuser connects");

    let mut tx = db.begin().await.expect("begin");
    let site: Uuid =
        sqlx::query_scalar("insert into annex.sites (slug, name) values ('plant-x', 'X') returning id")
            .fetch_one(&mut *tx)
            .await
            .expect("site");
    notify(&mut tx, site).await;
    tx.commit().await.expect("commit");
    // Sentinel: both listeners are live once the new site reached both replicas.
    for server in [&one, &two] {
        let live = eventually(Duration::from_secs(10), || async {
            get(format!("{}/sites/plant-x/ext/notes/notes", server.url)).await.1["error"]["code"]
                == "extension_not_active"
        })
        .await;
        assert!(live.is_some(), "{} never learned of the new site", server.url);
    }

    // The activation's transaction, as the sites domain writes it, on replica one's database.
    let config_json = json!({ "title": "Plant X log" });
    let started = Instant::now();
    let mut tx = db.begin().await.expect("begin");
    sqlx::query(
        "insert into annex.site_extensions (site_id, extension, version, config, config_hash, state, activated_at)
         values ($1, 'notes', '0.1.0', $2, $3, 'active', now())",
    )
    .bind(site)
    .bind(&config_json)
    .bind(annex_core::sites::config_hash(&config_json))
    .execute(&mut *tx)
    .await
    .expect("activated");
    notify(&mut tx, site).await;
    tx.commit().await.expect("commit");
    let served = eventually(Duration::from_secs(1), || async {
        let (status, body) = get(format!("{}/sites/plant-x/ext/notes/notes", two.url)).await;
        status == 200 && body["title"] == "Plant X log"
    })
    .await;
    let took = started.elapsed();
    assert!(
        served.is_some() && took <= Duration::from_secs(1),
        "replica two served the activation after {took:?}"
    );

    // A note written through one replica is read through the other, under the same site only.
    let client = reqwest::Client::new();
    let res = client
        .post(format!("{}/sites/plant-x/ext/notes/notes", one.url))
        .json(&json!({ "body": "valve 7 replaced" }))
        .send()
        .await
        .expect("sent");
    assert_eq!(res.status(), 200);
    let (_, list) = get(format!("{}/sites/plant-x/ext/notes/notes", two.url)).await;
    assert_eq!(list["notes"][0]["body"], "valve 7 replaced", "{list}");
    assert_eq!(get(format!("{}/ext/notes/notes", two.url)).await.1["error"]["code"], "site_scoped");

    // A suspension reaches both.
    let mut tx = db.begin().await.expect("begin");
    sqlx::query("update annex.sites set status = 'suspended' where id = $1")
        .bind(site)
        .execute(&mut *tx)
        .await
        .expect("suspend");
    notify(&mut tx, site).await;
    tx.commit().await.expect("commit");
    for server in [&one, &two] {
        let suspended = eventually(Duration::from_secs(1), || async {
            let (status, body) = get(format!("{}/sites/plant-x/ext/notes/notes", server.url)).await;
            status == 503 && body["error"]["code"] == "site_suspended"
        })
        .await;
        assert!(suspended.is_some(), "{} still serves a suspended site after 1 s", server.url);
    }
    db.close().await;
    one.stop();
    two.stop();
}
