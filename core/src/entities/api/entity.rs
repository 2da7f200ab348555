//! One entity's API: access by role, input checks, the database's refusals named by field, and
//! the single-row operations (on any connection, so `_batch` runs them in one transaction).

use std::sync::Arc;

use annex_entities::{Entity, EnumValues, FieldType, Write, check_row, links, writable};
use axum::http::StatusCode;
use serde_json::{Map, Value};
use sqlx::PgConnection;

use crate::config::SchemaViolation;
use crate::extension::Context;
use crate::extension::error::ApiError;
use crate::extension::hooks::Identity;

use super::super::query::{self, SortKey};

/// The most rows one page may hold.
pub(super) const MAX_PER_PAGE: u64 = 500;
pub(super) const DEFAULT_PER_PAGE: u64 = 50;

/// One entity's API: what every handler of it shares.
#[derive(Debug)]
pub(super) struct EntityApi {
    pub(super) extension: String,
    pub(super) name: String,
    pub(super) entity: Entity,
    pub(super) enums: Arc<EnumValues>,
}

/// What a caller asks to do with an entity.
#[derive(Debug, Clone, Copy)]
pub(super) enum Operation {
    Read,
    Create,
    Update,
    Delete,
}

impl EntityApi {
    /// 401 without an identity, 403 without one of the roles the operation allows (`admin`
    /// always may).
    pub(super) fn allow(&self, identity: Option<&Identity>, op: Operation) -> Result<(), ApiError> {
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

    pub(super) fn column_type(&self, column: &str) -> Option<FieldType> {
        match column {
            "id" => Some(FieldType::Uuid),
            "created_at" | "updated_at" => Some(FieldType::Datetime),
            _ => writable(&self.entity)
                .get(column)
                .and_then(|f| self.entity.fields.get(*f))
                .map(|f| f.field_type),
        }
    }

    pub(super) fn sort(&self, text: &str) -> Result<Vec<SortKey>, ApiError> {
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

    pub(super) fn row_values(
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
    pub(super) fn refused(&self, e: sqlx::Error, deleting: bool) -> ApiError {
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

    pub(super) fn not_found(&self, id: &str) -> ApiError {
        ApiError::not_found(format!("no `{}` with id {id}", self.name))
    }

    pub(super) fn id(&self, raw: &str) -> Result<uuid::Uuid, ApiError> {
        uuid::Uuid::parse_str(raw).map_err(|_| self.not_found(raw))
    }

    /// The transaction every operation runs in: under a site (`/sites/<slug>/ext/…`) with the
    /// site set for row-level security; a site-scoped entity outside a site is a 404.
    pub(super) async fn begin(
        &self,
        cx: &Context,
    ) -> Result<sqlx::Transaction<'static, sqlx::Postgres>, ApiError> {
        if cx.site().is_some() {
            return Ok(cx.site_tx().await?);
        }
        if self.entity.site_scoped {
            return Err(self.outside_site());
        }
        Ok(cx.db()?.begin().await?)
    }

    /// A site-scoped entity asked for outside a site.
    pub(super) fn outside_site(&self) -> ApiError {
        ApiError::not_found(format!(
            "entity `{}` is site-scoped: use /sites/<slug>/ext/{}/entities/{}",
            self.name, self.extension, self.name
        ))
    }

    /// One row by id.
    pub(super) async fn get(&self, conn: &mut PgConnection, id: &str) -> Result<Value, ApiError> {
        let (sql, values) = query::get(&self.extension, &self.name, self.id(id)?);
        let row: Option<Value> = sqlx::query_scalar_with(&sql, values)
            .fetch_optional(conn)
            .await
            .map_err(|e| self.refused(e, false))?;
        row.ok_or_else(|| self.not_found(id))
    }

    /// Creates a row from `body` (a JSON object of fields); returns it as stored.
    pub(super) async fn create(&self, conn: &mut PgConnection, body: Value) -> Result<Value, ApiError> {
        let body = object(body)?;
        let values = self.row_values(&body, Write::Create)?;
        let (sql, bound) = query::insert(&self.extension, &self.name, &values);
        let row: Value = sqlx::query_scalar_with(&sql, bound)
            .fetch_one(&mut *conn)
            .await
            .map_err(|e| self.refused(e, false))?;
        self.relink(conn, &row, &body).await?;
        Ok(row)
    }

    /// Writes the links of every many-to-many field in `body` for `row` (replacing its links).
    async fn relink(
        &self,
        conn: &mut PgConnection,
        row: &Value,
        body: &Map<String, Value>,
    ) -> Result<(), ApiError> {
        let Some(id) = row.get("id").and_then(Value::as_str).and_then(|s| uuid::Uuid::parse_str(s).ok())
        else {
            return Ok(());
        };
        for (field, ids) in links(&self.entity, body) {
            let targets: Vec<uuid::Uuid> = ids.iter().filter_map(|s| uuid::Uuid::parse_str(s).ok()).collect();
            let (delete, insert) = query::relink(&self.extension, &self.name, field, id, &targets);
            sqlx::query_with(&delete.0, delete.1)
                .execute(&mut *conn)
                .await
                .map_err(|e| self.refused(e, false))?;
            if let Some((sql, bound)) = insert {
                sqlx::query_with(&sql, bound).execute(&mut *conn).await.map_err(|e| {
                    if e.as_database_error().and_then(|d| d.code()).is_some_and(|c| c == "23503") {
                        ApiError::new(
                            StatusCode::UNPROCESSABLE_ENTITY,
                            "invalid_fields",
                            format!("`{}`: a related row does not exist", self.name),
                        )
                        .with_fields(vec![SchemaViolation {
                            pointer: format!("/{field}"),
                            message: "a related row does not exist".into(),
                        }])
                    } else {
                        self.refused(e, false)
                    }
                })?;
            }
        }
        Ok(())
    }

    /// Changes the fields in `body` of row `id`; returns it as stored.
    pub(super) async fn patch(
        &self,
        conn: &mut PgConnection,
        id: &str,
        body: Value,
    ) -> Result<Value, ApiError> {
        let key = self.id(id)?;
        let body = object(body)?;
        let values = self.row_values(&body, Write::Patch)?;
        if values.is_empty() {
            let row = self.get(&mut *conn, id).await?;
            self.relink(conn, &row, &body).await?;
            return Ok(row);
        }
        let (sql, bound) = query::update(&self.extension, &self.name, key, &values);
        let row: Option<Value> = sqlx::query_scalar_with(&sql, bound)
            .fetch_optional(&mut *conn)
            .await
            .map_err(|e| self.refused(e, false))?;
        let row = row.ok_or_else(|| self.not_found(id))?;
        self.relink(conn, &row, &body).await?;
        Ok(row)
    }

    /// Deletes row `id`.
    pub(super) async fn delete(&self, conn: &mut PgConnection, id: &str) -> Result<(), ApiError> {
        let (sql, bound) = query::delete(&self.extension, &self.name, self.id(id)?);
        let done = sqlx::query_with(&sql, bound).execute(conn).await.map_err(|e| self.refused(e, true))?;
        if done.rows_affected() == 0 {
            return Err(self.not_found(id));
        }
        Ok(())
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
