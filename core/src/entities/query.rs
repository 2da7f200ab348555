//! The entity API's SQL, built with sea-query: identifiers come from the validated declaration
//! (and are quoted), every value from the client is a bound parameter. Rows come back as
//! `to_jsonb(row)`, so one decoder serves every entity.

use annex_entities::{FieldType, Filter, Op};
use sea_query::extension::postgres::PgExpr;
use sea_query::{
    Alias, BinOper, Expr, JoinType, Keyword, LikeExpr, Order, PostgresQueryBuilder, Query, SelectStatement,
    SimpleExpr,
};
use sea_query_binder::{SqlxBinder, SqlxValues};
use serde_json::Value;

/// The table alias every select uses.
const ROW: &str = "t";

/// `(schema, table)` of an entity of `extension`.
fn table(extension: &str, entity: &str) -> (Alias, Alias) {
    (Alias::new(crate::db::isolation::schema_name(extension)), Alias::new(entity))
}

fn row_json() -> SimpleExpr {
    Expr::cust(format!("to_jsonb(\"{ROW}\")"))
}

/// A client value as a typed SQL value of a column of type `t`. Text that is a date, time,
/// uuid or decimal is cast by PostgreSQL; a value it cannot cast is a data error (SQLSTATE
/// class 22), which the API answers as the client's mistake.
pub(crate) fn value(t: FieldType, v: &Value) -> SimpleExpr {
    let cast = |s: &str, to: &str| Expr::val(s.to_owned()).cast_as(Alias::new(to));
    match (t, v) {
        (_, Value::Null) => SimpleExpr::Keyword(Keyword::Null),
        (FieldType::Json, v) => Expr::val(v.clone()).into(),
        (_, Value::Bool(b)) => Expr::val(*b).into(),
        (FieldType::Decimal, Value::Number(n)) => cast(&n.to_string(), "numeric"),
        (_, Value::Number(n)) => match (n.as_i64(), n.as_f64()) {
            (Some(i), _) if t != FieldType::Float => Expr::val(i).into(),
            (_, Some(x)) => Expr::val(x).into(),
            _ => cast(&n.to_string(), "numeric"),
        },
        (FieldType::Date, Value::String(s)) => cast(s, "date"),
        (FieldType::Datetime, Value::String(s)) => cast(s, "timestamptz"),
        (FieldType::Uuid | FieldType::Relation, Value::String(s)) => cast(s, "uuid"),
        (_, Value::String(s)) => Expr::val(s.clone()).into(),
        (_, other) => Expr::val(other.to_string()).into(),
    }
}

/// `%`, `_` and `\` in a contains-search are literal.
fn like_pattern(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('%');
    for c in s.chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('%');
    out
}

/// The filter as a WHERE condition; every value bound.
pub(crate) fn condition(f: &Filter) -> SimpleExpr {
    match f {
        Filter::And(parts) => {
            parts.iter().map(condition).reduce(SimpleExpr::and).unwrap_or_else(|| Expr::val(true).into())
        }
        Filter::Or(parts) => {
            parts.iter().map(condition).reduce(SimpleExpr::or).unwrap_or_else(|| Expr::val(false).into())
        }
        Filter::Compare { column, field_type, op, value: v } => {
            let col = Expr::col((Alias::new(ROW), Alias::new(column)));
            match (op, v) {
                (Op::Eq, Value::Null) => col.is_null(),
                (Op::Ne, Value::Null) => col.is_not_null(),
                (Op::Contains | Op::NotContains, Value::String(s)) => {
                    let text = col.cast_as(Alias::new("text"));
                    // Backslash is LIKE's default escape character (an explicit ESCAPE clause
                    // would be rendered inside the parameter's parentheses by sea-query 0.32).
                    let like = LikeExpr::new(like_pattern(s));
                    if *op == Op::Contains { text.ilike(like) } else { text.not_ilike(like) }
                }
                _ => {
                    let operator = match op {
                        Op::Eq => BinOper::Equal,
                        Op::Ne => BinOper::NotEqual,
                        Op::Gt => BinOper::GreaterThan,
                        Op::Ge => BinOper::GreaterThanOrEqual,
                        Op::Lt => BinOper::SmallerThan,
                        Op::Le => BinOper::SmallerThanOrEqual,
                        Op::Contains | Op::NotContains => BinOper::Like,
                    };
                    col.binary(operator, value(*field_type, v))
                }
            }
        }
    }
}

/// One page of a list, and the count of all matching rows.
pub(crate) struct ListQuery {
    /// `select to_jsonb(t) from … where … order by … limit … offset …`
    pub(crate) rows: (String, SqlxValues),
    /// `select count(*) from … where …`
    pub(crate) total: (String, SqlxValues),
}

/// A sort key: column and direction.
pub(crate) type SortKey = (String, bool);

pub(crate) fn list(
    extension: &str,
    entity: &str,
    filter: Option<&Filter>,
    sort: &[SortKey],
    page: u64,
    per_page: u64,
) -> ListQuery {
    let base = |select: &mut SelectStatement| {
        select.from_as(table(extension, entity), Alias::new(ROW));
        if let Some(f) = filter {
            select.and_where(condition(f));
        }
    };
    let mut rows = Query::select();
    rows.expr(row_json());
    base(&mut rows);
    for (column, descending) in sort {
        rows.order_by(
            (Alias::new(ROW), Alias::new(column)),
            if *descending { Order::Desc } else { Order::Asc },
        );
    }
    // A stable order whatever the sort: ties broken by creation, then id.
    rows.order_by((Alias::new(ROW), Alias::new("created_at")), Order::Asc)
        .order_by((Alias::new(ROW), Alias::new("id")), Order::Asc)
        .limit(per_page)
        .offset(page.saturating_sub(1).saturating_mul(per_page));
    let mut total = Query::select();
    total.expr(Expr::cust("count(*)"));
    base(&mut total);
    ListQuery { rows: rows.build_sqlx(PostgresQueryBuilder), total: total.build_sqlx(PostgresQueryBuilder) }
}

/// Rows whose `column` is one of `ids` (an expand level), in creation order.
pub(crate) fn by_ids(
    extension: &str,
    entity: &str,
    column: &str,
    ids: &[uuid::Uuid],
) -> (String, SqlxValues) {
    Query::select()
        .expr(row_json())
        .from_as(table(extension, entity), Alias::new(ROW))
        .and_where(Expr::col((Alias::new(ROW), Alias::new(column))).is_in(ids.iter().copied()))
        .order_by((Alias::new(ROW), Alias::new("created_at")), Order::Asc)
        .order_by((Alias::new(ROW), Alias::new("id")), Order::Asc)
        .build_sqlx(PostgresQueryBuilder)
}

/// `(owner id, related row)` through the junction table of many-to-many `field` of `entity`.
pub(crate) fn through(
    extension: &str,
    entity: &str,
    field: &str,
    target: &str,
    ids: &[uuid::Uuid],
) -> (String, SqlxValues) {
    let junction = Alias::new("j");
    let owner = format!("{entity}_id");
    Query::select()
        .expr(Expr::col((junction.clone(), Alias::new(&owner))).cast_as(Alias::new("text")))
        .expr(row_json())
        .from_as(table(extension, &format!("{entity}_{field}")), junction.clone())
        .join_as(
            JoinType::InnerJoin,
            table(extension, target),
            Alias::new(ROW),
            Expr::col((Alias::new(ROW), Alias::new("id")))
                .equals((junction.clone(), Alias::new("target_id"))),
        )
        .and_where(Expr::col((junction, Alias::new(&owner))).is_in(ids.iter().copied()))
        .build_sqlx(PostgresQueryBuilder)
}

/// Replaces the links of many-to-many `field` of row `id`: the delete, then the insert (none
/// when `targets` is empty).
pub(crate) fn relink(
    extension: &str,
    entity: &str,
    field: &str,
    id: uuid::Uuid,
    targets: &[uuid::Uuid],
) -> ((String, SqlxValues), Option<(String, SqlxValues)>) {
    let junction = table(extension, &format!("{entity}_{field}"));
    let owner = Alias::new(format!("{entity}_id"));
    let delete = Query::delete()
        .from_table(junction.clone())
        .and_where(Expr::col(owner.clone()).eq(id))
        .build_sqlx(PostgresQueryBuilder);
    if targets.is_empty() {
        return (delete, None);
    }
    let mut insert = Query::insert();
    insert.into_table(junction).columns([owner, Alias::new("target_id")]).on_conflict(
        sea_query::OnConflict::columns([Alias::new(format!("{entity}_id")), Alias::new("target_id")])
            .do_nothing()
            .to_owned(),
    );
    for t in targets {
        insert.values_panic([id.into(), (*t).into()]);
    }
    (delete, Some(insert.build_sqlx(PostgresQueryBuilder)))
}

pub(crate) fn get(extension: &str, entity: &str, id: uuid::Uuid) -> (String, SqlxValues) {
    Query::select()
        .expr(row_json())
        .from_as(table(extension, entity), Alias::new(ROW))
        .and_where(Expr::col((Alias::new(ROW), Alias::new("id"))).eq(id))
        .build_sqlx(PostgresQueryBuilder)
}

/// `insert … returning to_jsonb(row)`; `values` are (column, type, value).
pub(crate) fn insert(
    extension: &str,
    entity: &str,
    values: &[(String, FieldType, Value)],
) -> (String, SqlxValues) {
    let mut q = Query::insert();
    q.into_table(table(extension, entity));
    if values.is_empty() {
        q.or_default_values();
    } else {
        q.columns(values.iter().map(|(c, _, _)| Alias::new(c)));
        q.values_panic(values.iter().map(|(_, t, v)| value(*t, v)));
    }
    q.returning(Query::returning().expr(Expr::cust(format!("to_jsonb(\"{entity}\".*)"))));
    q.build_sqlx(PostgresQueryBuilder)
}

pub(crate) fn update(
    extension: &str,
    entity: &str,
    id: uuid::Uuid,
    values: &[(String, FieldType, Value)],
) -> (String, SqlxValues) {
    let mut q = Query::update();
    q.table(table(extension, entity));
    for (c, t, v) in values {
        q.value(Alias::new(c), value(*t, v));
    }
    q.and_where(Expr::col(Alias::new("id")).eq(id));
    q.returning(Query::returning().expr(Expr::cust(format!("to_jsonb(\"{entity}\".*)"))));
    q.build_sqlx(PostgresQueryBuilder)
}

pub(crate) fn delete(extension: &str, entity: &str, id: uuid::Uuid) -> (String, SqlxValues) {
    Query::delete()
        .from_table(table(extension, entity))
        .and_where(Expr::col(Alias::new("id")).eq(id))
        .build_sqlx(PostgresQueryBuilder)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_bound_never_pasted() {
        let f = Filter::Or(vec![
            Filter::Compare {
                column: "title".into(),
                field_type: FieldType::String,
                op: Op::Eq,
                value: "x'; drop table item; --".into(),
            },
            Filter::Compare {
                column: "title".into(),
                field_type: FieldType::String,
                op: Op::Contains,
                value: "50%_\\".into(),
            },
        ]);
        let q = list("shop", "item", Some(&f), &[("title".into(), true)], 2, 10);
        assert!(!q.rows.0.contains("drop table"), "{}", q.rows.0);
        assert!(q.rows.0.contains(r#"FROM "ext_shop"."item" AS "t""#), "{}", q.rows.0);
        assert!(q.rows.0.contains("LIMIT $") && q.rows.0.contains("OFFSET $"), "{}", q.rows.0);
        assert_eq!(like_pattern("50%_\\"), "%50\\%\\_\\\\%");
    }
}
