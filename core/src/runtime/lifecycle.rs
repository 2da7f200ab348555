//! [`Host`]: validates the compiled-in set, opens the database, starts extensions in
//! dependency order, serves them, and stops them in reverse order.

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use sqlx::PgPool;
use tokio::net::TcpListener;
use tracing::Instrument;

use crate::audit::{self, AuditEntry};
use crate::config::Config;
use crate::context::{Context, Services};
use crate::db::database::Database;
use crate::db::extension_db;
use crate::db::isolation::{DEFAULT_POOL_SIZE, Isolator};
use crate::db::{ops_store, state};
use crate::error::HostError;
use crate::events::{Event, EventBus};
use crate::extension::{Extension, ExtensionResult};
use crate::gate::{ExtensionState, Slot};
use crate::hooks::{self, HookInfo};
use crate::metadata::Metadata;
use crate::middleware::MiddlewareSet;
use crate::panic;
use crate::permissions::{self, Grants, Need};
use crate::plan::Plan;
use crate::quota::{Limits, LimitsError, ResourceUsage};
use crate::registrar::RouteSpec;
use crate::stats::{Counters, ExtensionStats};

/// Builds a [`Host`] from a config and a set of extensions.
///
/// ```no_run
/// # async fn run() -> Result<(), annex_core::HostError> {
/// use annex_core::{Config, Host};
/// let host = Host::builder(Config::default())
///     .extensions(annex_core::compiled_in(&[])?)
///     .start()
///     .await?;
/// let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await.unwrap();
/// host.serve(listener, async { let _ = tokio::signal::ctrl_c().await; }).await?;
/// host.shutdown().await;
/// # Ok(()) }
/// ```
pub struct HostBuilder {
    config: Config,
    extensions: Vec<Arc<dyn Extension>>,
}

impl std::fmt::Debug for HostBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<String> = self.extensions.iter().map(|e| e.metadata().name).collect();
        f.debug_struct("HostBuilder").field("extensions", &names).finish_non_exhaustive()
    }
}

/// A started annex host. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Host {
    pub(crate) inner: Arc<HostInner>,
}

#[derive(Debug)]
pub(crate) struct HostInner {
    pub(crate) config: Config,
    pub(crate) pool: PgPool,
    database: Mutex<Option<Database>>,
    isolator: Isolator,
    pub(crate) extensions: Vec<Managed>,
    pub(crate) ready: AtomicBool,
    pub(crate) services: Arc<Services>,
    pub(crate) hooks: hooks::Registry,
    pub(crate) middleware: MiddlewareSet,
    /// Metrics, admin token, health monitor and replica sync (see `ops.rs`).
    pub(crate) ops: crate::ops::Ops,
}

/// One extension under the host's management.
pub(crate) struct Managed {
    pub(crate) metadata: Metadata,
    pub(crate) extension: Arc<dyn Extension>,
    pub(crate) cx: Context,
    pub(crate) slot: Arc<Slot>,
    pub(crate) routes: Vec<RouteSpec>,
    /// Permissions it needs (declared and implied by what it registered).
    pub(crate) needs: Vec<Need>,
}

impl std::fmt::Debug for Managed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Managed")
            .field("name", &self.metadata.name)
            .field("state", &self.slot.state())
            .finish()
    }
}

/// One extension's name, version and state, as the host sees it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ExtensionStatus {
    /// Name.
    pub name: String,
    /// Version.
    pub version: String,
    /// One-line description.
    pub description: String,
    /// Lifecycle state.
    #[serde(flatten)]
    pub state: ExtensionState,
}

impl Host {
    /// Starts building a host.
    pub fn builder(config: Config) -> HostBuilder {
        HostBuilder { config, extensions: Vec::new() }
    }
}

impl HostBuilder {
    /// Adds one extension.
    pub fn extension(mut self, extension: impl Extension) -> Self {
        self.extensions.push(Arc::new(extension));
        self
    }

    /// Adds several, such as [`compiled_in`](crate::compiled_in)'s result.
    pub fn extensions(mut self, extensions: Vec<Arc<dyn Extension>>) -> Self {
        self.extensions.extend(extensions);
        self
    }

    /// Validates the set, opens the database, and starts every enabled extension.
    ///
    /// Problems with the set itself (names, versions, dependencies, routes) fail the whole
    /// start. An extension whose own `init`/`start` fails or panics is marked failed and the
    /// others start normally.
    pub async fn start(self) -> Result<Host, HostError> {
        let plan = Plan::new(self.extensions)?;
        let config = self.config;
        let database = Database::open(&config).await?;
        let isolator = Isolator::prepare(&database, &config).await?;
        let pool = database.pool.clone();
        let services = Arc::new(Services { bus: Arc::new(EventBus::default()), pool: Some(pool.clone()) });
        let mut extensions = Vec::with_capacity(plan.extensions.len());
        let (mut hook_specs, mut middleware_specs) = (Vec::new(), Vec::new());
        let mut prepared = Vec::with_capacity(plan.extensions.len());
        for p in &plan.extensions {
            prepared.push(Limits::prepare(&p.metadata.name, &config.extension(&p.metadata.name))?);
        }
        for (p, prepared) in plan.extensions.into_iter().zip(prepared) {
            let name = p.metadata.name.clone();
            let ext_config = config.extension(&name);
            let stored = state::register(&pool, &name, &p.metadata.version, ext_config.enabled).await?;
            let needs = permissions::needs_of(&p);
            // A `config` in annex.toml is written to the database at start (validated, with a
            // history entry), so every replica and the CLI see one config; live changes made
            // later last until a restart brings the file's value back.
            let mut config_problem = None;
            let settings = match ext_config.config {
                Some(file) if file != stored.config => {
                    match crate::config_schema::check_config(p.extension.config_schema().as_ref(), &file) {
                        Ok(()) => {
                            let old =
                                ops_store::store_config(&pool, &name, &file, "config-file", None).await?;
                            let entry = AuditEntry::new("config-file", "extension.config_changed", &name)
                                .details(serde_json::json!({ "old": old, "new": file }));
                            audit::record_or_log(&pool, entry).await;
                            file
                        }
                        Err(errors) => {
                            let list: Vec<String> =
                                errors.iter().map(|e| format!("{}: {}", e.pointer, e.message)).collect();
                            config_problem = Some(format!(
                                "its config in annex.toml ([extensions.{name}] config) does not match its schema: {}",
                                list.join("; ")
                            ));
                            stored.config
                        }
                    }
                }
                Some(file) => file,
                None => stored.config,
            };
            let limits = Arc::new(Limits::unlimited());
            limits.apply(prepared);
            let grants = Arc::new(Grants::new(&ext_config.permissions));
            let storage = config.data_dir.join("ext").join(&name);
            let cx = Context::new(&name, settings, storage, services.clone(), grants, limits);
            let slot = Arc::new(Slot::new());
            for (pattern, handler) in p.subscriptions {
                services.bus.subscribe(cx.clone(), slot.clone(), pattern, handler);
            }
            hook_specs.extend(p.hooks.into_iter().map(|h| (cx.clone(), slot.clone(), h)));
            middleware_specs.extend(p.middleware.into_iter().map(|m| (cx.clone(), slot.clone(), m)));
            if !stored.enabled {
                slot.set(ExtensionState::Disabled);
            } else if let Some(reason) = config_problem {
                slot.set(ExtensionState::Failed(reason));
            }
            extensions.push(Managed {
                metadata: p.metadata,
                extension: p.extension,
                cx,
                slot,
                routes: p.routes,
                needs,
            });
        }
        let ops = crate::ops::Ops::new(&config, &extensions)?;
        let hooks = hooks::Registry::new(hook_specs);
        hooks.attach_metrics(&ops.metrics);
        let middleware = MiddlewareSet::new(middleware_specs);
        middleware.attach_metrics(&ops.metrics);
        let inner = Arc::new(HostInner {
            ops,
            config,
            pool,
            database: Mutex::new(Some(database)),
            isolator,
            extensions,
            ready: AtomicBool::new(false),
            services,
            hooks,
            middleware,
        });
        prune_rate_limits(Arc::downgrade(&inner));
        inner.start_all().await;
        inner.ready.store(true, Ordering::Release);
        crate::ops::Ops::start(&inner);
        Ok(Host { inner })
    }
}

impl HostInner {
    pub(crate) fn find(&self, name: &str) -> Option<&Managed> {
        self.extensions.iter().find(|m| m.metadata.name == name)
    }

    /// Publishes a host event (`source` = `host`).
    pub(crate) fn publish(&self, name: &str, data: serde_json::Value) {
        self.services.bus.publish(Event::new(name.to_owned(), "host", data));
    }

    /// Appends an audit entry, logging if the write fails.
    pub(crate) async fn audit(&self, entry: AuditEntry) {
        audit::record_or_log(&self.pool, entry).await;
    }

    pub(crate) fn lifecycle_timeout(&self) -> Duration {
        Duration::from_millis(self.config.server.lifecycle_timeout_ms)
    }

    async fn start_all(&self) {
        for m in &self.extensions {
            let outcome = match m.slot.state() {
                ExtensionState::Disabled => {
                    tracing::info!(extension = %m.metadata.name, "disabled; not started");
                    let _ = state::set_state(&self.pool, &m.metadata.name, "disabled", None).await;
                    continue;
                }
                // Refused before start (an invalid config in annex.toml).
                ExtensionState::Failed(reason) => Err(reason),
                _ => self.start_one(m).await,
            };
            if let Err(reason) = outcome {
                tracing::error!(extension = %m.metadata.name, %reason, "extension failed to start; the others go on");
                m.slot.set(ExtensionState::Failed(reason.clone()));
                let _ = state::set_state(&self.pool, &m.metadata.name, "failed", Some(&reason)).await;
                let entry = AuditEntry::new("host", "extension.start_failed", &m.metadata.name)
                    .details(serde_json::json!({ "reason": reason }));
                self.audit(entry).await;
            }
        }
    }

    /// Starts one extension: permissions, dependencies, its database, `init`, `start`.
    pub(crate) async fn start_one(&self, m: &Managed) -> Result<(), String> {
        if let Err((permission, message)) =
            permissions::check_needs(&m.metadata.name, &m.needs, m.cx.grants())
        {
            let entry = AuditEntry::new("host", "permission.denied", &m.metadata.name)
                .details(serde_json::json!({ "permission": permission, "at": "enable" }));
            self.audit(entry).await;
            return Err(message);
        }
        for dep in &m.metadata.dependencies {
            let dep_state = self.find(&dep.name).map(|d| d.slot.state());
            if dep_state != Some(ExtensionState::Running) {
                let shown = dep_state.map(|s| s.to_string()).unwrap_or_else(|| "missing".into());
                return Err(format!("dependency `{}` is not running ({shown})", dep.name));
            }
        }
        m.slot.set(ExtensionState::Starting);
        // Its schema, role and pool, and its migrations applied as its role, before init().
        let size = self.config.extension(&m.metadata.name).quotas.db_connections.unwrap_or(DEFAULT_POOL_SIZE);
        let migrations = m.extension.migrations();
        let (pool, applied) =
            extension_db::open(&self.isolator, &m.metadata.name, &migrations, size, &mut |_| {})
                .await
                .map_err(|e| e.to_string())?;
        if !applied.is_empty() {
            let versions: Vec<i64> = applied.iter().map(|s| s.version).collect();
            let data = serde_json::json!({ "extension": m.metadata.name, "versions": versions });
            self.audit(AuditEntry::new("host", "extension.migrated", &m.metadata.name).details(data.clone()))
                .await;
            self.publish("extension.migrated", data);
        }
        if let Err(spare) = m.cx.set_db(pool) {
            spare.close().await;
        }
        let timeout = self.lifecycle_timeout();
        lifecycle(m, "init", timeout, m.extension.init(&m.cx)).await?;
        lifecycle(m, "start", timeout, m.extension.start(&m.cx)).await?;
        m.slot.set(ExtensionState::Running);
        let _ = state::set_state(&self.pool, &m.metadata.name, "running", None).await;
        tracing::info!(extension = %m.metadata.name, version = %m.metadata.version, "extension started");
        Ok(())
    }

    async fn stop_all(&self) {
        for m in self.extensions.iter().rev() {
            if m.slot.state() != ExtensionState::Running {
                continue;
            }
            // Close the gate first so no new request reaches a stopping extension.
            m.slot.set(ExtensionState::Stopped);
            let result = lifecycle(m, "stop", self.lifecycle_timeout(), m.extension.stop(&m.cx)).await;
            m.cx.abort_tasks();
            if let Err(reason) = &result {
                tracing::error!(extension = %m.metadata.name, %reason, "extension did not stop cleanly");
            }
            let _ = state::set_state(&self.pool, &m.metadata.name, "stopped", result.err().as_deref()).await;
            tracing::info!(extension = %m.metadata.name, "extension stopped");
        }
    }
}

/// Prunes idle per-client rate-limit keys every [`PRUNE_INTERVAL`](crate::rate_limit::PRUNE_INTERVAL)
/// until the host is dropped.
fn prune_rate_limits(host: std::sync::Weak<HostInner>) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(crate::rate_limit::PRUNE_INTERVAL);
        tick.tick().await;
        loop {
            tick.tick().await;
            let Some(host) = host.upgrade() else { return };
            for m in &host.extensions {
                m.cx.limits().prune();
            }
        }
    });
}

/// Runs one lifecycle call with a time limit, inside the extension's span, catching panics.
pub(crate) async fn lifecycle(
    m: &Managed,
    step: &'static str,
    timeout: Duration,
    call: impl Future<Output = ExtensionResult>,
) -> Result<(), String> {
    let call = panic::catch(call).instrument(m.cx.span().clone());
    match tokio::time::timeout(timeout, call).await {
        Err(_) => Err(format!("{step}() timed out after {} ms", timeout.as_millis())),
        Ok(Err(panic)) => {
            Counters::bump(&m.cx.counters().lifecycle_panics);
            Err(format!("{step}() panicked: {panic}"))
        }
        Ok(Ok(Err(e))) => Err(format!("{step}() failed: {e}")),
        Ok(Ok(Ok(()))) => Ok(()),
    }
}

impl Host {
    /// The HTTP application: host endpoints and every extension's routes.
    pub fn router(&self) -> Result<Router, HostError> {
        crate::router::build(&self.inner)
    }

    /// Serves on `listener` until `shutdown` completes, then lets in-flight requests finish for
    /// at most `server.shutdown_timeout_ms`. Call [`Host::shutdown`] afterwards.
    pub async fn serve(
        &self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), HostError> {
        let app = self.router()?;
        let inner = self.inner.clone();
        let (signalled_tx, signalled_rx) = tokio::sync::oneshot::channel::<()>();
        let signal = async move {
            shutdown.await;
            inner.ready.store(false, Ordering::Release);
            tracing::info!("shutting down: no new connections, finishing in-flight requests");
            let _ = signalled_tx.send(());
        };
        let server = axum::serve(listener, app.into_make_service_with_connect_info::<std::net::SocketAddr>())
            .with_graceful_shutdown(signal)
            .into_future();
        let grace = Duration::from_millis(self.inner.config.server.shutdown_timeout_ms);
        let deadline = async move {
            if signalled_rx.await.is_ok() {
                tokio::time::sleep(grace).await;
            } else {
                std::future::pending::<()>().await;
            }
        };
        tokio::select! {
            result = server => result.map_err(|e| HostError::Internal(format!("server failed: {e}"))),
            () = deadline => {
                tracing::warn!(grace_ms = grace.as_millis() as u64, "in-flight requests did not finish in time; stopping anyway");
                Ok(())
            }
        }
    }

    /// Stops every running extension in reverse start order, closes the database and stops the
    /// private PostgreSQL if this was the last annex process using it. Safe to call twice.
    pub async fn shutdown(&self) {
        self.inner.ready.store(false, Ordering::Release);
        self.inner.ops.stop();
        self.inner.stop_all().await;
        for m in &self.inner.extensions {
            if let Ok(pool) = m.cx.db() {
                pool.close().await;
            }
        }
        self.inner.services.bus.close();
        let database = self.inner.database.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(db) = database {
            db.close().await;
        }
    }

    /// Publishes a host event (source `host`) to every matching subscriber.
    pub fn publish(&self, name: &str, data: serde_json::Value) {
        self.inner.publish(name, data);
    }

    /// Events dropped because a subscriber's queue was full: (extension, pattern, count).
    pub fn events_dropped(&self) -> Vec<(String, String, u64)> {
        self.inner.services.bus.dropped()
    }

    /// Whether startup finished and shutdown has not begun.
    pub fn is_ready(&self) -> bool {
        self.inner.ready.load(Ordering::Acquire)
    }

    /// Every extension, in start order.
    pub fn extensions(&self) -> Vec<ExtensionStatus> {
        self.inner
            .extensions
            .iter()
            .map(|m| ExtensionStatus {
                name: m.metadata.name.clone(),
                version: m.metadata.version.clone(),
                description: m.metadata.description.clone(),
                state: m.slot.state(),
            })
            .collect()
    }

    /// One extension's state.
    pub fn state(&self, name: &str) -> Option<ExtensionState> {
        self.inner.find(name).map(|m| m.slot.state())
    }

    /// One extension's counters (panics caught, tasks started).
    pub fn stats(&self, name: &str) -> Option<ExtensionStats> {
        self.inner.find(name).map(|m| m.cx.stats())
    }

    /// Applies the rate limits and quotas of `config` to the running extensions, without a
    /// restart (call it on SIGHUP). Everything is checked first: on an error nothing changes.
    /// An unchanged rate limit keeps its buckets; a changed one starts with full buckets.
    /// Permissions and other settings are not reloaded.
    pub fn reload_limits(&self, config: &Config) -> Result<(), LimitsError> {
        let prepared = self
            .inner
            .extensions
            .iter()
            .map(|m| Limits::prepare(&m.metadata.name, &config.extension(&m.metadata.name)))
            .collect::<Result<Vec<_>, _>>()?;
        for (m, prepared) in self.inner.extensions.iter().zip(prepared) {
            m.cx.limits().apply(prepared);
        }
        tracing::info!("rate limits and quotas reloaded");
        Ok(())
    }

    /// What `name` uses right now: in-flight requests, tasks, storage bytes, rate-limit keys.
    pub fn usage(&self, name: &str) -> Option<ResourceUsage> {
        self.inner.find(name).map(|m| m.cx.usage())
    }

    /// Every registered hook and middleware, in run order per point, with its figures.
    pub fn hooks(&self) -> Vec<HookInfo> {
        let mut all = self.inner.hooks.info();
        all.extend(self.inner.middleware.info());
        all
    }

    /// The configuration the host runs with.
    pub fn config(&self) -> &Config {
        &self.inner.config
    }
}
