//! The `Extension` trait: the one thing an extension author implements.

use async_trait::async_trait;

use crate::context::Context;
use crate::health::Health;
use crate::metadata::Metadata;
use crate::migrations::Migrations;
use crate::registrar::Registrar;

/// Any error an extension returns from a lifecycle call.
///
/// Anything that implements `std::error::Error` (and `anyhow::Error`) converts into it with `?`.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// The result of a lifecycle call.
pub type ExtensionResult<T = ()> = Result<T, BoxError>;

/// A compiled-in extension.
///
/// Only [`Extension::metadata`] is required; every other method has a default that does nothing.
/// The host calls, in order: `metadata`, `register` (once, to collect routes), then for each
/// enabled extension in dependency order `init` and `start`; on shutdown or disable, `stop` in
/// reverse order. Every call is panic-isolated: a panic fails this extension only.
///
/// ```
/// use annex_core::{Extension, Metadata, Registrar, Context};
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

    /// JSON Schema for this extension's `config`, if it takes any.
    fn config_schema(&self) -> Option<serde_json::Value> {
        None
    }

    /// The extension's own schema migrations, applied in its schema before `init`.
    fn migrations(&self) -> Migrations {
        Migrations::none()
    }

    /// Declares routes (relative to `/ext/<name>`), and later hooks and middleware.
    fn register(&self, _registrar: &mut Registrar) {}

    /// Called once after migrations, before any extension is started.
    async fn init(&self, _cx: &Context) -> ExtensionResult {
        Ok(())
    }

    /// Called after `init`, in dependency order. Start background work here with
    /// [`Context::spawn`].
    async fn start(&self, _cx: &Context) -> ExtensionResult {
        Ok(())
    }

    /// Called on shutdown or disable, in reverse dependency order.
    async fn stop(&self, _cx: &Context) -> ExtensionResult {
        Ok(())
    }

    /// Reports this extension's health; called periodically by the host.
    async fn health(&self, _cx: &Context) -> Health {
        Health::healthy()
    }

    /// Applies a new, already validated configuration without a restart.
    async fn apply_config(&self, _cx: &Context, _config: &serde_json::Value) -> ExtensionResult {
        Ok(())
    }
}
