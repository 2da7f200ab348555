//! [`DbError`]: why the database could not be opened or used.

use crate::db::isolation::IsolationError;
use crate::db::migrate::MigrationError;
use crate::db::private_postgres::PostgresError;

/// Why the database could not be opened or used.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// `database.url` could not be parsed.
    #[error("database.url (or DATABASE_URL) is not a valid PostgreSQL URL: {0}")]
    Url(#[source] sqlx::Error),
    /// The database could not be reached.
    #[error("cannot connect to PostgreSQL: {0}")]
    Connect(#[source] sqlx::Error),
    /// A query failed.
    #[error("database error: {0}")]
    Query(#[from] sqlx::Error),
    /// The private PostgreSQL could not be run.
    #[error(transparent)]
    Postgres(#[from] PostgresError),
    /// The host's own migrations failed.
    #[error(transparent)]
    Migration(#[from] MigrationError),
    /// Extensions cannot be isolated in the database as configured.
    #[error(transparent)]
    Isolation(#[from] IsolationError),
}
