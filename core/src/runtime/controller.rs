//! Runtime control: enabling and disabling extensions and changing their config without a
//! restart. Every change is persisted in `annex.extensions`, audited, published on the event bus
//! and announced to the other replicas with `NOTIFY annex_control`.

use std::collections::BTreeSet;

use axum::http::StatusCode;
use serde_json::{Value, json};

use crate::audit::AuditEntry;
use crate::config_schema::{SchemaViolation, check_config};
use crate::db::{ops_store, state};
use crate::gate::ExtensionState;
use crate::host::{Host, HostInner, Managed, lifecycle};
use crate::metadata::Metadata;

/// Why an enable, disable or config change was refused.
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    /// No such extension in this binary.
    #[error("no extension named `{0}` is compiled in; `annex extensions list` shows the known ones")]
    NotFound(String),
    /// Disabling it would leave enabled extensions without a dependency.
    #[error(
        "extension `{name}` is needed by {}; disable those first or disable with cascade \
         (`?cascade=true`, `annex extensions disable {name} --cascade`)",
        list(.dependents)
    )]
    HasDependents {
        /// The extension.
        name: String,
        /// The enabled extensions that depend on it, directly or not.
        dependents: Vec<String>,
    },
    /// Enabling it needs dependencies that are disabled.
    #[error("extension `{name}` depends on {}, which {} not enabled; enable {} first", list(.missing), if .missing.len() == 1 { "is" } else { "are" }, if .missing.len() == 1 { "it" } else { "them" })]
    DependenciesDisabled {
        /// The extension.
        name: String,
        /// Its dependencies that are not enabled (or not running).
        missing: Vec<String>,
    },
    /// The config does not fit the extension's JSON Schema.
    #[error("config for extension `{name}` does not fit its schema: {}", violations(.errors))]
    InvalidConfig {
        /// The extension.
        name: String,
        /// One entry per problem.
        errors: Vec<SchemaViolation>,
    },
    /// The extension's `apply_config` refused the config; the old one stays.
    #[error("extension `{name}` rejected the new config ({reason}); the old config stays in force")]
    ConfigRejected {
        /// The extension.
        name: String,
        /// What `apply_config` said.
        reason: String,
    },
    /// `init` or `start` failed when enabling.
    #[error("extension `{name}` is enabled but failed to start: {reason}; fix it and enable it again")]
    StartFailed {
        /// The extension.
        name: String,
        /// Why.
        reason: String,
    },
    /// A database call failed.
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
}

fn list(names: &[String]) -> String {
    names.iter().map(|n| format!("`{n}`")).collect::<Vec<_>>().join(", ")
}

fn violations(errors: &[SchemaViolation]) -> String {
    errors
        .iter()
        .map(|e| format!("{} {}", if e.pointer.is_empty() { "(root)" } else { &e.pointer }, e.message))
        .collect::<Vec<_>>()
        .join("; ")
}

impl ControlError {
    /// The HTTP status the admin API answers with.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::HasDependents { .. } | Self::DependenciesDisabled { .. } => StatusCode::CONFLICT,
            Self::InvalidConfig { .. } | Self::ConfigRejected { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            Self::StartFailed { .. } | Self::Database(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The stable snake_case code.
    pub fn code(&self) -> &'static str {
        match self {
            Self::NotFound(_) => "extension_not_found",
            Self::HasDependents { .. } => "has_dependents",
            Self::DependenciesDisabled { .. } => "dependencies_disabled",
            Self::InvalidConfig { .. } => "invalid_config",
            Self::ConfigRejected { .. } => "config_rejected",
            Self::StartFailed { .. } => "start_failed",
            Self::Database(_) => "internal_error",
        }
    }
}

/// The extensions that depend on `name`, directly or through others, among those `active` says
/// are on; ordered so each comes before anything it depends on (a safe stop order).
pub(crate) fn dependents_of(all: &[&Metadata], name: &str, active: impl Fn(&str) -> bool) -> Vec<String> {
    let mut found: BTreeSet<String> = BTreeSet::new();
    let mut frontier = vec![name.to_owned()];
    while let Some(current) = frontier.pop() {
        for m in all {
            if m.dependencies.iter().any(|d| d.name == current)
                && active(&m.name)
                && found.insert(m.name.clone())
            {
                frontier.push(m.name.clone());
            }
        }
    }
    stop_order(all, found)
}

/// Orders `set` so an extension comes before every extension of the set it depends on.
fn stop_order(all: &[&Metadata], mut set: BTreeSet<String>) -> Vec<String> {
    let mut ordered = Vec::with_capacity(set.len());
    while !set.is_empty() {
        // Something no remaining member depends on can stop now; a cycle (refused at start)
        // would fall back to name order.
        let next = set
            .iter()
            .find(|candidate| {
                !all.iter()
                    .any(|m| set.contains(&m.name) && m.dependencies.iter().any(|d| &d.name == *candidate))
            })
            .or_else(|| set.iter().next())
            .cloned();
        let Some(next) = next else { break };
        set.remove(&next);
        ordered.push(next);
    }
    ordered
}

impl HostInner {
    fn managed(&self, name: &str) -> Result<&Managed, ControlError> {
        self.find(name).ok_or_else(|| ControlError::NotFound(name.to_owned()))
    }

    fn all_metadata(&self) -> Vec<&Metadata> {
        self.extensions.iter().map(|m| &m.metadata).collect()
    }

    /// Enables and starts `name`; its dependencies must be running here.
    pub(crate) async fn enable_as(&self, name: &str, actor: &str) -> Result<ExtensionState, ControlError> {
        let m = self.managed(name)?;
        let _serial = self.ops.control.lock().await;
        if m.slot.state() == ExtensionState::Running {
            ops_store::set_enabled(&self.pool, name, true, None).await?;
            return Ok(ExtensionState::Running);
        }
        let missing: Vec<String> = m
            .metadata
            .dependencies
            .iter()
            .filter(|d| self.find(&d.name).map(|x| x.slot.state()) != Some(ExtensionState::Running))
            .map(|d| d.name.clone())
            .collect();
        if !missing.is_empty() {
            return Err(ControlError::DependenciesDisabled { name: name.to_owned(), missing });
        }
        ops_store::set_enabled(&self.pool, name, true, None).await?;
        self.ops.health.reset(name, m.cx.counters().panics());
        let started = self.start_one(m).await;
        self.audit(
            AuditEntry::new(actor, "extension.enabled", name).details(json!({ "started": started.is_ok() })),
        )
        .await;
        self.announce(name, "enabled").await;
        match started {
            Ok(()) => Ok(ExtensionState::Running),
            Err(reason) => {
                m.slot.set(ExtensionState::Failed(reason.clone()));
                let _ = state::set_state(&self.pool, name, "failed", Some(&reason)).await;
                Err(ControlError::StartFailed { name: name.to_owned(), reason })
            }
        }
    }

    /// Disables `name` (and, with `cascade`, every running extension that needs it); returns the
    /// names disabled, in the order they were stopped.
    pub(crate) async fn disable_as(
        &self,
        name: &str,
        cascade: bool,
        actor: &str,
        reason: Option<&str>,
    ) -> Result<Vec<String>, ControlError> {
        self.managed(name)?;
        let _serial = self.ops.control.lock().await;
        let all = self.all_metadata();
        let dependents = dependents_of(&all, name, |n| {
            self.find(n)
                .is_some_and(|x| matches!(x.slot.state(), ExtensionState::Running | ExtensionState::Starting))
        });
        if !dependents.is_empty() && !cascade {
            return Err(ControlError::HasDependents { name: name.to_owned(), dependents });
        }
        let mut order = dependents;
        order.push(name.to_owned());
        for n in &order {
            let Some(m) = self.find(n) else { continue };
            let why = if n == name {
                reason.map(str::to_owned)
            } else {
                Some(format!("its dependency `{name}` was disabled"))
            };
            ops_store::set_enabled(&self.pool, n, false, why.as_deref()).await?;
            self.stop_one(m).await;
            let details = json!({ "cascade_from": (n != name).then_some(name), "reason": why });
            self.audit(AuditEntry::new(actor, "extension.disabled", n.as_str()).details(details)).await;
            self.announce(n, "disabled").await;
        }
        Ok(order)
    }

    /// Closes the gate, calls `stop()` if it was running, aborts its tasks. Idempotent.
    pub(crate) async fn stop_one(&self, m: &Managed) {
        let was_running = m.slot.state() == ExtensionState::Running;
        m.slot.set(ExtensionState::Disabled);
        if was_running {
            let stopped = lifecycle(m, "stop", self.lifecycle_timeout(), m.extension.stop(&m.cx)).await;
            if let Err(reason) = stopped {
                tracing::error!(extension = %m.metadata.name, %reason, "extension did not stop cleanly");
            }
        }
        m.cx.abort_tasks();
        if let Some(em) = self.ops.metrics.extension(&m.metadata.name) {
            em.set_health(0.0);
        }
        tracing::info!(extension = %m.metadata.name, "extension disabled");
    }

    /// Validates, applies (if running) and stores a new config.
    pub(crate) async fn set_config_as(
        &self,
        name: &str,
        config: Value,
        actor: &str,
    ) -> Result<(), ControlError> {
        let m = self.managed(name)?;
        check_config(m.extension.config_schema().as_ref(), &config)
            .map_err(|errors| ControlError::InvalidConfig { name: name.to_owned(), errors })?;
        let _serial = self.ops.control.lock().await;
        self.apply_config(m, &config)
            .await
            .map_err(|reason| ControlError::ConfigRejected { name: name.to_owned(), reason })?;
        let request_id = crate::request_id::RequestId::current().map(|r| r.to_string());
        let old = ops_store::store_config(&self.pool, name, &config, actor, request_id.as_deref()).await?;
        self.audit(
            AuditEntry::new(actor, "extension.config_changed", name)
                .details(json!({ "old": old, "new": config })),
        )
        .await;
        self.announce(name, "config").await;
        Ok(())
    }

    /// Calls `apply_config` when the extension runs (panic-caught, time-limited), then swaps the
    /// config its context hands out. On failure nothing changes.
    pub(crate) async fn apply_config(&self, m: &Managed, config: &Value) -> Result<(), String> {
        if m.slot.state() == ExtensionState::Running {
            let call = m.extension.apply_config(&m.cx, config);
            lifecycle(m, "apply_config", self.lifecycle_timeout(), call).await?;
        }
        m.cx.set_config(config.clone());
        Ok(())
    }

    /// Publishes `extension.<kind>` locally and tells the other replicas.
    async fn announce(&self, name: &str, kind: &str) {
        let event = if kind == "config" {
            "extension.config_changed".to_owned()
        } else {
            format!("extension.{kind}")
        };
        self.publish(&event, json!({ "extension": name, "replica": self.ops.replica }));
        if let Err(e) = ops_store::notify(&self.pool, name, kind).await {
            tracing::error!(extension = %name, error = %e, "could not notify the other replicas; they pick the change up when they resync");
        }
    }
}

impl Host {
    /// Enables `name` and starts it. Fails with [`ControlError::DependenciesDisabled`] when one
    /// of its dependencies is not running. Audited as actor `host`.
    pub async fn enable(&self, name: &str) -> Result<ExtensionState, ControlError> {
        self.inner.enable_as(name, "host").await
    }

    /// Disables `name`: its routes answer 503 `extension_disabled`, its tasks are aborted and
    /// `stop()` is called. Others that depend on it need `cascade` (else
    /// [`ControlError::HasDependents`]). Returns every extension disabled.
    pub async fn disable(&self, name: &str, cascade: bool) -> Result<Vec<String>, ControlError> {
        self.inner.disable_as(name, cascade, "host", None).await
    }

    /// The config `name` runs with.
    pub fn extension_config(&self, name: &str) -> Result<Value, ControlError> {
        Ok((*self.inner.managed(name)?.cx.config()).clone())
    }

    /// Validates `config` against the extension's JSON Schema, applies it without a restart and
    /// stores it with a history entry. If `apply_config` fails the old config stays.
    pub async fn set_config(&self, name: &str, config: Value) -> Result<(), ControlError> {
        self.inner.set_config_as(name, config, "host").await
    }
}
