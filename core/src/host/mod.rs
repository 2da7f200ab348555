//! The [`Host`]: builds everything from a config and a set of extensions (`start.rs`), serves
//! it over HTTP, and shuts it down. It is the composition root: the only module that sees every
//! layer.

pub(crate) mod error;
#[cfg(all(test, feature = "bench"))]
mod overhead_tests;
#[cfg(test)]
mod request_path_tests;
#[cfg(test)]
mod site_path_tests;
mod start;

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use tokio::net::TcpListener;

use crate::config::Config;
use crate::config::admin_token::AdminToken;
use crate::db::database::Database;
use crate::extension::hooks::HookInfo;
use crate::extension::hooks::middleware::MiddlewareSet;
use crate::http::hook_chain::Registry;
use crate::http::router::{self, App};
use crate::runtime::background::Background;
use crate::runtime::control_error::ControlError;
use crate::runtime::controller::Controller;
use crate::runtime::lifecycle::Runtime;
use crate::runtime::views::SwitchReport;

pub use crate::config::admin_token::AdminTokenError;
pub use crate::config::secret::SecretError;
pub use crate::db::error::DbError;
pub use crate::db::isolation::IsolationError;
pub use crate::db::migrate::MigrationError;
pub use crate::db::private_postgres::PostgresError;
pub use crate::extension::gate::ExtensionState;
pub use crate::extension::registration::{RegistrationError, compiled_in};
pub use crate::limits::error::LimitsError;
pub use crate::limits::quota::ResourceUsage;
pub use crate::observe::stats::ExtensionStats;
pub use crate::plan::{PlanError, PlanErrors, validate};
pub use error::HostError;
pub use start::HostBuilder;

/// A started annex host: every enabled extension running, ready to serve. Cheap to clone.
///
/// ```no_run
/// # async fn run() -> Result<(), annex_core::host::HostError> {
/// use annex_core::config::Config;
/// use annex_core::host::{Host, compiled_in};
/// let host = Host::builder(Config::default()).extensions(compiled_in(&[])?).start().await?;
/// let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await.unwrap();
/// host.serve(listener, async { let _ = tokio::signal::ctrl_c().await; }).await?;
/// host.shutdown().await;
/// # Ok(()) }
/// ```
#[derive(Clone, Debug)]
pub struct Host {
    inner: Arc<Parts>,
}

/// What a host holds; the runtime owns the extensions, the rest serves them.
#[derive(Debug)]
struct Parts {
    runtime: Arc<Runtime>,
    hooks: Registry,
    middleware: MiddlewareSet,
    admin_token: AdminToken,
    ready: Arc<AtomicBool>,
    background: Background,
    /// Taken at shutdown.
    database: Mutex<Option<Database>>,
}

impl Host {
    /// Starts building a host.
    pub fn builder(config: Config) -> HostBuilder {
        HostBuilder::new(config)
    }

    fn controller(&self) -> Controller {
        Controller::with_runtime(&self.inner.runtime)
    }

    fn app(&self) -> App<'_> {
        let p = &*self.inner;
        App {
            runtime: &p.runtime,
            hooks: &p.hooks,
            middleware: &p.middleware,
            admin_token: &p.admin_token,
            ready: &p.ready,
        }
    }

    /// The HTTP application: host endpoints, the admin API and every extension's routes.
    pub fn router(&self) -> Result<Router, HostError> {
        router::build(&self.app()).map_err(HostError::Internal)
    }

    /// Serves on `listener` until `shutdown` completes, then lets in-flight requests finish for
    /// at most `server.shutdown_timeout_ms`. Call [`Host::shutdown`] afterwards.
    pub async fn serve(
        &self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), HostError> {
        let app = self.router()?;
        let ready = self.inner.ready.clone();
        let (signalled_tx, signalled_rx) = tokio::sync::oneshot::channel::<()>();
        let signal = async move {
            shutdown.await;
            ready.store(false, Ordering::Release);
            tracing::info!("shutting down: no new connections, finishing in-flight requests");
            let _ = signalled_tx.send(());
        };
        let server = axum::serve(listener, app.into_make_service_with_connect_info::<std::net::SocketAddr>())
            .with_graceful_shutdown(signal)
            .into_future();
        let grace = Duration::from_millis(self.inner.runtime.config().server.shutdown_timeout_ms);
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
        self.inner.background.stop();
        self.inner.runtime.stop_all().await;
        self.inner.runtime.close_pools().await;
        let database = self.inner.database.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(db) = database {
            db.close().await;
        }
    }

    /// Publishes a host event (source `host`) to every matching subscriber.
    pub fn publish(&self, name: &str, data: serde_json::Value) {
        self.inner.runtime.publish(name, data);
    }

    /// Events dropped because a subscriber's queue was full: (extension, pattern, count).
    pub fn events_dropped(&self) -> Vec<(String, String, u64)> {
        self.inner.runtime.bus().dropped()
    }

    /// Whether startup finished and shutdown has not begun.
    pub fn is_ready(&self) -> bool {
        self.inner.ready.load(Ordering::Acquire)
    }

    /// Every extension's name and state, in start order.
    pub fn extensions(&self) -> Vec<(String, ExtensionState)> {
        self.inner.runtime.extensions().iter().map(|m| (m.name().to_owned(), m.state())).collect()
    }

    /// One extension's state.
    pub fn state(&self, name: &str) -> Option<ExtensionState> {
        self.inner.runtime.find(name).map(|m| m.state())
    }

    /// One extension's counters (panics caught, tasks started, …).
    pub fn stats(&self, name: &str) -> Option<ExtensionStats> {
        self.inner.runtime.find(name).map(|m| m.cx().stats())
    }

    /// What `name` uses right now: in-flight requests, tasks, storage bytes, rate-limit keys.
    pub fn usage(&self, name: &str) -> Option<ResourceUsage> {
        self.inner.runtime.find(name).map(|m| m.cx().usage())
    }

    /// Every registered hook and middleware, in run order per point, with its figures.
    pub fn hooks(&self) -> Vec<HookInfo> {
        let mut all = self.inner.hooks.info();
        all.extend(self.inner.middleware.info());
        all
    }

    /// The configuration the host runs with.
    pub fn config(&self) -> &Config {
        self.inner.runtime.config()
    }

    /// Applies the rate limits and quotas of `config` to the running extensions, without a
    /// restart (call it on SIGHUP). Everything is checked first: on an error nothing changes.
    /// An unchanged rate limit keeps its buckets; a changed one starts with full buckets.
    /// Permissions and other settings are not reloaded.
    pub fn reload_limits(&self, config: &Config) -> Result<(), LimitsError> {
        self.inner.runtime.reload_limits(config)
    }

    /// Enables `name` and starts it, as the admin API does (audited as actor `host`).
    pub async fn enable(&self, name: &str) -> Result<SwitchReport, ControlError> {
        self.controller().enable(name, "host").await
    }

    /// Disables `name`: its routes answer 503 `extension_disabled`, its tasks are aborted and
    /// `stop()` is called. Enabled extensions that depend on it need `cascade` (else
    /// [`ControlError::HasDependents`]).
    pub async fn disable(&self, name: &str, cascade: bool) -> Result<SwitchReport, ControlError> {
        self.controller().disable(name, cascade, "host", None).await
    }

    /// The config `name` runs with.
    pub fn extension_config(&self, name: &str) -> Result<serde_json::Value, ControlError> {
        let m = self.inner.runtime.find(name).ok_or_else(|| ControlError::NotFound(name.to_owned()))?;
        Ok((*m.cx().config()).clone())
    }

    /// Re-reads one site's row and active extensions into the site gates, so requests to
    /// `/sites/<slug>/ext/…` on this replica follow a change at once. Call it after an
    /// activation, deactivation, config change or suspension of that site commits; other
    /// replicas follow the `NOTIFY annex_sites, '<site id>'` sent in the same transaction.
    ///
    /// ```no_run
    /// # async fn activated(host: &annex_core::host::Host, site: uuid::Uuid) -> Result<(), annex_core::host::DbError> {
    /// // … the activation's transaction (config, audit, pg_notify('annex_sites', site::text)) committed:
    /// host.reload_site(site).await?;
    /// # Ok(()) }
    /// ```
    pub async fn reload_site(&self, site_id: uuid::Uuid) -> Result<(), DbError> {
        let runtime = &self.inner.runtime;
        runtime.site_gates().reload_site(runtime.pool(), site_id).await
    }

    /// Validates `config` against the extension's JSON Schema, applies it without a restart and
    /// stores it with a history entry. If `apply_config` fails the old config stays.
    pub async fn set_config(&self, name: &str, config: serde_json::Value) -> Result<(), ControlError> {
        self.controller().set_config(name, config, "host").await.map(|_| ())
    }
}

/// The application `annex serve` builds, over a runtime that never touched a database (a lazy
/// pool that never connects), every gate open: for the request-path tests and benches.
#[cfg(any(test, feature = "bench"))]
pub(crate) fn offline_router(
    extensions: Vec<Arc<dyn crate::extension::Extension>>,
    config: Config,
) -> (Router, Arc<Runtime>) {
    use crate::plan::Plan;
    use crate::plan::catalog::Catalog;

    let plan = Plan::new(extensions).expect("a valid set of extensions");
    let catalog = Arc::new(Catalog::of_plan(&plan));
    // A lazy pool never connects unless used; the request path must not use it.
    let pool = sqlx::postgres::PgPoolOptions::new()
        .connect_lazy("postgres://nobody@127.0.0.1:1/none")
        .expect("a well-formed URL");
    let limits = start::prepare_limits(&config, &plan).expect("valid limits");
    let initial = limits.into_iter().map(|l| (start::Initial::enabled(), l)).collect();
    let remote = crate::pipelines::remote::RemoteStages::none();
    let assembled =
        start::assemble(Arc::new(config), pool, None, plan, catalog, initial, remote).expect("assembles");
    for m in assembled.runtime.extensions() {
        m.slot().set(ExtensionState::Running);
    }
    let token = AdminToken::fixed("test-token");
    let ready = Arc::new(AtomicBool::new(true));
    let router = router::build(&App {
        runtime: &assembled.runtime,
        hooks: &assembled.hooks,
        middleware: &assembled.middleware,
        admin_token: &token,
        ready: &ready,
    })
    .expect("the router builds");
    (router, assembled.runtime)
}
