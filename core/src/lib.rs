//! # annex-core
//!
//! The runtime library every annex extension depends on. An extension is a type that
//! implements [`Extension`] and is registered with [`register_extension!`]; the `annex` binary
//! collects every compiled-in extension, validates the set, gives each its own routes under
//! `/ext/<name>/`, and runs it with panic isolation.
//!
//! ```
//! use annex_core::{Context, Extension, Metadata, Registrar};
//! use axum::Json;
//! use serde_json::{Value, json};
//!
//! #[derive(Default)]
//! pub struct Hello;
//!
//! #[annex_core::async_trait]
//! impl Extension for Hello {
//!     fn metadata(&self) -> Metadata {
//!         Metadata::new("hello", "0.1.0").description("Answers pings")
//!     }
//!     fn register(&self, r: &mut Registrar) {
//!         r.get("/ping", ping);
//!     }
//! }
//!
//! async fn ping(_cx: Context) -> Json<Value> {
//!     Json(json!({ "pong": true }))
//! }
//!
//! annex_core::register_extension!(Hello);
//! ```
//!
//! See `docs/` in the repository for the request path and the order in which layers run.
#![warn(missing_docs, unreachable_pub, missing_debug_implementations)]

#[cfg(panic = "abort")]
compile_error!(
    "annex isolates extension panics with unwinding; build with panic = \"unwind\" (remove \
     `panic = \"abort\"` from your Cargo profile)"
);

mod admin;
mod admin_api;
mod admin_ops;
mod api_error;
mod audit;
mod config;
mod config_schema;
mod context;
mod control;
mod db;
mod error;
mod events;
mod extension;
mod gate;
mod health;
mod health_monitor;
mod hooks;
mod host;
mod metadata;
mod metrics;
mod middleware;
mod migration_admin;
mod migrations;
mod ops;
mod panic;
mod permissions;
mod plan;
mod preflight;
mod quota;
mod rate_limit;
mod registrar;
mod registration;
mod replica_sync;
mod request_id;
mod request_path;
mod router;
mod secret;
mod stats;
mod storage;
mod tasks;
#[cfg(feature = "testkit")]
pub mod testkit;

pub use admin::{Admin, ExtensionRecord};
pub use admin_ops::{ExtensionDetails, ExtensionFigures, HealthReport};
pub use api_error::ApiError;
pub use audit::AuditEntry;
pub use config::{
    Config, ConfigError, DatabaseConfig, ExtensionConfig, HealthConfig, Isolation, LogConfig, LogFormat,
    QuotaConfig, RateLimitConfig, ServerConfig,
};
pub use config_schema::{SchemaViolation, check_config};
pub use context::{ConfigShapeError, Context, DatabaseUnavailable, SpawnError};
pub use control::ControlError;
pub use db::isolation::IsolationError;
pub use db::migrate::{MigrationError, MigrationStep, StepAction};
pub use db::ops_store::HealthCheck;
pub use db::private_postgres::{PostgresError, PrivatePostgres};
pub use error::HostError;
pub use events::{Event, QUEUE_CAPACITY, pattern_matches};
pub use extension::{BoxError, Extension, ExtensionResult};
pub use gate::ExtensionState;
pub use health::{Health, HealthStatus};
pub use hooks::{
    Completed, ErrorKind, Hook, HookInfo, HookPoint, HookRequest, HookResponse, Identity, RequestError,
    RequestInfo,
};
pub use host::{ExtensionStatus, Host, HostBuilder};
pub use metadata::{Dependency, Metadata};
pub use middleware::Next;
pub use migration_admin::{ExtensionDbError, MigrationHistoryEntry, MigrationReport, MigrationStatus};
pub use migrations::{Migration, Migrations};
pub use permissions::PermissionError;
pub use plan::{PlanError, PlanErrors, validate};
pub use preflight::{Problem, preflight};
pub use quota::{LimitsError, ResourceUsage};
pub use registrar::{Registrar, RouteRef};
pub use registration::{Registration, RegistrationError, compiled_in};
pub use request_id::{REQUEST_ID_HEADER, RequestId};
pub use secret::SecretError;
pub use stats::ExtensionStats;
pub use storage::{Storage, StorageError};

/// The permission names annex itself checks. Extensions declare them with
/// [`Metadata::permission`]; operators grant them in `[extensions.<name>] permissions`.
pub mod permission {
    pub use crate::permissions::{
        DATABASE, EVENTS_PUBLISH, EVENTS_SUBSCRIBE, HOOKS_AUTH, HOOKS_GLOBAL, HTTP_OUTBOUND, STORAGE,
    };
}

/// Re-exported so extensions need not depend on `async-trait` themselves.
pub use async_trait::async_trait;

/// Embeds an extension's migrations: `annex_core::migrations!("migrations")` reads
/// `NNNN_description.up.sql` (and optional `.down.sql`) files from that directory of the calling
/// crate at compile time. See [`Migrations`].
pub use annex_core_macros::migrations;

#[doc(hidden)]
#[path = "bench_support.rs"]
pub mod __bench;

#[doc(hidden)]
pub mod __private {
    pub use inventory;
}
