//! The stage registry in the admin API: `GET|POST /api/v1/stages`, `GET|PUT|DELETE
//! /api/v1/stages/{id}`, `POST …/enable|disable`, `GET …/health`; and what the pipeline routes
//! share with them: the [`RegistryError`] response, [`registry`] and [`after_change`].
//!
//! Reads need any identified caller (role `viewer` is enough); changes need
//! [`Action::Administer`]. Every operation is [`crate::admin::Registry`]'s, which the CLI calls
//! too.

use axum::Extension;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use super::ApiState;
use super::auth::access_error;
use crate::access::{Action, Actor};
use crate::config::SchemaViolation;
use crate::extension::error::ApiError;
use crate::extension::json::Json;
use crate::observe::request_id::RequestId;
use crate::pipelines::error::RegistryError;
use crate::pipelines::model::{NewStage, StageChange};
use crate::pipelines::registry::Registry;

impl IntoResponse for RegistryError {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let request_id = RequestId::current().map(|r| r.to_string());
        if self.is_internal() {
            tracing::error!(error = %self, "admin API: registry operation failed");
            let body = json!({ "error": { "code": self.code(), "message": "a database error occurred; details are logged",
                                          "request_id": request_id } });
            return (status, axum::Json(body)).into_response();
        }
        let mut error = json!({ "code": self.code(), "message": self.to_string(), "request_id": request_id });
        match &self {
            RegistryError::InvalidConfig { errors, .. } => error["errors"] = json!(errors),
            RegistryError::InvalidPipeline { problems, .. } => error["problems"] = json!(problems),
            _ => {}
        }
        (status, axum::Json(json!({ "error": error }))).into_response()
    }
}

/// The registry over this host's database, compiled-in set and NATS connection.
pub(super) fn registry(state: &ApiState) -> Registry<'_> {
    let nats = match state.controller.runtime() {
        Some(rt) => rt.pipelines().nats(),
        None => state.controller.config().nats.url.is_some(),
    };
    Registry::new(state.controller.pool(), state.controller.catalog(), nats)
}

/// The 403 when `actor` may not do `action` host-wide.
pub(super) fn forbidden(actor: &Actor, action: Action) -> Option<Response> {
    actor.authorize(action, None).err().map(access_error)
}

/// A body that must be a JSON object of `T`'s fields (serde would also read a struct from an
/// array of its fields in order, which the document does not allow): 422 `invalid_body` if not.
pub(super) fn object_body<T: DeserializeOwned>(body: Value) -> Result<T, ApiError> {
    let refuse = |message: String| {
        let errors = vec![SchemaViolation { pointer: String::new(), message: message.clone() }];
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_body",
            format!("the request body cannot be accepted: {message}"),
        )
        .with_errors(errors)
    };
    if !body.is_object() {
        return Err(refuse("the body must be a JSON object".into()));
    }
    serde_json::from_value(body).map_err(|e| refuse(e.to_string()))
}

/// After a committed change: this replica reloads at once (the others on NOTIFY).
pub(super) async fn after_change(state: &ApiState) {
    if let Some(rt) = state.controller.runtime() {
        rt.pipelines().reload(rt.pool()).await;
    }
}

/// A read's answer.
pub(super) fn answer<T: Serialize>(result: Result<T, RegistryError>) -> Response {
    match result {
        Ok(v) => axum::Json(v).into_response(),
        Err(e) => e.into_response(),
    }
}

/// A change's answer, after [`after_change`].
pub(super) async fn changed<T: Serialize>(
    state: &ApiState,
    status: StatusCode,
    result: Result<T, RegistryError>,
) -> Response {
    match result {
        Ok(v) => {
            after_change(state).await;
            (status, axum::Json(v)).into_response()
        }
        Err(e) => e.into_response(),
    }
}

/// Every stage.
pub(super) async fn list(State(state): State<ApiState>, Extension(actor): Extension<Actor>) -> Response {
    if let Some(r) = forbidden(&actor, Action::Read) {
        return r;
    }
    answer(registry(&state).stages().await.map(|stages| json!({ "stages": stages })))
}

/// Adds a remote stage: 201.
pub(super) async fn create(
    State(state): State<ApiState>,
    Extension(actor): Extension<Actor>,
    Json(body): Json<Value>,
) -> Response {
    if let Some(r) = forbidden(&actor, Action::Administer) {
        return r;
    }
    let new: NewStage = match object_body(body) {
        Ok(v) => v,
        Err(e) => return e.into_response(),
    };
    changed(&state, StatusCode::CREATED, registry(&state).add_stage(&actor.audit_name(), new).await).await
}

/// One stage.
pub(super) async fn show(
    State(state): State<ApiState>,
    Extension(actor): Extension<Actor>,
    Path(id): Path<String>,
) -> Response {
    if let Some(r) = forbidden(&actor, Action::Read) {
        return r;
    }
    answer(registry(&state).stage(&id).await)
}

/// Changes a stage's fields.
pub(super) async fn update(
    State(state): State<ApiState>,
    Extension(actor): Extension<Actor>,
    Path(id): Path<String>,
    Json(body): Json<Value>,
) -> Response {
    if let Some(r) = forbidden(&actor, Action::Administer) {
        return r;
    }
    let change: StageChange = match object_body(body) {
        Ok(v) => v,
        Err(e) => return e.into_response(),
    };
    changed(&state, StatusCode::OK, registry(&state).change_stage(&actor.audit_name(), &id, change).await)
        .await
}

/// Removes a remote stage: 204.
pub(super) async fn remove(
    State(state): State<ApiState>,
    Extension(actor): Extension<Actor>,
    Path(id): Path<String>,
) -> Response {
    if let Some(r) = forbidden(&actor, Action::Administer) {
        return r;
    }
    match registry(&state).remove_stage(&actor.audit_name(), &id).await {
        Ok(()) => {
            after_change(&state).await;
            StatusCode::NO_CONTENT.into_response()
        }
        Err(e) => e.into_response(),
    }
}

async fn switch(state: ApiState, actor: Actor, id: String, enabled: bool) -> Response {
    if let Some(r) = forbidden(&actor, Action::Administer) {
        return r;
    }
    changed(&state, StatusCode::OK, registry(&state).set_enabled(&actor.audit_name(), &id, enabled).await)
        .await
}

/// Enables a stage.
pub(super) async fn enable(
    State(state): State<ApiState>,
    Extension(actor): Extension<Actor>,
    Path(id): Path<String>,
) -> Response {
    switch(state, actor, id, true).await
}

/// Disables a stage (pipelines naming it skip it).
pub(super) async fn disable(
    State(state): State<ApiState>,
    Extension(actor): Extension<Actor>,
    Path(id): Path<String>,
) -> Response {
    switch(state, actor, id, false).await
}

/// A stage's health: this replica's live figures (window, score, breaker) and every replica's
/// mirrored ones.
pub(super) async fn health(
    State(state): State<ApiState>,
    Extension(actor): Extension<Actor>,
    Path(id): Path<String>,
) -> Response {
    if let Some(r) = forbidden(&actor, Action::Read) {
        return r;
    }
    let stored = match registry(&state).stored_health(&id).await {
        Ok(rows) => rows,
        Err(e) => return e.into_response(),
    };
    let live =
        state.controller.runtime().map(|rt| rt.pipelines().health_of(&id).unwrap_or_else(fresh_figures));
    axum::Json(json!({ "stage": id, "live": live, "replicas": stored })).into_response()
}

fn fresh_figures() -> crate::pipelines::health::HealthFigures {
    crate::pipelines::health::StageHealth::default().figures()
}
