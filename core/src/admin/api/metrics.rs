//! `GET /api/v1/extensions/{name}/metrics`: this replica's figures for one extension as JSON.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use serde_json::{Value, json};

use crate::control::ControlError;
use crate::host::HostInner;

/// Every `extension_*` series of this extension, by family.
pub(super) async fn metrics(
    State(host): State<Arc<HostInner>>,
    Path(name): Path<String>,
) -> Result<Json<Value>, ControlError> {
    host.find(&name).ok_or_else(|| ControlError::NotFound(name.clone()))?;
    crate::metrics::refresh(&host);
    Ok(Json(json!({
        "extension": name,
        "replica": host.ops.replica,
        "metrics": host.ops.metrics.extension_json(&name),
    })))
}
