//! [`Context`]: an extension's window on the host, scoped to that extension.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use arc_swap::ArcSwap;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

use crate::extension::error::ApiError;
use crate::extension::events::{Event, EventBus};
use crate::extension::permissions::{self, Grants, PermissionError};
use crate::extension::site::{Site, SiteScope};
use crate::extension::storage::{Storage, StorageScope};
use crate::extension::tasks::Tasks;
use crate::limits::quota::{Limits, ResourceUsage};
use crate::observe::audit::{self, AuditEntry};
use crate::observe::stats::{Counters, ExtensionStats};

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
    /// The site of a request under `/sites/<slug>/ext/<name>/…`, with the config there.
    site: Option<Arc<SiteScope>>,
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
    /// The extension's own pool (its role, its schema); set once its migrations are applied.
    db: OnceLock<sqlx::PgPool>,
    grants: Arc<Grants>,
    limits: Arc<Limits>,
    /// Serialises storage writes so the quota accounting stays exact; `true` once measured.
    storage_lock: Arc<tokio::sync::Mutex<bool>>,
}

/// Host services shared by every context; never handed to extensions directly.
#[derive(Debug, Default)]
pub(crate) struct Services {
    pub(crate) bus: Arc<EventBus>,
    /// The host's pool, used only by the host on the extension's behalf (audit writes).
    pub(crate) pool: Option<sqlx::PgPool>,
}

/// [`Context::db`] was called where the extension has no pool (a [`Context::new_test`], or
/// before the host applied its migrations).
#[derive(Debug, thiserror::Error)]
#[error(
    "extension `{extension}` has no database pool here: the host gives it one after applying its      migrations, before init(); a Context::new_test has none"
)]
pub struct DatabaseUnavailable {
    extension: String,
}

/// [`Context::site_tx`] could not open a site transaction.
#[derive(Debug, thiserror::Error)]
pub enum SiteTxError {
    /// The request was not made under a site.
    #[error(
        "extension `{extension}` was called outside a site: a site transaction needs a request to /sites/<slug>/ext/{extension}/…"
    )]
    NoSite {
        /// The extension.
        extension: String,
    },
    /// The extension has no pool here.
    #[error(transparent)]
    NoPool(#[from] DatabaseUnavailable),
    /// Beginning the transaction or setting the site failed.
    #[error("opening a site transaction for extension `{extension}`: {source}")]
    Database {
        /// The extension.
        extension: String,
        /// What PostgreSQL or the pool said.
        #[source]
        source: sqlx::Error,
    },
}

/// The extension's config did not have the shape the extension asked for.
#[derive(Debug, thiserror::Error)]
#[error("config of extension `{extension}` does not fit: {source}")]
pub struct ConfigShapeError {
    extension: String,
    #[source]
    source: serde_json::Error,
}

/// [`Context::spawn`] was refused: the extension already runs `quotas.max_tasks` tasks.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "extension `{extension}` already runs {running} background tasks, its quota      (quotas.max_tasks = {limit}); wait for one to finish or raise the quota"
)]
pub struct SpawnError {
    /// The extension.
    pub extension: String,
    /// Tasks running.
    pub running: usize,
    /// The quota.
    pub limit: u64,
}

/// [`Context::set_gauge`] was refused: a bad name, a value that is not a number, or too many
/// gauges.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum GaugeError {
    /// The name is not 1–64 characters of `a-z`, `0-9` and `_`, starting with a letter.
    #[error("gauge name {0:?} is invalid: use 1–64 characters of a-z, 0-9 and _, starting with a letter")]
    InvalidName(String),
    /// NaN or infinite.
    #[error("gauge `{name}` got {value}, which is not a finite number")]
    NotFinite {
        /// The gauge.
        name: String,
        /// The value refused.
        value: f64,
    },
    /// The extension already has [`MAX_GAUGES`] gauges.
    #[error("extension `{extension}` already reports {MAX_GAUGES} gauges; `{name}` would be one too many")]
    TooMany {
        /// The extension.
        extension: String,
        /// The gauge refused.
        name: String,
    },
}

/// Gauges one extension may report with [`Context::set_gauge`] (a bound on label values).
pub const MAX_GAUGES: usize = 32;

fn valid_gauge_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

impl Context {
    pub(crate) fn new(
        name: &str,
        config: serde_json::Value,
        storage_dir: PathBuf,
        services: Arc<Services>,
        grants: Arc<Grants>,
        limits: Arc<Limits>,
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
                db: OnceLock::new(),
                grants,
                limits,
                storage_lock: Arc::new(tokio::sync::Mutex::new(false)),
            }),
            site: None,
        }
    }

    /// A context for an extension's own unit tests: no host, empty config, every permission
    /// granted, no quotas, storage under `<system temp dir>/annex-test/<name>`.
    pub fn new_test(name: &str) -> Self {
        Self::new(
            name,
            serde_json::Value::Object(Default::default()),
            std::env::temp_dir().join("annex-test").join(name),
            Arc::new(Services::default()),
            Arc::new(Grants::all()),
            Arc::new(Limits::unlimited()),
        )
    }

    /// The extension's name.
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// The extension's current config: under a site (`/sites/<slug>/ext/<name>/…`) the config
    /// it was activated with there, otherwise the `config` table of `[extensions.<name>]`.
    pub fn config(&self) -> Arc<serde_json::Value> {
        match &self.site {
            Some(scope) => scope.config.clone(),
            None => self.inner.config.load_full(),
        }
    }

    /// The site this request was made for (`/sites/<slug>/ext/<name>/…`); `None` under
    /// `/ext/<name>/…`, in hooks of other requests, tasks and lifecycle calls.
    ///
    /// ```
    /// use annex_core::Context;
    /// async fn handler(cx: Context) -> String {
    ///     match cx.site() {
    ///         Some(site) => format!("hello, {}", site.slug()),
    ///         None => "hello, everyone".to_owned(),
    ///     }
    /// }
    /// ```
    pub fn site(&self) -> Option<&Site> {
        self.site.as_deref().map(|scope| &scope.site)
    }

    /// This context, for one request made for a site (the router builds it per request: two
    /// reference counts, no allocation).
    pub(crate) fn at_site(&self, scope: Arc<SiteScope>) -> Self {
        Self { inner: self.inner.clone(), site: Some(scope) }
    }

    /// Opens a transaction on the extension's own pool with the request's site set
    /// transaction-locally (`set_config('annex.site_id', <site id>, true)`), so the host function
    /// `annex_api.annex_site_id()` returns [`Site::id`] inside it and row-level-security
    /// policies written with it show and accept only this site's rows. Commit it, or drop it to
    /// roll back; the setting ends with the transaction, so a pooled connection never carries it
    /// to another request.
    ///
    /// A table shared by every site, with a policy PostgreSQL enforces even for the table's owner
    /// (the extension's role), in the extension's migrations:
    ///
    /// ```sql
    /// create table notes (
    ///     id      bigserial primary key,
    ///     site_id uuid not null default annex_api.annex_site_id(),
    ///     body    text not null
    /// );
    /// alter table notes enable row level security;
    /// alter table notes force row level security;
    /// create policy by_site on notes
    ///     using (site_id = annex_api.annex_site_id())
    ///     with check (site_id = annex_api.annex_site_id());
    /// ```
    ///
    /// and handlers that never name the site, yet only ever see and write their own site's rows:
    ///
    /// ```
    /// use annex_core::{ApiError, Context, Json};
    /// use serde_json::{Value, json};
    ///
    /// async fn add(cx: Context, Json(body): Json<Value>) -> Result<Json<Value>, ApiError> {
    ///     let text = body["body"].as_str().unwrap_or_default();
    ///     let mut tx = cx.site_tx().await?;
    ///     let id: i64 = sqlx::query_scalar("insert into notes (body) values ($1) returning id")
    ///         .bind(text)
    ///         .fetch_one(&mut *tx)
    ///         .await?;
    ///     tx.commit().await?;
    ///     Ok(Json(json!({ "id": id })))
    /// }
    ///
    /// async fn list(cx: Context) -> Result<Json<Value>, ApiError> {
    ///     let mut tx = cx.site_tx().await?;
    ///     // No `where site_id = …`: the policy filters, and another site's rows never appear.
    ///     let bodies: Vec<String> = sqlx::query_scalar("select body from notes order by id")
    ///         .fetch_all(&mut *tx)
    ///         .await?;
    ///     Ok(Json(json!({ "notes": bodies })))
    /// }
    /// ```
    ///
    /// Outside a site transaction `annex_site_id()` is null, so such a policy shows no rows and
    /// refuses every write: forgetting `site_tx` fails closed.
    pub async fn site_tx(&self) -> Result<sqlx::Transaction<'static, sqlx::Postgres>, SiteTxError> {
        let extension = || self.inner.name.clone();
        let site = self.site().ok_or_else(|| SiteTxError::NoSite { extension: extension() })?;
        let pool = self.db()?;
        let database = |source| SiteTxError::Database { extension: extension(), source };
        let mut tx = pool.begin().await.map_err(database)?;
        sqlx::query("select set_config('annex.site_id', $1::uuid::text, true)")
            .bind(site.id())
            .execute(&mut *tx)
            .await
            .map_err(database)?;
        Ok(tx)
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

    /// The extension's own database pool: it logs in as the extension's role, whose search_path
    /// is its schema `ext_<name>`, so unqualified table names are its own. Its size is
    /// `quotas.db_connections` (default 2). The host's own pool is never handed out.
    ///
    /// ```
    /// use annex_core::{ApiError, Context};
    /// async fn count(cx: Context) -> Result<String, ApiError> {
    ///     let n: i64 = sqlx::query_scalar("select count(*) from items").fetch_one(cx.db()?).await?;
    ///     Ok(n.to_string())
    /// }
    /// ```
    pub fn db(&self) -> Result<&sqlx::PgPool, DatabaseUnavailable> {
        self.inner.db.get().ok_or_else(|| DatabaseUnavailable { extension: self.inner.name.clone() })
    }

    /// Gives the extension its pool; hands `pool` back if it already has one (a restart).
    pub(crate) fn set_db(&self, pool: sqlx::PgPool) -> Result<(), sqlx::PgPool> {
        self.inner.db.set(pool)
    }

    /// The extension's own storage directory (`<data_dir>/ext/<name>`). Prefer
    /// [`Context::storage`], which keeps to the quota and the directory.
    pub fn storage_dir(&self) -> &Path {
        &self.inner.storage_dir
    }

    /// Files in the storage directory, within `quotas.storage_bytes`; needs permission
    /// `storage`.
    pub fn storage(&self) -> Storage {
        Storage::new(StorageScope {
            extension: self.inner.name.clone(),
            dir: self.inner.storage_dir.clone(),
            limits: self.inner.limits.clone(),
            grants: self.inner.grants.clone(),
            host_pool: self.inner.services.pool.clone(),
            lock: self.inner.storage_lock.clone(),
        })
    }

    /// Whether the operator granted this extension `permission`.
    pub fn has_permission(&self, permission: &str) -> bool {
        self.inner.grants.has(permission)
    }

    /// `Ok` when `permission` is granted; otherwise the denial is logged, audited (once per
    /// permission per run) and returned. Services call this when used.
    pub fn require_permission(&self, permission: &str) -> Result<(), PermissionError> {
        permissions::require(&self.inner.name, permission, &self.inner.grants, self.host_pool())
    }

    /// Starts a background task, unless `quotas.max_tasks` already run. A panic in it is
    /// caught, logged with the extension's name and counted; the task is aborted when the
    /// extension stops.
    pub fn spawn<F>(&self, fut: F) -> Result<(), SpawnError>
    where
        F: Future<Output = ()> + Send + 'static,
    {
        let limit = self.inner.limits.max_tasks();
        let spawned = self.inner.tasks.spawn(
            &self.inner.name,
            self.inner.span.clone(),
            self.inner.counters.clone(),
            self.inner.limits.clone(),
            limit,
            fut,
        );
        spawned.map_err(|running| SpawnError {
            extension: self.inner.name.clone(),
            running,
            limit: limit.unwrap_or(u64::MAX),
        })
    }

    /// Reports one of the extension's own figures (a queue's depth, the age of its oldest item):
    /// exported as `extension_gauge{extension="<name>",name="<gauge>"}` at `/metrics` and in the
    /// admin API's figures. Cheap (a short lock, no label lookup); call it whenever the figure
    /// changes or on a timer. At most [`MAX_GAUGES`] names per extension.
    ///
    /// ```no_run
    /// # fn f(cx: &annex_core::Context) -> Result<(), annex_core::extension::GaugeError> {
    /// cx.set_gauge("deliveries_pending", 12.0)?;
    /// # Ok(()) }
    /// ```
    pub fn set_gauge(&self, name: &str, value: f64) -> Result<(), GaugeError> {
        if !valid_gauge_name(name) {
            return Err(GaugeError::InvalidName(name.to_owned()));
        }
        if !value.is_finite() {
            return Err(GaugeError::NotFinite { name: name.to_owned(), value });
        }
        let mut gauges = match self.inner.counters.gauges.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        if gauges.len() >= MAX_GAUGES && !gauges.contains_key(name) {
            return Err(GaugeError::TooMany { extension: self.inner.name.clone(), name: name.to_owned() });
        }
        gauges.insert(name.to_owned(), value);
        Ok(())
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

    /// Publishes `<name>.<event>` on the event bus; needs permission `events:publish`. Never
    /// waits: a subscriber whose queue is full misses the event (see the bus's queue policy).
    pub fn publish(&self, event: &str, data: serde_json::Value) -> Result<(), PermissionError> {
        self.require_permission(permissions::EVENTS_PUBLISH)?;
        let name = format!("{}.{event}", self.inner.name);
        self.inner.services.bus.publish(Event::new(name, &self.inner.name, data));
        Ok(())
    }

    /// What this extension uses right now.
    pub(crate) fn usage(&self) -> ResourceUsage {
        self.inner.limits.usage(self.inner.tasks.running())
    }

    pub(crate) fn limits(&self) -> &Arc<Limits> {
        &self.inner.limits
    }

    pub(crate) fn grants(&self) -> &Grants {
        &self.inner.grants
    }

    pub(crate) fn host_pool(&self) -> Option<&sqlx::PgPool> {
        self.inner.services.pool.as_ref()
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

tokio::task_local! {
    /// The `Context` of the route the current task is serving (set by the request path around
    /// the middleware and the handler, instead of one more insert into the request's
    /// extensions, which made axum's map of three grow once per request).
    static SERVING: Context;
}

impl Context {
    /// Runs `fut` (a route's middleware and handler) with this as the `Context` extractors see.
    pub(crate) fn serving<F: Future>(self, fut: F) -> impl Future<Output = F::Output> {
        SERVING.scope(self, fut)
    }
}

/// The route's `Context`: the one in the request's extensions if something put it there,
/// else the one the request path is serving.
impl<S: Send + Sync> FromRequestParts<S> for Context {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let found = parts.extensions.get::<Context>().cloned();
        found.or_else(|| SERVING.try_with(Clone::clone).ok()).ok_or_else(|| {
            ApiError::internal("this handler asked for an extension Context outside /ext/<name>")
        })
    }
}

/// Outside a site: 400 `site_required`, naming the URL to use; no pool or a database failure:
/// 500, logged, the text never sent.
impl From<SiteTxError> for ApiError {
    fn from(e: SiteTxError) -> Self {
        match e {
            SiteTxError::NoSite { .. } => {
                Self::new(axum::http::StatusCode::BAD_REQUEST, "site_required", e.to_string())
            }
            SiteTxError::NoPool(e) => e.into(),
            SiteTxError::Database { source, .. } => source.into(),
        }
    }
}

impl From<DatabaseUnavailable> for ApiError {
    fn from(e: DatabaseUnavailable) -> Self {
        Self::internal(e.to_string())
    }
}

#[cfg(test)]
mod extractor_tests {
    use super::*;

    fn parts() -> Parts {
        axum::http::Request::new(()).into_parts().0
    }

    #[tokio::test]
    async fn the_extractor_finds_the_served_context_and_refuses_outside_a_route() {
        let outside = Context::from_request_parts(&mut parts(), &()).await;
        let err = outside.err().expect("no Context outside a route");
        assert_eq!(err.status(), axum::http::StatusCode::INTERNAL_SERVER_ERROR);

        let served = Context::new_test("served");
        let found = served
            .serving(async {
                Context::from_request_parts(&mut parts(), &()).await.map(|c| c.name().to_owned())
            })
            .await;
        assert_eq!(found.ok().as_deref(), Some("served"));

        // One put in the request's extensions wins over the served one.
        let mut with = parts();
        with.extensions.insert(Context::new_test("inserted"));
        let found = Context::new_test("served")
            .serving(
                async move { Context::from_request_parts(&mut with, &()).await.map(|c| c.name().to_owned()) },
            )
            .await;
        assert_eq!(found.ok().as_deref(), Some("inserted"));
    }
}
