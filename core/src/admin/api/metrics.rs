//! `GET /api/v1/extensions/{name}/metrics`: every replica's figures for one extension, this
//! process's live.

use axum::Json;
use axum::extract::{Path, State};

use super::ApiState;
use crate::runtime::control_error::ControlError;
use crate::runtime::views::ExtensionFigures;

/// Every `extension_*` series of this extension, by replica and family.
pub(super) async fn metrics(
    State(state): State<ApiState>,
    Path(name): Path<String>,
) -> Result<Json<ExtensionFigures>, ControlError> {
    Ok(Json(state.controller.figures(&name).await?))
}
