//! The SQL of each change between two declaration versions (`annex_entities::diff`), both
//! ways: `up` applies the change, `down` puts the old version back (the data a destructive
//! change dropped stays dropped; its column or table comes back empty).

use annex_entities::{Change, Declaration, Entity, Field, FieldType, PlannedChange, RelationKind};
use sea_query::{Alias, PostgresQueryBuilder, Query, SimpleExpr, Table};

use super::ddl::{self, EntitySql, quoted, schema_of};

/// Why a change cannot be generated.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub(crate) struct Unsupported(pub(crate) String);

fn table(extension: &str, entity: &str) -> String {
    format!("{}.{}", quoted(&schema_of(extension)), quoted(entity))
}

fn field_of<'d>(d: &'d Declaration, entity: &str, field: &str) -> Option<(&'d Entity, &'d Field)> {
    let e = d.entities.get(entity)?;
    Some((e, e.fields.get(field)?))
}

/// `ADD COLUMN` of field `name` (with its rules) and its foreign key; for a many-to-many
/// relation, its junction table.
fn add_column(extension: &str, entity: &str, name: &str, f: &Field) -> Vec<String> {
    if let (Some(RelationKind::ManyToMany), Some(to)) = (f.relation_kind(), &f.to) {
        return vec![ddl::junction_table(extension, entity, name, to)];
    }
    let Some(column) = f.column(name) else { return Vec::new() };
    let mut alter = Table::alter();
    alter
        .table((Alias::new(schema_of(extension)), Alias::new(entity)))
        .add_column(ddl::column_def(&column, f));
    let mut out = vec![alter.to_string(PostgresQueryBuilder)];
    if let Some(fk) = ddl::foreign_key(extension, entity, &column, f) {
        out.push(fk.to_string(PostgresQueryBuilder));
    }
    out
}

fn drop_column(extension: &str, entity: &str, name: &str, f: &Field) -> Vec<String> {
    if f.relation_kind() == Some(RelationKind::ManyToMany) {
        return vec![format!("drop table {}", table(extension, &format!("{entity}_{name}")))];
    }
    let Some(column) = f.column(name) else { return Vec::new() };
    vec![format!("alter table {} drop column {}", table(extension, entity), quoted(&column))]
}

/// The PostgreSQL type of a field's column, as `column_def` creates it.
fn sql_type(f: &Field) -> String {
    match f.field_type {
        FieldType::String => format!("varchar({})", f.max_length.unwrap_or(255)),
        FieldType::Text | FieldType::Enum => "text".into(),
        FieldType::Int => "integer".into(),
        FieldType::Bigint => "bigint".into(),
        FieldType::Float => "double precision".into(),
        FieldType::Decimal => "numeric".into(),
        FieldType::Boolean => "boolean".into(),
        FieldType::Date => "date".into(),
        FieldType::Datetime => "timestamp with time zone".into(),
        FieldType::Json => "jsonb".into(),
        FieldType::Uuid | FieldType::Relation => "uuid".into(),
    }
}

/// An expression as SQL text, rendered by sea-query (literals escaped by the builder).
fn render(expr: SimpleExpr) -> String {
    let text = Query::select().expr(expr).to_string(PostgresQueryBuilder);
    text.strip_prefix("SELECT ").unwrap_or(&text).to_owned()
}

/// Puts column `name` of `entity` to definition `f`: type, NOT NULL, default, unique, rules.
fn reset_column(extension: &str, entity: &str, name: &str, f: &Field) -> Vec<String> {
    let Some(column) = f.column(name) else { return Vec::new() };
    let (t, c) = (table(extension, entity), quoted(&column));
    let ty = sql_type(f);
    let mut out = vec![format!("alter table {t} alter column {c} type {ty} using {c}::{ty}")];
    out.push(format!(
        "alter table {t} alter column {c} {} not null",
        if f.required { "set" } else { "drop" }
    ));
    out.push(match f.default.as_ref().filter(|v| !v.is_null()) {
        Some(v) => {
            format!("alter table {t} alter column {c} set default {}", render(ddl::default_expr(f, v)))
        }
        None => format!("alter table {t} alter column {c} drop default"),
    });
    let check = quoted(&format!("{entity}_{column}_check"));
    out.push(format!("alter table {t} drop constraint if exists {check}"));
    if let Some(rule) = ddl::rules(&column, f) {
        out.push(format!("alter table {t} add constraint {check} check ({})", render(rule)));
    }
    let key = quoted(&format!("{entity}_{column}_key"));
    out.push(format!("alter table {t} drop constraint if exists {key}"));
    if f.unique || f.relation_kind() == Some(RelationKind::OneToOne) {
        out.push(format!("alter table {t} add constraint {key} unique ({c})"));
    }
    out
}

/// The up and down SQL of every change of `plan`, from `old` to `new`.
pub(crate) fn sql(
    extension: &str,
    old: &Declaration,
    new: &Declaration,
    plan: &[PlannedChange],
) -> Result<EntitySql, Unsupported> {
    let mut up: Vec<String> = Vec::new();
    let mut down: Vec<Vec<String>> = Vec::new();
    for planned in plan {
        let (u, d) = one(extension, old, new, &planned.change)?;
        up.extend(u);
        down.push(d);
    }
    // Undo in reverse order of doing.
    Ok(EntitySql { up, down: down.into_iter().rev().flatten().collect() })
}

fn one(
    extension: &str,
    old: &Declaration,
    new: &Declaration,
    change: &Change,
) -> Result<(Vec<String>, Vec<String>), Unsupported> {
    let missing = || Unsupported(format!("the declaration does not hold what {change:?} names"));
    Ok(match change {
        Change::AddEntity { entity } => {
            let e = new.entities.get(entity).ok_or_else(missing)?;
            (ddl::entity_up(extension, entity, e), ddl::entity_down(extension, entity, e))
        }
        Change::DropEntity { entity } => {
            let e = old.entities.get(entity).ok_or_else(missing)?;
            (ddl::entity_down(extension, entity, e), ddl::entity_up(extension, entity, e))
        }
        Change::RenameEntity { from, to } => (
            vec![format!("alter table {} rename to {}", table(extension, from), quoted(to))],
            vec![format!("alter table {} rename to {}", table(extension, to), quoted(from))],
        ),
        Change::AddField { entity, field } => {
            let (_, f) = field_of(new, entity, field).ok_or_else(missing)?;
            (add_column(extension, entity, field, f), drop_column(extension, entity, field, f))
        }
        Change::DropField { entity, field } => {
            let (_, f) = field_of(old, entity, field).ok_or_else(missing)?;
            (drop_column(extension, entity, field, f), add_column(extension, entity, field, f))
        }
        Change::RenameField { entity, from, to } => {
            let (_, old_f) = field_of(old, entity, from).ok_or_else(missing)?;
            let (_, new_f) = field_of(new, entity, to).ok_or_else(missing)?;
            let (Some(a), Some(b)) = (old_f.column(from), new_f.column(to)) else {
                return Err(Unsupported(format!(
                    "renaming the relation `{entity}.{from}`, which has no column"
                )));
            };
            let t = table(extension, entity);
            (
                vec![format!("alter table {t} rename column {} to {}", quoted(&a), quoted(&b))],
                vec![format!("alter table {t} rename column {} to {}", quoted(&b), quoted(&a))],
            )
        }
        Change::AlterField { entity, field, .. } => {
            let (_, new_f) = field_of(new, entity, field).ok_or_else(missing)?;
            let old_name =
                new_f.renamed_from.as_deref().filter(|r| field_of(old, entity, r).is_some()).unwrap_or(field);
            let (_, old_f) = field_of(old, entity, old_name).ok_or_else(missing)?;
            let kinds = |f: &Field| (f.field_type, f.relation, f.to.clone(), f.enum_name.clone());
            if kinds(old_f) != kinds(new_f)
                && !matches!(
                    (old_f.field_type, new_f.field_type),
                    (FieldType::Int, FieldType::Bigint)
                        | (FieldType::String, FieldType::Text)
                        | (FieldType::Text, FieldType::String)
                        | (FieldType::Bigint, FieldType::Int)
                )
            {
                return Err(Unsupported(format!(
                    "changing the kind of `{entity}.{field}`; drop the field and add a new one instead"
                )));
            }
            (reset_column(extension, entity, field, new_f), reset_column(extension, entity, field, old_f))
        }
        Change::AddEnumValues { name, values } => (
            vec![ddl::enum_values_up(extension, extension, name, values)],
            vec![ddl::enum_values_down(extension, extension, name, values)],
        ),
        Change::DropEnumValues { name, values } => (
            vec![ddl::enum_values_down(extension, extension, name, values)],
            vec![ddl::enum_values_up(extension, extension, name, values)],
        ),
        Change::AddEnum { name } => {
            let e = new.enums.get(name).ok_or_else(missing)?;
            (ddl::enum_up(extension, name, &e.values), vec![ddl::enum_down(extension, name)])
        }
        Change::DropEnum { name } => {
            let e = old.enums.get(name).ok_or_else(missing)?;
            (vec![ddl::enum_down(extension, name)], ddl::enum_up(extension, name, &e.values))
        }
    })
}
