//! Per-extension limits: quotas (concurrency, time, body size, tasks, storage, CPU, memory) and
//! rate limits, each an atomic the request path reads without a lock, reloadable at run time.

pub(crate) mod cpu;
pub(crate) mod error;
pub(crate) mod memory;
pub(crate) mod meter;
pub(crate) mod quota;
pub(crate) mod rate_limit;
