//! Checking an extension's config against the JSON Schema it declares.

use serde::Serialize;

/// One reason a config does not fit its schema.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SchemaViolation {
    /// JSON pointer to the offending value (`""` is the whole config, `/port` a key).
    pub pointer: String,
    /// What is wrong, for humans.
    pub message: String,
}

/// Checks `config` against `schema` (no schema accepts anything). Returns every violation; a
/// schema that is itself invalid is reported as one violation at the root, naming the problem.
///
/// ```
/// use serde_json::json;
/// let schema = json!({"type": "object", "properties": {"port": {"type": "integer"}}});
/// let errors = annex_core::config::check_config(Some(&schema), &json!({"port": "x"})).unwrap_err();
/// assert_eq!(errors[0].pointer, "/port");
/// ```
pub fn check_config(
    schema: Option<&serde_json::Value>,
    config: &serde_json::Value,
) -> Result<(), Vec<SchemaViolation>> {
    let Some(schema) = schema else { return Ok(()) };
    let validator = jsonschema::validator_for(schema).map_err(|e| {
        vec![SchemaViolation {
            pointer: String::new(),
            message: format!(
                "the extension's config schema is not a valid JSON Schema ({e}); fix config_schema()"
            ),
        }]
    })?;
    let errors: Vec<SchemaViolation> = validator
        .iter_errors(config)
        .map(|e| SchemaViolation { pointer: e.instance_path.to_string(), message: e.to_string() })
        .collect();
    if errors.is_empty() { Ok(()) } else { Err(errors) }
}

/// Checks an extension's config as every entry point must (the admin API, the CLI, annex.toml):
/// a JSON object, fitting the extension's schema if it declares one.
pub(crate) fn check_extension_config(
    schema: Option<&serde_json::Value>,
    config: &serde_json::Value,
) -> Result<(), Vec<SchemaViolation>> {
    let kind = match config {
        serde_json::Value::Object(_) => return check_config(schema, config),
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "an array",
    };
    Err(vec![SchemaViolation {
        pointer: String::new(),
        message: format!("an extension's config must be a JSON object (a table in annex.toml), not {kind}"),
    }])
}

/// Whether `schema` compiles as a JSON Schema; the error says why not.
pub(crate) fn schema_problem(schema: &serde_json::Value) -> Option<String> {
    jsonschema::validator_for(schema).err().map(|e| e.to_string())
}
