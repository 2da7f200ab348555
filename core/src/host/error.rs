//! [`HostError`]: why the host could not start or run.

use crate::config::ConfigError;
use crate::db::isolation::IsolationError;
use crate::db::migrate::MigrationError;
use crate::db::private_postgres::PostgresError;
use crate::plan::PlanErrors;
use crate::registration::RegistrationError;

/// Why the host could not start.
#[derive(Debug, thiserror::Error)]
pub enum HostError {
    /// The compiled-in set is invalid (names, versions, dependencies, routes).
    #[error(transparent)]
    Plan(#[from] PlanErrors),
    /// An enabled extension crate registered nothing.
    #[error(transparent)]
    Registration(#[from] RegistrationError),
    /// The configuration is invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// `database.url` could not be parsed.
    #[error("database.url (or DATABASE_URL) is not a valid PostgreSQL URL: {0}")]
    DatabaseUrl(#[source] sqlx::Error),
    /// The database could not be reached.
    #[error("cannot connect to PostgreSQL: {0}")]
    Connect(#[source] sqlx::Error),
    /// A database call failed.
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    /// The private PostgreSQL could not be run.
    #[error(transparent)]
    Postgres(#[from] PostgresError),
    /// The host's own migrations failed.
    #[error(transparent)]
    Migration(#[from] MigrationError),
    /// Extensions cannot be isolated in the database as configured.
    #[error(transparent)]
    Isolation(#[from] IsolationError),
    /// A rate limit or quota in the config cannot be applied.
    #[error(transparent)]
    Limits(#[from] crate::quota::LimitsError),
    /// The listen address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A bug in annex itself.
    #[error("internal error: {0}")]
    Internal(String),
}
