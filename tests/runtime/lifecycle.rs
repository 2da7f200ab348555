//! Start in dependency order, stop in reverse, and a failing or panicking extension fails alone.

use std::time::Duration;

use crate::common::{Fault, Journal, Probe, json_body};
use annex_core::testkit::TestHost;
use annex_core::{Context, Extension, ExtensionResult, Metadata, host::ExtensionState};

#[tokio::test]
async fn extensions_start_in_dependency_order_and_stop_in_reverse() {
    let journal = Journal::default();
    let t = TestHost::builder()
        .extension(Probe::new("app", &journal).depends_on("store", "^1").depends_on("cache", "^1"))
        .extension(Probe::new("store", &journal).depends_on("cache", "^1"))
        .extension(Probe::new("cache", &journal))
        .extension(Probe::new("audit", &journal))
        .start()
        .await
        .expect("host starts");
    assert_eq!(journal.names_for("start"), ["audit", "cache", "store", "app"]);
    assert_eq!(journal.names_for("init"), ["audit", "cache", "store", "app"]);
    t.shutdown().await;
    assert_eq!(journal.names_for("stop"), ["app", "store", "cache", "audit"]);
}

#[tokio::test]
async fn a_panicking_start_fails_only_that_extension() {
    let journal = Journal::default();
    let t = TestHost::builder()
        .extension(Probe::new("fragile", &journal).fault(Fault::PanicInStart))
        .extension(Probe::new("sturdy", &journal))
        .start()
        .await
        .expect("host starts despite the panic");

    match t.host().state("fragile") {
        Some(ExtensionState::Failed(reason)) => {
            assert!(reason.contains("start() panicked: start exploded"), "{reason}")
        }
        other => panic!("fragile should have failed, is {other:?}"),
    }
    assert_eq!(t.host().state("sturdy"), Some(ExtensionState::Running));
    for _ in 0..20 {
        assert_eq!(t.get("/ext/sturdy/ping").await.status(), 200);
    }
    let res = t.get("/ext/fragile/ping").await;
    assert_eq!(res.status(), 503);
    let body = json_body(res).await;
    assert_eq!(body["error"]["code"], "extension_disabled");
    assert!(body["error"]["message"].as_str().unwrap_or("").contains("failed"), "{body}");
    assert_eq!(t.host().stats("fragile").map(|s| s.lifecycle_panics), Some(1));
    assert_eq!(t.get("/ready").await.status(), 200, "one failed extension does not take the host out");

    t.shutdown().await;
    assert_eq!(journal.names_for("stop"), ["sturdy"], "a failed extension is not stopped");
}

#[tokio::test]
async fn init_panics_start_errors_and_timeouts_each_fail_alone_with_a_reason() {
    let journal = Journal::default();
    let t = TestHost::builder()
        .extension(Probe::new("a_init", &journal).fault(Fault::PanicInInit))
        .extension(Probe::new("b_error", &journal).fault(Fault::FailStart))
        .extension(Probe::new("c_hang", &journal).fault(Fault::HangInStart))
        .extension(Probe::new("d_fine", &journal))
        .config(|c| c.server.lifecycle_timeout_ms = 300)
        .start()
        .await
        .expect("host starts");
    let reason = |name| match t.host().state(name) {
        Some(ExtensionState::Failed(r)) => r,
        other => panic!("{name} should have failed, is {other:?}"),
    };
    assert!(reason("a_init").contains("init() panicked"));
    assert!(reason("b_error").contains("start() failed: the widget is not configured"));
    assert!(reason("c_hang").contains("start() timed out after 300 ms"));
    assert_eq!(journal.names_for("start"), ["b_error", "c_hang", "d_fine"], "a_init never reaches start");
    assert_eq!(t.get("/ext/d_fine/ping").await.status(), 200);

    // The failure is recorded where operators and the CLI look.
    let pool = sqlx::PgPool::connect(t.database_url()).await.expect("db");
    let (state, error): (String, Option<String>) =
        sqlx::query_as("select state, last_error from annex.extensions where name = 'b_error'")
            .fetch_one(&pool)
            .await
            .expect("row");
    assert_eq!(state, "failed");
    assert!(error.unwrap_or_default().contains("the widget is not configured"));
    let audited: i64 = sqlx::query_scalar(
        "select count(*) from annex.audit_log where action = 'extension.start_failed' and target = 'c_hang'",
    )
    .fetch_one(&pool)
    .await
    .expect("audit");
    assert_eq!(audited, 1);
    t.shutdown().await;
}

#[tokio::test]
async fn an_extension_whose_dependency_failed_does_not_start() {
    let journal = Journal::default();
    let t = TestHost::builder()
        .extension(Probe::new("base", &journal).fault(Fault::FailStart))
        .extension(Probe::new("top", &journal).depends_on("base", "^1"))
        .start()
        .await
        .expect("host starts");
    match t.host().state("top") {
        Some(ExtensionState::Failed(reason)) => {
            assert!(reason.contains("dependency `base` is not running"), "{reason}")
        }
        other => panic!("top should not run, is {other:?}"),
    }
    assert_eq!(journal.names_for("init"), ["base"]);
    t.shutdown().await;
}

#[tokio::test]
async fn a_panicking_stop_does_not_keep_the_others_from_stopping() {
    let journal = Journal::default();
    let t = TestHost::builder()
        .extension(Probe::new("first", &journal))
        .extension(Probe::new("second", &journal).fault(Fault::PanicInStop))
        .start()
        .await
        .expect("host starts");
    t.shutdown().await;
    assert_eq!(journal.names_for("stop"), ["second", "first"]);
}

#[tokio::test]
async fn an_extension_disabled_in_config_is_not_started_and_answers_503() {
    let journal = Journal::default();
    let t = TestHost::builder()
        .extension(Probe::new("off", &journal))
        .config(|c| c.extensions.entry("off".into()).or_default().enabled = Some(false))
        .start()
        .await
        .expect("host starts");
    assert_eq!(t.host().state("off"), Some(ExtensionState::Disabled));
    let res = t.get("/ext/off/ping").await;
    assert_eq!(res.status(), 503);
    assert_eq!(json_body(res).await["error"]["code"], "extension_disabled");
    assert!(journal.entries().is_empty());
    t.shutdown().await;
}

/// Spawns a task that panics, and one that runs until aborted.
struct Spawner;

#[annex_core::async_trait]
impl Extension for Spawner {
    fn metadata(&self) -> Metadata {
        Metadata::new("spawner", "1.0.0")
    }
    async fn start(&self, cx: &Context) -> ExtensionResult {
        cx.spawn(async { panic!("background task exploded") })?;
        cx.spawn(std::future::pending())?;
        Ok(())
    }
}

#[tokio::test]
async fn a_panic_in_a_spawned_task_is_caught_counted_and_the_host_keeps_serving() {
    let t = TestHost::builder().extension(Spawner).start().await.expect("host starts");
    let mut stats = t.host().stats("spawner").expect("stats");
    for _ in 0..100 {
        if stats.task_panics == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
        stats = t.host().stats("spawner").expect("stats");
    }
    assert_eq!(stats.task_panics, 1);
    assert_eq!(stats.tasks_spawned, 2);
    assert_eq!(t.host().state("spawner"), Some(ExtensionState::Running));
    assert_eq!(t.get("/ready").await.status(), 200);
    t.shutdown().await;
}

#[tokio::test]
async fn context_config_comes_from_the_config_file() {
    struct Configured;
    #[annex_core::async_trait]
    impl Extension for Configured {
        fn metadata(&self) -> Metadata {
            Metadata::new("configured", "1.0.0")
        }
        fn register(&self, r: &mut annex_core::Registrar) {
            r.get("/greeting", |cx: Context| async move {
                #[derive(serde::Deserialize)]
                struct Settings {
                    greeting: String,
                }
                match cx.config_as::<Settings>() {
                    Ok(s) => s.greeting,
                    Err(e) => e.to_string(),
                }
            });
        }
    }
    let t = TestHost::builder()
        .extension(Configured)
        .config(|c| {
            c.extensions.entry("configured".into()).or_default().config =
                Some(serde_json::json!({ "greeting": "hi" }))
        })
        .start()
        .await
        .expect("starts");
    assert_eq!(t.get("/ext/configured/greeting").await.text().await.expect("text"), "hi");
    t.shutdown().await;
}

#[tokio::test]
async fn a_config_file_value_that_breaks_the_schema_fails_only_that_extension() {
    struct Strict;
    #[annex_core::async_trait]
    impl Extension for Strict {
        fn metadata(&self) -> Metadata {
            Metadata::new("strict", "1.0.0")
        }
        fn config_schema(&self) -> Option<serde_json::Value> {
            Some(serde_json::json!({
                "type": "object",
                "properties": { "greeting": { "type": "string" } },
                "required": ["greeting"]
            }))
        }
    }
    let journal = Journal::default();
    let t = TestHost::builder()
        .extension(Strict)
        .extension(Probe::new("bystander", &journal))
        .config(|c| {
            c.extensions.entry("strict".into()).or_default().config =
                Some(serde_json::json!({ "greeting": 5 }))
        })
        .start()
        .await
        .expect("host starts");
    match t.host().state("strict") {
        Some(ExtensionState::Failed(reason)) => {
            assert!(reason.contains("[extensions.strict] config") && reason.contains("/greeting"), "{reason}")
        }
        other => panic!("strict should have failed, is {other:?}"),
    }
    assert_eq!(t.host().state("bystander"), Some(ExtensionState::Running));
    t.shutdown().await;
}
