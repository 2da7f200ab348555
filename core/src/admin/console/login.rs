//! `POST /admin/api/session` (log in), `GET` (who am I, with the CSRF token), `DELETE` (log
//! out). Log in with `{"username", "password"}` (an enabled operator's argon2id password) or
//! `{"token"}` (the admin token or an operator's personal token). Every refusal is the same 401
//! (`login_failed`, one message for an unknown user, a wrong password and a disabled operator)
//! and is audited (`console.login_failed`, with the reason); attempts are limited per username.

use std::num::NonZeroU32;

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use serde::Deserialize;
use serde_json::{Value, json};

use super::ConsoleState;
use crate::access::session::{self, Holder, Session};
use crate::access::{Action, Actor, operators};
use crate::admin::api::auth::csrf_refusal;
use crate::extension::error::ApiError;
use crate::observe::audit::{self, AuditEntry};

/// Login attempts allowed per username (or per token login) per minute, as a burst.
const ATTEMPTS_PER_MINUTE: u32 = 10;

/// The limiter of login attempts, keyed by username (`token` for token logins).
pub(crate) struct Attempts(DefaultKeyedRateLimiter<String>);

impl std::fmt::Debug for Attempts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Attempts(…)")
    }
}

impl Attempts {
    pub(crate) fn new() -> Self {
        let n = NonZeroU32::new(ATTEMPTS_PER_MINUTE).unwrap_or(NonZeroU32::MIN);
        Self(RateLimiter::keyed(Quota::per_minute(n)))
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct LoginBody {
    username: Option<String>,
    password: Option<String>,
    token: Option<String>,
}

const FAILED: &str = "wrong username or password (or token)";

fn failed() -> Response {
    ApiError::new(StatusCode::UNAUTHORIZED, "login_failed", FAILED).into_response()
}

fn internal(e: impl std::fmt::Display) -> Response {
    tracing::error!(error = %e, "console login: database error");
    ApiError::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        "database_error",
        "a database error occurred; details are logged",
    )
    .into_response()
}

/// The document `GET` and `POST` answer with.
fn whoami(actor: &Actor, session: &Session) -> Value {
    let (username, printed_name, roles, sites) = match actor {
        Actor::Operator(o) => {
            (Some(o.username.clone()), Some(o.printed_name.clone()), o.roles.clone(), o.site_slugs.clone())
        }
        _ => (None, None, vec!["admin".to_owned()], None),
    };
    json!({
        "actor": actor.audit_name(),
        "kind": if matches!(actor, Actor::Operator(_)) { "operator" } else { "admin" },
        "username": username,
        "printed_name": printed_name,
        "roles": roles,
        "sites": sites,
        "may_inspect": actor.authorize(Action::Inspect, None).is_ok(),
        "may_administer": actor.authorize(Action::Administer, None).is_ok(),
        "csrf_token": session.csrf_token,
        "expires_at": session.expires_at,
        "idle_timeout_seconds": session::IDLE.as_secs(),
    })
}

/// Whether the request came over TLS (to a proxy that says so).
fn over_tls(headers: &HeaderMap) -> bool {
    headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').next().is_some_and(|p| p.trim().eq_ignore_ascii_case("https")))
}

fn set_cookie(res: &mut Response, value: &str, max_age: u64, secure: bool) {
    let cookie = format!(
        "{}={value}; Path=/; HttpOnly; SameSite=Strict; Max-Age={max_age}{}",
        session::COOKIE,
        if secure { "; Secure" } else { "" }
    );
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        res.headers_mut().append(header::SET_COOKIE, v);
    }
}

async fn refuse(state: &ConsoleState, target: &str, reason: &str) -> Response {
    let entry =
        AuditEntry::new("anonymous", "console.login_failed", target).details(json!({ "reason": reason }));
    audit::record_or_log(state.api.controller.pool(), entry).await;
    failed()
}

/// `POST /admin/api/session`.
pub(super) async fn login(State(state): State<ConsoleState>, headers: HeaderMap, body: Bytes) -> Response {
    let body: LoginBody = match serde_json::from_slice(&body) {
        Ok(b) => b,
        Err(e) => {
            return ApiError::bad_request(format!(
                "the body must be {{\"username\", \"password\"}} or {{\"token\"}} as JSON: {e}"
            ))
            .into_response();
        }
    };
    let pool = state.api.controller.pool();
    let (actor, target) = match (body.username, body.password, body.token) {
        (Some(username), Some(password), None) => {
            let target = format!("operators/{}", username.chars().take(64).collect::<String>());
            if state.attempts.0.check_key(&format!("user:{username}")).is_err() {
                return ApiError::new(
                    StatusCode::TOO_MANY_REQUESTS,
                    "too_many_attempts",
                    format!(
                        "too many login attempts for this username: at most {ATTEMPTS_PER_MINUTE} a minute"
                    ),
                )
                .into_response();
            }
            match operators::login(pool, &username, &password).await {
                Ok(Ok(operator)) => (Actor::Operator(operator), target),
                Ok(Err(refused)) => return refuse(&state, &target, refused.code()).await,
                Err(e) => return internal(e),
            }
        }
        (None, None, Some(token)) => {
            if state.attempts.0.check_key(&"token".to_owned()).is_err() {
                return ApiError::new(
                    StatusCode::TOO_MANY_REQUESTS,
                    "too_many_attempts",
                    "too many token logins; wait a minute",
                )
                .into_response();
            }
            let mut as_header = HeaderMap::new();
            if let Ok(v) = HeaderValue::from_str(&format!("Bearer {}", token.trim())) {
                as_header.insert(header::AUTHORIZATION, v);
            }
            if state.api.token.matches(&as_header) == Some(true) {
                (Actor::Admin, "admin-token".to_owned())
            } else {
                match operators::by_token(pool, token.trim()).await {
                    Ok(Some(operator)) => {
                        let target = format!("operators/{}", operator.username);
                        (Actor::Operator(operator), target)
                    }
                    Ok(None) => return refuse(&state, "token", "unknown_token").await,
                    Err(e) => return internal(e),
                }
            }
        }
        _ => {
            return ApiError::bad_request("send either \"username\" and \"password\", or \"token\"")
                .into_response();
        }
    };
    let holder = match &actor {
        Actor::Operator(o) => Holder::Operator(o.id),
        _ => Holder::Admin,
    };
    let (cookie, session) = match session::create(pool, &holder).await {
        Ok(created) => created,
        Err(e) => return internal(e),
    };
    audit::record_or_log(pool, AuditEntry::new(actor.audit_name(), "console.login", target)).await;
    let mut res = Json(whoami(&actor, &session)).into_response();
    set_cookie(&mut res, &cookie, session::ABSOLUTE.as_secs(), over_tls(&headers));
    res
}

async fn live(state: &ConsoleState, headers: &HeaderMap) -> Result<(String, Actor, Session), Box<Response>> {
    let not_logged_in = || {
        ApiError::new(StatusCode::UNAUTHORIZED, "not_logged_in", "no console session: log in").into_response()
    };
    let Some(cookie) = session::cookie(headers, session::COOKIE) else {
        return Err(Box::new(not_logged_in()));
    };
    match session::actor_of(state.api.controller.pool(), cookie).await {
        Ok(Some((actor, session))) => Ok((cookie.to_owned(), actor, session)),
        Ok(None) => Err(Box::new(not_logged_in())),
        Err(e) => Err(Box::new(internal(e))),
    }
}

/// `GET /admin/api/session`: who is logged in, their roles, the CSRF token.
pub(super) async fn current(State(state): State<ConsoleState>, headers: HeaderMap) -> Response {
    match live(&state, &headers).await {
        Ok((_, actor, session)) => {
            ([(header::CACHE_CONTROL, "no-store")], Json(whoami(&actor, &session))).into_response()
        }
        Err(res) => *res,
    }
}

/// `DELETE /admin/api/session`: log out (needs the CSRF token, like every change).
pub(super) async fn logout(State(state): State<ConsoleState>, headers: HeaderMap) -> Response {
    let (cookie, actor, session) = match live(&state, &headers).await {
        Ok(found) => found,
        Err(res) => return *res,
    };
    if let Some(refused) = csrf_refusal(&headers, &session.csrf_token) {
        return refused;
    }
    let pool = state.api.controller.pool();
    if let Err(e) = session::revoke(pool, &cookie).await {
        return internal(e);
    }
    audit::record_or_log(pool, AuditEntry::new(actor.audit_name(), "console.logout", "session")).await;
    let mut res = StatusCode::NO_CONTENT.into_response();
    set_cookie(&mut res, "", 0, over_tls(&headers));
    res
}
