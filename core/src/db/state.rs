//! `annex.extensions`: the stored state of each extension.

use sqlx::PgPool;

use crate::db::json::{self, Unreadable};

/// name, version, enabled, config (as text), state, last_error.
type Row = (String, String, bool, String, String, Option<String>);

/// One row of `annex.extensions`.
#[derive(Debug, Clone)]
pub(crate) struct StoredExtension {
    pub(crate) name: String,
    pub(crate) version: String,
    pub(crate) enabled: bool,
    /// The stored config (`null` when unreadable).
    pub(crate) config: serde_json::Value,
    /// Why the stored config cannot be read, if it cannot.
    pub(crate) config_error: Option<Unreadable>,
    pub(crate) state: String,
    pub(crate) last_error: Option<String>,
}

/// Records a compiled-in extension (new ones start enabled unless `enabled` says otherwise) and
/// returns its stored row. `enabled` is the config file's override, if any.
pub(crate) async fn register(
    pool: &PgPool,
    name: &str,
    version: &str,
    enabled: Option<bool>,
) -> Result<StoredExtension, sqlx::Error> {
    let row: Row = sqlx::query_as(
        r#"
        insert into annex.extensions (name, version, enabled)
        values ($1, $2, coalesce($3, true))
        on conflict (name) do update
            set version = excluded.version,
                enabled = coalesce($3, annex.extensions.enabled),
                updated_at = now()
        returning name, version, enabled, config::text, state, last_error
        "#,
    )
    .bind(name)
    .bind(version)
    .bind(enabled)
    .fetch_one(pool)
    .await?;
    Ok(row.into())
}

/// Records the lifecycle state (`running`, `failed`, …) and the last error.
pub(crate) async fn set_state(
    pool: &PgPool,
    name: &str,
    state: &str,
    error: Option<&str>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "update annex.extensions set state = $2, last_error = $3, updated_at = now() where name = $1",
    )
    .bind(name)
    .bind(state)
    .bind(error)
    .execute(pool)
    .await?;
    Ok(())
}

/// Every stored extension, by name.
pub(crate) async fn all(pool: &PgPool) -> Result<Vec<StoredExtension>, sqlx::Error> {
    let rows: Vec<Row> = sqlx::query_as(
        "select name, version, enabled, config::text, state, last_error from annex.extensions order by name",
    )
    .fetch_all(pool)
    .await?;
    Ok(rows.into_iter().map(Into::into).collect())
}

/// One stored extension, if a host or the CLI ever recorded it.
pub(crate) async fn one(pool: &PgPool, name: &str) -> Result<Option<StoredExtension>, sqlx::Error> {
    let row: Option<Row> = sqlx::query_as(
        "select name, version, enabled, config::text, state, last_error from annex.extensions where name = $1",
    )
    .bind(name)
    .fetch_optional(pool)
    .await?;
    Ok(row.map(Into::into))
}

impl From<Row> for StoredExtension {
    fn from(r: Row) -> Self {
        let (config, config_error) = match json::parse(&r.3) {
            Ok(config) => (config, None),
            Err(e) => (serde_json::Value::Null, Some(e)),
        };
        Self { name: r.0, version: r.1, enabled: r.2, config, config_error, state: r.4, last_error: r.5 }
    }
}
