//! `POST /api/v1/extensions/{name}/enable` and `…/disable[?cascade=true]`.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::api_error::ApiError;
use crate::control::ControlError;
use crate::host::HostInner;

/// Enables and starts the extension; 409 when a dependency is not running.
pub(super) async fn enable(
    State(host): State<Arc<HostInner>>,
    Path(name): Path<String>,
) -> Result<Json<Value>, ControlError> {
    let state = host.enable_as(&name, "admin").await?;
    Ok(Json(json!({ "extension": name, "state": state.as_str() })))
}

/// Disables the extension; 409 when others depend on it, unless `cascade=true`.
pub(super) async fn disable(
    State(host): State<Arc<HostInner>>,
    Path(name): Path<String>,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Json<Value>, Response> {
    let cascade = match query.get("cascade").map(String::as_str) {
        None | Some("false") | Some("0") => false,
        Some("true") | Some("1") | Some("") => true,
        Some(other) => {
            return Err(ApiError::bad_request(format!("cascade must be true or false, not `{other}`"))
                .into_response());
        }
    };
    let disabled = host
        .disable_as(&name, cascade, "admin", Some("disabled by an operator"))
        .await
        .map_err(IntoResponse::into_response)?;
    Ok(Json(json!({ "extension": name, "state": "disabled", "disabled": disabled })))
}
