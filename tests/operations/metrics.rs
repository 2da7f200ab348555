//! `/metrics`: parsed with a real Prometheus text parser.

use std::collections::HashMap;

use openmetrics_parser::{MetricsExposition, PrometheusType, PrometheusValue, prometheus::parse_prometheus};

use serde_json::json;

use crate::support::{Base, host};

type Exposition = MetricsExposition<PrometheusType, PrometheusValue>;

fn parse(text: &str) -> Exposition {
    parse_prometheus(text).expect("valid Prometheus text format")
}

/// The value of the one sample of `name` whose labels include `labels` (histograms: count).
fn value(scrape: &Exposition, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let family = scrape.families.get(name)?;
    family
        .iter_samples()
        .find(|s| {
            let set = s.get_labelset().expect("labels");
            labels.iter().all(|(k, v)| set.get_label_value(k) == Some(*v))
        })
        .map(|s| match &s.value {
            PrometheusValue::Counter(c) => c.value.as_f64(),
            PrometheusValue::Gauge(n) | PrometheusValue::Unknown(n) => n.as_f64(),
            PrometheusValue::Histogram(h) => h.count.map(|c| c as f64).unwrap_or(f64::NAN),
            PrometheusValue::Summary(_) => f64::NAN,
        })
}

fn label_values(scrape: &Exposition, name: &str, label: &str) -> Vec<String> {
    scrape.families.get(name).map_or(Vec::new(), |f| {
        f.iter_samples()
            .filter_map(|s| s.get_labelset().ok()?.get_label_value(label).map(str::to_owned))
            .collect()
    })
}

#[tokio::test(flavor = "multi_thread")]
async fn metrics_parse_and_carry_every_fixed_name_after_traffic() {
    let t = host(Base::default(), None).await;
    for id in [1, 2, 3] {
        assert_eq!(t.get(&format!("/ext/base/items/{id}")).await.status(), 200);
    }
    assert_eq!(t.get("/ext/base/items/x").await.status(), 400);
    assert_eq!(t.get("/ext/dependent/ping").await.status(), 200);

    let res = t.get("/metrics").await;
    assert_eq!(res.status(), 200);
    assert!(res.headers()["content-type"].to_str().unwrap().starts_with("text/plain"));
    let scrape = parse(&res.text().await.unwrap());
    let names: std::collections::BTreeSet<&str> = scrape.families.keys().map(String::as_str).collect();
    for name in [
        "extension_requests_total",
        "extension_request_duration_seconds",
        "extension_errors_total",
        "extensions_active_total",
        "extension_health_status",
        "extension_resource_usage",
        "annex_build_info",
        "process_cpu_seconds_total",
        "process_resident_memory_bytes",
    ] {
        assert!(names.contains(name), "{name} missing from /metrics: {names:?}");
    }
    // The hook families appear with the first hook call; core's unit test covers them.

    // Route templates, never raw paths.
    let ok = value(
        &scrape,
        "extension_requests_total",
        &[("extension", "base"), ("route", "/ext/base/items/{id}"), ("method", "GET"), ("status", "200")],
    );
    assert_eq!(ok, Some(3.0));
    let bad =
        value(&scrape, "extension_requests_total", &[("route", "/ext/base/items/{id}"), ("status", "400")]);
    assert_eq!(bad, Some(1.0));
    assert!(
        !label_values(&scrape, "extension_requests_total", "route").iter().any(|r| r.contains("/items/1"))
    );
    assert_eq!(value(&scrape, "extensions_active_total", &[]), Some(2.0));
    assert_eq!(value(&scrape, "annex_build_info", &[("version", env!("CARGO_PKG_VERSION"))]), Some(1.0));
    let resources: HashMap<String, f64> = label_values(&scrape, "extension_resource_usage", "resource")
        .into_iter()
        .filter_map(|r| {
            Some((
                r.clone(),
                value(&scrape, "extension_resource_usage", &[("extension", "base"), ("resource", &r)])?,
            ))
        })
        .collect();
    for r in ["in_flight_requests", "background_tasks", "busy_seconds", "db_connections", "storage_bytes"] {
        assert!(resources.contains_key(r), "resource {r} missing: {resources:?}");
    }
    assert_eq!(resources["in_flight_requests"], 0.0);
    assert!(resources["busy_seconds"] > 0.0, "handler polls were timed");
    t.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_handler_panic_counts_as_a_panic_error_and_a_500() {
    let t = host(Base::default(), None).await;
    let res = t.get("/ext/base/boom").await;
    assert_eq!(res.status(), 500);
    let scrape = parse(&t.get("/metrics").await.text().await.unwrap());
    assert_eq!(
        value(&scrape, "extension_errors_total", &[("extension", "base"), ("type", "panic")]),
        Some(1.0)
    );
    assert_eq!(
        value(&scrape, "extension_errors_total", &[("extension", "base"), ("type", "handler")]),
        Some(0.0)
    );
    let counted =
        value(&scrape, "extension_requests_total", &[("route", "/ext/base/boom"), ("status", "500")]);
    assert_eq!(counted, Some(1.0));
    t.shutdown().await;
}

/// `gauges`: reports its own gauge, and a durable subscriber that refuses events until told.
#[derive(Clone, Default)]
struct Gauges {
    acknowledge: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

#[annex_core::async_trait]
impl annex_core::Extension for Gauges {
    fn metadata(&self) -> annex_core::Metadata {
        annex_core::Metadata::new("gauges", "1.0.0").description("reports gauges")
    }
    fn register(&self, r: &mut annex_core::Registrar) {
        r.get(
            "/set/{name}/{value}",
            |cx: annex_core::Context,
             axum::extract::Path((name, value)): axum::extract::Path<(String, f64)>| async move {
                match cx.set_gauge(&name, value) {
                    Ok(()) => (axum::http::StatusCode::OK, String::new()),
                    Err(e) => (axum::http::StatusCode::UNPROCESSABLE_ENTITY, e.to_string()),
                }
            },
        );
        let acknowledge = self.acknowledge.clone();
        r.subscribe_durable("extension.*", move |_cx, _event| {
            let acknowledge = acknowledge.clone();
            async move {
                if acknowledge.load(std::sync::atomic::Ordering::SeqCst) {
                    Ok(())
                } else {
                    Err("not yet".to_owned())
                }
            }
        });
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn an_extension_reports_gauges_and_the_outbox_backlog_of_a_durable_subscriber_is_exported() {
    let probe = Gauges::default();
    let t = annex_core::testkit::TestHost::builder()
        .extension(Base::default())
        .extension(probe.clone())
        .config(|c| {
            c.server.admin_token = Some(crate::support::TOKEN.into());
            c.extensions.entry("gauges".into()).or_default().permissions = vec!["events:subscribe".into()];
        })
        .start()
        .await
        .expect("host starts");
    assert_eq!(t.get("/ext/gauges/set/queue_depth/7.5").await.status(), 200);
    for bad in ["Bad-Name", "9lives", "x".repeat(65).as_str()] {
        let res = t.get(&format!("/ext/gauges/set/{bad}/1")).await;
        assert_eq!(res.status(), 422, "{bad}");
        assert!(res.text().await.unwrap().contains("is invalid"), "{bad}");
    }
    let res = t.get("/ext/gauges/set/nan_gauge/NaN").await;
    assert_eq!(res.status(), 422);
    assert!(res.text().await.unwrap().contains("not a finite number"));
    for i in 1..32 {
        assert_eq!(t.get(&format!("/ext/gauges/set/g{i}/1")).await.status(), 200, "gauge {i}");
    }
    let res = t.get("/ext/gauges/set/one_too_many/1").await;
    assert_eq!(res.status(), 422);
    assert!(res.text().await.unwrap().contains("32 gauges"));
    assert_eq!(t.get("/ext/gauges/set/queue_depth/3").await.status(), 200, "an existing name may change");

    // A state change while the subscriber refuses: its backlog is exported, then drains.
    let res = crate::support::admin(&t, reqwest::Method::PUT, "/api/v1/extensions/base/config")
        .json(&json!({ "greeting": "backlog" }))
        .send()
        .await
        .expect("config put");
    let status = res.status();
    assert_eq!(status, 200, "{}", res.text().await.unwrap_or_default());
    let backlog = |scrape: &Exposition| {
        value(scrape, "annex_outbox_backlog_events", &[("consumer", "gauges/extension.*")])
    };
    let behind = crate::support::eventually(std::time::Duration::from_secs(10), || async {
        let scrape = parse(&t.get("/metrics").await.text().await.unwrap());
        backlog(&scrape).is_some_and(|n| n >= 1.0)
    })
    .await;
    assert!(behind.is_some(), "the refused event shows as backlog");
    let scrape = parse(&t.get("/metrics").await.text().await.unwrap());
    assert_eq!(
        value(&scrape, "extension_gauge", &[("extension", "gauges"), ("name", "queue_depth")]),
        Some(3.0)
    );
    assert_eq!(label_values(&scrape, "extension_gauge", "name").len(), 32, "no refused gauge is exported");

    probe.acknowledge.store(true, std::sync::atomic::Ordering::SeqCst);
    let drained = crate::support::eventually(std::time::Duration::from_secs(10), || async {
        let scrape = parse(&t.get("/metrics").await.text().await.unwrap());
        backlog(&scrape) == Some(0.0)
    })
    .await;
    assert!(drained.is_some(), "the backlog drains once the subscriber acknowledges");
    t.shutdown().await;
}
