//! Every check a declaration must pass, all reported at once, each with a JSON pointer into the
//! declaration, a stable code and a message naming the fix.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;
use serde_json::Value;

use crate::model::{Declaration, Entity, Field, FieldType, OnDelete, RelationKind};

/// One problem in a declaration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Problem {
    /// Where: a JSON pointer into the declaration, such as `/entities/work_order/fields/title`.
    pub pointer: String,
    /// What kind of problem: `invalid_name`, `reserved_name`, `unknown_type`, `invalid_rule`,
    /// `invalid_default`, `unknown_field`, `unknown_enum`, `unknown_entity`, `undeclared_dependency`,
    /// `duplicate`, `collision`, `invalid_relation`.
    pub code: &'static str,
    /// What is wrong and how to fix it.
    pub message: String,
}

/// What a declaration is checked against: the extension it belongs to, the extensions it
/// depends on (with their declarations, when they have one) and every other extension's
/// declaration (for collisions).
#[derive(Debug, Clone, Default)]
pub struct Scope<'a> {
    /// The declaring extension.
    pub extension: &'a str,
    /// Extensions it depends on (its `Metadata::depends_on`).
    pub dependencies: BTreeSet<&'a str>,
    /// Declarations of other extensions, by extension name.
    pub others: BTreeMap<&'a str, &'a Declaration>,
    /// Skip every check that needs another extension (at compile time, where only this
    /// declaration is known; the host checks the rest at startup).
    pub local_only: bool,
}

impl<'a> Scope<'a> {
    /// An extension with no dependencies and no other extension around.
    pub fn alone(extension: &'a str) -> Self {
        Self { extension, ..Self::default() }
    }

    /// What `entities!` checks at compile time: the declaration alone, references to other
    /// extensions left to the host.
    pub fn compile_time() -> Self {
        Self { local_only: true, ..Self::default() }
    }
}

/// Columns annex adds to every entity.
pub const RESERVED_FIELDS: &[&str] = &["id", "created_at", "updated_at", "site_id"];
/// Names that would shadow the REST API's own paths.
const RESERVED_ENTITIES: &[&str] = &["batch", "entities", "validate"];
/// The longest `string` annex accepts (PostgreSQL's varchar limit).
const MAX_STRING: u32 = 10_485_760;

/// `^[a-z][a-z0-9_]{0,62}$`: entity, field and enum names, and enum values.
pub fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some('a'..='z'))
        && name.len() <= 63
        && chars.all(|c| matches!(c, 'a'..='z' | '0'..='9' | '_'))
}

fn valid_role(role: &str) -> bool {
    let mut chars = role.chars();
    matches!(chars.next(), Some('a'..='z'))
        && role.len() <= 63
        && chars.all(|c| matches!(c, 'a'..='z' | '0'..='9' | '-'))
}

fn valid_locale(locale: &str) -> bool {
    let mut parts = locale.split('-');
    parts.next().is_some_and(|p| (2..=3).contains(&p.len()) && p.chars().all(|c| c.is_ascii_lowercase()))
        && parts.all(|p| (1..=8).contains(&p.len()) && p.chars().all(|c| c.is_ascii_alphanumeric()))
}

/// Escapes one JSON-pointer token (RFC 6901).
fn token(s: &str) -> String {
    s.replace('~', "~0").replace('/', "~1")
}

struct Check<'a> {
    d: &'a Declaration,
    scope: &'a Scope<'a>,
    problems: Vec<Problem>,
}

impl<'a> Check<'a> {
    fn push(&mut self, pointer: String, code: &'static str, message: String) {
        self.problems.push(Problem { pointer, code, message });
    }

    fn name(&mut self, pointer: String, what: &str, name: &str) {
        if !valid_name(name) {
            self.push(
                pointer,
                "invalid_name",
                format!(
                    "{what} name `{name}` is invalid: use 1 to 63 characters, a lowercase letter then lowercase letters, digits or `_`"
                ),
            );
        }
    }

    /// Splits `ext.name` into (extension, name); a bare name is this extension's.
    fn split<'n>(&self, qualified: &'n str) -> (Option<&'n str>, &'n str) {
        match qualified.split_once('.') {
            Some((ext, name)) if ext != self.scope.extension => (Some(ext), name),
            Some((_, name)) => (None, name),
            None => (None, qualified),
        }
    }

    /// The other extension `ext` may be referred to: it must be a dependency. Returns its
    /// declaration when it has one.
    fn foreign(&mut self, pointer: &str, ext: &str, what: &str) -> Option<&'a Declaration> {
        if self.scope.local_only {
            return None;
        }
        if !self.scope.dependencies.contains(ext) {
            self.push(
                pointer.to_owned(),
                "undeclared_dependency",
                format!(
                    "{what} refers to extension `{ext}`, which `{}` does not depend on: add `.depends_on(\"{ext}\", \"…\")` to its metadata",
                    self.scope.extension
                ),
            );
            return None;
        }
        let found = self.scope.others.get(ext).copied();
        if found.is_none() {
            self.push(
                pointer.to_owned(),
                "unknown_entity",
                format!("{what} refers to extension `{ext}`, which declares no entities or enums"),
            );
        }
        found
    }

    /// Every value of enum `qualified` (this extension's own, or a dependency's with every
    /// extension's additions), or `None` after reporting why not.
    fn enum_values(&mut self, pointer: &str, qualified: &str) -> Option<BTreeSet<String>> {
        let (ext, name) = self.split(qualified);
        let (owner_name, owner): (String, Option<&'a Declaration>) = match ext {
            None => (self.scope.extension.to_owned(), Some(self.d)),
            Some(ext) => (ext.to_owned(), self.foreign(pointer, ext, &format!("enum `{qualified}`"))),
        };
        let owner = owner?;
        let Some(e) = owner.enums.get(name) else {
            let known: Vec<&str> = owner.enums.keys().map(String::as_str).collect();
            self.push(
                pointer.to_owned(),
                "unknown_enum",
                format!(
                    "enum `{qualified}` is not declared by `{owner_name}` (it declares: {})",
                    if known.is_empty() { "none".to_owned() } else { known.join(", ") }
                ),
            );
            return None;
        };
        let mut values: BTreeSet<String> = e.values.iter().cloned().collect();
        let key = format!("{owner_name}.{name}");
        let mut add = |d: &Declaration| {
            if let Some(x) = d.enum_extensions.get(&key) {
                values.extend(x.values.iter().cloned());
            }
        };
        add(self.d);
        for other in self.scope.others.values() {
            add(other);
        }
        Some(values)
    }

    fn run(&mut self) {
        if self.d.version == 0 {
            self.push(
                "/version".into(),
                "invalid_rule",
                "version must be 1 or more; raise it with every change".into(),
            );
        }
        self.enums();
        self.enum_extensions();
        for (name, entity) in &self.d.entities {
            self.entity(name, entity);
        }
    }

    fn enums(&mut self) {
        for (name, e) in &self.d.enums {
            let p = format!("/enums/{}", token(name));
            self.name(p.clone(), "enum", name);
            self.enum_values_and_labels(&p, &e.values, &e.labels);
        }
    }

    fn enum_values_and_labels(
        &mut self,
        p: &str,
        values: &[String],
        labels: &BTreeMap<String, BTreeMap<String, String>>,
    ) {
        if values.is_empty() {
            self.push(format!("{p}/values"), "invalid_rule", "an enum needs at least one value".into());
        }
        let mut seen = BTreeSet::new();
        for (i, v) in values.iter().enumerate() {
            self.name(format!("{p}/values/{i}"), "enum value", v);
            if !seen.insert(v.as_str()) {
                self.push(format!("{p}/values/{i}"), "duplicate", format!("value `{v}` is listed twice"));
            }
        }
        for (locale, by_value) in labels {
            let lp = format!("{p}/labels/{}", token(locale));
            if !valid_locale(locale) {
                self.push(
                    lp.clone(),
                    "invalid_name",
                    format!("locale `{locale}` is not a language tag such as `en` or `pt-BR`"),
                );
            }
            for value in by_value.keys() {
                if !seen.contains(value.as_str()) {
                    self.push(
                        format!("{lp}/{}", token(value)),
                        "unknown_field",
                        format!("label for `{value}`, which is not a value of this enum"),
                    );
                }
            }
        }
    }

    fn enum_extensions(&mut self) {
        for (key, x) in &self.d.enum_extensions {
            let p = format!("/enum_extensions/{}", token(key));
            let Some((ext, name)) = key.split_once('.') else {
                self.push(p, "invalid_name", format!("`{key}` must name `<extension>.<enum>`"));
                continue;
            };
            if ext == self.scope.extension {
                self.push(
                    p,
                    "invalid_rule",
                    format!("`{key}` is this extension's own enum: add the values to `enums.{name}`"),
                );
                continue;
            }
            self.enum_values_and_labels(&p, &x.values, &BTreeMap::new());
            let Some(owner) = self.foreign(&p, ext, &format!("enum extension `{key}`")) else { continue };
            let Some(e) = owner.enums.get(name) else {
                self.push(p, "unknown_enum", format!("extension `{ext}` declares no enum `{name}`"));
                continue;
            };
            let scope = self.scope;
            for (i, v) in x.values.iter().enumerate() {
                if e.values.contains(v) {
                    self.push(
                        format!("{p}/values/{i}"),
                        "collision",
                        format!("`{ext}` already has value `{v}` in enum `{name}`: remove it here"),
                    );
                }
                for (other, d) in &scope.others {
                    if *other != ext
                        && *other != scope.extension
                        && d.enum_extensions.get(key).is_some_and(|o| o.values.contains(v))
                    {
                        self.push(
                            format!("{p}/values/{i}"),
                            "collision",
                            format!(
                                "extension `{other}` also adds value `{v}` to enum `{key}`: only one may"
                            ),
                        );
                    }
                }
            }
        }
    }

    fn entity(&mut self, name: &str, e: &Entity) {
        let p = format!("/entities/{}", token(name));
        self.name(p.clone(), "entity", name);
        if RESERVED_ENTITIES.contains(&name) {
            self.push(
                p.clone(),
                "reserved_name",
                format!("entity name `{name}` is reserved by the REST API; pick another"),
            );
        }
        if let Some(old) = &e.renamed_from {
            self.name(format!("{p}/renamed_from"), "entity", old);
            if self.d.entities.contains_key(old) {
                self.push(
                    format!("{p}/renamed_from"),
                    "duplicate",
                    format!("entity `{old}` still exists; a rename removes the old name"),
                );
            }
        }
        if e.fields.is_empty() {
            self.push(
                format!("{p}/fields"),
                "invalid_rule",
                format!("entity `{name}` needs at least one field"),
            );
        }
        let mut columns: BTreeMap<String, String> = BTreeMap::new();
        for (field_name, f) in &e.fields {
            let fp = format!("{p}/fields/{}", token(field_name));
            self.name(fp.clone(), "field", field_name);
            if RESERVED_FIELDS.contains(&field_name.as_str()) {
                self.push(
                    fp.clone(),
                    "reserved_name",
                    format!(
                        "field name `{field_name}` is reserved: annex adds {} itself",
                        RESERVED_FIELDS.join(", ")
                    ),
                );
            }
            if let Some(column) = f.column(field_name)
                && let Some(previous) = columns.insert(column.clone(), field_name.clone())
            {
                self.push(
                    fp.clone(),
                    "collision",
                    format!("field `{field_name}` is stored in column `{column}`, which field `{previous}` uses too; rename one"),
                );
            }
            self.field(name, e, &fp, field_name, f);
        }
        for (i, index) in e.indexes.iter().enumerate() {
            self.field_list(&format!("{p}/indexes/{i}/fields"), name, e, &index.fields, "an index");
        }
        for (i, fields) in e.unique.iter().enumerate() {
            self.field_list(&format!("{p}/unique/{i}"), name, e, fields, "a unique constraint");
        }
        let access = [
            ("read", &e.access.read),
            ("create", &e.access.create),
            ("update", &e.access.update),
            ("delete", &e.access.delete),
        ];
        for (op, roles) in access {
            for (i, role) in roles.iter().enumerate() {
                if !valid_role(role) {
                    self.push(
                        format!("{p}/access/{op}/{i}"),
                        "invalid_name",
                        format!("role `{role}` is invalid: a lowercase letter then lowercase letters, digits or `-`"),
                    );
                }
            }
        }
    }

    fn field_list(&mut self, p: &str, entity: &str, e: &Entity, fields: &[String], what: &str) {
        if fields.is_empty() {
            self.push(p.to_owned(), "invalid_rule", format!("{what} needs at least one field"));
        }
        let mut seen = BTreeSet::new();
        for (i, f) in fields.iter().enumerate() {
            let known = RESERVED_FIELDS.contains(&f.as_str())
                || e.fields.get(f).is_some_and(|x| x.column(f).is_some());
            if !known {
                self.push(
                    format!("{p}/{i}"),
                    "unknown_field",
                    format!("{what} of `{entity}` names `{f}`, which is not a stored field of it"),
                );
            }
            if !seen.insert(f) {
                self.push(format!("{p}/{i}"), "duplicate", format!("{what} names `{f}` twice"));
            }
        }
    }

    fn misplaced(&mut self, fp: &str, f: &Field) {
        let t = f.field_type;
        let text = matches!(t, FieldType::String | FieldType::Text);
        let number = matches!(t, FieldType::Int | FieldType::Bigint | FieldType::Float | FieldType::Decimal);
        let rules: [(&str, bool, bool); 9] = [
            ("min_length", f.min_length.is_some(), text),
            ("max_length", f.max_length.is_some(), text),
            ("pattern", f.pattern.is_some(), text),
            ("min", f.min.is_some(), number),
            ("max", f.max.is_some(), number),
            ("enum", f.enum_name.is_some(), t == FieldType::Enum),
            ("to", f.to.is_some(), t == FieldType::Relation),
            ("kind", f.relation.is_some(), t == FieldType::Relation),
            ("via", f.via.is_some(), t == FieldType::Relation),
        ];
        for (rule, present, allowed) in rules {
            if present && !allowed {
                self.push(
                    format!("{fp}/{rule}"),
                    "invalid_rule",
                    format!("`{rule}` does not apply to a field of type `{}`; remove it", type_name(t)),
                );
            }
        }
        if f.on_delete.is_some() && t != FieldType::Relation {
            self.push(
                format!("{fp}/on_delete"),
                "invalid_rule",
                "`on_delete` applies to relations only".into(),
            );
        }
    }

    fn field(&mut self, entity: &str, e: &Entity, fp: &str, name: &str, f: &Field) {
        self.misplaced(fp, f);
        if let Some(old) = &f.renamed_from {
            self.name(format!("{fp}/renamed_from"), "field", old);
            if e.fields.contains_key(old) {
                self.push(
                    format!("{fp}/renamed_from"),
                    "duplicate",
                    format!("field `{old}` still exists; a rename removes the old name"),
                );
            }
        }
        if let (Some(lo), Some(hi)) = (f.min_length, f.max_length)
            && lo > hi
        {
            self.push(
                format!("{fp}/min_length"),
                "invalid_rule",
                format!("min_length {lo} is above max_length {hi}: no value could pass"),
            );
        }
        if let Some(max) = f.max_length {
            if max == 0 {
                self.push(
                    format!("{fp}/max_length"),
                    "invalid_rule",
                    "max_length 0 allows only the empty string; use 1 or more".into(),
                );
            } else if f.field_type == FieldType::String && max > MAX_STRING {
                self.push(
                    format!("{fp}/max_length"),
                    "invalid_rule",
                    format!("a string holds at most {MAX_STRING} characters; use type `text`"),
                );
            }
        }
        if let (Some(lo), Some(hi)) = (f.min, f.max)
            && lo > hi
        {
            self.push(
                format!("{fp}/min"),
                "invalid_rule",
                format!("min {lo} is above max {hi}: no value could pass"),
            );
        }
        for (rule, bound) in [("min", f.min), ("max", f.max)] {
            if let Some(b) = bound
                && matches!(f.field_type, FieldType::Int | FieldType::Bigint)
                && !fits_integer(b, f.field_type)
            {
                self.push(
                    format!("{fp}/{rule}"),
                    "invalid_rule",
                    format!("{rule} {b} is not a whole number a {} can hold", type_name(f.field_type)),
                );
            }
        }
        if let Some(pattern) = &f.pattern
            && let Err(e) = regex::Regex::new(pattern)
        {
            self.push(
                format!("{fp}/pattern"),
                "invalid_rule",
                format!("pattern is not a valid regular expression: {e}"),
            );
        }
        if f.unique
            && matches!(f.field_type, FieldType::Json | FieldType::Relation)
            && f.relation_kind() != Some(RelationKind::OneToOne)
        {
            self.push(
                format!("{fp}/unique"),
                "invalid_rule",
                format!("a `{}` field cannot be unique", type_name(f.field_type)),
            );
        }
        let enum_values = match (f.field_type, &f.enum_name) {
            (FieldType::Enum, Some(qualified)) => self.enum_values(&format!("{fp}/enum"), qualified),
            (FieldType::Enum, None) => {
                self.push(
                    fp.to_owned(),
                    "unknown_enum",
                    "a field of type `enum` needs `enum = \"<enum name>\"`".into(),
                );
                None
            }
            _ => None,
        };
        if f.field_type == FieldType::Relation {
            self.relation(entity, fp, name, f);
        }
        match &f.default {
            Some(Value::Null) if f.required => {
                self.push(
                    format!("{fp}/default"),
                    "invalid_default",
                    "a required field cannot default to null".into(),
                );
            }
            Some(default) if f.field_type == FieldType::Relation => {
                self.push(
                    format!("{fp}/default"),
                    "invalid_default",
                    format!("a relation cannot have a default (got {default})"),
                );
            }
            Some(default) => {
                if let Some(why) = check_value(f, default, enum_values.as_ref()) {
                    self.push(
                        format!("{fp}/default"),
                        "invalid_default",
                        format!("the default {default} breaks the field's own rules: {why}"),
                    );
                }
            }
            None => {}
        }
    }

    fn relation(&mut self, entity: &str, fp: &str, name: &str, f: &Field) {
        let Some(kind) = f.relation else {
            self.push(
                format!("{fp}/kind"),
                "invalid_relation",
                "a relation needs `kind`: one-to-one, many-to-one, one-to-many or many-to-many".into(),
            );
            return;
        };
        let Some(to) = &f.to else {
            self.push(
                format!("{fp}/to"),
                "invalid_relation",
                "a relation needs `to = \"<entity>\"` (or `\"<extension>.<entity>\"`)".into(),
            );
            return;
        };
        let (ext, target) = self.split(to);
        let target_entity = match ext {
            None => self.d.entities.get(target).cloned(),
            Some(ext) => match self.foreign(&format!("{fp}/to"), ext, &format!("relation `{name}`")) {
                Some(d) => d.entities.get(target).cloned(),
                None => return,
            },
        };
        let Some(target_entity) = target_entity else {
            self.push(
                format!("{fp}/to"),
                "unknown_entity",
                format!("relation `{name}` points to entity `{to}`, which is not declared"),
            );
            return;
        };
        if matches!(f.on_delete, Some(OnDelete::SetNull)) && f.required {
            self.push(
                format!("{fp}/on_delete"),
                "invalid_rule",
                "on_delete = \"set_null\" needs a field that is not required".into(),
            );
        }
        match kind {
            RelationKind::OneToMany => {
                if ext.is_some() {
                    self.push(
                        format!("{fp}/to"),
                        "invalid_relation",
                        "a one-to-many relation must point to this extension's own entity (the other side holds the reference)".into(),
                    );
                    return;
                }
                let back = f.via.as_deref().and_then(|via| target_entity.fields.get(via).map(|b| (via, b)));
                let points_back = back.is_some_and(|(_, b)| {
                    b.relation_kind() == Some(RelationKind::ManyToOne)
                        && b.to.as_deref().map(|t| self.split(t).1) == Some(entity)
                });
                if !points_back {
                    self.push(
                        format!("{fp}/via"),
                        "invalid_relation",
                        format!("a one-to-many relation needs `via` naming a many-to-one field of `{target}` that points to `{entity}`"),
                    );
                }
                if f.required || f.on_delete.is_some() {
                    self.push(
                        fp.to_owned(),
                        "invalid_rule",
                        "a one-to-many relation stores nothing here: remove `required` / `on_delete`".into(),
                    );
                }
            }
            RelationKind::ManyToMany => {
                let junction = format!("{entity}_{name}");
                if self.d.entities.contains_key(&junction) {
                    self.push(
                        fp.to_owned(),
                        "collision",
                        format!("the junction table `{junction}` of this many-to-many relation has the name of an entity; rename one"),
                    );
                }
            }
            RelationKind::OneToOne | RelationKind::ManyToOne => {
                if f.via.is_some() {
                    self.push(
                        format!("{fp}/via"),
                        "invalid_rule",
                        "`via` applies to one-to-many relations only".into(),
                    );
                }
            }
        }
    }
}

fn type_name(t: FieldType) -> &'static str {
    match t {
        FieldType::String => "string",
        FieldType::Text => "text",
        FieldType::Int => "int",
        FieldType::Bigint => "bigint",
        FieldType::Float => "float",
        FieldType::Decimal => "decimal",
        FieldType::Boolean => "boolean",
        FieldType::Date => "date",
        FieldType::Datetime => "datetime",
        FieldType::Json => "json",
        FieldType::Uuid => "uuid",
        FieldType::Enum => "enum",
        FieldType::Relation => "relation",
    }
}

#[allow(clippy::cast_precision_loss)]
fn fits_integer(x: f64, t: FieldType) -> bool {
    let (lo, hi) = if t == FieldType::Int {
        (f64::from(i32::MIN), f64::from(i32::MAX))
    } else {
        (i64::MIN as f64, i64::MAX as f64)
    };
    x.fract() == 0.0 && x >= lo && x <= hi
}

fn is_date(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 10
        && b[4] == b'-'
        && b[7] == b'-'
        && s.char_indices().all(|(i, c)| i == 4 || i == 7 || c.is_ascii_digit())
        && s[5..7].parse::<u8>().is_ok_and(|m| (1..=12).contains(&m))
        && s[8..10].parse::<u8>().is_ok_and(|d| (1..=31).contains(&d))
}

/// A uuid in its hyphenated text form, as the API takes it.
pub(crate) fn is_uuid(s: &str) -> bool {
    s.len() == 36
        && s.char_indices()
            .all(|(i, c)| if matches!(i, 8 | 13 | 18 | 23) { c == '-' } else { c.is_ascii_hexdigit() })
}

/// Why `value` breaks `f`'s rules, or `None` if it fits. The API checks input with this too.
pub(crate) fn check_value(
    f: &Field,
    value: &Value,
    enum_values: Option<&BTreeSet<String>>,
) -> Option<String> {
    if value.is_null() {
        return f.required.then(|| "the field is required".to_owned());
    }
    match f.field_type {
        FieldType::String | FieldType::Text => {
            let Some(s) = value.as_str() else { return Some("expected a string".into()) };
            let len = u32::try_from(s.chars().count()).unwrap_or(u32::MAX);
            if let Some(min) = f.min_length
                && len < min
            {
                return Some(format!("at least {min} characters, got {len}"));
            }
            let max = f.max_length.or((f.field_type == FieldType::String).then_some(255));
            if let Some(max) = max
                && len > max
            {
                return Some(format!("at most {max} characters, got {len}"));
            }
            if let Some(p) = &f.pattern
                && let Ok(re) = regex::Regex::new(&format!("^(?:{p})$"))
                && !re.is_match(s)
            {
                return Some(format!("must match the pattern `{p}`"));
            }
            if s.contains('\0') {
                return Some("text cannot contain NUL characters".into());
            }
            None
        }
        FieldType::Int | FieldType::Bigint | FieldType::Float | FieldType::Decimal => {
            let Some(x) = value.as_f64() else { return Some("expected a number".into()) };
            if matches!(f.field_type, FieldType::Int | FieldType::Bigint)
                && !(value.is_i64() || value.is_u64())
                || !fits_integer_or_float(x, f.field_type)
            {
                return Some(format!("expected a whole number a {} can hold", type_name(f.field_type)));
            }
            if let Some(min) = f.min
                && x < min
            {
                return Some(format!("at least {min}, got {x}"));
            }
            if let Some(max) = f.max
                && x > max
            {
                return Some(format!("at most {max}, got {x}"));
            }
            None
        }
        FieldType::Boolean => (!value.is_boolean()).then(|| "expected true or false".into()),
        FieldType::Date => {
            (!value.as_str().is_some_and(is_date)).then(|| "expected a date, YYYY-MM-DD".into())
        }
        FieldType::Datetime => (!value
            .as_str()
            .is_some_and(|s| s.len() >= 20 && is_date(&s[..10]) && matches!(s.as_bytes()[10], b'T' | b' ')))
        .then(|| "expected an RFC 3339 time, such as 2026-12-01T09:00:00Z".into()),
        FieldType::Json => None,
        FieldType::Uuid => (!value.as_str().is_some_and(is_uuid)).then(|| "expected a uuid".into()),
        FieldType::Enum => {
            let Some(s) = value.as_str() else { return Some("expected one of the enum's values".into()) };
            match enum_values {
                Some(values) if !values.contains(s) => Some(format!(
                    "`{s}` is not a value of the enum (values: {})",
                    values.iter().map(String::as_str).collect::<Vec<_>>().join(", ")
                )),
                _ => None,
            }
        }
        FieldType::Relation => None,
    }
}

fn fits_integer_or_float(x: f64, t: FieldType) -> bool {
    match t {
        FieldType::Int | FieldType::Bigint => fits_integer(x, t),
        _ => x.is_finite(),
    }
}

/// Every problem of declaration `d` in `scope`, in a stable order (empty: valid).
pub fn validate(d: &Declaration, scope: &Scope<'_>) -> Vec<Problem> {
    let mut check = Check { d, scope, problems: Vec::new() };
    check.run();
    check.problems
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse::parse_toml;

    fn problems(text: &str, scope: &Scope<'_>) -> Vec<Problem> {
        validate(&parse_toml(text).expect("parses"), scope)
    }

    fn has(problems: &[Problem], pointer: &str, code: &str, needle: &str) {
        assert!(
            problems.iter().any(|p| p.pointer == pointer && p.code == code && p.message.contains(needle)),
            "no {code} at {pointer} containing `{needle}` in {problems:#?}"
        );
    }

    const GOOD: &str = r#"
version = 2
[enums.status]
values = ["open", "closed"]
labels.en = { open = "Open", closed = "Closed" }

[entities.work_order]
unique = [["number", "title"]]
indexes = [{ fields = ["status", "created_at"] }]
access = { read = ["viewer"], create = ["site-admin"] }
[entities.work_order.fields]
number = { type = "int", required = true, min = 1 }
title = { type = "string", required = true, max_length = 200, pattern = "[A-Z].*" }
status = { type = "enum", enum = "status", default = "open" }
due = { type = "date" }
cost = { type = "decimal", min = 0 }
comments = { type = "relation", kind = "one-to-many", to = "comment", via = "work_order" }
tags = { type = "relation", kind = "many-to-many", to = "tag" }

[entities.comment.fields]
body = { type = "text", required = true, min_length = 1 }
work_order = { type = "relation", kind = "many-to-one", to = "work_order", required = true, on_delete = "cascade" }

[entities.tag.fields]
name = { type = "string", unique = true }
"#;

    #[test]
    fn a_full_declaration_is_valid() {
        assert_eq!(problems(GOOD, &Scope::alone("workorders")), Vec::new());
    }

    #[test]
    fn every_problem_is_reported_at_once_with_its_pointer() {
        let bad = r#"
version = 0
[enums.Status]
values = ["a", "a"]
[entities.batch.fields]
id = { type = "string" }
n = { type = "int", min = 5, max = 1, pattern = "x", default = 0 }
s = { type = "string", min_length = 9, max_length = 3, default = "toolongvalue" }
e = { type = "enum", enum = "nope" }
r = { type = "relation", kind = "many-to-one", to = "missing" }
x = { type = "relation", kind = "many-to-one", to = "other.thing" }
q = { type = "string", required = true, default = "" , min_length = 1 }
p = { type = "string", pattern = "(" }
"#;
        let p = problems(bad, &Scope::alone("me"));
        has(&p, "/version", "invalid_rule", "1 or more");
        has(&p, "/enums/Status", "invalid_name", "enum name `Status`");
        has(&p, "/enums/Status/values/1", "duplicate", "`a` is listed twice");
        has(&p, "/entities/batch", "reserved_name", "reserved by the REST API");
        has(&p, "/entities/batch/fields/id", "reserved_name", "annex adds id");
        has(&p, "/entities/batch/fields/n/min", "invalid_rule", "min 5 is above max 1");
        has(
            &p,
            "/entities/batch/fields/n/pattern",
            "invalid_rule",
            "does not apply to a field of type `int`",
        );
        has(&p, "/entities/batch/fields/s/min_length", "invalid_rule", "above max_length 3");
        has(&p, "/entities/batch/fields/s/default", "invalid_default", "at most 3 characters");
        has(&p, "/entities/batch/fields/e/enum", "unknown_enum", "enum `nope` is not declared");
        has(&p, "/entities/batch/fields/r/to", "unknown_entity", "`missing`, which is not declared");
        has(&p, "/entities/batch/fields/x/to", "undeclared_dependency", "add `.depends_on(\"other\"");
        has(&p, "/entities/batch/fields/q/default", "invalid_default", "at least 1 characters");
        has(&p, "/entities/batch/fields/p/pattern", "invalid_rule", "not a valid regular expression");
    }

    #[test]
    fn relations_and_enums_of_a_dependency_are_checked_against_its_declaration() {
        let owner = parse_toml(GOOD).expect("parses");
        let quality = r#"
version = 1
[enum_extensions."workorders.status"]
values = ["on_hold", "open"]
[entities.inspection.fields]
work_order = { type = "relation", kind = "many-to-one", to = "workorders.work_order", required = true }
state = { type = "enum", enum = "workorders.status", default = "on_hold" }
ghost = { type = "relation", kind = "many-to-one", to = "workorders.ghost" }
"#;
        let mut scope = Scope::alone("quality");
        scope.dependencies.insert("workorders");
        scope.others.insert("workorders", &owner);
        let p = problems(quality, &scope);
        has(&p, "/enum_extensions/workorders.status/values/1", "collision", "already has value `open`");
        has(&p, "/entities/inspection/fields/ghost/to", "unknown_entity", "`workorders.ghost`");
        assert_eq!(p.len(), 2, "the valid relation and the added enum value pass: {p:#?}");

        let without = problems(quality, &Scope { others: scope.others.clone(), ..Scope::alone("quality") });
        has(
            &without,
            "/entities/inspection/fields/work_order/to",
            "undeclared_dependency",
            "does not depend on",
        );
    }

    #[test]
    fn two_extensions_adding_one_value_collide() {
        let owner = parse_toml(GOOD).expect("parses");
        let adds = "version = 1\n[enum_extensions.\"workorders.status\"]\nvalues = [\"on_hold\"]\n";
        let (a, b) = (parse_toml(adds).expect("a"), parse_toml(adds).expect("b"));
        let mut scope = Scope::alone("b");
        scope.dependencies.insert("workorders");
        scope.others.insert("workorders", &owner);
        assert_eq!(validate(&b, &scope), Vec::new(), "alone, b may add the value");
        scope.others.insert("a", &a);
        let p = validate(&b, &scope);
        has(
            &p,
            "/enum_extensions/workorders.status/values/0",
            "collision",
            "extension `a` also adds value `on_hold`",
        );
    }

    #[test]
    fn one_to_many_needs_a_back_reference_and_columns_do_not_collide() {
        let text = r#"
version = 1
[entities.a.fields]
kids = { type = "relation", kind = "one-to-many", to = "b", via = "nothing" }
owner = { type = "relation", kind = "many-to-one", to = "b" }
owner_id = { type = "uuid" }
[entities.b.fields]
name = { type = "string" }
"#;
        let p = problems(text, &Scope::alone("x"));
        has(
            &p,
            "/entities/a/fields/kids/via",
            "invalid_relation",
            "many-to-one field of `b` that points to `a`",
        );
        assert!(p.iter().any(|p| p.code == "collision" && p.message.contains("column `owner_id`")), "{p:#?}");
    }
}
