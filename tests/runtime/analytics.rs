//! The analytics extension over real HTTP and a real database: page views of another extension
//! are counted exactly, stats bucket and classify them, custom events are validated, the
//! dashboard renders, and a slow or failing database never holds up a response.
#![cfg(feature = "ext-analytics")]

use std::sync::Arc;
use std::time::Duration;

use crate::scripted::{Scripted, grant};
use annex_core::testkit::TestHost;
use annex_core::{Context, Extension, HealthStatus};
use annex_ext_analytics::{Analytics, RecorderFigures};
use axum::extract::Path;
use axum::http::StatusCode;
use serde_json::{Value, json};

const TOKEN: &str = "analytics-test-admin-token";

/// The tiny extension whose traffic is recorded.
fn shop() -> Scripted {
    Scripted::new("shop", |r| {
        r.get("/items/{id}", |Path(id): Path<u32>| async move { format!("item {id}") });
        r.get("/missing", || async { StatusCode::NOT_FOUND });
        r.get("/boom", || async { StatusCode::INTERNAL_SERVER_ERROR });
        r.get("/moved", || async { StatusCode::FOUND });
    })
}

async fn start(analytics: &Arc<Analytics>, config: Value) -> TestHost {
    let ext: Arc<dyn Extension> = analytics.clone();
    TestHost::builder()
        .extension(shop())
        .extensions(vec![ext])
        .config(move |c| {
            grant(c, "analytics", &["database", "hooks:global"]);
            c.extensions.entry("analytics".into()).or_default().config = Some(config);
            c.server.admin_token = Some(TOKEN.into());
        })
        .start()
        .await
        .expect("host starts")
}

async fn stats(t: &TestHost, query: &str) -> Value {
    let res = t.get(&format!("/ext/analytics/stats{query}")).await;
    assert_eq!(res.status(), 200, "stats{query}");
    res.json().await.expect("stats JSON")
}

/// Waits (generously) until `done` holds for the recorder's figures.
async fn wait_for(
    analytics: &Analytics,
    what: &str,
    done: impl Fn(&RecorderFigures) -> bool,
) -> RecorderFigures {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        let figures = analytics.figures();
        if done(&figures) {
            return figures;
        }
        assert!(tokio::time::Instant::now() < deadline, "timed out waiting for {what}: {figures:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn superuser(t: &TestHost) -> sqlx::PgPool {
    sqlx::PgPool::connect(t.database_url()).await.expect("connect as the test superuser")
}

#[tokio::test]
async fn views_of_another_extensions_routes_are_counted_exactly_by_route_template_and_status() {
    let analytics = Arc::new(Analytics::default());
    let t = start(&analytics, json!({ "flush_interval_ms": 20 })).await;
    for id in 1..=5 {
        assert_eq!(t.get(&format!("/ext/shop/items/{id}")).await.status(), 200);
    }
    for _ in 0..2 {
        assert_eq!(t.get("/ext/shop/missing").await.status(), 404);
    }
    assert_eq!(t.get("/ext/shop/boom").await.status(), 500);
    for _ in 0..3 {
        assert_eq!(t.get("/ext/shop/moved").await.status(), 302);
    }
    let firefox = t
        .client()
        .get(t.url("/ext/shop/items/9"))
        .header("user-agent", "Mozilla/5.0 (X11; Linux x86_64; rv:125.0) Gecko/20100101 Firefox/125.0")
        .header("referer", "https://example.com/landing?token=secret#top")
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(firefox.status(), 200);
    // Not recorded: host endpoints never reach hooks, and analytics' own routes are excluded.
    assert_eq!(t.get("/health").await.status(), 200);

    wait_for(&analytics, "12 views written", |f| f.inserted >= 12).await;
    let s = stats(&t, "").await;
    assert_eq!(s["total_views"], 12, "{s:#}");
    assert_eq!(s["status"], json!({ "2xx": 6, "3xx": 3, "4xx": 2, "5xx": 1 }));
    assert_eq!(s["top_paths"][0]["route"], "/ext/shop/items/{id}");
    assert_eq!(s["top_paths"][0]["views"], 6);
    let routes: Vec<(&str, i64)> = s["top_paths"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p["route"].as_str().unwrap(), p["views"].as_i64().unwrap()))
        .collect();
    assert_eq!(
        routes,
        [
            ("/ext/shop/items/{id}", 6),
            ("/ext/shop/moved", 3),
            ("/ext/shop/missing", 2),
            ("/ext/shop/boom", 1)
        ]
    );
    assert_eq!(s["agents"], json!([{ "agent": "other", "views": 11 }, { "agent": "firefox", "views": 1 }]));
    let buckets = s["views"].as_array().unwrap();
    // The last 24 hours by hour: 25 buckets with both partial ends, 24 when now is on the hour.
    assert!((24..=25).contains(&buckets.len()), "{} buckets", buckets.len());
    assert_eq!(buckets.iter().map(|b| b["views"].as_i64().unwrap()).sum::<i64>(), 12);
    assert_eq!(s["recorder"], json!({ "buffered": 0, "inserted": 12, "dropped": 0, "failed": 0 }));

    let db = superuser(&t).await;
    let (method, referrer, agent, identity): (String, Option<String>, String, Option<String>) =
        sqlx::query_as(
            "select method, referrer, agent, identity from ext_analytics.page_views where agent = 'firefox'",
        )
        .fetch_one(&db)
        .await
        .unwrap();
    assert_eq!(method, "GET");
    assert_eq!(referrer.as_deref(), Some("https://example.com/landing"), "query and fragment removed");
    assert_eq!((agent.as_str(), identity.as_deref()), ("firefox", Some("admin")));
    // Polling /stats above added nothing: still exactly 12.
    let n: i64 =
        sqlx::query_scalar("select count(*) from ext_analytics.page_views").fetch_one(&db).await.unwrap();
    assert_eq!(n, 12);
    t.shutdown().await;
}

#[tokio::test]
async fn stats_buckets_include_empty_ones_and_the_status_mix_follows_the_window() {
    let analytics = Arc::new(Analytics::default());
    let t = start(&analytics, json!({})).await;
    let db = superuser(&t).await;
    sqlx::query(
        "insert into ext_analytics.page_views (occurred_at, extension, route, method, status, duration_us, agent)
         values ('2024-05-01 00:10Z', 'shop', '/ext/shop/a', 'GET', 200, 1000, 'curl'),
                ('2024-05-01 00:50Z', 'shop', '/ext/shop/a', 'GET', 201, 3000, 'curl'),
                ('2024-05-01 02:59:59Z', 'shop', '/ext/shop/b', 'POST', 404, 500, 'chrome'),
                ('2024-05-02 12:00Z', 'shop', '/ext/shop/b', 'GET', 503, 500, 'bot'),
                ('2024-05-04 00:00Z', 'shop', '/ext/shop/c', 'GET', 301, 500, 'bot')",
    )
    .execute(&db)
    .await
    .unwrap();

    let hours = stats(&t, "?from=2024-05-01&to=2024-05-01T04:00:00Z&bucket=hour").await;
    let series: Vec<(String, i64)> = hours["views"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| (b["start"].as_str().unwrap().to_owned(), b["views"].as_i64().unwrap()))
        .collect();
    assert_eq!(
        series,
        [
            ("2024-05-01T00:00:00Z".to_owned(), 2),
            ("2024-05-01T01:00:00Z".to_owned(), 0),
            ("2024-05-01T02:00:00Z".to_owned(), 1),
            ("2024-05-01T03:00:00Z".to_owned(), 0),
        ]
    );
    assert_eq!(hours["status"], json!({ "2xx": 2, "3xx": 0, "4xx": 1, "5xx": 0 }));
    assert_eq!(hours["top_paths"][0], json!({ "route": "/ext/shop/a", "views": 2, "avg_ms": 2.0 }));

    // `to` is exclusive: the view at 2024-05-04 00:00 is outside.
    let days = stats(&t, "?from=2024-05-01&to=2024-05-04&bucket=day").await;
    let per_day: Vec<i64> =
        days["views"].as_array().unwrap().iter().map(|b| b["views"].as_i64().unwrap()).collect();
    assert_eq!(per_day, [3, 1, 0]);
    assert_eq!(days["views"][2]["start"], "2024-05-03T00:00:00Z");
    assert_eq!(days["total_views"], 4);
    assert_eq!(days["status"], json!({ "2xx": 2, "3xx": 0, "4xx": 1, "5xx": 1 }));
    t.shutdown().await;
}

#[tokio::test]
async fn stats_answers_400_naming_the_bad_parameter() {
    let analytics = Arc::new(Analytics::default());
    let t = start(&analytics, json!({})).await;
    for (query, needle) in [
        ("?bucket=week", "`bucket`"),
        ("?from=yesterday", "`from`"),
        ("?from=2024-05-02&to=2024-05-01", "before"),
        ("?from=2000-01-01&to=2024-01-01&bucket=hour", "bucket=day"),
        ("?form=2024-01-01", "unknown parameter `form`"),
    ] {
        for page in ["stats", "dashboard"] {
            let res = t.get(&format!("/ext/analytics/{page}{query}")).await;
            assert_eq!(res.status(), 400, "{page}{query}");
            let body: Value = res.json().await.unwrap();
            assert_eq!(body["error"]["code"], "bad_request");
            let message = body["error"]["message"].as_str().unwrap();
            assert!(message.contains(needle), "{needle} not in {message}");
        }
    }
    t.shutdown().await;
}

#[tokio::test]
async fn track_validates_events_and_stats_counts_them() {
    let analytics = Arc::new(Analytics::default());
    let t = start(&analytics, json!({})).await;
    let post = |body: &'static str| {
        t.client()
            .post(t.url("/ext/analytics/track"))
            .header("content-type", "application/json")
            .body(body)
            .send()
    };
    for (body, needle) in [
        ("{", "not JSON"),
        (r#"{"properties":{}}"#, "`name` is required"),
        (r#"{"name":"<b>x</b>"}"#, "contains `<`"),
        (r#"{"name":"ok","properties":"no"}"#, "`properties` must be a JSON object"),
    ] {
        let res = post(body).await.unwrap();
        assert_eq!(res.status(), 422, "{body}");
        let err: Value = res.json().await.unwrap();
        assert_eq!(err["error"]["code"], "invalid_event");
        assert!(err["error"]["message"].as_str().unwrap().contains(needle), "{err}");
    }
    for body in [
        r#"{"name":"signup","properties":{"plan":"pro"}}"#,
        r#"{"name":"signup"}"#,
        r#"{"name":"cart.checkout"}"#,
    ] {
        let res = post(body).await.unwrap();
        assert_eq!(res.status(), 201, "{body}");
        let created: Value = res.json().await.unwrap();
        assert!(created["id"].as_i64().is_some() && created["occurred_at"].is_string(), "{created}");
    }
    let s = stats(&t, "").await;
    assert_eq!(
        s["events"],
        json!([{ "name": "signup", "count": 2 }, { "name": "cart.checkout", "count": 1 }])
    );
    assert_eq!(s["total_views"], 0, "analytics' own routes are not page views");
    t.shutdown().await;
}

#[tokio::test]
async fn the_dashboard_renders_the_chart_top_paths_and_status_mix() {
    let analytics = Arc::new(Analytics::default());
    let t = start(&analytics, json!({ "flush_interval_ms": 20 })).await;
    for id in 1..=3 {
        t.get(&format!("/ext/shop/items/{id}")).await;
    }
    t.get("/ext/shop/missing").await;
    let res = t.client().post(t.url("/ext/analytics/track")).body(r#"{"name":"a<b"}"#).send().await.unwrap();
    assert_eq!(res.status(), 422, "names with markup are refused before they reach the page");
    wait_for(&analytics, "4 views written", |f| f.inserted >= 4).await;

    let res = t.get("/ext/analytics/dashboard").await;
    assert_eq!(res.status(), 200);
    assert!(res.headers()["content-type"].to_str().unwrap().starts_with("text/html"));
    let page = res.text().await.unwrap();
    assert!(page.contains("<svg") && page.contains("Page views</text>"), "an SVG chart with a y-axis title");
    assert!(page.contains("<code>/ext/shop/items/{id}</code>"), "the top path");
    assert!(page.contains("<code>/ext/shop/missing</code>"));
    assert!(page.contains(
        "<td><span class=\"swatch\" style=\"background:#2e9e5b\"></span>2xx</td><td class=\"n\">3</td>"
    ));
    assert!(page.contains(
        "<td><span class=\"swatch\" style=\"background:#e0a100\"></span>4xx</td><td class=\"n\">1</td>"
    ));
    assert!(!page.contains("<script"), "no scripts");
    t.shutdown().await;
}

#[tokio::test]
async fn a_blocked_database_never_holds_up_responses_and_a_full_buffer_drops_and_counts() {
    let analytics = Arc::new(Analytics::default());
    // Only a full batch wakes the writer; the interval never fires during the test.
    let t = start(&analytics, json!({ "flush_interval_ms": 600000, "batch_size": 2, "buffer_capacity": 5 }))
        .await;
    let db = superuser(&t).await;
    // Hold an exclusive lock: the writer's INSERT waits for as long as the test wants.
    let mut lock = db.begin().await.unwrap();
    sqlx::query("lock table ext_analytics.page_views in access exclusive mode")
        .execute(&mut *lock)
        .await
        .unwrap();

    // Every request is answered while the writer is stuck: the hook only buffers.
    for id in 0..20 {
        assert_eq!(t.get(&format!("/ext/shop/items/{id}")).await.status(), 200);
    }
    // 2 views are in the stuck INSERT, 5 fill the buffer, the other 13 are dropped and counted.
    let stuck = wait_for(&analytics, "all 20 views accounted for", |f| f.buffered + f.dropped == 18).await;
    assert_eq!(stuck, RecorderFigures { buffered: 5, inserted: 0, dropped: 13, failed: 0 });

    lock.rollback().await.unwrap();
    let after = wait_for(&analytics, "the backlog written", |f| f.inserted == 7).await;
    assert_eq!(after, RecorderFigures { buffered: 0, inserted: 7, dropped: 13, failed: 0 });
    assert_eq!(stats(&t, "").await["total_views"], 7);
    t.shutdown().await;
}

#[tokio::test]
async fn a_failing_insert_is_counted_and_degrades_health_while_requests_succeed() {
    let analytics = Arc::new(Analytics::default());
    let t = start(&analytics, json!({ "flush_interval_ms": 20 })).await;
    let db = superuser(&t).await;
    sqlx::query("alter table ext_analytics.page_views add constraint refuse_rows check (false) not valid")
        .execute(&db)
        .await
        .unwrap();
    for id in 0..4 {
        assert_eq!(t.get(&format!("/ext/shop/items/{id}")).await.status(), 200);
    }
    let failed = wait_for(&analytics, "4 failed views", |f| f.failed == 4).await;
    assert_eq!((failed.inserted, failed.buffered), (0, 0));
    // health() reads only the recorder, so any context will do.
    let health = analytics.health(&Context::new_test("analytics")).await;
    assert_eq!(health.status, HealthStatus::Degraded, "{health:?}");
    t.shutdown().await;
}

#[tokio::test]
async fn stopping_the_extension_writes_what_is_still_buffered() {
    let analytics = Arc::new(Analytics::default());
    let t = start(&analytics, json!({ "flush_interval_ms": 600000, "batch_size": 10000 })).await;
    for id in 0..3 {
        t.get(&format!("/ext/shop/items/{id}")).await;
    }
    wait_for(&analytics, "3 views buffered", |f| f.buffered == 3).await;
    t.host().disable("analytics", false).await.unwrap();
    assert_eq!(analytics.figures(), RecorderFigures { buffered: 0, inserted: 3, dropped: 0, failed: 0 });
    let n: i64 = sqlx::query_scalar("select count(*) from ext_analytics.page_views")
        .fetch_one(&superuser(&t).await)
        .await
        .unwrap();
    assert_eq!(n, 3);
    assert_eq!(t.host().enable("analytics").await.unwrap().state.as_deref(), Some("running"));
    t.shutdown().await;
}
