//! The one JSON error shape every failure takes:
//! `{"error": {"code": "snake_case", "message": "…", "request_id": "…"}}`.

use std::borrow::Cow;

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::config::SchemaViolation;
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
    /// One entry per problem, by JSON pointer (validation errors).
    errors: Option<Vec<SchemaViolation>>,
    /// One entry per field of a written row (the entity API's 422s).
    fields: Option<Vec<SchemaViolation>>,
}

impl ApiError {
    /// An error with a status, a stable snake_case code and a message for humans.
    pub fn new(status: StatusCode, code: impl Into<Cow<'static, str>>, message: impl Into<String>) -> Self {
        Self { status, code: code.into(), message: message.into(), errors: None, fields: None }
    }

    /// Adds one entry per problem, each naming the JSON pointer of the offending value; the
    /// body carries them as `error.errors`.
    pub fn with_errors(mut self, errors: Vec<SchemaViolation>) -> Self {
        self.errors = Some(errors);
        self
    }

    /// Adds one entry per field of a written row, each with the JSON pointer of the field in
    /// the request body; the body carries them as `error.fields`.
    pub fn with_fields(mut self, fields: Vec<SchemaViolation>) -> Self {
        self.fields = Some(fields);
        self
    }

    /// The per-field entries added with [`ApiError::with_fields`].
    pub fn fields(&self) -> &[SchemaViolation] {
        self.fields.as_deref().unwrap_or_default()
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
        let mut error = json!({ "code": self.code, "message": self.message, "request_id": request_id });
        if let (Some(errors), Some(map)) = (self.errors, error.as_object_mut()) {
            map.insert("errors".into(), json!(errors));
        }
        if let (Some(fields), Some(map)) = (self.fields, error.as_object_mut()) {
            map.insert("fields".into(), json!(fields));
        }
        let body = json!({ "error": error });
        (self.status, Json(body)).into_response()
    }
}

/// A database error in a handler is a 500; its text is logged, never sent to the client. Text
/// PostgreSQL cannot store (a NUL character, SQLSTATE 22021 or 22P05) is the client's: a 422.
impl From<sqlx::Error> for ApiError {
    fn from(e: sqlx::Error) -> Self {
        let code = e.as_database_error().and_then(|d| d.code().map(|c| c.into_owned()));
        if matches!(code.as_deref(), Some("22021" | "22P05")) {
            return Self::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_text",
                "a text value contains a NUL character (\\u0000), which PostgreSQL cannot store",
            );
        }
        tracing::error!(error = %e, "database error in a handler");
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "database_error", "a database error occurred")
    }
}
