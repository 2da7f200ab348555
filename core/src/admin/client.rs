//! [`Admin`]: the operator's view of the database without starting any extension. The CLI
//! uses it, so it works whether or not a server is running.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::Serialize;

use crate::config::Config;
use crate::db::database::Database;
use crate::db::state;
use crate::error::HostError;
use crate::extension::Extension;
use crate::metadata::Metadata;
use crate::migrations::Migrations;

/// A connection to annex's database for operator commands.
pub struct Admin {
    pub(crate) db: Database,
    pub(crate) compiled: Vec<Metadata>,
    pub(crate) extensions: Vec<Arc<dyn Extension>>,
    pub(crate) config: Config,
    /// Each compiled-in extension's migrations, by name.
    pub(crate) migrations: BTreeMap<String, Migrations>,
}

impl std::fmt::Debug for Admin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Admin").field("compiled", &self.compiled).finish_non_exhaustive()
    }
}

/// One extension as stored, joined with what is compiled in.
#[derive(Debug, Clone, Serialize)]
pub struct ExtensionRecord {
    /// Name.
    pub name: String,
    /// Version (compiled in, else last seen).
    pub version: String,
    /// Description (empty if not compiled in).
    pub description: String,
    /// The operator's switch.
    pub enabled: bool,
    /// Last lifecycle state a host recorded (`registered` if none ran yet).
    pub state: String,
    /// Why it last failed, if it did.
    pub last_error: Option<String>,
    /// Whether this binary contains it.
    pub compiled_in: bool,
}

impl Admin {
    /// Opens the database (starting the private PostgreSQL if that is the configured default)
    /// and records any compiled-in extension it has not seen yet.
    pub async fn connect(config: &Config, extensions: &[Arc<dyn Extension>]) -> Result<Admin, HostError> {
        let db = Database::open(config).await?;
        let compiled: Vec<Metadata> = extensions.iter().map(|e| e.metadata()).collect();
        for m in &compiled {
            state::register(&db.pool, &m.name, &m.version, config.extension(&m.name).enabled).await?;
        }
        let migrations = extensions.iter().map(|e| (e.metadata().name, e.migrations())).collect();
        Ok(Admin { db, compiled, extensions: extensions.to_vec(), config: config.clone(), migrations })
    }

    /// Every known extension, by name.
    pub async fn list(&self) -> Result<Vec<ExtensionRecord>, HostError> {
        let compiled: BTreeMap<&str, &Metadata> =
            self.compiled.iter().map(|m| (m.name.as_str(), m)).collect();
        let rows = state::all(&self.db.pool).await?;
        Ok(rows
            .into_iter()
            .map(|row| {
                let meta = compiled.get(row.name.as_str());
                ExtensionRecord {
                    version: meta.map(|m| m.version.clone()).unwrap_or(row.version),
                    description: meta.map(|m| m.description.clone()).unwrap_or_default(),
                    compiled_in: meta.is_some(),
                    name: row.name,
                    enabled: row.enabled,
                    state: row.state,
                    last_error: row.last_error,
                }
            })
            .collect())
    }

    /// Closes the connection (and the private PostgreSQL, if nothing else uses it).
    pub async fn close(self) {
        self.db.close().await;
    }
}
