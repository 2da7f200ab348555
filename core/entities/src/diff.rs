//! What changed between two versions of a declaration, as a list of [`Change`]s in the order
//! they apply, each marked destructive or not. annex-core turns each change into its up and
//! down SQL; a plan with a destructive change is applied only when the operator says so.
//!
//! Destructive: dropping an entity, a field or an enum value; changing a field's type (other
//! than widening `int` → `bigint` or `string` → `text`); making a field required without a
//! default. Renames (`renamed_from`) keep the data and are not destructive.

use serde::Serialize;

use crate::model::{Declaration, Entity, Field, FieldType, RelationKind};

/// One change from the old declaration to the new.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "change", rename_all = "snake_case")]
pub enum Change {
    /// A new entity.
    AddEntity {
        /// Its name.
        entity: String,
    },
    /// An entity gone (its rows too).
    DropEntity {
        /// Its name.
        entity: String,
    },
    /// An entity renamed (`renamed_from`); its rows stay.
    RenameEntity {
        /// The old name.
        from: String,
        /// The new name.
        to: String,
    },
    /// A new field.
    AddField {
        /// The entity.
        entity: String,
        /// The field.
        field: String,
    },
    /// A field gone (its values too).
    DropField {
        /// The entity.
        entity: String,
        /// The field.
        field: String,
    },
    /// A field renamed (`renamed_from`); its values stay.
    RenameField {
        /// The entity.
        entity: String,
        /// The old name.
        from: String,
        /// The new name.
        to: String,
    },
    /// A field whose type, requiredness, default, uniqueness or rules changed.
    AlterField {
        /// The entity.
        entity: String,
        /// The field.
        field: String,
        /// What changed, for people.
        what: Vec<String>,
    },
    /// Values added to an enum this extension owns.
    AddEnumValues {
        /// The enum.
        name: String,
        /// The values.
        values: Vec<String>,
    },
    /// Values removed from an enum this extension owns.
    DropEnumValues {
        /// The enum.
        name: String,
        /// The values.
        values: Vec<String>,
    },
    /// A new enum.
    AddEnum {
        /// The enum.
        name: String,
    },
    /// An enum gone.
    DropEnum {
        /// The enum.
        name: String,
    },
}

/// A change and whether applying it can lose data.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PlannedChange {
    /// The change.
    #[serde(flatten)]
    pub change: Change,
    /// Applying it can lose data; it needs the operator's explicit go-ahead.
    pub destructive: bool,
    /// Why it is destructive, when it is.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub why: Option<String>,
}

fn widening(from: FieldType, to: FieldType) -> bool {
    matches!((from, to), (FieldType::Int, FieldType::Bigint) | (FieldType::String, FieldType::Text))
}

fn field_changes(old: &Field, new: &Field) -> (Vec<String>, Option<String>) {
    let mut what = Vec::new();
    let mut destructive = None;
    if old.field_type != new.field_type
        || old.relation != new.relation
        || old.to != new.to
        || old.enum_name != new.enum_name
    {
        what.push(format!("type {:?} → {:?}", old.field_type, new.field_type).to_lowercase());
        if !widening(old.field_type, new.field_type) {
            destructive = Some("its type changes in a way existing values may not survive".to_owned());
        }
    }
    if old.required != new.required {
        what.push(if new.required { "now required".into() } else { "now optional".into() });
        if new.required && new.default.is_none() {
            destructive = destructive.or(Some("it becomes required without a default".to_owned()));
        }
    }
    if old.default != new.default {
        what.push("default".into());
    }
    if old.unique != new.unique {
        what.push(if new.unique { "now unique".into() } else { "no longer unique".into() });
    }
    let rules = |f: &Field| {
        (f.min_length, f.max_length, f.min.map(f64::to_bits), f.max.map(f64::to_bits), f.pattern.clone())
    };
    if rules(old) != rules(new) {
        what.push("rules".into());
    }
    if old.on_delete != new.on_delete {
        what.push("on_delete".into());
    }
    (what, destructive)
}

fn alter(entity: &str, field: &str, old: &Field, new: &Field, out: &mut Vec<PlannedChange>) {
    let (what, why) = field_changes(old, new);
    if !what.is_empty() {
        out.push(PlannedChange {
            change: Change::AlterField { entity: entity.into(), field: field.into(), what },
            destructive: why.is_some(),
            why,
        });
    }
}

fn entity_changes(name: &str, old: &Entity, new: &Entity, out: &mut Vec<PlannedChange>) {
    let keep = |change: Change| PlannedChange { change, destructive: false, why: None };
    for (field, f) in &new.fields {
        match (old.fields.get(field), f.renamed_from.as_ref().and_then(|r| old.fields.get(r).map(|o| (r, o))))
        {
            (Some(o), _) => alter(name, field, o, f, out),
            (None, Some((from, o))) => {
                out.push(keep(Change::RenameField {
                    entity: name.into(),
                    from: from.clone(),
                    to: field.clone(),
                }));
                alter(name, field, o, f, out);
            }
            (None, None) => {
                let why = (f.required && f.default.is_none()).then(|| {
                    "a required field without a default cannot be added to rows that exist".to_owned()
                });
                out.push(PlannedChange {
                    change: Change::AddField { entity: name.into(), field: field.clone() },
                    destructive: why.is_some(),
                    why,
                });
            }
        }
    }
    let renamed: Vec<&String> = new.fields.values().filter_map(|f| f.renamed_from.as_ref()).collect();
    for field in old.fields.keys() {
        if !new.fields.contains_key(field) && !renamed.contains(&field) {
            out.push(PlannedChange {
                change: Change::DropField { entity: name.into(), field: field.clone() },
                destructive: true,
                why: Some(format!("the values of `{name}.{field}` are dropped")),
            });
        }
    }
}

/// The changes from `old` to `new`, in the order they apply.
pub fn diff(old: &Declaration, new: &Declaration) -> Vec<PlannedChange> {
    let mut out = Vec::new();
    let keep = |change: Change| PlannedChange { change, destructive: false, why: None };
    for (name, e) in &new.enums {
        match old.enums.get(name) {
            None => out.push(keep(Change::AddEnum { name: name.clone() })),
            Some(o) => {
                let added: Vec<String> = e.values.iter().filter(|v| !o.values.contains(v)).cloned().collect();
                if !added.is_empty() {
                    out.push(keep(Change::AddEnumValues { name: name.clone(), values: added }));
                }
            }
        }
    }
    let renamed: Vec<&String> = new.entities.values().filter_map(|e| e.renamed_from.as_ref()).collect();
    let is_new = |name: &String, e: &Entity| {
        !old.entities.contains_key(name)
            && e.renamed_from.as_ref().is_none_or(|r| !old.entities.contains_key(r))
    };
    // Renames first, then new entities (each after the new ones it references), then the
    // changes inside existing entities, which may reference the new ones.
    for (name, e) in &new.entities {
        if let Some(from) = e
            .renamed_from
            .as_ref()
            .filter(|r| !old.entities.contains_key(name) && old.entities.contains_key(*r))
        {
            out.push(keep(Change::RenameEntity { from: from.clone(), to: name.clone() }));
        }
    }
    let mut added: Vec<&String> = Vec::new();
    let mut pending: Vec<&String> =
        new.entities.iter().filter(|(n, e)| is_new(n, e)).map(|(n, _)| n).collect();
    while !pending.is_empty() {
        let before = pending.len();
        pending.retain(|name| {
            let ready = new.entities[*name].fields.values().all(|f| match f.to.as_deref() {
                Some(to)
                    if !to.contains('.')
                        && to != name.as_str()
                        && f.relation.is_some_and(|k| k != RelationKind::OneToMany) =>
                {
                    !new.entities.get(to).is_some_and(|t| is_new(&to.to_owned(), t))
                        || added.iter().any(|a| a.as_str() == to)
                }
                _ => true,
            });
            if ready {
                added.push(name);
                out.push(keep(Change::AddEntity { entity: (*name).clone() }));
            }
            !ready
        });
        if pending.len() == before {
            for name in pending.drain(..) {
                out.push(keep(Change::AddEntity { entity: name.clone() }));
            }
        }
    }
    for (name, e) in &new.entities {
        match (old.entities.get(name), e.renamed_from.as_ref().and_then(|r| old.entities.get(r))) {
            (Some(o), _) | (None, Some(o)) => entity_changes(name, o, e, &mut out),
            (None, None) => {}
        }
    }
    for name in old.entities.keys() {
        if !new.entities.contains_key(name) && !renamed.contains(&name) {
            out.push(PlannedChange {
                change: Change::DropEntity { entity: name.clone() },
                destructive: true,
                why: Some(format!("entity `{name}` and all its rows are dropped")),
            });
        }
    }
    for (name, o) in &old.enums {
        match new.enums.get(name) {
            None => out.push(PlannedChange {
                change: Change::DropEnum { name: name.clone() },
                destructive: true,
                why: Some(format!("enum `{name}` is dropped")),
            }),
            Some(e) => {
                let gone: Vec<String> = o.values.iter().filter(|v| !e.values.contains(v)).cloned().collect();
                if !gone.is_empty() {
                    out.push(PlannedChange {
                        why: Some(format!(
                            "rows holding {} of enum `{name}` would be refused",
                            gone.join(", ")
                        )),
                        change: Change::DropEnumValues { name: name.clone(), values: gone },
                        destructive: true,
                    });
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse::parse_toml;

    fn d(text: &str) -> Declaration {
        parse_toml(text).expect("parses")
    }

    const V1: &str = r#"
version = 1
[enums.status]
values = ["open", "closed"]
[entities.item.fields]
title = { type = "string", required = true }
qty = { type = "int" }
old = { type = "text" }
"#;

    #[test]
    fn additive_changes_are_not_destructive() {
        let v2 = d(r#"
version = 2
[enums.status]
values = ["open", "closed", "on_hold"]
[entities.item.fields]
title = { type = "text", required = true }
qty = { type = "bigint", min = 0 }
old = { type = "text" }
note = { type = "text" }
count = { type = "int", required = true, default = 0 }
[entities.tag.fields]
name = { type = "string" }
"#);
        let plan = diff(&d(V1), &v2);
        assert!(plan.iter().all(|c| !c.destructive), "{plan:#?}");
        let changes: Vec<&Change> = plan.iter().map(|c| &c.change).collect();
        assert!(
            changes
                .contains(&&Change::AddEnumValues { name: "status".into(), values: vec!["on_hold".into()] })
        );
        assert!(changes.contains(&&Change::AddField { entity: "item".into(), field: "note".into() }));
        assert!(changes.contains(&&Change::AddEntity { entity: "tag".into() }));
        assert!(changes.iter().any(|c| matches!(c, Change::AlterField { field, .. } if field == "qty")));
    }

    #[test]
    fn drops_narrowing_and_new_required_fields_are_destructive_and_renames_are_not() {
        let v2 = d(r#"
version = 2
[enums.status]
values = ["open"]
[entities.item.fields]
title = { type = "int", required = true }
amount = { type = "int", renamed_from = "qty" }
must = { type = "text", required = true }
"#);
        let plan = diff(&d(V1), &v2);
        let destructive: Vec<String> = plan
            .iter()
            .filter(|c| c.destructive)
            .map(|c| serde_json::to_string(&c.change).unwrap_or_default())
            .collect();
        assert_eq!(destructive.len(), 4, "{plan:#?}");
        assert!(destructive.iter().any(|c| c.contains("drop_field") && c.contains("\"old\"")));
        assert!(destructive.iter().any(|c| c.contains("alter_field") && c.contains("\"title\"")));
        assert!(destructive.iter().any(|c| c.contains("add_field") && c.contains("\"must\"")));
        assert!(destructive.iter().any(|c| c.contains("drop_enum_values")));
        assert!(plan.contains(&PlannedChange {
            change: Change::RenameField { entity: "item".into(), from: "qty".into(), to: "amount".into() },
            destructive: false,
            why: None
        }));
    }
}
