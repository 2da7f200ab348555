//! Entity declarations: embedded and checked at compile time by `entities!`, checked again at
//! startup against the extensions they depend on.

use std::sync::Arc;

use annex_core::extension::{Entities, entity_format};
use annex_core::{Extension, Metadata};

struct Declares {
    metadata: Metadata,
    entities: Entities,
}

#[annex_core::async_trait]
impl Extension for Declares {
    fn metadata(&self) -> Metadata {
        self.metadata.clone()
    }
    fn entities(&self) -> Option<Entities> {
        Some(self.entities.clone())
    }
}

fn workorders() -> Arc<dyn Extension> {
    Arc::new(Declares {
        metadata: Metadata::new("workorders", "1.0.0"),
        entities: annex_core::entities!("tests/runtime/fixtures/workorders.entities.toml"),
    })
}

const QUALITY: &str = r#"
version = 1
[enum_extensions."workorders.status"]
values = ["on_hold"]
[entities.inspection.fields]
work_order = { type = "relation", kind = "many-to-one", to = "workorders.work_order", required = true }
state = { type = "enum", enum = "workorders.status", default = "on_hold" }
"#;

fn quality(metadata: Metadata) -> Arc<dyn Extension> {
    let declaration = entity_format::parse_toml(QUALITY).expect("the test declaration parses");
    Arc::new(Declares { metadata, entities: Entities::from_declaration(declaration) })
}

#[test]
fn the_embedded_declaration_is_the_file() {
    let e = annex_core::entities!("tests/runtime/fixtures/workorders.entities.toml");
    let d = e.declaration().expect("parsed");
    assert_eq!(e.source(), "tests/runtime/fixtures/workorders.entities.toml");
    assert_eq!(d.enums["status"].labels["de"]["open"], "Offen");
    assert_eq!(d.entities["work_order"].fields.len(), 6);
}

#[test]
fn a_relation_to_a_dependency_s_entity_passes_startup_validation() {
    let q = quality(Metadata::new("quality", "1.0.0").depends_on("workorders", "^1"));
    let names = annex_core::host::validate(vec![workorders(), q]).expect("valid");
    assert_eq!(names, ["workorders", "quality"]);
}

#[test]
fn a_relation_to_an_extension_not_depended_on_fails_with_the_pointer_and_the_fix() {
    let q = quality(Metadata::new("quality", "1.0.0"));
    let errors = annex_core::host::validate(vec![workorders(), q])
        .expect_err("quality lacks its dependency")
        .to_string();
    assert!(errors.contains("extension `quality` declares entities"), "{errors}");
    assert!(
        errors.contains("/entities/inspection/fields/work_order/to: relation `work_order` refers to extension `workorders`, which `quality` does not depend on: add `.depends_on(\"workorders\""),
        "{errors}"
    );
    assert!(errors.contains("/enum_extensions/workorders.status"), "the enum extension too: {errors}");
}

#[test]
fn two_extensions_adding_the_same_enum_value_are_reported() {
    let q = quality(Metadata::new("quality", "1.0.0").depends_on("workorders", "^1"));
    let mut other = Metadata::new("audits", "1.0.0").depends_on("workorders", "^1");
    other.description = "adds on_hold too".into();
    let declaration = entity_format::parse_toml(
        "version = 1\n[enum_extensions.\"workorders.status\"]\nvalues = [\"on_hold\"]\n",
    )
    .expect("parses");
    let a: Arc<dyn Extension> =
        Arc::new(Declares { metadata: other, entities: Entities::from_declaration(declaration) });
    let errors = annex_core::host::validate(vec![workorders(), q, a]).expect_err("collision").to_string();
    assert!(errors.contains("also adds value `on_hold` to enum `workorders.status`"), "{errors}");
}
