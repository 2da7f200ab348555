//! Health checks: history, auto-disable after N failures, audit, event, re-enable by operator.

use std::sync::atomic::Ordering;
use std::time::Duration;

use reqwest::Method;
use sqlx::Connection;

use crate::support::{Base, admin, body, eventually, host};

#[tokio::test(flavor = "multi_thread")]
async fn an_extension_failing_its_health_checks_is_disabled_audited_and_re_enabled_by_an_operator() {
    let base = Base::default();
    let probe = base.probe.clone();
    let t = host(base, None).await;

    // Healthy checks are kept as history.
    let healthy = eventually(Duration::from_secs(5), || async {
        let h = body(admin(&t, Method::GET, "/api/v1/extensions/base/health").send().await.unwrap()).await;
        h["status"] == "healthy" && h["history"].as_array().is_some_and(|a| !a.is_empty())
    })
    .await;
    assert!(healthy.is_some(), "health history recorded");

    probe.unhealthy.store(true, Ordering::SeqCst);
    let disabled =
        eventually(Duration::from_secs(10), || async { t.get("/ext/base/items/1").await.status() == 503 })
            .await;
    assert!(disabled.is_some(), "auto-disabled after 3 failed checks");
    let res = t.get("/ext/base/items/1").await;
    assert_eq!(body(res).await["error"]["code"], "extension_disabled");
    // Its dependent went with it, and stop() was called.
    assert_eq!(t.get("/ext/dependent/ping").await.status(), 503);
    let stopped =
        eventually(Duration::from_secs(5), || async { probe.stops.load(Ordering::SeqCst) == 1 }).await;
    assert!(stopped.is_some(), "stop() was called once");

    let mut db = sqlx::PgConnection::connect(t.database_url()).await.unwrap();
    let audited = eventually(Duration::from_secs(5), || async {
        let url = t.database_url().to_owned();
        let mut c = sqlx::PgConnection::connect(&url).await.unwrap();
        sqlx::query("select 1 from annex.audit_log where action = 'extension.unhealthy'")
            .fetch_optional(&mut c)
            .await
            .unwrap()
            .is_some()
    })
    .await;
    assert!(audited.is_some(), "the auto-disable is audited");
    let (action, reason): (String, String) = sqlx::query_as(
        "select action, details->>'reason' from annex.audit_log where target = 'base' and action = 'extension.unhealthy'",
    )
    .fetch_one(&mut db)
    .await
    .expect("audit entry for the auto-disable");
    assert_eq!(action, "extension.unhealthy");
    assert!(reason.contains("3 consecutive failed health checks"), "{reason}");
    let (enabled, last_error): (bool, Option<String>) =
        sqlx::query_as("select enabled, last_error from annex.extensions where name = 'base'")
            .fetch_one(&mut db)
            .await
            .unwrap();
    assert!(!enabled);
    assert!(last_error.unwrap_or_default().contains("health monitor"));
    let h = body(admin(&t, Method::GET, "/api/v1/extensions/base/health").send().await.unwrap()).await;
    assert_eq!(h["status"], "down");

    // The operator fixes it and enables it again.
    probe.unhealthy.store(false, Ordering::SeqCst);
    let res = admin(&t, Method::POST, "/api/v1/extensions/base/enable").send().await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(t.get("/ext/base/items/1").await.status(), 200);
    // Instead of waiting a while: wait until as many checks as the failure threshold (3) ran
    // after the enable (the newest entries of the history, up to the last `down`), and all
    // passed; the old failures did not count towards a new disable.
    let fresh = eventually(Duration::from_secs(10), || async {
        let h = body(admin(&t, Method::GET, "/api/v1/extensions/base/health").send().await.unwrap()).await;
        let history = h["history"].as_array().cloned().unwrap_or_default();
        history.iter().take_while(|c| c["status"] != "down").count() >= 3
    })
    .await;
    assert!(fresh.is_some(), "three health checks after the enable");
    assert_eq!(t.get("/ext/base/items/1").await.status(), 200, "fresh start: old failures forgotten");
    t.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn panics_within_the_window_disable_an_extension() {
    let t = annex_core::testkit::TestHost::builder()
        .extension(Base::default())
        .config(|c| {
            c.server.admin_token = Some(crate::support::TOKEN.into());
            c.health.interval_ms = 100;
            c.health.panic_threshold = 3;
            c.health.panic_window_ms = 60_000;
        })
        .start()
        .await
        .expect("host starts");
    for _ in 0..3 {
        assert_eq!(t.get("/ext/base/boom").await.status(), 500);
    }
    let disabled =
        eventually(Duration::from_secs(5), || async { t.get("/ext/base/items/1").await.status() == 503 })
            .await;
    assert!(disabled.is_some(), "disabled after 3 panics");
    // The audit entry follows the disable.
    let query = || async {
        body(
            admin(&t, Method::GET, "/api/v1/audit?target=base&action=extension.unhealthy")
                .send()
                .await
                .unwrap(),
        )
        .await
    };
    eventually(Duration::from_secs(5), || async { !query().await["entries"].as_array().unwrap().is_empty() })
        .await;
    let audit = query().await;
    let reason = audit["entries"][0]["details"]["reason"].as_str().unwrap_or_default().to_owned();
    assert!(reason.contains("3 panics"), "{audit}");
    t.shutdown().await;
}
