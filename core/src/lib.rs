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
mod host;
mod metadata;
mod metrics;
mod migrations;
mod ops;
mod panic;
mod plan;
mod preflight;
mod registrar;
mod registration;
mod replica_sync;
mod request_id;
mod router;
mod stats;
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
pub use context::{ConfigShapeError, Context};
pub use control::ControlError;
pub use db::migrate::MigrationError;
pub use db::ops_store::HealthCheck;
pub use db::private_postgres::{PostgresError, PrivatePostgres};
pub use error::HostError;
pub use events::{Event, QUEUE_CAPACITY, pattern_matches};
pub use extension::{BoxError, Extension, ExtensionResult};
pub use gate::ExtensionState;
pub use health::{Health, HealthStatus};
pub use host::{ExtensionStatus, Host, HostBuilder};
pub use metadata::{Dependency, Metadata};
pub use migrations::{Migration, Migrations};
pub use plan::{PlanError, PlanErrors, validate};
pub use preflight::{Problem, preflight};
pub use registrar::Registrar;
pub use registration::{Registration, RegistrationError, compiled_in};
pub use request_id::{REQUEST_ID_HEADER, RequestId};
pub use stats::ExtensionStats;

/// Re-exported so extensions need not depend on `async-trait` themselves.
pub use async_trait::async_trait;

#[doc(hidden)]
#[path = "bench_support.rs"]
pub mod __bench;

#[doc(hidden)]
pub mod __private {
    pub use inventory;
}
