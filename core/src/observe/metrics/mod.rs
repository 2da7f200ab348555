//! Prometheus metrics: a private registry with the names fixed in DESIGN.md, rendered as text at
//! `/metrics`, and per-extension handles resolved once so the request path never looks labels up.
//!
//! How the request path stays cheap: when the host starts, [`Metrics::new`] creates one
//! [`ExtensionMetrics`] per extension holding, for every declared route template and method, the
//! duration [`Histogram`](prometheus::Histogram) and a table of lazily resolved request counters
//! by status code (the first request with a given status resolves its label set once; every later
//! one is an atomic load and an atomic add). The router's per-extension middleware finds its
//! route's handles with one hash lookup of the matched route template (axum's `MatchedPath`) —
//! no label hashing, no registry lock. Error counters by type and resource gauges are resolved at
//! start too. Resource gauges are refreshed when `/metrics` is rendered, not on every request.

mod extension;
mod pipeline;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use axum::http::Method;
use prometheus::proto::MetricType;
use prometheus::{
    Encoder, GaugeVec, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry,
    TextEncoder,
};
use serde_json::{Value, json};

pub(crate) use extension::{ErrorType, ExtensionMetrics, RequestMeter, Resource};
pub(crate) use pipeline::{CallOutcome, PipelineFamilies, PipelineHandles, RunOutcome, StageHandles};

/// Request duration buckets, in seconds: 1 ms to 10 s.
const DURATION_BUCKETS: &[f64] =
    &[0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];
/// Hook duration buckets, in seconds: 100 µs to 1 s (hooks run on the request path).
const HOOK_BUCKETS: &[f64] = &[0.0001, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.1, 0.25, 1.0];

/// The metric families, shared by every extension's handles.
#[derive(Clone)]
pub(crate) struct Families {
    pub(crate) requests: IntCounterVec,
    pub(crate) duration: HistogramVec,
    pub(crate) errors: IntCounterVec,
    pub(crate) active: IntGauge,
    pub(crate) health: GaugeVec,
    pub(crate) resources: GaugeVec,
    pub(crate) hooks: IntCounterVec,
    pub(crate) hook_duration: HistogramVec,
    /// `extension_gauge{extension,name}`: the figures an extension reports itself
    /// ([`Context::set_gauge`](crate::Context::set_gauge)), copied in before each render.
    pub(crate) gauges: GaugeVec,
    /// `annex_outbox_backlog_events{consumer}`: outbox rows a durable subscriber has not yet
    /// acknowledged, set by the outbox relay after each pass.
    pub(crate) outbox_backlog: IntGaugeVec,
    pub(crate) pipelines: PipelineFamilies,
}

/// The host's metrics: its private registry and every extension's pre-resolved handles.
pub(crate) struct Metrics {
    registry: Registry,
    families: Families,
    extensions: BTreeMap<String, Arc<ExtensionMetrics>>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").field("extensions", &self.extensions.len()).finish_non_exhaustive()
    }
}

/// One hook's or middleware's counters: calls, duration, and `extension_errors_total{type="hook"}`
/// of its owner.
#[derive(Debug, Clone)]
pub(crate) struct HookHandles {
    calls: prometheus::IntCounter,
    duration: prometheus::Histogram,
    errors: prometheus::IntCounter,
}

impl HookHandles {
    /// Counts one call; `failed` (it panicked or timed out) also counts a hook error.
    pub(crate) fn record(&self, elapsed: Duration, failed: bool) {
        self.calls.inc();
        self.duration.observe(elapsed.as_secs_f64());
        if failed {
            self.errors.inc();
        }
    }
}

/// One extension's declared routes: (method, full route template such as `/ext/hello/items/{id}`).
#[cfg(feature = "bench")]
pub(crate) type RouteList = Vec<(Method, String)>;

impl Metrics {
    /// Creates the registry and resolves the handles of every extension and route.
    #[cfg(feature = "bench")]
    pub(crate) fn new<'a>(extensions: impl IntoIterator<Item = (&'a str, RouteList)>) -> Self {
        let mut metrics = Self::empty();
        for (name, routes) in extensions {
            metrics.register(name, &routes);
        }
        metrics
    }

    /// A registry with the families and no extension yet.
    pub(crate) fn empty() -> Self {
        let registry = Registry::new();
        let (families, _names) = Families::register(&registry);
        Self { registry, families, extensions: BTreeMap::new() }
    }

    /// Resolves the handles of one extension and its routes (`(method, full route template)`).
    pub(crate) fn register(&mut self, name: &str, routes: &[(Method, String)]) -> Arc<ExtensionMetrics> {
        let handles = Arc::new(ExtensionMetrics::new(name, routes, &self.families));
        self.extensions.insert(name.to_owned(), handles.clone());
        handles
    }

    /// One extension's handles.
    #[cfg(feature = "bench")]
    pub(crate) fn extension(&self, name: &str) -> Option<&Arc<ExtensionMetrics>> {
        self.extensions.get(name)
    }

    /// Pre-resolved handles for one hook or middleware of `extension`; `hook` is its label
    /// (`<point>:<id>`). Resolved once when the host starts, so a hook call is two atomic adds.
    pub(crate) fn hook_handles(&self, extension: &str, hook: &str) -> HookHandles {
        HookHandles {
            calls: self.families.hooks.with_label_values(&[extension, hook]),
            duration: self.families.hook_duration.with_label_values(&[extension, hook]),
            errors: self.families.errors.with_label_values(&[extension, ErrorType::Hook.as_str()]),
        }
    }

    /// Counts a request no route matched: `extension_requests_total{route="unmatched"}`, with
    /// `extension` empty unless the path named a known extension and the method `OTHER` unless
    /// it is a standard one, so clients cannot grow the label set.
    pub(crate) fn count_unmatched(&self, extension: &str, method: &Method, status: axum::http::StatusCode) {
        let method = match *method {
            Method::GET
            | Method::POST
            | Method::PUT
            | Method::PATCH
            | Method::DELETE
            | Method::HEAD
            | Method::OPTIONS => method.as_str(),
            _ => "OTHER",
        };
        self.families.requests.with_label_values(&[extension, method, "unmatched", status.as_str()]).inc();
    }

    /// `extension_gauge{extension,name}` = `value`. Called when metrics are rendered.
    pub(crate) fn set_extension_gauge(&self, extension: &str, name: &str, value: f64) {
        self.families.gauges.with_label_values(&[extension, name]).set(value);
    }

    /// `annex_outbox_backlog_events{consumer}` = `events`.
    pub(crate) fn set_outbox_backlog(&self, consumer: &str, events: i64) {
        self.families.outbox_backlog.with_label_values(&[consumer]).set(events);
    }

    /// The pipeline families (stages and pipelines resolve their handles from them).
    pub(crate) fn pipelines(&self) -> &PipelineFamilies {
        &self.families.pipelines
    }

    /// The names of the metric families annex exports (a family with no series yet included;
    /// histograms without their `_bucket`/`_sum`/`_count`).
    #[cfg(test)]
    pub(crate) fn family_names() -> Vec<String> {
        Families::register(&Registry::new()).1
    }

    /// `extensions_active_total`.
    pub(crate) fn set_active(&self, count: usize) {
        self.families.active.set(count as i64);
    }

    /// Renders every metric in the Prometheus text format (0.0.4).
    pub(crate) fn render(&self) -> String {
        let mut out = Vec::with_capacity(16 * 1024);
        if let Err(e) = TextEncoder::new().encode(&self.registry.gather(), &mut out) {
            tracing::error!(error = %e, "could not encode metrics");
        }
        String::from_utf8(out).unwrap_or_default()
    }

    /// One extension's figures as JSON: for each `extension_*` family, its series with their
    /// other labels and value (histograms: count and sum).
    pub(crate) fn extension_json(&self, name: &str) -> Value {
        let mut out = serde_json::Map::new();
        for family in self.registry.gather() {
            let mut series = Vec::new();
            for m in family.get_metric() {
                let labels = m.get_label();
                if !labels.iter().any(|l| l.name() == "extension" && l.value() == name) {
                    continue;
                }
                let mut entry: serde_json::Map<String, Value> = labels
                    .iter()
                    .filter(|l| l.name() != "extension")
                    .map(|l| (l.name().to_owned(), json!(l.value())))
                    .collect();
                match family.get_field_type() {
                    MetricType::COUNTER => {
                        entry.insert("value".into(), json!(m.get_counter().get_value()));
                    }
                    MetricType::GAUGE => {
                        entry.insert("value".into(), json!(m.get_gauge().get_value()));
                    }
                    MetricType::HISTOGRAM => {
                        let h = m.get_histogram();
                        entry.insert("count".into(), json!(h.get_sample_count()));
                        entry.insert("sum".into(), json!(h.get_sample_sum()));
                    }
                    _ => continue,
                }
                series.push(Value::Object(entry));
            }
            if !series.is_empty() {
                out.insert(family.name().to_owned(), Value::Array(series));
            }
        }
        Value::Object(out)
    }
}

impl Families {
    /// Registers every family in `registry`; also returns their names.
    fn register(registry: &Registry) -> (Self, Vec<String>) {
        let families = Families {
            requests: IntCounterVec::new(
                Opts::new("extension_requests_total", "Requests served by an extension's routes"),
                &["extension", "method", "route", "status"],
            )
            .expect("static metric definition"),
            duration: HistogramVec::new(
                HistogramOpts::new("extension_request_duration_seconds", "Time to answer a request")
                    .buckets(DURATION_BUCKETS.to_vec()),
                &["extension", "method", "route"],
            )
            .expect("static metric definition"),
            errors: IntCounterVec::new(
                Opts::new("extension_errors_total", "Errors by type: panic, timeout, handler, hook, …"),
                &["extension", "type"],
            )
            .expect("static metric definition"),
            active: IntGauge::new("extensions_active_total", "Extensions currently running")
                .expect("static metric definition"),
            health: GaugeVec::new(
                Opts::new("extension_health_status", "Last health check: 1 healthy, 0.5 degraded, 0 down"),
                &["extension"],
            )
            .expect("static metric definition"),
            resources: GaugeVec::new(
                Opts::new("extension_resource_usage", "Resources an extension uses, by resource"),
                &["extension", "resource"],
            )
            .expect("static metric definition"),
            hooks: IntCounterVec::new(
                Opts::new("extension_hooks_executed_total", "Hook calls"),
                &["extension", "hook"],
            )
            .expect("static metric definition"),
            hook_duration: HistogramVec::new(
                HistogramOpts::new("extension_hook_duration_seconds", "Time spent in a hook")
                    .buckets(HOOK_BUCKETS.to_vec()),
                &["extension", "hook"],
            )
            .expect("static metric definition"),
            gauges: GaugeVec::new(
                Opts::new("extension_gauge", "Figures an extension reports itself, by name"),
                &["extension", "name"],
            )
            .expect("static metric definition"),
            outbox_backlog: IntGaugeVec::new(
                Opts::new(
                    "annex_outbox_backlog_events",
                    "State-change events stored but not yet acknowledged by a durable subscriber",
                ),
                &["consumer"],
            )
            .expect("static metric definition"),
            pipelines: PipelineFamilies::new(),
        };
        let build_info = IntGaugeVec::new(
            Opts::new("annex_build_info", "The running annex version; always 1"),
            &["version"],
        )
        .expect("static metric definition");
        build_info.with_label_values(&[env!("CARGO_PKG_VERSION")]).set(1);
        let mut collectors: Vec<Box<dyn prometheus::core::Collector>> = vec![
            Box::new(families.requests.clone()),
            Box::new(families.duration.clone()),
            Box::new(families.errors.clone()),
            Box::new(families.active.clone()),
            Box::new(families.health.clone()),
            Box::new(families.resources.clone()),
            Box::new(families.hooks.clone()),
            Box::new(families.hook_duration.clone()),
            Box::new(families.gauges.clone()),
            Box::new(families.outbox_backlog.clone()),
            Box::new(build_info),
            Box::new(prometheus::process_collector::ProcessCollector::for_self()),
        ];
        collectors.extend(families.pipelines.collectors());
        let names = collectors.iter().flat_map(|c| c.desc()).map(|d| d.fq_name.clone()).collect();
        for c in collectors {
            // Names are static and distinct, and the registry is fresh: this cannot fail.
            if let Err(e) = registry.register(c) {
                tracing::error!(error = %e, "could not register a metric");
            }
        }
        (families, names)
    }
}

#[cfg(test)]
mod dashboard_tests;

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use axum::http::Method;
    use openmetrics_parser::prometheus::parse_prometheus;

    use super::Metrics;

    #[test]
    fn hook_calls_errors_and_resources_render_under_their_fixed_names() {
        let metrics = Metrics::new([("shop", vec![(Method::GET, "/ext/shop/items/{id}".to_owned())])]);
        metrics.hook_handles("shop", "pre_request:log").record(Duration::from_millis(2), true);
        let shop = metrics.extension("shop").expect("shop");
        shop.error(super::ErrorType::RateLimited);
        shop.error(super::ErrorType::QuotaExceeded);
        shop.set_resource(super::Resource::DbConnections, 3.0);
        let parsed = parse_prometheus(&metrics.render()).expect("valid text format");
        for name in [
            "extension_hooks_executed_total",
            "extension_hook_duration_seconds",
            "extension_errors_total",
            "extension_resource_usage",
            "extension_request_duration_seconds",
            "annex_build_info",
        ] {
            assert!(parsed.families.contains_key(name), "{name} missing");
        }
        let errors = metrics.extension_json("shop")["extension_errors_total"].clone();
        let types: Vec<&str> =
            errors.as_array().unwrap().iter().map(|e| e["type"].as_str().unwrap()).collect();
        assert!(
            types.contains(&"rate_limited")
                && types.contains(&"quota_exceeded")
                && types.contains(&"hook")
                && types.contains(&"panic")
        );
    }
}
