//! Operator commands on [`Admin`]: details, enable, disable, health, config and metric figures,
//! all against the database. A running server picks every change up through `NOTIFY`.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use serde::Serialize;
use serde_json::{Value, json};

use crate::admin::{Admin, ExtensionRecord};
use crate::audit::{self, AuditEntry};
use crate::config_schema::check_config;
use crate::control::{ControlError, dependents_of};
use crate::db::ops_store::{self, HealthCheck};
use crate::extension::Extension;
use crate::metadata::{Dependency, Metadata};
use crate::registrar::Registrar;

/// Actor recorded in the audit log for changes made through [`Admin`].
const ACTOR: &str = "cli";

/// Everything known about one extension.
#[derive(Debug, Clone, Serialize)]
pub struct ExtensionDetails {
    /// Name, version, switch and state.
    #[serde(flatten)]
    pub record: ExtensionRecord,
    /// What it needs.
    pub dependencies: Vec<Dependency>,
    /// Extensions that need it, directly or not.
    pub dependents: Vec<String>,
    /// Permissions it declares.
    pub permissions_required: Vec<String>,
    /// Permissions granted in `[extensions.<name>] permissions`.
    pub permissions_granted: Vec<String>,
    /// `METHOD /ext/<name>/path` for each route.
    pub routes: Vec<String>,
    /// `NNNN description` of each migration.
    pub migrations: Vec<String>,
    /// The stored config.
    pub config: Value,
    /// Its JSON Schema, if it declares one.
    pub config_schema: Option<Value>,
    /// The latest health status (`unknown` before the first check).
    pub health: String,
}

/// Health status and history of one extension.
#[derive(Debug, Clone, Serialize)]
pub struct HealthReport {
    /// The extension.
    pub extension: String,
    /// The latest status, `unknown` before the first check.
    pub status: String,
    /// Checks, newest first.
    pub history: Vec<HealthCheck>,
}

/// Each replica's latest figures for one extension.
#[derive(Debug, Clone, Serialize)]
pub struct ExtensionFigures {
    /// The extension.
    pub extension: String,
    /// `{replica, at, figures}`, newest first; empty if no server has run a health round.
    pub replicas: Vec<Value>,
}

impl Admin {
    fn compiled_ext(&self, name: &str) -> Result<(&Metadata, &Arc<dyn Extension>), ControlError> {
        self.compiled
            .iter()
            .zip(&self.extensions)
            .find(|(m, _)| m.name == name)
            .ok_or_else(|| ControlError::NotFound(name.to_owned()))
    }

    async fn enabled_set(&self) -> Result<BTreeSet<String>, ControlError> {
        let rows = crate::db::state::all(&self.db.pool).await?;
        Ok(rows.into_iter().filter(|r| r.enabled).map(|r| r.name).collect())
    }

    async fn record(&self, name: &str) -> Result<ExtensionRecord, ControlError> {
        self.list()
            .await
            .map_err(host_error)?
            .into_iter()
            .find(|r| r.name == name)
            .ok_or_else(|| ControlError::NotFound(name.to_owned()))
    }

    /// Details of one compiled-in extension.
    pub async fn info(&self, name: &str) -> Result<ExtensionDetails, ControlError> {
        let (meta, ext) = self.compiled_ext(name)?;
        let record = self.record(name).await?;
        let all: Vec<&Metadata> = self.compiled.iter().collect();
        let mut registrar = Registrar::new(name);
        ext.register(&mut registrar);
        let stored = ops_store::switch_and_config(&self.db.pool, name).await?;
        Ok(ExtensionDetails {
            record,
            dependencies: meta.dependencies.clone(),
            dependents: dependents_of(&all, name, |_| true),
            permissions_required: meta.permissions.clone(),
            permissions_granted: self.config.extension(name).permissions,
            routes: registrar.routes.iter().map(|r| format!("{} /ext/{name}{}", r.method, r.path)).collect(),
            migrations: ext
                .migrations()
                .iter()
                .map(|m| format!("{:04} {}", m.version, m.description))
                .collect(),
            config: stored.map(|(_, c)| c).unwrap_or(Value::Null),
            config_schema: ext.config_schema(),
            health: self.latest_health(name).await?,
        })
    }

    async fn latest_health(&self, name: &str) -> Result<String, ControlError> {
        let history = ops_store::health_history(&self.db.pool, name, 1).await?;
        Ok(history.into_iter().next().map(|c| c.status).unwrap_or_else(|| "unknown".into()))
    }

    /// Every extension with its latest health status.
    pub async fn status(&self) -> Result<Vec<(ExtensionRecord, String)>, ControlError> {
        let health: HashMap<String, String> =
            ops_store::latest_health(&self.db.pool).await?.into_iter().collect();
        let records = self.list().await.map_err(host_error)?;
        Ok(records
            .into_iter()
            .map(|r| {
                let h = health.get(&r.name).cloned().unwrap_or_else(|| "unknown".into());
                (r, h)
            })
            .collect())
    }

    /// Turns the switch on; running servers start it. Its dependencies must be enabled.
    pub async fn enable(&self, name: &str) -> Result<(), ControlError> {
        let (meta, _) = self.compiled_ext(name)?;
        let enabled = self.enabled_set().await?;
        let missing: Vec<String> =
            meta.dependencies.iter().filter(|d| !enabled.contains(&d.name)).map(|d| d.name.clone()).collect();
        if !missing.is_empty() {
            return Err(ControlError::DependenciesDisabled { name: name.to_owned(), missing });
        }
        ops_store::set_enabled(&self.db.pool, name, true, None).await?;
        self.audit(AuditEntry::new(ACTOR, "extension.enabled", name)).await;
        ops_store::notify(&self.db.pool, name, "enabled").await?;
        Ok(())
    }

    /// Turns the switch off (with `cascade`, also for every enabled extension that needs it);
    /// running servers stop them. Returns the names disabled.
    pub async fn disable(&self, name: &str, cascade: bool) -> Result<Vec<String>, ControlError> {
        self.compiled_ext(name)?;
        let enabled = self.enabled_set().await?;
        let all: Vec<&Metadata> = self.compiled.iter().collect();
        let dependents = dependents_of(&all, name, |n| enabled.contains(n));
        if !dependents.is_empty() && !cascade {
            return Err(ControlError::HasDependents { name: name.to_owned(), dependents });
        }
        let mut order = dependents;
        order.push(name.to_owned());
        for n in &order {
            let why = if n == name {
                "disabled by an operator".to_owned()
            } else {
                format!("its dependency `{name}` was disabled")
            };
            ops_store::set_enabled(&self.db.pool, n, false, Some(&why)).await?;
            let details = json!({ "cascade_from": (n != name).then_some(name), "reason": why });
            self.audit(AuditEntry::new(ACTOR, "extension.disabled", n.as_str()).details(details)).await;
            ops_store::notify(&self.db.pool, n, "disabled").await?;
        }
        Ok(order)
    }

    /// Health status and the latest `limit` checks.
    pub async fn health(&self, name: &str, limit: i64) -> Result<HealthReport, ControlError> {
        self.compiled_ext(name)?;
        let history = ops_store::health_history(&self.db.pool, name, limit.clamp(1, 500)).await?;
        let status = history.first().map(|c| c.status.clone()).unwrap_or_else(|| "unknown".into());
        Ok(HealthReport { extension: name.to_owned(), status, history })
    }

    /// The stored config.
    pub async fn config(&self, name: &str) -> Result<Value, ControlError> {
        self.compiled_ext(name)?;
        Ok(ops_store::switch_and_config(&self.db.pool, name).await?.map(|(_, c)| c).unwrap_or(Value::Null))
    }

    /// Validates against the extension's schema and stores a new config with a history entry;
    /// running servers apply it (an extension that refuses it keeps its old config there).
    pub async fn set_config(&self, name: &str, config: Value) -> Result<(), ControlError> {
        let (_, ext) = self.compiled_ext(name)?;
        check_config(ext.config_schema().as_ref(), &config)
            .map_err(|errors| ControlError::InvalidConfig { name: name.to_owned(), errors })?;
        let old = ops_store::store_config(&self.db.pool, name, &config, ACTOR, None).await?;
        self.audit(
            AuditEntry::new(ACTOR, "extension.config_changed", name)
                .details(json!({ "old": old, "new": config })),
        )
        .await;
        ops_store::notify(&self.db.pool, name, "config").await?;
        Ok(())
    }

    /// Each running replica's latest figures (refreshed every health interval).
    pub async fn metrics(&self, name: &str) -> Result<ExtensionFigures, ControlError> {
        self.compiled_ext(name)?;
        let rows = ops_store::figures(&self.db.pool, name).await?;
        let replicas = rows
            .into_iter()
            .map(|(replica, at, figures)| json!({ "replica": replica, "at": at, "figures": figures }))
            .collect();
        Ok(ExtensionFigures { extension: name.to_owned(), replicas })
    }

    async fn audit(&self, entry: AuditEntry) {
        audit::record_or_log(&self.db.pool, entry).await;
    }
}

fn host_error(e: crate::error::HostError) -> ControlError {
    match e {
        crate::error::HostError::Database(e) => ControlError::Database(e),
        other => ControlError::Database(sqlx::Error::Protocol(other.to_string())),
    }
}
