//! `POST /api/v1/extensions/{name}/enable` and `…/disable[?cascade=true]`.

use std::collections::HashMap;

use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};

use super::ApiState;
use crate::access::Actor;
use crate::extension::error::ApiError;
use crate::runtime::control_error::ControlError;
use crate::runtime::views::SwitchReport;

/// Enables and starts the extension; 409 when a dependency is not enabled.
pub(super) async fn enable(
    State(state): State<ApiState>,
    Extension(actor): Extension<Actor>,
    Path(name): Path<String>,
) -> Result<Json<SwitchReport>, ControlError> {
    Ok(Json(state.controller.enable(&name, &actor.audit_name()).await?))
}

/// Disables the extension; 409 when others depend on it, unless `cascade=true`.
pub(super) async fn disable(
    State(state): State<ApiState>,
    Extension(actor): Extension<Actor>,
    Path(name): Path<String>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let cascade = match query.get("cascade").map(String::as_str) {
        None | Some("false") => false,
        Some("true") => true,
        Some(other) => {
            return ApiError::bad_request(format!("cascade must be true or false, not `{other}`"))
                .into_response();
        }
    };
    match state.controller.disable(&name, cascade, &actor.audit_name(), Some("disabled by an operator")).await
    {
        Ok(report) => Json(report).into_response(),
        Err(e) => e.into_response(),
    }
}
