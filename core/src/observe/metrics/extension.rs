//! One extension's pre-resolved metric handles, and the per-request meter.

use std::collections::HashMap;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Instant;

use axum::extract::MatchedPath;
use axum::http::{Method, Request, StatusCode};
use prometheus::{Gauge, Histogram, IntCounter, IntCounterVec};

use super::Families;

/// `extension_errors_total` types the host itself counts; others go through a label lookup.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ErrorType {
    /// A handler, hook, task or lifecycle call panicked.
    Panic,
    /// A request or call ran out of time.
    Timeout,
    /// A handler answered 5xx.
    Handler,
    /// A hook failed.
    Hook,
    /// A request was refused by the rate limit.
    RateLimited,
    /// A health check failed.
    Health,
    /// A request was refused by a quota (concurrency or body size).
    QuotaExceeded,
    /// A request was refused because the extension spent its CPU budget (`quotas.cpu_ms_per_s`).
    CpuQuota,
    /// A request was refused because the extension holds more than `quotas.max_memory_bytes`.
    MemoryQuota,
    /// The host disabled the extension (failed health checks, too many panics, its memory quota).
    AutoDisabled,
}

impl ErrorType {
    const ALL: [ErrorType; 10] = [
        Self::Panic,
        Self::Timeout,
        Self::Handler,
        Self::Hook,
        Self::RateLimited,
        Self::Health,
        Self::QuotaExceeded,
        Self::CpuQuota,
        Self::MemoryQuota,
        Self::AutoDisabled,
    ];

    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Panic => "panic",
            Self::Timeout => "timeout",
            Self::Handler => "handler",
            Self::Hook => "hook",
            Self::RateLimited => "rate_limited",
            Self::Health => "health",
            Self::QuotaExceeded => "quota_exceeded",
            Self::CpuQuota => "cpu_quota",
            Self::MemoryQuota => "memory_quota",
            Self::AutoDisabled => "auto_disabled",
        }
    }
}

/// `extension_resource_usage` resources.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Resource {
    /// Requests being handled right now.
    InFlightRequests,
    /// Background tasks started with `Context::spawn` still running.
    BackgroundTasks,
    /// Seconds spent polling the extension's handler and task futures, since start.
    BusySeconds,
    /// Connections of the extension's own pool in use (wired with the per-extension pools).
    DbConnections,
    /// Bytes in the extension's storage directory (wired with storage quotas).
    StorageBytes,
    /// CPU seconds its code used since start (handlers, tasks, hooks, middleware, lifecycle
    /// calls): what `quotas.cpu_ms_per_s` budgets.
    CpuSeconds,
    /// Live bytes its code allocated and has not freed: what `quotas.max_memory_bytes` bounds.
    MemoryBytes,
}

impl Resource {
    pub(crate) const ALL: [Resource; 7] = [
        Self::InFlightRequests,
        Self::BackgroundTasks,
        Self::BusySeconds,
        Self::DbConnections,
        Self::StorageBytes,
        Self::CpuSeconds,
        Self::MemoryBytes,
    ];

    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::InFlightRequests => "in_flight_requests",
            Self::BackgroundTasks => "background_tasks",
            Self::BusySeconds => "busy_seconds",
            Self::DbConnections => "db_connections",
            Self::StorageBytes => "storage_bytes",
            Self::CpuSeconds => "cpu_seconds",
            Self::MemoryBytes => "memory_bytes",
        }
    }
}

const FIRST_STATUS: usize = 100;
const STATUS_SLOTS: usize = 500;

/// One route template and method: its duration histogram and its counters by status, each
/// resolved on first use.
struct RouteHandles {
    duration: Histogram,
    by_status: Box<[OnceLock<IntCounter>]>,
    requests: IntCounterVec,
    labels: [String; 3],
}

impl RouteHandles {
    fn record(&self, status: StatusCode, seconds: f64) {
        let [extension, method, route] = &self.labels;
        let resolve = || self.requests.with_label_values(&[extension, method, route, status.as_str()]);
        match self.by_status.get((status.as_u16() as usize).wrapping_sub(FIRST_STATUS)) {
            Some(slot) => slot.get_or_init(resolve).inc(),
            None => resolve().inc(),
        }
        self.duration.observe(seconds);
    }
}

/// Everything the request path and the health monitor touch for one extension.
pub(crate) struct ExtensionMetrics {
    /// Route template → the handles of each method declared on it (foldhash: the keys are the
    /// extension's own route templates, never attacker-chosen).
    routes: HashMap<Box<str>, Vec<(Method, RouteHandles)>, foldhash::fast::RandomState>,
    errors: [IntCounter; ErrorType::ALL.len()],
    resources: [Gauge; Resource::ALL.len()],
    health: Gauge,
    in_flight: AtomicI64,
}

impl std::fmt::Debug for ExtensionMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExtensionMetrics").field("routes", &self.routes.len()).finish_non_exhaustive()
    }
}

impl ExtensionMetrics {
    pub(super) fn new(name: &str, routes: &[(Method, String)], families: &Families) -> Self {
        let mut by_route: HashMap<Box<str>, Vec<(Method, RouteHandles)>, foldhash::fast::RandomState> =
            HashMap::default();
        for (method, route) in routes {
            let handles = RouteHandles {
                duration: families.duration.with_label_values(&[name, method.as_str(), route]),
                by_status: (0..STATUS_SLOTS).map(|_| OnceLock::new()).collect(),
                requests: families.requests.clone(),
                labels: [name.to_owned(), method.as_str().to_owned(), route.clone()],
            };
            by_route.entry(route.as_str().into()).or_default().push((method.clone(), handles));
        }
        Self {
            routes: by_route,
            errors: ErrorType::ALL.map(|t| families.errors.with_label_values(&[name, t.as_str()])),
            resources: Resource::ALL.map(|r| families.resources.with_label_values(&[name, r.as_str()])),
            health: families.health.with_label_values(&[name]),
            in_flight: AtomicI64::new(0),
        }
    }

    /// Counts one error.
    pub(crate) fn error(&self, kind: ErrorType) {
        self.errors[kind as usize].inc();
    }

    /// Sets `extension_health_status` (1 healthy, 0.5 degraded, 0 down).
    pub(crate) fn set_health(&self, value: f64) {
        self.health.set(value);
    }

    /// Sets one resource gauge.
    pub(crate) fn set_resource(&self, resource: Resource, value: f64) {
        self.resources[resource as usize].set(value);
    }

    /// Requests in flight right now.
    pub(crate) fn in_flight(&self) -> i64 {
        self.in_flight.load(Ordering::Relaxed)
    }

    /// Starts metering one request: counts it in flight and finds its route's handles.
    pub(crate) fn start<B>(&self, req: &Request<B>) -> RequestMeter<'_> {
        let route = req.extensions().get::<MatchedPath>().map(MatchedPath::as_str);
        self.start_route(req.method(), route)
    }

    /// [`ExtensionMetrics::start`] for a request matched to `route` (a template), if any.
    pub(crate) fn start_route(&self, method: &Method, route: Option<&str>) -> RequestMeter<'_> {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        let handles = route
            .and_then(|r| self.routes.get(r))
            .and_then(|methods| methods.iter().find(|(m, _)| m == method))
            .map(|(_, h)| h);
        RequestMeter { owner: self, handles, started: Instant::now(), finished: false }
    }
}

/// One request being metered. Dropping it unfinished (the client went away, or a panic unwinds
/// past it) still takes the request out of the in-flight count.
pub(crate) struct RequestMeter<'a> {
    owner: &'a ExtensionMetrics,
    handles: Option<&'a RouteHandles>,
    started: Instant,
    finished: bool,
}

impl RequestMeter<'_> {
    /// Records the answer's status and the elapsed time, which it returns (the request's one
    /// timer); `handler_error` (a 5xx the handler itself answered) also counts an
    /// `extension_errors_total{type="handler"}`.
    pub(crate) fn finish(mut self, status: StatusCode, handler_error: bool) -> std::time::Duration {
        self.finished = true;
        self.owner.in_flight.fetch_sub(1, Ordering::Relaxed);
        let elapsed = self.started.elapsed();
        if let Some(h) = self.handles {
            h.record(status, elapsed.as_secs_f64());
        }
        if handler_error {
            self.owner.error(ErrorType::Handler);
        }
        elapsed
    }
}

impl Drop for RequestMeter<'_> {
    fn drop(&mut self) {
        if !self.finished {
            self.owner.in_flight.fetch_sub(1, Ordering::Relaxed);
        }
    }
}
