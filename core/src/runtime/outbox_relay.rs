//! The outbox relay: delivers the host's state-change events from `annex.event_outbox` (written
//! in the same transaction as each change, by any replica or the CLI). One task per host, woken by
//! `NOTIFY annex_events` and, as a safety net, every [`POLL_EVERY`]. Each pass:
//! - publishes the rows after this process's position on the in-process bus, as
//!   `Runtime::publish` did (source `host`, the same names and data): best effort, from the
//!   last row stored when the host started, like any bus event;
//! - hands the rows after each durable subscription's cursor (`annex.event_cursors`) to its
//!   handler, in id order, advancing the cursor in the transaction that holds it
//!   `for update skip locked`, so replicas share the work and never take the same rows twice,
//!   and a handler that failed (or a process that died) gets the rows again.
//!
//! See docs/reliability.md.

use std::sync::Weak;
use std::time::Duration;

use sqlx::postgres::PgListener;

use crate::db::outbox::{self, CHANNEL, OutboxRow};
use crate::extension::events::{DurableSubscription, Event, pattern_matches};
use crate::extension::panic;
use crate::runtime::lifecycle::Runtime;

/// A pass even without a notification (a lost connection, a handler that failed).
const POLL_EVERY: Duration = Duration::from_secs(1);
/// Wait before connecting again after the listener failed.
const RETRY_AFTER: Duration = Duration::from_secs(1);
/// Rows read per query.
const BATCH: i64 = 200;

fn event_of(row: OutboxRow) -> Event {
    Event::from_outbox(row.id, row.name, row.created_at, row.data)
}

/// Runs until the host is dropped (or the task aborted at shutdown). `published` is the last
/// outbox id stored before the extensions started: later rows go on the bus.
pub(crate) async fn run(host: Weak<Runtime>, mut published: i64) {
    loop {
        let Some(pool) = host.upgrade().map(|h| h.pool().clone()) else { return };
        let mut listener = match PgListener::connect_with(&pool).await {
            Ok(l) => Some(l),
            Err(e) => {
                tracing::warn!(error = %e, "outbox relay: cannot connect to LISTEN; polling");
                None
            }
        };
        if let Some(l) = listener.as_mut()
            && let Err(e) = l.listen(CHANNEL).await
        {
            tracing::warn!(error = %e, "outbox relay: cannot LISTEN; polling");
            listener = None;
        }
        drop(pool);
        loop {
            let Some(h) = host.upgrade() else { return };
            if let Err(e) = pass(&h, &mut published).await {
                tracing::warn!(error = %e, "outbox relay: pass failed; retrying");
            }
            drop(h);
            let Some(l) = listener.as_mut() else {
                tokio::time::sleep(RETRY_AFTER).await;
                break;
            };
            match tokio::time::timeout(POLL_EVERY, l.try_recv()).await {
                Err(_) | Ok(Ok(Some(_))) => {}
                Ok(Ok(None)) => break,
                Ok(Err(e)) => {
                    tracing::warn!(error = %e, "outbox relay: listener failed; reconnecting");
                    tokio::time::sleep(RETRY_AFTER).await;
                    break;
                }
            }
        }
    }
}

/// One pass: the bus, then every durable subscription whose extension runs here.
async fn pass(h: &Runtime, published: &mut i64) -> Result<(), sqlx::Error> {
    {
        let mut conn = h.pool().acquire().await?;
        loop {
            let rows = outbox::after(&mut conn, *published, BATCH).await?;
            let full = rows.len() as i64 == BATCH;
            for row in rows {
                *published = row.id;
                h.bus().publish(event_of(row));
            }
            if !full {
                break;
            }
        }
    }
    for sub in h.bus().durable() {
        if !sub.gate.is_open() {
            continue;
        }
        while consume(h, &sub).await? {}
    }
    for (consumer, events) in outbox::backlog(h.pool()).await? {
        h.metrics().set_outbox_backlog(&consumer, events);
    }
    Ok(())
}

/// Delivers the next batch after `sub`'s cursor; true when a full batch was handled (more may
/// follow). Nothing when another replica holds the cursor.
async fn consume(h: &Runtime, sub: &DurableSubscription) -> Result<bool, sqlx::Error> {
    let consumer = sub.consumer();
    outbox::ensure_cursor(h.pool(), &consumer).await?;
    let mut tx = h.pool().begin().await?;
    let Some(start) = outbox::lock_cursor(&mut tx, &consumer).await? else { return Ok(false) };
    let rows = outbox::after(&mut tx, start, BATCH).await?;
    let full = rows.len() as i64 == BATCH;
    let mut last = start;
    let mut complete = true;
    for row in rows {
        if !sub.gate.is_open() {
            complete = false;
            break;
        }
        let id = row.id;
        if pattern_matches(&sub.pattern, &row.name) {
            let name = row.name.clone();
            let outcome = match panic::catch((sub.deliver)(event_of(row))).await {
                Ok(outcome) => outcome,
                Err(message) => Err(format!("the handler panicked: {message}")),
            };
            if let Err(reason) = outcome {
                tracing::warn!(extension = %sub.extension, event = %name, outbox_id = id, %reason,
                    "durable event handler failed; the event is delivered again later");
                complete = false;
                break;
            }
        }
        last = id;
    }
    if last != start {
        outbox::advance_cursor(&mut tx, &consumer, last).await?;
    }
    tx.commit().await?;
    Ok(full && complete)
}
