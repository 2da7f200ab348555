//! `POST /pipelines/<name>`: runs a pipeline on the request body (any JSON value) and answers
//! 200 with the final answer, a `Server-Timing` header with one entry per stage call and, when
//! a fail-open stage was skipped, `Annex-Degraded: <stage id>[, …]`. Failures are the JSON error
//! shape: 404 `pipeline_not_found`, 400 `invalid_json`, 422 `denied` (with `stage` and
//! `reason`), 503 `stage_unavailable` (with `stage`) or `no_provider`, 504 `deadline_exceeded`.

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::json;

use crate::observe::request_id::RequestId;
use crate::pipelines::engine::{RunError, RunReport};
use crate::runtime::lifecycle::Runtime;

/// The header naming the fail-open stages a run skipped.
pub(crate) const DEGRADED: HeaderName = HeaderName::from_static("annex-degraded");
const SERVER_TIMING: HeaderName = HeaderName::from_static("server-timing");

/// The pipeline route.
pub(crate) fn router(runtime: Arc<Runtime>) -> Router {
    Router::new().route("/pipelines/{name}", post(run)).with_state(runtime)
}

async fn run(State(runtime): State<Arc<Runtime>>, Path(name): Path<String>, body: Bytes) -> Response {
    let request_id = RequestId::current().map(|r| r.to_string()).unwrap_or_default();
    let payload: serde_json::Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(e) => {
            return error(
                StatusCode::BAD_REQUEST,
                "invalid_json",
                format!("the body is not JSON: {e}"),
                &request_id,
                None,
            );
        }
    };
    let report = runtime.pipelines().run(&name, payload, &request_id).await;
    respond(&name, report, &request_id)
}

fn respond(name: &str, report: RunReport, request_id: &str) -> Response {
    let mut response = match report.result {
        Ok(answer) => (StatusCode::OK, axum::Json(answer)).into_response(),
        Err(RunError::NotFound) => error(
            StatusCode::NOT_FOUND,
            "pipeline_not_found",
            format!("no pipeline `{name}`; `annex pipelines list` shows them"),
            request_id,
            None,
        ),
        Err(RunError::Denied { stage, code, reason }) => error(
            StatusCode::UNPROCESSABLE_ENTITY,
            "denied",
            format!("stage `{stage}` denied the request ({code})"),
            request_id,
            Some(json!({ "stage": stage, "reason": reason, "deny_code": code })),
        ),
        Err(RunError::StageUnavailable { stage, reason }) => {
            tracing::warn!(pipeline = name, %stage, %reason, "pipeline failed: a fail-closed stage failed");
            error(
                StatusCode::SERVICE_UNAVAILABLE,
                "stage_unavailable",
                format!("stage `{stage}` failed and fails closed"),
                request_id,
                Some(json!({ "stage": stage })),
            )
        }
        Err(RunError::NoProvider { tried }) => error(
            StatusCode::SERVICE_UNAVAILABLE,
            "no_provider",
            format!(
                "no provider answered (tried: {})",
                if tried.is_empty() { "none".into() } else { tried.join(", ") }
            ),
            request_id,
            None,
        ),
        Err(RunError::DeadlineExceeded { stage }) => error(
            StatusCode::GATEWAY_TIMEOUT,
            "deadline_exceeded",
            format!(
                "the pipeline's deadline passed{}",
                stage.map(|s| format!(" at stage `{s}`")).unwrap_or_default()
            ),
            request_id,
            None,
        ),
    };
    let headers = response.headers_mut();
    if !report.degraded.is_empty()
        && let Ok(v) = HeaderValue::from_str(&report.degraded.join(", "))
    {
        headers.insert(DEGRADED, v);
    }
    if !report.timings.is_empty() {
        let timing: Vec<String> =
            report.timings.iter().map(|(n, d)| format!("{n};dur={:.3}", d.as_secs_f64() * 1000.0)).collect();
        if let Ok(v) = HeaderValue::from_str(&timing.join(", ")) {
            headers.insert(SERVER_TIMING, v);
        }
    }
    response
}

fn error(
    status: StatusCode,
    code: &str,
    message: String,
    request_id: &str,
    extra: Option<serde_json::Value>,
) -> Response {
    let mut error = json!({ "code": code, "message": message, "request_id": request_id });
    if let (Some(serde_json::Value::Object(extra)), Some(map)) = (extra, error.as_object_mut()) {
        map.extend(extra);
    }
    (status, axum::Json(json!({ "error": error }))).into_response()
}
