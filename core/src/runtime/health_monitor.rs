//! The health monitor: calls every running extension's `health()` on an interval, keeps the
//! results in `annex.extension_health`, sets `extension_health_status`, and disables an
//! extension after `failure_threshold` consecutive failed checks or `panic_threshold` panics
//! within `panic_window_ms` (see [`HealthConfig`](crate::config::HealthConfig)).

use std::sync::Weak;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use serde_json::json;
use tracing::Instrument;

use crate::db::store::{self, HealthCheck};
use crate::extension::gate::ExtensionState;
use crate::extension::health::HealthStatus;
use crate::extension::panic;
use crate::observe::audit::AuditEntry;
use crate::observe::metrics::ErrorType;
use crate::observe::stats::Counters;
use crate::runtime::controller::Controller;
use crate::runtime::health_book::Limits;
use crate::runtime::lifecycle::{Managed, Runtime};

/// Prune old history about once a day at the default interval.
const PRUNE_EVERY: u64 = 8_640;

/// Runs until the host is dropped (or the task aborted at shutdown).
pub(crate) async fn run(runtime: Weak<Runtime>) {
    let mut round: u64 = 0;
    loop {
        let interval = match runtime.upgrade() {
            Some(rt) => Duration::from_millis(rt.config().health.interval_ms.max(10)),
            None => return,
        };
        tokio::time::sleep(interval).await;
        let Some(rt) = runtime.upgrade() else { return };
        let controller = Controller::with_runtime(&rt);
        for m in rt.extensions() {
            if m.state() == ExtensionState::Running {
                check(&controller, &rt, m).await;
            }
        }
        round += 1;
        if round.is_multiple_of(PRUNE_EVERY)
            && let Err(e) = store::prune_health(rt.pool()).await
        {
            tracing::warn!(error = %e, "could not prune old health history");
        }
    }
}

/// One health check of one extension, and what follows from it.
pub(crate) async fn check(controller: &Controller, rt: &Runtime, m: &Managed) {
    let name = m.name();
    let cfg = &rt.config().health;
    let started = Instant::now();
    let call = panic::catch(m.extension().health(m.cx())).instrument(m.cx().span().clone());
    let outcome = tokio::time::timeout(Duration::from_millis(cfg.timeout_ms), call).await;
    let duration_ms = started.elapsed().as_secs_f64() * 1000.0;
    let em = m.metrics();
    let (status, message, failure) = match outcome {
        Ok(Ok(h)) => (h.status, h.message, None),
        Ok(Err(panic)) => {
            Counters::bump(&m.cx().counters().lifecycle_panics);
            em.error(ErrorType::Panic);
            (HealthStatus::Down, Some(format!("health() panicked: {panic}")), Some("panic"))
        }
        Err(_) => (
            HealthStatus::Down,
            Some(format!("health() did not answer within {} ms", cfg.timeout_ms)),
            Some("timeout"),
        ),
    };
    let failed = status == HealthStatus::Down;
    em.set_health(match status {
        HealthStatus::Healthy => 1.0,
        HealthStatus::Degraded => 0.5,
        HealthStatus::Down => 0.0,
    });
    if failed {
        em.error(ErrorType::Health);
    }
    let check = HealthCheck {
        at: String::new(),
        replica: rt.replica().to_owned(),
        status: health_str(status).to_owned(),
        message,
        failure: failure.map(str::to_owned),
        duration_ms,
    };
    if let Err(e) = store::record_health(rt.pool(), name, rt.replica(), &check).await {
        tracing::warn!(extension = %name, error = %e, "could not store a health check");
    }
    rt.refresh_metrics();
    let figures = rt.metrics().extension_json(name);
    if let Err(e) = store::store_figures(rt.pool(), rt.replica(), name, &figures).await {
        tracing::warn!(extension = %name, error = %e, "could not store metric figures");
    }
    let limits = Limits {
        failures: cfg.failure_threshold,
        panics: cfg.panic_threshold,
        panic_window: Duration::from_millis(cfg.panic_window_ms),
    };
    if let Some(reason) = rt.health_book().record(name, failed, m.cx().counters().panics(), &limits) {
        auto_disable(controller, rt, m, &reason, &check).await;
        return;
    }
    quotas(controller, rt, m).await;
}

/// How long an extension may stay over its memory quota before it is disabled: the health
/// window, `interval_ms × failure_threshold` (at least one interval).
pub(crate) fn memory_window(cfg: &crate::config::HealthConfig) -> Duration {
    Duration::from_millis(cfg.interval_ms.max(10).saturating_mul(u64::from(cfg.failure_threshold.max(1))))
}

/// The quotas' part of a round: a health-history entry when the CPU quota starts acting or the
/// memory quota refuses requests, and the auto-disable of an extension over its memory quota
/// for the whole health window.
async fn quotas(controller: &Controller, rt: &Runtime, m: &Managed) {
    let name = m.name();
    let limits = m.cx().limits();
    let cpu = &limits.cpu;
    let cpu_actions = cpu.delayed.load(Ordering::Relaxed) + cpu.refused.load(Ordering::Relaxed);
    let over = limits.memory.over(limits.owner());
    let news = rt.health_book().quotas(
        name,
        cpu_actions,
        limits.memory.refused.load(Ordering::Relaxed),
        over.is_some(),
    );
    let row = |status: &str, failure: &str, message: String| HealthCheck {
        at: String::new(),
        replica: rt.replica().to_owned(),
        status: status.to_owned(),
        message: Some(message),
        failure: Some(failure.to_owned()),
        duration_ms: 0.0,
    };
    let mut rows = Vec::new();
    if news.cpu_started {
        let message = format!(
            "CPU quota reached (quotas.cpu_ms_per_s = {}): new requests answer 429, its handlers and tasks are delayed",
            cpu.limit().unwrap_or_default()
        );
        rows.push(row("degraded", "cpu_quota", message));
    }
    let window = memory_window(&rt.config().health);
    let disable = match (over, news.memory_over_for) {
        (Some((live, max)), Some(for_)) => {
            if news.memory_refused > 0 || for_ >= window {
                let message = format!(
                    "memory quota exceeded: {live} bytes live, quotas.max_memory_bytes = {max}; {} requests refused since the last check",
                    news.memory_refused
                );
                rows.push(row("degraded", "memory_quota", message));
            }
            (for_ >= window).then(|| {
                format!(
                    "memory quota exceeded for {} ms (the health window): {live} bytes live, quotas.max_memory_bytes = {max}",
                    for_.as_millis()
                )
            })
        }
        _ => None,
    };
    for check in &rows {
        if let Err(e) = store::record_health(rt.pool(), name, rt.replica(), check).await {
            tracing::warn!(extension = %name, error = %e, "could not store a quota entry in the health history");
        }
    }
    if let (Some(reason), Some(last)) = (disable, rows.last()) {
        auto_disable(controller, rt, m, &reason, last).await;
    }
}

/// Disables an unhealthy extension (and what depends on it) through the controller, audits why,
/// and publishes `extension.unhealthy`.
async fn auto_disable(controller: &Controller, rt: &Runtime, m: &Managed, reason: &str, last: &HealthCheck) {
    let name = m.name();
    tracing::error!(extension = %name, %reason, "extension is unhealthy; disabling it until an operator enables it");
    let why = format!("disabled by the health monitor: {reason}");
    match controller.disable(name, true, "host", Some(&why)).await {
        Ok(report) => {
            m.metrics().error(ErrorType::AutoDisabled);
            let details = json!({ "reason": reason, "last_check": last, "disabled": report.disabled });
            rt.audit(AuditEntry::new("host", "extension.unhealthy", name).details(details)).await;
            rt.publish("extension.unhealthy", json!({ "extension": name, "reason": reason }));
        }
        Err(e) => {
            tracing::error!(extension = %name, error = %e, "could not disable the unhealthy extension")
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
