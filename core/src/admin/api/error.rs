//! [`ControlError`] as an HTTP response; 422s list one entry per schema violation.

use axum::Json;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::extension::error::ApiError;
use crate::observe::request_id::RequestId;
use crate::runtime::control_error::ControlError;

impl IntoResponse for ControlError {
    fn into_response(self) -> Response {
        match &self {
            ControlError::InvalidConfig { errors, .. } => {
                let body = json!({ "error": {
                    "code": self.code(),
                    "message": self.to_string(),
                    "request_id": RequestId::current().map(|r| r.to_string()),
                    "errors": errors,
                }});
                (self.status(), Json(body)).into_response()
            }
            ControlError::Database(e) => {
                tracing::error!(error = %e, "admin API: database error");
                ApiError::new(self.status(), self.code(), "a database error occurred; details are logged")
                    .into_response()
            }
            _ => ApiError::new(self.status(), self.code(), self.to_string()).into_response(),
        }
    }
}
