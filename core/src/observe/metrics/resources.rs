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
        let in_use = m.cx.db().map_or(0, |pool| pool.size().saturating_sub(pool.num_idle() as u32));
        em.set_resource(Resource::DbConnections, f64::from(in_use));
        em.set_resource(Resource::StorageBytes, m.cx.usage().storage_bytes as f64);
    }
    metrics.set_active(active);
}
