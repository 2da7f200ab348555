//! Who is calling the admin API. Every request needs `Authorization: Bearer <token>`: the admin
//! token (see `config/admin_token.rs`) is [`Actor::Admin`]; an operator's personal token is
//! [`Actor::Operator`]. The middleware puts the [`Actor`] in the request's extensions, where
//! handlers take it (`Extension<Actor>`) and ask [`Actor::authorize`] what it may do.
//! Host-wide routes (extensions, audit, the OpenAPI document) need [`Action::Administer`].

use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::ApiState;
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

/// 401 unless the request carries the admin token or an enabled operator's personal token.
pub(super) async fn authenticate(State(state): State<ApiState>, mut req: Request, next: Next) -> Response {
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

/// 403 unless the caller may administer the whole host (the admin token, or an operator with
/// role `admin` and no site scope).
pub(super) async fn require_administer(req: Request, next: Next) -> Response {
    let allowed = match req.extensions().get::<Actor>() {
        Some(actor) => actor.authorize(Action::Administer, None),
        None => Err(AccessError::Forbidden("no caller identified".into())),
    };
    match allowed {
        Ok(()) => next.run(req).await,
        Err(e) => access_error(e),
    }
}

/// An [`AccessError`] as a response.
pub(super) fn access_error(e: AccessError) -> Response {
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
