//! [`Pipelines`]: this replica's registry snapshot and what it calls. The [`Snapshot`] is
//! immutable (stages with their resolved handler, pipelines compiled into ordered plans) and held
//! in an `ArcSwap`: a run loads it once (no database, no lock) and a reload swaps a new one in
//! whole. A reload that fails validation is refused: the last good snapshot keeps serving, and
//! the refusal is logged, counted (`pipeline_registry_reloads_total{result="refused"}`) and shown
//! in [`RegistryStatus`].

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arc_swap::ArcSwap;
use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::PgPool;

use super::health::{HealthFigures, StageHealth};
use super::model::{PipelineDef, StageDef, Transport};
use super::registry::{check_pipeline, check_stage, compiled_spec};
use super::remote::RemoteStages;
use super::store;
use crate::extension::context::Context;
use crate::extension::gate::Slot;
use crate::extension::stage::StageFn;
use crate::observe::metrics::{PipelineFamilies, PipelineHandles, StageHandles};
use crate::plan::catalog::Catalog;

/// A compiled-in stage's handler with its extension's context and gate.
#[derive(Clone)]
pub(crate) struct CompiledStage {
    pub(crate) f: StageFn,
    pub(crate) cx: Context,
    /// Open while the extension runs; a stage of a stopped extension is not called.
    pub(crate) slot: Arc<Slot>,
}

impl std::fmt::Debug for CompiledStage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CompiledStage").field("extension", &self.cx.name()).finish_non_exhaustive()
    }
}

/// How a stage is called.
#[derive(Debug, Clone)]
pub(crate) enum Handler {
    Compiled(CompiledStage),
    Remote(String),
}

/// One stage in a snapshot.
#[derive(Debug)]
pub(crate) struct Stage {
    pub(crate) def: StageDef,
    pub(crate) handler: Handler,
    pub(crate) health: Arc<StageHealth>,
    pub(crate) metrics: StageHandles,
    /// Its name in `Server-Timing` (a token: `[A-Za-z0-9_.-]`).
    pub(crate) timing_name: String,
}

/// A pipeline compiled into the order it runs in.
#[derive(Debug)]
pub(crate) struct Plan {
    pub(crate) name: String,
    pub(crate) deadline: Duration,
    pub(crate) pre: Vec<Arc<Stage>>,
    /// Groups of equal order, lowest first; a group runs concurrently.
    pub(crate) validators: Vec<Vec<Arc<Stage>>>,
    /// By priority, lowest first (ties in the order given).
    pub(crate) providers: Vec<Arc<Stage>>,
    pub(crate) post: Vec<Arc<Stage>>,
    pub(crate) metrics: PipelineHandles,
}

/// Keys are registry names (operators', not clients'): a fast hasher is enough.
type FastMap<V> = HashMap<String, V, foldhash::fast::RandomState>;

/// An immutable view of the registry.
#[derive(Debug, Default)]
pub(crate) struct Snapshot {
    pub(crate) stages: FastMap<Arc<Stage>>,
    pub(crate) pipelines: FastMap<Arc<Plan>>,
    /// The newest `updated_at` of the rows it was built from.
    pub(crate) newest: Option<DateTime<Utc>>,
}

/// The last reload's result, for the admin API.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RegistryStatus {
    /// When the serving snapshot was built.
    pub loaded_at: Option<DateTime<Utc>>,
    /// Stages in it.
    pub stages: usize,
    /// Pipelines in it.
    pub pipelines: usize,
    /// The newest change (a row's `updated_at`) it holds: a change made at or before it is
    /// served here.
    pub newest_change: Option<DateTime<Utc>>,
    /// Reloads that succeeded.
    pub reloads: u64,
    /// Reloads refused (validation) or failed (the database).
    pub refused: u64,
    /// The last refusal, while it is the newest news (cleared by a good reload).
    pub last_error: Option<ReloadError>,
}

/// A refused reload.
#[derive(Debug, Clone, Serialize)]
pub struct ReloadError {
    /// When.
    pub at: DateTime<Utc>,
    /// Every problem found.
    pub problems: Vec<String>,
}

/// This replica's pipelines: the snapshot, the handlers it resolves stages to, and each stage's
/// health (kept across snapshots).
pub(crate) struct Pipelines {
    compiled: HashMap<String, CompiledStage>,
    catalog: Arc<Catalog>,
    pub(crate) remote: RemoteStages,
    families: PipelineFamilies,
    health: Mutex<HashMap<String, Arc<StageHealth>>>,
    current: ArcSwap<Snapshot>,
    status: Mutex<RegistryStatus>,
    /// Serialises reloads, so an older read never replaces a newer one.
    reloading: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for Pipelines {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pipelines").field("compiled", &self.compiled.len()).finish_non_exhaustive()
    }
}

impl Pipelines {
    /// Empty until the first [`Pipelines::reload`].
    pub(crate) fn new(
        compiled: HashMap<String, CompiledStage>,
        catalog: Arc<Catalog>,
        remote: RemoteStages,
        families: PipelineFamilies,
    ) -> Self {
        Self {
            compiled,
            catalog,
            remote,
            families,
            health: Mutex::new(HashMap::new()),
            current: ArcSwap::from_pointee(Snapshot::default()),
            status: Mutex::new(RegistryStatus::default()),
            reloading: tokio::sync::Mutex::new(()),
        }
    }

    /// The serving snapshot.
    pub(crate) fn snapshot(&self) -> Arc<Snapshot> {
        self.current.load_full()
    }

    /// The plan of pipeline `name` in the serving snapshot: a load of the `ArcSwap` (no lock,
    /// no reference count on the snapshot) and a hash lookup. The plan lives as long as the run
    /// holding it, whatever swaps meanwhile.
    pub(crate) fn find(&self, name: &str) -> Option<Arc<Plan>> {
        self.current.load().pipelines.get(name).cloned()
    }

    /// The compiled-in set its stages were resolved against.
    pub(crate) fn catalog(&self) -> &Arc<Catalog> {
        &self.catalog
    }

    /// Whether `[nats] url` is set.
    pub(crate) fn nats(&self) -> bool {
        self.remote.configured()
    }

    /// The last reload's result.
    pub(crate) fn status(&self) -> RegistryStatus {
        self.status.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// This replica's figures of stage `id` (none if it never ran here).
    pub(crate) fn health_of(&self, id: &str) -> Option<HealthFigures> {
        self.health.lock().unwrap_or_else(|p| p.into_inner()).get(id).map(|h| h.figures())
    }

    /// Reads the registry and swaps a new snapshot in, or keeps the last good one when the
    /// registry does not validate or cannot be read. Returns whether it swapped.
    pub(crate) async fn reload(&self, pool: &PgPool) -> bool {
        let _one_at_a_time = self.reloading.lock().await;
        let (stages, pipelines) = match store::registry(pool).await {
            Ok(rows) => rows,
            Err(e) => {
                self.families.reload("failed");
                tracing::warn!(error = %e, "pipelines: cannot read the registry; the last snapshot keeps serving");
                self.refused(vec![format!("cannot read the registry: {e}")]);
                return false;
            }
        };
        match self.build(stages, pipelines) {
            Ok(snapshot) => {
                self.swap(snapshot);
                true
            }
            Err(problems) => {
                self.families.reload("refused");
                tracing::error!(problems = ?problems, "pipelines: the registry does not validate; refused, the last good snapshot keeps serving");
                self.refused(problems);
                false
            }
        }
    }

    /// Serves `snapshot` from now on (runs in flight finish on the one they loaded).
    pub(crate) fn swap(&self, snapshot: Snapshot) {
        let (s, p, newest) = (snapshot.stages.len(), snapshot.pipelines.len(), snapshot.newest);
        self.current.store(Arc::new(snapshot));
        self.families.reload("ok");
        let mut status = self.status.lock().unwrap_or_else(|p| p.into_inner());
        status.loaded_at = Some(Utc::now());
        status.stages = s;
        status.pipelines = p;
        status.newest_change = newest;
        status.reloads += 1;
        status.last_error = None;
    }

    fn refused(&self, problems: Vec<String>) {
        let mut status = self.status.lock().unwrap_or_else(|p| p.into_inner());
        status.refused += 1;
        status.last_error = Some(ReloadError { at: Utc::now(), problems });
    }

    /// Builds a snapshot from registry rows; every problem found when it does not validate.
    pub(crate) fn build(
        &self,
        stages: Vec<StageDef>,
        pipelines: Vec<PipelineDef>,
    ) -> Result<Snapshot, Vec<String>> {
        let mut problems = Vec::new();
        let newest = stages
            .iter()
            .filter_map(|s| s.updated_at)
            .chain(pipelines.iter().filter_map(|p| p.updated_at))
            .max();
        let registry: BTreeMap<String, StageDef> = stages.into_iter().map(|s| (s.id.clone(), s)).collect();
        let mut built: FastMap<Arc<Stage>> = FastMap::default();
        for def in registry.values() {
            // Another binary's compiled-in stage (or one of an extension since removed): not
            // callable here, and an error only if a pipeline names it (check_pipeline says so).
            if def.transport == Transport::Compiled && compiled_spec(def, &self.catalog).is_none() {
                tracing::debug!(stage = %def.id, "pipelines: a compiled-in stage of an extension not in this binary");
                continue;
            }
            if let Err(e) = check_stage(def, &self.catalog) {
                let detail = match &e {
                    super::error::RegistryError::InvalidConfig { errors, .. } => {
                        let list: Vec<String> =
                            errors.iter().map(|v| format!("{}: {}", v.pointer, v.message)).collect();
                        format!("{e}: {}", list.join("; "))
                    }
                    _ => e.to_string(),
                };
                problems.push(detail);
                continue;
            }
            let handler = match def.transport {
                Transport::Compiled => match self.compiled.get(&def.id) {
                    Some(c) => Handler::Compiled(c.clone()),
                    None => {
                        problems
                            .push(format!("stage `{}`: its extension is not running in this binary", def.id));
                        continue;
                    }
                },
                Transport::Remote => Handler::Remote(def.subject.clone().unwrap_or_default()),
            };
            let health = self.health_entry(&def.id);
            let metrics = self.families.stage(&def.id, def.kind.as_str());
            let figures = health.figures();
            metrics.health(figures.score, figures.breaker == super::health::BreakerState::Open);
            let stage =
                Stage { timing_name: timing_name(&def.id), def: def.clone(), handler, health, metrics };
            built.insert(def.id.clone(), Arc::new(stage));
        }
        let mut plans = FastMap::default();
        for p in pipelines {
            let found = check_pipeline(&p.stages, &registry, &self.catalog, false);
            if !found.is_empty() {
                problems.extend(found.into_iter().map(|m| format!("pipeline `{}`: {m}", p.name)));
                continue;
            }
            // A stage disabled after the pipeline was composed is skipped when it runs.
            let pick = |id: &str| built.get(id).filter(|s| s.def.enabled).cloned();
            let mut validators: BTreeMap<i32, Vec<Arc<Stage>>> = BTreeMap::new();
            for v in &p.stages.validators {
                if let Some(s) = pick(&v.stage) {
                    validators.entry(v.order).or_default().push(s);
                }
            }
            let mut providers: Vec<(i32, Arc<Stage>)> =
                p.stages.providers.iter().filter_map(|c| pick(&c.stage).map(|s| (c.priority, s))).collect();
            providers.sort_by_key(|(priority, _)| *priority);
            let plan = Plan {
                deadline: Duration::from_millis(p.deadline_ms),
                pre: p.stages.pre.iter().filter_map(|id| pick(id)).collect(),
                validators: validators.into_values().collect(),
                providers: providers.into_iter().map(|(_, s)| s).collect(),
                post: p.stages.post.iter().filter_map(|id| pick(id)).collect(),
                metrics: self.families.pipeline(&p.name),
                name: p.name.clone(),
            };
            plans.insert(p.name, Arc::new(plan));
        }
        if problems.is_empty() {
            Ok(Snapshot { stages: built, pipelines: plans, newest })
        } else {
            Err(problems)
        }
    }

    fn health_entry(&self, id: &str) -> Arc<StageHealth> {
        self.health.lock().unwrap_or_else(|p| p.into_inner()).entry(id.to_owned()).or_default().clone()
    }

    /// Mirrors this replica's figures of every stage of the snapshot to `annex.stage_health`.
    pub(crate) async fn mirror_health(&self, pool: &PgPool, replica: &str) {
        let snapshot = self.snapshot();
        for stage in snapshot.stages.values() {
            let f = stage.health.figures();
            let figures = (f.calls as i64, f.failures as i64, f.score, f.breaker.as_str());
            if let Err(e) = store::write_health(pool, &stage.def.id, replica, figures).await {
                tracing::debug!(error = %e, stage = %stage.def.id, "pipelines: could not mirror the stage's health");
            }
        }
    }
}

/// `id` as a `Server-Timing` metric name: characters outside `[A-Za-z0-9_.-]` become `_`.
pub(crate) fn timing_name(id: &str) -> String {
    id.chars()
        .map(|c| if c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-') { c } else { '_' })
        .collect()
}
