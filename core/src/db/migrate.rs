//! The migration engine: one transaction per step, checksums, history, and a Postgres advisory
//! lock so concurrent replicas apply (or revert) each step exactly once.
//!
//! The host's own steps (scope `annex`) and, in `schema` isolation, extension steps run on a
//! connection of the host's database user, which writes `annex.migrations` directly. In `role`
//! isolation an extension's steps run on a connection logged in as the extension's own role,
//! which cannot touch schema `annex`: it records its steps through the `annex_api` functions,
//! inside the step's own transaction, so a step and its record commit or roll back together.

use std::time::Instant;

use serde::Serialize;
use sqlx::{Connection, Executor, PgConnection, PgPool};

use crate::extension::migrations::{Migration, Migrations};

/// Why migrations could not be applied or reverted.
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
    /// A rollback would have to pass a step that has no `.down.sql`.
    #[error(
        "cannot roll back {scope} past {version} ({description}): it is irreversible (no \
         {version:04}_{description}.down.sql). Roll back to {version} or later instead"
    )]
    Irreversible {
        /// Whose migrations.
        scope: String,
        /// The irreversible step.
        version: i64,
        /// Its description.
        description: String,
    },
    /// The database records an applied step this binary does not contain.
    #[error(
        "migration {scope} {version} is applied in the database but not compiled into this \
         binary, so it cannot be reverted; run a binary that contains it"
    )]
    Unknown {
        /// Whose migrations.
        scope: String,
        /// The step.
        version: i64,
    },
    /// The database failed outside a step.
    #[error("migration bookkeeping failed: {0}")]
    Database(#[from] sqlx::Error),
}

/// One step the engine applied or reverted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MigrationStep {
    /// Whose migrations.
    pub scope: String,
    /// The step.
    pub version: i64,
    /// Its description.
    pub description: String,
    /// What was done.
    pub action: StepAction,
    /// How long the step's SQL took.
    pub duration_ms: i64,
}

/// What the engine did with a step.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StepAction {
    /// Its up SQL ran.
    Applied,
    /// Its down SQL ran.
    RolledBack,
}

impl std::fmt::Display for MigrationStep {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let action = match self.action {
            StepAction::Applied => "applied",
            StepAction::RolledBack => "rolled back",
        };
        write!(
            f,
            "{} {:04} {} {action} in {} ms",
            self.scope, self.version, self.description, self.duration_ms
        )
    }
}

/// Called after each completed step (the CLI prints a progress line).
pub(crate) type Progress<'a> = &'a mut (dyn FnMut(&MigrationStep) + Send);

/// How a connection records its steps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Ledger {
    /// The host's database user: plain SQL on `annex.migrations`.
    Host,
    /// An extension's own role: the `annex_api` functions.
    ExtensionRole,
}

/// Lock key for all migration work of one database; any constant works, this one spells annex.
const LOCK_KEY: i64 = 0x0061_6e6e_6578;

/// Takes the migration advisory lock for the rest of the transaction `tx` belongs to. All
/// schema work (migrations, roles, schemas, purge) takes it, so replicas never interleave DDL.
pub(crate) async fn lock(tx: &mut PgConnection) -> Result<(), sqlx::Error> {
    sqlx::query("select pg_advisory_xact_lock($1)").bind(LOCK_KEY).execute(&mut *tx).await.map(drop)
}

/// Creates the `annex` schema and the tracking tables if absent.
async fn bootstrap(conn: &mut PgConnection) -> Result<(), sqlx::Error> {
    let mut tx = conn.begin().await?;
    lock(&mut tx).await?;
    (&mut *tx)
        .execute(sqlx::raw_sql(
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
        create table if not exists annex.migration_history (
            id          bigserial primary key,
            scope       text not null,
            version     bigint not null,
            description text not null,
            checksum    text not null,
            action      text not null check (action in ('applied', 'rolled_back')),
            at          timestamptz not null default now(),
            duration_ms bigint not null
        );
        create index if not exists migration_history_scope on annex.migration_history (scope, id);
        "#,
        ))
        .await?;
    tx.commit().await
}

/// Applies the host's own pending steps (scope `annex`); returns how many were applied.
pub(crate) async fn apply(
    pool: &PgPool,
    scope: &str,
    migrations: &Migrations,
) -> Result<usize, MigrationError> {
    let mut conn = pool.acquire().await?;
    bootstrap(&mut conn).await?;
    Ok(up(&mut conn, Ledger::Host, scope, migrations, &mut |_| {}).await?.len())
}

// The ledger gives only SQL; the queries run inline in `up`/`down`. Async helpers taking
// `&mut Transaction<'_>` made the callers' futures unprovably `Send` (sqlx's executor impls
// on `&mut PgConnection` are per-lifetime), and those run in spawned tasks and handlers.
impl Ledger {
    /// Lists `(version, checksum)` of the applied steps of `$1`.
    fn applied_sql(self) -> &'static str {
        match self {
            Ledger::Host => {
                "select version, checksum from annex.migrations where scope = $1 order by version"
            }
            Ledger::ExtensionRole => "select version, checksum from annex_api.applied_migrations($1)",
        }
    }

    /// The checksum of step `$2` of `$1`, if applied.
    fn recorded_sql(self) -> &'static str {
        match self {
            Ledger::Host => "select checksum from annex.migrations where scope = $1 and version = $2",
            Ledger::ExtensionRole => {
                "select checksum from annex_api.applied_migrations($1) where version = $2"
            }
        }
    }

    /// Records step ($1 scope, $2 version, $3 description, $4 checksum, $5 ms) as applied.
    fn record_applied_sql(self) -> &'static str {
        match self {
            Ledger::Host => {
                r#"
            with step as (
                insert into annex.migrations (scope, version, description, checksum, duration_ms)
                values ($1, $2, $3, $4, $5)
                returning scope, version, description, checksum, duration_ms
            )
            insert into annex.migration_history (scope, version, description, checksum, action, duration_ms)
            select scope, version, description, checksum, 'applied', duration_ms from step
            "#
            }
            Ledger::ExtensionRole => "select annex_api.record_migration($1, $2, $3, $4, $5)",
        }
    }

    /// Records step ($1 scope, $2 version) as rolled back after $3 ms.
    fn record_reverted_sql(self) -> &'static str {
        match self {
            Ledger::Host => {
                r#"
            with gone as (
                delete from annex.migrations where scope = $1 and version = $2
                returning scope, version, description, checksum
            )
            insert into annex.migration_history (scope, version, description, checksum, action, duration_ms)
            select scope, version, description, checksum, 'rolled_back', $3 from gone
            "#
            }
            Ledger::ExtensionRole => "select annex_api.record_rollback($1, $2, $3)",
        }
    }
}

fn mismatch(scope: &str, m: &Migration, recorded: String) -> MigrationError {
    MigrationError::ChecksumMismatch {
        scope: scope.to_owned(),
        version: m.version,
        description: m.description.clone(),
        recorded,
        current: m.checksum(),
    }
}

fn elapsed_ms(started: Instant) -> i64 {
    i64::try_from(started.elapsed().as_millis()).unwrap_or(i64::MAX)
}

/// Applies the pending steps of `scope` in version order, each in its own transaction under the
/// advisory lock. An applied step whose checksum changed stops everything before any work.
pub(crate) async fn up(
    conn: &mut PgConnection,
    ledger: Ledger,
    scope: &str,
    migrations: &Migrations,
    progress: Progress<'_>,
) -> Result<Vec<MigrationStep>, MigrationError> {
    // Fast path without the lock: nothing pending (the usual restart) costs one query.
    let applied: Vec<(i64, String)> =
        sqlx::query_as(ledger.applied_sql()).bind(scope).fetch_all(&mut *conn).await?;
    for m in migrations.iter() {
        if let Some((_, recorded)) = applied.iter().find(|(v, _)| *v == m.version)
            && *recorded != m.checksum()
        {
            return Err(mismatch(scope, m, recorded.clone()));
        }
    }
    if migrations.iter().all(|m| applied.iter().any(|(v, _)| *v == m.version)) {
        return Ok(Vec::new());
    }

    let mut done = Vec::new();
    for m in migrations.iter() {
        let mut tx = conn.begin().await?;
        // Taken per step and re-checked under the lock: a replica that lost the race skips.
        lock(&mut tx).await?;
        let checksum = m.checksum();
        if let Some(recorded) = sqlx::query_scalar::<_, String>(ledger.recorded_sql())
            .bind(scope)
            .bind(m.version)
            .fetch_optional(&mut *tx)
            .await?
        {
            if recorded != checksum {
                return Err(mismatch(scope, m, recorded));
            }
            continue;
        }
        let started = Instant::now();
        if let Err(e) = (&mut *tx).execute(sqlx::raw_sql(&m.up)).await {
            // Dropping `tx` rolls back every statement of the step.
            return Err(MigrationError::Failed {
                scope: scope.to_owned(),
                version: m.version,
                description: m.description.clone(),
                message: e.to_string(),
            });
        }
        let ms = elapsed_ms(started);
        sqlx::query(ledger.record_applied_sql())
            .bind(scope)
            .bind(m.version)
            .bind(&m.description)
            .bind(&checksum)
            .bind(ms)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        if m.down.is_none() {
            tracing::info!(scope, version = m.version, description = %m.description, duration_ms = ms, "migration applied (irreversible: it has no .down.sql)");
        } else {
            tracing::info!(scope, version = m.version, description = %m.description, duration_ms = ms, "migration applied");
        }
        let step = MigrationStep {
            scope: scope.to_owned(),
            version: m.version,
            description: m.description.clone(),
            action: StepAction::Applied,
            duration_ms: ms,
        };
        progress(&step);
        done.push(step);
    }
    Ok(done)
}

/// Reverts every applied step of `scope` newer than `target`, newest first, each in its own
/// transaction under the advisory lock. Refuses before reverting anything if one of them is
/// irreversible, unknown to this binary, or changed since it was applied.
pub(crate) async fn down(
    conn: &mut PgConnection,
    ledger: Ledger,
    scope: &str,
    migrations: &Migrations,
    target: i64,
    progress: Progress<'_>,
) -> Result<Vec<MigrationStep>, MigrationError> {
    let mut applied: Vec<(i64, String)> =
        sqlx::query_as(ledger.applied_sql()).bind(scope).fetch_all(&mut *conn).await?;
    applied.retain(|(v, _)| *v > target);
    applied.sort_by_key(|(v, _)| std::cmp::Reverse(*v));
    let mut plan = Vec::with_capacity(applied.len());
    for (version, recorded) in applied {
        let Some(m) = migrations.iter().find(|m| m.version == version) else {
            return Err(MigrationError::Unknown { scope: scope.to_owned(), version });
        };
        if recorded != m.checksum() {
            return Err(mismatch(scope, m, recorded));
        }
        let Some(down_sql) = &m.down else {
            return Err(MigrationError::Irreversible {
                scope: scope.to_owned(),
                version,
                description: m.description.clone(),
            });
        };
        plan.push((m, down_sql));
    }

    let mut done = Vec::new();
    for (m, down_sql) in plan {
        let mut tx = conn.begin().await?;
        lock(&mut tx).await?;
        if sqlx::query_scalar::<_, String>(ledger.recorded_sql())
            .bind(scope)
            .bind(m.version)
            .fetch_optional(&mut *tx)
            .await?
            .is_none()
        {
            continue; // another process reverted it meanwhile
        }
        let started = Instant::now();
        if let Err(e) = (&mut *tx).execute(sqlx::raw_sql(down_sql)).await {
            return Err(MigrationError::Failed {
                scope: scope.to_owned(),
                version: m.version,
                description: format!("{} (down)", m.description),
                message: e.to_string(),
            });
        }
        let ms = elapsed_ms(started);
        sqlx::query(ledger.record_reverted_sql())
            .bind(scope)
            .bind(m.version)
            .bind(ms)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        tracing::info!(scope, version = m.version, description = %m.description, duration_ms = ms, "migration rolled back");
        let step = MigrationStep {
            scope: scope.to_owned(),
            version: m.version,
            description: m.description.clone(),
            action: StepAction::RolledBack,
            duration_ms: ms,
        };
        progress(&step);
        done.push(step);
    }
    Ok(done)
}
