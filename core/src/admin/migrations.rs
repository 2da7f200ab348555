//! Operator commands on extension databases: apply, roll back, report, purge. The CLI's
//! `annex extensions migrate|rollback|migrations|purge` call these on an [`Admin`].

use serde::Serialize;

use crate::admin::client::Admin;
use crate::db::error::DbError;
use crate::db::extension_db::{self, OpenError};
use crate::db::isolation::{IsolationError, Isolator, schema_name};
use crate::db::migrate::{MigrationError, MigrationStep};
use crate::db::state;
use crate::entities::migrations::{self as entity_migrations, EntityOpenError, EntityPlan};
use crate::extension::migrations::Migrations;
use crate::observe::audit::{self, AuditEntry};
use crate::plan::catalog::Declared;

/// Why an operator command on an extension's database failed.
#[derive(Debug, thiserror::Error)]
pub enum ExtensionDbError {
    /// The extension is not compiled into this binary, so its migrations are unknown.
    #[error(
        "no extension named `{0}` is compiled into this binary (`annex extensions list` shows \
         which are); its migrations are unknown here"
    )]
    NotCompiledIn(String),
    /// Purge and rollback refuse while the extension is enabled: they change the database
    /// under a running extension.
    #[error(
        "extension `{name}` is enabled; disable it first (`annex extensions disable {name}`{hint}, \
         or `enabled = false` under [extensions.{name}] in annex.toml), then {operation}"
    )]
    Enabled {
        /// The extension.
        name: String,
        /// `purge it`, `roll it back`.
        operation: &'static str,
        /// How the command itself can disable it, if it can.
        hint: &'static str,
    },
    /// Isolation could not be prepared.
    #[error(transparent)]
    Isolation(#[from] IsolationError),
    /// A migration step failed or was refused.
    #[error(transparent)]
    Migration(#[from] MigrationError),
    /// The database failed.
    #[error(transparent)]
    Database(#[from] DbError),
    /// The entity declaration's steps could not be generated, or are refused.
    #[error("{0}")]
    Entities(String),
}

impl From<EntityOpenError> for ExtensionDbError {
    fn from(e: EntityOpenError) -> Self {
        match e {
            EntityOpenError::Open(e) => e.into(),
            EntityOpenError::Store(e) => Self::Database(DbError::from(e)),
            EntityOpenError::Plan(e) => Self::Entities(e.to_string()),
        }
    }
}

impl From<OpenError> for ExtensionDbError {
    fn from(e: OpenError) -> Self {
        match e {
            OpenError::Isolation(e) => Self::Isolation(e),
            OpenError::Migration(e) => Self::Migration(e),
        }
    }
}

impl From<sqlx::Error> for ExtensionDbError {
    fn from(e: sqlx::Error) -> Self {
        Self::Database(DbError::Query(e))
    }
}

/// One extension's migrations: each step's state, and everything ever applied or reverted.
#[derive(Debug, Clone, Serialize)]
pub struct MigrationReport {
    /// The extension.
    pub extension: String,
    /// Its schema.
    pub schema: String,
    /// Every step known to this binary or to the database, by version.
    pub steps: Vec<MigrationStatus>,
    /// Applications and rollbacks, oldest first.
    pub history: Vec<MigrationHistoryEntry>,
}

/// One step and where it stands.
#[derive(Debug, Clone, Serialize)]
pub struct MigrationStatus {
    /// The step.
    pub version: i64,
    /// Its description.
    pub description: String,
    /// `applied`, `pending`, `changed` (applied, but its file differs now) or `unknown`
    /// (applied, but not compiled into this binary).
    pub state: String,
    /// Whether it has a `.down.sql` (`None` if unknown to this binary).
    pub reversible: Option<bool>,
    /// When it was applied (UTC, RFC 3339).
    pub applied_at: Option<String>,
    /// How long it took.
    pub duration_ms: Option<i64>,
}

/// One application or rollback of a step.
#[derive(Debug, Clone, Serialize)]
pub struct MigrationHistoryEntry {
    /// The step.
    pub version: i64,
    /// Its description.
    pub description: String,
    /// `applied` or `rolled_back`.
    pub action: String,
    /// When (UTC, RFC 3339).
    pub at: String,
    /// How long the SQL took.
    pub duration_ms: i64,
}

impl Admin {
    async fn isolator(&self) -> Result<Isolator, ExtensionDbError> {
        Ok(Isolator::prepare(&self.db.pool, &self.db.options, self.controller().config()).await?)
    }

    /// Applies the pending migrations of `name` as its own role; `progress` sees each step. A
    /// change of its entity declaration that can lose data is refused (see
    /// [`Admin::apply_entities`]).
    pub async fn migrate(
        &self,
        name: &str,
        progress: impl FnMut(&MigrationStep) + Send,
    ) -> Result<Vec<MigrationStep>, ExtensionDbError> {
        self.apply(name, false, progress).await
    }

    /// Applies the pending migrations of `name`, its entity declaration's change included even
    /// when it can lose data if `allow_destructive` (`annex entities apply --allow-destructive`).
    pub async fn apply_entities(
        &self,
        name: &str,
        allow_destructive: bool,
        progress: impl FnMut(&MigrationStep) + Send,
    ) -> Result<Vec<MigrationStep>, ExtensionDbError> {
        self.apply(name, allow_destructive, progress).await
    }

    /// What applying `name`'s entity declaration would change, and its SQL both ways.
    pub async fn entity_plan(&self, name: &str) -> Result<EntityPlan, ExtensionDbError> {
        let declared = self.declared(name)?;
        let Some(d) = &declared.entities else {
            return Err(ExtensionDbError::Entities(format!("extension `{name}` declares no entities")));
        };
        entity_migrations::plan(&self.db.pool, name, d)
            .await
            .map_err(|e| ExtensionDbError::Entities(e.to_string()))
    }

    fn declared(&self, name: &str) -> Result<&Declared, ExtensionDbError> {
        self.controller().catalog().get(name).ok_or_else(|| ExtensionDbError::NotCompiledIn(name.to_owned()))
    }

    async fn apply(
        &self,
        name: &str,
        allow_destructive: bool,
        mut progress: impl FnMut(&MigrationStep) + Send,
    ) -> Result<Vec<MigrationStep>, ExtensionDbError> {
        let declared = self.declared(name)?;
        let isolator = self.isolator().await?;
        let spec = declared.open_spec(&self.db.pool, 1, allow_destructive);
        let (pool, steps) = entity_migrations::open(&isolator, name, &spec, &mut progress).await?;
        pool.close().await;
        Ok(steps)
    }

    /// Runs the downs of every applied step of `name` newer than `version`, newest first.
    /// Refuses before changing anything if one of them is irreversible, or while the extension
    /// is enabled (its running code would meet a schema it does not expect).
    pub async fn rollback(
        &self,
        name: &str,
        version: i64,
        mut progress: impl FnMut(&MigrationStep) + Send,
    ) -> Result<Vec<MigrationStep>, ExtensionDbError> {
        let declared = self.declared(name)?;
        if state::one(&self.db.pool, name).await?.is_some_and(|s| s.enabled) {
            return Err(ExtensionDbError::Enabled {
                name: name.to_owned(),
                operation: "roll it back",
                hint: ", or pass --disable",
            });
        }
        let migrations = entity_migrations::applied_steps(
            &self.db.pool,
            name,
            &declared.written_migrations,
            declared.entities.as_ref(),
        )
        .await?;
        let isolator = self.isolator().await?;
        let steps = extension_db::rollback(&isolator, name, &migrations, version, &mut progress).await?;
        if declared.entities.is_some() {
            entity_migrations::forget_undone(&self.db.pool, name, version).await.map_err(DbError::from)?;
        }
        if !steps.is_empty() {
            let entry = AuditEntry::new("cli", "extension.rolled_back", name)
                .details(serde_json::json!({ "to_version": version, "steps": steps.len() }));
            audit::record_or_log(&self.db.pool, entry).await;
        }
        Ok(steps)
    }

    /// The state of every step of `name`, and its history.
    pub async fn migration_report(&self, name: &str) -> Result<MigrationReport, ExtensionDbError> {
        let pool = &self.db.pool;
        let applied: Vec<(i64, String, String, String, i64)> = sqlx::query_as(
            r#"
            select version, description, checksum,
                   to_char(applied_at at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'), duration_ms
            from annex.migrations where scope = $1 order by version
            "#,
        )
        .bind(name)
        .fetch_all(pool)
        .await?;
        // The generated steps of applied entity versions are rebuilt from what was applied, so
        // a step made from an earlier declaration is not shown as changed.
        let compiled = match self.controller().catalog().get(name) {
            Some(d) => Some(
                entity_migrations::current_steps(pool, name, &d.written_migrations, d.entities.as_ref())
                    .await?,
            ),
            None => None,
        };
        if compiled.is_none() && applied.is_empty() && !self.is_known(name).await? {
            return Err(ExtensionDbError::NotCompiledIn(name.to_owned()));
        }
        let mut steps: Vec<MigrationStatus> = compiled
            .iter()
            .flat_map(Migrations::iter)
            .map(|m| {
                let recorded = applied.iter().find(|a| a.0 == m.version);
                let state = match recorded {
                    None => "pending",
                    Some(a) if a.2 != m.checksum() => "changed",
                    Some(_) => "applied",
                };
                MigrationStatus {
                    version: m.version,
                    description: m.description.clone(),
                    state: state.to_owned(),
                    reversible: Some(m.down.is_some()),
                    applied_at: recorded.map(|a| a.3.clone()),
                    duration_ms: recorded.map(|a| a.4),
                }
            })
            .collect();
        for a in &applied {
            if !steps.iter().any(|s| s.version == a.0) {
                steps.push(MigrationStatus {
                    version: a.0,
                    description: a.1.clone(),
                    state: "unknown".to_owned(),
                    reversible: None,
                    applied_at: Some(a.3.clone()),
                    duration_ms: Some(a.4),
                });
            }
        }
        steps.sort_by_key(|s| s.version);
        let history: Vec<(i64, String, String, String, i64)> = sqlx::query_as(
            r#"
            select version, description, action,
                   to_char(at at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'), duration_ms
            from annex.migration_history where scope = $1 order by id
            "#,
        )
        .bind(name)
        .fetch_all(pool)
        .await?;
        let history = history
            .into_iter()
            .map(|h| MigrationHistoryEntry {
                version: h.0,
                description: h.1,
                action: h.2,
                at: h.3,
                duration_ms: h.4,
            })
            .collect();
        Ok(MigrationReport { extension: name.to_owned(), schema: schema_name(name), steps, history })
    }

    async fn is_known(&self, name: &str) -> Result<bool, ExtensionDbError> {
        Ok(state::all(&self.db.pool).await?.iter().any(|s| s.name == name))
    }

    /// Drops `name`'s schema with all its data, its role, and its applied-migration records.
    /// Refuses while the extension is enabled. Returns the lines to show the operator.
    pub async fn purge(&self, name: &str) -> Result<Vec<String>, ExtensionDbError> {
        let stored = state::all(&self.db.pool).await?;
        if stored.iter().any(|s| s.name == name && s.enabled) {
            return Err(ExtensionDbError::Enabled { name: name.to_owned(), operation: "purge it", hint: "" });
        }
        let isolator = self.isolator().await?;
        let (role, forgotten) = isolator.purge(name).await?;
        let mut done = vec![format!("dropped schema {} and everything in it", schema_name(name))];
        match &role {
            Some(role) => done.push(format!("dropped role {role}")),
            None => done.push("no role to drop".to_owned()),
        }
        done.push(format!("forgot {forgotten} applied migration(s); the history is kept"));
        let entry = AuditEntry::new("cli", "extension.purged", name)
            .details(serde_json::json!({ "schema": schema_name(name), "role": role }));
        audit::record_or_log(&self.db.pool, entry).await;
        Ok(done)
    }
}
