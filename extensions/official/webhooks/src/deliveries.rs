//! `/ext/webhooks/deliveries`: the delivery history with every attempt, and manual redelivery.
//! Admin only.

use std::collections::HashMap;
use std::sync::Arc;

use annex_core::{ApiError, Context};
use axum::Json;
use axum::extract::{Path, Query};
use axum::http::StatusCode;
use serde_json::{Value, json};

use crate::queue;
use crate::subscriptions::unprocessable;
use crate::worker::Shared;

const STATUSES: [&str; 4] = ["pending", "delivering", "succeeded", "failed"];
const DEFAULT_LIMIT: i64 = 50;
const MAX_LIMIT: i64 = 500;

/// number, started_at, duration_ms, status_code, error, worker.
type AttemptRow = (i32, String, i32, Option<i32>, Option<String>, String);

const COLUMNS: &str = "id, subscription_id, event_id, event, status, attempts,
    to_json(next_attempt_at)#>>'{}', last_status_code, last_error, redelivery_of,
    to_json(created_at)#>>'{}', to_json(completed_at)#>>'{}'";

struct Row {
    id: String,
    subscription_id: i64,
    event_id: String,
    event: String,
    status: String,
    attempts: i32,
    next_attempt_at: String,
    last_status_code: Option<i32>,
    last_error: Option<String>,
    redelivery_of: Option<String>,
    created_at: String,
    completed_at: Option<String>,
}

impl Row {
    fn to_json(&self) -> Value {
        json!({
            "id": self.id,
            "subscription_id": self.subscription_id,
            "event_id": self.event_id,
            "event": self.event,
            "status": self.status,
            "attempts": self.attempts,
            "next_attempt_at": (self.status == "pending").then_some(&self.next_attempt_at),
            "last_status_code": self.last_status_code,
            "last_error": self.last_error,
            "redelivery_of": self.redelivery_of,
            "created_at": self.created_at,
            "completed_at": self.completed_at,
        })
    }
}

fn row_of(r: &sqlx::postgres::PgRow) -> Result<Row, sqlx::Error> {
    use sqlx::Row as _;
    Ok(Row {
        id: r.try_get(0)?,
        subscription_id: r.try_get(1)?,
        event_id: r.try_get(2)?,
        event: r.try_get(3)?,
        status: r.try_get(4)?,
        attempts: r.try_get(5)?,
        next_attempt_at: r.try_get(6)?,
        last_status_code: r.try_get(7)?,
        last_error: r.try_get(8)?,
        redelivery_of: r.try_get(9)?,
        created_at: r.try_get(10)?,
        completed_at: r.try_get(11)?,
    })
}

/// `GET /deliveries?status=&subscription=&limit=`, newest first.
pub(crate) async fn list(
    cx: Context,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Json<Value>, ApiError> {
    if let Some(unknown) = q.keys().find(|k| !matches!(k.as_str(), "status" | "subscription" | "limit")) {
        return Err(unprocessable(
            "invalid_filter",
            format!("unknown filter `{unknown}`; use status, subscription and limit"),
        ));
    }
    let status = q.get("status").map(String::as_str);
    if let Some(s) = status.filter(|s| !STATUSES.contains(s)) {
        return Err(unprocessable(
            "invalid_filter",
            format!("`status` is {s:?}; use one of {}", STATUSES.join(", ")),
        ));
    }
    let subscription = match q.get("subscription") {
        None => None,
        Some(s) => Some(s.parse::<i64>().map_err(|_| {
            unprocessable("invalid_filter", format!("`subscription` is {s:?}; expected a subscription id"))
        })?),
    };
    let limit = match q.get("limit") {
        None => DEFAULT_LIMIT,
        Some(l) => l.parse::<i64>().ok().filter(|l| (1..=MAX_LIMIT).contains(l)).ok_or_else(|| {
            unprocessable("invalid_filter", format!("`limit` is {l:?}; expected 1 to {MAX_LIMIT}"))
        })?,
    };
    let rows = sqlx::query(&format!(
        "select {COLUMNS} from deliveries
         where ($1::text is null or status = $1) and ($2::bigint is null or subscription_id = $2)
         order by created_at desc, id desc limit $3"
    ))
    .bind(status)
    .bind(subscription)
    .bind(limit)
    .fetch_all(cx.db()?)
    .await?;
    let deliveries =
        rows.iter().map(row_of).map(|r| r.map(|r| r.to_json())).collect::<Result<Vec<_>, _>>()?;
    Ok(Json(json!({ "deliveries": deliveries })))
}

async fn find(cx: &Context, id: &str) -> Result<(Row, String), ApiError> {
    let row = sqlx::query(&format!("select {COLUMNS}, payload from deliveries where id = $1"))
        .bind(id)
        .fetch_optional(cx.db()?)
        .await?
        .ok_or_else(|| {
            ApiError::not_found(format!("no delivery `{id}`; GET /ext/webhooks/deliveries lists them"))
        })?;
    let payload: String = sqlx::Row::try_get(&row, 12)?;
    Ok((row_of(&row)?, payload))
}

/// `GET /deliveries/{id}`: the delivery, its body and every attempt.
pub(crate) async fn get(cx: Context, Path(id): Path<String>) -> Result<Json<Value>, ApiError> {
    let (row, payload) = find(&cx, &id).await?;
    let attempts: Vec<AttemptRow> = sqlx::query_as(
        "select number, to_json(started_at)#>>'{}', duration_ms, status_code, error, worker
         from attempts where delivery_id = $1 order by number, id",
    )
    .bind(&id)
    .fetch_all(cx.db()?)
    .await?;
    let attempts: Vec<Value> = attempts
        .into_iter()
        .map(|(number, started_at, duration_ms, status_code, error, worker)| {
            json!({
                "number": number, "started_at": started_at, "duration_ms": duration_ms,
                "status_code": status_code, "error": error, "worker": worker,
            })
        })
        .collect();
    let mut body = row.to_json();
    body["payload"] = serde_json::from_str(&payload).unwrap_or(Value::String(payload));
    body["attempts"] = Value::Array(attempts);
    Ok(Json(body))
}

/// `POST /deliveries/{id}/redeliver`: a new delivery (new id, fresh attempts) of the same body
/// to the same subscription; 202 with it.
pub(crate) async fn redeliver(
    shared: Arc<Shared>,
    cx: Context,
    Path(id): Path<String>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let new_id = queue::new_id();
    let inserted = sqlx::query(&format!(
        "insert into deliveries (id, subscription_id, event_id, event, payload, redelivery_of)
         select $2, subscription_id, event_id, event, payload, id from deliveries where id = $1
         returning {COLUMNS}"
    ))
    .bind(&id)
    .bind(&new_id)
    .fetch_optional(cx.db()?)
    .await?
    .ok_or_else(|| {
        ApiError::not_found(format!("no delivery `{id}`; GET /ext/webhooks/deliveries lists them"))
    })?;
    shared.wake.notify_one();
    let row = row_of(&inserted)?;
    if let Err(e) =
        cx.audit("delivery.redelivered", &format!("delivery:{id}"), json!({ "new": new_id })).await
    {
        tracing::warn!(error = %e, "webhooks: could not write the audit log");
    }
    Ok((StatusCode::ACCEPTED, Json(row.to_json())))
}
