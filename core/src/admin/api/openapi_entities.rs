//! The entity REST API of every compiled-in extension that declares entities, in the OpenAPI
//! document: each entity's five operations and `_batch`, with a row schema built from the
//! declaration (types, bounds, patterns, enum values), so clients and fuzzers see the same rules
//! the API and the database enforce.

use std::collections::BTreeMap;

use annex_entities::{Declaration, Entity, EnumValues, Field, FieldType, RelationKind};
use serde_json::{Map, Value, json};

use super::openapi_parts::{MAX_BODY, error, ok, query_param, schema_ref, unauthorized};
use crate::entities::api::enum_values;
use crate::plan::catalog::Catalog;

fn schema_name(extension: &str, entity: &str) -> String {
    format!("{extension}.{entity}")
}

fn field_schema(f: &Field, enums: &EnumValues) -> Value {
    let mut s = match f.field_type {
        FieldType::String | FieldType::Text => {
            let mut s = json!({ "type": "string" });
            let max = f.max_length.or((f.field_type == FieldType::String).then_some(255));
            if let Some(max) = max {
                s["maxLength"] = json!(max);
            }
            if let Some(min) = f.min_length {
                s["minLength"] = json!(min);
            }
            if let Some(p) = &f.pattern {
                s["pattern"] = json!(format!("^(?:{p})$"));
            }
            s
        }
        FieldType::Int | FieldType::Bigint => {
            json!({ "type": "integer", "format": if f.field_type == FieldType::Int { "int32" } else { "int64" } })
        }
        FieldType::Float | FieldType::Decimal => json!({ "type": "number" }),
        FieldType::Boolean => json!({ "type": "boolean" }),
        FieldType::Date => json!({ "type": "string", "format": "date" }),
        FieldType::Datetime => json!({ "type": "string", "format": "date-time" }),
        FieldType::Json => json!({}),
        FieldType::Uuid | FieldType::Relation => json!({ "type": "string", "format": "uuid" }),
        FieldType::Enum => match f.enum_name.as_ref().and_then(|n| enums.get(n)) {
            Some(values) => json!({ "type": "string", "enum": values }),
            None => json!({ "type": "string" }),
        },
    };
    if let Some(min) = f.min {
        s["minimum"] = json!(min);
    }
    if let Some(max) = f.max {
        s["maximum"] = json!(max);
    }
    if !f.required && f.field_type != FieldType::Json {
        s["nullable"] = json!(true);
    }
    s
}

/// The row as returned, and the body a create takes.
fn row_schemas(e: &Entity, enums: &EnumValues) -> (Value, Value) {
    let mut row = Map::new();
    row.insert("id".into(), json!({ "type": "string", "format": "uuid" }));
    row.insert("created_at".into(), json!({ "type": "string" }));
    row.insert("updated_at".into(), json!({ "type": "string" }));
    if e.site_scoped {
        row.insert("site_id".into(), json!({ "type": "string", "format": "uuid" }));
    }
    let mut input = Map::new();
    let mut required = Vec::new();
    for (name, f) in &e.fields {
        let Some(column) = f.column(name) else { continue };
        let schema = field_schema(f, enums);
        row.insert(column.clone(), schema.clone());
        input.insert(column.clone(), schema);
        if f.required && f.default.is_none() && f.relation_kind() != Some(RelationKind::OneToMany) {
            required.push(column);
        }
    }
    (
        json!({ "type": "object", "properties": row }),
        json!({ "type": "object", "properties": input, "required": required, "additionalProperties": false }),
    )
}

/// `(paths, schemas)` of every declared entity.
pub(super) fn parts(catalog: &Catalog) -> (Value, Value) {
    let all: BTreeMap<&str, &Declaration> =
        catalog.iter().filter_map(|d| d.entities.as_ref().map(|e| (d.metadata.name.as_str(), e))).collect();
    let mut paths = Map::new();
    let mut schemas = Map::new();
    for (extension, d) in &all {
        let enums = enum_values(extension, d, &all);
        for (entity, e) in &d.entities {
            let name = schema_name(extension, entity);
            let (row, input) = row_schemas(e, &enums);
            schemas.insert(name.clone(), row);
            schemas.insert(format!("{name}.input"), input);
            let base = if e.site_scoped {
                format!("/sites/{{site}}/ext/{extension}/entities/{entity}")
            } else {
                format!("/ext/{extension}/entities/{entity}")
            };
            let site_param = e.site_scoped.then(
                || json!({ "name": "site", "in": "path", "required": true, "schema": { "type": "string" } }),
            );
            let params = |extra: Option<Value>| -> Value {
                Value::Array(site_param.iter().cloned().chain(extra).collect())
            };
            let id = json!({ "name": "id", "in": "path", "required": true, "schema": { "type": "string" } });
            let refused = json!({
                "401": unauthorized(), "403": error("the caller's roles do not include one this operation allows"),
                "404": error("no such row, or the entity is site-scoped and asked for outside a site"),
            });
            let with = |mut responses: Value| {
                if let (Some(r), Some(more)) = (responses.as_object_mut(), refused.as_object()) {
                    r.extend(more.clone());
                }
                responses
            };
            let body = |schema: Value| json!({ "required": true, "content": { "application/json": { "schema": schema } } });
            let mut list_params = vec![
                query_param(
                    "filter",
                    json!({ "type": "string", "maxLength": 4096 }),
                    "(a = 'x' && n >= 5) || t ~ 'y' (docs/entities.md)",
                ),
                query_param("sort", json!({ "type": "string" }), "fields, `-` first for descending"),
                query_param(
                    "page",
                    json!({ "type": "integer", "minimum": 1, "maximum": 1_000_000 }),
                    "from 1",
                ),
                query_param(
                    "per_page",
                    json!({ "type": "integer", "minimum": 1, "maximum": 500 }),
                    "rows per page",
                ),
                query_param("fields", json!({ "type": "string" }), "the fields to return"),
                query_param("expand", json!({ "type": "string" }), "relations to attach, up to three levels"),
            ];
            list_params.splice(0..0, site_param.iter().cloned());
            paths.insert(base.clone(), json!({
                "get": { "operationId": format!("list.{name}"), "summary": format!("list `{entity}` of `{extension}`"),
                         "parameters": list_params,
                         "responses": with(json!({ "200": ok("a page", json!({ "type": "object",
                             "required": ["page", "per_page", "total_items", "total_pages", "items"],
                             "properties": { "items": { "type": "array", "items": schema_ref(&name) } } })),
                             "400": error("a bad filter (naming the position), sort, expand or parameter") })) },
                "post": { "operationId": format!("create.{name}"), "summary": format!("create a `{entity}`"),
                          "parameters": params(None), "requestBody": body(schema_ref(&format!("{name}.input"))),
                          "responses": with(json!({ "201": ok("created", schema_ref(&name)),
                              "409": error("a unique value is taken"),
                              "413": error(&format!("the body is larger than {MAX_BODY}")),
                              "422": error("one entry per invalid field in error.fields") })) }
            }));
            paths.insert(format!("{base}/{{id}}"), json!({
                "get": { "operationId": format!("get.{name}"), "parameters": params(Some(id.clone())),
                         "responses": with(json!({ "200": ok("the row", schema_ref(&name)) })) },
                "patch": { "operationId": format!("patch.{name}"), "parameters": params(Some(id.clone())),
                           "requestBody": body(json!({ "type": "object" })),
                           "responses": with(json!({ "200": ok("the row as stored", schema_ref(&name)),
                               "409": error("a unique value is taken"), "422": error("one entry per invalid field") })) },
                "delete": { "operationId": format!("delete.{name}"), "parameters": params(Some(id)),
                            "responses": with(json!({ "204": { "description": "deleted" },
                                "409": error("other rows reference it (a restricting relation)") })) }
            }));
        }
        paths.insert(format!("/ext/{extension}/entities/_batch"), json!({
            "post": { "operationId": format!("batch.{extension}"), "summary": "several creates, patches and deletes in one transaction",
                      "requestBody": { "required": true, "content": { "application/json": { "schema": { "type": "object",
                          "required": ["operations"], "properties": { "operations": { "type": "array", "minItems": 1, "maxItems": 100 } } } } } },
                      "responses": { "200": ok("each operation's result", json!({ "type": "object" })),
                                     "401": unauthorized(), "403": error("an operation's role is missing"),
                                     "404": error("an operation names no row or entity"), "409": error("an operation conflicts"),
                                     "422": error("a malformed batch, or an operation's invalid fields") } }
        }));
    }
    (Value::Object(paths), Value::Object(schemas))
}
