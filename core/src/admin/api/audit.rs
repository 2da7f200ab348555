//! `GET /api/v1/audit?target=&actor=&action=&since=&until=&before=&limit=`: the audit log, newest first,
//! paginated by id (`next_before` is the `before` of the next page). `GET /api/v1/audit/verify`:
//! its hash chain checked end to end.

use std::collections::HashMap;

use axum::Json;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::ApiState;
use crate::db::json;
use crate::extension::error::ApiError;
use crate::observe::audit as audit_log;

const MAX_LIMIT: i64 = 500;

fn invalid(message: String) -> Response {
    ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_query", message).into_response()
}

/// Filters are exact matches; `action` may end in `*` to match a prefix (`extension.*`).
pub(super) async fn audit(
    State(state): State<ApiState>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    if let Some(unknown) = query
        .keys()
        .find(|k| !["target", "actor", "action", "since", "until", "before", "limit"].contains(&k.as_str()))
    {
        return invalid(format!(
            "unknown filter `{unknown}`; use target, actor, action, since, until, before or limit"
        ));
    }
    let mut times = [None, None];
    for (i, key) in ["since", "until"].iter().enumerate() {
        if let Some(t) = query.get(*key) {
            match chrono::DateTime::parse_from_rfc3339(t) {
                Ok(t) => times[i] = Some(t.with_timezone(&chrono::Utc)),
                Err(_) => return invalid(format!("{key} must be an RFC 3339 time (2026-01-31T12:00:00Z)")),
            }
        }
    }
    let limit = match query.get("limit").map(|l| l.parse::<i64>()) {
        None => 50,
        Some(Ok(n)) if (1..=MAX_LIMIT).contains(&n) => n,
        Some(_) => return invalid(format!("limit must be a whole number from 1 to {MAX_LIMIT}")),
    };
    let before = match query.get("before").map(|b| b.parse::<i64>()) {
        None => None,
        Some(Ok(n)) => Some(n),
        Some(Err(_)) => return invalid("before must be an entry id (a whole number)".into()),
    };
    let action = query.get("action").map(|a| match a.strip_suffix('*') {
        Some(prefix) => format!("{}%", prefix.replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_")),
        None => a.replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_"),
    });
    type Row = (i64, String, String, String, String, String, Option<String>);
    let rows: Result<Vec<Row>, sqlx::Error> = sqlx::query_as(
        r#"
        select id, to_char(at at time zone 'utc', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'),
               actor, action, target, details::text, request_id
          from annex.audit_log
         where ($1::text is null or target = $1)
           and ($2::text is null or actor = $2)
           and ($3::text is null or action like $3)
           and ($4::bigint is null or id < $4)
           and ($6::timestamptz is null or at >= $6)
           and ($7::timestamptz is null or at < $7)
         order by id desc
         limit $5
        "#,
    )
    .bind(query.get("target"))
    .bind(query.get("actor"))
    .bind(action)
    .bind(before)
    .bind(limit)
    .bind(times[0])
    .bind(times[1])
    .fetch_all(state.controller.pool())
    .await;
    let rows = match rows {
        Ok(rows) => rows,
        Err(e) => {
            return ApiError::from(e).into_response();
        }
    };
    let next_before = (rows.len() as i64 == limit).then(|| rows.last().map(|r| r.0)).flatten();
    let entries: Vec<Value> = rows
        .into_iter()
        .map(|(id, at, actor, action, target, details, request_id)| {
            // One unreadable entry is shown as such; the page still answers.
            let details = json::parse_or_note(&details);
            json!({ "id": id, "at": at, "actor": actor, "action": action, "target": target,
                    "details": details, "request_id": request_id })
        })
        .collect();
    Json(json!({ "entries": entries, "next_before": next_before })).into_response()
}

/// The verdict on the whole chain, 200 whether intact or broken (the check itself succeeded);
/// the same document `annex audit verify --json` prints.
pub(super) async fn verify(State(state): State<ApiState>) -> Response {
    match audit_log::verify(state.controller.pool()).await {
        Ok(verdict) => Json(verdict).into_response(),
        Err(e) => ApiError::from(e).into_response(),
    }
}
