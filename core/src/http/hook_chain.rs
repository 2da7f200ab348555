//! The hook chains: sorted once at startup, narrowed per extension, run per request.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use axum::http::request;
use axum::response::{IntoResponse, Response};
use tracing::Instrument;

use super::{
    Completed, Hook, HookFn, HookInfo, HookPoint, HookRequest, HookResponse, HookSpec, Identity, RequestInfo,
    Scope,
};
use crate::api_error::ApiError;
use crate::context::Context;
use crate::gate::Slot;
use crate::panic;
use crate::stats::Counters;

/// How long an action (`post_response`, `error`) may run before it is dropped.
pub(crate) const ACTION_TIMEOUT: Duration = Duration::from_secs(5);

/// A hook's prefix (normalised; `None` = every extension route) and whether it reaches beyond
/// the owner's own `/ext/<owner>` (which needs `hooks:global`).
pub(crate) fn resolve(hook: &Hook, owner: &str) -> (Option<Arc<str>>, bool) {
    let own_root = format!("/ext/{owner}");
    let prefix: Option<Arc<str>> = match &hook.scope {
        Scope::Global => None,
        Scope::Own => Some(own_root.as_str().into()),
        Scope::Prefix(p) => {
            let trimmed = p.trim_end_matches('/');
            (!trimmed.is_empty()).then(|| trimmed.into())
        }
    };
    let global = prefix.as_deref().is_none_or(|p| !path_has_prefix(p, &own_root));
    (prefix, global)
}

/// Whether `path` lies under `prefix`, by whole segments (`/ext/a` covers `/ext/a/x`, not
/// `/ext/ab`). `prefix` has no trailing slash, except `/` itself.
pub(crate) fn path_has_prefix(path: &str, prefix: &str) -> bool {
    prefix == "/"
        || (path.starts_with(prefix) && matches!(path.as_bytes().get(prefix.len()), None | Some(b'/')))
}

#[derive(Debug, Default)]
struct Figures {
    calls: AtomicU64,
    panics: AtomicU64,
    timeouts: AtomicU64,
    nanos: AtomicU64,
}

/// Who registered a hook or middleware, where it applies and how it has fared.
#[derive(Debug)]
pub(crate) struct Placement {
    pub(crate) owner: Arc<str>,
    pub(crate) id: Arc<str>,
    pub(crate) priority: i32,
    /// `None`: every extension route.
    pub(crate) prefix: Option<Arc<str>>,
    pub(crate) cx: Context,
    slot: Arc<Slot>,
    figures: Figures,
    /// Prometheus handles, attached once the host's metrics exist.
    prom: std::sync::OnceLock<crate::metrics::HookHandles>,
}

impl Placement {
    pub(crate) fn new(cx: Context, slot: Arc<Slot>, hook: &Hook) -> Self {
        let owner: Arc<str> = cx.name().into();
        let (prefix, _) = resolve(hook, &owner);
        Self {
            owner,
            id: hook.id.as_str().into(),
            priority: hook.priority,
            prefix,
            cx,
            slot,
            figures: Figures::default(),
            prom: std::sync::OnceLock::new(),
        }
    }

    /// The deterministic order: priority, then extension name, then id.
    pub(crate) fn order(a: &Placement, b: &Placement) -> std::cmp::Ordering {
        (a.priority, &*a.owner, &*a.id).cmp(&(b.priority, &*b.owner, &*b.id))
    }

    /// Resolves this hook's metric handles (`hook` label `<point>:<id>`).
    pub(crate) fn attach_metrics(&self, metrics: &crate::metrics::Metrics, point: &str) {
        let _ = self.prom.set(metrics.hook_handles(&self.owner, &format!("{point}:{}", self.id)));
    }

    /// Whether it runs for `path` now: one atomic load for the owner's gate, one prefix test.
    #[inline]
    pub(crate) fn applies(&self, path: &str) -> bool {
        self.slot.is_open() && self.prefix.as_deref().is_none_or(|p| path_has_prefix(path, p))
    }

    /// Whether it can ever apply to a route of `extension` (to narrow chains at startup).
    pub(crate) fn relevant_to(&self, extension: &str) -> bool {
        let Some(prefix) = self.prefix.as_deref() else { return true };
        let root = format!("/ext/{extension}");
        path_has_prefix(&root, prefix) || path_has_prefix(prefix, &root)
    }

    /// Runs one call inside the owner's span, catching a panic (counted for the owner) and
    /// measuring it.
    pub(crate) async fn measure<F: Future>(&self, what: &str, fut: F) -> Result<F::Output, String> {
        let started = Instant::now();
        let out = panic::catch(fut).instrument(self.cx.span().clone()).await;
        let nanos = u64::try_from(started.elapsed().as_nanos()).unwrap_or(u64::MAX);
        self.figures.calls.fetch_add(1, Ordering::Relaxed);
        self.figures.nanos.fetch_add(nanos, Ordering::Relaxed);
        if let Some(prom) = self.prom.get() {
            prom.record(Duration::from_nanos(nanos), out.is_err());
        }
        if let Err(message) = &out {
            self.figures.panics.fetch_add(1, Ordering::Relaxed);
            Counters::bump(&self.cx.counters().hook_panics);
            tracing::error!(extension = %self.owner, hook = %self.id, point = what, panic = %message, "hook panicked");
        }
        out
    }

    pub(crate) fn info(&self, point: &str) -> HookInfo {
        HookInfo {
            extension: self.owner.to_string(),
            point: point.to_owned(),
            id: self.id.to_string(),
            priority: self.priority,
            prefix: self.prefix.as_deref().map(str::to_owned),
            calls: self.figures.calls.load(Ordering::Relaxed),
            panics: self.figures.panics.load(Ordering::Relaxed),
            timeouts: self.figures.timeouts.load(Ordering::Relaxed),
            total_time: Duration::from_nanos(self.figures.nanos.load(Ordering::Relaxed)),
        }
    }
}

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
    pub(crate) fn attach_metrics(&self, metrics: &crate::metrics::Metrics) {
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
                e.placement.figures.timeouts.fetch_add(1, Ordering::Relaxed);
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

#[cfg(test)]
mod tests {
    use super::path_has_prefix;

    #[test]
    fn prefixes_match_whole_segments() {
        assert!(path_has_prefix("/ext/a", "/ext/a"));
        assert!(path_has_prefix("/ext/a/x", "/ext/a"));
        assert!(!path_has_prefix("/ext/ab", "/ext/a"));
        assert!(path_has_prefix("/ext/ab", "/"));
        assert!(!path_has_prefix("/ext", "/ext/a"));
    }
}
