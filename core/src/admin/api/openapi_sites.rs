//! The site routes of the OpenAPI document (`openapi.rs` merges them in): every operation under
//! `/api/v1/sites`, with its bounds, statuses and body shapes, and the links stateful testing
//! follows from a created site to its other operations.

use serde_json::{Value, json};

use super::openapi_parts::{MAX_BODY, error, internal, ok, query_param, schema_ref, unauthorized};

const SLUG: &str = "^[a-z0-9][a-z0-9-]{0,62}$";
const NAME: &str = "^[a-z][a-z0-9_]{0,39}$";
const LABEL: &str = "^[a-z][a-z0-9-]{0,62}$";
const HASH: &str = "^[0-9a-f]{64}$";
/// Text without NUL characters (PostgreSQL cannot store them).
const TEXT: &str = "^[^\\u0000]*$";

fn site_param() -> Value {
    json!({ "name": "site", "in": "path", "required": true, "description": "the site's slug (or id)",
            "schema": { "type": "string", "pattern": SLUG } })
}

fn name_param() -> Value {
    json!({ "name": "name", "in": "path", "required": true, "description": "the extension's name",
            "schema": { "type": "string", "pattern": NAME } })
}

fn path_param(name: &str, schema: Value, description: &str) -> Value {
    json!({ "name": name, "in": "path", "required": true, "description": description, "schema": schema })
}

fn site_error(description: &str) -> Value {
    json!({ "description": description, "content": { "application/json": { "schema": schema_ref("SiteError") } } })
}

fn body(schema: Value, description: &str) -> Value {
    json!({ "required": true, "description": description, "content": { "application/json": { "schema": schema } } })
}

/// The responses every site operation may answer, plus `extra`.
fn responses(success: (&str, Value), body: bool, extra: Value) -> Value {
    let mut r = json!({
        "400": error("a path segment is not valid UTF-8 once percent-decoded, or the body is not JSON (code invalid_json)"),
        "401": unauthorized(),
        "403": site_error("the caller sees the site but their role may not do this (code forbidden)"),
        "404": site_error("no such site, or one the caller may not see (code unknown_site); or no such extension (unknown_extension)"),
        "500": internal(),
    });
    r[success.0] = success.1;
    if body {
        r["413"] = error(&format!("the body is larger than {MAX_BODY}"));
        r["415"] = error("the body is not `application/json` (code unsupported_media_type)");
        r["422"] = site_error(
            "the body does not fit (code invalid_body, with errors by JSON pointer) or breaks a rule the message names (invalid_input)",
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

/// Links from a response naming a site (`pointer` to its slug) to the operations on it.
fn site_links(pointer: &str) -> Value {
    let mut links = serde_json::Map::new();
    for id in [
        "getSite",
        "getSiteFeatures",
        "getSiteStatus",
        "getComplianceReport",
        "listSnapshots",
        "takeSnapshot",
    ] {
        links.insert(
            id.into(),
            json!({ "operationId": id, "parameters": { "site": format!("$response.body#{pointer}") } }),
        );
    }
    Value::Object(links)
}

fn with_links(mut response: Value, links: Value) -> Value {
    response["links"] = links;
    response
}

/// The paths.
pub(super) fn paths() -> Value {
    let site = || vec![site_param()];
    let site_ext = || vec![site_param(), name_param()];
    json!({
        "/api/v1/sites": {
            "get": op("listSites", "the sites the caller may see", vec![], None, json!({
                "200": with_links(ok("the sites, by slug", json!({ "type": "object", "required": ["sites"],
                    "properties": { "sites": { "type": "array", "items": schema_ref("Site") } } })), site_links("/sites/0/slug")),
                "401": unauthorized(), "500": internal() })),
            "post": op("createSite", "create a site (needs role admin with no site scope)", vec![],
                Some(body(schema_ref("NewSite"), "the slug and name")),
                responses(("201", with_links(ok("created", schema_ref("Site")), site_links("/slug"))), true, json!({
                    "409": site_error("the slug is taken (code site_exists)"),
                    "422": site_error("a bad slug (invalid_slug, naming the rule) or name (invalid_site_name), or a body that does not fit (invalid_body)") })))
        },
        "/api/v1/sites/{site}": {
            "get": op("getSite", "one site", site(), None, responses(("200", ok("the site", schema_ref("Site"))), false, json!({})))
        },
        "/api/v1/sites/{site}/suspend": {
            "post": op("suspendSite", "suspend: its extension routes answer 503 and nothing at it may change (needs role admin)",
                site(), None, responses(("200", ok("the site, suspended", schema_ref("Site"))), false, json!({})))
        },
        "/api/v1/sites/{site}/resume": {
            "post": op("resumeSite", "resume a suspended site (needs role admin)",
                site(), None, responses(("200", ok("the site, active", schema_ref("Site"))), false, json!({})))
        },
        "/api/v1/sites/{site}/features": {
            "get": op("getSiteFeatures", "the active extensions: version, config hash, capabilities", site(), None,
                responses(("200", ok("the features", schema_ref("Features"))), false, json!({})))
        },
        "/api/v1/sites/{site}/capabilities/{capability}": {
            "get": op("getSiteCapability", "which active extensions provide a capability",
                vec![site_param(), path_param("capability", json!({ "type": "string", "pattern": LABEL }), "the capability")], None,
                responses(("200", ok("its providers", schema_ref("Providers"))), false, json!({
                    "404": site_error("no such site (unknown_site), or no active extension provides it (capability_not_provided)") })))
        },
        "/api/v1/sites/{site}/status": {
            "get": op("getSiteStatus", "every compiled-in extension's state at the site, validity, open conflicts, missing sign-offs",
                site(), None, responses(("200", ok("the status", schema_ref("SiteStatus"))), false, json!({})))
        },
        "/api/v1/sites/{site}/extensions/validate-combination": {
            "post": op("validateCombination", "validate several extensions together against what else the site runs; changes nothing but the record of detected conflicts",
                site(), Some(body(schema_ref("Combination"), "the extensions and their configs, each name once")),
                responses(("200", ok("the report (valid or not)", schema_ref("Report"))), true, json!({
                    "404": site_error("no such site, or one the caller may not see (code unknown_site)"),
                    "422": site_error("a name listed twice or not compiled in, a config that is not an object (invalid_input), or a body that does not fit (invalid_body)") })))
        },
        "/api/v1/sites/{site}/extensions/{name}/validate": {
            "post": op("validateExtension", "validate one extension's config at the site; changes nothing but the record of detected conflicts",
                site_ext(), Some(body(schema_ref("ValidateBody"), "the config to validate")),
                responses(("200", ok("the report (valid or not)", schema_ref("Report"))), true, json!({})))
        },
        "/api/v1/sites/{site}/extensions/{name}/activate": {
            "post": op("activateExtension", "activate (or re-activate with a new config) after validation and sign-offs, in one transaction",
                site_ext(), Some(body(schema_ref("ActivateBody"), "the config and why")),
                responses(("200", ok("activated, reconfigured or unchanged, with the report", schema_ref("Activation"))), true, json!({
                    "409": site_error("conflicts, unmet dependencies or missing sign-offs, with the report (code activation_refused; a config lacking sign-offs is stored as the proposal), or the site is suspended (site_suspended)"),
                    "422": site_error("the config does not fit the extension's schema (invalid_config, errors by JSON pointer, with the report), or the body does not fit (invalid_body, invalid_input)") })))
        },
        "/api/v1/sites/{site}/extensions/{name}": {
            "delete": op("deactivateExtension", "deactivate; refused while active extensions at the site need it, unless cascade",
                vec![site_param(), name_param(),
                     query_param("cascade", json!({ "type": "boolean", "default": false }), "also deactivate the active extensions that need it"),
                     query_param("reason", json!({ "type": "string", "maxLength": 1000, "pattern": TEXT }), "why, for the audit log")],
                None, responses(("200", ok("what was deactivated, dependents first", schema_ref("Deactivation"))), false, json!({
                    "409": site_error("active dependents (has_dependents, naming them), not active (not_active), or the site is suspended (site_suspended)"),
                    "422": site_error("cascade is neither true nor false, an unknown query parameter, or a reason too long (invalid_input)") })))
        },
        "/api/v1/sites/{site}/extensions/{name}/signoffs": {
            "get": op("listSignoffs", "every sign-off of the extension at the site, each marked valid for the current (active or proposed) hash or not",
                site_ext(), None, responses(("200", ok("the sign-offs and what is required", schema_ref("SignoffList"))), false, json!({}))),
            "post": op("signOff", "sign off a compliance aspect as the calling operator, re-entering the password",
                site_ext(), Some(body(schema_ref("SignoffRequest"), "what is signed")),
                responses(("201", ok("recorded", schema_ref("Signoff"))), true, json!({
                    "401": site_error("missing or wrong bearer token, or the password is wrong (code wrong_password)"),
                    "403": site_error("not an operator (operator_required), the role is not held (role_not_held), or the operator is disabled"),
                    "409": site_error("the hash is neither the active config's nor the proposal's (stale_config_hash), two-person rule (two_person_rule), already signed (already_signed), or the site is suspended"),
                    "422": site_error("the extension requires no such (aspect, role) (signoff_not_required), a bad meaning or notes (invalid_input), or the body does not fit (invalid_body)") })))
        },
        "/api/v1/sites/{site}/extensions/{name}/audit-trail": {
            "get": op("getAuditTrail", "activations, reconfigurations, proposals, deactivations and sign-offs of the extension at the site, newest first",
                vec![site_param(), name_param(),
                     query_param("before", json!({ "type": "integer", "format": "int64" }), "only entries with a smaller id (the previous page's next_before)"),
                     query_param("limit", json!({ "type": "integer", "minimum": 1, "maximum": 500, "default": 50 }), "entries per page")],
                None, responses(("200", ok("one page", schema_ref("Trail"))), false, json!({
                    "422": site_error("limit or before out of range or not an integer, or an unknown query parameter (invalid_input)") })))
        },
        "/api/v1/sites/{site}/compliance-report": {
            "get": op("getComplianceReport", "every active extension, its hash, its sign-offs (printed name, role, meaning, time) and what is missing; CSV with `Accept: text/csv`",
                site(), None, responses(("200", json!({ "description": "the report",
                    "content": { "application/json": { "schema": schema_ref("ComplianceReport") },
                                 "text/csv": { "schema": { "type": "string" } } } })), false, json!({})))
        },
        "/api/v1/sites/{site}/snapshots": {
            "get": op("listSnapshots", "the site's snapshots, newest first", site(), None,
                responses(("200", ok("the snapshots", json!({ "type": "object", "required": ["snapshots"],
                    "properties": { "snapshots": { "type": "array", "items": schema_ref("SnapshotSummary") } } }))), false, json!({}))),
            "post": op("takeSnapshot", "snapshot the site's whole configuration and sign-offs", site(),
                Some(body(schema_ref("SnapshotBody"), "an optional label")),
                responses(("201", with_links(ok("taken", schema_ref("Snapshot")), json!({
                    "getSnapshot": { "operationId": "getSnapshot", "parameters": { "site": "$response.body#/site", "id": "$response.body#/id" } },
                    "restoreSnapshot": { "operationId": "restoreSnapshot", "parameters": { "site": "$response.body#/site", "id": "$response.body#/id" } } }))),
                    true, json!({})))
        },
        "/api/v1/sites/{site}/snapshots/{id}": {
            "get": op("getSnapshot", "one snapshot with its content",
                vec![site_param(), path_param("id", json!({ "type": "string", "format": "uuid" }), "the snapshot's id")], None,
                responses(("200", ok("the snapshot", schema_ref("Snapshot"))), false, json!({
                    "404": site_error("no such site (unknown_site) or snapshot (unknown_snapshot)") })))
        },
        "/api/v1/sites/{site}/snapshots/{id}/restore": {
            "post": op("restoreSnapshot", "re-activate every extension of the snapshot through validation and sign-offs, deactivate the others; all or nothing",
                vec![site_param(), path_param("id", json!({ "type": "string", "format": "uuid" }), "the snapshot's id")],
                Some(body(schema_ref("RestoreBody"), "an optional reason")),
                responses(("200", ok("what was done", schema_ref("Restore"))), true, json!({
                    "404": site_error("no such site (unknown_site), snapshot (unknown_snapshot) or extension (unknown_extension)"),
                    "409": site_error("the snapshot does not validate or lacks sign-offs now (activation_refused, with the report; nothing changed), or the site is suspended"),
                    "422": site_error("a config of the snapshot no longer fits its schema (invalid_config), or the body does not fit") })))
        }
    })
}

fn string() -> Value {
    json!({ "type": "string" })
}

fn nullable_string() -> Value {
    json!({ "type": "string", "nullable": true })
}

fn array(items: Value) -> Value {
    json!({ "type": "array", "items": items })
}

fn object(required: &[&str], properties: Value) -> Value {
    json!({ "type": "object", "required": required, "properties": properties })
}

/// The component schemas.
pub(super) fn schemas() -> Value {
    let signoff_pair = object(&["aspect", "role"], json!({ "aspect": string(), "role": string() }));
    json!({
        "SiteError": object(&["error"], json!({
            "error": object(&["code", "message"], json!({
                "code": string(), "message": string(), "request_id": nullable_string(),
                "errors": array(object(&["pointer", "message"], json!({ "pointer": string(), "message": string() }))) })),
            "report": schema_ref("Report") })),
        "Site": object(&["id", "slug", "name", "status", "policy", "created_at", "updated_at"], json!({
            "id": { "type": "string", "format": "uuid" }, "slug": { "type": "string", "pattern": SLUG }, "name": string(),
            "status": { "type": "string", "enum": ["active", "suspended"] }, "policy": { "type": "object" },
            "created_at": { "type": "string", "format": "date-time" }, "updated_at": { "type": "string", "format": "date-time" } })),
        "NewSite": { "type": "object", "required": ["slug", "name"], "additionalProperties": false, "properties": {
            "slug": { "type": "string", "pattern": SLUG, "maxLength": 63 },
            "name": { "type": "string", "minLength": 1, "maxLength": 200, "pattern": "^[^\\u0000]*[^\\u0000 \\t\\n\\r][^\\u0000]*$",
                      "description": "not only spaces, tabs and line breaks (those around it are trimmed)" } } },
        "ValidateBody": { "type": "object", "required": ["config"], "additionalProperties": false, "properties": {
            "config": { "type": "object", "description": "the config; the extension's own JSON Schema decides the rest" } } },
        "Combination": { "type": "object", "required": ["extensions"], "additionalProperties": false, "properties": {
            "extensions": { "type": "array", "minItems": 1, "items": { "type": "object", "required": ["name", "config"],
                "additionalProperties": false, "properties": { "name": { "type": "string", "pattern": NAME }, "config": { "type": "object" } } } } } },
        "ActivateBody": { "type": "object", "required": ["config"], "additionalProperties": false, "properties": {
            "config": { "type": "object" }, "reason": { "type": "string", "maxLength": 1000, "pattern": TEXT } } },
        "SignoffRequest": { "type": "object", "required": ["aspect", "role", "meaning", "config_hash", "password"],
            "additionalProperties": false, "properties": {
                "aspect": { "type": "string", "pattern": LABEL }, "role": { "type": "string", "pattern": LABEL },
                "meaning": { "type": "string", "enum": ["review", "approval", "responsibility", "authorship"] },
                "config_hash": { "type": "string", "pattern": HASH }, "password": { "type": "string", "pattern": TEXT },
                "notes": { "type": "string", "maxLength": 2000, "pattern": TEXT } } },
        "SnapshotBody": { "type": "object", "additionalProperties": false, "properties": {
            "label": { "type": "string", "maxLength": 200, "pattern": TEXT } } },
        "RestoreBody": { "type": "object", "additionalProperties": false, "properties": {
            "reason": { "type": "string", "maxLength": 1000, "pattern": TEXT } } },
        "Finding": object(&["code", "message", "extension"], json!({
            "code": string(), "message": string(), "extension": string(), "pointer": string() })),
        "Conflict": object(&["code", "kind", "extension", "other", "message"], json!({
            "code": { "type": "string", "enum": ["conflicts_with", "exclusive_slot", "missing_dependency", "missing_capability", "dependency_version", "capability_version"] },
            "kind": { "type": "string", "enum": ["explicit", "exclusive_slot", "dependency", "version"] },
            "extension": string(), "other": string(), "message": string() })),
        "MissingSignoff": object(&["code", "extension", "aspect", "role", "config_hash", "message"], json!({
            "code": string(), "extension": string(), "aspect": string(), "role": string(), "config_hash": string(), "message": string() })),
        "Report": object(&["valid", "config_hash", "errors", "warnings", "conflicts", "missing_signoffs", "extensions"], json!({
            "valid": { "type": "boolean", "description": "activation would go through: no errors, conflicts or missing sign-offs" },
            "config_hash": string(), "errors": array(schema_ref("Finding")), "warnings": array(schema_ref("Finding")),
            "conflicts": array(schema_ref("Conflict")), "missing_signoffs": array(schema_ref("MissingSignoff")),
            "extensions": array(object(&["name", "config_hash"], json!({ "name": string(), "config_hash": string() }))) })),
        "Activation": object(&["site", "extension", "action", "config_hash", "old_hash", "config_version", "report"], json!({
            "site": string(), "extension": string(),
            "action": { "type": "string", "enum": ["activated", "reconfigured", "unchanged"] },
            "config_hash": string(), "old_hash": nullable_string(), "config_version": { "type": "integer" },
            "report": schema_ref("Report") })),
        "Deactivation": object(&["site", "extension", "deactivated"], json!({
            "site": string(), "extension": string(), "deactivated": array(string()) })),
        "Signoff": object(&["id", "extension", "aspect", "role", "meaning", "config_hash", "username", "printed_name", "notes", "signed_at", "valid", "applies_to"], json!({
            "id": { "type": "integer" }, "extension": string(), "aspect": string(), "role": string(), "meaning": string(),
            "config_hash": string(), "username": string(), "printed_name": string(), "notes": string(),
            "signed_at": { "type": "string", "format": "date-time" }, "valid": { "type": "boolean" },
            "applies_to": { "type": "string", "nullable": true, "description": "active, proposed, or null" } })),
        "SignoffList": object(&["site", "extension", "active_hash", "proposed_hash", "required", "signoffs"], json!({
            "site": string(), "extension": string(), "active_hash": nullable_string(), "proposed_hash": nullable_string(),
            "required": array(signoff_pair.clone()), "signoffs": array(schema_ref("Signoff")) })),
        "Features": object(&["site", "status", "features"], json!({
            "site": string(), "status": string(),
            "features": array(object(&["extension", "version", "config_hash", "config_version", "activated_at", "capabilities"], json!({
                "extension": string(), "version": string(), "config_hash": string(), "config_version": { "type": "integer" },
                "activated_at": nullable_string(),
                "capabilities": array(object(&["name", "version", "exclusive"], json!({
                    "name": string(), "version": string(), "exclusive": { "type": "boolean" } }))) }))) })),
        "Providers": object(&["site", "capability", "providers"], json!({
            "site": string(), "capability": string(),
            "providers": array(object(&["extension", "version", "exclusive"], json!({
                "extension": string(), "version": string(), "exclusive": { "type": "boolean" } }))) })),
        "SiteStatus": object(&["site", "status", "extensions"], json!({
            "site": string(), "status": string(),
            "extensions": array(object(&["extension", "version", "state", "config_hash", "config_version", "proposed_hash", "valid", "open_conflicts", "missing_signoffs"], json!({
                "extension": string(), "version": string(),
                "state": { "type": "string", "enum": ["active", "pending", "inactive", "not_activated"] },
                "config_hash": nullable_string(), "config_version": { "type": "integer", "nullable": true },
                "proposed_hash": nullable_string(), "valid": { "type": "boolean", "nullable": true },
                "open_conflicts": array(object(&["id", "extension", "other", "kind", "message", "detected_at"], json!({
                    "id": { "type": "integer" }, "extension": string(), "other": string(), "kind": string(), "message": string(),
                    "detected_at": string() }))),
                "missing_signoffs": array(schema_ref("MissingSignoff")) }))) })),
        "Trail": object(&["site", "extension", "entries", "next_before"], json!({
            "site": string(), "extension": string(),
            "entries": array(object(&["id", "at", "actor", "action", "details"], json!({
                "id": { "type": "integer" }, "at": string(), "actor": string(), "action": string(), "details": {} }))),
            "next_before": { "type": "integer", "nullable": true } })),
        "ComplianceReport": object(&["site", "name", "extensions"], json!({
            "site": string(), "name": string(),
            "extensions": array(object(&["extension", "version", "config_hash", "config_version", "activated_at", "signoffs", "missing"], json!({
                "extension": string(), "version": string(), "config_hash": string(), "config_version": { "type": "integer" },
                "activated_at": nullable_string(), "signoffs": array(schema_ref("Signoff")), "missing": array(signoff_pair) }))) })),
        "SnapshotSummary": object(&["id", "label", "taken_by", "taken_at", "extensions"], json!({
            "id": { "type": "string", "format": "uuid" }, "label": string(), "taken_by": string(), "taken_at": string(),
            "extensions": { "type": "integer", "minimum": 0 } })),
        "Snapshot": object(&["id", "site", "label", "taken_by", "taken_at", "content"], json!({
            "id": { "type": "string", "format": "uuid" }, "site": string(), "label": string(), "taken_by": string(),
            "taken_at": string(), "content": { "type": "object" } })),
        "Restore": object(&["site", "snapshot", "activated", "deactivated"], json!({
            "site": string(), "snapshot": { "type": "string", "format": "uuid" },
            "activated": array(schema_ref("Activation")), "deactivated": array(string()) }))
    })
}
