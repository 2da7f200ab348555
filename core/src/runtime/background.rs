//! The tasks that run beside the extensions: the health monitor, the replica sync, the site
//! sync, the mirroring of stage health and the pruning of idle per-client rate-limit keys. Each holds the runtime weakly, so it
//! ends when the runtime is dropped, or when [`Background::stop`] aborts it at shutdown.

use std::sync::{Arc, Mutex, Weak};

use tokio::task::AbortHandle;

use crate::limits::rate_limit::PRUNE_INTERVAL;
use crate::runtime::lifecycle::Runtime;
use crate::runtime::{health_monitor, outbox_relay, replica_sync};

/// The running background tasks.
#[derive(Debug, Default)]
pub(crate) struct Background {
    tasks: Mutex<Vec<AbortHandle>>,
}

impl Background {
    /// Starts the health monitor, the replica sync, the site sync, the outbox relay (which
    /// publishes the outbox rows after `outbox_from` on the bus) and the rate-limit pruner.
    pub(crate) fn start(runtime: &Arc<Runtime>, outbox_from: i64) -> Self {
        let weak: Weak<Runtime> = Arc::downgrade(runtime);
        let tasks = vec![
            tokio::spawn(health_monitor::run(weak.clone())).abort_handle(),
            tokio::spawn(replica_sync::run(weak.clone())).abort_handle(),
            tokio::spawn(outbox_relay::run(weak.clone(), outbox_from)).abort_handle(),
            tokio::spawn(mirror_stage_health(weak.clone())).abort_handle(),
            tokio::spawn(prune_rate_limits(weak)).abort_handle(),
        ];
        Self { tasks: Mutex::new(tasks) }
    }

    /// Stops every task (at shutdown, before the extensions stop). Safe to call twice.
    pub(crate) fn stop(&self) {
        for h in self.tasks.lock().unwrap_or_else(|p| p.into_inner()).drain(..) {
            h.abort();
        }
    }
}

/// Prunes idle per-client rate-limit keys every [`PRUNE_INTERVAL`].
async fn prune_rate_limits(runtime: Weak<Runtime>) {
    let mut tick = tokio::time::interval(PRUNE_INTERVAL);
    tick.tick().await;
    loop {
        tick.tick().await;
        let Some(rt) = runtime.upgrade() else { return };
        for m in rt.extensions() {
            m.cx().limits().prune();
        }
    }
}

/// How often this replica writes its stage figures to `annex.stage_health`.
const MIRROR_EVERY: std::time::Duration = std::time::Duration::from_secs(10);

/// Mirrors every stage's health figures to the database every [`MIRROR_EVERY`].
async fn mirror_stage_health(runtime: Weak<Runtime>) {
    let mut tick = tokio::time::interval(MIRROR_EVERY);
    tick.tick().await;
    loop {
        tick.tick().await;
        let Some(rt) = runtime.upgrade() else { return };
        rt.pipelines().mirror_health(rt.pool(), rt.replica()).await;
    }
}
