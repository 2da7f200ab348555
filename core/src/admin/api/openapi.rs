//! `GET /api/v1/openapi.json`: an OpenAPI 3 description of the admin API. A test checks that it
//! lists exactly the routes the router serves.

use axum::Json;
use serde_json::{Value, json};

/// The document handler.
pub(super) async fn document() -> Json<Value> {
    Json(spec())
}

fn error_ref(description: &str) -> Value {
    json!({ "description": description,
            "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Error" } } } })
}

fn ok(description: &str) -> Value {
    json!({ "description": description, "content": { "application/json": { "schema": { "type": "object" } } } })
}

fn name_param() -> Value {
    json!({ "name": "name", "in": "path", "required": true, "schema": { "type": "string", "pattern": "^[a-z][a-z0-9_]{0,39}$" } })
}

fn query_param(name: &str, kind: &str, description: &str) -> Value {
    json!({ "name": name, "in": "query", "required": false, "description": description, "schema": { "type": kind } })
}

/// One operation on an extension: 200, 401, 404 plus `extra` responses.
fn on_extension(id: &str, summary: &str, params: Vec<Value>, extra: Value) -> Value {
    let mut parameters = vec![name_param()];
    parameters.extend(params);
    let mut responses = json!({
        "200": ok(summary),
        "401": error_ref("missing or wrong bearer token"),
        "404": error_ref("no such extension"),
    });
    if let (Some(r), Some(e)) = (responses.as_object_mut(), extra.as_object()) {
        r.extend(e.clone());
    }
    json!({ "operationId": id, "summary": summary, "parameters": parameters, "responses": responses })
}

/// The document.
pub(super) fn spec() -> Value {
    let unauthorized = error_ref("missing or wrong bearer token");
    json!({
        "openapi": "3.0.3",
        "info": { "title": "annex admin API", "version": env!("CARGO_PKG_VERSION") },
        "security": [{ "bearer": [] }],
        "paths": {
            "/api/v1/extensions": {
                "get": { "operationId": "listExtensions", "summary": "list, with state and health",
                         "responses": { "200": ok("every extension"), "401": unauthorized } }
            },
            "/api/v1/extensions/{name}": {
                "get": on_extension("getExtension", "details: metadata, permissions, routes, hooks, migrations", vec![], json!({}))
            },
            "/api/v1/extensions/{name}/enable": {
                "post": on_extension("enableExtension", "enable and start", vec![],
                    json!({ "409": error_ref("a dependency is not enabled"), "500": error_ref("enabled, but failed to start") }))
            },
            "/api/v1/extensions/{name}/disable": {
                "post": on_extension("disableExtension", "disable (routes answer 503, tasks stop, stop() is called)",
                    vec![query_param("cascade", "boolean", "also disable every enabled extension that depends on it")],
                    json!({ "409": error_ref("other enabled extensions depend on it; pass cascade=true") }))
            },
            "/api/v1/extensions/{name}/health": {
                "get": on_extension("getExtensionHealth", "current status and history",
                    vec![query_param("limit", "integer", "history entries, 1 to 500 (default 20)")], json!({}))
            },
            "/api/v1/extensions/{name}/metrics": {
                "get": on_extension("getExtensionMetrics", "this extension's figures as JSON", vec![], json!({}))
            },
            "/api/v1/extensions/{name}/config": {
                "get": on_extension("getExtensionConfig", "the config in force and its JSON Schema", vec![], json!({})),
                "put": {
                    "operationId": "putExtensionConfig",
                    "summary": "validated against the JSON Schema, applied without restart, kept in the history",
                    "parameters": [name_param()],
                    "requestBody": { "required": true, "content": { "application/json": { "schema": { "type": "object" } } } },
                    "responses": {
                        "200": ok("applied and stored"),
                        "400": error_ref("the body is not JSON"),
                        "401": unauthorized,
                        "404": error_ref("no such extension"),
                        "422": { "description": "does not fit the schema (one entry per violation), or apply_config refused it",
                                 "content": { "application/json": { "schema": { "$ref": "#/components/schemas/ConfigError" } } } }
                    }
                }
            },
            "/api/v1/audit": {
                "get": {
                    "operationId": "listAudit",
                    "summary": "audit log, newest first, filterable, paginated",
                    "parameters": [
                        query_param("target", "string", "exact target, usually an extension name"),
                        query_param("actor", "string", "exact actor: host, cli, admin, extension:<name>"),
                        query_param("action", "string", "exact action, or a prefix ending in *"),
                        query_param("before", "integer", "only entries with a smaller id (the previous page's next_before)"),
                        query_param("limit", "integer", "1 to 500 (default 50)")
                    ],
                    "responses": { "200": ok("entries and next_before"), "401": unauthorized,
                                   "422": error_ref("an unknown filter or a bad value") }
                }
            },
            "/api/v1/openapi.json": {
                "get": { "operationId": "getOpenApi", "summary": "this document",
                         "responses": { "200": ok("OpenAPI 3 document"), "401": unauthorized } }
            }
        },
        "components": {
            "securitySchemes": { "bearer": { "type": "http", "scheme": "bearer" } },
            "schemas": {
                "Error": {
                    "type": "object",
                    "required": ["error"],
                    "properties": { "error": { "type": "object", "required": ["code", "message"], "properties": {
                        "code": { "type": "string" }, "message": { "type": "string" },
                        "request_id": { "type": "string", "nullable": true } } } }
                },
                "ConfigError": {
                    "type": "object",
                    "properties": { "error": { "type": "object", "properties": {
                        "code": { "type": "string", "enum": ["invalid_config", "config_rejected"] },
                        "message": { "type": "string" },
                        "request_id": { "type": "string", "nullable": true },
                        "errors": { "type": "array", "items": { "type": "object", "properties": {
                            "pointer": { "type": "string" }, "message": { "type": "string" } } } } } } }
                }
            }
        }
    })
}
