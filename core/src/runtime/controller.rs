//! The [`Controller`]: the one place where enable, disable, config changes and replica
//! reconciliation are decided. The admin API, the CLI and the health monitor all call it.
//!
//! It works on the database alone (the CLI, with or without a server running) or on the
//! database and this process's [`Runtime`] (a server): the rules are the same either way, and
//! the runtime only adds "and do it here now". Every change is stored in `annex.extensions`
//! together with its event (a row of `annex.event_outbox`, same transaction, which every
//! replica's outbox relay publishes), audited and announced to the other replicas with
//! `NOTIFY annex_control`, which makes them call [`Controller::reconcile`].

use std::collections::BTreeSet;
use std::sync::Arc;

use serde_json::{Value, json};
use sqlx::PgPool;

use crate::config::Config;
use crate::config::schema::check_extension_config;
use crate::db::outbox::{CLI_ORIGIN, NewEvent};
use crate::db::store::SwitchEvent;
use crate::db::{state, store};
use crate::extension::gate::ExtensionState;
use crate::extension::json::unstorable;
use crate::observe::audit::{self, AuditEntry};
use crate::observe::request_id::RequestId;
use crate::plan::catalog::{Catalog, Declared};
use crate::plan::dependents::dependents_of;
use crate::runtime::control_error::ControlError;
use crate::runtime::lifecycle::{Managed, Runtime};
use crate::runtime::views::{ConfigView, SwitchReport};

/// Decides and records every change of an extension's switch and config.
///
/// Cheap to clone. The CLI gets one from `Admin::controller` (the database only); a server
/// builds one over its runtime for the admin API and the health monitor.
#[derive(Clone)]
pub struct Controller {
    pool: PgPool,
    catalog: Arc<Catalog>,
    config: Arc<Config>,
    runtime: Option<Arc<Runtime>>,
}

impl std::fmt::Debug for Controller {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Controller").field("with_runtime", &self.runtime.is_some()).finish_non_exhaustive()
    }
}

impl Controller {
    /// A controller over the database only (the CLI).
    pub(crate) fn offline(pool: PgPool, catalog: Arc<Catalog>, config: Arc<Config>) -> Self {
        Self { pool, catalog, config, runtime: None }
    }

    /// A controller over the database and this process's runtime.
    pub(crate) fn with_runtime(runtime: &Arc<Runtime>) -> Self {
        Self {
            pool: runtime.pool().clone(),
            catalog: runtime.catalog().clone(),
            config: runtime.config().clone(),
            runtime: Some(runtime.clone()),
        }
    }

    pub(crate) fn pool(&self) -> &PgPool {
        &self.pool
    }

    pub(crate) fn catalog(&self) -> &Catalog {
        &self.catalog
    }

    pub(crate) fn config(&self) -> &Config {
        &self.config
    }

    pub(crate) fn runtime(&self) -> Option<&Arc<Runtime>> {
        self.runtime.as_ref()
    }

    /// This process's managed extension `name`, if it runs one.
    pub(crate) fn local(&self, name: &str) -> Option<(&Runtime, &Managed)> {
        let rt = self.runtime.as_deref()?;
        rt.find(name).map(|m| (rt, m))
    }

    pub(crate) fn declared(&self, name: &str) -> Result<&Declared, ControlError> {
        self.catalog.get(name).ok_or_else(|| ControlError::NotFound(name.to_owned()))
    }

    /// The extensions whose switch is on.
    pub(crate) async fn enabled_set(&self) -> Result<BTreeSet<String>, ControlError> {
        let rows = state::all(&self.pool).await?;
        Ok(rows.into_iter().filter(|r| r.enabled).map(|r| r.name).collect())
    }

    /// Turns `name`'s switch on and, where this process runs it, starts it. Every dependency's
    /// switch must be on ([`ControlError::DependenciesDisabled`] otherwise).
    pub async fn enable(&self, name: &str, actor: &str) -> Result<SwitchReport, ControlError> {
        let declared = self.declared(name)?;
        let _serial = self.serialise().await;
        let report = |state: Option<ExtensionState>| SwitchReport {
            extension: name.to_owned(),
            enabled: true,
            state: state.map(|s| s.as_str().to_owned()),
            disabled: Vec::new(),
        };
        let local = self.local(name);
        if let Some((_, m)) = local
            && m.state() == ExtensionState::Running
        {
            // Running here already (this replica has not yet followed a disable made elsewhere):
            // flipping the switch back on is still a change, with its event.
            let data = self.event_data(name);
            let event = NewEvent { name: "extension.enabled", data: &data, origin: self.origin() };
            store::set_enabled(&self.pool, name, true, None, SwitchEvent::IfFlipped(event)).await?;
            return Ok(report(Some(ExtensionState::Running)));
        }
        let enabled = self.enabled_set().await?;
        let missing: Vec<String> = declared
            .metadata
            .dependencies
            .iter()
            .filter(|d| !enabled.contains(&d.name))
            .map(|d| d.name.clone())
            .collect();
        if !missing.is_empty() {
            return Err(ControlError::DependenciesDisabled { name: name.to_owned(), missing });
        }
        let data = self.event_data(name);
        let event = NewEvent { name: "extension.enabled", data: &data, origin: self.origin() };
        store::set_enabled(&self.pool, name, true, None, SwitchEvent::Always(event)).await?;
        let started = match local {
            Some((rt, m)) => {
                rt.health_book().reset(name, m.cx().counters().panics());
                Some(rt.start_one(m).await)
            }
            None => None,
        };
        let details = json!({ "started": started.as_ref().map(Result::is_ok) });
        self.audit(AuditEntry::new(actor, "extension.enabled", name).details(details)).await;
        self.announce(name, "enabled").await;
        match (started, local) {
            (Some(Err(reason)), Some((rt, m))) => {
                rt.fail(m, &reason).await;
                Err(ControlError::StartFailed { name: name.to_owned(), reason })
            }
            (Some(_), Some((_, m))) => Ok(report(Some(m.state()))),
            _ => Ok(report(None)),
        }
    }

    /// Turns `name`'s switch off (with `cascade`, also for every enabled extension that needs
    /// it; without, [`ControlError::HasDependents`]) and stops them where this process runs
    /// them. `reason` is stored as the extension's last error.
    pub async fn disable(
        &self,
        name: &str,
        cascade: bool,
        actor: &str,
        reason: Option<&str>,
    ) -> Result<SwitchReport, ControlError> {
        self.declared(name)?;
        let _serial = self.serialise().await;
        let enabled = self.enabled_set().await?;
        let dependents = dependents_of(&self.catalog.metadata(), name, |n| enabled.contains(n));
        if !dependents.is_empty() && !cascade {
            return Err(ControlError::HasDependents { name: name.to_owned(), dependents });
        }
        let mut order = dependents;
        order.push(name.to_owned());
        for n in &order {
            let why = if n == name {
                reason.unwrap_or("disabled by an operator").to_owned()
            } else {
                format!("its dependency `{name}` was disabled")
            };
            let data = self.event_data(n);
            let event = NewEvent { name: "extension.disabled", data: &data, origin: self.origin() };
            store::set_enabled(&self.pool, n, false, Some(&why), SwitchEvent::Always(event)).await?;
            if let Some((rt, m)) = self.local(n) {
                rt.stop_one(m, ExtensionState::Disabled).await;
            }
            let details = json!({ "cascade_from": (n != name).then_some(name), "reason": why });
            self.audit(AuditEntry::new(actor, "extension.disabled", n.as_str()).details(details)).await;
            self.announce(n, "disabled").await;
        }
        Ok(SwitchReport {
            extension: name.to_owned(),
            enabled: false,
            state: self.local(name).map(|(_, m)| m.state().as_str().to_owned()),
            disabled: order,
        })
    }

    /// Validates `config` (a JSON object fitting the extension's schema), applies it where this
    /// process runs the extension (its `apply_config` may refuse: then nothing changes), and
    /// stores it with a history entry and an audit entry.
    pub async fn set_config(
        &self,
        name: &str,
        config: Value,
        actor: &str,
    ) -> Result<ConfigView, ControlError> {
        let declared = self.declared(name)?;
        let unstorable = unstorable(&config);
        if !unstorable.is_empty() {
            return Err(ControlError::InvalidConfig { name: name.to_owned(), errors: unstorable });
        }
        check_extension_config(declared.config_schema.as_ref(), &config)
            .map_err(|errors| ControlError::InvalidConfig { name: name.to_owned(), errors })?;
        let _serial = self.serialise().await;
        if let Some((rt, m)) = self.local(name) {
            rt.apply_config(m, &config)
                .await
                .map_err(|reason| ControlError::ConfigRejected { name: name.to_owned(), reason })?;
        }
        record_config_change(&self.pool, name, &config, actor, self.origin()).await?;
        self.announce(name, "config").await;
        Ok(ConfigView { extension: name.to_owned(), config, schema: declared.config_schema.clone() })
    }

    /// Makes this process's copy of `name` match its row: the operator's switch and the stored
    /// config. `hint` is the notification's kind; an explicit `enabled` also retries an
    /// extension that failed to start here.
    pub(crate) async fn reconcile(&self, name: &str, hint: Option<&str>) {
        let Some((rt, m)) = self.local(name) else { return };
        // Read under the lock: a row read before a local change finished would undo it.
        let _serial = rt.serialise().await;
        let (enabled, config) = match store::switch_and_config(&self.pool, name).await {
            Ok(Some((enabled, Ok(config)))) => (enabled, config),
            Ok(Some((enabled, Err(e)))) => {
                tracing::error!(extension = %name, error = %e, "replica sync: the stored config cannot be read; keeping the one in force");
                (enabled, (*m.cx().config()).clone())
            }
            Ok(None) => return,
            Err(e) => {
                tracing::warn!(extension = %name, error = %e, "replica sync: cannot read the extension's row");
                return;
            }
        };
        let state = m.state();
        // Shutdown (`Stopped`) and startup (`Registered`, `Starting`) are the runtime's own business.
        if matches!(state, ExtensionState::Stopped | ExtensionState::Registered) {
            return;
        }
        let replica = rt.replica();
        if *m.cx().config() != config {
            match rt.apply_config(m, &config).await {
                // The event is the outbox row the changing replica wrote; every relay publishes it.
                Ok(()) => tracing::info!(extension = %name, "config changed on another replica; applied"),
                Err(reason) => {
                    tracing::error!(extension = %name, %reason, "config changed on another replica but this one rejected it; keeping the old config");
                    let entry = AuditEntry::new("host", "extension.config_apply_failed", name)
                        .details(json!({ "replica": replica, "reason": reason }));
                    self.audit(entry).await;
                }
            }
        }
        let retry_failed = hint == Some("enabled") && matches!(state, ExtensionState::Failed(_));
        match (enabled, &state) {
            (false, ExtensionState::Running | ExtensionState::Failed(_) | ExtensionState::Starting) => {
                rt.stop_one(m, ExtensionState::Disabled).await;
            }
            (true, ExtensionState::Disabled) | (true, ExtensionState::Failed(_))
                if retry_failed || state == ExtensionState::Disabled =>
            {
                rt.health_book().reset(name, m.cx().counters().panics());
                if let Err(reason) = rt.start_one(m).await {
                    tracing::error!(extension = %name, %reason, "enabled on another replica but failed to start here");
                    rt.fail(m, &reason).await;
                }
            }
            _ => {}
        }
    }

    async fn serialise(&self) -> Option<tokio::sync::MutexGuard<'_, ()>> {
        match &self.runtime {
            Some(rt) => Some(rt.serialise().await),
            None => None,
        }
    }

    async fn audit(&self, entry: AuditEntry) {
        audit::record_or_log(&self.pool, entry).await;
    }

    /// Who makes this controller's changes: this replica, or the CLI.
    pub(crate) fn origin(&self) -> &str {
        self.runtime.as_deref().map_or(CLI_ORIGIN, Runtime::replica)
    }

    /// The data of `name`'s `extension.*` event.
    fn event_data(&self, name: &str) -> Value {
        json!({ "extension": name, "replica": self.origin() })
    }

    /// Tells every replica that `name` changed. The change's event is not published here: it
    /// is the outbox row stored with the change, which every replica's relay publishes.
    async fn announce(&self, name: &str, kind: &str) {
        if let Err(e) = store::notify(&self.pool, name, kind).await {
            tracing::error!(extension = %name, error = %e, "could not notify the other replicas; they pick the change up when they resync");
        }
    }
}

/// Stores a new config with its history entry and its `extension.config_changed` outbox event
/// (made by `origin`, a replica or the CLI), and audits the change (`old` and `new`). The one
/// implementation of "the config changed", for the controller and for a host that starts with
/// a new config in annex.toml.
pub(crate) async fn record_config_change(
    pool: &PgPool,
    name: &str,
    config: &Value,
    actor: &str,
    origin: &str,
) -> Result<(), sqlx::Error> {
    let request_id = RequestId::current().map(|r| r.to_string());
    let data = json!({ "extension": name, "replica": origin });
    let event = NewEvent { name: "extension.config_changed", data: &data, origin };
    let old = store::store_config(pool, name, config, actor, request_id.as_deref(), event).await?;
    let entry = AuditEntry::new(actor, "extension.config_changed", name)
        .details(json!({ "old": old, "new": config }));
    audit::record_or_log(pool, entry).await;
    Ok(())
}
