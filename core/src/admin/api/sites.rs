//! The sites part of the admin API: `GET|POST /api/v1/sites`, `GET /api/v1/sites/{site}`,
//! `POST …/suspend|resume`, `GET …/features`, `GET …/capabilities/{capability}`, `GET …/status`,
//! and what every site handler shares: the [`SiteError`] response, resolving `{site}` for the
//! caller, and [`after_site_change`].
//!
//! Every handler resolves `{site}` (slug or id) for the calling [`Actor`]: 404 `unknown_site`
//! when it does not exist or the caller may not see it (no existence leak), 403 when the caller
//! sees it but may not do this. The rules are in [`crate::access::Actor::authorize`]; the
//! operations in [`crate::sites::Sites`], which the CLI calls too.

use axum::Extension;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::json;
use uuid::Uuid;

use super::ApiState;
use crate::access::{Action, Actor};
use crate::extension::json::Json;
use crate::observe::request_id::RequestId;
use crate::sites::{Site, SiteError, Sites};

impl IntoResponse for SiteError {
    fn into_response(self) -> Response {
        if self.is_internal() {
            tracing::error!(error = %self, "admin API: site operation failed");
            let body = json!({ "error": { "code": self.code(), "message": "a database error occurred; details are logged",
                                          "request_id": RequestId::current().map(|r| r.to_string()) } });
            return (self.status(), axum::Json(body)).into_response();
        }
        let mut error = json!({
            "code": self.code(),
            "message": self.to_string(),
            "request_id": RequestId::current().map(|r| r.to_string()),
        });
        if let SiteError::InvalidConfig { errors, .. } = &self {
            error["errors"] = json!(errors);
        }
        let mut body = json!({ "error": error });
        if let Some(report) = self.report() {
            body["report"] = json!(report);
        }
        (self.status(), axum::Json(body)).into_response()
    }
}

/// The site operations over this host's database and compiled-in set.
pub(super) fn sites(state: &ApiState) -> Sites<'_> {
    Sites::new(state.controller.pool(), state.controller.catalog(), state.controller.origin())
}

/// `{site}` for `actor`, who wants to do `action` there.
pub(super) async fn resolve(
    state: &ApiState,
    actor: &Actor,
    site: &str,
    action: Action,
) -> Result<Site, SiteError> {
    sites(state).resolve(actor, site, action).await
}

/// A read's answer: 200 with the document, or the error.
pub(super) fn answer<T: Serialize>(result: Result<T, SiteError>) -> Response {
    match result {
        Ok(v) => axum::Json(v).into_response(),
        Err(e) => e.into_response(),
    }
}

/// A change's answer: after [`after_site_change`], `status` with the document; or the error.
pub(super) async fn changed<T: Serialize>(
    state: &ApiState,
    status: StatusCode,
    result: Result<(Uuid, T), SiteError>,
) -> Response {
    match result {
        Ok((site, v)) => {
            after_site_change(state, site).await;
            (status, axum::Json(v)).into_response()
        }
        Err(e) => e.into_response(),
    }
}

/// Called after every committed change at a site (activation, deactivation, sign-off,
/// suspension, restore, creation, snapshot), on this replica: this replica's per-(site,
/// extension) gate table is reloaded for the site right away, so the next request here sees the
/// change; the other replicas reload on `NOTIFY annex_sites` (`runtime/site_sync.rs`). A failed
/// reload is logged: the change is committed, and the notification or the periodic resync
/// catches up.
pub(crate) async fn after_site_change(state: &ApiState, site_id: Uuid) {
    let Some(runtime) = state.controller.runtime() else { return };
    if let Err(e) = runtime.site_gates().reload_site(runtime.pool(), site_id).await {
        tracing::warn!(error = %e, site = %site_id, "site gate reload after a change failed; NOTIFY will catch up");
    }
}

/// `POST /api/v1/sites` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct NewSite {
    slug: String,
    name: String,
}

/// Creates a site: 201, 409 `site_exists`, 422 `invalid_slug` / `invalid_site_name`.
pub(super) async fn create(
    State(state): State<ApiState>,
    Extension(actor): Extension<Actor>,
    Json(new): Json<NewSite>,
) -> Response {
    let result = sites(&state).create(&actor, &new.slug, &new.name).await.map(|s| (s.id, s));
    changed(&state, StatusCode::CREATED, result).await
}

/// The sites the caller may see.
pub(super) async fn list(State(state): State<ApiState>, Extension(actor): Extension<Actor>) -> Response {
    answer(sites(&state).list(&actor).await.map(|list| json!({ "sites": list })))
}

/// One site.
pub(super) async fn show(
    State(state): State<ApiState>,
    Extension(actor): Extension<Actor>,
    Path(site): Path<String>,
) -> Response {
    answer(resolve(&state, &actor, &site, Action::Read).await)
}

async fn set_suspended(state: ApiState, actor: Actor, site: String, suspended: bool) -> Response {
    let result = async {
        let site = resolve(&state, &actor, &site, Action::Administer).await?;
        let site = sites(&state).set_suspended(&actor, &site, suspended).await?;
        Ok((site.id, site))
    }
    .await;
    changed(&state, StatusCode::OK, result).await
}

/// Suspends a site: its extension routes answer 503, nothing at it may change.
pub(super) async fn suspend(
    State(state): State<ApiState>,
    Extension(actor): Extension<Actor>,
    Path(site): Path<String>,
) -> Response {
    set_suspended(state, actor, site, true).await
}

/// Resumes a suspended site.
pub(super) async fn resume(
    State(state): State<ApiState>,
    Extension(actor): Extension<Actor>,
    Path(site): Path<String>,
) -> Response {
    set_suspended(state, actor, site, false).await
}

/// The active extensions: version, hash, capabilities.
pub(super) async fn features(
    State(state): State<ApiState>,
    Extension(actor): Extension<Actor>,
    Path(site): Path<String>,
) -> Response {
    answer(async { sites(&state).features(&resolve(&state, &actor, &site, Action::Read).await?).await }.await)
}

/// Which active extension provides a capability; 404 `capability_not_provided` if none.
pub(super) async fn capability(
    State(state): State<ApiState>,
    Extension(actor): Extension<Actor>,
    Path((site, capability)): Path<(String, String)>,
) -> Response {
    answer(
        async {
            let site = resolve(&state, &actor, &site, Action::Read).await?;
            sites(&state).capability(&site, &capability).await
        }
        .await,
    )
}

/// Every compiled-in extension's state at the site, validity, open conflicts, missing sign-offs.
pub(super) async fn status(
    State(state): State<ApiState>,
    Extension(actor): Extension<Actor>,
    Path(site): Path<String>,
) -> Response {
    answer(async { sites(&state).status(&resolve(&state, &actor, &site, Action::Read).await?).await }.await)
}
