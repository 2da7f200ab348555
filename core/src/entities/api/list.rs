//! `GET /ext/<name>/entities/<entity>`: filter, sort, page, per_page, fields, expand.
//!
//! `expand=comments,work_order.attachments` attaches related rows under `expand.<field>`, up to
//! three levels deep, with one query per relation per level (never one per row): the answer's
//! `x-annex-queries` header says how many statements the list ran.

use std::collections::{BTreeMap, HashMap};

use annex_entities::{Filter, RelationKind, parse_filter};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};
use sqlx::PgConnection;

use super::super::query;
use super::Apis;
use super::entity::{DEFAULT_PER_PAGE, EntityApi, MAX_PER_PAGE};
use crate::extension::error::ApiError;

/// The deepest `expand` path.
const MAX_EXPAND_DEPTH: usize = 3;

fn bad(code: &'static str, message: String) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, code, message)
}

/// `a.b,a.c,d` as a tree: `{a: {b: {}, c: {}}, d: {}}`.
#[derive(Debug, Default)]
struct Tree(BTreeMap<String, Tree>);

fn expand_tree(text: &str) -> Result<Tree, ApiError> {
    let mut root = Tree::default();
    for path in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let parts: Vec<&str> = path.split('.').collect();
        if parts.len() > MAX_EXPAND_DEPTH {
            return Err(bad(
                "invalid_expand",
                format!("`{path}` expands deeper than {MAX_EXPAND_DEPTH} levels"),
            ));
        }
        let mut node = &mut root;
        for p in parts {
            node = node.0.entry(p.to_owned()).or_default();
        }
    }
    Ok(root)
}

pub(super) async fn list(
    apis: &Apis,
    api: &EntityApi,
    conn: &mut PgConnection,
    params: &HashMap<String, String>,
) -> Result<Response, ApiError> {
    for key in params.keys() {
        if !matches!(key.as_str(), "filter" | "sort" | "page" | "per_page" | "fields" | "expand") {
            return Err(bad(
                "invalid_query",
                format!("unknown query parameter `{key}`; use filter, sort, page, per_page, fields, expand"),
            ));
        }
    }
    let number = |key: &str, default: u64, max: u64| -> Result<u64, ApiError> {
        match params.get(key) {
            None => Ok(default),
            Some(v) => v.parse::<u64>().ok().filter(|n| (1..=max).contains(n)).ok_or_else(|| {
                bad("invalid_query", format!("`{key}` must be a whole number from 1 to {max}, got `{v}`"))
            }),
        }
    };
    let page = number("page", 1, 1_000_000)?;
    let per_page = number("per_page", DEFAULT_PER_PAGE, MAX_PER_PAGE)?;
    let filter: Option<Filter> = match params.get("filter").filter(|f| !f.trim().is_empty()) {
        Some(text) => {
            Some(parse_filter(text, &api.entity).map_err(|e| bad("invalid_filter", e.to_string()))?)
        }
        None => None,
    };
    let sort = api.sort(params.get("sort").map_or("", String::as_str))?;
    let fields: Option<Vec<String>> = match params.get("fields").filter(|f| !f.trim().is_empty()) {
        None => None,
        Some(text) => {
            let names: Vec<String> =
                text.split(',').map(|f| f.trim().to_owned()).filter(|f| !f.is_empty()).collect();
            if let Some(unknown) = names.iter().find(|f| api.column_type(f).is_none()) {
                return Err(bad(
                    "invalid_fields",
                    format!("`{}` has no field `{unknown}` to return", api.name),
                ));
            }
            Some(names)
        }
    };
    let tree = expand_tree(params.get("expand").map_or("", String::as_str))?;
    let q = query::list(&api.extension, &api.name, filter.as_ref(), &sort, page, per_page);
    let mut items: Vec<Value> = sqlx::query_scalar_with(&q.rows.0, q.rows.1)
        .fetch_all(&mut *conn)
        .await
        .map_err(|e| api.refused(e, false))?;
    let total: i64 = sqlx::query_scalar_with(&q.total.0, q.total.1)
        .fetch_one(&mut *conn)
        .await
        .map_err(|e| api.refused(e, false))?;
    let mut queries = 2u32;
    expand(apis, api, conn, &mut items, &tree, &mut queries).await?;
    if let Some(fields) = &fields {
        for item in &mut items {
            if let Value::Object(map) = item {
                map.retain(|k, _| k == "expand" || fields.iter().any(|f| f == k));
            }
        }
    }
    let total = u64::try_from(total).unwrap_or(0);
    let mut res = axum::Json(json!({
        "page": page,
        "per_page": per_page,
        "total_items": total,
        "total_pages": total.div_ceil(per_page),
        "items": items,
    }))
    .into_response();
    res.headers_mut().insert("x-annex-queries", HeaderValue::from(queries));
    Ok(res)
}

fn ids_of(items: &[Value], key: &str) -> Vec<uuid::Uuid> {
    let mut ids: Vec<uuid::Uuid> = items
        .iter()
        .filter_map(|i| i.get(key)?.as_str().and_then(|s| uuid::Uuid::parse_str(s).ok()))
        .collect();
    ids.sort_unstable();
    ids.dedup();
    ids
}

fn attach(item: &mut Value, field: &str, value: Value) {
    if let Value::Object(map) = item {
        let expand = map.entry("expand").or_insert_with(|| Value::Object(Map::new()));
        if let Value::Object(e) = expand {
            e.insert(field.to_owned(), value);
        }
    }
}

/// Attaches every relation of `tree` to `items` (rows of `api`'s entity), then recurses into
/// the related rows: one query per relation per level.
fn expand<'a>(
    apis: &'a Apis,
    api: &'a EntityApi,
    conn: &'a mut PgConnection,
    items: &'a mut [Value],
    tree: &'a Tree,
    queries: &'a mut u32,
) -> futures::future::BoxFuture<'a, Result<(), ApiError>> {
    Box::pin(async move {
        if items.is_empty() {
            return Ok(());
        }
        for (field, subtree) in &tree.0 {
            let relation = api.entity.fields.get(field).and_then(|f| f.relation_kind().map(|k| (k, f)));
            let Some((kind, f)) = relation else {
                return Err(bad(
                    "invalid_expand",
                    format!("`{}` has no relation `{field}` to expand", api.name),
                ));
            };
            let Some(target) = f.to.as_deref().and_then(|to| apis.entities.get(to)) else {
                return Err(bad(
                    "invalid_expand",
                    format!(
                        "`{field}` relates to another extension's entity; expanding across extensions is not supported"
                    ),
                ));
            };
            match kind {
                RelationKind::OneToOne | RelationKind::ManyToOne => {
                    let key = format!("{field}_id");
                    let (sql, values) =
                        query::by_ids(&target.extension, &target.name, "id", &ids_of(items, &key));
                    let mut related: Vec<Value> = sqlx::query_scalar_with(&sql, values)
                        .fetch_all(&mut *conn)
                        .await
                        .map_err(|e| target.refused(e, false))?;
                    *queries += 1;
                    expand(apis, target, &mut *conn, &mut related, subtree, queries).await?;
                    let by_id: HashMap<String, Value> = related
                        .into_iter()
                        .filter_map(|r| Some((r.get("id")?.as_str()?.to_owned(), r.clone())))
                        .collect();
                    for item in items.iter_mut() {
                        let found =
                            item.get(&key).and_then(Value::as_str).and_then(|id| by_id.get(id)).cloned();
                        attach(item, field, found.unwrap_or(Value::Null));
                    }
                }
                RelationKind::OneToMany => {
                    let back = format!("{}_id", f.via.as_deref().unwrap_or_default());
                    let (sql, values) =
                        query::by_ids(&target.extension, &target.name, &back, &ids_of(items, "id"));
                    let mut related: Vec<Value> = sqlx::query_scalar_with(&sql, values)
                        .fetch_all(&mut *conn)
                        .await
                        .map_err(|e| target.refused(e, false))?;
                    *queries += 1;
                    expand(apis, target, &mut *conn, &mut related, subtree, queries).await?;
                    let mut groups: HashMap<String, Vec<Value>> = HashMap::new();
                    for r in related {
                        if let Some(parent) = r.get(&back).and_then(Value::as_str) {
                            groups.entry(parent.to_owned()).or_default().push(r.clone());
                        }
                    }
                    for item in items.iter_mut() {
                        let id = item.get("id").and_then(Value::as_str).unwrap_or_default().to_owned();
                        attach(item, field, Value::Array(groups.remove(&id).unwrap_or_default()));
                    }
                }
                RelationKind::ManyToMany => {
                    let (sql, values) =
                        query::through(&api.extension, &api.name, field, &target.name, &ids_of(items, "id"));
                    let pairs: Vec<(String, Value)> = sqlx::query_as_with(&sql, values)
                        .fetch_all(&mut *conn)
                        .await
                        .map_err(|e| target.refused(e, false))?;
                    *queries += 1;
                    let mut related: Vec<Value> = pairs.iter().map(|(_, r)| r.clone()).collect();
                    expand(apis, target, &mut *conn, &mut related, subtree, queries).await?;
                    let mut groups: HashMap<String, Vec<Value>> = HashMap::new();
                    for ((owner, _), r) in pairs.into_iter().zip(related) {
                        groups.entry(owner).or_default().push(r);
                    }
                    for item in items.iter_mut() {
                        let id = item.get("id").and_then(Value::as_str).unwrap_or_default().to_owned();
                        attach(item, field, Value::Array(groups.remove(&id).unwrap_or_default()));
                    }
                }
            }
        }
        Ok(())
    })
}
