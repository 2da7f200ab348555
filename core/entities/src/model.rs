//! The declaration as data. Maps are ordered by name, so the generated SQL is deterministic.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// One extension's entities, enums and enum extensions, at one version.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Declaration {
    /// The declaration's version: a positive integer, raised with every change.
    pub version: u32,
    /// Enums owned by this extension, by name.
    #[serde(default)]
    pub enums: BTreeMap<String, EnumDecl>,
    /// Values this extension adds to an enum of an extension it depends on, by
    /// `<extension>.<enum>`.
    #[serde(default)]
    pub enum_extensions: BTreeMap<String, EnumExtension>,
    /// Entities (tables), by name.
    #[serde(default)]
    pub entities: BTreeMap<String, Entity>,
}

/// An enum: its values, and labels per locale.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnumDecl {
    /// The stored values, such as `open`.
    pub values: Vec<String>,
    /// Labels by locale, then by value: `labels.en.open = "Open"`.
    #[serde(default)]
    pub labels: BTreeMap<String, BTreeMap<String, String>>,
}

/// Values added to another extension's enum.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnumExtension {
    /// The values added.
    pub values: Vec<String>,
    /// Their labels by locale.
    #[serde(default)]
    pub labels: BTreeMap<String, BTreeMap<String, String>>,
}

/// An entity: a table in the extension's schema with `id`, `created_at` and `updated_at`
/// added by annex.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Entity {
    /// Rows belong to a site: a `site_id` column under a forced row-level-security policy.
    #[serde(default)]
    pub site_scoped: bool,
    /// Fields, by name.
    pub fields: BTreeMap<String, Field>,
    /// Extra indexes.
    #[serde(default)]
    pub indexes: Vec<Index>,
    /// Composite unique constraints: each a list of field names.
    #[serde(default)]
    pub unique: Vec<Vec<String>>,
    /// Who may do what, by operation; closed by default (role `admin` only).
    #[serde(default)]
    pub access: Access,
    /// The entity's previous name, when it was renamed in this version.
    #[serde(default)]
    pub renamed_from: Option<String>,
}

/// An index over one or more fields.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Index {
    /// The fields, in index order.
    pub fields: Vec<String>,
}

/// Roles allowed per operation. An empty list means `admin` only.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Access {
    /// List and get.
    #[serde(default)]
    pub read: Vec<String>,
    /// Create.
    #[serde(default)]
    pub create: Vec<String>,
    /// Patch.
    #[serde(default)]
    pub update: Vec<String>,
    /// Delete.
    #[serde(default)]
    pub delete: Vec<String>,
}

/// A field's type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FieldType {
    /// Short text (`varchar`, `max_length` default 255).
    String,
    /// Long text.
    Text,
    /// 32-bit integer.
    Int,
    /// 64-bit integer.
    Bigint,
    /// Double precision.
    Float,
    /// Exact decimal (`numeric`).
    Decimal,
    /// True or false.
    Boolean,
    /// A calendar date.
    Date,
    /// A point in time (`timestamptz`).
    Datetime,
    /// Any JSON (`jsonb`).
    Json,
    /// A uuid.
    Uuid,
    /// One value of an enum (`enum = "<name>"` or `"<extension>.<name>"`).
    Enum,
    /// A relation to another entity (`to`, `kind`).
    Relation,
}

/// How a relation field relates its entity to the target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RelationKind {
    /// This row references at most one target row, and each target row at most one of these:
    /// a unique foreign-key column `<field>_id`.
    OneToOne,
    /// This row references one target row: a foreign-key column `<field>_id`.
    ManyToOne,
    /// The inverse of a `many-to-one` on the target (named by `via`): no column here.
    OneToMany,
    /// Rows on both sides relate freely: a generated junction table `<entity>_<field>`.
    ManyToMany,
}

/// What happens to rows referencing a deleted target.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnDelete {
    /// The delete is refused while rows reference it (409).
    #[default]
    Restrict,
    /// The referencing rows are deleted too.
    Cascade,
    /// The reference is cleared (the field must not be required).
    SetNull,
}

/// One field.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Field {
    /// Its type.
    #[serde(rename = "type")]
    pub field_type: FieldType,
    /// NOT NULL, and required on create.
    #[serde(default)]
    pub required: bool,
    /// The value stored when a create leaves the field out.
    #[serde(default)]
    pub default: Option<serde_json::Value>,
    /// No two rows share a value.
    #[serde(default)]
    pub unique: bool,
    /// Minimum length in characters (`string`, `text`).
    #[serde(default)]
    pub min_length: Option<u32>,
    /// Maximum length in characters (`string`, `text`).
    #[serde(default)]
    pub max_length: Option<u32>,
    /// Minimum value (numbers).
    #[serde(default)]
    pub min: Option<f64>,
    /// Maximum value (numbers).
    #[serde(default)]
    pub max: Option<f64>,
    /// A POSIX regular expression the whole value must match (`string`, `text`).
    #[serde(default)]
    pub pattern: Option<String>,
    /// The enum, for `type = "enum"`: `status` or `<extension>.status`.
    #[serde(default, rename = "enum")]
    pub enum_name: Option<String>,
    /// The target entity, for relations: `work_order` or `<extension>.work_order`.
    #[serde(default)]
    pub to: Option<String>,
    /// The relation's kind (`kind = "many-to-one"`).
    #[serde(default, rename = "kind")]
    pub relation: Option<RelationKind>,
    /// For `one-to-many`: the `many-to-one` field on the target that points back here.
    #[serde(default)]
    pub via: Option<String>,
    /// For `one-to-one` and `many-to-one`: what deleting the target does.
    #[serde(default)]
    pub on_delete: Option<OnDelete>,
    /// The field's previous name, when it was renamed in this version (keeps the data).
    #[serde(default)]
    pub renamed_from: Option<String>,
}

impl Field {
    /// The column this field is stored in, if any: `<name>_id` for references, none for
    /// `one-to-many` and `many-to-many`.
    pub fn column(&self, name: &str) -> Option<String> {
        match (self.field_type, self.relation_kind()) {
            (FieldType::Relation, Some(RelationKind::OneToOne | RelationKind::ManyToOne)) => {
                Some(format!("{name}_id"))
            }
            (FieldType::Relation, _) => None,
            _ => Some(name.to_owned()),
        }
    }

    /// The relation kind, for relation fields.
    pub fn relation_kind(&self) -> Option<RelationKind> {
        if self.field_type == FieldType::Relation { self.relation } else { None }
    }
}
