//! The hook chains: sorted once at startup, narrowed per extension, run per request.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use axum::http::request;
use axum::response::{IntoResponse, Response};

use crate::extension::context::Context;
use crate::extension::error::ApiError;
use crate::extension::gate::Slot;
use crate::extension::hooks::placement::Placement;
use crate::extension::hooks::{
    Completed, HookFn, HookInfo, HookPoint, HookRequest, HookResponse, HookSpec, Identity, RequestInfo,
};

/// How long an action (`post_response`, `error`) may run before it is dropped.
pub(crate) const ACTION_TIMEOUT: Duration = Duration::from_secs(5);

/// One hook, ready to run.
pub(crate) struct HookEntry {
    pub(crate) placement: Placement,
    pub(crate) point: HookPoint,
    f: HookFn,
}

impl std::fmt::Debug for HookEntry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HookEntry").field("point", &self.point).field("placement", &self.placement).finish()
    }
}

const POINTS: usize = 7;

fn index(point: HookPoint) -> usize {
    point as usize
}

/// Every hook of every extension, each point's chain sorted once.
#[derive(Debug, Default)]
pub(crate) struct Registry {
    chains: [Vec<Arc<HookEntry>>; POINTS],
}

impl Registry {
    pub(crate) fn new(specs: Vec<(Context, Arc<Slot>, HookSpec)>) -> Self {
        let mut chains: [Vec<Arc<HookEntry>>; POINTS] = Default::default();
        for (cx, slot, spec) in specs {
            let placement = Placement::new(cx, slot, &spec.hook);
            chains[index(spec.point)].push(Arc::new(HookEntry { placement, point: spec.point, f: spec.f }));
        }
        for chain in &mut chains {
            chain.sort_by(|a, b| Placement::order(&a.placement, &b.placement));
        }
        Self { chains }
    }

    /// Resolves every hook's metric handles.
    pub(crate) fn attach_metrics(&self, metrics: &crate::observe::metrics::Metrics) {
        for entry in self.chains.iter().flatten() {
            entry.placement.attach_metrics(metrics, entry.point.as_str());
        }
    }

    /// The chains that can apply to `extension`'s routes, in order.
    pub(crate) fn chains_for(&self, extension: &str) -> Chains {
        let by_point = self.chains.each_ref().map(|chain| {
            chain.iter().filter(|e| e.placement.relevant_to(extension)).cloned().collect::<Box<[_]>>()
        });
        let needs_info =
            [HookPoint::PostRequest, HookPoint::PreResponse, HookPoint::PostResponse, HookPoint::Error]
                .iter()
                .any(|p| !by_point[index(*p)].is_empty());
        Chains { by_point, needs_info }
    }

    pub(crate) fn info(&self) -> Vec<HookInfo> {
        self.chains.iter().flatten().map(|e| e.placement.info(e.point.as_str())).collect()
    }
}

/// The hooks that can apply to one extension's routes, per point, in run order.
#[derive(Debug)]
pub(crate) struct Chains {
    by_point: [Box<[Arc<HookEntry>]>; POINTS],
    /// Whether any response filter or action may run, so the request must be described.
    pub(crate) needs_info: bool,
}

impl Chains {
    pub(crate) fn get(&self, point: HookPoint) -> &[Arc<HookEntry>] {
        &self.by_point[index(point)]
    }
}

/// The request head while request filters run: plain until the first filter applies, then
/// shared with the hooks (see [`HookRequest`]).
#[derive(Debug)]
pub(crate) enum Head {
    Plain(request::Parts),
    Shared(HookRequest),
    Taken,
}

impl Head {
    fn shared(&mut self, target: &Arc<str>) -> HookRequest {
        if let Head::Shared(h) = self {
            return h.clone();
        }
        let parts = match std::mem::replace(self, Head::Taken) {
            Head::Plain(p) => p,
            _ => axum::http::Request::new(()).into_parts().0,
        };
        let h = HookRequest::new(parts, target.clone());
        *self = Head::Shared(h.clone());
        h
    }

    pub(crate) fn identity(&self) -> Option<Identity> {
        match self {
            Head::Plain(p) => p.extensions.get::<Identity>().cloned(),
            Head::Shared(h) => h.identity(),
            Head::Taken => None,
        }
    }

    pub(crate) fn extension<T: Clone + Send + Sync + 'static>(&self) -> Option<T> {
        match self {
            Head::Plain(p) => p.extensions.get::<T>().cloned(),
            Head::Shared(h) => h.extension::<T>(),
            Head::Taken => None,
        }
    }

    pub(crate) fn into_parts(self) -> request::Parts {
        match self {
            Head::Plain(p) => p,
            Head::Shared(h) => h.into_parts(),
            Head::Taken => axum::http::Request::new(()).into_parts().0,
        }
    }
}

/// What a panicking request filter means for the request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FailMode {
    /// Skip the hook and go on (authentication, pre_request).
    Open,
    /// Deny the request (authorization).
    Closed,
}

/// Runs a request-filter chain; `Err` is the response that ends the request early.
pub(crate) async fn run_request_filters(
    chain: &[Arc<HookEntry>],
    path: &str,
    head: &mut Head,
    target: &Arc<str>,
    mode: FailMode,
) -> Result<(), Response> {
    for e in chain {
        let HookFn::Request(f) = &e.f else { continue };
        if !e.placement.applies(path) {
            continue;
        }
        let req = head.shared(target);
        let cx = e.placement.cx.clone();
        match e.placement.measure(e.point.as_str(), async move { f(cx, req).await }).await {
            Ok(Ok(())) => {}
            Ok(Err(response)) => return Err(response),
            Err(_) if mode == FailMode::Closed => {
                let message = format!(
                    "the {} hook `{}` of extension `{}` failed; the request is denied",
                    e.point, e.placement.id, e.placement.owner
                );
                return Err(ApiError::internal(message).into_response());
            }
            Err(_) => {}
        }
    }
    Ok(())
}

/// Runs a response-filter chain; a filter that answers `Err(response)` replaces the response
/// and ends the chain.
pub(crate) async fn run_response_filters(
    chain: &[Arc<HookEntry>],
    path: &str,
    response: Response,
    info: &Arc<RequestInfo>,
) -> Response {
    if !chain.iter().any(|e| e.placement.applies(path)) {
        return response;
    }
    let (parts, body) = response.into_parts();
    let shared = HookResponse::new(parts, info.clone());
    for e in chain {
        let HookFn::Response(f) = &e.f else { continue };
        if !e.placement.applies(path) {
            continue;
        }
        let (cx, res) = (e.placement.cx.clone(), shared.clone());
        if let Ok(Err(replacement)) =
            e.placement.measure(e.point.as_str(), async move { f(cx, res).await }).await
        {
            return replacement;
        }
    }
    Response::from_parts(shared.into_parts(), body)
}

/// Starts the `post_response` actions (and the `error` actions when the request failed) in one
/// background task; each runs with [`ACTION_TIMEOUT`].
pub(crate) fn spawn_actions(chains: &Chains, path: &str, done: Completed) {
    let mut run: Vec<Arc<HookEntry>> = Vec::new();
    let failed = done.error.is_some();
    let points: &[HookPoint] =
        if failed { &[HookPoint::Error, HookPoint::PostResponse] } else { &[HookPoint::PostResponse] };
    for point in points {
        run.extend(chains.get(*point).iter().filter(|e| e.placement.applies(path)).cloned());
    }
    if run.is_empty() {
        return;
    }
    tokio::spawn(async move {
        // The actions start together, so one timer bounds them all; those unfinished at the
        // deadline are dropped and counted.
        let finished: Vec<AtomicBool> = run.iter().map(|_| AtomicBool::new(false)).collect();
        let all = futures::future::join_all(run.iter().zip(&finished).map(|(e, flag)| async {
            run_action(e, done.clone()).await;
            flag.store(true, Ordering::Relaxed);
        }));
        if tokio::time::timeout(ACTION_TIMEOUT, all).await.is_err() {
            for (e, _) in run.iter().zip(&finished).filter(|(_, flag)| !flag.load(Ordering::Relaxed)) {
                e.placement.count_timeout();
                tracing::warn!(extension = %e.placement.owner, hook = %e.placement.id, point = %e.point,
                    timeout_ms = ACTION_TIMEOUT.as_millis() as u64, "action timed out and was dropped");
            }
        }
    });
}

async fn run_action(e: &HookEntry, done: Completed) {
    let HookFn::Action(f) = &e.f else { return };
    let cx = e.placement.cx.clone();
    let _ = e.placement.measure(e.point.as_str(), async move { f(cx, done).await }).await;
}
