//! The stage registry's routes in the OpenAPI document (`openapi.rs` merges them in): every
//! operation under `/api/v1/stages` and `/api/v1/pipelines`, with statuses and body shapes.

use serde_json::{Value, json};

use super::openapi_parts::{MAX_BODY, error, internal, ok, schema_ref, unauthorized};

const STAGE_ID: &str = "^[a-z][a-z0-9_]{0,39}(\\.[a-z][a-z0-9_]{0,63})?$";
const PIPELINE: &str = "^[a-z][a-z0-9_-]{0,62}$";

fn id_param() -> Value {
    json!({ "name": "id", "in": "path", "required": true, "description": "the stage's id",
            "schema": { "type": "string", "pattern": STAGE_ID } })
}

fn name_param() -> Value {
    json!({ "name": "name", "in": "path", "required": true, "description": "the pipeline's name",
            "schema": { "type": "string", "pattern": PIPELINE } })
}

fn registry_error(description: &str) -> Value {
    json!({ "description": description, "content": { "application/json": { "schema": schema_ref("RegistryError") } } })
}

fn body(schema: Value, description: &str) -> Value {
    json!({ "required": true, "description": description, "content": { "application/json": { "schema": schema } } })
}

/// What every registry operation may answer, plus `success` and `extra`.
fn responses(success: (&str, Value), path: bool, change: bool, request: bool, extra: Value) -> Value {
    let mut r = json!({ "401": unauthorized(), "500": internal() });
    r[success.0] = success.1;
    if path {
        r["400"] = error("a path segment is not valid UTF-8 once percent-decoded");
        r["404"] = registry_error("no such stage (code unknown_stage) or pipeline (pipeline_not_found)");
    }
    if change {
        r["403"] = error("the caller's role may not change the registry: it needs `admin` (code forbidden)");
    }
    if request {
        r["400"] = error("the body is not JSON (code invalid_json), or a path segment is not UTF-8");
        r["413"] = error(&format!("the body is larger than {MAX_BODY}"));
        r["415"] = error("the body is not `application/json` (code unsupported_media_type)");
        r["422"] = registry_error(
            "the body does not fit (invalid_body), or the change breaks a rule: invalid_stage, invalid_config (errors by JSON pointer), invalid_pipeline (problems), nats_required, invalid_text",
        );
    }
    if let (Some(r), Some(e)) = (r.as_object_mut(), extra.as_object()) {
        r.extend(e.clone());
    }
    r
}

fn op(id: &str, summary: &str, params: Vec<Value>, request: Option<Value>, responses: Value) -> Value {
    let mut o =
        json!({ "operationId": id, "summary": summary, "parameters": params, "responses": responses });
    if let Some(b) = request {
        o["requestBody"] = b;
    }
    o
}

/// The paths.
pub(super) fn paths() -> Value {
    let stage = || ok("the stage", schema_ref("Stage"));
    let pipeline = || ok("the pipeline", schema_ref("Pipeline"));
    let no_content = || json!({ "description": "removed" });
    let conflict = || json!({ "409": registry_error("the id or subject is taken (conflict), or pipelines use the stage (stage_in_use)") });
    json!({
        "/api/v1/stages": {
            "get": op("listStages", "every stage in the registry", vec![], None, responses(
                ("200", ok("every stage", json!({ "type": "object", "required": ["stages"],
                    "properties": { "stages": { "type": "array", "items": schema_ref("Stage") } } }))),
                false, false, false, json!({}))),
            "post": op("addStage", "adds a remote stage (NATS must be configured)", vec![],
                Some(body(schema_ref("NewStage"), "the stage")),
                responses(("201", ok("the stage as stored", schema_ref("Stage"))), false, true, true, conflict())),
        },
        "/api/v1/stages/{id}": {
            "get": op("getStage", "one stage", vec![id_param()], None, responses(("200", stage()), true, false, false, json!({}))),
            "put": op("changeStage", "changes the fields given", vec![id_param()],
                Some(body(schema_ref("StageChange"), "the fields to change")),
                responses(("200", stage()), true, true, true, conflict())),
            "delete": op("removeStage", "removes a remote stage no pipeline uses", vec![id_param()], None,
                responses(("204", no_content()), true, true, false, json!({
                    "409": registry_error("pipelines use the stage (stage_in_use), or it is compiled in (compiled_in): disable it instead") }))),
        },
        "/api/v1/stages/{id}/enable": {
            "post": op("enableStage", "enables a stage", vec![id_param()], None,
                responses(("200", stage()), true, true, false, json!({ "422": registry_error("a remote stage while NATS is not configured (nats_required)") }))),
        },
        "/api/v1/stages/{id}/disable": {
            "post": op("disableStage", "disables a stage: pipelines naming it skip it", vec![id_param()], None,
                responses(("200", stage()), true, true, false, json!({}))),
        },
        "/api/v1/stages/{id}/health": {
            "get": op("getStageHealth", "this replica's live figures and every replica's mirrored ones", vec![id_param()], None,
                responses(("200", ok("the stage's health", schema_ref("StageHealth"))), true, false, false, json!({}))),
        },
        "/api/v1/pipelines": {
            "get": op("listPipelines", "every pipeline, and this replica's registry status", vec![], None, responses(
                ("200", ok("every pipeline", json!({ "type": "object", "required": ["pipelines", "registry"],
                    "properties": { "pipelines": { "type": "array", "items": schema_ref("Pipeline") },
                                    "registry": { "allOf": [schema_ref("RegistryStatus")], "nullable": true } } }))),
                false, false, false, json!({}))),
        },
        "/api/v1/pipelines/{name}": {
            "get": op("getPipeline", "one pipeline", vec![name_param()], None, responses(("200", pipeline()), true, false, false, json!({}))),
            "put": op("putPipeline", "creates or replaces a pipeline", vec![name_param()],
                Some(body(schema_ref("PipelineInput"), "its stages and deadline")),
                responses(("200", pipeline()), true, true, true, json!({}))),
            "delete": op("removePipeline", "removes a pipeline", vec![name_param()], None,
                responses(("204", no_content()), true, true, false, json!({}))),
        },
    })
}

/// The schemas.
pub(super) fn schemas() -> Value {
    let kind = json!({ "type": "string", "enum": ["pre", "validator", "provider", "post"] });
    let on_error = json!({ "type": "string", "enum": ["closed", "open"] });
    let ms = json!({ "type": "integer", "minimum": 0 });
    let retry = json!({ "type": "object", "additionalProperties": false, "properties": {
        "max_attempts": { "type": "integer", "minimum": 0 }, "backoff_ms": ms, "max_backoff_ms": ms } });
    let breaker = json!({ "type": "object", "additionalProperties": false, "properties": {
        "consecutive_failures": { "type": "integer", "minimum": 0 }, "failure_rate": { "type": "number" },
        "min_calls": { "type": "integer", "minimum": 0 }, "cooldown_ms": ms } });
    let stage_list = json!({ "type": "array", "items": { "type": "string" } });
    let validators = json!({ "type": "array", "items": { "type": "object", "required": ["stage"], "additionalProperties": false,
        "properties": { "stage": { "type": "string" }, "order": { "type": "integer" } } } });
    let providers = json!({ "type": "array", "items": { "type": "object", "required": ["stage"], "additionalProperties": false,
        "properties": { "stage": { "type": "string" }, "priority": { "type": "integer" } } } });
    let time = json!({ "type": "string", "format": "date-time", "nullable": true });
    let figures = json!({ "type": "object", "required": ["calls", "failures", "score", "consecutive_failures", "breaker"],
        "properties": { "calls": ms, "failures": ms, "score": { "type": "number" }, "consecutive_failures": ms,
                        "breaker": { "type": "string", "enum": ["closed", "open", "half_open"] } } });
    json!({
        "Stage": { "type": "object",
            "required": ["id", "kind", "transport", "timeout_ms", "retry", "on_error", "enabled", "config", "metadata", "breaker"],
            "properties": {
                "id": { "type": "string" }, "kind": kind, "transport": { "type": "string", "enum": ["compiled", "remote"] },
                "extension": { "type": "string", "nullable": true }, "subject": { "type": "string", "nullable": true },
                "timeout_ms": ms, "retry": retry, "on_error": on_error, "enabled": { "type": "boolean" },
                "config": {}, "metadata": { "type": "object" }, "breaker": breaker, "updated_at": time } },
        "NewStage": { "type": "object", "required": ["id", "kind"], "additionalProperties": false,
            "properties": {
                "id": { "type": "string" }, "kind": kind, "subject": { "type": "string", "nullable": true },
                "timeout_ms": { "type": "integer", "minimum": 0, "nullable": true }, "retry": retry, "on_error": on_error,
                "enabled": { "type": "boolean", "nullable": true }, "config": {}, "metadata": {}, "breaker": breaker } },
        "StageChange": { "type": "object", "additionalProperties": false,
            "properties": {
                "subject": { "type": "string", "nullable": true }, "timeout_ms": { "type": "integer", "minimum": 0, "nullable": true },
                "retry": retry, "on_error": on_error, "enabled": { "type": "boolean", "nullable": true },
                "config": {}, "metadata": {}, "breaker": breaker } },
        "PipelineInput": { "type": "object", "additionalProperties": false,
            "properties": { "pre": stage_list, "validators": validators, "providers": providers, "post": stage_list,
                            "deadline_ms": ms } },
        "Pipeline": { "type": "object", "required": ["name", "pre", "validators", "providers", "post", "deadline_ms"],
            "properties": { "name": { "type": "string" }, "pre": stage_list, "validators": validators, "providers": providers,
                            "post": stage_list, "deadline_ms": ms, "updated_at": time } },
        "RegistryStatus": { "type": "object", "required": ["stages", "pipelines", "reloads", "refused"],
            "properties": { "loaded_at": time, "stages": ms, "pipelines": ms, "newest_change": time, "reloads": ms, "refused": ms,
                "last_error": { "type": "object", "nullable": true, "required": ["at", "problems"],
                    "properties": { "at": { "type": "string", "format": "date-time" },
                                    "problems": { "type": "array", "items": { "type": "string" } } } } } },
        "StageHealth": { "type": "object", "required": ["stage", "live", "replicas"],
            "properties": { "stage": { "type": "string" }, "live": { "allOf": [figures], "nullable": true },
                "replicas": { "type": "array", "items": { "type": "object",
                    "required": ["replica", "calls", "failures", "score", "breaker", "updated_at"],
                    "properties": { "replica": { "type": "string" }, "calls": ms, "failures": ms, "score": { "type": "number" },
                                    "breaker": { "type": "string" }, "updated_at": { "type": "string", "format": "date-time" } } } } } },
        "RegistryError": { "type": "object", "required": ["error"],
            "properties": { "error": { "type": "object", "required": ["code", "message"], "properties": {
                "code": { "type": "string" }, "message": { "type": "string" },
                "request_id": { "type": "string", "nullable": true },
                "errors": { "type": "array", "items": { "type": "object", "required": ["pointer", "message"],
                    "properties": { "pointer": { "type": "string" }, "message": { "type": "string" } } } },
                "problems": { "type": "array", "items": { "type": "string" } } } } } },
    })
}
