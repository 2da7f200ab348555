//! The HTTP application: host endpoints, then each extension's routes under `/ext/<name>`.
//!
//! Layers, outermost first: request id → routing → (per extension route) the request path of
//! `request_path.rs` (gate, metrics, quotas, rate limit, hooks, middleware) → handler.
//! `docs/request-path.md` has the full order. `/metrics` and the admin API (`/api/v1`, bearer
//! token) sit beside the extensions.

use std::collections::BTreeMap;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware;
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, get};
use axum::{Json, Router};
use serde_json::json;

use crate::api_error::ApiError;
use crate::error::HostError;
use crate::host::{HostInner, Managed};
use crate::panic;
use crate::request_id;
use crate::request_path::{self, ExtensionPath};

pub(crate) fn build(host: &Arc<HostInner>) -> Result<Router, HostError> {
    // Validation already rejected conflicts; this catch is the last line against a router panic.
    std::panic::catch_unwind(AssertUnwindSafe(|| build_unchecked(host))).map_err(|p| {
        HostError::Internal(format!("building the router failed: {}", panic::panic_message(&*p)))
    })
}

fn build_unchecked(host: &Arc<HostInner>) -> Router {
    let mut app = Router::new()
        .route("/health", get(health))
        .route("/ready", get(ready))
        .route("/metrics", get(metrics))
        .with_state(host.clone())
        .merge(crate::admin_api::router(host));
    for m in &host.extensions {
        if let Some(routes) = extension_router(host, m) {
            app = app.nest(&format!("/ext/{}", m.metadata.name), routes);
        }
    }
    app.fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::from_fn(request_id::assign))
}

fn extension_router(host: &HostInner, m: &Managed) -> Option<Router> {
    if m.routes.is_empty() {
        return None;
    }
    let metrics = host.ops.metrics.extension(&m.metadata.name).cloned();
    let token: Arc<str> = host.ops.admin_token.as_str().into();
    let path = Arc::new(ExtensionPath::new(m, &host.hooks, &host.middleware, metrics, token));
    let mut by_path: BTreeMap<&str, MethodRouter> = BTreeMap::new();
    for spec in &m.routes {
        let handler = request_path::wrap(&path, &spec.path, &spec.access, spec.handler.clone());
        let merged = match by_path.remove(spec.path.as_str()) {
            Some(existing) => existing.merge(handler),
            None => handler,
        };
        by_path.insert(&spec.path, merged);
    }
    Some(by_path.into_iter().fold(Router::new(), |r, (path, h)| r.route(path, h)))
}

/// Prometheus text format. Unauthenticated, as scrapers expect; it names extensions and routes
/// but carries no data. Resource gauges are refreshed here, not on the request path.
async fn metrics(State(host): State<Arc<HostInner>>) -> Response {
    crate::metrics::refresh(&host);
    let content_type = [(axum::http::header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")];
    (content_type, host.ops.metrics.render()).into_response()
}

async fn health() -> Json<serde_json::Value> {
    Json(json!({ "status": "ok" }))
}

async fn ready(State(host): State<Arc<HostInner>>) -> Response {
    if !host.ready.load(Ordering::Acquire) {
        return ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "not_ready",
            "annex is starting or shutting down",
        )
        .into_response();
    }
    let ping = sqlx::query("select 1").execute(&host.pool);
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
        host.extensions.iter().map(|m| (m.metadata.name.clone(), json!(m.slot.state().as_str()))).collect();
    Json(json!({ "status": "ready", "extensions": extensions })).into_response()
}

async fn not_found(req: Request) -> ApiError {
    ApiError::not_found(format!("no route for {} {}", req.method(), req.uri().path()))
}

async fn method_not_allowed(req: Request) -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        format!("{} is not allowed on {}", req.method(), req.uri().path()),
    )
}
