//! Serving HTTP: the router (host endpoints, the admin API, every extension's routes), the
//! request path each extension route runs through, and the hook chains it calls.

pub(crate) mod error_shape;
pub(crate) mod hook_chain;
pub(crate) mod request_path;
pub(crate) mod router;
