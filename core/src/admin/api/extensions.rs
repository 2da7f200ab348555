//! `GET /api/v1/extensions` and `GET /api/v1/extensions/{name}`.

use axum::Json;
use axum::extract::{Path, State};
use serde_json::{Value, json};

use super::ApiState;
use crate::runtime::control_error::ControlError;
use crate::runtime::views::ExtensionDetails;

/// Every extension with its switch, state and latest health.
pub(super) async fn list(State(state): State<ApiState>) -> Result<Json<Value>, ControlError> {
    let extensions = state.controller.list().await?;
    Ok(Json(json!({ "extensions": extensions })))
}

/// Metadata, permissions, routes, hooks, migrations, dependents, config.
pub(super) async fn info(
    State(state): State<ApiState>,
    Path(name): Path<String>,
) -> Result<Json<ExtensionDetails>, ControlError> {
    Ok(Json(state.controller.info(&name).await?))
}
