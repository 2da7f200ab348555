//! The host's operations state: metrics, the admin token, the health book, the control lock and
//! the background tasks (health monitor, replica sync) that run beside the extensions.

use std::sync::{Arc, Mutex, Weak};

use tokio::task::AbortHandle;

use crate::config::Config;
use crate::error::HostError;
use crate::health_monitor::HealthBook;
use crate::host::{HostInner, Managed};
use crate::metrics::Metrics;

/// Held in [`HostInner`] as `ops`.
#[derive(Debug)]
pub(crate) struct Ops {
    pub(crate) metrics: Metrics,
    pub(crate) admin_token: String,
    /// `<hostname>:<pid>`: names this process in health history and metric snapshots.
    pub(crate) replica: String,
    /// Serialises enable, disable, config changes and replica sync, so two never interleave.
    pub(crate) control: tokio::sync::Mutex<()>,
    pub(crate) health: HealthBook,
    tasks: Mutex<Vec<AbortHandle>>,
}

impl Ops {
    pub(crate) fn new(config: &Config, extensions: &[Managed]) -> Result<Self, HostError> {
        let metrics = Metrics::new(extensions.iter().map(|m| {
            let routes = m
                .routes
                .iter()
                .map(|r| (r.method.clone(), format!("/ext/{}{}", m.metadata.name, r.path)))
                .collect();
            (m.metadata.name.as_str(), routes)
        }));
        Ok(Self {
            metrics,
            admin_token: crate::admin_api::resolve_token(config)?,
            replica: replica_name(),
            control: tokio::sync::Mutex::new(()),
            health: HealthBook::default(),
            tasks: Mutex::new(Vec::new()),
        })
    }

    /// Starts the health monitor and the replica sync. They hold the host weakly and end when
    /// it is dropped or [`Ops::stop`] is called.
    pub(crate) fn start(host: &Arc<HostInner>) {
        let weak: Weak<HostInner> = Arc::downgrade(host);
        let handles = [
            tokio::spawn(crate::health_monitor::run(weak.clone())).abort_handle(),
            tokio::spawn(crate::replica_sync::run(weak)).abort_handle(),
        ];
        host.ops.tasks.lock().unwrap_or_else(|p| p.into_inner()).extend(handles);
    }

    /// Stops the background tasks (at shutdown, before extensions stop).
    pub(crate) fn stop(&self) {
        for h in self.tasks.lock().unwrap_or_else(|p| p.into_inner()).drain(..) {
            h.abort();
        }
    }
}

fn replica_name() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".into());
    // Tests run several hosts in one process; each needs its own name.
    static HOSTS_IN_PROCESS: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    match HOSTS_IN_PROCESS.fetch_add(1, std::sync::atomic::Ordering::Relaxed) {
        0 => format!("{host}:{}", std::process::id()),
        n => format!("{host}:{}.{n}", std::process::id()),
    }
}
