//! The delivery worker: claims due deliveries, sends them signed, records every attempt.
//! One per running extension (per replica); replicas share the queue through the database.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use annex_core::{Context, permission};
use reqwest::header::{CONTENT_TYPE, HeaderMap, HeaderValue, USER_AGENT};
use tokio::sync::{Notify, oneshot, watch};

use crate::queue::{self, Claimed, Outcome};
use crate::settings::Settings;
use crate::signature::{DELIVERY_HEADER, EVENT_HEADER, SIGNATURE_HEADER, signature};
use crate::target::{self, GuardedResolver};

/// Deliveries one worker sends at once.
const BATCH: i64 = 16;
/// How often the worker reports its backlog (`extension_gauge{extension="webhooks"}`).
const REPORT_EVERY: Duration = Duration::from_secs(1);

/// What the extension shares between its event handler, its handlers and its worker.
#[derive(Debug, Default)]
pub(crate) struct Shared {
    /// Wakes the worker when this replica enqueued something.
    pub(crate) wake: Notify,
    /// Read by the HTTP client's resolver; follows the config.
    resolver: Arc<GuardedResolver>,
    running: std::sync::Mutex<Option<Running>>,
}

#[derive(Debug)]
struct Running {
    worker: String,
    stop: watch::Sender<bool>,
    done: oneshot::Receiver<()>,
}

impl Shared {
    /// Starts the worker as a task of the extension.
    pub(crate) fn start(
        self: &Arc<Self>,
        cx: &Context,
    ) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
        cx.require_permission(permission::HTTP_OUTBOUND)?;
        let client = reqwest::Client::builder()
            .no_proxy()
            .redirect(reqwest::redirect::Policy::none())
            .dns_resolver(self.resolver.clone())
            .build()?;
        let worker = format!("{}-{}", hostname(), uuid::Uuid::new_v4().simple());
        let (stop_tx, stop_rx) = watch::channel(false);
        let (done_tx, done_rx) = oneshot::channel();
        let task = run(cx.clone(), self.clone(), client, worker.clone(), stop_rx, done_tx);
        cx.spawn(task)?;
        let mut running = self.running.lock().unwrap_or_else(|p| p.into_inner());
        *running = Some(Running { worker, stop: stop_tx, done: done_rx });
        Ok(())
    }

    /// Lets the worker finish the attempts in flight (up to `grace`), then hands back whatever
    /// it still holds so another replica takes it over at once.
    pub(crate) async fn stop(&self, cx: &Context, grace: Duration) {
        let running = self.running.lock().unwrap_or_else(|p| p.into_inner()).take();
        let Some(running) = running else { return };
        let _ = running.stop.send(true);
        let _ = tokio::time::timeout(grace, running.done).await;
        if let Ok(db) = cx.db() {
            match queue::release(db, &running.worker).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(released = n, "webhooks: handed back deliveries in flight"),
                Err(e) => {
                    tracing::warn!(error = %e, "webhooks: could not release leases; they expire on their own")
                }
            }
        }
    }
}

async fn run(
    cx: Context,
    shared: Arc<Shared>,
    client: reqwest::Client,
    worker: String,
    mut stop: watch::Receiver<bool>,
    done: oneshot::Sender<()>,
) {
    tracing::info!(worker = %worker, "webhooks: delivery worker started");
    let mut reported: Option<Instant> = None;
    while !*stop.borrow() {
        if reported.is_none_or(|at| at.elapsed() >= REPORT_EVERY) {
            reported = Some(Instant::now());
            report_backlog(&cx).await;
        }
        let settings = Settings::load(&cx);
        shared.resolver.allow_private.store(settings.allow_private_targets, Ordering::Relaxed);
        let claimed = match cx.db() {
            Ok(db) => queue::claim(db, &worker, BATCH, settings.lease()).await,
            Err(e) => {
                tracing::error!(error = %e, "webhooks: no database; the worker stops");
                break;
            }
        };
        match claimed {
            Ok(batch) if !batch.is_empty() => {
                let sends = batch.iter().map(|d| deliver(&cx, &client, &settings, &worker, d));
                futures::future::join_all(sends).await;
                continue;
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "webhooks: could not claim deliveries; retrying"),
        }
        tokio::select! {
            () = shared.wake.notified() => {}
            () = tokio::time::sleep(settings.poll_interval()) => {}
            _ = stop.changed() => {}
        }
    }
    let _ = done.send(());
}

/// Sets the gauges `deliveries_pending` and `oldest_pending_seconds`, which the webhook-backlog
/// alert (docs/prometheus/annex-rules.yml) watches.
async fn report_backlog(cx: &Context) {
    let Ok(db) = cx.db() else { return };
    match queue::backlog(db).await {
        Ok((pending, oldest)) => {
            for (name, value) in [("deliveries_pending", pending as f64), ("oldest_pending_seconds", oldest)]
            {
                if let Err(e) = cx.set_gauge(name, value) {
                    tracing::warn!(error = %e, "webhooks: could not report the backlog");
                }
            }
        }
        Err(e) => tracing::debug!(error = %e, "webhooks: could not count the backlog"),
    }
}

/// One attempt of one delivery, recorded whatever happens.
async fn deliver(cx: &Context, client: &reqwest::Client, settings: &Settings, worker: &str, d: &Claimed) {
    let Ok(db) = cx.db() else { return };
    if i64::from(d.attempts) > i64::from(settings.max_attempts) {
        if let Err(e) = queue::give_up(db, worker, d).await {
            tracing::warn!(delivery = %d.id, error = %e, "webhooks: could not mark a delivery failed");
        }
        return;
    }
    let outcome = attempt(cx, client, settings, d).await;
    let retry_in = settings.backoff(u32::try_from(d.attempts).unwrap_or(1));
    match queue::record(db, worker, d, &outcome, settings.max_attempts, retry_in).await {
        Ok(status) => tracing::debug!(delivery = %d.id, attempt = d.attempts, status, error = ?outcome.error,
            "webhooks: attempt recorded"),
        Err(e) => tracing::warn!(delivery = %d.id, error = %e,
            "webhooks: could not record an attempt; the lease expires and it is retried"),
    }
}

async fn attempt(cx: &Context, client: &reqwest::Client, settings: &Settings, d: &Claimed) -> Outcome {
    let started = Instant::now();
    let failed = |error: String, status_code: Option<u16>| Outcome {
        duration: started.elapsed(),
        status_code,
        error: Some(error),
    };
    if let Err(e) = cx.require_permission(permission::HTTP_OUTBOUND) {
        return failed(e.to_string(), None);
    }
    let url = match target::parse(&d.url) {
        Ok(url) => url,
        Err(e) => return failed(e.to_string(), None),
    };
    if let Err(e) = target::vet(&url, settings.allow_private_targets).await {
        return failed(e.to_string(), None);
    }
    let mut headers = HeaderMap::new();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    headers
        .insert(USER_AGENT, HeaderValue::from_static(concat!("annex-webhooks/", env!("CARGO_PKG_VERSION"))));
    for (name, value) in [
        (SIGNATURE_HEADER, signature(d.secret.as_bytes(), d.payload.as_bytes())),
        (EVENT_HEADER, d.event.clone()),
        (DELIVERY_HEADER, d.id.clone()),
    ] {
        match HeaderValue::try_from(value) {
            Ok(v) => {
                headers.insert(name, v);
            }
            Err(_) => return failed(format!("header {name} has a value HTTP cannot carry"), None),
        }
    }
    let sent =
        client.post(url).headers(headers).body(d.payload.clone()).timeout(settings.timeout()).send().await;
    match sent {
        Ok(res) if res.status().is_success() => {
            Outcome { duration: started.elapsed(), status_code: Some(res.status().as_u16()), error: None }
        }
        Ok(res) => {
            let status = res.status();
            failed(
                format!("the receiver answered {status}; only 2xx counts as delivered"),
                Some(status.as_u16()),
            )
        }
        Err(e) if e.is_timeout() => {
            failed(format!("no response within timeout_ms = {}", settings.timeout_ms), None)
        }
        Err(e) => failed(error_chain(&e), None),
    }
}

/// `e` and its causes, so "error sending request" says why.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        out.push_str(": ");
        out.push_str(&cause.to_string());
        source = cause.source();
    }
    out
}

fn hostname() -> String {
    std::env::var("HOSTNAME").ok().filter(|h| !h.is_empty()).unwrap_or_else(|| "annex".into())
}
