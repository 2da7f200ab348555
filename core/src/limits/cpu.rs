//! The CPU quota (`quotas.cpu_ms_per_s`); `limits/meter.rs` debits it and waits on it.
//!
//! The budget is a GCRA (virtual-scheduling) token bucket over the busy time the poll wrapper
//! measures: every poll of `d` ns of the extension's code moves its *theoretical arrival time*
//! (`tat`) forward by `d × 1000 / cpu_ms_per_s` ns of wall time. The extension is over budget
//! while `tat` is more than [`BURST`] (one second of wall time, i.e. `cpu_ms_per_s` ms of CPU)
//! ahead of now; it is under budget again `tat − now − BURST` later. Over a window of `w`
//! seconds it can therefore use at most `cpu_ms_per_s × (w + 1)` ms, and once saturated exactly
//! `cpu_ms_per_s` per second. One atomic, no lock, no timer when under budget.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// How far ahead of now the budget may be spent: one second of wall time.
pub(crate) const BURST: Duration = Duration::from_secs(1);

/// One extension's CPU budget.
#[derive(Debug)]
pub(crate) struct CpuBudget {
    /// `quotas.cpu_ms_per_s`; 0 = none.
    pub(super) ms_per_s: AtomicU64,
    /// Theoretical arrival time, in ns since `epoch`.
    tat: AtomicU64,
    epoch: Instant,
    /// Polls delayed because the budget was spent.
    pub(crate) delayed: AtomicU64,
    /// Requests refused because the budget was spent.
    pub(crate) refused: AtomicU64,
}

impl Default for CpuBudget {
    fn default() -> Self {
        Self {
            ms_per_s: AtomicU64::new(0),
            tat: AtomicU64::new(0),
            epoch: Instant::now(),
            delayed: AtomicU64::new(0),
            refused: AtomicU64::new(0),
        }
    }
}

impl CpuBudget {
    /// Sets the quota (`None`: none); a changed quota starts from a full budget.
    pub(crate) fn set(&self, ms_per_s: Option<u32>) {
        let new = ms_per_s.map_or(0, u64::from);
        if self.ms_per_s.swap(new, Ordering::Relaxed) != new {
            self.tat.store(0, Ordering::Relaxed);
        }
    }

    pub(crate) fn limit(&self) -> Option<u32> {
        u32::try_from(self.ms_per_s.load(Ordering::Relaxed)).ok().filter(|v| *v != 0)
    }

    fn ns(&self, at: Instant) -> u64 {
        u64::try_from(at.saturating_duration_since(self.epoch).as_nanos()).unwrap_or(u64::MAX)
    }

    /// Charges `busy_ns` of CPU used up to `at`, at `rate` ms per second.
    #[inline]
    pub(super) fn debit(&self, rate: u64, busy_ns: u64, at: Instant) {
        let cost = busy_ns.saturating_mul(1000) / rate.max(1);
        let now = self.ns(at);
        let _ = self.tat.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |tat| {
            Some(tat.max(now).saturating_add(cost))
        });
    }

    /// How long until the extension is under budget again, if it is over it at `at`.
    #[inline]
    pub(crate) fn over_at(&self, at: Instant) -> Option<Duration> {
        if self.ms_per_s.load(Ordering::Relaxed) == 0 {
            return None;
        }
        let lead = self.tat.load(Ordering::Relaxed).saturating_sub(self.ns(at));
        let burst = BURST.as_nanos() as u64;
        (lead > burst).then(|| Duration::from_nanos(lead - burst))
    }

    /// [`CpuBudget::over_at`] now.
    #[inline]
    pub(crate) fn over(&self) -> Option<Duration> {
        if self.ms_per_s.load(Ordering::Relaxed) == 0 {
            return None;
        }
        self.over_at(Instant::now())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_spent_budget_is_over_until_it_refills() {
        let b = CpuBudget::default();
        let t0 = b.epoch + Duration::from_secs(10);
        assert_eq!(b.over_at(t0), None, "no quota");
        b.set(Some(100));
        // 100 ms of CPU costs 1 s of wall time at 100 ms/s: exactly the burst, not over.
        b.debit(100, 100_000_000, t0);
        assert_eq!(b.over_at(t0), None);
        // 50 ms more: half a second over.
        b.debit(100, 50_000_000, t0);
        assert_eq!(b.over_at(t0), Some(Duration::from_millis(500)));
        assert_eq!(b.over_at(t0 + Duration::from_millis(200)), Some(Duration::from_millis(300)));
        assert_eq!(b.over_at(t0 + Duration::from_millis(500)), None);
        // A changed quota starts full.
        b.set(Some(200));
        assert_eq!(b.over_at(t0), None);
        b.set(None);
        b.debit(1, 1_000_000_000, t0);
        assert_eq!(b.over_at(t0), None, "no quota, never over");
    }
}
