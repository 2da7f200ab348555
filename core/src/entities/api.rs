//! The REST API of an extension's entities, registered as ordinary routes of the extension (so
//! they run through its request path: gate, quotas, rate limit, hooks, metrics):
//!
//! | route | |
//! |---|---|
//! | `GET /ext/<name>/entities/<entity>` | list: `filter`, `sort`, `page`, `per_page` (≤ 500) |
//! | `GET /ext/<name>/entities/<entity>/{id}` | one row |
//! | `POST /ext/<name>/entities/<entity>` | 201, or 422 with `error.fields` |
//! | `PATCH /ext/<name>/entities/<entity>/{id}` | changed fields only |
//! | `DELETE /ext/<name>/entities/<entity>/{id}` | 204, or 409 when a relation restricts it |
//!
//! Access per entity and operation by role; closed by default (role `admin` only, which the
//! admin token carries). Site-scoped entities are not served here: they belong under
//! `/sites/<slug>/ext/<name>/entities/…`.

use std::collections::HashMap;
use std::sync::Arc;

use annex_entities::{Entity, EnumValues, FieldType, Filter, Write, check_row, parse_filter, writable};
use axum::Extension;
use axum::extract::{Path, Query};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};

use crate::config::SchemaViolation;
use crate::extension::Context;
use crate::extension::error::ApiError;
use crate::extension::hooks::Identity;
use crate::extension::json::Json;
use crate::extension::registrar::Registrar;

use super::query::{self, SortKey};

/// The most rows one page may hold.
pub(crate) const MAX_PER_PAGE: u64 = 500;
const DEFAULT_PER_PAGE: u64 = 50;

/// One entity's API: what every handler of it shares.
#[derive(Debug)]
struct EntityApi {
    extension: String,
    name: String,
    entity: Entity,
    enums: Arc<EnumValues>,
}

#[derive(Debug, Clone, Copy)]
enum Operation {
    Read,
    Create,
    Update,
    Delete,
}

impl EntityApi {
    /// 401 without an identity, 403 without one of the roles the operation allows (`admin`
    /// always may).
    fn allow(&self, identity: Option<&Identity>, op: Operation) -> Result<(), ApiError> {
        let roles = match op {
            Operation::Read => &self.entity.access.read,
            Operation::Create => &self.entity.access.create,
            Operation::Update => &self.entity.access.update,
            Operation::Delete => &self.entity.access.delete,
        };
        let Some(identity) = identity else {
            return Err(ApiError::new(
                StatusCode::UNAUTHORIZED,
                "unauthenticated",
                format!(
                    "entity `{}` needs an authenticated caller (the admin token, or an auth hook's identity)",
                    self.name
                ),
            ));
        };
        if identity.has_role("admin") || roles.iter().any(|r| identity.has_role(r)) {
            return Ok(());
        }
        let allowed =
            if roles.is_empty() { "admin".to_owned() } else { format!("admin, {}", roles.join(", ")) };
        Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            format!("{op:?} on entity `{}` needs one of the roles: {allowed}", self.name).to_lowercase(),
        ))
    }

    fn column_type(&self, column: &str) -> Option<FieldType> {
        match column {
            "id" => Some(FieldType::Uuid),
            "created_at" | "updated_at" => Some(FieldType::Datetime),
            _ => writable(&self.entity)
                .get(column)
                .and_then(|f| self.entity.fields.get(*f))
                .map(|f| f.field_type),
        }
    }

    fn sort(&self, text: &str) -> Result<Vec<SortKey>, ApiError> {
        let mut keys = Vec::new();
        for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (column, descending) = match part.strip_prefix('-') {
                Some(c) => (c, true),
                None => (part.strip_prefix('+').unwrap_or(part), false),
            };
            if self.column_type(column).is_none_or(|t| t == FieldType::Json) {
                return Err(ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "invalid_sort",
                    format!(
                        "cannot sort `{}` by `{column}`: use id, created_at, updated_at or a stored field, `-` first for descending",
                        self.name
                    ),
                ));
            }
            keys.push((column.to_owned(), descending));
        }
        Ok(keys)
    }

    fn row_values(
        &self,
        row: &Map<String, Value>,
        write: Write,
    ) -> Result<Vec<(String, FieldType, Value)>, ApiError> {
        let errors = check_row(&self.entity, &self.enums, row, write);
        if !errors.is_empty() {
            let fields: Vec<SchemaViolation> = errors
                .into_iter()
                .map(|e| SchemaViolation { pointer: e.pointer, message: e.message })
                .collect();
            return Err(ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_fields",
                format!("{} field(s) of `{}` are invalid; see error.fields", fields.len(), self.name),
            )
            .with_fields(fields));
        }
        Ok(row
            .iter()
            .filter_map(|(column, v)| self.column_type(column).map(|t| (column.clone(), t, v.clone())))
            .collect())
    }

    /// A database refusal as the client's error, named by field where the constraint says it.
    fn refused(&self, e: sqlx::Error, deleting: bool) -> ApiError {
        let Some(db) = e.as_database_error() else { return e.into() };
        let code = db.code().map(|c| c.into_owned()).unwrap_or_default();
        let constraint = db.constraint().unwrap_or("").to_owned();
        let prefix = format!("{}_", self.name);
        let column = constraint
            .strip_prefix(&prefix)
            .and_then(|c| {
                c.strip_suffix("_check")
                    .or_else(|| c.strip_suffix("_fkey"))
                    .or_else(|| c.strip_suffix("_key"))
            })
            .unwrap_or("")
            .to_owned();
        let field = |message: String| {
            ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_fields",
                format!("`{}`: {message}", self.name),
            )
            .with_fields(vec![SchemaViolation { pointer: format!("/{column}"), message }])
        };
        match code.as_str() {
            "23505" => ApiError::new(
                StatusCode::CONFLICT,
                "unique_violation",
                format!(
                    "another `{}` already has this {}; values must be unique",
                    self.name,
                    column.replace('_', ", ")
                ),
            ),
            "23503" if deleting => ApiError::new(
                StatusCode::CONFLICT,
                "restricted",
                format!(
                    "this `{}` is referenced by other rows ({constraint}); delete or re-point them first",
                    self.name
                ),
            ),
            "23503" => field("the related row does not exist".into()),
            "23514" => field("the value breaks a rule of the field".into()),
            "23502" => {
                let column = db
                    .try_downcast_ref::<sqlx::postgres::PgDatabaseError>()
                    .and_then(|p| p.column())
                    .unwrap_or("");
                ApiError::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "invalid_fields",
                    format!("`{column}` is required"),
                )
                .with_fields(vec![SchemaViolation {
                    pointer: format!("/{column}"),
                    message: "the field is required".into(),
                }])
            }
            c if c.starts_with("22") => ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid_value",
                format!("a value does not fit its field: {}", db.message()),
            ),
            _ => e.into(),
        }
    }

    async fn list(&self, cx: &Context, params: &HashMap<String, String>) -> Result<Response, ApiError> {
        let bad = |code: &'static str, message: String| ApiError::new(StatusCode::BAD_REQUEST, code, message);
        for key in params.keys() {
            if !matches!(key.as_str(), "filter" | "sort" | "page" | "per_page") {
                return Err(bad(
                    "invalid_query",
                    format!("unknown query parameter `{key}`; use filter, sort, page, per_page"),
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
                Some(parse_filter(text, &self.entity).map_err(|e| bad("invalid_filter", e.to_string()))?)
            }
            None => None,
        };
        let sort = self.sort(params.get("sort").map_or("", String::as_str))?;
        let q = query::list(&self.extension, &self.name, filter.as_ref(), &sort, page, per_page);
        let pool = cx.db()?;
        let items: Vec<Value> = sqlx::query_scalar_with(&q.rows.0, q.rows.1)
            .fetch_all(pool)
            .await
            .map_err(|e| self.refused(e, false))?;
        let total: i64 = sqlx::query_scalar_with(&q.total.0, q.total.1)
            .fetch_one(pool)
            .await
            .map_err(|e| self.refused(e, false))?;
        let total = u64::try_from(total).unwrap_or(0);
        Ok(axum::Json(json!({
            "page": page,
            "per_page": per_page,
            "total_items": total,
            "total_pages": total.div_ceil(per_page),
            "items": items,
        }))
        .into_response())
    }

    fn not_found(&self, id: &str) -> ApiError {
        ApiError::not_found(format!("no `{}` with id {id}", self.name))
    }

    fn id(&self, raw: &str) -> Result<uuid::Uuid, ApiError> {
        uuid::Uuid::parse_str(raw).map_err(|_| self.not_found(raw))
    }
}

fn object(body: Value) -> Result<Map<String, Value>, ApiError> {
    match body {
        Value::Object(map) => Ok(map),
        other => Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_body",
            format!("the body must be a JSON object of fields, got {}", kind(&other)),
        )),
    }
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn answer(result: Result<Response, ApiError>) -> Response {
    result.unwrap_or_else(IntoResponse::into_response)
}

type Caller = Option<Extension<Identity>>;

/// Adds the routes of every entity of `declaration` that is not site-scoped.
pub(crate) fn register(
    r: &mut Registrar,
    declaration: &annex_entities::Declaration,
    enums: &Arc<EnumValues>,
) {
    let extension = r.extension().to_owned();
    for (name, entity) in declaration.entities.iter().filter(|(_, e)| !e.site_scoped) {
        let api = Arc::new(EntityApi {
            extension: extension.clone(),
            name: name.clone(),
            entity: entity.clone(),
            enums: enums.clone(),
        });
        let collection = format!("/entities/{name}");
        let one = format!("/entities/{name}/{{id}}");
        let a = api.clone();
        r.get(
            &collection,
            move |cx: Context, caller: Caller, Query(params): Query<HashMap<String, String>>| {
                let api = a.clone();
                async move {
                    answer(
                        async {
                            api.allow(caller.as_deref(), Operation::Read)?;
                            api.list(&cx, &params).await
                        }
                        .await,
                    )
                }
            },
        );
        let a = api.clone();
        r.get(&one, move |cx: Context, caller: Caller, Path(id): Path<String>| {
            let api = a.clone();
            async move {
                answer(
                    async {
                        api.allow(caller.as_deref(), Operation::Read)?;
                        let (sql, values) = query::get(&api.extension, &api.name, api.id(&id)?);
                        let row: Option<Value> = sqlx::query_scalar_with(&sql, values)
                            .fetch_optional(cx.db()?)
                            .await
                            .map_err(|e| api.refused(e, false))?;
                        row.map(|r| axum::Json(r).into_response()).ok_or_else(|| api.not_found(&id))
                    }
                    .await,
                )
            }
        });
        let a = api.clone();
        r.post(&collection, move |cx: Context, caller: Caller, Json(body): Json<Value>| {
            let api = a.clone();
            async move {
                answer(
                    async {
                        api.allow(caller.as_deref(), Operation::Create)?;
                        let values = api.row_values(&object(body)?, Write::Create)?;
                        let (sql, bound) = query::insert(&api.extension, &api.name, &values);
                        let row: Value = sqlx::query_scalar_with(&sql, bound)
                            .fetch_one(cx.db()?)
                            .await
                            .map_err(|e| api.refused(e, false))?;
                        Ok((StatusCode::CREATED, axum::Json(row)).into_response())
                    }
                    .await,
                )
            }
        });
        let a = api.clone();
        r.patch(&one, move |cx: Context, caller: Caller, Path(id): Path<String>, Json(body): Json<Value>| {
            let api = a.clone();
            async move {
                answer(
                    async {
                        api.allow(caller.as_deref(), Operation::Update)?;
                        let key = api.id(&id)?;
                        let values = api.row_values(&object(body)?, Write::Patch)?;
                        let (sql, bound) = if values.is_empty() {
                            query::get(&api.extension, &api.name, key)
                        } else {
                            query::update(&api.extension, &api.name, key, &values)
                        };
                        let row: Option<Value> = sqlx::query_scalar_with(&sql, bound)
                            .fetch_optional(cx.db()?)
                            .await
                            .map_err(|e| api.refused(e, false))?;
                        row.map(|r| axum::Json(r).into_response()).ok_or_else(|| api.not_found(&id))
                    }
                    .await,
                )
            }
        });
        let a = api;
        r.delete(&one, move |cx: Context, caller: Caller, Path(id): Path<String>| {
            let api = a.clone();
            async move {
                answer(
                    async {
                        api.allow(caller.as_deref(), Operation::Delete)?;
                        let (sql, bound) = query::delete(&api.extension, &api.name, api.id(&id)?);
                        let done = sqlx::query_with(&sql, bound)
                            .execute(cx.db()?)
                            .await
                            .map_err(|e| api.refused(e, true))?;
                        if done.rows_affected() == 0 {
                            return Err(api.not_found(&id));
                        }
                        Ok(StatusCode::NO_CONTENT.into_response())
                    }
                    .await,
                )
            }
        });
    }
}

/// The values of every enum `declaration` of `extension` uses, under the names its fields use
/// (`status`, `<extension>.status`), with the values every other extension adds.
pub(crate) fn enum_values(
    extension: &str,
    declaration: &annex_entities::Declaration,
    all: &std::collections::BTreeMap<&str, &annex_entities::Declaration>,
) -> EnumValues {
    let mut out = EnumValues::new();
    for entity in declaration.entities.values() {
        for qualified in entity.fields.values().filter_map(|f| f.enum_name.as_ref()) {
            let (owner, name) = qualified.split_once('.').unwrap_or((extension, qualified.as_str()));
            let Some(e) = all.get(owner).and_then(|d| d.enums.get(name)) else { continue };
            let mut values: std::collections::BTreeSet<String> = e.values.iter().cloned().collect();
            let key = format!("{owner}.{name}");
            for d in all.values() {
                if let Some(x) = d.enum_extensions.get(&key) {
                    values.extend(x.values.iter().cloned());
                }
            }
            out.insert(qualified.clone(), values);
        }
    }
    out
}
