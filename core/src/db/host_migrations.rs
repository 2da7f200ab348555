//! The host's own migrations, embedded from `migrations/` at the workspace root.

use crate::migrations::{Migration, Migrations};

/// The scope under which the host's own steps are tracked.
pub(crate) const HOST_SCOPE: &str = "annex";

pub(crate) fn host_migrations() -> Migrations {
    Migrations::new(vec![Migration::new(
        1,
        "extension_state",
        include_str!("../../../migrations/0001_extension_state.up.sql"),
        Some(include_str!(
            "../../../migrations/0001_extension_state.down.sql"
        )),
    )])
}
