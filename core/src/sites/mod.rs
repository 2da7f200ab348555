//! Sites (tenants): each site activates its own extensions with its own config, after
//! pre-activation validation and the compliance sign-offs its extensions require. The model and
//! a walk-through are in docs/sites.md; the tables in migrations/0007_sites.up.sql.

pub(crate) mod gates;

pub use crate::config::canonical::config_hash;
