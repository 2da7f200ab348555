//! Keeps this replica in step with the database: every enable, disable or config change made by
//! another replica or by the CLI arrives as `NOTIFY annex_control`, and this replica re-reads the
//! extension's row and converges to it. On (re)connection, and every
//! [`RESYNC_EVERY`] as a safety net, it re-reads every row, so a change made while the listener
//! was disconnected is not lost.

use std::sync::Weak;
use std::time::Duration;

use serde_json::json;
use sqlx::postgres::PgListener;

use crate::audit::AuditEntry;
use crate::db::ops_store::{self, CHANNEL};
use crate::gate::ExtensionState;
use crate::host::{HostInner, Managed};

/// A full resync even without notifications.
const RESYNC_EVERY: Duration = Duration::from_secs(30);
/// Wait before connecting again after the listener failed.
const RETRY_AFTER: Duration = Duration::from_secs(1);

/// Runs until the host is dropped (or the task aborted at shutdown).
pub(crate) async fn run(host: Weak<HostInner>) {
    loop {
        let Some(pool) = host.upgrade().map(|h| h.pool.clone()) else { return };
        let mut listener = match PgListener::connect_with(&pool).await {
            Ok(l) => l,
            Err(e) => {
                tracing::warn!(error = %e, "replica sync: cannot connect; retrying");
                tokio::time::sleep(RETRY_AFTER).await;
                continue;
            }
        };
        if let Err(e) = listener.listen(CHANNEL).await {
            tracing::warn!(error = %e, "replica sync: cannot LISTEN; retrying");
            tokio::time::sleep(RETRY_AFTER).await;
            continue;
        }
        drop(pool);
        // Anything that changed before LISTEN took effect is picked up here.
        if !resync_all(&host).await {
            return;
        }
        loop {
            match tokio::time::timeout(RESYNC_EVERY, listener.try_recv()).await {
                Err(_) => {
                    if !resync_all(&host).await {
                        return;
                    }
                }
                Ok(Ok(Some(note))) => {
                    let Some(h) = host.upgrade() else { return };
                    let payload: serde_json::Value = serde_json::from_str(note.payload()).unwrap_or_default();
                    match payload.get("extension").and_then(|v| v.as_str()).and_then(|n| h.find(n)) {
                        Some(m) => h.reconcile(m, payload.get("kind").and_then(|v| v.as_str())).await,
                        None => tracing::debug!(
                            payload = note.payload(),
                            "replica sync: not an extension of this binary"
                        ),
                    }
                }
                // The connection dropped. Start over: a fresh LISTEN first, then a full resync,
                // so nothing sent while disconnected (or while reconnecting) is missed.
                Ok(Ok(None)) => {
                    tracing::warn!("replica sync: connection lost; reconnecting and resynchronising");
                    break;
                }
                Ok(Err(e)) => {
                    tracing::warn!(error = %e, "replica sync: listener failed; reconnecting");
                    tokio::time::sleep(RETRY_AFTER).await;
                    break;
                }
            }
        }
    }
}

/// Reconciles every extension; false when the host is gone.
async fn resync_all(host: &Weak<HostInner>) -> bool {
    let Some(h) = host.upgrade() else { return false };
    for m in &h.extensions {
        h.reconcile(m, None).await;
    }
    true
}

impl HostInner {
    /// Makes `m` match its row: the operator's switch and the stored config. `kind` is the
    /// notification's hint; an explicit `enabled` also retries an extension that failed to start.
    pub(crate) async fn reconcile(&self, m: &Managed, kind: Option<&str>) {
        let name = &m.metadata.name;
        // Read under the lock: a row read before a local change finished would undo it.
        let _serial = self.ops.control.lock().await;
        let row = match ops_store::switch_and_config(&self.pool, name).await {
            Ok(Some(row)) => row,
            Ok(None) => return,
            Err(e) => {
                tracing::warn!(extension = %name, error = %e, "replica sync: cannot read the extension's row");
                return;
            }
        };
        let (enabled, config) = row;
        let state = m.slot.state();
        if !ready_for_changes(&state) {
            return;
        }
        if *m.cx.config() != config {
            match self.apply_config(m, &config).await {
                Ok(()) => {
                    tracing::info!(extension = %name, "config changed on another replica; applied");
                    self.publish(
                        "extension.config_changed",
                        json!({ "extension": name, "replica": self.ops.replica }),
                    );
                }
                Err(reason) => {
                    tracing::error!(extension = %name, %reason, "config changed on another replica but this one rejected it; keeping the old config");
                    let entry = AuditEntry::new("host", "extension.config_apply_failed", name.as_str())
                        .details(json!({ "replica": self.ops.replica, "reason": reason }));
                    self.audit(entry).await;
                }
            }
        }
        let retry_failed = kind == Some("enabled") && matches!(state, ExtensionState::Failed(_));
        match (enabled, &state) {
            (false, ExtensionState::Running | ExtensionState::Failed(_) | ExtensionState::Starting) => {
                self.stop_one(m).await;
                self.publish("extension.disabled", json!({ "extension": name, "replica": self.ops.replica }));
            }
            (true, ExtensionState::Disabled) | (true, ExtensionState::Failed(_))
                if retry_failed || state == ExtensionState::Disabled =>
            {
                self.ops.health.reset(name, m.cx.counters().panics());
                match self.start_one(m).await {
                    Ok(()) => {
                        self.publish(
                            "extension.enabled",
                            json!({ "extension": name, "replica": self.ops.replica }),
                        );
                    }
                    Err(reason) => {
                        tracing::error!(extension = %name, %reason, "enabled on another replica but failed to start here");
                        m.slot.set(ExtensionState::Failed(reason));
                    }
                }
            }
            _ => {}
        }
    }
}

/// Shutdown (`Stopped`) and startup (`Registered`, `Starting`) are the host's own business.
fn ready_for_changes(state: &ExtensionState) -> bool {
    !matches!(state, ExtensionState::Stopped | ExtensionState::Registered)
}
