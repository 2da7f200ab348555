//! JSON that PostgreSQL can store and annex can read back: [`Json`], the extractor handlers use
//! instead of axum's, and the check behind it that the controller applies to every config.
//!
//! PostgreSQL refuses NUL characters in `text` and `jsonb` (`\u0000`), and stores a JSON
//! number as its exact decimal value. annex parses such decimals back to the same double
//! (serde_json's `float_roundtrip`), so what remains to refuse before it reaches the database is
//! NUL, in strings and in keys. Refusing it here, with a 422 naming the JSON pointer, is what
//! keeps a client's value from failing deep inside a query.

use axum::extract::{FromRequest, Request};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::config::SchemaViolation;
use crate::extension::error::ApiError;

/// Every place in `value` that PostgreSQL cannot store, as a JSON pointer and a message.
pub(crate) fn unstorable(value: &Value) -> Vec<SchemaViolation> {
    fn walk(value: &Value, pointer: &mut String, out: &mut Vec<SchemaViolation>) {
        const NUL: &str = "contains a NUL character (\\u0000), which PostgreSQL cannot store";
        match value {
            Value::String(s) if s.contains('\0') => {
                out.push(SchemaViolation { pointer: pointer.clone(), message: format!("the string {NUL}") })
            }
            Value::Array(items) => {
                for (i, item) in items.iter().enumerate() {
                    let len = pointer.len();
                    pointer.push_str(&format!("/{i}"));
                    walk(item, pointer, out);
                    pointer.truncate(len);
                }
            }
            Value::Object(map) => {
                for (key, item) in map {
                    let len = pointer.len();
                    pointer.push('/');
                    pointer.push_str(&key.replace('~', "~0").replace('/', "~1").replace('\0', "\\u0000"));
                    if key.contains('\0') {
                        out.push(SchemaViolation {
                            pointer: pointer.clone(),
                            message: format!("the key {NUL}"),
                        });
                    }
                    walk(item, pointer, out);
                    pointer.truncate(len);
                }
            }
            _ => {}
        }
    }
    let mut out = Vec::new();
    walk(value, &mut String::new(), &mut out);
    out
}

/// A JSON request body (and response), like `axum::Json`, with annex's rules: the body must be
/// `application/json`, valid JSON, storable in PostgreSQL (no NUL characters), and fit `T`.
/// Every refusal is in annex's JSON error shape: 415 `unsupported_media_type`, 400
/// `invalid_json`, 413 `payload_too_large`, 422 `invalid_body` with one entry per problem.
///
/// ```
/// use annex_core::{ApiError, Json};
/// #[derive(serde::Deserialize, serde::Serialize)]
/// struct Greeting { name: String }
/// async fn greet(Json(g): Json<Greeting>) -> Result<Json<Greeting>, ApiError> {
///     Ok(Json(g))
/// }
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct Json<T>(pub T);

/// 422 `invalid_body` listing each problem by JSON pointer.
fn invalid_body(errors: Vec<SchemaViolation>) -> Response {
    let list: Vec<String> = errors
        .iter()
        .map(|e| format!("{}: {}", if e.pointer.is_empty() { "(root)" } else { &e.pointer }, e.message))
        .collect();
    let message = format!("the request body cannot be accepted: {}", list.join("; "));
    ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_body", message)
        .with_errors(errors)
        .into_response()
}

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for Json<T> {
    type Rejection = Response;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let is_json = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .is_some_and(|mime| {
                let mime = mime.trim().to_ascii_lowercase();
                mime == "application/json" || (mime.starts_with("application/") && mime.ends_with("+json"))
            });
        if !is_json {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "the request body must be JSON: send `Content-Type: application/json`",
            )
            .into_response());
        }
        let bytes = axum::body::Bytes::from_request(req, state).await.map_err(|rejection| {
            let status = rejection.status();
            let code =
                if status == StatusCode::PAYLOAD_TOO_LARGE { "payload_too_large" } else { "bad_request" };
            ApiError::new(status, code, rejection.body_text()).into_response()
        })?;
        let value: Value = serde_json::from_slice(&bytes).map_err(|e| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid_json",
                format!("the request body is not valid JSON: {e}"),
            )
            .into_response()
        })?;
        let problems = unstorable(&value);
        if !problems.is_empty() {
            return Err(invalid_body(problems));
        }
        T::deserialize(value).map(Json).map_err(|e| {
            invalid_body(vec![SchemaViolation { pointer: String::new(), message: e.to_string() }])
        })
    }
}

impl<T: Serialize> IntoResponse for Json<T> {
    fn into_response(self) -> Response {
        axum::Json(self.0).into_response()
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::unstorable;

    #[test]
    fn nul_is_found_in_strings_and_keys_by_pointer() {
        let found = unstorable(&json!({ "a": ["ok", "b\u{0}c"], "k\u{0}": 1, "x/y": { "z": "\u{0}" } }));
        let pointers: Vec<&str> = found.iter().map(|v| v.pointer.as_str()).collect();
        assert_eq!(pointers, ["/a/1", "/k\\u0000", "/x~1y/z"]);
        assert!(unstorable(&json!({ "fine": [1.5, "text", null, { "n": 1e300 }] })).is_empty());
    }
}
