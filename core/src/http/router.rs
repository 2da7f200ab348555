//! The HTTP application: host endpoints, then each extension's routes under `/ext/<name>`, and
//! the same routes under every site, `/sites/<slug>/ext/<name>`.
//!
//! Layers, outermost first: request id → site paths (`/sites/<slug>/ext/<name>/…` is routed as
//! `/ext/<name>/…`, the original URI kept for the request path, which checks the site's gate)
//! → routing → (per extension route) the request path of
//! `request_path.rs` (gate, quotas, rate limit, hooks, middleware, metrics) → handler.
//! `docs/request-path.md` has the full order. `/metrics`, the admin API (`/api/v1`, bearer
//! token or console session) and the console (`/admin/`) sit beside the extensions.

use std::collections::BTreeMap;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::uri::PathAndQuery;
use axum::http::{StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, get};
use axum::{Json, Router};
use serde_json::json;

use crate::admin::api::{self, ApiState};
use crate::admin::console;
use crate::config::admin_token::AdminToken;
use crate::extension::error::ApiError;
use crate::extension::hooks::middleware::MiddlewareSet;
use crate::extension::panic;
use crate::extension::site::split_site_path;
use crate::http::error_shape;
use crate::http::hook_chain::Registry;
use crate::http::pipeline_path;
use crate::http::request_path::{self, ExtensionPath};
use crate::observe::request_id;
use crate::runtime::lifecycle::{Managed, Runtime};

/// What the application is built from.
#[derive(Debug)]
pub(crate) struct App<'a> {
    pub(crate) runtime: &'a Arc<Runtime>,
    pub(crate) hooks: &'a Registry,
    pub(crate) middleware: &'a MiddlewareSet,
    pub(crate) admin_token: &'a AdminToken,
    /// False while starting and once shutdown began: `/ready` answers 503.
    pub(crate) ready: &'a Arc<AtomicBool>,
}

/// State of the host endpoints.
#[derive(Debug, Clone)]
struct HostState {
    runtime: Arc<Runtime>,
    ready: Arc<AtomicBool>,
}

/// Builds the application; `Err` says why (a bug: validation rejects conflicting routes first).
pub(crate) fn build(app: &App<'_>) -> Result<Router, String> {
    // Validation already rejected conflicts; this catch is the last line against a router panic.
    std::panic::catch_unwind(AssertUnwindSafe(|| build_unchecked(app)))
        .map_err(|p| format!("building the router failed: {}", panic::panic_message(&*p)))
}

fn build_unchecked(app: &App<'_>) -> Router {
    let state = HostState { runtime: app.runtime.clone(), ready: app.ready.clone() };
    // The console's entity browser calls the entity API through the finished router.
    let console_app = console::AppRouter::default();
    let mut router = Router::new()
        .route("/health", get(health))
        .route("/ready", get(ready))
        .route("/metrics", get(metrics))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(state.clone())
        .merge(api::router(ApiState::new(app.runtime, app.admin_token.clone())))
        .merge(console::router(ApiState::new(app.runtime, app.admin_token.clone()), &console_app))
        .merge(pipeline_path::router(app.runtime.clone()));
    // Each extension's routes at their full paths, `/ext/<name>/…`, not a nested router: axum's
    // nesting strips the prefix from every request's URI (a new URI per request) behind one more
    // router; a handler sees the full path (`OriginalUri` as well), and hooks always did.
    for m in app.runtime.extensions() {
        if let Some(routes) = extension_router(app, m, &state) {
            router = router.merge(routes);
        }
    }
    console_app.set(router.clone());
    // Routing happens before a router's layers run, so the site paths are rewritten by a router
    // of their own, outside the one that routes. It also records the original URI first.
    // The outermost steps, request id then the JSON error shape, in one service of ours rather
    // than two axum layers (each a boxed future and a cloned boxed service per request).
    Router::new().fallback_service(Outermost { inner: router, _console_app: console_app })
}

/// Request id → JSON error shape → site paths → the router.
#[derive(Clone)]
struct Outermost {
    inner: Router,
    /// Keeps the router the console's entity browser calls alive as long as the app.
    _console_app: console::AppRouter,
}

impl tower::Service<Request> for Outermost {
    type Response = Response;
    type Error = std::convert::Infallible;
    type Future = futures::future::BoxFuture<'static, Result<Response, Self::Error>>;

    fn poll_ready(&mut self, _: &mut std::task::Context<'_>) -> std::task::Poll<Result<(), Self::Error>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request) -> Self::Future {
        let mut inner = self.inner.clone();
        Box::pin(async move {
            let res = request_id::assign(req, |req| async move {
                // A `Router` is always ready and never fails.
                let res = match tower::Service::call(&mut inner, site_paths(req)).await {
                    Ok(res) => res,
                    Err(never) => match never {},
                };
                error_shape::json_errors(res).await
            })
            .await;
            Ok(res)
        })
    }
}

/// `/sites/<slug>/ext/<name>/…?q` → `/ext/<name>/…?q`; any other request is left alone. The
/// request path finds the site in `OriginalUri`, which the outer router set before this ran.
fn site_paths(mut req: Request) -> Request {
    let Some((_, tail)) = split_site_path(req.uri().path()) else { return req };
    let target = match req.uri().query() {
        Some(query) => format!("{tail}?{query}"),
        None => tail.to_owned(),
    };
    // A tail of a valid path is a valid path; if not, the request goes on unrewritten (a 404).
    if let Ok(path) = PathAndQuery::try_from(target) {
        let mut parts = req.uri().clone().into_parts();
        parts.path_and_query = Some(path);
        if let Ok(uri) = Uri::from_parts(parts) {
            *req.uri_mut() = uri;
        }
    }
    req
}

fn extension_router(app: &App<'_>, m: &Managed, state: &HostState) -> Option<Router> {
    if m.routes().is_empty() {
        return None;
    }
    let path = Arc::new(ExtensionPath::new(
        m,
        app.hooks,
        app.middleware,
        app.admin_token.clone(),
        app.runtime.site_gates(),
    ));
    let mut by_path: BTreeMap<String, MethodRouter> = BTreeMap::new();
    for spec in m.routes() {
        let handler = request_path::wrap(&path, &spec.path, &spec.access, spec.handler.clone());
        let full = full_path(m.name(), &spec.path);
        let merged = match by_path.remove(&full) {
            Some(existing) => existing.merge(handler),
            None => handler,
        };
        by_path.insert(full, merged);
    }
    // Its 405s are counted like the host's.
    let host = state.clone();
    let router = by_path.into_iter().fold(Router::new(), |r, (path, h)| r.route(&path, h));
    Some(router.method_not_allowed_fallback(move |req: Request| method_not_allowed(State(host), req)))
}

/// Where extension `name`'s route `path` is served: `/ext/<name><path>`, and `/ext/<name>` for
/// `/` (as axum's nesting had it).
fn full_path(name: &str, path: &str) -> String {
    if path == "/" { format!("/ext/{name}") } else { format!("/ext/{name}{path}") }
}

/// Prometheus text format. Unauthenticated, as scrapers expect; it names extensions and routes
/// but carries no data. Resource gauges are refreshed here, not on the request path.
async fn metrics(State(host): State<HostState>) -> Response {
    host.runtime.refresh_metrics();
    let content_type = [(axum::http::header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")];
    (content_type, host.runtime.metrics().render()).into_response()
}

async fn health() -> Json<serde_json::Value> {
    Json(json!({ "status": "ok" }))
}

async fn ready(State(host): State<HostState>) -> Response {
    if !host.ready.load(Ordering::Acquire) {
        return ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "not_ready",
            "annex is starting or shutting down",
        )
        .into_response();
    }
    let ping = sqlx::query("select 1").execute(host.runtime.pool());
    match tokio::time::timeout(Duration::from_secs(2), ping).await {
        Ok(Ok(_)) => {}
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "readiness: database unreachable");
            return ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "not_ready",
                "the database is unreachable",
            )
            .into_response();
        }
        Err(_) => {
            return ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "not_ready",
                "the database did not answer within 2 s",
            )
            .into_response();
        }
    }
    let extensions: serde_json::Map<String, serde_json::Value> =
        host.runtime.extensions().iter().map(|m| (m.name().to_owned(), json!(m.state().as_str()))).collect();
    Json(json!({ "status": "ready", "extensions": extensions })).into_response()
}

async fn not_found(State(host): State<HostState>, req: Request) -> ApiError {
    count_unmatched(&host, &req, StatusCode::NOT_FOUND);
    ApiError::not_found(format!("no route for {} {}", req.method(), req.uri().path()))
}

async fn method_not_allowed(State(host): State<HostState>, req: Request) -> ApiError {
    count_unmatched(&host, &req, StatusCode::METHOD_NOT_ALLOWED);
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        format!("{} is not allowed on {}", req.method(), req.uri().path()),
    )
}

/// Counts a request no route matched under `route="unmatched"`, with the extension only when
/// the path names one that exists, so the labels stay bounded whatever clients send.
fn count_unmatched(host: &HostState, req: &Request, status: StatusCode) {
    let path = req.extensions().get::<axum::extract::OriginalUri>().map_or(req.uri().path(), |o| o.0.path());
    let path = crate::extension::site::placement_path(path);
    let named = path.strip_prefix("/ext/").and_then(|rest| rest.split('/').next());
    let extension = named.filter(|n| host.runtime.find(n).is_some()).unwrap_or("");
    host.runtime.metrics().count_unmatched(extension, req.method(), status);
}
