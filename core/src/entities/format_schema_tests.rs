//! docs/entity-declaration.schema.json against the parser: the published format is the real one.

/// docs/entity-declaration.schema.json describes the format the parser reads: every
/// declaration in the repository fits it, and malformed ones do not.
#[test]
fn the_published_json_schema_accepts_the_repository_s_declarations_and_refuses_malformed_ones() {
    let schema: serde_json::Value =
        serde_json::from_str(include_str!("../../../docs/entity-declaration.schema.json"))
            .expect("the schema is JSON");
    let validator = jsonschema::validator_for(&schema).expect("the schema is a valid JSON Schema");
    for (file, text) in [
        ("workorders", include_str!("../../../extensions/examples/workorders/entities.toml")),
        ("quality", include_str!("../../../extensions/examples/quality/entities.toml")),
        ("fixture", include_str!("../../../tests/runtime/fixtures/workorders.entities.toml")),
    ] {
        let value: serde_json::Value = toml::from_str(text).expect("TOML");
        let errors: Vec<String> =
            validator.iter_errors(&value).map(|e| format!("{}: {e}", e.instance_path)).collect();
        assert!(errors.is_empty(), "{file}: {errors:?}");
        annex_entities::parse_toml(text).expect("and the parser reads it");
    }
    for bad in [
        r#"{"entities": {}}"#,
        r#"{"version": 1, "colour": 1}"#,
        r#"{"version": 1, "entities": {"a": {"fields": {"b": {"type": "strng"}}}}}"#,
        r#"{"version": 1, "entities": {"a": {"fields": {"b": {"type": "enum"}}}}}"#,
        r#"{"version": 1, "entities": {"Bad": {"fields": {"b": {"type": "int"}}}}}"#,
    ] {
        let value: serde_json::Value = serde_json::from_str(bad).expect("JSON");
        assert!(!validator.is_valid(&value), "the schema accepts {bad}");
    }
}
