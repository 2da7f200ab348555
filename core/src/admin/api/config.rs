//! `GET` and `PUT /api/v1/extensions/{name}/config`.

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::api_error::ApiError;
use crate::control::ControlError;
use crate::host::HostInner;

/// The config in force and the schema it must fit.
pub(super) async fn get_config(
    State(host): State<Arc<HostInner>>,
    Path(name): Path<String>,
) -> Result<Json<Value>, ControlError> {
    let m = host.find(&name).ok_or_else(|| ControlError::NotFound(name.clone()))?;
    Ok(Json(json!({ "extension": name, "config": *m.cx.config(), "schema": m.extension.config_schema() })))
}

/// Replaces the config: the body is the new config. 422 with one entry per schema violation, or
/// when `apply_config` refuses it (the old config stays).
pub(super) async fn put_config(
    State(host): State<Arc<HostInner>>,
    Path(name): Path<String>,
    body: Bytes,
) -> Response {
    if host.find(&name).is_none() {
        return ControlError::NotFound(name).into_response();
    }
    let config: Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(e) => {
            return ApiError::bad_request(format!("the body must be the new config as JSON: {e}"))
                .into_response();
        }
    };
    match host.set_config_as(&name, config.clone(), "admin").await {
        Ok(()) => Json(json!({ "extension": name, "config": config })).into_response(),
        Err(e) => e.into_response(),
    }
}
