//! Console sessions in `annex.admin_sessions` (migration 0011): created at login, found by the
//! cookie on every request (which also moves `last_seen`), revoked at logout. The browser holds
//! a random 256-bit value; the table keeps only its SHA-256, so a database read gives no session.
//!
//! A session ends after [`IDLE`] without a request or [`ABSOLUTE`] after login, whichever comes
//! first, or at logout.

use std::time::Duration;

use argon2::password_hash::rand_core::{OsRng, RngCore};
use sha2::{Digest, Sha256};
use sqlx::PgPool;
use uuid::Uuid;

use crate::access::{AccessError, Actor, operators};

/// The cookie's name.
pub(crate) const COOKIE: &str = "annex_session";
/// A session unused this long is over.
pub(crate) const IDLE: Duration = Duration::from_secs(30 * 60);
/// A session is over this long after login, used or not.
pub(crate) const ABSOLUTE: Duration = Duration::from_secs(12 * 60 * 60);

/// Who a session is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Holder {
    /// Logged in with the admin token.
    Admin,
    /// Logged in as this operator (password or personal token).
    Operator(Uuid),
}

/// A live session, as found by its cookie.
#[derive(Debug, Clone)]
pub(crate) struct Session {
    /// Who it is.
    pub(crate) holder: Holder,
    /// The token every unsafe request must send as `X-CSRF-Token`.
    pub(crate) csrf_token: String,
    /// When it ends at the latest (UTC, RFC 3339).
    pub(crate) expires_at: String,
}

/// 32 random bytes as hex.
fn random_hex() -> String {
    let mut bytes = [0u8; 32];
    OsRng.fill_bytes(&mut bytes);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn id_of(cookie: &str) -> String {
    Sha256::digest(cookie.as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
}

/// Starts a session; returns the cookie value (shown to the browser only) and the session.
pub(crate) async fn create(pool: &PgPool, holder: &Holder) -> Result<(String, Session), sqlx::Error> {
    let cookie = random_hex();
    let csrf = random_hex();
    // Rows of sessions over for a day are of no use: dropped at each login, so the table stays small.
    sqlx::query(
        "delete from annex.admin_sessions where expires_at < now() - interval '1 day' \
            or revoked_at < now() - interval '1 day' or last_seen < now() - interval '1 day'",
    )
    .execute(pool)
    .await?;
    let (kind, operator) = match holder {
        Holder::Admin => ("admin", None),
        Holder::Operator(id) => ("operator", Some(*id)),
    };
    let expires_at: String = sqlx::query_scalar(
        r#"insert into annex.admin_sessions (id, actor_kind, operator_id, csrf_token, expires_at)
           values ($1, $2, $3, $4, now() + make_interval(secs => $5))
           returning to_char(expires_at at time zone 'utc', 'YYYY-MM-DD"T"HH24:MI:SS"Z"')"#,
    )
    .bind(id_of(&cookie))
    .bind(kind)
    .bind(operator)
    .bind(&csrf)
    .bind(ABSOLUTE.as_secs_f64())
    .fetch_one(pool)
    .await?;
    Ok((cookie, Session { holder: holder.clone(), csrf_token: csrf, expires_at }))
}

/// The live session of this cookie value, if any; marks it used now.
pub(crate) async fn find(pool: &PgPool, cookie: &str) -> Result<Option<Session>, sqlx::Error> {
    let row: Option<(String, Option<Uuid>, String, String)> = sqlx::query_as(
        r#"update annex.admin_sessions set last_seen = now()
            where id = $1 and revoked_at is null and expires_at > now()
              and last_seen > now() - make_interval(secs => $2)
        returning actor_kind, operator_id, csrf_token,
                  to_char(expires_at at time zone 'utc', 'YYYY-MM-DD"T"HH24:MI:SS"Z"')"#,
    )
    .bind(id_of(cookie))
    .bind(IDLE.as_secs_f64())
    .fetch_optional(pool)
    .await?;
    Ok(row.and_then(|(kind, operator, csrf_token, expires_at)| {
        let holder = match (kind.as_str(), operator) {
            ("admin", None) => Holder::Admin,
            ("operator", Some(id)) => Holder::Operator(id),
            _ => return None,
        };
        Some(Session { holder, csrf_token, expires_at })
    }))
}

/// Ends the session of this cookie value; `true` if there was a live one.
pub(crate) async fn revoke(pool: &PgPool, cookie: &str) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "update annex.admin_sessions set revoked_at = now() where id = $1 and revoked_at is null",
    )
    .bind(id_of(cookie))
    .execute(pool)
    .await?;
    Ok(done.rows_affected() > 0)
}

/// The [`Actor`] a live session acts as, with the session; `None` when the cookie names no live
/// session or its operator is gone or disabled.
pub(crate) async fn actor_of(pool: &PgPool, cookie: &str) -> Result<Option<(Actor, Session)>, AccessError> {
    let Some(session) = find(pool, cookie).await? else { return Ok(None) };
    let actor = match &session.holder {
        Holder::Admin => Actor::Admin,
        Holder::Operator(id) => match operators::by_id(pool, *id).await? {
            Some(operator) => Actor::Operator(operator),
            None => return Ok(None),
        },
    };
    Ok(Some((actor, session)))
}

/// The value of cookie `name` in the request's `Cookie` headers.
pub(crate) fn cookie<'a>(headers: &'a axum::http::HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(axum::http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.trim())
        .filter(|v| !v.is_empty())
}

#[cfg(test)]
mod tests {
    use axum::http::{HeaderMap, HeaderValue, header};

    #[test]
    fn the_cookie_is_found_among_others() {
        let mut h = HeaderMap::new();
        h.append(header::COOKIE, HeaderValue::from_static("a=1; annex_session=abc ; b=2"));
        assert_eq!(super::cookie(&h, "annex_session"), Some("abc"));
        assert_eq!(super::cookie(&h, "b"), Some("2"));
        assert_eq!(super::cookie(&h, "annex"), None);
        h.insert(header::COOKIE, HeaderValue::from_static("annex_session="));
        assert_eq!(super::cookie(&h, "annex_session"), None);
    }

    #[test]
    fn ids_are_hashes_of_the_cookie() {
        let (a, b) = (super::random_hex(), super::random_hex());
        assert_ne!(a, b);
        assert_eq!(a.len(), 64);
        assert_eq!(super::id_of(&a), super::id_of(&a));
        assert_ne!(super::id_of(&a), a);
    }
}
