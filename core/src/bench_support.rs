//! Hooks for `core/benches/metrics.rs`; not part of the API.

use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use axum::Router;
use axum::extract::Request;
use axum::http::{Method, StatusCode};
use axum::middleware::{self, Next};
use axum::routing::get;

use crate::metrics::{ErrorType, ExtensionMetrics, Metrics, RouteList, measured};

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

    /// `/metrics` as served.
    pub fn render(&self) -> String {
        self.metrics.render()
    }

    /// A router for extension `name` with the same metrics middleware as the host's; its routes
    /// answer the status given as the last path segment.
    pub fn router(&self, name: &str) -> Router {
        let Some(em) = self.metrics.extension(name).cloned() else { return Router::new() };
        let busy = Arc::new(AtomicU64::new(0));
        let routes =
            (0..64).fold(Router::new(), |r, i| r.route(&format!("/ext/{name}/items{i}/{{id}}"), get(answer)));
        routes.layer(middleware::from_fn(move |req: Request, next: Next| {
            let em: Arc<ExtensionMetrics> = em.clone();
            let busy = busy.clone();
            async move {
                let meter = em.start(&req);
                let res = measured(&busy, next.run(req)).await;
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
