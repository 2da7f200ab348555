//! `GET /api/v1/openapi.json`: an OpenAPI 3 description of the admin API, exact to what the
//! server answers: parameter bounds and enums, every status an operation can answer, and the
//! shape of each body. A unit test checks that it lists exactly the routes the router serves;
//! schemathesis (`.ci/schemathesis.sh`) checks it against a live server in CI.

use axum::Json;
use axum::extract::State;
use serde_json::{Value, json};

use super::ApiState;
use crate::plan::catalog::Catalog;

use super::openapi_parts::{MAX_BODY, error, internal, ok, query_param, schema_ref, unauthorized};

/// The document handler.
pub(super) async fn document(State(state): State<ApiState>) -> Json<Value> {
    Json(spec(state.controller.catalog()))
}

fn name_param() -> Value {
    json!({ "name": "name", "in": "path", "required": true,
            "description": "the extension's name",
            "schema": { "type": "string", "pattern": "^[a-z][a-z0-9_]{0,39}$" } })
}

/// Where stateful testing (and a reader) finds names: the list's first extension.
fn name_links() -> Value {
    let link = |operation: &str| json!({ "operationId": operation, "parameters": { "name": "$response.body#/extensions/0/name" } });
    json!({
        "getExtension": link("getExtension"),
        "enableExtension": link("enableExtension"),
        "disableExtension": link("disableExtension"),
        "getExtensionHealth": link("getExtensionHealth"),
        "getExtensionMetrics": link("getExtensionMetrics"),
        "getExtensionConfig": link("getExtensionConfig"),
        "putExtensionConfig": link("putExtensionConfig"),
    })
}

/// One operation on `/api/v1/extensions/{name}…`: 200 with `body`, 400 (a name that is not
/// UTF-8 once percent-decoded), 401, 404, plus `extra` responses.
fn on_extension(id: &str, summary: &str, body: Value, params: Vec<Value>, extra: Value) -> Value {
    let mut parameters = vec![name_param()];
    parameters.extend(params);
    let mut responses = json!({
        "200": ok(summary, body),
        "400": error("the name is not valid UTF-8 once percent-decoded"),
        "401": unauthorized(),
        "404": error("no extension of that name is compiled in"),
    });
    if let (Some(r), Some(e)) = (responses.as_object_mut(), extra.as_object()) {
        r.extend(e.clone());
    }
    json!({ "operationId": id, "summary": summary, "parameters": parameters, "responses": responses })
}

/// The document.
pub(super) fn spec(catalog: &Catalog) -> Value {
    let mut doc = json!({
        "openapi": "3.0.3",
        "info": { "title": "annex admin API", "version": env!("CARGO_PKG_VERSION"),
                  "description": "Every operation needs `Authorization: Bearer <token>` (the admin token or an operator's personal token), or the admin console's session cookie `annex_session` (docs/console.md), which must send its `X-CSRF-Token` with every POST, PUT, PATCH and DELETE (else 403 `csrf_required` / `csrf_mismatch`). Host-wide routes are readable by any operator with no site scope and changed only by role `admin`. Other methods on these paths answer 405 with an `Allow` header." },
        "security": [{ "bearer": [] }],
        "paths": {
            "/api/v1/extensions": {
                "get": {
                    "operationId": "listExtensions",
                    "summary": "every compiled-in extension, with its switch, state and latest health",
                    "responses": {
                        "200": { "description": "every extension",
                                 "content": { "application/json": { "schema": {
                                     "type": "object", "required": ["extensions"],
                                     "properties": { "extensions": { "type": "array", "items": schema_ref("ExtensionSummary") } } } } },
                                 "links": name_links() },
                        "401": unauthorized(),
                        "500": internal()
                    }
                }
            },
            "/api/v1/extensions/{name}": {
                "get": on_extension("getExtension", "details: metadata, permissions, routes, hooks, migrations, config and its schema (the document `annex extensions info --json` prints)",
                    schema_ref("ExtensionDetails"), vec![], json!({ "500": internal() }))
            },
            "/api/v1/extensions/{name}/enable": {
                "post": on_extension("enableExtension", "enable it and start it on this replica (the others follow within a second)",
                    schema_ref("SwitchReport"),
                    vec![],
                    json!({ "409": error("a dependency is not enabled or not running (code dependencies_disabled)"),
                            "500": error("enabled, but init or start failed (code start_failed), or the database failed") }))
            },
            "/api/v1/extensions/{name}/disable": {
                "post": on_extension("disableExtension", "disable it: its routes answer 503, its tasks stop, stop() is called",
                    schema_ref("SwitchReport"),
                    vec![query_param("cascade", json!({ "type": "boolean", "default": false }),
                        "also disable every enabled extension that depends on it: `true` or `false`")],
                    json!({ "400": error("cascade is neither true nor false, or the name is not valid UTF-8 once percent-decoded (code bad_request)"),
                            "409": error("other enabled extensions depend on it (code has_dependents); pass cascade=true"),
                            "500": internal() }))
            },
            "/api/v1/extensions/{name}/health": {
                "get": on_extension("getExtensionHealth", "latest status and the history of checks, newest first",
                    schema_ref("Health"),
                    vec![query_param("limit", json!({ "type": "integer", "minimum": 1, "maximum": 500, "default": 20 }),
                        "history entries to return")],
                    json!({ "422": error("limit is not a whole number from 1 to 500 (code invalid_query)"), "500": internal() }))
            },
            "/api/v1/extensions/{name}/metrics": {
                "get": on_extension("getExtensionMetrics", "every replica's extension_* series of it, by family; this replica's live and first",
                    schema_ref("ExtensionFigures"),
                    vec![], json!({ "500": internal() }))
            },
            "/api/v1/extensions/{name}/config": {
                "get": on_extension("getExtensionConfig", "the config in force and the JSON Schema it must fit",
                    schema_ref("ConfigView"),
                    vec![], json!({ "500": internal() })),
                "put": {
                    "operationId": "putExtensionConfig",
                    "summary": "replace the config: validated against the extension's JSON Schema, applied without a restart, kept in the history",
                    "parameters": [name_param()],
                    "requestBody": { "required": true, "description": "the new config: a JSON object the extension's schema accepts (any object if it has none), with no NUL characters",
                                     "content": { "application/json": { "schema": {} } } },
                    "responses": {
                        "200": ok("applied and stored", schema_ref("ConfigView")),
                        "400": error("the body is not JSON, or the name is not valid UTF-8 once percent-decoded (code bad_request)"),
                        "401": unauthorized(),
                        "404": error("no extension of that name is compiled in"),
                        "413": error(&format!("the body is larger than {MAX_BODY}")),
                        "422": { "description": "not an object, a NUL character, or does not fit the schema (code invalid_config, one entry per violation in errors), or apply_config refused it (code config_rejected); the old config stays",
                                 "content": { "application/json": { "schema": schema_ref("ConfigError") } } },
                        "500": internal()
                    }
                }
            },
            "/api/v1/extensions/{name}/entities": {
                "get": on_extension("getExtensionEntities", "its entity declaration in this build (null if it declares none) and the versions applied to the database",
                                    schema_ref("EntitiesView"), vec![], json!({ "500": internal() }))
            },
            "/api/v1/entities/validate": {
                "post": {
                    "operationId": "validateEntities",
                    "summary": "check an entity declaration, alone or as `extension` would declare it (against its dependencies and every compiled-in declaration); registers nothing. Every problem is in the answer.",
                    "parameters": [query_param("extension", json!({ "type": "string" }), "check as this compiled-in extension's declaration")],
                    "requestBody": { "required": true, "description": "the declaration (the JSON form of entities.toml)",
                                     "content": { "application/json": { "schema": {} } } },
                    "responses": {
                        "200": ok("the problems, each with a JSON pointer into the declaration (valid: true when there are none)", schema_ref("DeclarationCheck")),
                        "400": error("the body is not JSON (code bad_request)"),
                        "401": unauthorized(),
                        "404": error("`extension` names no compiled-in extension"),
                        "413": error(&format!("the body is larger than {MAX_BODY}")),
                        "415": error("the body is not application/json"),
                        "422": error("the body contains a NUL character")
                    }
                }
            },
            "/api/v1/audit": {
                "get": {
                    "operationId": "listAudit",
                    "summary": "audit log, newest first, filterable, paginated by id",
                    "parameters": [
                        query_param("target", json!({ "type": "string" }), "exact target, usually an extension name"),
                        query_param("actor", json!({ "type": "string" }), "exact actor: host, cli, admin, config-file, extension:<name>"),
                        query_param("action", json!({ "type": "string" }), "exact action, or a prefix ending in *"),
                        query_param("since", json!({ "type": "string", "format": "date-time" }), "only entries at or after this time (RFC 3339)"),
                        query_param("until", json!({ "type": "string", "format": "date-time" }), "only entries before this time (RFC 3339)"),
                        query_param("before", json!({ "type": "integer", "format": "int64" }), "only entries with a smaller id (the previous page's next_before)"),
                        query_param("limit", json!({ "type": "integer", "minimum": 1, "maximum": 500, "default": 50 }), "entries per page")
                    ],
                    "responses": {
                        "200": ok("entries and the next page's `before`", json!({
                            "type": "object", "required": ["entries", "next_before"],
                            "properties": { "entries": { "type": "array", "items": schema_ref("AuditEntry") },
                                            "next_before": { "type": "integer", "nullable": true,
                                                             "description": "null on the last page" } } })),
                        "401": unauthorized(),
                        "422": error("an unknown query parameter, limit or before out of range or not an integer (code invalid_query), or a filter with a NUL character (code invalid_text)"),
                        "500": internal()
                    }
                }
            },
            "/api/v1/audit/verify": {
                "get": {
                    "operationId": "verifyAudit",
                    "summary": "check the audit log's hash chain end to end: each row's hash against its content, each prev_hash against the row before (the document `annex audit verify --json` prints)",
                    "responses": {
                        "200": ok("the verdict, intact or the first broken link (a broken chain is a finding, not an error)",
                                  schema_ref("AuditChainVerdict")),
                        "401": unauthorized(),
                        "500": internal()
                    }
                }
            },
            "/api/v1/openapi.json": {
                "get": { "operationId": "getOpenApi", "summary": "this document",
                         "responses": { "200": ok("OpenAPI 3 document", json!({ "type": "object" })), "401": unauthorized() } }
            }
        },
        "components": {
            "securitySchemes": { "bearer": { "type": "http", "scheme": "bearer" } },
            "schemas": schemas()
        }
    });
    // The site routes are described in openapi_sites.rs.
    merge(&mut doc["paths"], super::openapi_sites::paths());
    merge(&mut doc["components"]["schemas"], super::openapi_sites::schemas());
    // The stage registry (openapi_pipelines.rs).
    merge(&mut doc["paths"], super::openapi_pipelines::paths());
    merge(&mut doc["components"]["schemas"], super::openapi_pipelines::schemas());
    // Every declared entity's REST API (openapi_entities.rs).
    let (paths, schemas) = super::openapi_entities::parts(catalog);
    merge(&mut doc["paths"], paths);
    merge(&mut doc["components"]["schemas"], schemas);
    doc
}

fn merge(into: &mut Value, more: Value) {
    if let (Some(into), Value::Object(more)) = (into.as_object_mut(), more) {
        into.extend(more);
    }
}

/// The fields of `ExtensionSummary`, which `ExtensionDetails` carries too.
fn summary_properties() -> Value {
    json!({
        "name": { "type": "string" }, "version": { "type": "string" }, "description": { "type": "string" },
        "enabled": { "type": "boolean" }, "state": schema_ref("State"),
        "reason": { "type": "string", "nullable": true, "description": "why it failed or was disabled" },
        "health": schema_ref("HealthStatus"),
        "compiled_in": { "type": "boolean" }
    })
}

fn details_properties() -> Value {
    let mut properties = summary_properties();
    let more = json!({
        "dependencies": { "type": "array", "items": { "type": "object", "required": ["name", "requirement"],
            "properties": { "name": { "type": "string" }, "requirement": { "type": "string" } } } },
        "dependents": { "type": "array", "items": { "type": "string" } },
        "permissions": { "type": "object", "required": ["required", "granted"], "properties": {
            "required": { "type": "array", "items": { "type": "string" } },
            "granted": { "type": "array", "items": { "type": "string" } } } },
        "routes": { "type": "array", "items": { "type": "object", "required": ["method", "path"],
            "properties": { "method": { "type": "string" }, "path": { "type": "string" } } } },
        "hooks": { "type": "array", "items": { "type": "object", "required": ["point", "id", "priority", "prefix"],
            "properties": { "point": { "type": "string" }, "id": { "type": "string" }, "priority": { "type": "integer" },
                            "prefix": { "type": "string", "nullable": true } } } },
        "migrations": { "type": "array", "items": { "type": "object", "required": ["version", "description", "reversible"],
            "properties": { "version": { "type": "integer" }, "description": { "type": "string" },
                            "reversible": { "type": "boolean" } } } },
        "config": { "type": "object", "nullable": true, "description": "null when the stored config cannot be read" },
        "config_schema": { "type": "object", "nullable": true },
        "sites": { "type": "object", "additionalProperties": false,
            "required": ["site_scoped", "provides", "requires_capabilities", "conflicts_with", "signoffs"],
            "properties": {
                "site_scoped": { "type": "boolean" },
                "provides": { "type": "array", "items": { "type": "object", "required": ["name", "version", "exclusive"],
                    "properties": { "name": { "type": "string" }, "version": { "type": "string" }, "exclusive": { "type": "boolean" } } } },
                "requires_capabilities": { "type": "array", "items": { "type": "object", "required": ["name", "requirement"],
                    "properties": { "name": { "type": "string" }, "requirement": { "type": "string" } } } },
                "conflicts_with": { "type": "array", "items": { "type": "string" } },
                "signoffs": { "type": "array", "items": { "type": "object", "required": ["aspect", "roles"],
                    "properties": { "aspect": { "type": "string" }, "roles": { "type": "array", "items": { "type": "string" } } } } } } }
    });
    if let (Some(p), Some(m)) = (properties.as_object_mut(), more.as_object()) {
        p.extend(m.clone());
    }
    properties
}

fn schemas() -> Value {
    json!({
        "Error": {
            "type": "object", "required": ["error"],
            "properties": { "error": { "type": "object", "required": ["code", "message"], "properties": {
                "code": { "type": "string" }, "message": { "type": "string" },
                "request_id": { "type": "string", "nullable": true } } } }
        },
        "ConfigError": {
            "type": "object", "required": ["error"],
            "properties": { "error": { "type": "object", "required": ["code", "message"], "properties": {
                "code": { "type": "string", "enum": ["invalid_config", "config_rejected"] },
                "message": { "type": "string" },
                "request_id": { "type": "string", "nullable": true },
                "errors": { "type": "array", "items": { "type": "object", "required": ["pointer", "message"], "properties": {
                    "pointer": { "type": "string" }, "message": { "type": "string" } } } } } } }
        },
        "State": { "type": "string", "enum": ["registered", "starting", "running", "disabled", "failed", "stopped"] },
        "HealthStatus": { "type": "string", "enum": ["healthy", "degraded", "down", "unknown"] },
        "ExtensionSummary": {
            "type": "object", "required": ["name", "version", "description", "enabled", "state", "reason", "health", "compiled_in"],
            "properties": summary_properties()
        },
        "EntitiesView": {
            "type": "object", "required": ["extension", "declared", "applied"], "additionalProperties": false,
            "properties": {
                "extension": { "type": "string" },
                "declared": { "type": "object", "nullable": true, "description": "the declaration (docs/entities.md)" },
                "applied": { "type": "array", "items": { "type": "object", "required": ["version", "checksum", "applied_at"],
                    "additionalProperties": false,
                    "properties": { "version": { "type": "integer", "minimum": 1 }, "checksum": { "type": "string", "pattern": "^[0-9a-f]{64}$" },
                                    "applied_at": { "type": "string" } } } }
            }
        },
        "DeclarationCheck": {
            "type": "object", "required": ["valid", "problems"], "additionalProperties": false,
            "properties": {
                "valid": { "type": "boolean" },
                "problems": { "type": "array", "items": { "type": "object", "required": ["pointer", "code", "message"],
                    "additionalProperties": false,
                    "properties": { "pointer": { "type": "string" }, "code": { "type": "string" }, "message": { "type": "string" } } } }
            }
        },
        "ExtensionDetails": {
            "type": "object",
            "required": ["name", "version", "description", "enabled", "state", "reason", "health", "compiled_in",
                         "dependencies", "dependents", "permissions", "routes", "hooks", "migrations", "config",
                         "config_schema", "sites"],
            "properties": details_properties()
        },
        "SwitchReport": {
            "type": "object", "required": ["extension", "enabled", "disabled"],
            "properties": {
                "extension": { "type": "string" }, "enabled": { "type": "boolean" },
                "state": { "allOf": [schema_ref("State")], "description": "this replica's state of it afterwards" },
                "disabled": { "type": "array", "items": { "type": "string" },
                              "description": "every extension disabled, dependents first; empty for an enable" }
            }
        },
        "ConfigView": {
            "type": "object", "required": ["extension", "config", "schema"],
            "properties": { "extension": { "type": "string" },
                            "config": { "type": "object", "nullable": true, "description": "null when the stored config cannot be read" },
                            "schema": { "type": "object", "nullable": true } }
        },
        "ExtensionFigures": {
            "type": "object", "required": ["extension", "replicas"],
            "properties": {
                "extension": { "type": "string" },
                "replicas": { "type": "array", "items": { "type": "object", "required": ["replica", "at", "figures"],
                    "properties": { "replica": { "type": "string" }, "at": { "type": "string", "format": "date-time" },
                                    "figures": { "type": "object",
                                                 "additionalProperties": { "type": "array", "items": { "type": "object" } } } } } }
            }
        },
        "Health": {
            "type": "object", "required": ["extension", "state", "status", "history"],
            "properties": {
                "extension": { "type": "string" }, "state": schema_ref("State"), "status": schema_ref("HealthStatus"),
                "history": { "type": "array", "items": { "type": "object",
                    "required": ["at", "replica", "status", "message", "failure", "duration_ms"],
                    "properties": {
                        "at": { "type": "string", "format": "date-time" }, "replica": { "type": "string" },
                        "status": { "type": "string", "enum": ["healthy", "degraded", "down"] },
                        "message": { "type": "string", "nullable": true },
                        "failure": { "type": "string", "nullable": true, "description": "timeout or panic when the check itself failed" },
                        "duration_ms": { "type": "number", "minimum": 0 } } } }
            }
        },
        "AuditEntry": {
            "type": "object", "required": ["id", "at", "actor", "action", "target", "details", "request_id"],
            "properties": {
                "id": { "type": "integer" }, "at": { "type": "string", "format": "date-time" },
                "actor": { "type": "string" }, "action": { "type": "string" }, "target": { "type": "string" },
                "details": {}, "request_id": { "type": "string", "nullable": true }
            }
        },
        "AuditChainVerdict": {
            "oneOf": [
                { "type": "object", "required": ["ok", "rows"], "additionalProperties": false,
                  "description": "every row checks out",
                  "properties": { "ok": { "type": "boolean", "enum": [true] },
                                  "rows": { "type": "integer", "minimum": 0, "description": "rows checked: the whole log" } } },
                { "type": "object", "required": ["ok", "rows_checked", "first_broken"], "additionalProperties": false,
                  "description": "the first row that does not check out; rows after it were not checked",
                  "properties": {
                      "ok": { "type": "boolean", "enum": [false] },
                      "rows_checked": { "type": "integer", "minimum": 1, "description": "rows read, the broken one included" },
                      "first_broken": {
                          "type": "object", "required": ["id", "reason"], "additionalProperties": false,
                          "properties": {
                              "id": { "type": "integer", "format": "int64" },
                              "reason": { "type": "string", "enum": ["hash does not match the row's content",
                                                                     "prev_hash does not match the previous row"] } } } } }
            ]
        }
    })
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    fn operation<'a>(doc: &'a Value, path: &str, method: &str) -> &'a Value {
        &doc["paths"][path][method]
    }

    fn param<'a>(op: &'a Value, name: &str) -> &'a Value {
        op["parameters"]
            .as_array()
            .and_then(|ps| ps.iter().find(|p| p["name"] == name))
            .unwrap_or(&Value::Null)
    }

    #[test]
    fn the_document_states_the_bounds_and_statuses_the_handlers_answer() {
        let doc = super::spec(&crate::plan::catalog::Catalog::default());
        let audit = operation(&doc, "/api/v1/audit", "get");
        assert_eq!(
            param(audit, "limit")["schema"],
            json!({ "type": "integer", "minimum": 1, "maximum": 500, "default": 50 })
        );
        assert!(audit["responses"]["422"].is_object());
        let health = operation(&doc, "/api/v1/extensions/{name}/health", "get");
        assert_eq!(param(health, "limit")["schema"]["maximum"], 500);
        let disable = operation(&doc, "/api/v1/extensions/{name}/disable", "post");
        assert_eq!(param(disable, "cascade")["schema"]["type"], "boolean");
        assert!(
            disable["responses"]["400"]["content"]["application/json"].is_object(),
            "cascade=null is a 400"
        );
        // Every operation answers 401 without the token; every one on a name, 400 and 404.
        for (path, item) in doc["paths"].as_object().into_iter().flatten() {
            for (method, op) in item.as_object().into_iter().flatten() {
                assert!(op["responses"]["401"].is_object(), "{method} {path} documents 401");
                if path.contains("{name}") {
                    for status in ["400", "404"] {
                        assert!(op["responses"][status].is_object(), "{method} {path} documents {status}");
                    }
                }
            }
        }
    }
}
