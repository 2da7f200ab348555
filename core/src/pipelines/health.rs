//! Each stage's health on this replica: a windowed score (the last 60 s, in 5 s buckets,
//! so it recovers as good calls come in) and a circuit breaker (closed → open after K failures in
//! a row or a failure rate over a minimum of calls → half-open after the cool-down, letting one
//! probe through → closed on its success, open again on its failure).
//!
//! One small mutex per stage, held for a few arithmetic operations; never a global lock.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde::Serialize;

use super::model::BreakerSettings;

/// The window the score and the failure rate look at: [`BUCKETS`] of [`BUCKET`], 60 s.
const BUCKETS: usize = 12;
const BUCKET: Duration = Duration::from_secs(5);

/// A breaker's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BreakerState {
    /// Calls go through.
    Closed,
    /// Calls fail at once until the cool-down is over.
    Open,
    /// One probe call is let through; its outcome decides.
    HalfOpen,
}

impl BreakerState {
    /// `closed`, `open` or `half_open`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Closed => "closed",
            Self::Open => "open",
            Self::HalfOpen => "half_open",
        }
    }
}

/// A stage's recent figures on this replica.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HealthFigures {
    /// Calls in the window.
    pub calls: u64,
    /// Failed calls in the window.
    pub failures: u64,
    /// Successful share of the window's calls; 1 with no calls.
    pub score: f64,
    /// Failures in a row, now.
    pub consecutive_failures: u32,
    /// The breaker.
    pub breaker: BreakerState,
}

#[derive(Debug, Clone, Copy, Default)]
struct Bucket {
    /// Which [`BUCKET`]-long slice of time since `origin` it counts.
    epoch: u64,
    calls: u64,
    failures: u64,
}

#[derive(Debug)]
enum Breaker {
    Closed,
    Open { until: Instant },
    HalfOpen { probe_since: Option<Instant> },
}

#[derive(Debug)]
struct State {
    buckets: [Bucket; BUCKETS],
    consecutive: u32,
    breaker: Breaker,
}

/// One stage's health, shared by every snapshot that holds the stage (a reload keeps it).
#[derive(Debug)]
pub(crate) struct StageHealth {
    origin: Instant,
    state: Mutex<State>,
}

impl Default for StageHealth {
    fn default() -> Self {
        Self {
            origin: Instant::now(),
            state: Mutex::new(State {
                buckets: [Bucket::default(); BUCKETS],
                consecutive: 0,
                breaker: Breaker::Closed,
            }),
        }
    }
}

impl StageHealth {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn epoch(&self, now: Instant) -> u64 {
        (now.duration_since(self.origin).as_millis() / BUCKET.as_millis()) as u64
    }

    /// Whether a call may go out now: always when closed; when open, only once the cool-down is
    /// over (it turns half-open and this call is the probe); when half-open, only if no probe is
    /// out (a probe dropped unfinished frees the slot after a cool-down).
    pub(crate) fn admit(&self, settings: &BreakerSettings) -> bool {
        let now = Instant::now();
        let cooldown = Duration::from_millis(settings.cooldown_ms);
        let mut s = self.lock();
        match s.breaker {
            Breaker::Closed => true,
            Breaker::Open { until } if now >= until => {
                s.breaker = Breaker::HalfOpen { probe_since: Some(now) };
                true
            }
            Breaker::Open { .. } => false,
            Breaker::HalfOpen { probe_since: Some(since) } if now.duration_since(since) < cooldown => false,
            Breaker::HalfOpen { .. } => {
                s.breaker = Breaker::HalfOpen { probe_since: Some(now) };
                true
            }
        }
    }

    /// Records one call's outcome; returns the score and the breaker after it.
    pub(crate) fn record(&self, ok: bool, settings: &BreakerSettings) -> (f64, BreakerState) {
        let now = Instant::now();
        let epoch = self.epoch(now);
        let mut s = self.lock();
        let bucket = &mut s.buckets[(epoch % BUCKETS as u64) as usize];
        if bucket.epoch != epoch {
            *bucket = Bucket { epoch, calls: 0, failures: 0 };
        }
        bucket.calls += 1;
        if !ok {
            bucket.failures += 1;
        }
        let (calls, failures) = window(&s.buckets, epoch);
        let cooldown = Duration::from_millis(settings.cooldown_ms);
        if ok {
            s.consecutive = 0;
            if matches!(s.breaker, Breaker::HalfOpen { .. }) {
                s.breaker = Breaker::Closed;
            }
        } else {
            s.consecutive = s.consecutive.saturating_add(1);
            let trips = s.consecutive >= settings.consecutive_failures
                || (calls >= u64::from(settings.min_calls)
                    && calls > 0
                    && failures as f64 / calls as f64 >= settings.failure_rate);
            match s.breaker {
                Breaker::HalfOpen { .. } => s.breaker = Breaker::Open { until: now + cooldown },
                Breaker::Closed if trips => s.breaker = Breaker::Open { until: now + cooldown },
                _ => {}
            }
        }
        (score(calls, failures), state_of(&s.breaker))
    }

    /// The figures now.
    pub(crate) fn figures(&self) -> HealthFigures {
        let epoch = self.epoch(Instant::now());
        let s = self.lock();
        let (calls, failures) = window(&s.buckets, epoch);
        HealthFigures {
            calls,
            failures,
            score: score(calls, failures),
            consecutive_failures: s.consecutive,
            breaker: state_of(&s.breaker),
        }
    }
}

fn state_of(b: &Breaker) -> BreakerState {
    match b {
        Breaker::Closed => BreakerState::Closed,
        Breaker::Open { .. } => BreakerState::Open,
        Breaker::HalfOpen { .. } => BreakerState::HalfOpen,
    }
}

fn window(buckets: &[Bucket; BUCKETS], epoch: u64) -> (u64, u64) {
    buckets
        .iter()
        .filter(|b| b.epoch + (BUCKETS as u64) > epoch && b.epoch <= epoch && b.calls > 0)
        .fold((0, 0), |(c, f), b| (c + b.calls, f + b.failures))
}

fn score(calls: u64, failures: u64) -> f64 {
    if calls == 0 { 1.0 } else { (calls - failures) as f64 / calls as f64 }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn quick() -> BreakerSettings {
        BreakerSettings { consecutive_failures: 3, failure_rate: 0.9, min_calls: 100, cooldown_ms: 20 }
    }

    #[test]
    fn three_failures_in_a_row_open_it_and_a_good_probe_closes_it() {
        let h = StageHealth::default();
        let s = quick();
        assert!(h.admit(&s));
        h.record(true, &s);
        h.record(false, &s);
        h.record(false, &s);
        assert_eq!(h.figures().breaker, BreakerState::Closed);
        assert_eq!(h.record(false, &s).1, BreakerState::Open);
        assert!(!h.admit(&s), "open: refused during the cool-down");
        std::thread::sleep(Duration::from_millis(25));
        assert!(h.admit(&s), "the probe goes through");
        assert!(!h.admit(&s), "one probe at a time");
        assert_eq!(h.record(true, &s).1, BreakerState::Closed);
        let f = h.figures();
        assert_eq!((f.calls, f.failures), (5, 3));
        assert!((f.score - 0.4).abs() < 1e-9);
    }

    #[test]
    fn a_failed_probe_opens_it_again_and_a_rate_trips_it() {
        let h = StageHealth::default();
        let s =
            BreakerSettings { consecutive_failures: 100, failure_rate: 0.5, min_calls: 4, cooldown_ms: 20 };
        for ok in [true, false, true] {
            h.record(ok, &s);
        }
        assert_eq!(h.record(false, &s).1, BreakerState::Open, "2 of 4 failed");
        std::thread::sleep(Duration::from_millis(25));
        assert!(h.admit(&s));
        assert_eq!(h.record(false, &s).1, BreakerState::Open);
    }
}
