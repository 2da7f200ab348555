//! Fixtures for `core/benches/` (`metrics.rs`, `hot_paths.rs`, `request_profiles.rs`): crate internals wrapped just
//! enough to be measured. Not part of the API.

use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use axum::Router;
use axum::extract::Request;
use axum::http::{Method, StatusCode};
use axum::middleware::{self, Next};
use axum::routing::get;

use crate::config::RateLimitConfig;
use crate::extension::gate::{ExtensionState, Slot};
use crate::extension::hooks::HookPoint;
use crate::http::hook_chain::{Chains, FailMode, Head, Registry, run_request_filters};
use crate::limits::meter::{Throttle, metered};
use crate::limits::quota::Limits;
use crate::limits::rate_limit::{ClientKey, Decision, RateLimit};
use crate::observe::metrics::{ErrorType, ExtensionMetrics, HookHandles, Metrics, RouteList};

/// A registry with `extensions` extensions sharing `routes` routes, each route with a few
/// recorded status codes, as after some traffic.
pub struct MetricsFixture {
    metrics: Metrics,
}

impl std::fmt::Debug for MetricsFixture {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MetricsFixture").finish_non_exhaustive()
    }
}

impl MetricsFixture {
    /// Builds the registry and records traffic on every route.
    pub fn new(extensions: usize, routes: usize) -> Self {
        let names: Vec<String> = (0..extensions).map(|i| format!("ext{i}")).collect();
        let lists: Vec<(&str, RouteList)> = names
            .iter()
            .enumerate()
            .map(|(i, n)| {
                let mine = (0..routes).filter(|r| r % extensions == i);
                (n.as_str(), mine.map(|r| (Method::GET, format!("/ext/{n}/items{r}/{{id}}"))).collect())
            })
            .collect();
        let metrics = Metrics::new(lists);
        let fixture = Self { metrics };
        for (i, n) in names.iter().enumerate() {
            let router = fixture.router(n);
            let rt = tokio::runtime::Builder::new_current_thread().build().expect("runtime");
            for r in (0..routes).filter(|r| r % extensions == i) {
                for status in ["200", "404", "500"] {
                    let req =
                        Request::get(format!("/ext/{n}/items{r}/{status}")).body(axum::body::Body::empty());
                    let req = req.expect("request");
                    let _ = rt.block_on(tower::ServiceExt::oneshot(router.clone(), req));
                }
            }
            if let Some(em) = fixture.metrics.extension(n) {
                em.error(ErrorType::Panic);
                em.set_health(1.0);
            }
            fixture
                .metrics
                .hook_handles(n, "pre_request:bench")
                .record(std::time::Duration::from_micros(40), false);
        }
        fixture
    }

    /// One request's metric update, as the request path does it: in flight +1, the route's
    /// handles found by template, then the status counter, the duration histogram and in flight
    /// −1. `route` is a full template such as `/ext/ext3/items23/{id}`.
    pub fn record_request(&self, extension: &str, route: &str, status: StatusCode) {
        if let Some(em) = self.metrics.extension(extension) {
            em.start_route(&Method::GET, Some(route)).finish(status, false);
        }
    }

    /// A hook's metric handles (calls counter and duration histogram), resolved once.
    pub fn hook_handles(&self, extension: &str, hook: &str) -> HookMetric {
        HookMetric(self.metrics.hook_handles(extension, hook))
    }

    /// `/metrics` as served.
    pub fn render(&self) -> String {
        self.metrics.render()
    }

    /// A router for extension `name` with the same metrics middleware as the host's; its routes
    /// answer the status given as the last path segment.
    pub fn router(&self, name: &str) -> Router {
        let Some(em) = self.metrics.extension(name).cloned() else { return Router::new() };
        let busy = Arc::new(AtomicU64::new(0));
        let limits = Arc::new(Limits::unlimited());
        let routes =
            (0..64).fold(Router::new(), |r, i| r.route(&format!("/ext/{name}/items{i}/{{id}}"), get(answer)));
        routes.layer(middleware::from_fn(move |req: Request, next: Next| {
            let em: Arc<ExtensionMetrics> = em.clone();
            let (busy, limits) = (busy.clone(), limits.clone());
            async move {
                let meter = em.start(&req);
                let res = metered(&busy, &limits, Throttle::Delay, next.run(req)).await;
                meter.finish(res.status(), false);
                res
            }
        }))
    }

    /// The same router with an empty middleware in place of the metrics one: the difference to
    /// [`MetricsFixture::router`] is the cost of metrics alone.
    pub fn noop_router(name: &str) -> Router {
        Self::bare_router(name).layer(middleware::from_fn(|req: Request, next: Next| next.run(req)))
    }

    /// The same router without the metrics middleware, for comparison.
    pub fn bare_router(name: &str) -> Router {
        (0..64).fold(Router::new(), |r, i| r.route(&format!("/ext/{name}/items{i}/{{id}}"), get(answer)))
    }
}

async fn answer(axum::extract::Path(code): axum::extract::Path<u16>) -> StatusCode {
    StatusCode::from_u16(code).unwrap_or(StatusCode::OK)
}

/// One hook's pre-resolved metric handles.
pub struct HookMetric(HookHandles);

impl std::fmt::Debug for HookMetric {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HookMetric").finish_non_exhaustive()
    }
}

impl HookMetric {
    /// Records one successful call that took `elapsed`, as every hook call does.
    pub fn record(&self, elapsed: Duration) {
        self.0.record(elapsed, false);
    }
}

/// An extension's gate, open.
#[derive(Debug)]
pub struct Gate(Slot);

impl Default for Gate {
    fn default() -> Self {
        let slot = Slot::new();
        slot.set(ExtensionState::Running);
        Self(slot)
    }
}

impl Gate {
    /// The check every extension request (and every hook call) makes.
    pub fn is_open(&self) -> bool {
        self.0.is_open()
    }
}

/// The site gates of `sites` sites with `extensions` extensions active at each, and one request
/// path per (site, extension): what the request path checks for `/sites/<slug>/ext/<name>/…`.
#[derive(Debug)]
pub struct SiteGateFixture {
    gates: crate::sites::gates::SiteGates,
    /// (full path, extension slot), in an order that jumps between sites.
    paths: Vec<(String, usize)>,
}

impl SiteGateFixture {
    /// Fills the gates as a load from the database would.
    pub fn new(sites: usize, extensions: usize) -> Self {
        use crate::sites::gates::{SiteGates, SiteRow};
        let names: Vec<String> = (0..extensions).map(|e| format!("ext{e}")).collect();
        let gates = SiteGates::new(names.iter().map(String::as_str));
        let rows = (0..sites).flat_map(|s| {
            let id = uuid::Uuid::from_u128(s as u128 + 1);
            names.iter().map(move |name| SiteRow {
                id,
                slug: format!("site-{s:04}"),
                status: "active".into(),
                active: Some((name.clone(), serde_json::json!({ "site": s }), "0".repeat(64))),
            })
        });
        gates.replace(rows);
        let mut paths = Vec::new();
        for i in 0..sites * extensions {
            let (s, e) = ((i * 7919) % sites, i % extensions);
            paths.push((format!("/sites/site-{s:04}/ext/ext{e}/items/1"), e));
        }
        Self { gates, paths }
    }

    /// The same gates, every request for one (site, extension): the table in cache.
    pub fn one_site(mut self) -> Self {
        self.paths.truncate(1);
        self
    }

    /// Request `i`'s gate, as the request path takes it: the slug split from the path, then
    /// the (site, extension) lookup; `true` when open (its site and config are handed out).
    pub fn check(&self, i: usize) -> bool {
        let (path, slot) = &self.paths[i % self.paths.len()];
        let Some((slug, _)) = crate::extension::site::split_site_path(path) else { return false };
        matches!(self.gates.check(slug, *slot), crate::sites::gates::SiteGate::Open(_))
    }
}

/// A rate limit at a quota no benchmark exhausts, with `clients` distinct identities to key by.
#[derive(Debug)]
pub struct RateLimitFixture {
    limit: RateLimit,
    keys: Vec<ClientKey>,
}

impl RateLimitFixture {
    /// One bucket for every caller (`per_client = false`).
    pub fn shared() -> Self {
        Self::new(false, 1)
    }

    /// One bucket per caller (`per_client = true`), with `clients` callers taking turns.
    pub fn per_client(clients: usize) -> Self {
        Self::new(true, clients)
    }

    fn new(per_client: bool, clients: usize) -> Self {
        let config = RateLimitConfig { per_second: u32::MAX, burst: u32::MAX, per_client };
        let limit = RateLimit::new("bench", config).unwrap_or_else(|e| panic!("{e}"));
        let keys = (0..clients.max(1)).map(|i| ClientKey::Identity(format!("user-{i}").into())).collect();
        let fixture = Self { limit, keys };
        for i in 0..fixture.keys.len() {
            fixture.check(i);
        }
        fixture
    }

    /// Takes one request from the bucket of caller `i % clients` (the key is cloned, as the
    /// request path does); `true` when allowed.
    pub fn check(&self, i: usize) -> bool {
        let key = self.keys[i % self.keys.len()].clone();
        matches!(self.limit.check(&key), Decision::Allowed { .. })
    }
}

/// A `pre_request` chain of `n` filters, one per extension (each behind its own open gate, with
/// its metric handles attached), each reading a header, as they apply to `/ext/target/ping`.
pub struct HookChainFixture {
    chains: Chains,
    target: Arc<str>,
    _gates: Vec<Arc<Slot>>,
}

impl std::fmt::Debug for HookChainFixture {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HookChainFixture").finish_non_exhaustive()
    }
}

const CHAIN_PATH: &str = "/ext/target/ping";

impl HookChainFixture {
    /// Registers the `n` filters through the public [`Registrar`](crate::Registrar) API.
    pub fn new(n: usize) -> Self {
        let mut specs = Vec::new();
        let mut gates = Vec::new();
        let names: Vec<String> = (0..n).map(|i| format!("hooks{i}")).collect();
        for name in &names {
            let mut r = crate::extension::registrar::Registrar::new(name);
            r.pre_request(crate::Hook::new("read"), |_cx, req: crate::hooks::HookRequest| async move {
                let _ = req.header("x-user");
                Ok(())
            });
            let slot = Arc::new(Slot::new());
            slot.set(ExtensionState::Running);
            gates.push(slot.clone());
            let cx = crate::Context::new_test(name);
            specs.extend(r.hooks.into_iter().map(|spec| (cx.clone(), slot.clone(), spec)));
        }
        let registry = Registry::new(specs);
        let metrics = Metrics::new(names.iter().map(|n| (n.as_str(), Vec::new())));
        registry.attach_metrics(&metrics);
        Self { chains: registry.chains_for("target"), target: "target".into(), _gates: gates }
    }

    /// Runs the chain over a fresh request head; `true` when no filter answered early.
    pub async fn run(&self) -> bool {
        let req = axum::http::Request::get(CHAIN_PATH).header("x-user", "bench").body(());
        let (parts, ()) = req.expect("a constant, valid request").into_parts();
        let mut head = Head::Plain(parts);
        let chain = self.chains.get(HookPoint::PreRequest);
        run_request_filters(chain, CHAIN_PATH, &mut head, &self.target, FailMode::Open).await.is_ok()
    }
}

/// The extension request path in process, without a database: `GET /ext/bench_target/ping`
/// (header `x-user: bench`) through the router `annex serve` builds, every gate open, sent with
/// `oneshot` — the two annex profiles of `bench/load.sh` without HTTP.
///
/// - [`plain`](Self::plain): the target alone, with a per-client rate limit at a quota never
///   reached (request id, gate, metrics, quotas, rate limit, panic catching);
/// - [`full`](Self::full): plus four extensions hooking every point and a middleware, as the armed
///   `extensions/examples/loadtest` set (authentication, pre_request, pre_response, middleware,
///   post_request, post_response).
pub struct RequestPathFixture {
    router: Router,
    _runtime: Arc<crate::runtime::lifecycle::Runtime>,
}

impl std::fmt::Debug for RequestPathFixture {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RequestPathFixture").finish_non_exhaustive()
    }
}

impl RequestPathFixture {
    /// The path of the measured request.
    pub const PATH: &'static str = "/ext/bench_target/ping";

    /// The target extension and its rate limit only.
    pub fn plain() -> Self {
        Self::build(false)
    }

    /// The target and four extensions hooking every point, with a middleware.
    pub fn full() -> Self {
        Self::build(true)
    }

    /// Must be called inside a tokio runtime (the lazy pool and the rate limiter's pruning).
    fn build(hooked: bool) -> Self {
        let mut config = crate::config::Config::default();
        config.extensions.entry("bench_target".into()).or_default().rate_limit =
            Some(RateLimitConfig { per_second: 1_000_000_000, burst: 1_000_000_000, per_client: true });
        let mut extensions: Vec<Arc<dyn crate::Extension>> = vec![Arc::new(profile::Target)];
        if hooked {
            for (name, perms) in [
                ("bench_auth", &["hooks:global", "hooks:auth"][..]),
                ("bench_headers", &["hooks:global"][..]),
                ("bench_timing", &["hooks:global"][..]),
                ("bench_observer", &["hooks:global"][..]),
            ] {
                config.extensions.entry(name.into()).or_default().permissions =
                    perms.iter().map(|p| (*p).to_owned()).collect();
            }
            extensions.extend([
                Arc::new(profile::Auth) as Arc<dyn crate::Extension>,
                Arc::new(profile::Headers),
                Arc::new(profile::Timing),
                Arc::new(profile::Observer),
            ]);
        }
        let (router, runtime) = crate::host::offline_router(extensions, config);
        Self { router, _runtime: runtime }
    }

    /// The router (cheap to clone: one per `oneshot`).
    pub fn router(&self) -> Router {
        self.router.clone()
    }

    /// The measured request.
    pub fn request() -> Request {
        Request::get(Self::PATH).header("x-user", "bench").body(axum::body::Body::empty()).expect("request")
    }

    /// The path of the measured request under a site.
    pub const SITE_PATH: &'static str = "/sites/bench-site/ext/bench_target/ping";

    /// The target active at site `bench-site` (among 1 000 sites), for [`Self::site_request`].
    pub fn with_site(self) -> Self {
        let rows = (0..1_000u128).map(|i| crate::sites::gates::SiteRow {
            id: uuid::Uuid::from_u128(i + 1),
            slug: if i == 0 { "bench-site".into() } else { format!("site-{i}") },
            status: "active".into(),
            active: Some(("bench_target".into(), serde_json::json!({}), "0".repeat(64))),
        });
        self._runtime.site_gates().replace(rows);
        self
    }

    /// The measured request, under the site.
    pub fn site_request() -> Request {
        Request::get(Self::SITE_PATH)
            .header("x-user", "bench")
            .body(axum::body::Body::empty())
            .expect("request")
    }

    /// Bare axum serving the same handler at the same path: the baseline.
    pub fn bare_axum() -> Router {
        Router::new().route(Self::PATH, get(profile::ping))
    }
}

/// The extensions of [`RequestPathFixture`], mirroring `extensions/examples/loadtest` (armed).
mod profile {
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::time::Instant;

    use axum::extract::Request;
    use axum::http::{HeaderName, HeaderValue};
    use serde_json::{Value, json};

    use crate::extension::hooks::{Hook, HookRequest, Identity, Next};
    use crate::extension::{Context, Extension, Json, Metadata, Registrar, permission};

    pub(super) async fn ping() -> Json<Value> {
        Json(json!({ "pong": true }))
    }

    pub(super) struct Target;

    #[async_trait::async_trait]
    impl Extension for Target {
        fn metadata(&self) -> Metadata {
            Metadata::new("bench_target", "1.0.0")
        }
        fn register(&self, r: &mut Registrar) {
            r.get("/ping", ping);
        }
    }

    pub(super) struct Auth;

    #[async_trait::async_trait]
    impl Extension for Auth {
        fn metadata(&self) -> Metadata {
            Metadata::new("bench_auth", "1.0.0")
                .permission(permission::HOOKS_GLOBAL)
                .permission(permission::HOOKS_AUTH)
        }
        fn register(&self, r: &mut Registrar) {
            r.authentication(Hook::new("x-user"), |_cx, req: HookRequest| async move {
                if let Some(user) = req.header("x-user").and_then(|v| v.to_str().ok().map(str::to_owned)) {
                    req.set_identity(Identity::new(user));
                }
                Ok(())
            });
        }
    }

    const SEEN: HeaderName = HeaderName::from_static("x-bench-seen");

    pub(super) struct Headers;

    #[async_trait::async_trait]
    impl Extension for Headers {
        fn metadata(&self) -> Metadata {
            Metadata::new("bench_headers", "1.0.0").permission(permission::HOOKS_GLOBAL)
        }
        fn register(&self, r: &mut Registrar) {
            r.pre_request(Hook::new("read"), |_cx, req: HookRequest| async move {
                let _ = req.header("user-agent");
                Ok(())
            });
            r.pre_response(Hook::new("tag"), |_cx, res| async move {
                res.set_header(SEEN, HeaderValue::from_static("1"));
                Ok(())
            });
        }
    }

    const HANDLED_IN: HeaderName = HeaderName::from_static("x-handled-in-us");

    pub(super) struct Timing;

    #[async_trait::async_trait]
    impl Extension for Timing {
        fn metadata(&self) -> Metadata {
            Metadata::new("bench_timing", "1.0.0").permission(permission::HOOKS_GLOBAL)
        }
        fn register(&self, r: &mut Registrar) {
            r.middleware(Hook::new("timer"), |_cx: Context, req: Request, next: Next| async move {
                let started = Instant::now();
                let mut res = next.run(req).await;
                let micros = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
                res.headers_mut().insert(HANDLED_IN, HeaderValue::from(micros));
                res
            });
        }
    }

    static RESPONSES: AtomicU64 = AtomicU64::new(0);
    static COMPLETED: AtomicU64 = AtomicU64::new(0);

    pub(super) struct Observer;

    #[async_trait::async_trait]
    impl Extension for Observer {
        fn metadata(&self) -> Metadata {
            Metadata::new("bench_observer", "1.0.0").permission(permission::HOOKS_GLOBAL)
        }
        fn register(&self, r: &mut Registrar) {
            r.post_request(Hook::new("count"), |_cx, _res| async {
                RESPONSES.fetch_add(1, Ordering::Relaxed);
                Ok(())
            });
            r.post_response(Hook::new("observe"), |_cx, _done| async {
                COMPLETED.fetch_add(1, Ordering::Relaxed);
            });
        }
    }
}

/// `bench`: one no-op stage of each kind, and the pipeline `bench` made of them.
struct NoopStages;

#[async_trait::async_trait]
impl crate::Extension for NoopStages {
    fn metadata(&self) -> crate::Metadata {
        crate::Metadata::new("bench", "1.0.0")
    }

    fn register(&self, r: &mut crate::Registrar) {
        use crate::extension::stage::{StageKind, StageRequest, StageResult, StageSpec};
        for kind in StageKind::ALL {
            r.stage(StageSpec::new(kind.as_str(), kind), |_cx: crate::Context, _req: StageRequest| async {
                StageResult::continue_()
            });
        }
    }
}

/// A replica's pipelines over the four no-op stages of `bench` (no database): the registry
/// snapshot, its lookup, its rebuild and swap, and a run.
pub struct PipelineFixture {
    pipelines: crate::pipelines::snapshot::Pipelines,
    stages: Vec<crate::pipelines::model::StageDef>,
    defs: Vec<crate::pipelines::model::PipelineDef>,
    provider: crate::extension::stage::StageFn,
    cx: crate::Context,
}

impl std::fmt::Debug for PipelineFixture {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PipelineFixture").finish_non_exhaustive()
    }
}

impl PipelineFixture {
    /// The snapshot holds `pipelines` pipelines (`p0`, `p1`, … and `bench`), all of the same
    /// four stages.
    pub fn new(pipelines: usize) -> Self {
        use crate::pipelines::model::{PipelineDef, PipelineStages, ProviderRef, ValidatorRef};
        use crate::pipelines::registry::compiled_row;
        use crate::pipelines::snapshot::{CompiledStage, Pipelines};

        let extension: Arc<dyn crate::Extension> = Arc::new(NoopStages);
        let catalog = Arc::new(crate::plan::catalog::Catalog::new(std::slice::from_ref(&extension)));
        let mut registrar = crate::Registrar::new("bench");
        extension.register(&mut registrar);
        let cx = crate::Context::new_test("bench");
        let slot = Arc::new(Slot::new());
        slot.set(ExtensionState::Running);
        let mut compiled = std::collections::HashMap::new();
        let mut stages = Vec::new();
        let mut provider = None;
        for s in registrar.stages {
            let row = compiled_row("bench", &s.spec);
            if s.spec.kind() == crate::extension::stage::StageKind::Provider {
                provider = Some(s.f.clone());
            }
            compiled.insert(row.id.clone(), CompiledStage { f: s.f, cx: cx.clone(), slot: slot.clone() });
            stages.push(row);
        }
        let families = Metrics::empty().pipelines().clone();
        let remote = crate::pipelines::remote::RemoteStages::none();
        let engine = Pipelines::new(compiled, catalog, remote, families);
        let shape = PipelineStages {
            pre: vec!["bench.pre".into()],
            validators: vec![ValidatorRef { stage: "bench.validator".into(), order: 0 }],
            providers: vec![ProviderRef { stage: "bench.provider".into(), priority: 0 }],
            post: vec!["bench.post".into()],
        };
        let defs = (0..pipelines)
            .map(|i| format!("p{i}"))
            .chain(["bench".to_owned()])
            .map(|name| PipelineDef { name, stages: shape.clone(), deadline_ms: 5000, updated_at: None })
            .collect();
        let fixture = Self { pipelines: engine, stages, defs, provider: provider.expect("a provider"), cx };
        fixture.reload();
        fixture
    }

    /// Builds a new snapshot from the same rows and swaps it in.
    pub fn reload(&self) {
        match self.pipelines.build(self.stages.clone(), self.defs.clone()) {
            Ok(snapshot) => self.pipelines.swap(snapshot),
            Err(problems) => panic!("the bench registry does not validate: {problems:?}"),
        }
    }

    /// Finds pipeline `name`: a load of the snapshot and a hash lookup.
    pub fn lookup(&self, name: &str) -> bool {
        self.pipelines.find(name).is_some()
    }

    /// Runs pipeline `bench` on `payload`; true when it answered.
    pub async fn run(&self, payload: serde_json::Value) -> bool {
        self.pipelines.run("bench", payload, "bench").await.result.is_ok()
    }

    /// Calls the provider stage's handler directly, as a bare handler would answer.
    pub async fn bare(&self, payload: serde_json::Value) -> bool {
        let request = crate::extension::stage::StageRequest {
            v: 1,
            request_id: "bench".into(),
            pipeline: "bench".into(),
            stage: "bench.provider".into(),
            attempt: 1,
            deadline: chrono::Utc::now(),
            payload,
            config: serde_json::Value::Null,
            context: serde_json::Value::Null,
        };
        (self.provider)(self.cx.clone(), request).await.outcome == crate::extension::stage::Outcome::Continue
    }
}
