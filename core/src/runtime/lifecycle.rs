//! The [`Runtime`]: the extensions under management and their lifecycle. It starts each
//! (permissions, dependencies, its database, `init`, `start`), stops each, applies configs, and
//! records every state change. What to start or stop is decided by the controller
//! (`controller.rs`); this file only knows how.

use crate::limits::meter::{Throttle, metered};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use sqlx::PgPool;
use tracing::Instrument;

use crate::config::Config;
use crate::db::isolation::{DEFAULT_POOL_SIZE, Isolator};
use crate::db::state;
use crate::entities::migrations as entity_migrations;
use crate::extension::context::Context;
use crate::extension::events::{Event, EventBus};
use crate::extension::gate::{ExtensionState, Slot};
use crate::extension::metadata::Metadata;
use crate::extension::panic;
use crate::extension::permissions::{self, Need};
use crate::extension::registrar::RouteSpec;
use crate::extension::{Extension, ExtensionResult};
use crate::limits::error::LimitsError;
use crate::limits::quota::Limits;
use crate::observe::audit::{self, AuditEntry};
use crate::observe::metrics::{ExtensionMetrics, Metrics, Resource};
use crate::observe::stats::Counters;
use crate::pipelines::snapshot::Pipelines;
use crate::plan::catalog::Catalog;
use crate::runtime::health_book::HealthBook;
use crate::sites::gates::SiteGates;

/// One extension under management: what it declared, its context and its gate.
pub(crate) struct Managed {
    metadata: Metadata,
    extension: Arc<dyn Extension>,
    cx: Context,
    slot: Arc<Slot>,
    routes: Vec<RouteSpec>,
    /// Permissions it needs (declared and implied by what it registered).
    needs: Vec<Need>,
    metrics: Arc<ExtensionMetrics>,
}

impl std::fmt::Debug for Managed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Managed")
            .field("name", &self.metadata.name)
            .field("state", &self.slot.state())
            .finish()
    }
}

impl Managed {
    pub(crate) fn new(
        metadata: Metadata,
        extension: Arc<dyn Extension>,
        cx: Context,
        slot: Arc<Slot>,
        routes: Vec<RouteSpec>,
        needs: Vec<Need>,
        metrics: Arc<ExtensionMetrics>,
    ) -> Self {
        Self { metadata, extension, cx, slot, routes, needs, metrics }
    }

    pub(crate) fn name(&self) -> &str {
        &self.metadata.name
    }

    pub(crate) fn extension(&self) -> &dyn Extension {
        &*self.extension
    }

    pub(crate) fn cx(&self) -> &Context {
        &self.cx
    }

    pub(crate) fn slot(&self) -> &Arc<Slot> {
        &self.slot
    }

    pub(crate) fn state(&self) -> ExtensionState {
        self.slot.state()
    }

    /// Served only under `/sites/<slug>/ext/<name>/…`.
    pub(crate) fn site_scoped(&self) -> bool {
        self.metadata.site_scoped
    }

    pub(crate) fn routes(&self) -> &[RouteSpec] {
        &self.routes
    }

    /// Its pre-resolved metric handles.
    pub(crate) fn metrics(&self) -> &Arc<ExtensionMetrics> {
        &self.metrics
    }
}

/// The extensions of one host process and what they share.
#[derive(Debug)]
pub(crate) struct Runtime {
    config: Arc<Config>,
    /// The host's own pool: state rows, audit, health history. Never handed to extensions.
    pool: PgPool,
    /// Absent in a runtime built without a database (request-path tests): nothing starts.
    isolator: Option<Isolator>,
    extensions: Vec<Managed>,
    bus: Arc<EventBus>,
    metrics: Metrics,
    catalog: Arc<Catalog>,
    /// `<hostname>:<pid>`: names this process in health history and metric snapshots.
    replica: String,
    /// Serialises enable, disable, config changes and replica sync, so two never interleave.
    control: tokio::sync::Mutex<()>,
    health: HealthBook,
    /// Which extensions each site runs, with what config: the per-(site, extension) gate.
    site_gates: Arc<SiteGates>,
    /// The pipeline registry's snapshot and the engine that runs it.
    pipelines: Arc<Pipelines>,
}

impl Runtime {
    pub(crate) fn new(
        config: Arc<Config>,
        pool: PgPool,
        isolator: Option<Isolator>,
        extensions: Vec<Managed>,
        metrics: Metrics,
        bus: Arc<EventBus>,
        pipelines: Arc<Pipelines>,
    ) -> Self {
        // The catalog the pipelines resolved their compiled-in stages against.
        let catalog = pipelines.catalog().clone();
        let site_gates = Arc::new(SiteGates::new(extensions.iter().map(Managed::name)));
        Self {
            site_gates,
            config,
            pool,
            isolator,
            extensions,
            bus,
            metrics,
            catalog,
            replica: replica_name(),
            control: tokio::sync::Mutex::new(()),
            health: HealthBook::default(),
            pipelines,
        }
    }

    /// The pipelines this replica serves.
    pub(crate) fn pipelines(&self) -> &Arc<Pipelines> {
        &self.pipelines
    }

    pub(crate) fn config(&self) -> &Arc<Config> {
        &self.config
    }

    pub(crate) fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// The per-(site, extension) gates the request path checks for `/sites/<slug>/ext/…`.
    pub(crate) fn site_gates(&self) -> &Arc<SiteGates> {
        &self.site_gates
    }

    /// Every extension, in start order (dependencies first).
    pub(crate) fn extensions(&self) -> &[Managed] {
        &self.extensions
    }

    pub(crate) fn find(&self, name: &str) -> Option<&Managed> {
        self.extensions.iter().find(|m| m.name() == name)
    }

    pub(crate) fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    pub(crate) fn catalog(&self) -> &Arc<Catalog> {
        &self.catalog
    }

    pub(crate) fn replica(&self) -> &str {
        &self.replica
    }

    pub(crate) fn bus(&self) -> &EventBus {
        &self.bus
    }

    pub(crate) fn health_book(&self) -> &HealthBook {
        &self.health
    }

    /// Taken by every decision (enable, disable, config, reconcile) for its whole duration.
    pub(crate) async fn serialise(&self) -> tokio::sync::MutexGuard<'_, ()> {
        self.control.lock().await
    }

    /// Publishes a host event (`source` = `host`).
    pub(crate) fn publish(&self, name: &str, data: serde_json::Value) {
        self.bus.publish(Event::new(name.to_owned(), "host", data));
    }

    /// Appends an audit entry, logging if the write fails.
    pub(crate) async fn audit(&self, entry: AuditEntry) {
        audit::record_or_log(&self.pool, entry).await;
    }

    fn lifecycle_timeout(&self) -> Duration {
        Duration::from_millis(self.config.server.lifecycle_timeout_ms)
    }

    /// Stores `m`'s lifecycle state; a failed write is logged (the next state change or resync
    /// writes it again), never silently dropped.
    async fn record_state(&self, m: &Managed, error: Option<&str>) {
        let stored = m.state();
        if let Err(e) = state::set_state(&self.pool, m.name(), stored.as_str(), error).await {
            tracing::warn!(extension = %m.name(), state = stored.as_str(), error = %e, "could not store the extension's state");
        }
    }

    /// Starts every extension whose gate start-up left closed-for-starting, in start order, in
    /// waves: the extensions whose dependencies have all settled open their databases (role,
    /// schema, pool, migrations) concurrently, then run `init` and `start` one at a time in start
    /// order. An extension's database is opened only once its dependencies run, as one at a time
    /// would; 50 independent extensions no longer pay 50 logins and ledger checks in a row.
    pub(crate) async fn start_all(&self) {
        let mut pending: Vec<&Managed> = self.extensions.iter().collect();
        while !pending.is_empty() {
            let waits = |m: &Managed| {
                m.metadata.dependencies.iter().any(|d| pending.iter().any(|p| p.name() == d.name))
            };
            let (wave, later): (Vec<&Managed>, Vec<&Managed>) = pending.iter().partition(|m| !waits(m));
            // Start order is a topological order, so its first pending extension never waits.
            let (wave, later) =
                if wave.is_empty() { (pending[..1].to_vec(), pending[1..].to_vec()) } else { (wave, later) };
            let opened = futures::future::join_all(wave.iter().map(|m| async move {
                match m.state() {
                    ExtensionState::Disabled => None,
                    // Refused before start (an invalid config in annex.toml).
                    ExtensionState::Failed(reason) => Some(Err(reason)),
                    _ => Some(self.open_one(m).await),
                }
            }))
            .await;
            for (m, opened) in wave.into_iter().zip(opened) {
                let outcome = match opened {
                    None => {
                        tracing::info!(extension = %m.name(), "disabled; not started");
                        self.record_state(m, None).await;
                        continue;
                    }
                    Some(Ok(())) => self.run_one(m).await,
                    Some(Err(reason)) => Err(reason),
                };
                if let Err(reason) = outcome {
                    tracing::error!(extension = %m.name(), %reason, "extension failed to start; the others go on");
                    self.fail(m, &reason).await;
                    let entry = AuditEntry::new("host", "extension.start_failed", m.name())
                        .details(serde_json::json!({ "reason": reason }));
                    self.audit(entry).await;
                }
            }
            pending = later;
        }
    }

    /// Marks `m` failed and stores why.
    pub(crate) async fn fail(&self, m: &Managed, reason: &str) {
        m.slot.set(ExtensionState::Failed(reason.to_owned()));
        self.record_state(m, Some(reason)).await;
    }

    /// Starts one extension: permissions, dependencies running here, its database (schema,
    /// role, pool, migrations), `init`, `start`. Its gate opens only when all succeeded.
    pub(crate) async fn start_one(&self, m: &Managed) -> Result<(), String> {
        self.open_one(m).await?;
        self.run_one(m).await
    }

    /// The first half of [`Runtime::start_one`]: permissions, dependencies, the database. Safe to
    /// run for several extensions at once when none depends on another.
    async fn open_one(&self, m: &Managed) -> Result<(), String> {
        if let Err((permission, message)) = permissions::check_needs(m.name(), &m.needs, m.cx.grants()) {
            let entry = AuditEntry::new("host", "permission.denied", m.name())
                .details(serde_json::json!({ "permission": permission, "at": "enable" }));
            self.audit(entry).await;
            return Err(message);
        }
        for dep in &m.metadata.dependencies {
            let dep_state = self.find(&dep.name).map(Managed::state);
            if dep_state != Some(ExtensionState::Running) {
                let shown = dep_state.map(|s| s.to_string()).unwrap_or_else(|| "missing".into());
                return Err(format!("dependency `{}` is not running ({shown})", dep.name));
            }
        }
        m.slot.set(ExtensionState::Starting);
        let size = self.config.extension(m.name()).quotas.db_connections.unwrap_or(DEFAULT_POOL_SIZE);
        let isolator = self.isolator.as_ref().ok_or("this runtime was built without a database")?;
        let declared = self.catalog.get(m.name()).ok_or("the extension is not in this runtime's catalog")?;
        let spec = declared.open_spec(self.pool(), size, false);
        let (pool, applied) = entity_migrations::open(isolator, m.name(), &spec, &mut |_| {})
            .await
            .map_err(|e| e.to_string())?;
        if !applied.is_empty() {
            let versions: Vec<i64> = applied.iter().map(|s| s.version).collect();
            let data = serde_json::json!({ "extension": m.name(), "versions": versions });
            // Each step stored its `extension.migrated` outbox event in its own transaction
            // (annex_api.record_migration, migration 0012).
            self.audit(AuditEntry::new("host", "extension.migrated", m.name()).details(data)).await;
        }
        if let Err(spare) = m.cx.set_db(pool) {
            spare.close().await;
        }
        Ok(())
    }

    /// The second half of [`Runtime::start_one`]: `init` and `start`, one extension at a time.
    async fn run_one(&self, m: &Managed) -> Result<(), String> {
        let timeout = self.lifecycle_timeout();
        lifecycle(m, "init", timeout, m.extension.init(&m.cx)).await?;
        lifecycle(m, "start", timeout, m.extension.start(&m.cx)).await?;
        m.slot.set(ExtensionState::Running);
        self.record_state(m, None).await;
        tracing::info!(extension = %m.name(), version = %m.metadata.version, "extension started");
        Ok(())
    }

    /// Closes the gate (no new request reaches it), calls `stop()` if it was running, aborts its
    /// tasks and leaves it in `to` (`Disabled`, or `Stopped` at shutdown). Idempotent.
    pub(crate) async fn stop_one(&self, m: &Managed, to: ExtensionState) {
        let was_running = m.state() == ExtensionState::Running;
        m.slot.set(to);
        let mut error = None;
        if was_running
            && let Err(reason) = lifecycle(m, "stop", self.lifecycle_timeout(), m.extension.stop(&m.cx)).await
        {
            tracing::error!(extension = %m.name(), %reason, "extension did not stop cleanly");
            error = Some(reason);
        }
        m.cx.abort_tasks();
        m.metrics.set_health(0.0);
        if m.state() == ExtensionState::Stopped {
            self.record_state(m, error.as_deref()).await;
        }
        tracing::info!(extension = %m.name(), state = m.state().as_str(), "extension stopped");
    }

    /// Stops every running extension in reverse start order (shutdown).
    pub(crate) async fn stop_all(&self) {
        for m in self.extensions.iter().rev() {
            if m.state() == ExtensionState::Running {
                self.stop_one(m, ExtensionState::Stopped).await;
            }
        }
    }

    /// Closes every extension's pool.
    pub(crate) async fn close_pools(&self) {
        for m in &self.extensions {
            if let Ok(pool) = m.cx.db() {
                pool.close().await;
            }
        }
        self.bus.close();
    }

    /// Calls `apply_config` when the extension runs (panic-caught, time-limited), then swaps the
    /// config its context hands out. On failure nothing changes.
    pub(crate) async fn apply_config(&self, m: &Managed, config: &serde_json::Value) -> Result<(), String> {
        if m.state() == ExtensionState::Running {
            let call = m.extension.apply_config(&m.cx, config);
            lifecycle(m, "apply_config", self.lifecycle_timeout(), call).await?;
        }
        m.cx.set_config(config.clone());
        Ok(())
    }

    /// Applies the rate limits and quotas of `config`; everything is checked first, so on an
    /// error nothing changes. An unchanged rate limit keeps its buckets.
    pub(crate) fn reload_limits(&self, config: &Config) -> Result<(), LimitsError> {
        let prepared = self
            .extensions
            .iter()
            .map(|m| Limits::prepare(m.name(), &config.extension(m.name())))
            .collect::<Result<Vec<_>, _>>()?;
        for (m, prepared) in self.extensions.iter().zip(prepared) {
            m.cx.limits().apply(prepared);
        }
        tracing::info!("rate limits and quotas reloaded");
        Ok(())
    }

    /// Sets the gauges that are read, not counted (`extension_resource_usage`,
    /// `extensions_active_total`). Called before metrics are rendered, never on the request path.
    pub(crate) fn refresh_metrics(&self) {
        let mut active = 0;
        for m in &self.extensions {
            if m.state() == ExtensionState::Running {
                active += 1;
            }
            let em = &m.metrics;
            em.set_resource(Resource::InFlightRequests, em.in_flight() as f64);
            em.set_resource(Resource::BackgroundTasks, m.cx.running_tasks() as f64);
            let busy = m.cx.counters().busy_nanos.load(std::sync::atomic::Ordering::Relaxed);
            em.set_resource(Resource::BusySeconds, busy as f64 / 1e9);
            em.set_resource(Resource::CpuSeconds, busy as f64 / 1e9);
            em.set_resource(Resource::MemoryBytes, m.cx.usage().memory_bytes as f64);
            let in_use = m.cx.db().map_or(0, |pool| pool.size().saturating_sub(pool.num_idle() as u32));
            em.set_resource(Resource::DbConnections, f64::from(in_use));
            em.set_resource(Resource::StorageBytes, m.cx.usage().storage_bytes as f64);
            let gauges = m.cx.counters().gauges.lock().map(|g| g.clone()).unwrap_or_default();
            for (name, value) in gauges {
                self.metrics.set_extension_gauge(m.name(), &name, value);
            }
        }
        self.metrics.set_active(active);
    }
}

/// Runs one lifecycle call with a time limit, inside the extension's span, catching panics.
pub(crate) async fn lifecycle(
    m: &Managed,
    step: &'static str,
    timeout: Duration,
    call: impl Future<Output = ExtensionResult>,
) -> Result<(), String> {
    // Charged to the extension (busy time, allocations: what `start` keeps is its memory).
    let busy = &m.cx.counters().busy_nanos;
    let call =
        metered(busy, m.cx.limits(), Throttle::Never, panic::catch(call)).instrument(m.cx.span().clone());
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

fn replica_name() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".into());
    // Tests run several hosts in one process; each needs its own name.
    static HOSTS_IN_PROCESS: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    match HOSTS_IN_PROCESS.fetch_add(1, std::sync::atomic::Ordering::Relaxed) {
        0 => format!("{host}:{}", std::process::id()),
        n => format!("{host}:{}.{n}", std::process::id()),
    }
}
