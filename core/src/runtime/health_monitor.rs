//! The health monitor: calls every running extension's `health()` on an interval, keeps the
//! results in `annex.extension_health`, sets `extension_health_status`, and disables an
//! extension after `failure_threshold` consecutive failed checks or `panic_threshold` panics
//! within `panic_window_ms` (see [`HealthConfig`](crate::config::HealthConfig)).

use std::collections::{HashMap, VecDeque};
use std::sync::{Mutex, Weak};
use std::time::{Duration, Instant};

use serde_json::json;
use tracing::Instrument;

use crate::audit::AuditEntry;
use crate::db::ops_store::{self, HealthCheck};
use crate::gate::ExtensionState;
use crate::health::HealthStatus;
use crate::host::{HostInner, Managed};
use crate::metrics::ErrorType;
use crate::panic;
use crate::stats::Counters;

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
    fn record(&self, name: &str, failed: bool, panics_total: u64, limits: &Limits) -> Option<String> {
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

struct Limits {
    failures: u32,
    panics: u32,
    panic_window: Duration,
}

/// Prune old history about once a day at the default interval.
const PRUNE_EVERY: u64 = 8_640;

/// Runs until the host is dropped (or the task aborted at shutdown).
pub(crate) async fn run(host: Weak<HostInner>) {
    let mut round: u64 = 0;
    loop {
        let interval = match host.upgrade() {
            Some(h) => Duration::from_millis(h.config.health.interval_ms.max(10)),
            None => return,
        };
        tokio::time::sleep(interval).await;
        let Some(h) = host.upgrade() else { return };
        for m in &h.extensions {
            if m.slot.state() == ExtensionState::Running {
                h.check(m).await;
            }
        }
        round += 1;
        if round.is_multiple_of(PRUNE_EVERY) {
            let _ = ops_store::prune_health(&h.pool).await;
        }
    }
}

impl HostInner {
    /// One health check of one extension, and what follows from it.
    pub(crate) async fn check(&self, m: &Managed) {
        let name = &m.metadata.name;
        let cfg = &self.config.health;
        let started = Instant::now();
        let call = panic::catch(m.extension.health(&m.cx)).instrument(m.cx.span().clone());
        let outcome = tokio::time::timeout(Duration::from_millis(cfg.timeout_ms), call).await;
        let duration_ms = started.elapsed().as_secs_f64() * 1000.0;
        let em = self.ops.metrics.extension(name);
        let (status, message, failure) = match outcome {
            Ok(Ok(h)) => (h.status, h.message, None),
            Ok(Err(panic)) => {
                Counters::bump(&m.cx.counters().lifecycle_panics);
                if let Some(e) = em {
                    e.error(ErrorType::Panic);
                }
                (HealthStatus::Down, Some(format!("health() panicked: {panic}")), Some("panic"))
            }
            Err(_) => (
                HealthStatus::Down,
                Some(format!("health() did not answer within {} ms", cfg.timeout_ms)),
                Some("timeout"),
            ),
        };
        let failed = status == HealthStatus::Down;
        if let Some(em) = em {
            em.set_health(match status {
                HealthStatus::Healthy => 1.0,
                HealthStatus::Degraded => 0.5,
                HealthStatus::Down => 0.0,
            });
            if failed {
                em.error(ErrorType::Health);
            }
        }
        let check = HealthCheck {
            at: String::new(),
            replica: self.ops.replica.clone(),
            status: health_str(status).to_owned(),
            message,
            failure: failure.map(str::to_owned),
            duration_ms,
        };
        if let Err(e) = ops_store::record_health(&self.pool, name, &self.ops.replica, &check).await {
            tracing::warn!(extension = %name, error = %e, "could not store a health check");
        }
        crate::metrics::refresh(self);
        let figures = self.ops.metrics.extension_json(name);
        if let Err(e) = ops_store::store_figures(&self.pool, &self.ops.replica, name, &figures).await {
            tracing::warn!(extension = %name, error = %e, "could not store metric figures");
        }
        let limits = Limits {
            failures: cfg.failure_threshold,
            panics: cfg.panic_threshold,
            panic_window: Duration::from_millis(cfg.panic_window_ms),
        };
        if let Some(reason) = self.ops.health.record(name, failed, m.cx.counters().panics(), &limits) {
            self.auto_disable(m, &reason, &check).await;
        }
    }

    /// Disables an unhealthy extension (and what depends on it), audits why, and publishes
    /// `extension.unhealthy`.
    async fn auto_disable(&self, m: &Managed, reason: &str, last: &HealthCheck) {
        let name = &m.metadata.name;
        tracing::error!(extension = %name, %reason, "extension is unhealthy; disabling it until an operator enables it");
        let why = format!("disabled by the health monitor: {reason}");
        match self.disable_as(name, true, "host", Some(&why)).await {
            Ok(disabled) => {
                let details = json!({ "reason": reason, "last_check": last, "disabled": disabled });
                self.audit(
                    AuditEntry::new("host", "extension.unhealthy", name.as_str()).details(details.clone()),
                )
                .await;
                self.publish("extension.unhealthy", json!({ "extension": name, "reason": reason }));
            }
            Err(e) => {
                tracing::error!(extension = %name, error = %e, "could not disable the unhealthy extension")
            }
        }
    }
}

pub(crate) fn health_str(status: HealthStatus) -> &'static str {
    match status {
        HealthStatus::Healthy => "healthy",
        HealthStatus::Degraded => "degraded",
        HealthStatus::Down => "down",
    }
}
