//! Observing the host: Prometheus metrics, per-extension counters, request ids and the audit log.

pub(crate) mod audit;
pub(crate) mod metrics;
pub(crate) mod request_id;
pub(crate) mod stats;
