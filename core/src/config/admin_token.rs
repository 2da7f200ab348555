//! The admin token: from `server.admin_token` / `ANNEX_ADMIN_TOKEN`, else generated once into
//! `<data_dir>/admin-token` (mode 0600). The admin API requires it; on extension routes it
//! authenticates as identity `admin` with role `admin`.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::sync::Arc;

use axum::http::{HeaderMap, header};
use subtle::ConstantTimeEq;

use super::Config;

/// Why the admin token could not be read or generated.
#[derive(Debug, thiserror::Error)]
#[error(
    "cannot {what} the admin token file {path}: {source}; set server.admin_token or ANNEX_ADMIN_TOKEN instead"
)]
pub struct AdminTokenError {
    what: &'static str,
    path: String,
    #[source]
    source: std::io::Error,
}

/// The token the admin API accepts. Cheap to clone.
#[derive(Clone)]
pub(crate) struct AdminToken(Arc<str>);

impl std::fmt::Debug for AdminToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AdminToken(…)")
    }
}

impl AdminToken {
    /// The configured token, else the one in `<data_dir>/admin-token`, else a new one written there.
    pub(crate) fn resolve(config: &Config) -> Result<Self, AdminTokenError> {
        if let Some(token) = config.server.admin_token.as_deref().map(str::trim).filter(|t| !t.is_empty()) {
            return Ok(Self(token.into()));
        }
        let path = config.data_dir.join("admin-token");
        let fail = |what: &'static str, source: std::io::Error| AdminTokenError {
            what,
            path: path.display().to_string(),
            source,
        };
        match std::fs::read_to_string(&path) {
            Ok(existing) if !existing.trim().is_empty() => return Ok(Self(existing.trim().into())),
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
        file.write_all(token.as_bytes())
            .and_then(|()| file.write_all(b"\n"))
            .map_err(|e| fail("write", e))?;
        tracing::info!(path = %path.display(), "admin API token generated; send it as `Authorization: Bearer <token>`");
        Ok(Self(token.into()))
    }

    /// A token given directly (tests, benches).
    #[cfg(any(test, feature = "bench"))]
    pub(crate) fn fixed(token: &str) -> Self {
        Self(token.into())
    }

    /// `None` when the request carries no bearer token; else whether it is this one, compared
    /// in constant time (only the length can leak, and a generated token's length is public).
    /// The scheme is case-insensitive (RFC 7235): `bearer`, `Bearer` and `BEARER` all count.
    pub(crate) fn matches(&self, headers: &HeaderMap) -> Option<bool> {
        let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
        let (scheme, given) = value.split_once(' ')?;
        if !scheme.eq_ignore_ascii_case("bearer") {
            return None;
        }
        Some(bool::from(given.trim().as_bytes().ct_eq(self.0.as_bytes())))
    }
}

#[cfg(test)]
mod tests {
    use axum::http::{HeaderMap, HeaderValue, header};

    use super::AdminToken;

    fn with(value: &'static str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(header::AUTHORIZATION, HeaderValue::from_static(value));
        headers
    }

    #[test]
    fn the_bearer_scheme_is_case_insensitive() {
        let token = AdminToken::fixed("s3cret");
        for value in ["Bearer s3cret", "bearer s3cret", "BEARER s3cret", "bEaReR  s3cret"] {
            assert_eq!(token.matches(&with(value)), Some(true), "{value}");
        }
        assert_eq!(token.matches(&with("bearer wrong")), Some(false));
        assert_eq!(token.matches(&with("Basic czNjcmV0")), None);
        assert_eq!(token.matches(&with("Bearer")), None);
        assert_eq!(token.matches(&HeaderMap::new()), None);
    }
}
