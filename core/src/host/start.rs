//! Starting a host: validate the set, open the database, record each extension's row (and a
//! config given in annex.toml), assemble the runtime and the request-path chains, start every
//! enabled extension, start the background tasks.

use std::collections::HashMap;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};

use sqlx::PgPool;

use super::{Host, Parts};
use crate::config::Config;
use crate::config::admin_token::AdminToken;
use crate::config::schema::check_extension_config;
use crate::db::database::Database;
use crate::db::error::DbError;
use crate::db::isolation::Isolator;
use crate::db::outbox;
use crate::db::state;
use crate::extension::Extension;
use crate::extension::context::{Context, Services};
use crate::extension::events::{DurableSubscription, EventBus, Subscription};
use crate::extension::gate::{ExtensionState, Slot};
use crate::extension::hooks::middleware::MiddlewareSet;
use crate::extension::permissions::Grants;
use crate::host::error::HostError;
use crate::http::hook_chain::Registry;
use crate::http::request_path::site_route;
use crate::limits::error::LimitsError;
use crate::limits::quota::{Limits, Prepared};
use crate::observe::metrics::Metrics;
use crate::pipelines::registry;
use crate::pipelines::remote::RemoteStages;
use crate::pipelines::snapshot::{CompiledStage, Pipelines};
use crate::plan::catalog::Catalog;
use crate::plan::{Plan, needs_of};
use crate::runtime::background::Background;
use crate::runtime::controller::record_config_change;
use crate::runtime::lifecycle::{Managed, Runtime};

/// Builds a [`Host`] from a config and a set of extensions.
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

/// What the database says each extension starts as.
pub(super) struct Initial {
    enabled: bool,
    config: serde_json::Value,
    /// Why it must not start (its config in annex.toml does not fit its schema).
    problem: Option<String>,
}

impl Initial {
    /// Enabled, with an empty config: for runtimes built without a database.
    #[cfg(any(test, feature = "bench"))]
    pub(super) fn enabled() -> Self {
        Self { enabled: true, config: serde_json::json!({}), problem: None }
    }
}

/// The runtime and the chains built over it, before anything started.
pub(super) struct Assembled {
    pub(super) runtime: Arc<Runtime>,
    pub(super) hooks: Registry,
    pub(super) middleware: MiddlewareSet,
}

impl HostBuilder {
    pub(super) fn new(config: Config) -> Self {
        Self { config, extensions: Vec::new() }
    }

    /// Adds one extension.
    pub fn extension(mut self, extension: impl Extension) -> Self {
        self.extensions.push(Arc::new(extension));
        self
    }

    /// Adds several, such as [`compiled_in`](super::compiled_in)'s result.
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
        let catalog = Arc::new(Catalog::of_plan(&plan));
        let config = Arc::new(self.config);
        // Limits and the admin token are checked before the database is touched.
        let limits = prepare_limits(&config, &plan)?;
        let admin_token = AdminToken::resolve(&config)?;
        let database = Database::open(&config).await?;
        let isolator =
            Isolator::prepare(&database.pool, &database.options, &config).await.map_err(DbError::from)?;
        let initial = initial_states(&database.pool, &config, &plan).await.map_err(DbError::from)?;
        let remote =
            RemoteStages::connect(&config.nats).await.map_err(|e| HostError::Internal(e.to_string()))?;
        registry::seed(&database.pool, &catalog).await.map_err(|e| HostError::Internal(e.to_string()))?;
        let assembled = assemble(
            config,
            database.pool.clone(),
            Some(isolator),
            plan,
            catalog,
            initial.into_iter().zip(limits).collect(),
            remote,
        )?;
        // The gates are full before the first request can arrive; the site sync follows changes.
        assembled.runtime.site_gates().reload_all(&database.pool).await?;
        // The bus gets every outbox row from here on (start-up's own `extension.migrated` too).
        let outbox_from = outbox::last_id(&database.pool).await.map_err(DbError::from)?;
        assembled.runtime.start_all().await;
        // After start: a refused registry is logged and shown, and the host serves the rest.
        assembled.runtime.pipelines().reload(&database.pool).await;
        let background = Background::start(&assembled.runtime, outbox_from);
        let ready = Arc::new(AtomicBool::new(true));
        Ok(Host {
            inner: Arc::new(Parts {
                runtime: assembled.runtime,
                hooks: assembled.hooks,
                middleware: assembled.middleware,
                admin_token,
                ready,
                background,
                database: Mutex::new(Some(database)),
            }),
        })
    }
}

/// Records each extension's row (new ones enabled unless annex.toml says otherwise) and writes
/// a `config` given in annex.toml to the database (validated, with a history entry), so every
/// replica and the CLI see one config; live changes made later last until a restart brings the
/// file's value back.
async fn initial_states(pool: &PgPool, config: &Config, plan: &Plan) -> Result<Vec<Initial>, sqlx::Error> {
    let mut initial = Vec::with_capacity(plan.extensions.len());
    for p in &plan.extensions {
        let name = &p.metadata.name;
        let file = config.extension(name);
        let stored = state::register(pool, name, &p.metadata.version, file.enabled).await?;
        let mut problem = None;
        let settings = match file.config {
            Some(wanted) if wanted != stored.config => {
                match check_extension_config(p.extension.config_schema().as_ref(), &wanted) {
                    Ok(()) => {
                        record_config_change(pool, name, &wanted, "config-file", "config-file").await?;
                        wanted
                    }
                    Err(errors) => {
                        let list: Vec<String> =
                            errors.iter().map(|e| format!("{}: {}", e.pointer, e.message)).collect();
                        problem = Some(format!(
                            "its config in annex.toml ([extensions.{name}] config) does not match its schema: {}",
                            list.join("; ")
                        ));
                        stored.config
                    }
                }
            }
            Some(wanted) => wanted,
            None => {
                if let Some(e) = &stored.config_error {
                    problem = Some(format!(
                        "its stored config cannot be read: {e}; replace it with `annex extensions config set {name} FILE` or [extensions.{name}] config in annex.toml"
                    ));
                }
                stored.config
            }
        };
        initial.push(Initial { enabled: stored.enabled, config: settings, problem });
    }
    Ok(initial)
}

/// Every extension's rate limit and quotas from `config`, validated, in plan order.
pub(super) fn prepare_limits(config: &Config, plan: &Plan) -> Result<Vec<Prepared>, LimitsError> {
    plan.extensions
        .iter()
        .map(|p| Limits::prepare(&p.metadata.name, &config.extension(&p.metadata.name)))
        .collect()
}

/// Builds every extension's context, gate and subscriptions, the runtime that owns them, and
/// the hook and middleware chains. Touches no database: `pool` may be a lazy one.
pub(super) fn assemble(
    config: Arc<Config>,
    pool: PgPool,
    isolator: Option<Isolator>,
    plan: Plan,
    catalog: Arc<Catalog>,
    initial: Vec<(Initial, Prepared)>,
    remote: RemoteStages,
) -> Result<Assembled, HostError> {
    let mut compiled = HashMap::new();
    let bus = Arc::new(EventBus::default());
    let services = Arc::new(Services { bus: bus.clone(), pool: Some(pool.clone()) });
    let (mut hook_specs, mut middleware_specs) = (Vec::new(), Vec::new());
    let mut extensions = Vec::with_capacity(plan.extensions.len());
    let mut metrics = Metrics::empty();
    for (p, (initial, prepared)) in plan.extensions.into_iter().zip(initial) {
        let name = p.metadata.name.clone();
        // Each route twice: under /ext/<name> and under every site, by its template.
        let routes: Vec<_> = p
            .routes
            .iter()
            .flat_map(|r| {
                [
                    (r.method.clone(), format!("/ext/{name}{}", r.path)),
                    (r.method.clone(), site_route(&name, &r.path)),
                ]
            })
            .collect();
        let handles = metrics.register(&name, &routes);
        let ext_config = config.extension(&name);
        let needs = needs_of(&p);
        let limits = Arc::new(Limits::unlimited());
        limits.apply(prepared);
        let grants = Arc::new(Grants::new(&ext_config.permissions));
        let storage = config.data_dir.join("ext").join(&name);
        let cx = Context::new(&name, initial.config, storage, services.clone(), grants, limits);
        let slot = Arc::new(Slot::new());
        for (pattern, handler) in p.subscriptions {
            let bound = cx.clone();
            bus.subscribe(Subscription {
                extension: name.clone(),
                pattern,
                gate: slot.clone(),
                counters: cx.counters().clone(),
                deliver: Arc::new(move |event| handler(bound.clone(), event)),
            });
        }
        for (pattern, handler) in p.durable {
            let bound = cx.clone();
            bus.subscribe_durable(DurableSubscription {
                extension: name.clone(),
                pattern,
                gate: slot.clone(),
                deliver: Arc::new(move |event| handler(bound.clone(), event)),
            });
        }
        for stage in p.stages {
            let id = format!("{name}.{}", stage.spec.name());
            compiled.insert(id, CompiledStage { f: stage.f, cx: cx.clone(), slot: slot.clone() });
        }
        hook_specs.extend(p.hooks.into_iter().map(|h| (cx.clone(), slot.clone(), h)));
        middleware_specs.extend(p.middleware.into_iter().map(|m| (cx.clone(), slot.clone(), m)));
        if !initial.enabled {
            slot.set(ExtensionState::Disabled);
        } else if let Some(reason) = initial.problem {
            slot.set(ExtensionState::Failed(reason));
        }
        extensions.push(Managed::new(p.metadata, p.extension, cx, slot, p.routes, needs, handles));
    }
    let pipelines = Arc::new(Pipelines::new(compiled, catalog.clone(), remote, metrics.pipelines().clone()));
    let runtime = Arc::new(Runtime::new(config, pool, isolator, extensions, metrics, bus, pipelines));
    let hooks = Registry::new(hook_specs);
    hooks.attach_metrics(runtime.metrics());
    let middleware = MiddlewareSet::new(middleware_specs);
    middleware.attach_metrics(runtime.metrics());
    Ok(Assembled { runtime, hooks, middleware })
}
