//! The durable delivery queue in the extension's own schema: enqueueing, claiming with
//! `FOR UPDATE SKIP LOCKED` under a lease, recording attempts, releasing leases on stop.
//!
//! A delivery is `pending` until a worker claims it (`delivering`, leased to that worker until
//! `lease_until`); the attempt's outcome makes it `succeeded`, `failed` (attempts exhausted) or
//! `pending` again with a later `next_attempt_at`. A lease that runs out (its worker died) makes
//! the row claimable again, so a crashed replica's deliveries are retried by the others.

use std::time::Duration;

use annex_core::{Event, extension::pattern_matches};
use sqlx::PgPool;

/// A claimed delivery, with what is needed to send it.
#[derive(Debug)]
pub(crate) struct Claimed {
    pub(crate) id: String,
    pub(crate) event: String,
    pub(crate) payload: String,
    /// The number of this attempt (1-based).
    pub(crate) attempts: i32,
    pub(crate) url: String,
    pub(crate) secret: String,
}

/// One attempt's outcome.
#[derive(Debug)]
pub(crate) struct Outcome {
    pub(crate) duration: Duration,
    pub(crate) status_code: Option<u16>,
    /// `None` on success.
    pub(crate) error: Option<String>,
}

/// The body sent for `event`: `{id, event, occurred_at, data}`.
pub(crate) fn payload(event: &Event) -> String {
    serde_json::json!({
        "id": event.id,
        "event": event.name,
        "occurred_at": event.occurred_at,
        "data": event.data,
    })
    .to_string()
}

/// Enqueues one delivery of `event` per active subscription with a matching pattern; returns
/// how many were new. The delivery id is [`delivery_id`] of (event, subscription), so enqueueing
/// the same event again (a redelivered outbox event, a second replica) adds nothing.
pub(crate) async fn enqueue(db: &PgPool, event: &Event) -> Result<usize, sqlx::Error> {
    let subscriptions: Vec<(i64, Vec<String>)> =
        sqlx::query_as("select id, events from subscriptions where active").fetch_all(db).await?;
    let matching: Vec<i64> = subscriptions
        .into_iter()
        .filter(|(_, patterns)| patterns.iter().any(|p| pattern_matches(p, &event.name)))
        .map(|(id, _)| id)
        .collect();
    if matching.is_empty() {
        return Ok(0);
    }
    let ids: Vec<String> = matching.iter().map(|s| delivery_id(&event.id, *s)).collect();
    let added = sqlx::query(
        r"insert into deliveries (id, subscription_id, event_id, event, payload)
          select d, s, $3, $4, $5 from unnest($1::text[], $2::bigint[]) as t(d, s)
          on conflict (id) do nothing",
    )
    .bind(&ids)
    .bind(&matching)
    .bind(&event.id)
    .bind(&event.name)
    .bind(payload(event))
    .execute(db)
    .await?
    .rows_affected();
    Ok(usize::try_from(added).unwrap_or(usize::MAX))
}

/// The id of the first delivery of event `event_id` to subscription `subscription` (sent as
/// `X-Annex-Delivery`): a UUID made from the SHA-256 of the pair, the same on every replica
/// and every time the event is handled, so a receiver can drop a duplicate by it.
pub(crate) fn delivery_id(event_id: &str, subscription: i64) -> String {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(format!("{event_id}/{subscription}").as_bytes());
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    uuid::Builder::from_custom_bytes(bytes).into_uuid().to_string()
}

/// A fresh delivery id.
pub(crate) fn new_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// The backlog: deliveries not yet finished (`pending` or `delivering`), and the age in seconds
/// of the oldest of them (0 when there is none).
pub(crate) async fn backlog(db: &PgPool) -> Result<(i64, f64), sqlx::Error> {
    sqlx::query_as(
        "select count(*), coalesce(extract(epoch from now() - min(created_at))::float8, 0)
           from deliveries where status in ('pending', 'delivering')",
    )
    .fetch_one(db)
    .await
}

/// Claims up to `limit` due deliveries of active subscriptions for `worker`, leased for
/// `lease`. Rows locked by another worker's claim are skipped, never waited for, so replicas
/// share the queue without sending anything twice.
pub(crate) async fn claim(
    db: &PgPool,
    worker: &str,
    limit: i64,
    lease: Duration,
) -> Result<Vec<Claimed>, sqlx::Error> {
    let rows: Vec<(String, String, String, i32, String, String)> = sqlx::query_as(
        r"with due as (
              select d.id from deliveries d
              join subscriptions s on s.id = d.subscription_id and s.active
              where (d.status = 'pending' and d.next_attempt_at <= now())
                 or (d.status = 'delivering' and d.lease_until < now())
              order by d.next_attempt_at
              limit $2
              for update of d skip locked
          )
          update deliveries d
          set status = 'delivering', claimed_by = $1, attempts = d.attempts + 1,
              lease_until = now() + $3 * interval '1 millisecond'
          from due, subscriptions s
          where d.id = due.id and s.id = d.subscription_id
          returning d.id, d.event, d.payload, d.attempts, s.url, s.secret",
    )
    .bind(worker)
    .bind(limit)
    .bind(millis(lease))
    .fetch_all(db)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(id, event, payload, attempts, url, secret)| Claimed {
            id,
            event,
            payload,
            attempts,
            url,
            secret,
        })
        .collect())
}

/// Records attempt `d.attempts` and moves the delivery on: `succeeded`, `failed` once
/// `max_attempts` are spent, else `pending` again after `retry_in`. The delivery is only moved
/// while `worker` still holds it (a lease taken over by another worker stays with that one).
pub(crate) async fn record(
    db: &PgPool,
    worker: &str,
    d: &Claimed,
    outcome: &Outcome,
    max_attempts: u32,
    retry_in: Duration,
) -> Result<&'static str, sqlx::Error> {
    let status = match (&outcome.error, i64::from(d.attempts) >= i64::from(max_attempts)) {
        (None, _) => "succeeded",
        (Some(_), true) => "failed",
        (Some(_), false) => "pending",
    };
    let duration_ms = i32::try_from(outcome.duration.as_millis()).unwrap_or(i32::MAX);
    let code = outcome.status_code.map(i32::from);
    let mut tx = db.begin().await?;
    sqlx::query(
        r"insert into attempts (delivery_id, number, started_at, duration_ms, status_code, error, worker)
          values ($1, $2, clock_timestamp() - $3::float8 * interval '1 millisecond', $3, $4, $5, $6)",
    )
    .bind(&d.id)
    .bind(d.attempts)
    .bind(duration_ms)
    .bind(code)
    .bind(&outcome.error)
    .bind(worker)
    .execute(&mut *tx)
    .await?;
    sqlx::query(
        r"update deliveries
          set status = $3, claimed_by = null, lease_until = null,
              last_status_code = $4, last_error = $5,
              next_attempt_at = case when $3 = 'pending' then now() + $6 * interval '1 millisecond'
                                     else next_attempt_at end,
              completed_at = case when $3 = 'pending' then null else now() end
          where id = $1 and claimed_by = $2 and status = 'delivering'",
    )
    .bind(&d.id)
    .bind(worker)
    .bind(status)
    .bind(code)
    .bind(&outcome.error)
    .bind(millis(retry_in))
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(status)
}

/// Marks a delivery `failed` without an attempt: its attempts were spent by workers that died
/// mid-delivery.
pub(crate) async fn give_up(db: &PgPool, worker: &str, d: &Claimed) -> Result<(), sqlx::Error> {
    sqlx::query(
        r"update deliveries
          set status = 'failed', claimed_by = null, lease_until = null, completed_at = now(),
              attempts = attempts - 1,
              last_error = 'attempts exhausted: the last attempt''s worker stopped mid-delivery'
          where id = $1 and claimed_by = $2 and status = 'delivering'",
    )
    .bind(&d.id)
    .bind(worker)
    .execute(db)
    .await?;
    Ok(())
}

/// Hands back what `worker` still holds (on stop), uncounted, so another worker takes it now
/// instead of after the lease.
pub(crate) async fn release(db: &PgPool, worker: &str) -> Result<u64, sqlx::Error> {
    let done = sqlx::query(
        r"update deliveries
          set status = 'pending', claimed_by = null, lease_until = null,
              attempts = greatest(attempts - 1, 0), next_attempt_at = now()
          where claimed_by = $1 and status = 'delivering'",
    )
    .bind(worker)
    .execute(db)
    .await?;
    Ok(done.rows_affected())
}

/// Milliseconds as the `float8` that `$n * interval '1 millisecond'` wants.
fn millis(d: Duration) -> f64 {
    d.as_secs_f64() * 1_000.0
}
