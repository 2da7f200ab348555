//! The admin token: from `server.admin_token` / `ANNEX_ADMIN_TOKEN`, else generated once into
//! `<data_dir>/admin-token` (mode 0600); and the middleware that checks it in constant time.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use subtle::ConstantTimeEq;

use crate::api_error::ApiError;
use crate::config::Config;
use crate::error::HostError;
use crate::host::HostInner;

/// The token the admin API accepts.
pub(crate) fn resolve_token(config: &Config) -> Result<String, HostError> {
    if let Some(token) = config.server.admin_token.as_deref().map(str::trim).filter(|t| !t.is_empty()) {
        return Ok(token.to_owned());
    }
    let path = config.data_dir.join("admin-token");
    let fail = |what: &str, e: std::io::Error| {
        HostError::Internal(format!(
            "cannot {what} the admin token file {}: {e}; set server.admin_token or ANNEX_ADMIN_TOKEN instead",
            path.display()
        ))
    };
    match std::fs::read_to_string(&path) {
        Ok(existing) if !existing.trim().is_empty() => return Ok(existing.trim().to_owned()),
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(fail("read", e)),
    }
    std::fs::create_dir_all(&config.data_dir).map_err(|e| fail("create the directory of", e))?;
    // Two v4 UUIDs: 244 random bits, hex.
    let token = format!("{}{}", uuid::Uuid::new_v4().simple(), uuid::Uuid::new_v4().simple());
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&path)
        .map_err(|e| fail("create", e))?;
    file.write_all(token.as_bytes()).and_then(|()| file.write_all(b"\n")).map_err(|e| fail("write", e))?;
    tracing::info!(path = %path.display(), "admin API token generated; send it as `Authorization: Bearer <token>`");
    Ok(token)
}

/// `None` when the request carries no bearer token; else whether it is `expected`, compared in
/// constant time (only the length can leak, and a generated token's length is public).
pub(crate) fn bearer_matches(headers: &axum::http::HeaderMap, expected: &str) -> Option<bool> {
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)?;
    Some(bool::from(given.as_bytes().ct_eq(expected.as_bytes())))
}

/// 401 unless the request carries `Authorization: Bearer <the token>`.
pub(super) async fn require_token(State(host): State<Arc<HostInner>>, req: Request, next: Next) -> Response {
    let matched = bearer_matches(req.headers(), &host.ops.admin_token);
    if matched != Some(true) {
        let message = if matched.is_some() {
            "the admin token is wrong; use the one in server.admin_token, ANNEX_ADMIN_TOKEN or <data_dir>/admin-token"
        } else {
            "the admin API needs `Authorization: Bearer <token>` (server.admin_token, ANNEX_ADMIN_TOKEN or <data_dir>/admin-token)"
        };
        let mut res = ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", message).into_response();
        res.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        return res;
    }
    next.run(req).await
}
