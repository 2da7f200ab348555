//! `/ext/webhooks/subscriptions`: list, create, get, update, delete. Admin only (the routes
//! require role `admin`). The secret is write-only: responses show its last four characters.

use annex_core::{ApiError, Context};
use axum::Json;
use axum::body::Bytes;
use axum::extract::Path;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::settings::Settings;
use crate::target;

/// Shortest accepted secret: a shorter HMAC key is guessable.
const MIN_SECRET: usize = 16;
/// Longest accepted secret.
const MAX_SECRET: usize = 256;
/// Patterns per subscription.
const MAX_PATTERNS: usize = 64;

/// A create or update body; on update every field is optional.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Input {
    url: Option<String>,
    events: Option<Vec<String>>,
    secret: Option<String>,
    active: Option<bool>,
}

const COLUMNS: &str =
    "id, url, events, secret, active, to_json(created_at)#>>'{}', to_json(updated_at)#>>'{}'";

type Row = (i64, String, Vec<String>, String, bool, String, String);

fn to_json((id, url, events, secret, active, created_at, updated_at): Row) -> Value {
    json!({
        "id": id,
        "url": url,
        "events": events,
        "secret_hint": hint(&secret),
        "active": active,
        "created_at": created_at,
        "updated_at": updated_at,
    })
}

/// `…wxyz`: enough to tell secrets apart, too little to sign with.
fn hint(secret: &str) -> String {
    let tail: String = secret.chars().rev().take(4).collect::<Vec<_>>().into_iter().rev().collect();
    format!("…{tail}")
}

pub(crate) fn unprocessable(code: &'static str, message: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, code, message)
}

fn parse_body(body: &Bytes) -> Result<Input, ApiError> {
    serde_json::from_slice(body).map_err(|e| {
        unprocessable(
            "invalid_subscription",
            format!(
                "expected a JSON object {{\"url\": \"https://…\", \"events\": [\"pattern\", …], \"secret\": \"…\", \
                 \"active\": true}}: {e}"
            ),
        )
    })
}

/// Checks every given field; collects all problems into one message.
async fn validate(cx: &Context, input: &Input) -> Result<(), ApiError> {
    let mut problems = Vec::new();
    if let Some(events) = &input.events {
        if events.is_empty() {
            problems
                .push("`events` is empty; give at least one pattern such as \"*\" or \"shop.*\"".to_owned());
        }
        if events.len() > MAX_PATTERNS {
            problems
                .push(format!("`events` has {} patterns; at most {MAX_PATTERNS} are allowed", events.len()));
        }
        for p in events {
            if p.is_empty() || p.len() > 200 || p.split('.').any(str::is_empty) {
                problems.push(format!(
                    "`events` pattern {p:?} is not a pattern: use dot-separated segments such as \"*\", \
                     \"extension.*\" or \"shop.created\""
                ));
            }
        }
    }
    if let Some(secret) = &input.secret {
        let n = secret.chars().count();
        if !(MIN_SECRET..=MAX_SECRET).contains(&n) {
            problems.push(format!(
                "`secret` has {n} characters; use {MIN_SECRET} to {MAX_SECRET} (a random string of 32 or more is best)"
            ));
        }
    }
    if !problems.is_empty() {
        return Err(unprocessable("invalid_subscription", problems.join("; ")));
    }
    if let Some(url) = &input.url {
        let parsed = target::parse(url).map_err(|e| unprocessable(e.code(), e.to_string()))?;
        let allow = Settings::load(cx).allow_private_targets;
        target::vet(&parsed, allow).await.map_err(|e| unprocessable(e.code(), e.to_string()))?;
    }
    Ok(())
}

fn parse_id(id: &str) -> Result<i64, ApiError> {
    id.parse().map_err(|_| ApiError::not_found(format!("no subscription `{id}`; ids are integers")))
}

fn missing(id: i64) -> ApiError {
    ApiError::not_found(format!("no subscription {id}; GET /ext/webhooks/subscriptions lists them"))
}

pub(crate) async fn list(cx: Context) -> Result<Json<Value>, ApiError> {
    let rows: Vec<Row> = sqlx::query_as(&format!("select {COLUMNS} from subscriptions order by id"))
        .fetch_all(cx.db()?)
        .await?;
    Ok(Json(json!({ "subscriptions": rows.into_iter().map(to_json).collect::<Vec<_>>() })))
}

pub(crate) async fn create(cx: Context, body: Bytes) -> Result<impl IntoResponse, ApiError> {
    let input = parse_body(&body)?;
    let mut absent: Vec<&str> = Vec::new();
    if input.url.is_none() {
        absent.push("`url`");
    }
    if input.events.is_none() {
        absent.push("`events`");
    }
    if input.secret.is_none() {
        absent.push("`secret`");
    }
    if !absent.is_empty() {
        return Err(unprocessable("invalid_subscription", format!("missing {}", absent.join(", "))));
    }
    validate(&cx, &input).await?;
    let row: Row = sqlx::query_as(&format!(
        "insert into subscriptions (url, events, secret, active) values ($1, $2, $3, $4) returning {COLUMNS}"
    ))
    .bind(&input.url)
    .bind(&input.events)
    .bind(&input.secret)
    .bind(input.active.unwrap_or(true))
    .fetch_one(cx.db()?)
    .await?;
    audit(&cx, "subscription.created", row.0, json!({ "url": row.1, "events": row.2 })).await;
    Ok((StatusCode::CREATED, Json(to_json(row))))
}

pub(crate) async fn get(cx: Context, Path(id): Path<String>) -> Result<Json<Value>, ApiError> {
    let id = parse_id(&id)?;
    let row: Option<Row> = sqlx::query_as(&format!("select {COLUMNS} from subscriptions where id = $1"))
        .bind(id)
        .fetch_optional(cx.db()?)
        .await?;
    row.map(|r| Json(to_json(r))).ok_or_else(|| missing(id))
}

/// Changes the given fields only (PUT and PATCH alike); an absent `secret` keeps the old one.
pub(crate) async fn update(
    cx: Context,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let id = parse_id(&id)?;
    let input = parse_body(&body)?;
    validate(&cx, &input).await?;
    let row: Option<Row> = sqlx::query_as(&format!(
        "update subscriptions set url = coalesce($2, url), events = coalesce($3, events),
             secret = coalesce($4, secret), active = coalesce($5, active), updated_at = now()
         where id = $1 returning {COLUMNS}"
    ))
    .bind(id)
    .bind(&input.url)
    .bind(&input.events)
    .bind(&input.secret)
    .bind(input.active)
    .fetch_optional(cx.db()?)
    .await?;
    let row = row.ok_or_else(|| missing(id))?;
    let details =
        json!({ "url": row.1, "events": row.2, "active": row.4, "secret_changed": input.secret.is_some() });
    audit(&cx, "subscription.updated", id, details).await;
    Ok(Json(to_json(row)))
}

pub(crate) async fn delete(cx: Context, Path(id): Path<String>) -> Result<StatusCode, ApiError> {
    let id = parse_id(&id)?;
    let done = sqlx::query("delete from subscriptions where id = $1").bind(id).execute(cx.db()?).await?;
    if done.rows_affected() == 0 {
        return Err(missing(id));
    }
    audit(&cx, "subscription.deleted", id, json!({})).await;
    Ok(StatusCode::NO_CONTENT)
}

async fn audit(cx: &Context, action: &str, id: i64, details: Value) {
    if let Err(e) = cx.audit(action, &format!("subscription:{id}"), details).await {
        tracing::warn!(error = %e, action, "webhooks: could not write the audit log");
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_hint_shows_only_the_last_four_characters() {
        assert_eq!(super::hint("0123456789abcdefWXYZ"), "…WXYZ");
        assert_eq!(super::hint("ab"), "…ab");
    }
}
