//! The host's own migrations, embedded from `migrations/` at the workspace root.

use crate::extension::migrations::{Migration, Migrations};

/// The scope under which the host's own steps are tracked.
pub(crate) const HOST_SCOPE: &str = "annex";

macro_rules! host_migration {
    ($version:literal, $file:literal) => {
        Migration::new(
            $version,
            // The description is the file stem without its `NNNN_` prefix.
            &$file[5..],
            include_str!(concat!("../../../migrations/", $file, ".up.sql")),
            Some(include_str!(concat!("../../../migrations/", $file, ".down.sql"))),
        )
    };
}

pub(crate) fn host_migrations() -> Migrations {
    Migrations::new(vec![
        host_migration!(1, "0001_extension_state"),
        host_migration!(2, "0002_audit_log"),
        host_migration!(3, "0003_extension_isolation"),
        host_migration!(5, "0005_operations"),
        host_migration!(6, "0006_audit_chain"),
        host_migration!(7, "0007_sites"),
        host_migration!(8, "0008_entity_schemas"),
        host_migration!(9, "0009_pipelines"),
        host_migration!(10, "0010_event_outbox"),
        host_migration!(11, "0011_admin_sessions"),
        host_migration!(12, "0012_durable_migration_events"),
    ])
}
