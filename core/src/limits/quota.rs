//! Per-extension quotas and the measured usage behind them, changeable at run time.
//!
//! Every limit is an atomic (`u64::MAX` = none) so the request path reads it with one load and
//! `Host::reload_limits` can change it without a lock.
//! `quotas.db_connections` is validated here and read from the config by whoever builds the
//! extension's pool.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use arc_swap::{ArcSwapOption, Guard};
use serde::Serialize;

use annex_alloc::Owner;

use crate::config::{ExtensionConfig, QuotaConfig};
use crate::limits::cpu::CpuBudget;
use crate::limits::error::LimitsError;
use crate::limits::memory::MemoryQuota;
use crate::limits::rate_limit::RateLimit;

const NONE: u64 = u64::MAX;

/// What one extension uses right now (for metrics and operators).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct ResourceUsage {
    /// Requests being served.
    pub in_flight: u64,
    /// Background tasks running.
    pub tasks: u64,
    /// Bytes in its storage directory, as last measured (0 before its first storage call).
    pub storage_bytes: u64,
    /// Per-client rate-limit buckets held.
    pub rate_limit_keys: u64,
    /// Live bytes its code allocated and has not freed (0 when the binary's global allocator is
    /// not `annex_alloc::Accounting`).
    pub memory_bytes: u64,
}

/// Validated limits, ready to install.
#[derive(Debug)]
pub(crate) struct Prepared {
    quotas: QuotaConfig,
    rate: Option<RateLimit>,
}

/// One extension's limits and usage.
#[derive(Debug)]
pub(crate) struct Limits {
    max_concurrent: AtomicU64,
    timeout_ms: AtomicU64,
    max_body_bytes: AtomicU64,
    max_tasks: AtomicU64,
    storage_bytes: AtomicU64,
    rate: ArcSwapOption<RateLimit>,
    in_flight: AtomicU64,
    /// Maintained by the storage API.
    pub(crate) storage_used: AtomicU64,
    /// Whom the accounting allocator charges while this extension's code is polled.
    owner: Owner,
    /// `quotas.cpu_ms_per_s`.
    pub(crate) cpu: CpuBudget,
    /// `quotas.max_memory_bytes`.
    pub(crate) memory: MemoryQuota,
}

/// Holds one in-flight slot; released on drop (also when a timed-out request is dropped).
#[derive(Debug)]
pub(crate) struct InFlight<'a>(&'a AtomicU64);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

fn opt(value: Option<u64>) -> u64 {
    value.unwrap_or(NONE)
}

fn get(atomic: &AtomicU64) -> Option<u64> {
    Some(atomic.load(Ordering::Relaxed)).filter(|v| *v != NONE)
}

impl Limits {
    /// No limits at all.
    pub(crate) fn unlimited() -> Self {
        Self {
            max_concurrent: AtomicU64::new(NONE),
            timeout_ms: AtomicU64::new(NONE),
            max_body_bytes: AtomicU64::new(NONE),
            max_tasks: AtomicU64::new(NONE),
            storage_bytes: AtomicU64::new(NONE),
            rate: ArcSwapOption::empty(),
            in_flight: AtomicU64::new(0),
            storage_used: AtomicU64::new(0),
            owner: Owner::next(),
            cpu: CpuBudget::default(),
            memory: MemoryQuota::default(),
        }
    }

    /// The allocator owner id of this extension.
    #[inline]
    pub(crate) fn owner(&self) -> Owner {
        self.owner
    }

    /// Checks an extension's `rate_limit` and `quotas` without applying them.
    pub(crate) fn prepare(extension: &str, config: &ExtensionConfig) -> Result<Prepared, LimitsError> {
        let q = config.quotas;
        let positive = |value: Option<u64>, key: &'static str| match value {
            Some(0) => Err(LimitsError {
                extension: extension.to_owned(),
                key,
                reason: "must be at least 1 (leave it out for no limit)".into(),
            }),
            _ => Ok(()),
        };
        positive(q.max_concurrent.map(u64::from), "quotas.max_concurrent")?;
        positive(q.timeout_ms, "quotas.timeout_ms")?;
        positive(q.db_connections.map(u64::from), "quotas.db_connections")?;
        positive(q.cpu_ms_per_s.map(u64::from), "quotas.cpu_ms_per_s")?;
        positive(q.max_memory_bytes, "quotas.max_memory_bytes")?;
        let rate = config.rate_limit.map(|r| RateLimit::new(extension, r)).transpose()?;
        Ok(Prepared { quotas: q, rate })
    }

    /// Installs prepared limits. An unchanged rate limit keeps its buckets; a changed one
    /// starts fresh.
    pub(crate) fn apply(&self, prepared: Prepared) {
        let q = prepared.quotas;
        self.max_concurrent.store(opt(q.max_concurrent.map(u64::from)), Ordering::Relaxed);
        self.timeout_ms.store(opt(q.timeout_ms), Ordering::Relaxed);
        self.max_body_bytes.store(opt(q.max_body_bytes), Ordering::Relaxed);
        self.max_tasks.store(opt(q.max_tasks.map(u64::from)), Ordering::Relaxed);
        self.storage_bytes.store(opt(q.storage_bytes), Ordering::Relaxed);
        self.cpu.set(q.cpu_ms_per_s);
        self.memory.set(q.max_memory_bytes);
        let current = self.rate.load();
        let unchanged = match (current.as_deref(), &prepared.rate) {
            (Some(old), Some(new)) => old.config == new.config,
            (None, None) => true,
            _ => false,
        };
        if !unchanged {
            self.rate.store(prepared.rate.map(Arc::new));
        }
    }

    /// Takes an in-flight slot, or `None` when `max_concurrent` are already being served.
    #[inline]
    pub(crate) fn enter(&self) -> Option<InFlight<'_>> {
        let before = self.in_flight.fetch_add(1, Ordering::AcqRel);
        let guard = InFlight(&self.in_flight);
        (before < self.max_concurrent.load(Ordering::Relaxed)).then_some(guard)
    }

    pub(crate) fn timeout(&self) -> Option<Duration> {
        get(&self.timeout_ms).map(Duration::from_millis)
    }

    pub(crate) fn max_body_bytes(&self) -> Option<u64> {
        get(&self.max_body_bytes)
    }

    pub(crate) fn max_tasks(&self) -> Option<u64> {
        get(&self.max_tasks)
    }

    pub(crate) fn storage_quota(&self) -> Option<u64> {
        get(&self.storage_bytes)
    }

    pub(crate) fn rate_limit(&self) -> Guard<Option<Arc<RateLimit>>> {
        self.rate.load()
    }

    /// Drops idle per-client rate-limit state.
    pub(crate) fn prune(&self) {
        if let Some(rate) = self.rate.load().as_deref() {
            rate.prune();
        }
    }

    pub(crate) fn usage(&self, tasks: usize) -> ResourceUsage {
        ResourceUsage {
            in_flight: self.in_flight.load(Ordering::Relaxed),
            tasks: tasks as u64,
            storage_bytes: self.storage_used.load(Ordering::Relaxed),
            rate_limit_keys: self.rate.load().as_deref().map_or(0, |r| r.keys() as u64),
            memory_bytes: annex_alloc::live_bytes(self.owner),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::RateLimitConfig;

    #[test]
    fn concurrency_slots_are_released_on_drop() {
        let l = Limits::unlimited();
        let config = ExtensionConfig {
            quotas: QuotaConfig { max_concurrent: Some(1), ..Default::default() },
            ..Default::default()
        };
        l.apply(Limits::prepare("t", &config).expect("valid"));
        let first = l.enter().expect("one slot");
        assert!(l.enter().is_none(), "second is over quota");
        drop(first);
        assert!(l.enter().is_some());
        assert_eq!(l.usage(0).in_flight, 0);
    }

    #[test]
    fn reloading_keeps_an_unchanged_rate_limit_and_swaps_a_changed_one() {
        let l = Limits::unlimited();
        let rate = RateLimitConfig { per_second: 1, burst: 1, per_client: false };
        let config = ExtensionConfig { rate_limit: Some(rate), ..Default::default() };
        l.apply(Limits::prepare("t", &config).expect("valid"));
        let before = l.rate_limit().clone().expect("set");
        l.apply(Limits::prepare("t", &config).expect("valid"));
        assert!(Arc::ptr_eq(&before, &l.rate_limit().clone().expect("set")));
        let faster =
            ExtensionConfig { rate_limit: Some(RateLimitConfig { burst: 5, ..rate }), ..Default::default() };
        l.apply(Limits::prepare("t", &faster).expect("valid"));
        assert_eq!(l.rate_limit().as_deref().map(|r| r.config.burst), Some(5));
        let zero = ExtensionConfig {
            quotas: QuotaConfig { timeout_ms: Some(0), ..Default::default() },
            ..Default::default()
        };
        let err = Limits::prepare("t", &zero).expect_err("zero timeout");
        assert_eq!(err.key, "quotas.timeout_ms");
    }
}
