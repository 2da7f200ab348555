//! The health book: per extension, consecutive failed checks, recent panics and what its CPU and
//! memory quotas did, and whether the configured limits are crossed. The health monitor writes
//! it; an enable resets it.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Per extension: consecutive failures and recent panics.
#[derive(Debug, Default)]
pub(crate) struct HealthBook {
    tracks: Mutex<HashMap<String, Track>>,
}

#[derive(Debug, Default)]
struct Track {
    consecutive_failures: u32,
    panics_seen: u64,
    recent_panics: VecDeque<Instant>,
    /// CPU-quota actions (delayed polls + refused requests) seen at the last round.
    cpu_seen: u64,
    /// Whether the CPU quota acted during the last round.
    cpu_acting: bool,
    /// Memory-quota refusals seen at the last round.
    memory_seen: u64,
    /// Since when it has been over its memory quota, without a break.
    memory_over_since: Option<Instant>,
}

/// What the quotas did since the last round.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct QuotaNews {
    /// The CPU quota started acting this round (it did not during the last one).
    pub(crate) cpu_started: bool,
    /// Requests refused by the memory quota since the last round.
    pub(crate) memory_refused: u64,
    /// It has been over its memory quota this long (`None`: under it now).
    pub(crate) memory_over_for: Option<Duration>,
}

impl HealthBook {
    /// Forgets past failures and panics (when an operator enables the extension again).
    pub(crate) fn reset(&self, name: &str, panics_so_far: u64) {
        let mut tracks = self.tracks.lock().unwrap_or_else(|p| p.into_inner());
        let old = tracks.remove(name).unwrap_or_default();
        // Quota totals only grow: keep them, so an enable does not report old actions as new.
        tracks.insert(
            name.to_owned(),
            Track {
                panics_seen: panics_so_far,
                cpu_seen: old.cpu_seen,
                memory_seen: old.memory_seen,
                ..Track::default()
            },
        );
    }

    /// Records what the quotas did up to now: `cpu_actions` and `memory_refused` are running
    /// totals, `memory_over` whether it holds more than its memory quota now.
    pub(crate) fn quotas(
        &self,
        name: &str,
        cpu_actions: u64,
        memory_refused: u64,
        memory_over: bool,
    ) -> QuotaNews {
        let mut tracks = self.tracks.lock().unwrap_or_else(|p| p.into_inner());
        let track = tracks.entry(name.to_owned()).or_default();
        let cpu_acting = cpu_actions > track.cpu_seen;
        let news = QuotaNews {
            cpu_started: cpu_acting && !track.cpu_acting,
            memory_refused: memory_refused.saturating_sub(track.memory_seen),
            memory_over_for: if memory_over {
                Some(track.memory_over_since.get_or_insert_with(Instant::now).elapsed())
            } else {
                None
            },
        };
        if !memory_over {
            track.memory_over_since = None;
        }
        (track.cpu_seen, track.cpu_acting, track.memory_seen) = (cpu_actions, cpu_acting, memory_refused);
        news
    }

    /// Records one check and the panic total; returns why to disable, if the limits are crossed.
    pub(crate) fn record(
        &self,
        name: &str,
        failed: bool,
        panics_total: u64,
        limits: &Limits,
    ) -> Option<String> {
        let mut tracks = self.tracks.lock().unwrap_or_else(|p| p.into_inner());
        let track = tracks.entry(name.to_owned()).or_default();
        track.consecutive_failures = if failed { track.consecutive_failures + 1 } else { 0 };
        let now = Instant::now();
        let new_panics = panics_total.saturating_sub(track.panics_seen);
        track.panics_seen = panics_total;
        track.recent_panics.extend(std::iter::repeat_n(now, new_panics as usize));
        while track.recent_panics.front().is_some_and(|t| now.duration_since(*t) > limits.panic_window) {
            track.recent_panics.pop_front();
        }
        if limits.failures > 0 && track.consecutive_failures >= limits.failures {
            return Some(format!("{} consecutive failed health checks", track.consecutive_failures));
        }
        let panics = track.recent_panics.len();
        if limits.panics > 0 && panics >= limits.panics as usize {
            return Some(format!("{panics} panics within {} ms", limits.panic_window.as_millis()));
        }
        None
    }
}

pub(crate) struct Limits {
    pub(crate) failures: u32,
    pub(crate) panics: u32,
    pub(crate) panic_window: Duration,
}
