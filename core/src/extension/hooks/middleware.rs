//! Extension middleware: `from_fn`-style functions that wrap the handler, registered with a
//! [`Hook`] (id, priority, scope) like hooks and run in the same deterministic order.

use std::fmt;
use std::sync::Arc;

use axum::extract::{OriginalUri, Request};
use axum::response::{IntoResponse, Response};
use futures::future::BoxFuture;

use crate::extension::context::Context;
use crate::extension::error::ApiError;
use crate::extension::gate::Slot;
use crate::extension::hooks::placement::Placement;
use crate::extension::hooks::{Hook, HookInfo};
use crate::extension::panic;
use crate::limits::meter::{Throttle, metered};
use crate::observe::request_id::RequestId;
use crate::observe::stats::Counters;

pub(crate) type MiddlewareFn =
    Arc<dyn Fn(Context, Request, Next) -> BoxFuture<'static, Response> + Send + Sync>;

/// One middleware as registered.
pub(crate) struct MiddlewareSpec {
    pub(crate) hook: Hook,
    pub(crate) f: MiddlewareFn,
}

impl fmt::Debug for MiddlewareSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MiddlewareSpec").field("hook", &self.hook).finish()
    }
}

/// One middleware, ready to run.
pub(crate) struct MiddlewareEntry {
    pub(crate) placement: Placement,
    f: MiddlewareFn,
}

impl fmt::Debug for MiddlewareEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MiddlewareEntry").field("placement", &self.placement).finish()
    }
}

/// Every middleware of every extension, sorted once.
#[derive(Debug, Default)]
pub(crate) struct MiddlewareSet {
    entries: Vec<Arc<MiddlewareEntry>>,
}

impl MiddlewareSet {
    pub(crate) fn new(specs: Vec<(Context, Arc<Slot>, MiddlewareSpec)>) -> Self {
        let mut entries: Vec<Arc<MiddlewareEntry>> = specs
            .into_iter()
            .map(|(cx, slot, spec)| {
                Arc::new(MiddlewareEntry { placement: Placement::new(cx, slot, &spec.hook), f: spec.f })
            })
            .collect();
        entries.sort_by(|a, b| Placement::order(&a.placement, &b.placement));
        Self { entries }
    }

    /// The middleware that can apply to `extension`'s routes, outermost first.
    /// Resolves every middleware's metric handles.
    pub(crate) fn attach_metrics(&self, metrics: &crate::observe::metrics::Metrics) {
        for entry in &self.entries {
            entry.placement.attach_metrics(metrics, "middleware");
        }
    }

    pub(crate) fn for_extension(&self, extension: &str) -> Arc<[Arc<MiddlewareEntry>]> {
        self.entries.iter().filter(|e| e.placement.relevant_to(extension)).cloned().collect()
    }

    pub(crate) fn info(&self) -> Vec<HookInfo> {
        self.entries.iter().map(|e| e.placement.info("middleware")).collect()
    }
}

/// The rest of the chain after a middleware: the next middleware, or the handler.
///
/// ```
/// use annex_core::{Context, Hook, Next, Registrar};
/// use axum::extract::{OriginalUri, Request};
/// use axum::http::HeaderValue;
/// fn register(r: &mut Registrar) {
///     r.middleware(Hook::new("tag").own_routes(), |_cx: Context, req: Request, next: Next| async move {
///         let mut res = next.run(req).await;
///         res.headers_mut().insert("x-tagged", HeaderValue::from_static("yes"));
///         res
///     });
/// }
/// ```
pub struct Next {
    chain: Arc<[Arc<MiddlewareEntry>]>,
    pos: usize,
    handler: axum::routing::Route,
    target: Context,
}

impl fmt::Debug for Next {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Next").field("pos", &self.pos).field("target", &self.target.name()).finish()
    }
}

/// Set on the response when the handler panicked, so the request path can report it.
#[derive(Debug, Clone)]
pub(crate) struct HandlerPanicked(pub(crate) Arc<str>);

impl Next {
    pub(crate) fn new(
        chain: Arc<[Arc<MiddlewareEntry>]>,
        handler: axum::routing::Route,
        target: Context,
    ) -> Self {
        Self { chain, pos: 0, handler, target }
    }

    /// Runs the rest of the chain.
    pub async fn run(self, req: Request) -> Response {
        let path = req.extensions().get::<OriginalUri>().map_or(req.uri().path(), |o| o.0.path());
        let path = crate::extension::site::placement_path(path);
        let found =
            self.chain[self.pos.min(self.chain.len())..].iter().position(|e| e.placement.applies(path));
        let Some(offset) = found else { return call_handler(self.handler, &self.target, req).await };
        let at = self.pos + offset;
        let entry = self.chain[at].clone();
        let next = Next { chain: self.chain, pos: at + 1, handler: self.handler, target: self.target };
        let cx = entry.placement.cx.clone();
        let call = (entry.f)(cx, req, next);
        match entry.placement.measure("middleware", call).await {
            Ok(res) => res,
            Err(_) => ApiError::internal(format!(
                "middleware `{}` of extension `{}` failed while handling this request",
                entry.placement.id, entry.placement.owner
            ))
            .into_response(),
        }
    }
}

/// The handler, with its panic caught: the client gets a 500 JSON error with the request id.
/// Polled as the target extension: its busy time, its allocations, its CPU budget (delayed
/// while spent).
async fn call_handler(mut handler: axum::routing::Route, target: &Context, req: Request) -> Response {
    // A `Route` is always ready (`poll_ready` is not needed) and never fails.
    let call = panic::catch(async move { tower::Service::call(&mut handler, req).await });
    let busy = &target.counters().busy_nanos;
    match metered(busy, target.limits(), Throttle::Delay, call).await {
        Ok(Ok(res)) => res,
        Ok(Err(never)) => match never {},
        Err(message) => {
            Counters::bump(&target.counters().handler_panics);
            let id = RequestId::current().map(|r| r.to_string()).unwrap_or_default();
            tracing::error!(extension = %target.name(), request_id = %id, panic = %message, "handler panicked");
            let mut res = ApiError::internal(format!(
                "extension `{}` failed while handling this request; details are logged under request id {id}",
                target.name()
            ))
            .into_response();
            res.extensions_mut().insert(HandlerPanicked(message.into()));
            res
        }
    }
}
