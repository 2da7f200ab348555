//! The health book: per extension, consecutive failed checks and recent panics, and whether the
//! configured limits are crossed. The health monitor writes it; an enable resets it.

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
}

impl HealthBook {
    /// Forgets past failures and panics (when an operator enables the extension again).
    pub(crate) fn reset(&self, name: &str, panics_so_far: u64) {
        let mut tracks = self.tracks.lock().unwrap_or_else(|p| p.into_inner());
        tracks.insert(name.to_owned(), Track { panics_seen: panics_so_far, ..Track::default() });
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
