//! The page-view recorder: the `post_response` hook pushes into a bounded in-memory buffer
//! without waiting for anything, and one background task writes the buffer to the database in
//! batches. A slow or failing database therefore never reaches the request path: at worst the
//! buffer fills and further views are dropped and counted.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use annex_core::hooks::Completed;
use arc_swap::ArcSwap;
use serde::Serialize;
use tokio::sync::{Notify, oneshot};

use crate::agent::classify;
use crate::settings::Settings;

/// How long `stop()` waits for the flusher's last write.
const STOP_WAIT: Duration = Duration::from_secs(5);
/// Referrers are cut to this many bytes.
const MAX_REFERRER: usize = 512;

/// One finished request, as it will be stored.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct PageView {
    pub(crate) at: f64,
    pub(crate) extension: String,
    pub(crate) route: String,
    pub(crate) method: String,
    pub(crate) status: i16,
    pub(crate) duration_us: i64,
    pub(crate) referrer: Option<String>,
    pub(crate) agent: &'static str,
    pub(crate) identity: Option<String>,
}

impl PageView {
    fn from_completed(done: &Completed) -> Self {
        let req = &done.request;
        let header =
            |v: &Option<axum::http::HeaderValue>| v.as_ref().and_then(|v| v.to_str().ok()).map(str::to_owned);
        Self {
            at: SystemTime::now().duration_since(UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64()),
            extension: req.extension.to_string(),
            route: req.route.to_string(),
            method: req.method.as_str().to_owned(),
            status: i16::try_from(done.status.as_u16()).unwrap_or(i16::MAX),
            duration_us: i64::try_from(done.elapsed.as_micros()).unwrap_or(i64::MAX),
            referrer: header(&req.referer).as_deref().and_then(clean_referrer),
            agent: classify(header(&req.user_agent).as_deref().unwrap_or("")).as_str(),
            identity: req.identity.as_ref().map(|i| i.id().to_owned()),
        }
    }
}

/// Keeps `scheme://host/path` of a referrer: query strings and fragments often carry tokens.
pub(crate) fn clean_referrer(raw: &str) -> Option<String> {
    let end = raw.find(['?', '#']).unwrap_or(raw.len());
    let mut kept = raw[..end].trim();
    if kept.is_empty() {
        return None;
    }
    if kept.len() > MAX_REFERRER {
        let mut cut = MAX_REFERRER;
        while !kept.is_char_boundary(cut) {
            cut -= 1;
        }
        kept = &kept[..cut];
    }
    Some(kept.to_owned())
}

/// What [`Recorder::record`] did with a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Recorded {
    /// Buffered for the next write.
    Queued,
    /// Its path is excluded by config.
    Excluded,
    /// The buffer was full: dropped and counted.
    Dropped,
}

/// The recorder's figures since start, reported by `/stats` and `health()`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct RecorderFigures {
    /// Page views waiting in the buffer.
    pub buffered: u64,
    /// Page views written.
    pub inserted: u64,
    /// Page views dropped because the buffer was full.
    pub dropped: u64,
    /// Page views lost because their batch insert failed.
    pub failed: u64,
}

/// The flusher task of one run: how to ask it to stop, and how to learn that it did.
#[derive(Debug)]
struct Running {
    stop: oneshot::Sender<()>,
    done: oneshot::Receiver<()>,
}

/// The buffer, its settings and its figures; shared by the hook, the flusher and the handlers.
#[derive(Debug)]
pub(crate) struct Recorder {
    settings: ArcSwap<Settings>,
    buffer: Mutex<Vec<PageView>>,
    wake: Notify,
    inserted: AtomicU64,
    dropped: AtomicU64,
    failed: AtomicU64,
    last_write_failed: AtomicBool,
    running: Mutex<Option<Running>>,
}

impl Default for Recorder {
    fn default() -> Self {
        Self::new(Settings::default())
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Recorder {
    pub(crate) fn new(settings: Settings) -> Self {
        Self {
            settings: ArcSwap::from_pointee(settings),
            buffer: Mutex::new(Vec::new()),
            wake: Notify::new(),
            inserted: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            last_write_failed: AtomicBool::new(false),
            running: Mutex::new(None),
        }
    }

    pub(crate) fn set_settings(&self, settings: Settings) {
        self.settings.store(Arc::new(settings));
        // A smaller batch size or interval takes effect now, not after the old interval.
        self.wake.notify_one();
    }

    /// The hook's whole job. Synchronous on purpose: it takes one short lock, never awaits and
    /// never touches the database, so nothing downstream can slow the request path.
    pub(crate) fn record(&self, done: &Completed) -> Recorded {
        let settings = self.settings.load();
        if settings.excludes(done.request.uri.path()) {
            return Recorded::Excluded;
        }
        self.push(PageView::from_completed(done), &settings)
    }

    fn push(&self, view: PageView, settings: &Settings) -> Recorded {
        let len = {
            let mut buffer = lock(&self.buffer);
            if buffer.len() >= settings.buffer_capacity {
                drop(buffer);
                self.dropped.fetch_add(1, Ordering::Relaxed);
                return Recorded::Dropped;
            }
            buffer.push(view);
            buffer.len()
        };
        if len == settings.batch_size {
            self.wake.notify_one();
        }
        Recorded::Queued
    }

    pub(crate) fn figures(&self) -> RecorderFigures {
        RecorderFigures {
            buffered: lock(&self.buffer).len() as u64,
            inserted: self.inserted.load(Ordering::Relaxed),
            dropped: self.dropped.load(Ordering::Relaxed),
            failed: self.failed.load(Ordering::Relaxed),
        }
    }

    pub(crate) fn last_write_failed(&self) -> bool {
        self.last_write_failed.load(Ordering::Relaxed)
    }

    /// Takes up to `max` buffered views, oldest first.
    fn take(&self, max: usize) -> Vec<PageView> {
        let mut buffer = lock(&self.buffer);
        let n = buffer.len().min(max.max(1));
        buffer.drain(..n).collect()
    }

    /// Writes everything buffered, one multi-row INSERT per `batch_size` views. A failed batch
    /// is counted and logged, not retried: holding it would let a broken database grow the
    /// buffer without bound.
    pub(crate) async fn flush(&self, pool: &sqlx::PgPool) {
        loop {
            let batch = self.take(self.settings.load().batch_size);
            if batch.is_empty() {
                return;
            }
            let n = batch.len() as u64;
            match insert(pool, &batch).await {
                Ok(()) => {
                    self.inserted.fetch_add(n, Ordering::Relaxed);
                    self.last_write_failed.store(false, Ordering::Relaxed);
                }
                Err(error) => {
                    self.failed.fetch_add(n, Ordering::Relaxed);
                    self.last_write_failed.store(true, Ordering::Relaxed);
                    tracing::warn!(%error, views = n, "analytics: could not write page views; they are lost");
                }
            }
        }
    }

    /// Registers the flusher of a new run and returns its end of the stop signal.
    pub(crate) fn begin(&self) -> (oneshot::Receiver<()>, oneshot::Sender<()>) {
        let (stop_tx, stop_rx) = oneshot::channel();
        let (done_tx, done_rx) = oneshot::channel();
        *lock(&self.running) = Some(Running { stop: stop_tx, done: done_rx });
        (stop_rx, done_tx)
    }

    /// The flusher: writes every `flush_interval_ms`, or as soon as `batch_size` views wait,
    /// and once more when asked to stop.
    pub(crate) async fn run(
        self: Arc<Self>,
        pool: sqlx::PgPool,
        mut stop: oneshot::Receiver<()>,
        done: oneshot::Sender<()>,
    ) {
        loop {
            let interval = self.settings.load().flush_interval();
            let stopping = tokio::select! {
                _ = tokio::time::sleep(interval) => false,
                _ = self.wake.notified() => false,
                _ = &mut stop => true,
            };
            self.flush(&pool).await;
            if stopping {
                let _ = done.send(());
                return;
            }
        }
    }

    /// Stops the flusher, waits (bounded) for its last write, then writes what arrived since.
    pub(crate) async fn shutdown(&self, pool: &sqlx::PgPool) {
        let running = lock(&self.running).take();
        if let Some(Running { stop, done }) = running {
            let _ = stop.send(());
            if tokio::time::timeout(STOP_WAIT, done).await.is_err() {
                tracing::warn!("analytics: the flusher did not finish its last write in time");
            }
        }
        self.flush(pool).await;
    }
}

async fn insert(pool: &sqlx::PgPool, batch: &[PageView]) -> Result<(), sqlx::Error> {
    let mut at = Vec::with_capacity(batch.len());
    let mut extension = Vec::with_capacity(batch.len());
    let mut route = Vec::with_capacity(batch.len());
    let mut method = Vec::with_capacity(batch.len());
    let mut status = Vec::with_capacity(batch.len());
    let mut duration = Vec::with_capacity(batch.len());
    let mut referrer = Vec::with_capacity(batch.len());
    let mut agent = Vec::with_capacity(batch.len());
    let mut identity = Vec::with_capacity(batch.len());
    for v in batch {
        at.push(v.at);
        extension.push(v.extension.as_str());
        route.push(v.route.as_str());
        method.push(v.method.as_str());
        status.push(v.status);
        duration.push(v.duration_us);
        referrer.push(v.referrer.as_deref());
        agent.push(v.agent);
        identity.push(v.identity.as_deref());
    }
    // One statement with nine array parameters, whatever the batch size.
    sqlx::query(
        r"insert into page_views
              (occurred_at, extension, route, method, status, duration_us, referrer, agent, identity)
          select to_timestamp(t.at), t.extension, t.route, t.method, t.status, t.duration_us,
                 t.referrer, t.agent, t.identity
          from unnest($1::float8[], $2::text[], $3::text[], $4::text[], $5::int2[], $6::int8[],
                      $7::text[], $8::text[], $9::text[])
               as t(at, extension, route, method, status, duration_us, referrer, agent, identity)",
    )
    .bind(at)
    .bind(extension)
    .bind(route)
    .bind(method)
    .bind(status)
    .bind(duration)
    .bind(referrer)
    .bind(agent)
    .bind(identity)
    .execute(pool)
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view() -> PageView {
        PageView {
            at: 0.0,
            extension: "shop".into(),
            route: "/ext/shop/items/{id}".into(),
            method: "GET".into(),
            status: 200,
            duration_us: 10,
            referrer: None,
            agent: "other",
            identity: None,
        }
    }

    #[test]
    fn a_full_buffer_drops_and_counts_instead_of_waiting() {
        let settings = Settings { buffer_capacity: 3, ..Settings::default() };
        let recorder = Recorder::new(settings.clone());
        let outcomes: Vec<Recorded> = (0..5).map(|_| recorder.push(view(), &settings)).collect();
        assert_eq!(outcomes[..3], [Recorded::Queued; 3]);
        assert_eq!(outcomes[3..], [Recorded::Dropped; 2]);
        let figures = recorder.figures();
        assert_eq!((figures.buffered, figures.dropped), (3, 2));
    }

    #[test]
    fn taking_a_batch_leaves_the_rest_in_order() {
        let settings = Settings::default();
        let recorder = Recorder::new(settings.clone());
        for status in 200..205 {
            recorder.push(PageView { status, ..view() }, &settings);
        }
        let first: Vec<i16> = recorder.take(2).iter().map(|v| v.status).collect();
        assert_eq!(first, [200, 201]);
        assert_eq!(recorder.figures().buffered, 3);
    }

    #[test]
    fn referrers_lose_their_query_and_fragment() {
        assert_eq!(clean_referrer("https://a.example/p?token=x#f").as_deref(), Some("https://a.example/p"));
        assert_eq!(clean_referrer("?only=query"), None);
        assert_eq!(clean_referrer(&"x".repeat(2000)).map(|r| r.len()), Some(MAX_REFERRER));
    }
}
