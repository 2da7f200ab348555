//! Site-scoped requests across two real `annex serve` processes on one database: an activation
//! made through replica one's admin API is served by replica two within a second, each site's
//! rows stay its own through the `notes` example's row-level-security policy, and a suspension
//! made on one replica reaches both.
#![cfg(feature = "ext-notes")]

use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

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
    let client = reqwest::Client::new();
    let admin = |method: reqwest::Method, path: &str, body: Value| {
        let req = client.request(method, format!("{}{path}", one.url)).bearer_auth(TOKEN).json(&body);
        async move {
            let res = req.send().await.expect("sent");
            let status = res.status().as_u16();
            (status, res.json::<Value>().await.unwrap_or_default())
        }
    };
    let (s, b) =
        admin(reqwest::Method::POST, "/api/v1/sites", json!({ "slug": "plant-x", "name": "X" })).await;
    assert_eq!(s, 201, "{b}");
    // Sentinel: both listeners are live once the new site reached both replicas.
    for server in [&one, &two] {
        let live = eventually(Duration::from_secs(10), || async {
            get(format!("{}/sites/plant-x/ext/notes/notes", server.url)).await.1["error"]["code"]
                == "extension_not_active"
        })
        .await;
        assert!(live.is_some(), "{} never learned of the new site", server.url);
    }

    // The activation, through replica one's admin API.
    let started = Instant::now();
    let activate = json!({ "config": { "title": "Plant X log" }, "reason": "go-live" });
    let (s, b) =
        admin(reqwest::Method::POST, "/api/v1/sites/plant-x/extensions/notes/activate", activate).await;
    assert_eq!(s, 200, "{b}");
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

    // A suspension made on replica one reaches both.
    let (s, b) =
        admin(reqwest::Method::POST, "/api/v1/sites/plant-x/suspend", json!({ "reason": "audit" })).await;
    assert_eq!(s, 200, "{b}");
    for server in [&one, &two] {
        let suspended = eventually(Duration::from_secs(1), || async {
            let (status, body) = get(format!("{}/sites/plant-x/ext/notes/notes", server.url)).await;
            status == 503 && body["error"]["code"] == "site_suspended"
        })
        .await;
        assert!(suspended.is_some(), "{} still serves a suspended site after 1 s", server.url);
    }
    one.stop();
    two.stop();
}
