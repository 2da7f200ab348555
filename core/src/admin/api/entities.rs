//! `GET /api/v1/extensions/{name}/entities` and `POST /api/v1/entities/validate`.

use std::collections::HashMap;

use axum::extract::{Path, Query, State};
use serde_json::Value;

use super::ApiState;
use crate::extension::json::Json;
use crate::runtime::control_error::ControlError;
use crate::runtime::entity_views::{DeclarationCheck, EntitiesView};

/// An extension's declaration and the versions applied.
pub(super) async fn of_extension(
    State(state): State<ApiState>,
    Path(name): Path<String>,
) -> Result<axum::Json<EntitiesView>, ControlError> {
    Ok(axum::Json(state.controller.entities(&name).await?))
}

/// Checks a declaration (the body), alone or `?extension=<name>` as that extension would
/// declare it; registers nothing. Every problem is in the answer, never an error status.
pub(super) async fn validate(
    State(state): State<ApiState>,
    Query(query): Query<HashMap<String, String>>,
    Json(body): Json<Value>,
) -> Result<axum::Json<DeclarationCheck>, ControlError> {
    let extension = query.get("extension").map(String::as_str);
    Ok(axum::Json(state.controller.validate_entities(extension, &body)?))
}
