//! The pieces the OpenAPI document is built from (`openapi.rs`, `openapi_sites.rs`): references,
//! JSON error responses, parameters.

use serde_json::{Value, json};

/// The largest body axum buffers (its default limit): bigger ones are answered 413.
pub(super) const MAX_BODY: &str = "2 MiB";

pub(super) fn schema_ref(name: &str) -> Value {
    json!({ "$ref": format!("#/components/schemas/{name}") })
}

/// A JSON error response (`{"error": {code, message, request_id}}`).
pub(super) fn error(description: &str) -> Value {
    json!({ "description": description, "content": { "application/json": { "schema": schema_ref("Error") } } })
}

pub(super) fn ok(description: &str, schema: Value) -> Value {
    json!({ "description": description, "content": { "application/json": { "schema": schema } } })
}

pub(super) fn unauthorized() -> Value {
    error("missing or wrong bearer token")
}

pub(super) fn internal() -> Value {
    error("the database failed (details are logged, never sent)")
}

pub(super) fn query_param(name: &str, schema: Value, description: &str) -> Value {
    json!({ "name": name, "in": "query", "required": false, "description": description, "schema": schema })
}
