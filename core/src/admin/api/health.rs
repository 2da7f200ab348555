//! `GET /api/v1/extensions/{name}/health[?limit=N]`.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, Query, State};
use serde_json::{Value, json};

use super::error::database;
use crate::control::ControlError;
use crate::db::ops_store;
use crate::host::HostInner;

/// The latest status (`healthy`, `degraded`, `down`, or `unknown` before the first check) and
/// the history, newest first (20 entries unless `limit`, at most 500).
pub(super) async fn health(
    State(host): State<Arc<HostInner>>,
    Path(name): Path<String>,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Json<Value>, ControlError> {
    let m = host.find(&name).ok_or_else(|| ControlError::NotFound(name.clone()))?;
    let limit = query.get("limit").and_then(|l| l.parse::<i64>().ok()).unwrap_or(20).clamp(1, 500);
    let history = ops_store::health_history(&host.pool, &name, limit).await.map_err(database)?;
    let status = history.first().map(|c| c.status.clone()).unwrap_or_else(|| "unknown".into());
    Ok(Json(json!({
        "extension": name,
        "state": m.slot.state().as_str(),
        "status": status,
        "history": history,
    })))
}
