//! [`Admin`]: the operator's connection to annex's database without starting any extension. The
//! CLI uses it, so it works whether or not a server is running: every extension operation goes
//! through its [`Controller`], the same one the admin API uses.

use std::sync::Arc;

use crate::access::{AccessError, Actor, NewOperator, Operator, OperatorChange, operators};
use crate::config::Config;
use crate::db::database::Database;
use crate::db::error::DbError;
use crate::db::state;
use crate::extension::Extension;
use crate::observe::audit::{self, ChainVerdict};
use crate::pipelines::registry::Registry;
use crate::plan::catalog::Catalog;
use crate::runtime::controller::Controller;
use crate::sites::Sites;

/// A connection to annex's database for operator commands.
pub struct Admin {
    pub(crate) db: Database,
    controller: Controller,
}

impl std::fmt::Debug for Admin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Admin").field("extensions", &self.extension_names()).finish_non_exhaustive()
    }
}

impl Admin {
    /// Opens the database (starting the private PostgreSQL if that is the configured default)
    /// and records any compiled-in extension it has not seen yet.
    pub async fn connect(config: &Config, extensions: &[Arc<dyn Extension>]) -> Result<Admin, DbError> {
        let db = Database::open(config).await?;
        let catalog = Arc::new(Catalog::new(extensions));
        for d in catalog.iter() {
            let m = &d.metadata;
            state::register(&db.pool, &m.name, &m.version, config.extension(&m.name).enabled).await?;
        }
        let controller = Controller::offline(db.pool.clone(), catalog, Arc::new(config.clone()));
        Ok(Admin { db, controller })
    }

    /// The controller: list, info, enable, disable, config, health and figures.
    pub fn controller(&self) -> &Controller {
        &self.controller
    }

    /// Checks the audit log's hash chain from its first row to its last (`annex audit verify`;
    /// the admin API's `GET /api/v1/audit/verify` answers the same verdict).
    pub async fn verify_audit(&self) -> Result<ChainVerdict, DbError> {
        Ok(audit::verify(&self.db.pool).await?)
    }

    /// The site operations (`annex sites …`), the same [`Sites`] the admin API calls; the CLI
    /// runs them as [`crate::access::Actor::Cli`].
    pub fn sites(&self) -> Sites<'_> {
        Sites::new(&self.db.pool, self.controller.catalog(), self.controller.origin())
    }

    /// The stage registry (`annex stages …`, `annex pipelines …`), the same [`Registry`] the
    /// admin API calls. A running server picks its changes up through NOTIFY.
    pub fn registry(&self) -> Registry<'_> {
        Registry::new(&self.db.pool, self.controller.catalog(), self.controller.config().nats.url.is_some())
    }

    /// Adds an operator, as the CLI; returns it and its personal token (shown once).
    pub async fn add_operator(&self, new: &NewOperator) -> Result<(Operator, String), AccessError> {
        operators::add(&self.db.pool, &Actor::Cli.audit_name(), new).await
    }

    /// Every operator.
    pub async fn operators(&self) -> Result<Vec<Operator>, AccessError> {
        operators::list(&self.db.pool).await
    }

    /// Disables or enables an operator, sets their password or rotates their token, as the CLI.
    pub async fn change_operator(
        &self,
        username: &str,
        change: &OperatorChange,
    ) -> Result<(Operator, Option<String>), AccessError> {
        operators::update(&self.db.pool, &Actor::Cli.audit_name(), username, change).await
    }

    /// The compiled-in extensions, by name.
    pub fn extension_names(&self) -> Vec<String> {
        self.controller.catalog().iter().map(|d| d.metadata.name.clone()).collect()
    }

    /// Closes the connection (and the private PostgreSQL, if nothing else uses it).
    pub async fn close(self) {
        self.db.close().await;
    }
}
