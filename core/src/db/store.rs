//! SQL for operations: the enabled switch, config history, health history, metric snapshots and
//! the `annex_control` notification channel. Shared by the host and by the CLI's `Admin`.

use serde::Serialize;
use sqlx::PgPool;

use crate::db::json::{self, Unreadable};
use crate::db::outbox::{self, NewEvent};

/// The channel every replica listens on. The payload is JSON: `{"extension": …, "kind": …}`.
pub(crate) const CHANNEL: &str = "annex_control";

/// Which outbox event a switch change writes.
#[derive(Debug, Clone, Copy)]
pub(crate) enum SwitchEvent<'a> {
    /// This event, whatever the switch was.
    Always(NewEvent<'a>),
    /// This event only if the switch was the other way.
    IfFlipped(NewEvent<'a>),
}

/// Sets the operator's switch and, when disabling, why; `event` (the change's host event) is
/// appended to the outbox in the same transaction.
pub(crate) async fn set_enabled(
    pool: &PgPool,
    name: &str,
    enabled: bool,
    reason: Option<&str>,
    event: SwitchEvent<'_>,
) -> Result<(), sqlx::Error> {
    let mut tx = pool.begin().await?;
    let was: Option<bool> = sqlx::query_scalar(
        r#"
        update annex.extensions e
           set enabled = $2,
               state = case when $2 then e.state else 'disabled' end,
               last_error = case when $2 then e.last_error else $3 end,
               updated_at = now()
          from (select name, enabled from annex.extensions where name = $1 for update) old
         where e.name = old.name
        returning old.enabled
        "#,
    )
    .bind(name)
    .bind(enabled)
    .bind(reason)
    .fetch_optional(&mut *tx)
    .await?;
    match event {
        SwitchEvent::Always(event) => {
            outbox::record(&mut tx, event).await?;
        }
        SwitchEvent::IfFlipped(event) if was == Some(!enabled) => {
            outbox::record(&mut tx, event).await?;
        }
        SwitchEvent::IfFlipped(_) => {}
    }
    tx.commit().await?;
    Ok(())
}

/// The stored switch and config of one extension, if it has a row.
pub(crate) async fn switch_and_config(
    pool: &PgPool,
    name: &str,
) -> Result<Option<(bool, Result<serde_json::Value, Unreadable>)>, sqlx::Error> {
    let row: Option<(bool, String)> =
        sqlx::query_as("select enabled, config::text from annex.extensions where name = $1")
            .bind(name)
            .fetch_optional(pool)
            .await?;
    Ok(row.map(|(enabled, text)| (enabled, json::parse(&text))))
}

/// Stores a new config, its history entry and its outbox event in one transaction; returns the
/// old config.
pub(crate) async fn store_config(
    pool: &PgPool,
    name: &str,
    config: &serde_json::Value,
    actor: &str,
    request_id: Option<&str>,
    event: NewEvent<'_>,
) -> Result<serde_json::Value, sqlx::Error> {
    let mut tx = pool.begin().await?;
    let old: String =
        sqlx::query_scalar("select config::text from annex.extensions where name = $1 for update")
            .bind(name)
            .fetch_one(&mut *tx)
            .await?;
    // An unreadable old config is kept as text in the history; the new one replaces it.
    let old = json::parse(&old).unwrap_or(serde_json::Value::String(old));
    sqlx::query("update annex.extensions set config = $2, updated_at = now() where name = $1")
        .bind(name)
        .bind(config)
        .execute(&mut *tx)
        .await?;
    sqlx::query(
        r#"
        insert into annex.extension_config_history (extension, actor, old_config, new_config, request_id)
        values ($1, $2, $3, $4, $5)
        "#,
    )
    .bind(name)
    .bind(actor)
    .bind(&old)
    .bind(config)
    .bind(request_id)
    .execute(&mut *tx)
    .await?;
    outbox::record(&mut tx, event).await?;
    tx.commit().await?;
    Ok(old)
}

/// Tells every replica that `name` changed (`enabled`, `disabled` or `config`). Delivered when
/// the surrounding transaction (if any) commits; replicas re-read the row, so the payload is
/// only a hint.
pub(crate) async fn notify(pool: &PgPool, name: &str, kind: &str) -> Result<(), sqlx::Error> {
    let payload = serde_json::json!({ "extension": name, "kind": kind }).to_string();
    sqlx::query("select pg_notify($1, $2)").bind(CHANNEL).bind(payload).execute(pool).await?;
    Ok(())
}

/// One health check, as stored.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HealthCheck {
    /// RFC 3339 time of the check.
    pub at: String,
    /// The process that ran it.
    pub replica: String,
    /// `healthy`, `degraded` or `down`.
    pub status: String,
    /// The extension's message, or why the check failed.
    pub message: Option<String>,
    /// `timeout` or `panic` when the check itself failed.
    pub failure: Option<String>,
    /// How long `health()` took.
    pub duration_ms: f64,
}

/// Appends one health check.
pub(crate) async fn record_health(
    pool: &PgPool,
    extension: &str,
    replica: &str,
    check: &HealthCheck,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        r#"
        insert into annex.extension_health (extension, replica, status, message, failure, duration_ms)
        values ($1, $2, $3, $4, $5, $6)
        "#,
    )
    .bind(extension)
    .bind(replica)
    .bind(&check.status)
    .bind(&check.message)
    .bind(&check.failure)
    .bind(check.duration_ms)
    .execute(pool)
    .await?;
    Ok(())
}

/// Drops health rows older than a week (called now and then by the monitor).
pub(crate) async fn prune_health(pool: &PgPool) -> Result<(), sqlx::Error> {
    sqlx::query("delete from annex.extension_health where at < now() - interval '7 days'")
        .execute(pool)
        .await?;
    Ok(())
}

/// The latest `limit` checks of one extension, newest first.
pub(crate) async fn health_history(
    pool: &PgPool,
    extension: &str,
    limit: i64,
) -> Result<Vec<HealthCheck>, sqlx::Error> {
    type Row = (String, String, String, Option<String>, Option<String>, f64);
    let rows: Vec<Row> = sqlx::query_as(
        r#"
        select to_char(at at time zone 'utc', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') as at,
               replica, status, message, failure, duration_ms
          from annex.extension_health
         where extension = $1
         order by at desc, id desc
         limit $2
        "#,
    )
    .bind(extension)
    .bind(limit)
    .fetch_all(pool)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(at, replica, status, message, failure, duration_ms)| HealthCheck {
            at,
            replica,
            status,
            message,
            failure,
            duration_ms,
        })
        .collect())
}

/// The latest check of every extension, by name.
pub(crate) async fn latest_health(pool: &PgPool) -> Result<Vec<(String, String)>, sqlx::Error> {
    sqlx::query_as(
        r#"
        select distinct on (extension) extension, status
          from annex.extension_health
         order by extension, at desc, id desc
        "#,
    )
    .fetch_all(pool)
    .await
}

/// Replaces this replica's snapshot of one extension's figures.
pub(crate) async fn store_figures(
    pool: &PgPool,
    replica: &str,
    extension: &str,
    figures: &serde_json::Value,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        r#"
        insert into annex.replica_metrics (replica, extension, figures) values ($1, $2, $3)
        on conflict (replica, extension) do update set figures = excluded.figures, at = now()
        "#,
    )
    .bind(replica)
    .bind(extension)
    .bind(figures)
    .execute(pool)
    .await?;
    Ok(())
}

/// Every replica's latest snapshot of one extension's figures, newest first.
pub(crate) async fn figures(
    pool: &PgPool,
    extension: &str,
) -> Result<Vec<(String, String, serde_json::Value)>, sqlx::Error> {
    let rows: Vec<(String, String, String)> = sqlx::query_as(
        r#"
        select replica, to_char(at at time zone 'utc', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'), figures::text
          from annex.replica_metrics
         where extension = $1
         order by at desc
        "#,
    )
    .bind(extension)
    .fetch_all(pool)
    .await?;
    Ok(rows.into_iter().map(|(replica, at, figures)| (replica, at, json::parse_or_note(&figures))).collect())
}
