//! The migration engine: one transaction per step, checksums, and a Postgres advisory lock so
//! concurrent replicas apply each step exactly once.

use std::time::Instant;

use sqlx::{Connection, PgConnection, PgPool};

use crate::migrations::Migrations;

/// Why migrations could not be applied.
#[derive(Debug, thiserror::Error)]
pub enum MigrationError {
    /// A step's SQL failed; its transaction was rolled back.
    #[error("migration {scope} {version} ({description}) failed and was rolled back: {message}")]
    Failed {
        /// Whose migrations (`annex` for the host, else the extension name).
        scope: String,
        /// The step.
        version: i64,
        /// Its description.
        description: String,
        /// The database's message.
        message: String,
    },
    /// An applied step's file changed since it was applied.
    #[error(
        "migration {scope} {version} ({description}) was changed after it was applied: recorded \
         checksum {recorded}, file checksum {current}. Restore the original file and add a new \
         migration instead"
    )]
    ChecksumMismatch {
        /// Whose migrations.
        scope: String,
        /// The step.
        version: i64,
        /// Its description.
        description: String,
        /// The checksum stored when it was applied.
        recorded: String,
        /// The checksum of the file now.
        current: String,
    },
    /// The database failed outside a step.
    #[error("migration bookkeeping failed: {0}")]
    Database(#[from] sqlx::Error),
}

/// Lock key for all migration work of one database; any constant works, this one spells annex.
const LOCK_KEY: i64 = 0x0061_6e6e_6578;

/// Creates the `annex` schema and the tracking table if absent.
async fn bootstrap(conn: &mut PgConnection) -> Result<(), sqlx::Error> {
    let mut tx = conn.begin().await?;
    sqlx::query("select pg_advisory_xact_lock($1)").bind(LOCK_KEY).execute(&mut *tx).await?;
    sqlx::raw_sql(
        r#"
        create schema if not exists annex;
        create table if not exists annex.migrations (
            scope       text not null,              -- `annex` or the extension name
            version     bigint not null,
            description text not null,
            checksum    text not null,              -- hex SHA-256 of the up SQL
            applied_at  timestamptz not null default now(),
            duration_ms bigint not null,
            primary key (scope, version)
        );
        "#,
    )
    .execute(&mut *tx)
    .await?;
    tx.commit().await
}

/// Applies the pending steps of `scope` in order; returns how many were applied.
pub(crate) async fn apply(
    pool: &PgPool,
    scope: &str,
    migrations: &Migrations,
) -> Result<usize, MigrationError> {
    let mut conn = pool.acquire().await?;
    bootstrap(&mut conn).await?;
    let mut applied = 0;
    for m in migrations.iter() {
        let mut tx = conn.begin().await?;
        // Taken per step and re-checked under the lock: a replica that lost the race skips.
        sqlx::query("select pg_advisory_xact_lock($1)").bind(LOCK_KEY).execute(&mut *tx).await?;
        let recorded: Option<String> =
            sqlx::query_scalar("select checksum from annex.migrations where scope = $1 and version = $2")
                .bind(scope)
                .bind(m.version)
                .fetch_optional(&mut *tx)
                .await?;
        let checksum = m.checksum();
        if let Some(recorded) = recorded {
            if recorded != checksum {
                return Err(MigrationError::ChecksumMismatch {
                    scope: scope.to_owned(),
                    version: m.version,
                    description: m.description.clone(),
                    recorded,
                    current: checksum,
                });
            }
            continue;
        }
        let started = Instant::now();
        if let Err(e) = sqlx::raw_sql(&m.up).execute(&mut *tx).await {
            return Err(MigrationError::Failed {
                scope: scope.to_owned(),
                version: m.version,
                description: m.description.clone(),
                message: e.to_string(),
            });
        }
        let ms = i64::try_from(started.elapsed().as_millis()).unwrap_or(i64::MAX);
        sqlx::query(
            "insert into annex.migrations (scope, version, description, checksum, duration_ms) values ($1, $2, $3, $4, $5)",
        )
        .bind(scope)
        .bind(m.version)
        .bind(&m.description)
        .bind(&checksum)
        .bind(ms)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        tracing::info!(scope, version = m.version, description = %m.description, duration_ms = ms, "migration applied");
        applied += 1;
    }
    Ok(applied)
}
