//! Per-extension counters the host keeps on the hot path (plain atomics, no locks).

use std::sync::atomic::{AtomicU64, Ordering};

use serde::Serialize;

#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) handler_panics: AtomicU64,
    pub(crate) task_panics: AtomicU64,
    pub(crate) lifecycle_panics: AtomicU64,
    pub(crate) tasks_spawned: AtomicU64,
    pub(crate) hook_panics: AtomicU64,
    pub(crate) rate_limited: AtomicU64,
    pub(crate) timeouts: AtomicU64,
    pub(crate) quota_rejections: AtomicU64,
    /// Nanoseconds spent polling the extension's handler and task futures.
    pub(crate) busy_nanos: AtomicU64,
    /// The extension's own gauges ([`Context::set_gauge`](crate::Context::set_gauge)): set off the
    /// request path, read when metrics are rendered.
    pub(crate) gauges: std::sync::Mutex<std::collections::BTreeMap<String, f64>>,
}

impl Counters {
    pub(crate) fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// Every panic caught for this extension so far, whatever it panicked in.
    pub(crate) fn panics(&self) -> u64 {
        let s = self.snapshot();
        s.handler_panics + s.task_panics + s.lifecycle_panics + s.hook_panics
    }

    pub(crate) fn snapshot(&self) -> ExtensionStats {
        ExtensionStats {
            handler_panics: self.handler_panics.load(Ordering::Relaxed),
            task_panics: self.task_panics.load(Ordering::Relaxed),
            lifecycle_panics: self.lifecycle_panics.load(Ordering::Relaxed),
            tasks_spawned: self.tasks_spawned.load(Ordering::Relaxed),
            hook_panics: self.hook_panics.load(Ordering::Relaxed),
            rate_limited: self.rate_limited.load(Ordering::Relaxed),
            timeouts: self.timeouts.load(Ordering::Relaxed),
            quota_rejections: self.quota_rejections.load(Ordering::Relaxed),
        }
    }
}

/// A snapshot of one extension's counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct ExtensionStats {
    /// Panics caught in its route handlers.
    pub handler_panics: u64,
    /// Panics caught in tasks started with [`Context::spawn`](crate::Context::spawn).
    pub task_panics: u64,
    /// Panics caught in `init`, `start`, `stop` and `health`.
    pub lifecycle_panics: u64,
    /// Background tasks started with [`Context::spawn`](crate::Context::spawn).
    pub tasks_spawned: u64,
    /// Panics caught in its hooks, middleware and event handlers.
    pub hook_panics: u64,
    /// Requests answered 429 by its rate limit.
    pub rate_limited: u64,
    /// Requests answered 504 after `quotas.timeout_ms`.
    pub timeouts: u64,
    /// Requests refused by `quotas.max_concurrent` (503) or `quotas.max_body_bytes` (413).
    pub quota_rejections: u64,
}
