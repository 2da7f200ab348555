//! The host's own migrations, embedded from `migrations/` at the workspace root.

use crate::migrations::{Migration, Migrations};

/// The scope under which the host's own steps are tracked.
pub(crate) const HOST_SCOPE: &str = "annex";

macro_rules! host_migration {
    ($version:literal, $name:literal) => {
        Migration::new(
            $version,
            $name,
            include_str!(concat!("../../../migrations/", stringify!($version), "_", $name, ".up.sql")),
            Some(include_str!(concat!(
                "../../../migrations/",
                stringify!($version),
                "_",
                $name,
                ".down.sql"
            ))),
        )
    };
}

#[allow(clippy::zero_prefixed_literal)] // versions read like the file names
pub(crate) fn host_migrations() -> Migrations {
    Migrations::new(vec![
        host_migration!(0001, "extension_state"),
        host_migration!(0002, "audit_log"),
        host_migration!(0005, "operations"),
    ])
}
