//! The poll wrapper that measures, attributes and throttles an extension's code: every future
//! of an extension's code the host polls (handlers, tasks, hooks, middleware, lifecycle calls)
//! goes through [`metered`].

use std::cell::Cell;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::Poll;
use std::time::Instant;

use crate::limits::quota::Limits;

thread_local! {
    /// Nanoseconds spent in nested meters during the current poll (a middleware of another
    /// extension polling the handler inside it): subtracted from the outer poll, so each
    /// nanosecond is charged once, to the innermost owner.
    static NESTED: Cell<u64> = const { Cell::new(0) };
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
    use std::time::Duration;

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
