//! `/metrics`: parsed with a real Prometheus text parser.

use std::collections::HashMap;

use openmetrics_parser::{MetricsExposition, PrometheusType, PrometheusValue, prometheus::parse_prometheus};

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
