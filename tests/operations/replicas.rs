//! Two hosts on one database: changes through one replica's admin API, or through the CLI's
//! `Admin`, reach the other within a second via LISTEN/NOTIFY, also after a lost connection.

use std::sync::Arc;
use std::time::Duration;

use annex_core::{Extension, admin::Admin, config::Config};
use reqwest::Method;
use serde_json::json;
use sqlx::Connection;

use crate::support::{Base, Dependent, admin, body, eventually, host};

fn admin_config(url: &str, dir: &std::path::Path) -> Config {
    let mut c = Config::default();
    c.database.url = Some(url.to_owned());
    c.data_dir = dir.to_owned();
    c
}

#[tokio::test(flavor = "multi_thread")]
async fn changes_on_one_replica_or_the_cli_reach_every_replica_within_a_second() {
    let a = host(Base::default(), None).await;
    let b = host(Base::default(), Some(a.database_url())).await;
    assert_eq!(b.get("/ext/dependent/ping").await.status(), 200);

    // Disable through A's admin API: B answers 503 within a second.
    let res = admin(&a, Method::POST, "/api/v1/extensions/dependent/disable").send().await.unwrap();
    assert_eq!(res.status(), 200);
    let took =
        eventually(Duration::from_secs(1), || async { b.get("/ext/dependent/ping").await.status() == 503 })
            .await;
    assert!(took.is_some(), "replica B still serves a disabled extension after 1 s");

    // Config through the CLI path (no server involved): both apply it.
    let dir = tempfile::tempdir().unwrap();
    let extensions: Vec<Arc<dyn Extension>> = vec![Arc::new(Base::default()), Arc::new(Dependent)];
    let cli = Admin::connect(&admin_config(a.database_url(), dir.path()), &extensions).await.unwrap();
    cli.controller().set_config("base", json!({ "greeting": "from the cli" }), "cli").await.unwrap();
    for t in [&a, &b] {
        let took = eventually(Duration::from_secs(1), || async {
            body(t.get("/ext/base/greeting").await).await["greeting"] == "from the cli"
        })
        .await;
        assert!(took.is_some(), "config reached {}", t.base_url());
    }
    let err = cli.controller().set_config("base", json!({ "limit": "x" }), "cli").await.unwrap_err();
    assert!(matches!(err, annex_core::admin::ControlError::InvalidConfig { .. }), "{err}");

    // Enable through the CLI path: both serve again.
    cli.controller().enable("dependent", "cli").await.unwrap();
    for t in [&a, &b] {
        let took = eventually(Duration::from_secs(1), || async {
            t.get("/ext/dependent/ping").await.status() == 200
        })
        .await;
        assert!(took.is_some(), "enable reached {}", t.base_url());
    }

    // Kill every listener connection: replicas reconnect, resync, and keep following changes.
    let mut db = sqlx::PgConnection::connect(a.database_url()).await.unwrap();
    let killed: Vec<(bool,)> = sqlx::query_as(
        "select pg_terminate_backend(pid) from pg_stat_activity where datname = current_database() and query ilike 'listen%'",
    )
    .fetch_all(&mut db)
    .await
    .unwrap();
    assert!(killed.len() >= 2, "both listeners found: {killed:?}");
    cli.controller().disable("base", true, "cli", None).await.unwrap();
    for t in [&a, &b] {
        let took =
            eventually(Duration::from_secs(5), || async { t.get("/ext/base/items/1").await.status() == 503 })
                .await;
        assert!(took.is_some(), "disable after reconnect reached {}", t.base_url());
        // The cascade reaches another replica as one notification per extension, reconciled one
        // after the other: the dependent follows base, shortly after rather than at once.
        let took = eventually(Duration::from_secs(5), || async {
            t.get("/ext/dependent/ping").await.status() == 503
        })
        .await;
        assert!(took.is_some(), "the cascade after reconnect reached {}", t.base_url());
    }
    cli.close().await;
    b.shutdown().await;
    a.shutdown().await;
}
