//! The hook chains: sorted once at startup, narrowed per extension, run per request.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use futures::StreamExt;
use futures::stream::FuturesUnordered;
use tokio::sync::mpsc;

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
    actions: Arc<ActionQueue>,
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
        Self { chains, actions: Arc::default() }
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
        Chains { by_point, needs_info, actions: self.actions.clone() }
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
    /// Where this host's actions are queued.
    actions: Arc<ActionQueue>,
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
    // One clock read per hook call: each call's end is the next one's start.
    let mut since = None;
    for e in chain {
        let HookFn::Request(f) = &e.f else { continue };
        if !e.placement.applies(path) {
            continue;
        }
        let req = head.shared(target);
        let cx = e.placement.cx.clone();
        let start = *since.get_or_insert_with(Instant::now);
        let (out, ended) =
            e.placement.measure_since(e.point.as_str(), start, async move { f(cx, req).await }).await;
        since = Some(ended);
        match out {
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
    let mut since = Instant::now();
    for e in chain {
        let HookFn::Response(f) = &e.f else { continue };
        if !e.placement.applies(path) {
            continue;
        }
        let (cx, res) = (e.placement.cx.clone(), shared.clone());
        let (out, ended) =
            e.placement.measure_since(e.point.as_str(), since, async move { f(cx, res).await }).await;
        since = ended;
        if let Ok(Err(replacement)) = out {
            return replacement;
        }
    }
    Response::from_parts(shared.into_parts(), body)
}

/// Queues the `post_response` actions (and the `error` actions when the request failed) for
/// the host's action worker; they run together, bounded by [`ACTION_TIMEOUT`].
pub(crate) fn spawn_actions(chains: &Chains, path: &str, done: Completed) {
    let failed = done.error.is_some();
    let points: &[HookPoint] =
        if failed { &[HookPoint::Error, HookPoint::PostResponse] } else { &[HookPoint::PostResponse] };
    let applies = |point: &HookPoint| chains.get(*point).iter().any(|e| e.placement.applies(path));
    if !points.iter().any(applies) {
        return;
    }
    let mut run: Vec<Arc<HookEntry>> = Vec::new();
    for point in points {
        run.extend(chains.get(*point).iter().filter(|e| e.placement.applies(path)).cloned());
    }
    chains.actions.submit(ActionJob { run, done });
}

/// The actions of one finished request.
struct ActionJob {
    run: Vec<Arc<HookEntry>>,
    done: Completed,
}

/// Jobs waiting for the worker, at most; more are dropped and counted (as action timeouts).
pub(crate) const ACTION_QUEUE: usize = 8192;
/// Jobs the worker runs at once, at most; the queue waits while that many are running.
const ACTIONS_RUNNING: usize = 1024;

/// One long-lived task per host that runs every request's actions, fed by a bounded channel:
/// no `tokio::spawn` per request. Started on first use, inside the runtime serving requests.
#[derive(Debug, Default)]
pub(crate) struct ActionQueue {
    tx: OnceLock<mpsc::Sender<ActionJob>>,
    dropped: AtomicU64,
}

impl ActionQueue {
    fn submit(&self, job: ActionJob) {
        let tx = self.tx.get_or_init(|| {
            let (tx, rx) = mpsc::channel(ACTION_QUEUE);
            tokio::spawn(action_worker(rx));
            tx
        });
        if let Err(e) = tx.try_send(job) {
            let job = match e {
                mpsc::error::TrySendError::Full(job) | mpsc::error::TrySendError::Closed(job) => job,
            };
            for e in &job.run {
                e.placement.count_timeout();
            }
            let dropped = self.dropped.fetch_add(1, Ordering::Relaxed) + 1;
            if dropped == 1 || dropped.is_multiple_of(1000) {
                tracing::warn!(
                    dropped,
                    queue = ACTION_QUEUE,
                    "the action queue is full: a request's post_response/error actions were dropped"
                );
            }
        }
    }
}

async fn action_worker(mut rx: mpsc::Receiver<ActionJob>) {
    let mut running = FuturesUnordered::new();
    loop {
        tokio::select! {
            job = rx.recv(), if running.len() < ACTIONS_RUNNING => match job {
                Some(job) => running.push(run_job(job)),
                None => break,
            },
            Some(()) = running.next(), if !running.is_empty() => {}
        }
    }
    while running.next().await.is_some() {}
}

async fn run_job(job: ActionJob) {
    let ActionJob { run, done } = job;
    // The actions start together, so one timer bounds them all; those unfinished at the
    // deadline are dropped and counted.
    let finished: Vec<AtomicBool> = run.iter().map(|_| AtomicBool::new(false)).collect();
    let all = futures::future::join_all(run.iter().zip(&finished).map(|(e, flag)| {
        let done = done.clone();
        async move {
            run_action(e, done).await;
            flag.store(true, Ordering::Relaxed);
        }
    }));
    if tokio::time::timeout(ACTION_TIMEOUT, all).await.is_err() {
        for (e, _) in run.iter().zip(&finished).filter(|(_, flag)| !flag.load(Ordering::Relaxed)) {
            e.placement.count_timeout();
            tracing::warn!(extension = %e.placement.owner, hook = %e.placement.id, point = %e.point,
                timeout_ms = ACTION_TIMEOUT.as_millis() as u64, "action timed out and was dropped");
        }
    }
}

async fn run_action(e: &HookEntry, done: Completed) {
    let HookFn::Action(f) = &e.f else { return };
    let cx = e.placement.cx.clone();
    let _ = e.placement.measure(e.point.as_str(), async move { f(cx, done).await }).await;
}
