//! Serving HTTP: the router (host endpoints, the admin API, every extension's routes), the
//! request path each extension route runs through, the hook chains it calls, and the pipeline
//! route (`POST /pipelines/<name>`).

pub(crate) mod error_shape;
pub(crate) mod hook_chain;
pub(crate) mod pipeline_path;
pub(crate) mod request_path;
pub(crate) mod router;
