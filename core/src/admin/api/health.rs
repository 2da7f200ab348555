//! `GET /api/v1/extensions/{name}/health[?limit=N]`.

use std::collections::HashMap;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};

use super::ApiState;
use crate::extension::error::ApiError;

/// The latest status (`healthy`, `degraded`, `down`, or `unknown` before the first check) and
/// the history, newest first (20 entries unless `limit`, 1 to 500).
pub(super) async fn health(
    State(state): State<ApiState>,
    Path(name): Path<String>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let limit = match query.get("limit").map(|l| l.parse::<i64>()) {
        None => 20,
        Some(Ok(n)) if (1..=500).contains(&n) => n,
        Some(_) => {
            return ApiError::new(
                axum::http::StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_query",
                "limit must be a whole number from 1 to 500",
            )
            .into_response();
        }
    };
    match state.controller.health(&name, limit).await {
        Ok(report) => Json(report).into_response(),
        Err(e) => e.into_response(),
    }
}
