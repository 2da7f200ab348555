//! The request id: taken from `x-request-id` when the client sent a sane one, else generated;
//! echoed on every response and put into every JSON error body.

use axum::extract::{FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderName, HeaderValue};
use axum::response::Response;
use std::convert::Infallible;
use std::fmt;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

/// The header that carries the request id.
const REQUEST_ID_HEADER: HeaderName = HeaderName::from_static("x-request-id");

tokio::task_local! {
    static CURRENT: RequestId;
}

/// The id of the request being served. Extract it in a handler to log or return it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestId(Arc<str>);

impl RequestId {
    /// The header that carries the request id: `x-request-id`.
    pub const HEADER: HeaderName = REQUEST_ID_HEADER;

    /// A fresh id: 32 lowercase hex digits, a random prefix drawn once per process followed by
    /// a counter, so ids are unique across replicas and restarts and sort by arrival within one
    /// process. (A random UUID per request cost a `getrandom` system call on every request.)
    pub fn generate() -> Self {
        static PREFIX: OnceLock<u64> = OnceLock::new();
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let prefix = *PREFIX.get_or_init(|| uuid::Uuid::new_v4().as_u64_pair().0);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let mut hex = [0u8; 32];
        for (i, digit) in hex.iter_mut().enumerate() {
            let (word, shift) = if i < 16 { (prefix, 60 - 4 * i) } else { (n, 60 - 4 * (i - 16)) };
            *digit = b"0123456789abcdef"[((word >> shift) & 0xf) as usize];
        }
        // Hex digits are ASCII: one allocation, straight from the buffer.
        Self(std::str::from_utf8(&hex).unwrap_or_default().into())
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The id of the request the current task is serving, if any.
    pub fn current() -> Option<RequestId> {
        CURRENT.try_with(Clone::clone).ok()
    }

    /// Accepts a client's id if it is short, visible ASCII; anything else is replaced.
    fn from_client(value: &HeaderValue) -> Option<Self> {
        let s = value.to_str().ok()?;
        let ok = !s.is_empty() && s.len() <= 128 && s.bytes().all(|b| b.is_ascii_graphic());
        ok.then(|| Self(s.into()))
    }
}

impl fmt::Display for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl<S: Send + Sync> FromRequestParts<S> for RequestId {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        // The id of the request this task serves (set by `assign`), without a per-request
        // extension insert; outside annex's router, whatever a caller put in the extensions.
        Ok(RequestId::current()
            .or_else(|| parts.extensions.get::<RequestId>().cloned())
            .unwrap_or_else(RequestId::generate))
    }
}

/// Host middleware, outermost: assigns the id (the client's, if sane, else a fresh one), runs
/// `serve` with it as the task's current id, and echoes it on the response.
pub(crate) async fn assign<F: Future<Output = Response>>(
    req: Request,
    serve: impl FnOnce(Request) -> F,
) -> Response {
    let id = req
        .headers()
        .get(REQUEST_ID_HEADER)
        .and_then(RequestId::from_client)
        .unwrap_or_else(RequestId::generate);
    let header = HeaderValue::from_str(id.as_str());
    let mut res = CURRENT.scope(id, serve(req)).await;
    if let Ok(v) = header {
        res.headers_mut().insert(REQUEST_ID_HEADER, v);
    }
    res
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_ids_are_kept_only_when_sane() {
        let ok = HeaderValue::from_static("abc-123");
        assert_eq!(RequestId::from_client(&ok).map(|r| r.to_string()), Some("abc-123".into()));
        assert!(RequestId::from_client(&HeaderValue::from_static("has space")).is_none());
        assert!(RequestId::from_client(&HeaderValue::from_static("")).is_none());
        let long = HeaderValue::from_str(&"x".repeat(129)).expect("ascii");
        assert!(RequestId::from_client(&long).is_none());
    }

    #[test]
    fn generated_ids_are_distinct_32_hex_digit_strings() {
        let ids: Vec<String> = (0..1000).map(|_| RequestId::generate().to_string()).collect();
        for id in &ids {
            assert_eq!(id.len(), 32, "{id}");
            assert!(id.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()), "{id}");
        }
        let distinct: std::collections::HashSet<&String> = ids.iter().collect();
        assert_eq!(distinct.len(), ids.len());
    }
}
