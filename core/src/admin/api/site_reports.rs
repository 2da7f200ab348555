//! Reports and snapshots of a site: `GET …/compliance-report` (JSON, or CSV with
//! `Accept: text/csv`), `GET|POST …/snapshots`, `GET …/snapshots/{id}`,
//! `POST …/snapshots/{id}/restore`.

use axum::Extension;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::ApiState;
use super::sites::{answer, changed, resolve, sites};
use crate::access::{Action, Actor};
use crate::extension::json::Json;

/// `POST …/snapshots` body.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct SnapshotBody {
    #[serde(default)]
    label: String,
}

/// `POST …/snapshots/{id}/restore` body.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RestoreBody {
    #[serde(default)]
    reason: String,
}

fn wants_csv(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|m| m.split(';').next().is_some_and(|m| m.trim().eq_ignore_ascii_case("text/csv")))
}

/// The compliance report.
pub(super) async fn compliance(
    State(state): State<ApiState>,
    Extension(actor): Extension<Actor>,
    Path(site): Path<String>,
    headers: HeaderMap,
) -> Response {
    let result = async {
        let site = resolve(&state, &actor, &site, Action::Read).await?;
        sites(&state).compliance(&site).await
    }
    .await;
    match result {
        Ok(report) if wants_csv(&headers) => {
            let mut res = report.to_csv().into_response();
            res.headers_mut()
                .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/csv; charset=utf-8"));
            res
        }
        Ok(report) => axum::Json(report).into_response(),
        Err(e) => e.into_response(),
    }
}

/// Takes a snapshot: 201.
pub(super) async fn take(
    State(state): State<ApiState>,
    Extension(actor): Extension<Actor>,
    Path(site): Path<String>,
    Json(body): Json<SnapshotBody>,
) -> Response {
    let result = async {
        let site = resolve(&state, &actor, &site, Action::Manage).await?;
        let taken = sites(&state).snapshot(&actor, &site, &body.label).await?;
        Ok((site.id, taken))
    }
    .await;
    changed(&state, StatusCode::CREATED, result).await
}

/// The snapshots, newest first.
pub(super) async fn list(
    State(state): State<ApiState>,
    Extension(actor): Extension<Actor>,
    Path(site): Path<String>,
) -> Response {
    answer(
        async {
            let list = sites(&state).snapshots(&resolve(&state, &actor, &site, Action::Read).await?).await?;
            Ok(serde_json::json!({ "snapshots": list }))
        }
        .await,
    )
}

/// One snapshot with its content.
pub(super) async fn get(
    State(state): State<ApiState>,
    Extension(actor): Extension<Actor>,
    Path((site, id)): Path<(String, String)>,
) -> Response {
    answer(
        async {
            let site = resolve(&state, &actor, &site, Action::Read).await?;
            sites(&state).snapshot_of(&site, &id).await
        }
        .await,
    )
}

/// Restores a snapshot through the activation path: 200, or 409/422 with the report and
/// nothing changed.
pub(super) async fn restore(
    State(state): State<ApiState>,
    Extension(actor): Extension<Actor>,
    Path((site, id)): Path<(String, String)>,
    Json(body): Json<RestoreBody>,
) -> Response {
    let result = async {
        let site = resolve(&state, &actor, &site, Action::Manage).await?;
        let done = sites(&state).restore(&actor, &site, &id, &body.reason).await?;
        Ok((site.id, done))
    }
    .await;
    changed(&state, StatusCode::OK, result).await
}
