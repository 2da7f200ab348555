//! [`HostError`]: why the host could not start or run.

use crate::config::ConfigError;
use crate::config::admin_token::AdminTokenError;
use crate::db::error::DbError;
use crate::extension::registration::RegistrationError;
use crate::limits::error::LimitsError;
use crate::plan::PlanErrors;

/// Why the host could not start or run.
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
    /// The database could not be opened, migrated, isolated or used.
    #[error(transparent)]
    Database(#[from] DbError),
    /// A rate limit or quota in the config cannot be applied.
    #[error(transparent)]
    Limits(#[from] LimitsError),
    /// The admin token could not be read or generated.
    #[error(transparent)]
    AdminToken(#[from] AdminTokenError),
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

impl From<sqlx::Error> for HostError {
    fn from(e: sqlx::Error) -> Self {
        Self::Database(DbError::Query(e))
    }
}
