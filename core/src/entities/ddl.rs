//! One entity declaration, two enforcers: the SQL that makes every rule of a declaration a
//! database constraint (NOT NULL, CHECK, UNIQUE, FOREIGN KEY) in the extension's schema, built
//! with sea-query (identifiers quoted, literals escaped by the builder, never pasted). The API
//! checks the same rules first (`annex_entities`), so clients get a 422 naming the field; the
//! database refuses what slips past, raw SQL included.
//!
//! Per entity `t`: `id uuid` (generated), `created_at`, `updated_at` (kept by a trigger), the
//! fields, one CHECK per field (PostgreSQL names it `t_<column>_check`), composite UNIQUEs,
//! indexes, and for `site_scoped` entities a `site_id` column under a forced row-level-security
//! policy on `annex_api.annex_site_id()`. Enums are lookup tables `_enum_<name>` (value primary
//! key) referenced by foreign key, so another extension can add a value, and take it away again,
//! without altering the owner's tables. Many-to-many relations get a junction table
//! `<entity>_<field>`.

use annex_entities::{Declaration, Entity, Field, FieldType, OnDelete, RelationKind};
use sea_query::extension::postgres::PgBinOper;
use sea_query::{
    Alias, ColumnDef, Expr, ForeignKey, ForeignKeyAction, ForeignKeyCreateStatement, Func, Index, OnConflict,
    PostgresQueryBuilder, Query, SimpleExpr, Table,
};

/// The up and down SQL of a declaration created from nothing, statement by statement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct EntitySql {
    /// Creates everything, in dependency order.
    pub(crate) up: Vec<String>,
    /// Drops it again, in reverse order.
    pub(crate) down: Vec<String>,
}

// The schema of an extension: `ext_<name>`, as isolation names it.
pub(super) use crate::db::isolation::schema_name as schema_of;

fn enum_table(name: &str) -> String {
    format!("_enum_{name}")
}

/// `(schema, table)` of `qualified` (`entity` or `<extension>.entity`) seen from `extension`.
fn table_ref(extension: &str, qualified: &str, table: impl Fn(&str) -> String) -> (Alias, Alias) {
    match qualified.split_once('.') {
        Some((ext, name)) => (Alias::new(schema_of(ext)), Alias::new(table(name))),
        None => (Alias::new(schema_of(extension)), Alias::new(table(qualified))),
    }
}

pub(super) fn quoted(ident: &str) -> String {
    format!("\"{}\"", ident.replace('"', "\"\""))
}

pub(super) fn column_def(name: &str, f: &Field) -> ColumnDef {
    let mut c = ColumnDef::new(Alias::new(name));
    match f.field_type {
        FieldType::String => c.string_len(f.max_length.unwrap_or(255)),
        FieldType::Text => c.text(),
        FieldType::Int => c.integer(),
        FieldType::Bigint => c.big_integer(),
        FieldType::Float => c.double(),
        FieldType::Decimal => c.decimal(),
        FieldType::Boolean => c.boolean(),
        FieldType::Date => c.date(),
        FieldType::Datetime => c.timestamp_with_time_zone(),
        FieldType::Json => c.json_binary(),
        FieldType::Uuid | FieldType::Relation => c.uuid(),
        FieldType::Enum => c.text(),
    };
    if f.required {
        c.not_null();
    }
    if f.unique || f.relation_kind() == Some(RelationKind::OneToOne) {
        c.unique_key();
    }
    if let Some(default) = &f.default
        && !default.is_null()
    {
        c.default(default_expr(f, default));
    }
    if let Some(check) = rules(name, f) {
        c.check(check);
    }
    c
}

pub(super) fn default_expr(f: &Field, value: &serde_json::Value) -> SimpleExpr {
    match (f.field_type, value) {
        (FieldType::Json, v) => Expr::val(v.to_string()).cast_as(Alias::new("jsonb")),
        (_, serde_json::Value::String(s)) => Expr::val(s.as_str()).into(),
        (_, serde_json::Value::Bool(b)) => Expr::val(*b).into(),
        (_, serde_json::Value::Number(n)) => match (n.as_i64(), n.as_f64()) {
            (Some(i), _) => Expr::val(i).into(),
            (None, Some(x)) => Expr::val(x).into(),
            (None, None) => Expr::val(n.to_string()).cast_as(Alias::new("numeric")),
        },
        (_, v) => Expr::val(v.to_string()).into(),
    }
}

/// Every validation rule of a field as one CHECK expression (named `<table>_<column>_check` by
/// PostgreSQL), or `None` when it has none.
pub(super) fn rules(column: &str, f: &Field) -> Option<SimpleExpr> {
    let col = || Expr::col(Alias::new(column));
    let mut checks: Vec<SimpleExpr> = Vec::new();
    if let Some(min) = f.min_length {
        checks.push(Expr::expr(Func::char_length(col())).gte(min));
    }
    if f.field_type == FieldType::Text
        && let Some(max) = f.max_length
    {
        checks.push(Expr::expr(Func::char_length(col())).lte(max));
    }
    if let Some(pattern) = &f.pattern {
        checks.push(col().binary(PgBinOper::Regex, Expr::val(format!("^(?:{pattern})$"))));
    }
    let number = |x: f64| -> SimpleExpr {
        if x.fract() == 0.0 && x.abs() < 9.0e15 {
            #[allow(clippy::cast_possible_truncation)]
            Expr::val(x as i64).into()
        } else {
            Expr::val(x).into()
        }
    };
    if let Some(min) = f.min {
        checks.push(col().gte(number(min)));
    }
    if let Some(max) = f.max {
        checks.push(col().lte(number(max)));
    }
    checks.into_iter().reduce(SimpleExpr::and)
}

fn on_delete(f: &Field) -> ForeignKeyAction {
    match f.on_delete.unwrap_or_default() {
        OnDelete::Restrict => ForeignKeyAction::Restrict,
        OnDelete::Cascade => ForeignKeyAction::Cascade,
        OnDelete::SetNull => ForeignKeyAction::SetNull,
    }
}

fn entity_table(extension: &str, name: &str, e: &Entity) -> String {
    let schema = Alias::new(schema_of(extension));
    let mut t = Table::create();
    t.table((schema.clone(), Alias::new(name)));
    t.col(
        ColumnDef::new(Alias::new("id"))
            .uuid()
            .not_null()
            .primary_key()
            .default(Expr::cust("gen_random_uuid()")),
    );
    for stamp in ["created_at", "updated_at"] {
        t.col(
            ColumnDef::new(Alias::new(stamp))
                .timestamp_with_time_zone()
                .not_null()
                .default(Expr::cust("now()")),
        );
    }
    if e.site_scoped {
        t.col(
            ColumnDef::new(Alias::new("site_id"))
                .uuid()
                .not_null()
                .default(Expr::cust("annex_api.annex_site_id()")),
        );
    }
    for (field_name, f) in &e.fields {
        let Some(column) = f.column(field_name) else { continue };
        t.col(column_def(&column, f));
        if let Some(mut fk) = foreign_key(extension, name, &column, f) {
            t.foreign_key(&mut fk);
        }
    }
    for fields in &e.unique {
        let mut index = Index::create();
        index.name(format!("{name}_{}_key", fields.join("_"))).unique();
        for f in fields {
            index.col(Alias::new(e.fields.get(f).and_then(|x| x.column(f)).unwrap_or_else(|| f.clone())));
        }
        t.index(&mut index);
    }
    t.to_string(PostgresQueryBuilder)
}

/// The foreign key of field `f` (stored in `column` of `entity`): to the enum's lookup table, or
/// to the related entity's `id`.
pub(super) fn foreign_key(
    extension: &str,
    entity: &str,
    column: &str,
    f: &Field,
) -> Option<ForeignKeyCreateStatement> {
    let (target, to_col, action) = match (f.field_type, f.relation_kind()) {
        (FieldType::Enum, _) => {
            (table_ref(extension, f.enum_name.as_deref()?, enum_table), "value", ForeignKeyAction::Restrict)
        }
        (FieldType::Relation, Some(RelationKind::OneToOne | RelationKind::ManyToOne)) => {
            (table_ref(extension, f.to.as_deref()?, str::to_owned), "id", on_delete(f))
        }
        _ => return None,
    };
    let mut fk = ForeignKey::create();
    fk.name(format!("{entity}_{column}_fkey"))
        .from_tbl((Alias::new(schema_of(extension)), Alias::new(entity)))
        .from_col(Alias::new(column))
        .to_tbl(target)
        .to_col(Alias::new(to_col))
        .on_delete(action);
    Some(fk)
}

pub(super) fn junction_table(extension: &str, entity: &str, field: &str, to: &str) -> String {
    let schema = Alias::new(schema_of(extension));
    let junction = format!("{entity}_{field}");
    let (left, right) = (format!("{entity}_id"), "target_id".to_owned());
    Table::create()
        .table((schema.clone(), Alias::new(&junction)))
        .col(ColumnDef::new(Alias::new(&left)).uuid().not_null())
        .col(ColumnDef::new(Alias::new(&right)).uuid().not_null())
        .primary_key(Index::create().col(Alias::new(&left)).col(Alias::new(&right)))
        .foreign_key(
            ForeignKey::create()
                .from_tbl((schema.clone(), Alias::new(&junction)))
                .from_col(Alias::new(&left))
                .to_tbl((schema.clone(), Alias::new(entity)))
                .to_col(Alias::new("id"))
                .on_delete(ForeignKeyAction::Cascade),
        )
        .foreign_key(
            ForeignKey::create()
                .from_tbl((schema, Alias::new(&junction)))
                .from_col(Alias::new(&right))
                .to_tbl(table_ref(extension, to, str::to_owned))
                .to_col(Alias::new("id"))
                .on_delete(ForeignKeyAction::Cascade),
        )
        .to_string(PostgresQueryBuilder)
}

fn enum_values_insert(schema: &str, table: &str, owner: &str, values: &[String]) -> String {
    let mut insert = Query::insert();
    insert
        .into_table((Alias::new(schema), Alias::new(table)))
        .columns([Alias::new("value"), Alias::new("added_by")])
        .on_conflict(OnConflict::column(Alias::new("value")).do_nothing().to_owned());
    for v in values {
        insert.values_panic([v.as_str().into(), owner.into()]);
    }
    insert.to_string(PostgresQueryBuilder)
}

/// Creates enum `name` (its lookup table and values).
pub(super) fn enum_up(extension: &str, name: &str, values: &[String]) -> Vec<String> {
    let (schema, table) = (schema_of(extension), enum_table(name));
    vec![
        Table::create()
            .table((Alias::new(&schema), Alias::new(&table)))
            .col(ColumnDef::new(Alias::new("value")).text().not_null().primary_key())
            .col(ColumnDef::new(Alias::new("added_by")).text().not_null())
            .to_string(PostgresQueryBuilder),
        enum_values_insert(&schema, &table, extension, values),
    ]
}

/// Drops enum `name`.
pub(super) fn enum_down(extension: &str, name: &str) -> String {
    format!("drop table {}.{}", quoted(&schema_of(extension)), quoted(&enum_table(name)))
}

/// Adds `values` to enum `key` (`<owner>.<name>`, or this extension's own `<name>`).
pub(super) fn enum_values_up(extension: &str, owner: &str, name: &str, values: &[String]) -> String {
    enum_values_insert(&schema_of(owner), &enum_table(name), extension, values)
}

/// Removes the `values` that `extension` added to enum `name` of `owner`.
pub(super) fn enum_values_down(extension: &str, owner: &str, name: &str, values: &[String]) -> String {
    let mut delete = Query::delete();
    delete
        .from_table((Alias::new(schema_of(owner)), Alias::new(enum_table(name))))
        .and_where(Expr::col(Alias::new("added_by")).eq(extension))
        .and_where(Expr::col(Alias::new("value")).is_in(values.iter().map(String::as_str)));
    delete.to_string(PostgresQueryBuilder)
}

/// Creates entity `name`: its table, the `updated_at` trigger, indexes, the RLS policy of a
/// site-scoped entity, and the junction tables of its many-to-many relations.
pub(super) fn entity_up(extension: &str, name: &str, e: &Entity) -> Vec<String> {
    let schema = schema_of(extension);
    let qs = quoted(&schema);
    let qt = format!("{qs}.{}", quoted(name));
    let mut up = vec![
        entity_table(extension, name, e),
        format!(
            "create trigger \"_touch_updated_at\" before update on {qt} for each row execute function {qs}.\"_touch_updated_at\"()"
        ),
    ];
    for index in &e.indexes {
        let mut i = Index::create();
        let columns: Vec<String> = index
            .fields
            .iter()
            .map(|f| e.fields.get(f).and_then(|x| x.column(f)).unwrap_or_else(|| f.clone()))
            .collect();
        i.name(format!("{name}_{}_idx", columns.join("_"))).table((Alias::new(&schema), Alias::new(name)));
        for c in &columns {
            i.col(Alias::new(c));
        }
        up.push(i.to_string(PostgresQueryBuilder));
    }
    if e.site_scoped {
        up.push(format!("alter table {qt} enable row level security"));
        up.push(format!("alter table {qt} force row level security"));
        up.push(format!(
            "create policy \"by_site\" on {qt} using (site_id = annex_api.annex_site_id()) \
             with check (site_id = annex_api.annex_site_id())"
        ));
    }
    for (field_name, f) in &e.fields {
        if f.relation_kind() == Some(RelationKind::ManyToMany)
            && let Some(to) = &f.to
        {
            up.push(junction_table(extension, name, field_name, to));
        }
    }
    up
}

/// Drops entity `name` and its junction tables.
pub(super) fn entity_down(extension: &str, name: &str, e: &Entity) -> Vec<String> {
    let qs = quoted(&schema_of(extension));
    let mut drops = Vec::new();
    for (field_name, f) in e.fields.iter().rev() {
        if f.relation_kind() == Some(RelationKind::ManyToMany) {
            drops.push(format!("drop table {qs}.{}", quoted(&format!("{name}_{field_name}"))));
        }
    }
    drops.push(format!("drop table {qs}.{}", quoted(name)));
    drops
}

/// The SQL that creates declaration `d` of extension `extension` in its schema, and drops it.
pub(crate) fn create(extension: &str, d: &Declaration) -> EntitySql {
    let qs = quoted(&schema_of(extension));
    let mut up = Vec::new();
    let mut down = Vec::new();
    up.push(format!(
        "create function {qs}.\"_touch_updated_at\"() returns trigger language plpgsql as $$ \
         begin new.updated_at := now(); return new; end $$"
    ));
    for (name, e) in &d.enums {
        up.extend(enum_up(extension, name, &e.values));
    }
    for (key, x) in &d.enum_extensions {
        if let Some((owner, name)) = key.split_once('.') {
            up.push(enum_values_up(extension, owner, name, &x.values));
            down.push(enum_values_down(extension, owner, name, &x.values));
        }
    }
    // Entities that others reference come first: a table is created after those it points to
    // within this declaration (a cycle is created in name order; PostgreSQL says what fails).
    let order = creation_order(d);
    for name in &order {
        if let Some(e) = d.entities.get(name) {
            up.extend(entity_up(extension, name, e));
        }
    }
    for name in order.iter().rev() {
        if let Some(e) = d.entities.get(name) {
            down.extend(entity_down(extension, name, e));
        }
    }
    for name in d.enums.keys().rev() {
        down.push(enum_down(extension, name));
    }
    down.push(format!("drop function {qs}.\"_touch_updated_at\"()"));
    EntitySql { up, down }
}

/// Entity names with every entity after the ones of this declaration it references.
fn creation_order(d: &Declaration) -> Vec<String> {
    let mut order: Vec<String> = Vec::new();
    let mut pending: Vec<&String> = d.entities.keys().collect();
    while !pending.is_empty() {
        let before = pending.len();
        pending.retain(|name| {
            let refs_ready = d.entities[*name].fields.values().all(|f| match (&f.to, f.relation_kind()) {
                (
                    Some(to),
                    Some(RelationKind::OneToOne | RelationKind::ManyToOne | RelationKind::ManyToMany),
                ) if !to.contains('.') && to != *name => order.contains(to) || !d.entities.contains_key(to),
                _ => true,
            });
            if refs_ready {
                order.push((*name).clone());
            }
            !refs_ready
        });
        if pending.len() == before {
            // A cycle: create the rest in name order; PostgreSQL reports what cannot be created.
            order.extend(pending.drain(..).cloned());
        }
    }
    order
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_are_quoted_and_literals_escaped() {
        let d = annex_entities::parse_toml(
            r#"
version = 1
[enums.kind]
values = ["a"]
[entities.thing.fields]
title = { type = "string", pattern = "it's", default = "o'clock", max_length = 20 }
"#,
        )
        .expect("parses");
        let sql = create("shop", &d).up.join(";\n");
        assert!(sql.contains(r#"CREATE TABLE "ext_shop"."thing""#), "{sql}");
        assert!(sql.contains("DEFAULT 'o''clock'") || sql.contains(r"DEFAULT E'o\'clock'"), "{sql}");
        assert!(sql.contains("~ '^(?:it''s)$'") || sql.contains(r"~ E'^(?:it\'s)$'"), "{sql}");
    }

    /// Applied steps are checked by checksum: the SQL of a declaration must not change between
    /// annex versions, or every extension that applied it stops starting. If this fails, the
    /// generator's output changed: keep it, or add the migration that gets applied schemas there.
    #[test]
    fn the_generated_sql_is_byte_stable() {
        use sha2::{Digest, Sha256};
        let d = annex_entities::parse_toml(include_str!(
            "../../../tests/runtime/fixtures/workorders.entities.toml"
        ))
        .expect("the fixture parses");
        let sql = create("workorders", &d);
        let text = format!("{}\n--\n{}", sql.up.join(";\n"), sql.down.join(";\n"));
        let digest: String = Sha256::digest(text.as_bytes()).iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(
            digest, "484da34c65e279d2efae0e7ad8fcc03690ac9ce35de49d7cca0197905d45f7da",
            "the generated SQL changed:\n{text}"
        );
    }

    #[test]
    fn referenced_entities_are_created_first_and_dropped_last() {
        let d = annex_entities::parse_toml(
            r#"
version = 1
[entities.a_comment.fields]
order = { type = "relation", kind = "many-to-one", to = "z_order" }
[entities.z_order.fields]
title = { type = "string" }
"#,
        )
        .expect("parses");
        assert_eq!(creation_order(&d), ["z_order", "a_comment"]);
        let sql = create("x", &d);
        let drop_comment = sql.down.iter().position(|s| s.contains("\"a_comment\""));
        let drop_order = sql.down.iter().position(|s| s.contains("\"z_order\""));
        assert!(drop_comment < drop_order, "{:?}", sql.down);
    }
}
