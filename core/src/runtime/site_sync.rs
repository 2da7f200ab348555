//! Keeps this replica's site gates in step with the database: the sites domain sends
//! `NOTIFY annex_sites, '<site id>'` in every activation, deactivation, config change or
//! suspension, and this replica re-reads that site; an empty payload re-reads every site. On
//! (re)connection, and every [`RESYNC_EVERY`] as a safety net, it re-reads every site, so a
//! change made while the listener was disconnected is not lost.

use std::sync::Weak;
use std::time::Duration;

use sqlx::postgres::PgListener;
use uuid::Uuid;

use crate::runtime::lifecycle::Runtime;
use crate::sites::gates::CHANNEL;

/// A full reload even without notifications.
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
                tracing::warn!(error = %e, "site sync: cannot connect; retrying");
                tokio::time::sleep(RETRY_AFTER).await;
                continue;
            }
        };
        if let Err(e) = listener.listen(CHANNEL).await {
            tracing::warn!(error = %e, "site sync: cannot LISTEN; retrying");
            tokio::time::sleep(RETRY_AFTER).await;
            continue;
        }
        drop(pool);
        // Anything that changed before LISTEN took effect is picked up here.
        if !reload(&host, None).await {
            return;
        }
        loop {
            match tokio::time::timeout(RESYNC_EVERY, listener.try_recv()).await {
                Err(_) => {
                    if !reload(&host, None).await {
                        return;
                    }
                }
                Ok(Ok(Some(note))) => {
                    let payload = note.payload().trim();
                    let site = if payload.is_empty() {
                        None
                    } else {
                        match payload.parse::<Uuid>() {
                            Ok(id) => Some(id),
                            Err(_) => {
                                tracing::warn!(
                                    payload,
                                    "site sync: the payload is not a site id; reloading every site"
                                );
                                None
                            }
                        }
                    };
                    if !reload(&host, site).await {
                        return;
                    }
                }
                // The connection dropped. Start over: a fresh LISTEN first, then a full reload,
                // so nothing sent while disconnected (or while reconnecting) is missed.
                Ok(Ok(None)) => {
                    tracing::warn!("site sync: connection lost; reconnecting and reloading");
                    break;
                }
                Ok(Err(e)) => {
                    tracing::warn!(error = %e, "site sync: listener failed; reconnecting");
                    tokio::time::sleep(RETRY_AFTER).await;
                    break;
                }
            }
        }
    }
}

/// Reloads one site, or every site; false when the host is gone. A failed read is logged and
/// retried by the next notification or resync; the gates keep what they had.
async fn reload(host: &Weak<Runtime>, site: Option<Uuid>) -> bool {
    let Some(h) = host.upgrade() else { return false };
    let gates = h.site_gates();
    let result = match site {
        Some(id) => gates.reload_site(h.pool(), id).await,
        None => gates.reload_all(h.pool()).await,
    };
    if let Err(e) = result {
        tracing::warn!(error = %e, site = ?site, "site sync: could not reload the site gates");
    }
    true
}
