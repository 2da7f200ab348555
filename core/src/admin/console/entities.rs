//! `/admin/api/entities/{extension}/{*rest}`: the entity API of an extension
//! (`/ext/<extension>/entities/<rest>`), called with the console session. The entity routes are
//! extension routes, which know bearer tokens but not the console's cookie; this handler checks
//! the session (and its CSRF token on changes), then runs the request through the application's
//! own router as the session's actor: identity `admin` with role `admin` for the admin token,
//! `operator:<username>` with the operator's roles otherwise (what their personal token would
//! give). So the entity API's validation and per-role access rules apply unchanged.

use std::sync::{Arc, OnceLock, Weak};

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, Request, State};
use axum::http::{HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use tower::ServiceExt;

use super::ConsoleState;
use crate::access::Actor;
use crate::access::session;
use crate::admin::api::auth::{csrf_refusal, is_unsafe};
use crate::extension::error::ApiError;
use crate::extension::hooks::Identity;

/// The application's router, set once it is built (the console is part of it). The application
/// holds this strong handle; the console's state holds only a [`Weak`] one, so the router does
/// not keep itself alive.
#[derive(Debug, Clone, Default)]
pub(crate) struct AppRouter(Arc<OnceLock<Router>>);

impl AppRouter {
    /// Sets the router; later calls are ignored.
    pub(crate) fn set(&self, router: Router) {
        let _ = self.0.set(router);
    }

    /// The handle the console keeps.
    pub(crate) fn weak(&self) -> Weak<OnceLock<Router>> {
        Arc::downgrade(&self.0)
    }
}

fn identity_of(actor: &Actor) -> Identity {
    match actor {
        Actor::Operator(o) => o
            .roles
            .iter()
            .fold(Identity::new(format!("operator:{}", o.username)), |i, r| i.with_role(r.clone())),
        _ => Identity::new("admin").with_role("admin"),
    }
}

/// Any method on `/admin/api/entities/{extension}/{*rest}`.
pub(super) async fn proxy(
    State(state): State<ConsoleState>,
    Path((extension, rest)): Path<(String, String)>,
    req: Request,
) -> Response {
    let unauthorized = || {
        ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", "no live console session: log in again")
            .into_response()
    };
    let Some(cookie) = session::cookie(req.headers(), session::COOKIE) else { return unauthorized() };
    let (actor, live) = match session::actor_of(state.api.controller.pool(), cookie).await {
        Ok(Some(found)) => found,
        Ok(None) => return unauthorized(),
        Err(e) => return crate::admin::api::auth::access_error(e),
    };
    if is_unsafe(req.method())
        && let Some(refused) = csrf_refusal(req.headers(), &live.csrf_token)
    {
        return refused;
    }
    let Some(router) = state.app.upgrade().and_then(|app| app.get().cloned()) else {
        return ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "starting", "the host is starting")
            .into_response();
    };
    let query = req.uri().query().map(|q| format!("?{q}")).unwrap_or_default();
    let target = format!("/ext/{extension}/entities/{rest}{query}");
    let Ok(uri) = target.parse::<Uri>() else {
        return ApiError::bad_request("the entity path is not a valid URI").into_response();
    };
    let (mut parts, body) = req.into_parts();
    parts.uri = uri;
    // Only the body's type travels: no cookie, no bearer token; the identity is the session's.
    let content_type = parts.headers.get(header::CONTENT_TYPE).cloned();
    parts.headers.clear();
    if let Some(ct) = content_type {
        parts.headers.insert(header::CONTENT_TYPE, ct);
    }
    parts.headers.insert(header::ACCEPT, HeaderValue::from_static("application/json"));
    parts.extensions = Default::default();
    parts.extensions.insert(identity_of(&actor));
    match router.oneshot(Request::from_parts(parts, Body::new(body))).await {
        Ok(res) => res,
        Err(never) => match never {},
    }
}
