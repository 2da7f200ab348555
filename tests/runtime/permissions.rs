//! Permissions at enable time and at use time, and the append-only audit log.

use std::time::Duration;

use crate::scripted::{Scripted, grant};
use annex_core::testkit::TestHost;
use annex_core::{extension::StorageError, host::ExtensionState};
use sqlx::Connection;

async fn audit_rows(t: &TestHost, action: &str, target: &str) -> Vec<serde_json::Value> {
    let mut db = sqlx::PgConnection::connect(t.database_url()).await.expect("connect");
    sqlx::query_scalar("select details from annex.audit_log where action = $1 and target = $2 order by id")
        .bind(action)
        .bind(target)
        .fetch_all(&mut db)
        .await
        .expect("query")
}

#[tokio::test]
async fn an_extension_needing_an_ungranted_permission_does_not_enable_and_the_error_names_it() {
    let fetcher = Scripted::new("fetcher", |r| {
        r.get("/ping", || async { "pong" });
    })
    .needs("database")
    .needs("http:outbound");
    let t = TestHost::builder()
        .extension(fetcher)
        .config(|c| grant(c, "fetcher", &["database"]))
        .start()
        .await
        .expect("the host starts; only the extension fails");
    let reason = match t.host().state("fetcher") {
        Some(ExtensionState::Failed(reason)) => reason,
        other => panic!("expected a failure, got {other:?}"),
    };
    assert!(reason.contains("permission `http:outbound`"), "{reason}");
    assert!(
        reason.contains(r#"[extensions.fetcher] in annex.toml: permissions = ["database", "http:outbound"]"#),
        "{reason}"
    );
    let res = t.get("/ext/fetcher/ping").await;
    assert_eq!(res.status(), 503);
    let denied = audit_rows(&t, "permission.denied", "fetcher").await;
    assert_eq!(denied, [serde_json::json!({ "permission": "http:outbound", "at": "enable" })]);
    t.shutdown().await;
}

#[tokio::test]
async fn granted_permissions_enable_the_extension() {
    let fetcher = Scripted::new("fetcher", |_r| {}).needs("database").needs("http:outbound");
    let t = TestHost::builder()
        .extension(fetcher)
        .config(|c| grant(c, "fetcher", &["database", "http:outbound"]))
        .start()
        .await
        .expect("host starts");
    assert_eq!(t.host().state("fetcher"), Some(ExtensionState::Running));
    t.shutdown().await;
}

#[tokio::test]
async fn subscribing_without_events_subscribe_keeps_the_extension_from_enabling() {
    let listener = Scripted::new("listener", |r| {
        r.subscribe("extension.*", |_cx, _event| async {});
    });
    let t = TestHost::builder().extension(listener).start().await.expect("host starts");
    match t.host().state("listener") {
        Some(ExtensionState::Failed(reason)) => {
            assert!(reason.contains("`events:subscribe`"), "{reason}");
            assert!(reason.contains("subscribes to `extension.*`"), "{reason}");
        }
        other => panic!("expected a failure, got {other:?}"),
    }
    t.shutdown().await;
}

#[tokio::test]
async fn services_check_permissions_when_used_and_the_denial_is_audited() {
    let sneaky = Scripted::new("sneaky", |_r| {});
    let t = TestHost::builder().extension(sneaky.clone()).start().await.expect("host starts");
    let cx = sneaky.context();
    let err = cx.publish("created", serde_json::json!({})).expect_err("events:publish not granted");
    assert_eq!(err.permission, "events:publish");
    assert!(err.to_string().contains("[extensions.sneaky] permissions"), "{err}");
    match cx.storage().write("a.txt", b"x".as_slice()).await {
        Err(StorageError::Permission(e)) => assert_eq!(e.permission, "storage"),
        other => panic!("expected a permission error, got {other:?}"),
    }
    // Denied twice: audited once per permission.
    let _ = cx.publish("created", serde_json::json!({}));
    let mut rows = Vec::new();
    for _ in 0..100 {
        rows = audit_rows(&t, "permission.denied", "sneaky").await;
        if rows.len() >= 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut permissions: Vec<&str> = rows.iter().filter_map(|r| r["permission"].as_str()).collect();
    permissions.sort();
    assert_eq!(permissions, ["events:publish", "storage"]);
    t.shutdown().await;
}

#[tokio::test]
async fn update_and_delete_on_the_audit_log_fail_at_the_database() {
    let writer = Scripted::new("writer", |_r| {});
    let t = TestHost::builder().extension(writer.clone()).start().await.expect("host starts");
    writer.context().audit("exported", "report-7", serde_json::json!({ "rows": 3 })).await.expect("append");
    let mut db = sqlx::PgConnection::connect(t.database_url()).await.expect("connect");
    let count = || {
        sqlx::query_scalar::<_, i64>("select count(*) from annex.audit_log where action = 'writer.exported'")
    };
    assert_eq!(count().fetch_one(&mut db).await.expect("count"), 1);

    let update = sqlx::query("update annex.audit_log set actor = 'someone else'").execute(&mut db).await;
    let err = update.expect_err("UPDATE must fail").to_string();
    assert!(err.contains("append-only"), "{err}");
    let delete = sqlx::query("delete from annex.audit_log").execute(&mut db).await;
    let err = delete.expect_err("DELETE must fail").to_string();
    assert!(err.contains("append-only"), "{err}");
    let truncate = sqlx::query("truncate annex.audit_log").execute(&mut db).await;
    assert!(truncate.is_err(), "TRUNCATE must fail");
    assert_eq!(count().fetch_one(&mut db).await.expect("count"), 1, "the entry is intact");
    t.shutdown().await;
}
