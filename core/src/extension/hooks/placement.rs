//! Where a hook or middleware runs and how it has fared: its owner, id, priority, prefix, the
//! owner's gate, and its figures. Shared by hook chains and middleware.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use super::{Hook, HookInfo, Scope};
use crate::extension::context::Context;
use crate::extension::gate::Slot;
use crate::extension::panic;
use crate::limits::meter::{Throttle, metered};
use crate::observe::stats::Counters;

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
    prom: std::sync::OnceLock<crate::observe::metrics::HookHandles>,
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
    pub(crate) fn attach_metrics(&self, metrics: &crate::observe::metrics::Metrics, point: &str) {
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
        self.measure_since(what, Instant::now(), fut).await.0
    }

    /// [`Placement::measure`] with the clock read the caller already made (the end of the
    /// previous hook of a chain, or the chain's start): one clock read per hook call. Returns the
    /// time the call ended, the next call's start. The owner's span is entered on each poll only
    /// when it is enabled (a subscriber wants its level), and never cloned.
    pub(crate) async fn measure_since<F: Future>(
        &self,
        what: &str,
        since: Instant,
        fut: F,
    ) -> (Result<F::Output, String>, Instant) {
        let span = self.cx.span();
        // Charged to the owner (busy time, allocations, CPU budget), never delayed: it runs
        // inside another extension's request.
        let busy = &self.cx.counters().busy_nanos;
        let caught = metered(busy, self.cx.limits(), Throttle::Never, panic::catch(fut));
        let out = if span.is_disabled() { caught.await } else { in_span(span, caught).await };
        let ended = Instant::now();
        let nanos = u64::try_from(ended.saturating_duration_since(since).as_nanos()).unwrap_or(u64::MAX);
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
        (out, ended)
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

    /// Counts an action call cut off by the action timeout.
    pub(crate) fn count_timeout(&self) {
        self.figures.timeouts.fetch_add(1, Ordering::Relaxed);
    }
}

/// Polls `fut` with `span` entered, borrowing the span (no clone, no `Instrumented` wrapper).
async fn in_span<F: Future>(span: &tracing::Span, fut: F) -> F::Output {
    let mut fut = std::pin::pin!(fut);
    std::future::poll_fn(|cx| {
        let _entered = span.enter();
        fut.as_mut().poll(cx)
    })
    .await
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
