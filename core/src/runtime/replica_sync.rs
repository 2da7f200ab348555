//! Keeps this replica in step with the database, over one LISTEN connection on two channels:
//! - `annex_control`: every enable, disable or config change made by another replica or by the
//!   CLI; this replica re-reads the extension's row and converges to it;
//! - `annex_sites`: every site activation, deactivation, config change or suspension, with the
//!   site's id (an empty payload means every site); this replica re-reads that site's gates;
//! - `annex_pipelines`: every change to the stage registry; this replica rebuilds its pipeline
//!   snapshot (a registry that does not validate is refused and the last snapshot kept).
//!
//! On (re)connection, and every [`RESYNC_EVERY`] as a safety net, it re-reads everything, so a
//! change made while the listener was disconnected is not lost.

use std::sync::Weak;
use std::time::Duration;

use sqlx::postgres::{PgListener, PgNotification};
use uuid::Uuid;

use crate::db::store::CHANNEL as CONTROL;
use crate::pipelines::store::CHANNEL as PIPELINES;
use crate::runtime::controller::Controller;
use crate::runtime::lifecycle::Runtime;
use crate::sites::gates::CHANNEL as SITES;

/// A full resync even without notifications.
const RESYNC_EVERY: Duration = Duration::from_secs(30);
/// Wait before connecting again after the listener failed.
const RETRY_AFTER: Duration = Duration::from_secs(1);

/// Runs until the host is dropped (or the task aborted at shutdown).
pub(crate) async fn run(host: Weak<Runtime>) {
    loop {
        let Some(pool) = host.upgrade().map(|h| h.pool().clone()) else { return };
        let mut listener = match PgListener::connect_with(&pool).await {
            Ok(l) => l,
            Err(e) => {
                tracing::warn!(error = %e, "replica sync: cannot connect; retrying");
                tokio::time::sleep(RETRY_AFTER).await;
                continue;
            }
        };
        if let Err(e) = listener.listen_all([CONTROL, SITES, PIPELINES]).await {
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
                    if !follow(&host, &note).await {
                        return;
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

/// Applies one notification; false when the host is gone.
async fn follow(host: &Weak<Runtime>, note: &PgNotification) -> bool {
    let Some(h) = host.upgrade() else { return false };
    if note.channel() == PIPELINES {
        h.pipelines().reload(h.pool()).await;
        return true;
    }
    if note.channel() == SITES {
        let payload = note.payload().trim();
        let site = match payload.parse::<Uuid>() {
            Ok(id) => Some(id),
            Err(_) if payload.is_empty() => None,
            Err(_) => {
                tracing::warn!(payload, "replica sync: the payload is not a site id; reloading every site");
                None
            }
        };
        reload_sites(&h, site).await;
        return true;
    }
    let payload: serde_json::Value = serde_json::from_str(note.payload()).unwrap_or_default();
    match payload.get("extension").and_then(|v| v.as_str()).filter(|n| h.find(n).is_some()) {
        Some(name) => {
            let hint = payload.get("kind").and_then(|v| v.as_str());
            Controller::with_runtime(&h).reconcile(name, hint).await;
        }
        None => tracing::debug!(payload = note.payload(), "replica sync: not an extension of this binary"),
    }
    true
}

/// Reloads one site's gates, or every site's. A failed read is logged and retried by the next
/// notification or resync; the gates keep what they had.
async fn reload_sites(h: &Runtime, site: Option<Uuid>) {
    let gates = h.site_gates();
    let result = match site {
        Some(id) => gates.reload_site(h.pool(), id).await,
        None => gates.reload_all(h.pool()).await,
    };
    if let Err(e) = result {
        tracing::warn!(error = %e, site = ?site, "replica sync: could not reload the site gates");
    }
}

/// Reconciles every extension and reloads every site; false when the host is gone.
async fn resync_all(host: &Weak<Runtime>) -> bool {
    let Some(h) = host.upgrade() else { return false };
    let controller = Controller::with_runtime(&h);
    for m in h.extensions() {
        controller.reconcile(m.name(), None).await;
    }
    reload_sites(&h, None).await;
    h.pipelines().reload(h.pool()).await;
    true
}
