//! Every error annex answers is in its JSON shape, `{"error": {"code", "message",
//! "request_id"}}`, including those axum's extractors produce as plain text (a body over the
//! limit, a wrong content type, malformed JSON, a bad path or query parameter) in extension
//! handlers and in the admin API alike. This layer, outermost but for the request id, rewrites
//! them; JSON error bodies pass untouched, and it costs nothing on a successful response.

use axum::body::Body;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::extension::error::ApiError;

/// Plain-text error bodies are short; a longer one is cut here.
const MAX_TEXT: usize = 16 * 1024;

/// The stable code for an error status that carried no code of its own.
fn code_for(status: StatusCode) -> &'static str {
    match status {
        StatusCode::BAD_REQUEST => "bad_request",
        StatusCode::UNAUTHORIZED => "unauthorized",
        StatusCode::FORBIDDEN => "forbidden",
        StatusCode::NOT_FOUND => "not_found",
        StatusCode::METHOD_NOT_ALLOWED => "method_not_allowed",
        StatusCode::PAYLOAD_TOO_LARGE => "payload_too_large",
        StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported_media_type",
        StatusCode::UNPROCESSABLE_ENTITY => "invalid_body",
        StatusCode::TOO_MANY_REQUESTS => "rate_limited",
        s if s.is_server_error() => "internal_error",
        _ => "bad_request",
    }
}

/// Rewrites a plain-text (or bodiless) error response into the JSON shape; anything else
/// passes untouched.
pub(crate) async fn json_errors(res: Response) -> Response {
    let status = res.status();
    if !(status.is_client_error() || status.is_server_error()) {
        return res;
    }
    let plain = res
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_none_or(|v| v.starts_with("text/plain"));
    if !plain {
        return res;
    }
    let (mut parts, body) = res.into_parts();
    let text = match axum::body::to_bytes(body, MAX_TEXT).await {
        Ok(bytes) => String::from_utf8_lossy(&bytes).trim().to_owned(),
        Err(_) => String::new(),
    };
    let message =
        if text.is_empty() { status.canonical_reason().unwrap_or("error").to_owned() } else { text };
    let shaped = ApiError::new(status, code_for(status), message).into_response();
    let (shaped_parts, shaped_body) = shaped.into_parts();
    parts.headers.remove(header::CONTENT_LENGTH);
    for (name, value) in &shaped_parts.headers {
        parts.headers.insert(name, value.clone());
    }
    Response::from_parts(parts, Body::new(shaped_body))
}
