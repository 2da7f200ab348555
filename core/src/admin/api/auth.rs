//! Who is calling the admin API. A request carries `Authorization: Bearer <token>`: the admin
//! token (see `config/admin_token.rs`) is [`Actor::Admin`]; an operator's personal token is
//! [`Actor::Operator`]. Without a bearer token, the console's session cookie (`annex_session`,
//! see `access/session.rs`) stands for the actor who logged in; then every unsafe method
//! (POST, PUT, PATCH, DELETE) must also send `X-CSRF-Token` equal to the session's token, else
//! 403 `csrf_required` / `csrf_mismatch` (a cookie is an ambient credential; a bearer token is
//! not, so bearer calls need no CSRF token). The middleware puts the [`Actor`] in the request's
//! extensions, where handlers take it (`Extension<Actor>`) and ask [`Actor::authorize`] what it
//! may do. Host-wide routes (extensions, audit, the OpenAPI document) need [`Action::Inspect`]
//! to read (GET) and [`Action::Administer`] to change.

use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::ApiState;
use subtle::ConstantTimeEq;

use crate::access::session;
use crate::access::{AccessError, Action, Actor, operators};
use crate::extension::error::ApiError;

fn unauthorized(message: &str) -> Response {
    let mut res = ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", message).into_response();
    res.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    res
}

fn bearer(req: &Request) -> Option<&str> {
    let value = req.headers().get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

/// The header an unsafe console request carries its session's CSRF token in.
pub(crate) const CSRF_HEADER: &str = "x-csrf-token";

/// Whether `method` may change something (and so needs the CSRF token under a session).
pub(crate) fn is_unsafe(method: &Method) -> bool {
    !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

/// `None` if the request's `X-CSRF-Token` is `expected` (compared in constant time), else the
/// 403 to answer.
pub(crate) fn csrf_refusal(req_headers: &axum::http::HeaderMap, expected: &str) -> Option<Response> {
    let forbidden = |code: &'static str, message: &'static str| {
        ApiError::new(StatusCode::FORBIDDEN, code, message).into_response()
    };
    let Some(given) = req_headers.get(CSRF_HEADER) else {
        return Some(forbidden(
            "csrf_required",
            "a change made with the console's session cookie needs the X-CSRF-Token header (GET /admin/api/session gives it)",
        ));
    };
    if bool::from(given.as_bytes().ct_eq(expected.as_bytes())) {
        None
    } else {
        Some(forbidden("csrf_mismatch", "the X-CSRF-Token header is not this session's token"))
    }
}

/// 401 unless the request carries the admin token, an enabled operator's personal token, or
/// (with no bearer token) a live console session cookie, plus its CSRF token when unsafe.
pub(super) async fn authenticate(State(state): State<ApiState>, mut req: Request, next: Next) -> Response {
    if bearer(&req).is_none()
        && let Some(cookie) = session::cookie(req.headers(), session::COOKIE)
    {
        let actor = match session::actor_of(state.controller.pool(), cookie).await {
            Ok(Some((actor, session))) => {
                if is_unsafe(req.method())
                    && let Some(refused) = csrf_refusal(req.headers(), &session.csrf_token)
                {
                    return refused;
                }
                actor
            }
            Ok(None) => {
                return unauthorized(
                    "the console session has ended (logged out, idle or expired): log in again",
                );
            }
            Err(e) => return access_error(e),
        };
        req.extensions_mut().insert(actor);
        return next.run(req).await;
    }
    let matched = state.token.matches(req.headers());
    let actor = if matched == Some(true) {
        Actor::Admin
    } else {
        let found = match bearer(&req) {
            Some(token) => operators::by_token(state.controller.pool(), token).await,
            None => Ok(None),
        };
        match found {
            Ok(Some(operator)) => Actor::Operator(operator),
            Ok(None) if matched.is_some() => {
                return unauthorized(
                    "the token is wrong: use the admin token (server.admin_token, ANNEX_ADMIN_TOKEN or \
                     <data_dir>/admin-token) or an enabled operator's personal token",
                );
            }
            Ok(None) => {
                return unauthorized(
                    "the admin API needs `Authorization: Bearer <token>`: the admin token (server.admin_token, \
                     ANNEX_ADMIN_TOKEN or <data_dir>/admin-token) or an operator's personal token",
                );
            }
            Err(e) => return access_error(e),
        }
    };
    req.extensions_mut().insert(actor);
    next.run(req).await
}

/// 403 unless the caller may use the host-wide route: to read (GET, HEAD), any operator with no
/// site scope ([`Action::Inspect`]: a `viewer` sees); to change, the admin token or an operator
/// with role `admin` and no site scope ([`Action::Administer`]).
pub(super) async fn require_host(req: Request, next: Next) -> Response {
    let action = if is_unsafe(req.method()) { Action::Administer } else { Action::Inspect };
    let allowed = match req.extensions().get::<Actor>() {
        Some(actor) => actor.authorize(action, None),
        None => Err(AccessError::Forbidden("no caller identified".into())),
    };
    match allowed {
        Ok(()) => next.run(req).await,
        Err(e) => access_error(e),
    }
}

/// An [`AccessError`] as a response.
pub(crate) fn access_error(e: AccessError) -> Response {
    let (status, code) = match &e {
        AccessError::InvalidUsername(_)
        | AccessError::InvalidRole(_)
        | AccessError::InvalidPrintedName
        | AccessError::WeakPassword => (StatusCode::UNPROCESSABLE_ENTITY, "invalid_operator"),
        AccessError::UsernameTaken(_) => (StatusCode::CONFLICT, "operator_exists"),
        AccessError::UnknownOperator(_) => (StatusCode::NOT_FOUND, "unknown_operator"),
        AccessError::UnknownSite(_) => (StatusCode::NOT_FOUND, "unknown_site"),
        AccessError::Disabled(_) => (StatusCode::FORBIDDEN, "operator_disabled"),
        AccessError::WrongPassword(_) => (StatusCode::UNAUTHORIZED, "wrong_password"),
        AccessError::Forbidden(_) => (StatusCode::FORBIDDEN, "forbidden"),
        AccessError::Database(err) => {
            tracing::error!(error = %err, "admin API: database error");
            return ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "database_error",
                "a database error occurred; details are logged",
            )
            .into_response();
        }
        AccessError::Hashing(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
    };
    ApiError::new(status, code, e.to_string()).into_response()
}
