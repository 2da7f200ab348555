//! The event outbox (`annex.event_outbox`): host events that record a state change, written in
//! the same transaction as the change, and the cursors of the consumers that read them
//! (`annex.event_cursors`). See docs/reliability.md.

use sqlx::{PgConnection, PgPool};

/// The channel a committed outbox row is announced on; the payload is the row's id.
pub(crate) const CHANNEL: &str = "annex_events";

/// The origin of a change made by the CLI (no replica).
pub(crate) const CLI_ORIGIN: &str = "cli";

/// Key of the transaction-scoped advisory lock every writer takes before inserting, so ids commit
/// in id order (a reader past id N never finds a smaller id committed later).
const WRITE_LOCK: i64 = 0x616e_6e65_785f_6f62; // "annex_ob"

/// An event to append with the change it records.
#[derive(Debug, Clone, Copy)]
pub(crate) struct NewEvent<'a> {
    pub(crate) name: &'a str,
    pub(crate) data: &'a serde_json::Value,
    /// The replica that made the change, or [`CLI_ORIGIN`].
    pub(crate) origin: &'a str,
}

/// One stored event.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct OutboxRow {
    pub(crate) id: i64,
    pub(crate) name: String,
    pub(crate) data: serde_json::Value,
    /// RFC 3339 (UTC, milliseconds) time of the change.
    pub(crate) created_at: String,
}

/// Appends an event inside the caller's transaction and announces it on [`CHANNEL`] (PostgreSQL
/// delivers the notification when, and only if, the transaction commits). Returns its id.
pub(crate) async fn record(tx: &mut PgConnection, event: NewEvent<'_>) -> Result<i64, sqlx::Error> {
    let NewEvent { name, data, origin } = event;
    sqlx::query("select pg_advisory_xact_lock($1)").bind(WRITE_LOCK).execute(&mut *tx).await?;
    let id: i64 = sqlx::query_scalar(
        "insert into annex.event_outbox (name, data, origin) values ($1, $2, $3) returning id",
    )
    .bind(name)
    .bind(data)
    .bind(origin)
    .fetch_one(&mut *tx)
    .await?;
    sqlx::query("select pg_notify($1, $2)").bind(CHANNEL).bind(id.to_string()).execute(&mut *tx).await?;
    Ok(id)
}

/// The highest id stored (0 for none).
pub(crate) async fn last_id(pool: &PgPool) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar("select coalesce(max(id), 0)::bigint from annex.event_outbox").fetch_one(pool).await
}

/// Every durable consumer and how many outbox rows lie after its cursor (not yet acknowledged).
pub(crate) async fn backlog(pool: &PgPool) -> Result<Vec<(String, i64)>, sqlx::Error> {
    sqlx::query_as(
        "select c.consumer, greatest((select coalesce(max(id), 0) from annex.event_outbox) - c.last_id, 0)
           from annex.event_cursors c order by c.consumer",
    )
    .fetch_all(pool)
    .await
}

/// Up to `limit` events after `after`, in id order.
pub(crate) async fn after(
    conn: &mut PgConnection,
    after: i64,
    limit: i64,
) -> Result<Vec<OutboxRow>, sqlx::Error> {
    let rows: Vec<(i64, String, String, String)> = sqlx::query_as(
        r#"
        select id, name, data::text,
               to_char(created_at at time zone 'utc', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')
          from annex.event_outbox
         where id > $1
         order by id
         limit $2
        "#,
    )
    .bind(after)
    .bind(limit)
    .fetch_all(&mut *conn)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(id, name, data, created_at)| OutboxRow {
            id,
            name,
            data: crate::db::json::parse_or_note(&data),
            created_at,
        })
        .collect())
}

/// Creates `consumer`'s cursor at 0 if it has none: a new consumer reads the whole outbox.
pub(crate) async fn ensure_cursor(pool: &PgPool, consumer: &str) -> Result<(), sqlx::Error> {
    sqlx::query("insert into annex.event_cursors (consumer) values ($1) on conflict do nothing")
        .bind(consumer)
        .execute(pool)
        .await?;
    Ok(())
}

/// Locks `consumer`'s cursor for the caller's transaction and returns its position; `None` when
/// another replica holds it (it is handling the next rows now).
pub(crate) async fn lock_cursor(conn: &mut PgConnection, consumer: &str) -> Result<Option<i64>, sqlx::Error> {
    sqlx::query_scalar("select last_id from annex.event_cursors where consumer = $1 for update skip locked")
        .bind(consumer)
        .fetch_optional(&mut *conn)
        .await
}

/// Moves `consumer`'s cursor to `last_id` (inside the transaction that locked it).
pub(crate) async fn advance_cursor(
    conn: &mut PgConnection,
    consumer: &str,
    last_id: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query("update annex.event_cursors set last_id = $2, updated_at = now() where consumer = $1")
        .bind(consumer)
        .bind(last_id)
        .execute(&mut *conn)
        .await?;
    Ok(())
}
