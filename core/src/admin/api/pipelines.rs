//! Pipelines in the admin API: `GET /api/v1/pipelines` (with this replica's registry status:
//! when its snapshot was loaded, and the last refused reload), `GET|PUT|DELETE
//! /api/v1/pipelines/{name}`. Reads need any identified caller; changes [`Action::Administer`].

use axum::Extension;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::ApiState;
use super::stages::{after_change, answer, changed, forbidden, object_body, registry};
use crate::access::{Action, Actor};
use crate::extension::json::Json;
use crate::pipelines::model::PipelineInput;

/// Every pipeline, and the registry status of this replica.
pub(super) async fn list(State(state): State<ApiState>, Extension(actor): Extension<Actor>) -> Response {
    if let Some(r) = forbidden(&actor, Action::Read) {
        return r;
    }
    let status = state.controller.runtime().map(|rt| rt.pipelines().status());
    answer(registry(&state).pipelines().await.map(|list| json!({ "pipelines": list, "registry": status })))
}

/// One pipeline.
pub(super) async fn show(
    State(state): State<ApiState>,
    Extension(actor): Extension<Actor>,
    Path(name): Path<String>,
) -> Response {
    if let Some(r) = forbidden(&actor, Action::Read) {
        return r;
    }
    answer(registry(&state).pipeline(&name).await)
}

/// Creates or replaces a pipeline.
pub(super) async fn put(
    State(state): State<ApiState>,
    Extension(actor): Extension<Actor>,
    Path(name): Path<String>,
    Json(body): Json<Value>,
) -> Response {
    if let Some(r) = forbidden(&actor, Action::Administer) {
        return r;
    }
    let input: PipelineInput = match object_body(body) {
        Ok(v) => v,
        Err(e) => return e.into_response(),
    };
    changed(&state, StatusCode::OK, registry(&state).put_pipeline(&actor.audit_name(), &name, input).await)
        .await
}

/// Removes a pipeline: 204.
pub(super) async fn remove(
    State(state): State<ApiState>,
    Extension(actor): Extension<Actor>,
    Path(name): Path<String>,
) -> Response {
    if let Some(r) = forbidden(&actor, Action::Administer) {
        return r;
    }
    match registry(&state).remove_pipeline(&actor.audit_name(), &name).await {
        Ok(()) => {
            after_change(&state).await;
            StatusCode::NO_CONTENT.into_response()
        }
        Err(e) => e.into_response(),
    }
}
