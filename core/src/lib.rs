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

pub mod admin;
pub mod config;
mod db;
pub mod extension;
pub mod host;
mod http;
mod limits;
mod observe;
mod plan;
mod runtime;
#[cfg(feature = "testkit")]
pub mod testkit;

#[cfg(test)]
mod layering_tests;

pub use extension::hooks::{self, Hook, Identity, Next};
pub use extension::{
    ApiError, BoxError, Context, Event, Extension, ExtensionResult, Health, HealthStatus, Metadata,
    Migration, Migrations, Registrar, RequestId, Storage, permission,
};

/// Re-exported so extensions need not depend on `async-trait` themselves.
pub use async_trait::async_trait;

/// Embeds an extension's migrations: `annex_core::migrations!("migrations")` reads
/// `NNNN_description.up.sql` (and optional `.down.sql`) files from that directory of the calling
/// crate at compile time. See [`Migrations`].
pub use annex_core_macros::migrations;

/// Fixtures for `core/benches/`: crate internals wrapped just enough to be measured.
#[cfg(feature = "bench")]
#[doc(hidden)]
#[path = "bench.rs"]
pub mod __bench;

#[doc(hidden)]
pub mod __private {
    pub use crate::extension::registration::Registration;
    pub use inventory;
}
