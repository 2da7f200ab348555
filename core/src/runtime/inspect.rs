//! What the controller answers about extensions: the list, one extension's details, its health,
//! config and figures. Read from the catalog and the database, and from this process's runtime
//! where it runs the extension, so the CLI and the admin API give the same documents.

use std::collections::HashMap;

use serde_json::Value;

use crate::db::state::StoredExtension;
use crate::db::{state, store};
use crate::extension::gate::ExtensionState;
use crate::plan::catalog::Declared;
use crate::plan::dependents::dependents_of;
use crate::runtime::control_error::ControlError;
use crate::runtime::controller::Controller;
use crate::runtime::views::{
    ConfigView, ExtensionDetails, ExtensionFigures, ExtensionSummary, HealthReport, MigrationInfo,
    Permissions, ReplicaFigures, Route, SiteDeclarations,
};

/// Health rows a report may hold.
const MAX_HISTORY: i64 = 500;

impl Controller {
    /// Every known extension (compiled in, or seen by a host before), by name.
    pub async fn list(&self) -> Result<Vec<ExtensionSummary>, ControlError> {
        let health: HashMap<String, String> = store::latest_health(self.pool()).await?.into_iter().collect();
        let rows = state::all(self.pool()).await?;
        Ok(rows
            .iter()
            .map(|row| {
                let health = health.get(&row.name).cloned().unwrap_or_else(|| "unknown".into());
                self.summary(row, health)
            })
            .collect())
    }

    /// Everything about one compiled-in extension.
    pub async fn info(&self, name: &str) -> Result<ExtensionDetails, ControlError> {
        let declared = self.declared(name)?;
        let row = self.row(name).await?;
        let health = self.latest_health(name).await?;
        let all = self.catalog().metadata();
        Ok(ExtensionDetails {
            summary: self.summary(&row, health),
            dependencies: declared.metadata.dependencies.clone(),
            dependents: dependents_of(&all, name, |_| true),
            permissions: Permissions {
                required: declared.metadata.permissions.clone(),
                granted: self.config().extension(name).permissions,
            },
            routes: declared
                .routes
                .iter()
                .map(|(method, path)| Route {
                    method: method.to_string(),
                    path: format!("/ext/{name}{path}"),
                })
                .collect(),
            hooks: declared.hooks.clone(),
            migrations: declared
                .migrations
                .iter()
                .map(|m| MigrationInfo {
                    version: m.version,
                    description: m.description.clone(),
                    reversible: m.down.is_some(),
                })
                .collect(),
            config: self.config_in_force(name, &row),
            config_schema: declared.config_schema.clone(),
            sites: SiteDeclarations::of(&declared.metadata),
        })
    }

    /// The latest status and the newest `limit` checks (1 to 500).
    pub async fn health(&self, name: &str, limit: i64) -> Result<HealthReport, ControlError> {
        self.declared(name)?;
        let row = self.row(name).await?;
        let history = store::health_history(self.pool(), name, limit.clamp(1, MAX_HISTORY)).await?;
        let status = history.first().map(|c| c.status.clone()).unwrap_or_else(|| "unknown".into());
        Ok(HealthReport { extension: name.to_owned(), state: self.state_of(&row).0, status, history })
    }

    /// The config in force and the schema it must fit.
    pub async fn config_of(&self, name: &str) -> Result<ConfigView, ControlError> {
        let declared = self.declared(name)?;
        let row = self.row(name).await?;
        Ok(ConfigView {
            extension: name.to_owned(),
            config: self.config_in_force(name, &row),
            schema: declared.config_schema.clone(),
        })
    }

    /// Every replica's latest figures. A server first refreshes and stores its own, so its
    /// answer is live for itself and as recent as the last health round for the others.
    pub async fn figures(&self, name: &str) -> Result<ExtensionFigures, ControlError> {
        self.declared(name)?;
        if let Some(rt) = self.runtime()
            && rt.find(name).is_some()
        {
            rt.refresh_metrics();
            let figures = rt.metrics().extension_json(name);
            store::store_figures(self.pool(), rt.replica(), name, &figures).await?;
        }
        let rows = store::figures(self.pool(), name).await?;
        let mut replicas: Vec<ReplicaFigures> =
            rows.into_iter().map(|(replica, at, figures)| ReplicaFigures { replica, at, figures }).collect();
        if let Some(rt) = self.runtime() {
            // Own figures first, then newest first.
            replicas.sort_by_key(|r| r.replica != rt.replica());
        }
        Ok(ExtensionFigures { extension: name.to_owned(), replicas })
    }

    async fn row(&self, name: &str) -> Result<StoredExtension, ControlError> {
        state::one(self.pool(), name).await?.ok_or_else(|| ControlError::NotFound(name.to_owned()))
    }

    async fn latest_health(&self, name: &str) -> Result<String, ControlError> {
        let history = store::health_history(self.pool(), name, 1).await?;
        Ok(history.into_iter().next().map(|c| c.status).unwrap_or_else(|| "unknown".into()))
    }

    /// The state (this process's, when it runs the extension, else the stored one) and the
    /// reason that goes with it.
    fn state_of(&self, row: &StoredExtension) -> (String, Option<String>) {
        let (state, live_reason) = match self.local(&row.name) {
            Some((_, m)) => match m.state() {
                ExtensionState::Failed(reason) => ("failed".to_owned(), Some(reason)),
                other => (other.as_str().to_owned(), None),
            },
            None => (row.state.clone(), None),
        };
        let reason = match state.as_str() {
            "failed" | "disabled" | "stopped" => live_reason.or_else(|| row.last_error.clone()),
            _ => None,
        };
        (state, reason)
    }

    fn summary(&self, row: &StoredExtension, health: String) -> ExtensionSummary {
        let declared: Option<&Declared> = self.catalog().get(&row.name);
        let (state, reason) = self.state_of(row);
        ExtensionSummary {
            name: row.name.clone(),
            version: declared.map(|d| d.metadata.version.clone()).unwrap_or_else(|| row.version.clone()),
            description: declared.map(|d| d.metadata.description.clone()).unwrap_or_default(),
            enabled: row.enabled,
            state,
            reason,
            health,
            compiled_in: declared.is_some(),
        }
    }

    /// The config this process runs the extension with, else the stored one.
    fn config_in_force(&self, name: &str, row: &StoredExtension) -> Value {
        match self.local(name) {
            Some((_, m)) => (*m.cx().config()).clone(),
            None => row.config.clone(),
        }
    }
}
