//! [`Context`]: an extension's window on the host, scoped to that extension.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arc_swap::ArcSwap;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

use crate::api_error::ApiError;
use crate::audit::{self, AuditEntry};
use crate::events::{Event, EventBus};
use crate::stats::{Counters, ExtensionStats};
use crate::tasks::Tasks;

/// An extension's handle on the services the host gives it, and nothing more.
///
/// Cheap to clone. Handlers receive it as an extractor argument:
///
/// ```
/// use annex_core::Context;
/// async fn handler(cx: Context) -> String {
///     format!("hello from {}", cx.name())
/// }
/// ```
#[derive(Clone, Debug)]
pub struct Context {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    name: String,
    config: ArcSwap<serde_json::Value>,
    span: tracing::Span,
    storage_dir: PathBuf,
    tasks: Tasks,
    counters: Arc<Counters>,
    services: Arc<Services>,
}

/// Host services shared by every context; never handed to extensions directly.
#[derive(Debug, Default)]
pub(crate) struct Services {
    pub(crate) bus: Arc<EventBus>,
    /// The host's pool, used only by the host on the extension's behalf (audit writes).
    pub(crate) pool: Option<sqlx::PgPool>,
}

/// The extension's config did not have the shape the extension asked for.
#[derive(Debug, thiserror::Error)]
#[error("config of extension `{extension}` does not fit: {source}")]
pub struct ConfigShapeError {
    extension: String,
    #[source]
    source: serde_json::Error,
}

impl Context {
    pub(crate) fn new(
        name: &str,
        config: serde_json::Value,
        storage_dir: PathBuf,
        services: Arc<Services>,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                name: name.to_owned(),
                config: ArcSwap::from_pointee(config),
                span: tracing::info_span!("extension", extension = %name),
                storage_dir,
                tasks: Tasks::default(),
                counters: Arc::new(Counters::default()),
                services,
            }),
        }
    }

    /// A context for an extension's own unit tests: no host, empty config, a temporary-free
    /// storage path under the system temp dir.
    pub fn new_test(name: &str) -> Self {
        Self::new(
            name,
            serde_json::Value::Object(Default::default()),
            std::env::temp_dir(),
            Arc::new(Services::default()),
        )
    }

    /// The extension's name.
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// The extension's current config (the `config` table of `[extensions.<name>]`).
    pub fn config(&self) -> Arc<serde_json::Value> {
        self.inner.config.load_full()
    }

    /// The current config deserialized into `T`.
    pub fn config_as<T: DeserializeOwned>(&self) -> Result<T, ConfigShapeError> {
        T::deserialize(&*self.config())
            .map_err(|source| ConfigShapeError { extension: self.inner.name.clone(), source })
    }

    /// A tracing span carrying `extension=<name>`; the host enters it around every call.
    pub fn span(&self) -> &tracing::Span {
        &self.inner.span
    }

    /// The extension's own storage directory (`<data_dir>/ext/<name>`).
    pub fn storage_dir(&self) -> &Path {
        &self.inner.storage_dir
    }

    /// Starts a background task. A panic in it is caught, logged with the extension's name and
    /// counted; the task is aborted when the extension stops.
    pub fn spawn<F>(&self, fut: F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        self.inner.tasks.spawn(&self.inner.name, self.inner.span.clone(), self.inner.counters.clone(), fut);
    }

    /// Background tasks still running.
    pub fn running_tasks(&self) -> usize {
        self.inner.tasks.running()
    }

    /// This extension's counters.
    pub fn stats(&self) -> ExtensionStats {
        self.inner.counters.snapshot()
    }

    pub(crate) fn counters(&self) -> &Arc<Counters> {
        &self.inner.counters
    }

    /// Publishes `<name>.<event>` on the event bus. Never waits; see the bus's queue policy.
    pub fn publish(&self, event: &str, data: serde_json::Value) {
        let name = format!("{}.{event}", self.inner.name);
        self.inner.services.bus.publish(Event::new(name, &self.inner.name, data));
    }

    /// Appends `<name>.<action>` on `target` to the audit log, as actor `extension:<name>`.
    /// In a test context without a database this does nothing.
    pub async fn audit(
        &self,
        action: &str,
        target: &str,
        details: serde_json::Value,
    ) -> Result<(), sqlx::Error> {
        let Some(pool) = &self.inner.services.pool else { return Ok(()) };
        let entry = AuditEntry::new(
            format!("extension:{}", self.inner.name),
            format!("{}.{action}", self.inner.name),
            target,
        )
        .details(details);
        audit::record(pool, &entry).await
    }

    /// Swaps the config handed out from now on (after `apply_config` accepted it).
    pub(crate) fn set_config(&self, config: serde_json::Value) {
        self.inner.config.store(Arc::new(config));
    }

    pub(crate) fn abort_tasks(&self) {
        self.inner.tasks.abort_all();
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Context {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        parts.extensions.get::<Context>().cloned().ok_or_else(|| {
            ApiError::internal("this handler asked for an extension Context outside /ext/<name>")
        })
    }
}
