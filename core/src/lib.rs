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
//! # What is where
//! - The crate root: what an extension author needs every day: [`Extension`], [`Metadata`],
//!   [`Registrar`], [`Context`], [`Hook`], [`ApiError`], the macros. [`extension`] has all of
//!   the author's types (errors its services return, [`extension::Dependency`], …) and
//!   [`hooks`] the hook types.
//! - [`host`]: running a host ([`host::Host`]); [`config`]: its configuration; [`admin`]:
//!   operating it (the controller behind the CLI and the admin API, and the pipeline stage
//!   [`admin::Registry`]); `testkit` (feature `testkit`): testing an extension against a real
//!   PostgreSQL.
//! - [`stage`]: processing-pipeline stages (the envelope, [`Registrar::stage`]); the pipelines
//!   themselves (registry, snapshot, engine, `POST /pipelines/<name>`) are described in
//!   docs/pipelines.md.
//!
//! The lifecycle of an extension is on the [`Extension`] trait; the request path and the
//! database follow.
//!
#![doc = include_str!("../../docs/request-path.md")]
//!
#![doc = include_str!("../../docs/database.md")]
#![deny(missing_docs, unreachable_pub)]
#![warn(missing_debug_implementations)]

#[cfg(panic = "abort")]
compile_error!(
    "annex isolates extension panics with unwinding; build with panic = \"unwind\" (remove \
     `panic = \"abort\"` from your Cargo profile)"
);

pub mod access;
pub mod admin;
pub mod config;
mod db;
mod entities;
pub mod extension;
pub mod host;
mod http;
mod limits;
mod observe;
mod pipelines;
mod plan;
mod runtime;
pub mod sites;
#[cfg(feature = "testkit")]
pub mod testkit;

#[cfg(test)]
mod layering_tests;

pub use extension::hooks::{self, Hook, Identity, Next};
pub use extension::stage;
pub use extension::{
    ApiError, BoxError, Context, Event, Extension, ExtensionResult, Health, HealthStatus, Json, Metadata,
    Migration, Migrations, Registrar, RequestId, Storage, permission,
};

/// Re-exported so extensions need not depend on `async-trait` themselves.
pub use async_trait::async_trait;

/// Embeds an extension's migrations: `annex_core::migrations!("migrations")` reads
/// `NNNN_description.up.sql` (and optional `.down.sql`) files from that directory of the calling
/// crate at compile time. See [`Migrations`].
pub use annex_core_macros::migrations;

/// Embeds an extension's entity declaration: `annex_core::entities!("entities.toml")` (or a
/// `.json` file) reads it from the calling crate at compile time and rejects a malformed one
/// with the file, line or JSON pointer, and the problem. See [`extension::Entities`].
pub use annex_core_macros::entities;

/// Writes a Rust type per entity of a declaration file (checked as by [`entities!`]), so an
/// extension's own handlers read and write its entities typed: `annex_core::entity_types!("entities.toml");`
/// in item position defines, for entity `work_order`, `pub struct WorkOrder` (serde
/// `Serialize`/`Deserialize` and `sqlx::FromRow`, one field per column: `id`, `created_at`,
/// `updated_at`, the fields, `<field>_id` for references) and, for each enum `status` of the
/// declaration, `pub enum Status` (a variant per value, and `Other(String)` for values another
/// extension adds). Types: `string`/`text` → `String`, `int` → `i32`, `bigint` → `i64`, `float`
/// → `f64`, `decimal` → `rust_decimal::Decimal`, `boolean` → `bool`, `date` →
/// `chrono::NaiveDate`, `datetime` → `chrono::DateTime<Utc>`, `json` → `serde_json::Value`,
/// `uuid` and references → `uuid::Uuid`; optional fields are `Option<…>`.
pub use annex_core_macros::entity_types;

/// Fixtures for `core/benches/`: crate internals wrapped just enough to be measured.
#[cfg(feature = "bench")]
#[doc(hidden)]
#[path = "bench.rs"]
pub mod __bench;

#[doc(hidden)]
pub mod __private {
    pub use crate::extension::registration::Registration;
    pub use inventory;
    // What `entity_types!` expands to refers to (the extension crate need not depend on them).
    pub use {chrono, rust_decimal, serde, serde_json, sqlx, uuid};
}
