//! API input checked against the declaration before any SQL: the same rules the database
//! enforces, so the client learns which field is wrong (422, one entry per field).

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;
use serde_json::{Map, Value};

use crate::model::{Entity, FieldType, RelationKind};
use crate::validate::{RESERVED_FIELDS, check_value, is_uuid};

/// One field's problem, for the 422 answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FieldError {
    /// JSON pointer into the request body, such as `/title`.
    pub pointer: String,
    /// What is wrong.
    pub message: String,
}

/// Whether a row is being created (required fields must be there) or patched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Write {
    /// A new row.
    Create,
    /// Changed fields only.
    Patch,
}

/// The values of each enum, by the name a field uses (`status` or `<extension>.status`),
/// additions of other extensions included.
pub type EnumValues = BTreeMap<String, BTreeSet<String>>;

/// The most links one many-to-many field takes in one write.
pub const MAX_LINKS: usize = 1000;

/// The many-to-many fields of `entity` present in `row`, with their ids (checked by
/// [`check_row`] first).
pub fn links<'r>(entity: &Entity, row: &'r Map<String, Value>) -> Vec<(&'r str, Vec<&'r str>)> {
    row.iter()
        .filter(|(k, _)| {
            entity.fields.get(*k).is_some_and(|f| f.relation_kind() == Some(RelationKind::ManyToMany))
        })
        .map(|(k, v)| {
            (
                k.as_str(),
                v.as_array().map(|a| a.iter().filter_map(Value::as_str).collect()).unwrap_or_default(),
            )
        })
        .collect()
}

/// The writable keys of `entity` and the field behind each: a field's column (`title`,
/// `owner_id` for a reference).
pub fn writable(entity: &Entity) -> BTreeMap<String, &str> {
    entity
        .fields
        .iter()
        .filter_map(|(name, f)| f.column(name).map(|column| (column, name.as_str())))
        .collect()
}

/// Every problem of `row` as input for `entity` (empty: it may be written).
pub fn check_row(
    entity: &Entity,
    enums: &EnumValues,
    row: &Map<String, Value>,
    write: Write,
) -> Vec<FieldError> {
    let keys = writable(entity);
    let mut errors = Vec::new();
    for (key, value) in row {
        let pointer = format!("/{}", key.replace('~', "~0").replace('/', "~1"));
        if RESERVED_FIELDS.contains(&key.as_str()) {
            errors
                .push(FieldError { pointer, message: format!("`{key}` is set by annex, not by the client") });
            continue;
        }
        if entity.fields.get(key).is_some_and(|f| f.relation_kind() == Some(RelationKind::ManyToMany)) {
            let ids_ok = value.as_array().is_some_and(|ids| {
                ids.len() <= MAX_LINKS && ids.iter().all(|id| id.as_str().is_some_and(is_uuid))
            });
            if !ids_ok {
                errors.push(FieldError {
                    pointer,
                    message: format!("expected an array of at most {MAX_LINKS} ids (uuids) of related rows"),
                });
            }
            continue;
        }
        let Some(field_name) = keys.get(key) else {
            let hint = entity.fields.get(key).and_then(|f| match f.relation_kind() {
                Some(RelationKind::OneToOne | RelationKind::ManyToOne) => Some(format!("; send `{key}_id`")),
                Some(_) => Some("; it is stored on the other side".to_owned()),
                None => None,
            });
            errors.push(FieldError {
                pointer,
                message: format!(
                    "unknown field `{key}`{}; writable: {}",
                    hint.unwrap_or_default(),
                    keys.keys().map(String::as_str).collect::<Vec<_>>().join(", ")
                ),
            });
            continue;
        };
        let Some(f) = entity.fields.get(*field_name) else { continue };
        let problem = if f.field_type == FieldType::Relation {
            match value {
                Value::Null if f.required => Some("the field is required".to_owned()),
                Value::Null => None,
                Value::String(s) if is_uuid(s) => None,
                _ => Some("expected the id (a uuid) of the related row".to_owned()),
            }
        } else {
            let values = f.enum_name.as_ref().and_then(|e| enums.get(e));
            check_value(f, value, values)
        };
        if let Some(message) = problem {
            errors.push(FieldError { pointer, message });
        }
    }
    if write == Write::Create {
        for (column, field_name) in &keys {
            let Some(f) = entity.fields.get(*field_name) else { continue };
            if f.required && f.default.is_none() && !row.contains_key(column) {
                errors.push(FieldError {
                    pointer: format!("/{column}"),
                    message: "the field is required".into(),
                });
            }
        }
    }
    errors
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse::parse_toml;
    use serde_json::json;

    fn entity() -> (Entity, EnumValues) {
        let d = parse_toml(
            r#"
version = 1
[enums.status]
values = ["open", "closed"]
[entities.item.fields]
title = { type = "string", required = true, min_length = 2, max_length = 5 }
qty = { type = "int", min = 0 }
status = { type = "enum", enum = "status", required = true, default = "open" }
owner = { type = "relation", kind = "many-to-one", to = "item" }
"#,
        )
        .expect("parses");
        let enums =
            BTreeMap::from([("status".to_owned(), BTreeSet::from(["open".to_owned(), "closed".to_owned()]))]);
        (d.entities["item"].clone(), enums)
    }

    fn pointers(errors: &[FieldError]) -> Vec<&str> {
        errors.iter().map(|e| e.pointer.as_str()).collect()
    }

    #[test]
    fn one_entry_per_field_naming_the_rule() {
        let (e, enums) = entity();
        let row = json!({ "title": "x", "qty": -1, "status": "lost", "owner": "a", "id": "b", "colour": 1 });
        let errors = check_row(&e, &enums, row.as_object().expect("object"), Write::Create);
        assert_eq!(pointers(&errors), ["/colour", "/id", "/owner", "/qty", "/status", "/title"]);
        assert!(errors[2].message.contains("send `owner_id`"), "{errors:?}");
        assert!(errors[4].message.contains("`lost` is not a value of the enum"), "{errors:?}");
        assert!(errors[5].message.contains("at least 2 characters"), "{errors:?}");
    }

    #[test]
    fn required_fields_are_required_on_create_only() {
        let (e, enums) = entity();
        let empty = Map::new();
        assert_eq!(
            pointers(&check_row(&e, &enums, &empty, Write::Create)),
            ["/title"],
            "status has a default"
        );
        assert!(check_row(&e, &enums, &empty, Write::Patch).is_empty());
        let row = json!({ "title": "ok", "owner_id": "00000000-0000-0000-0000-000000000000" });
        assert!(check_row(&e, &enums, row.as_object().expect("object"), Write::Create).is_empty());
    }
}
