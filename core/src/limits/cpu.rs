//! The CPU quota (`quotas.cpu_ms_per_s`) and the poll wrapper that measures, attributes and
//! throttles an extension's code.
//!
//! The budget is a GCRA (virtual-scheduling) token bucket over the busy time the poll wrapper
//! measures: every poll of `d` ns of the extension's code moves its *theoretical arrival time*
//! (`tat`) forward by `d × 1000 / cpu_ms_per_s` ns of wall time. The extension is over budget
//! while `tat` is more than [`BURST`] (one second of wall time, i.e. `cpu_ms_per_s` ms of CPU)
//! ahead of now; it is under budget again `tat − now − BURST` later. Over a window of `w`
//! seconds it can therefore use at most `cpu_ms_per_s × (w + 1)` ms, and once saturated exactly
//! `cpu_ms_per_s` per second. One atomic, no lock, no timer when under budget.

use std::cell::Cell;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::Poll;
use std::time::{Duration, Instant};

use crate::limits::quota::Limits;

/// How far ahead of now the budget may be spent: one second of wall time.
pub(crate) const BURST: Duration = Duration::from_secs(1);

thread_local! {
    /// Nanoseconds spent in nested meters during the current poll (a middleware of another
    /// extension polling the handler inside it): subtracted from the outer poll, so each
    /// nanosecond is charged once, to the innermost owner.
    static NESTED: Cell<u64> = const { Cell::new(0) };
}

/// One extension's CPU budget.
#[derive(Debug)]
pub(crate) struct CpuBudget {
    /// `quotas.cpu_ms_per_s`; 0 = none.
    ms_per_s: AtomicU64,
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
    fn debit(&self, rate: u64, busy_ns: u64, at: Instant) {
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
    pub(crate) fn over(&self) -> Option<Duration> {
        self.over_at(Instant::now())
    }
}

/// Whether a metered future may be delayed when its extension is over its CPU budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Throttle {
    /// Handlers and tasks: delayed before their next poll, never dropped.
    Delay,
    /// Hooks and middleware: charged, not delayed (they run inside another extension's request,
    /// which must not wait for this one's budget).
    Never,
}

/// Runs `fut` as the extension whose `limits` and `busy_nanos` these are: each poll charges
/// the allocations it makes to the extension (annex-alloc's current owner, restored after the
/// poll), adds the time spent to `busy_nanos` (minus nested meters of other extensions) and
/// debits the CPU budget, if any. With [`Throttle::Delay`], a poll that finds the budget spent
/// waits on a timer until it is under budget again.
pub(crate) async fn metered<F: Future>(
    busy_nanos: &AtomicU64,
    limits: &Limits,
    throttle: Throttle,
    fut: F,
) -> F::Output {
    let mut fut = std::pin::pin!(fut);
    let owner = limits.owner();
    let cpu = &limits.cpu;
    let mut delay: Option<Pin<Box<tokio::time::Sleep>>> = None;
    std::future::poll_fn(move |cx| {
        if let Some(sleep) = delay.as_mut() {
            if sleep.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
            delay = None;
        }
        let rate = cpu.ms_per_s.load(Ordering::Relaxed);
        let start = Instant::now();
        if rate != 0
            && throttle == Throttle::Delay
            && let Some(wait) = cpu.over_at(start)
        {
            cpu.delayed.fetch_add(1, Ordering::Relaxed);
            let mut sleep = Box::pin(tokio::time::sleep(wait));
            if sleep.as_mut().poll(cx).is_pending() {
                delay = Some(sleep);
                return Poll::Pending;
            }
        }
        let outer = NESTED.replace(0);
        let scope = annex_alloc::enter(owner);
        let polled = fut.as_mut().poll(cx);
        drop(scope);
        let end = Instant::now();
        let total = u64::try_from(end.saturating_duration_since(start).as_nanos()).unwrap_or(u64::MAX);
        let inner = NESTED.replace(outer.saturating_add(total));
        let own = total.saturating_sub(inner);
        busy_nanos.fetch_add(own, Ordering::Relaxed);
        if rate != 0 {
            cpu.debit(rate, own, end);
        }
        polled
    })
    .await
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

    #[tokio::test]
    async fn nested_meters_charge_each_nanosecond_once() {
        let (outer, inner) = (Limits::unlimited(), Limits::unlimited());
        let (outer_busy, inner_busy) = (AtomicU64::new(0), AtomicU64::new(0));
        let spin = |ms| {
            let until = Instant::now() + Duration::from_millis(ms);
            while Instant::now() < until {}
        };
        let started = Instant::now();
        metered(&outer_busy, &outer, Throttle::Delay, async {
            spin(20);
            metered(&inner_busy, &inner, Throttle::Never, async {
                spin(30);
                assert_eq!(annex_alloc::current(), inner.owner());
            })
            .await;
            assert_eq!(annex_alloc::current(), outer.owner());
        })
        .await;
        let wall = started.elapsed().as_nanos() as u64;
        let (o, i) = (outer_busy.load(Ordering::Relaxed), inner_busy.load(Ordering::Relaxed));
        assert!(i >= 30_000_000, "inner {i}");
        assert!((20_000_000..30_000_000).contains(&o), "outer {o}");
        assert!(o + i <= wall);
        assert_eq!(annex_alloc::current(), annex_alloc::Owner::HOST);
    }

    #[tokio::test]
    async fn an_extension_over_budget_is_delayed_not_dropped() {
        let l = Limits::unlimited();
        l.cpu.set(Some(1000));
        let busy = AtomicU64::new(0);
        // Spend 1.1 s of budget in one poll: 100 ms over.
        metered(&busy, &l, Throttle::Delay, async {
            let until = Instant::now() + Duration::from_millis(1100);
            while Instant::now() < until {}
        })
        .await;
        assert!(l.cpu.over().is_some());
        let before = Instant::now();
        metered(&busy, &l, Throttle::Delay, async {}).await;
        assert!(before.elapsed() >= Duration::from_millis(50), "{:?}", before.elapsed());
        assert_eq!(l.cpu.delayed.load(Ordering::Relaxed), 1);
    }
}
