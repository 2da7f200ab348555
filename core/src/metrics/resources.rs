//! Refreshing the gauges that are read, not counted: resources and the active count.

use std::sync::atomic::Ordering;

use super::Resource;
use crate::gate::ExtensionState;
use crate::host::HostInner;

/// Sets `extension_resource_usage` and `extensions_active_total` from their sources. Called
/// before every render, so the request path never pays for it.
pub(crate) fn refresh(host: &HostInner) {
    let metrics = &host.ops.metrics;
    let mut active = 0;
    for m in &host.extensions {
        if m.slot.state() == ExtensionState::Running {
            active += 1;
        }
        let Some(em) = metrics.extension(&m.metadata.name) else { continue };
        em.set_resource(Resource::InFlightRequests, em.in_flight() as f64);
        em.set_resource(Resource::BackgroundTasks, m.cx.running_tasks() as f64);
        let busy = m.cx.counters().busy_nanos.load(Ordering::Relaxed);
        em.set_resource(Resource::BusySeconds, busy as f64 / 1e9);
        // Wired after merge with the per-extension pools (issue 3) and storage quotas (issue 4):
        //   em.set_resource(Resource::DbConnections, in_use_connections_of(&m.cx) as f64);
        //   em.set_resource(Resource::StorageBytes, storage_bytes_of(&m.cx) as f64);
        // Until then both stay 0; code elsewhere may also set them with `Metrics::set_resource`.
    }
    metrics.set_active(active);
}
