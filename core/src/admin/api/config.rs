//! `GET` and `PUT /api/v1/extensions/{name}/config`.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};

use super::ApiState;
use crate::access::Actor;
use crate::extension::error::ApiError;
use crate::runtime::control_error::ControlError;
use crate::runtime::views::ConfigView;

/// The config in force and the schema it must fit.
pub(super) async fn get_config(
    State(state): State<ApiState>,
    Path(name): Path<String>,
) -> Result<Json<ConfigView>, ControlError> {
    Ok(Json(state.controller.config_of(&name).await?))
}

/// Replaces the config: the body is the new config. 422 with one entry per schema violation, or
/// when `apply_config` refuses it (the old config stays).
pub(super) async fn put_config(
    State(state): State<ApiState>,
    Extension(actor): Extension<Actor>,
    Path(name): Path<String>,
    body: Bytes,
) -> Response {
    if let Err(e) = state.controller.declared(&name) {
        return e.into_response();
    }
    let config: serde_json::Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(e) => {
            return ApiError::bad_request(format!("the body must be the new config as JSON: {e}"))
                .into_response();
        }
    };
    match state.controller.set_config(&name, config, &actor.audit_name()).await {
        Ok(view) => Json(view).into_response(),
        Err(e) => e.into_response(),
    }
}
