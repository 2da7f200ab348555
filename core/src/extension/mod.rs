//! What an extension author touches: the [`Extension`] trait, its [`Metadata`], the
//! [`Registrar`] it declares routes and hooks on, the [`Context`] it runs with, and the services
//! behind the context (storage, tasks, events, permissions). The crate root re-exports the
//! everyday names; this module has them all.

pub(crate) mod context;
pub(crate) mod entities;
pub(crate) mod error;
pub(crate) mod events;
pub(crate) mod gate;
pub(crate) mod health;
pub mod hooks;
pub(crate) mod json;
pub(crate) mod metadata;
pub(crate) mod migrations;
pub(crate) mod panic;
pub(crate) mod permissions;
pub(crate) mod registrar;
pub(crate) mod registration;
pub(crate) mod site;
pub mod stage;
pub(crate) mod storage;
pub(crate) mod tasks;

use async_trait::async_trait;

pub use crate::observe::request_id::RequestId;
pub use context::{
    ConfigShapeError, Context, DatabaseUnavailable, GaugeError, MAX_GAUGES, SiteTxError, SpawnError,
};
pub use entities::{Entities, entity_format};
pub use error::ApiError;
pub use events::{Event, QUEUE_CAPACITY, pattern_matches};
pub use health::{Health, HealthStatus};
pub use json::Json;
pub use metadata::{Capability, CapabilityRequirement, Dependency, Metadata, SignoffRequirement};
pub use migrations::{Migration, Migrations};
pub use permissions::PermissionError;
pub use registrar::{Registrar, RouteRef};
pub use site::Site;
pub use storage::{Storage, StorageError};

/// The permission names annex itself checks. Extensions declare them with
/// [`Metadata::permission`]; operators grant them in `[extensions.<name>] permissions`.
pub mod permission {
    pub use super::permissions::{
        DATABASE, EVENTS_PUBLISH, EVENTS_SUBSCRIBE, HOOKS_AUTH, HOOKS_GLOBAL, HTTP_OUTBOUND, STORAGE,
    };
}

/// Any error an extension returns from a lifecycle call.
///
/// Anything that implements `std::error::Error` (and `anyhow::Error`) converts into it with `?`.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// The result of a lifecycle call.
pub type ExtensionResult<T = ()> = Result<T, BoxError>;

/// A compiled-in extension.
///
/// Only [`Extension::metadata`] is required; every other method has a default that does
/// nothing. Every call into an extension is panic-isolated: a panic fails this extension only.
///
/// # Declarations
/// [`metadata`](Extension::metadata), [`register`](Extension::register),
/// [`config_schema`](Extension::config_schema) and [`migrations`](Extension::migrations)
/// describe the extension. The host calls them when it starts, and operator tools (`annex
/// extensions info`, the admin API) call them again to describe it, with or without a running
/// host: keep them cheap and free of side effects, declare, don't do.
///
/// # Lifecycle
/// 1. At start, the host validates the whole compiled-in set (names, versions, dependencies,
///    routes, hooks) from the declarations, before anything runs.
/// 2. Then, in dependency order (its dependencies first; ties by name), for each enabled
///    extension: its schema, role and pool are created, its pending migrations applied, then
///    [`init`](Extension::init) and [`start`](Extension::start) run back to back. `init` and
///    `start` run one extension at a time, each after its dependencies have started; the
///    database steps of extensions whose dependencies have all started run concurrently (a
///    start-up wave). If either call fails, panics or times out (`server.lifecycle_timeout_ms`), this
///    extension is marked failed and the others go on; its gate opens only when both succeed.
/// 3. While it runs: its routes, hooks, middleware and event subscriptions are live;
///    [`health`](Extension::health) is called every `health.interval_ms`;
///    [`apply_config`](Extension::apply_config) is called with each new config, after it was
///    validated against [`config_schema`](Extension::config_schema).
/// 4. When it is disabled (by an operator, by the health monitor, or because a dependency was
///    disabled with cascade), its gate closes first, then [`stop`](Extension::stop) runs and its
///    background tasks are aborted.
/// 5. When it is enabled again, `init` and `start` run again on the same value and the same
///    [`Context`] (its pool is kept): make them safe to repeat.
/// 6. At shutdown, `stop` runs for every running extension in reverse start order.
///
/// ```
/// use annex_core::{Context, Extension, Metadata, Registrar};
/// use axum::Json;
///
/// struct Hello;
///
/// #[annex_core::async_trait]
/// impl Extension for Hello {
///     fn metadata(&self) -> Metadata {
///         Metadata::new("hello", "0.1.0").description("Says hello")
///     }
///     fn register(&self, r: &mut Registrar) {
///         r.get("/ping", |_cx: Context| async { Json(serde_json::json!({"pong": true})) });
///     }
/// }
/// ```
#[async_trait]
pub trait Extension: Send + Sync + 'static {
    /// Name, version, description, dependencies and the permissions it needs.
    fn metadata(&self) -> Metadata;

    /// Declares routes (relative to `/ext/<name>`), hooks, middleware and event subscriptions.
    fn register(&self, _registrar: &mut Registrar) {}

    /// JSON Schema for this extension's `config`, if it takes any. A config is always a JSON
    /// object; with a schema it must also fit the schema.
    fn config_schema(&self) -> Option<serde_json::Value> {
        None
    }

    /// The extension's own schema migrations, applied in its schema, as its role, before `init`.
    fn migrations(&self) -> Migrations {
        Migrations::none()
    }

    /// Tables, enums and relations declared as data (`annex_core::entities!("entities.toml")`).
    /// The host checks every declaration at startup, against the extensions this one depends on.
    fn entities(&self) -> Option<Entities> {
        None
    }

    /// Called when the extension is enabled (at start, and at every re-enable), after its
    /// dependencies started and its migrations were applied; [`Context::db`] works from here.
    async fn init(&self, _cx: &Context) -> ExtensionResult {
        Ok(())
    }

    /// Called right after `init`. Start background work here with [`Context::spawn`].
    async fn start(&self, _cx: &Context) -> ExtensionResult {
        Ok(())
    }

    /// Applies a new, already validated configuration without a restart. An error keeps the old
    /// config in force (the admin API answers 422 `config_rejected`).
    async fn apply_config(&self, _cx: &Context, _config: &serde_json::Value) -> ExtensionResult {
        Ok(())
    }

    /// Reports this extension's health; called every `health.interval_ms` while it runs, with a
    /// time limit (`health.timeout_ms`).
    async fn health(&self, _cx: &Context) -> Health {
        Health::healthy()
    }

    /// Called when the extension is disabled, and at shutdown in reverse start order. Its tasks
    /// are aborted afterwards.
    async fn stop(&self, _cx: &Context) -> ExtensionResult {
        Ok(())
    }
}
