//! The one JSON error shape every failure takes:
//! `{"error": {"code": "snake_case", "message": "…", "request_id": "…"}}`.

use std::borrow::Cow;

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::observe::request_id::RequestId;

/// An HTTP error response in annex's JSON shape. Return it from handlers.
///
/// ```
/// use annex_core::ApiError;
/// use axum::http::StatusCode;
/// let e = ApiError::not_found("no item 7");
/// assert_eq!(e.status(), StatusCode::NOT_FOUND);
/// assert_eq!(e.code(), "not_found");
/// ```
#[derive(Debug, Clone)]
pub struct ApiError {
    status: StatusCode,
    code: Cow<'static, str>,
    message: String,
}

impl ApiError {
    /// An error with a status, a stable snake_case code and a message for humans.
    pub fn new(status: StatusCode, code: impl Into<Cow<'static, str>>, message: impl Into<String>) -> Self {
        Self { status, code: code.into(), message: message.into() }
    }

    /// 400 `bad_request`.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }

    /// 404 `not_found`.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    /// 500 `internal_error`. The message goes to the client: keep internals out of it.
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal_error", message)
    }

    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The stable code.
    pub fn code(&self) -> &str {
        &self.code
    }

    /// The message.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}: {}", self.status.as_u16(), self.code, self.message)
    }
}

impl std::error::Error for ApiError {}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let request_id = RequestId::current().map(|r| r.to_string());
        let body = json!({
            "error": { "code": self.code, "message": self.message, "request_id": request_id }
        });
        (self.status, Json(body)).into_response()
    }
}

/// A database error in a handler is a 500; its text is logged, never sent to the client.
impl From<sqlx::Error> for ApiError {
    fn from(e: sqlx::Error) -> Self {
        tracing::error!(error = %e, "database error in a handler");
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "database_error", "a database error occurred")
    }
}
