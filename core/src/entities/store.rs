//! The applied entity declarations (`annex.entity_schemas`), read and written with the host's
//! pool: the newest is what the next declaration is diffed against.

use annex_entities::Declaration;
use sqlx::PgPool;

/// The declarations of `extension` applied so far, oldest first. A stored definition this build
/// cannot read is an error naming it, never skipped.
pub(crate) async fn applied(pool: &PgPool, extension: &str) -> Result<Vec<Declaration>, sqlx::Error> {
    let rows: Vec<(i32, String)> = sqlx::query_as(
        "select version, definition::text from annex.entity_schemas where extension = $1 order by version",
    )
    .bind(extension)
    .fetch_all(pool)
    .await?;
    rows.into_iter()
        .map(|(version, text)| {
            serde_json::from_str(&text).map_err(|e| {
                sqlx::Error::Decode(
                    format!("annex.entity_schemas: {extension} version {version} is unreadable: {e}").into(),
                )
            })
        })
        .collect()
}

/// Records `d` as applied for `extension` (once per version).
pub(crate) async fn record(pool: &PgPool, extension: &str, d: &Declaration) -> Result<(), sqlx::Error> {
    let definition = serde_json::to_value(d).map_err(|e| sqlx::Error::Encode(Box::new(e)))?;
    let checksum = crate::config::canonical::config_hash(&definition);
    sqlx::query(
        "insert into annex.entity_schemas (extension, version, definition, checksum) values ($1, $2, $3, $4)
         on conflict (extension, version) do nothing",
    )
    .bind(extension)
    .bind(i32::try_from(d.version).unwrap_or(i32::MAX))
    .bind(definition)
    .bind(checksum)
    .execute(pool)
    .await?;
    Ok(())
}

/// Forgets the declarations of `extension` newer than `version` (after a rollback below them).
pub(crate) async fn forget_after(pool: &PgPool, extension: &str, version: u32) -> Result<(), sqlx::Error> {
    sqlx::query("delete from annex.entity_schemas where extension = $1 and version > $2")
        .bind(extension)
        .bind(i32::try_from(version).unwrap_or(i32::MAX))
        .execute(pool)
        .await?;
    Ok(())
}

/// One applied declaration version, as listed.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct AppliedDeclaration {
    /// Its version.
    pub version: u32,
    /// SHA-256 of its canonical JSON.
    pub checksum: String,
    /// When it was applied (UTC, RFC 3339).
    pub applied_at: String,
}

/// The versions of `extension`'s declaration applied so far, oldest first.
pub(crate) async fn versions(pool: &PgPool, extension: &str) -> Result<Vec<AppliedDeclaration>, sqlx::Error> {
    let rows: Vec<(i32, String, String)> = sqlx::query_as(
        "select version, checksum, to_char(applied_at at time zone 'utc', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')
           from annex.entity_schemas where extension = $1 order by version",
    )
    .bind(extension)
    .fetch_all(pool)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(version, checksum, applied_at)| AppliedDeclaration {
            version: u32::try_from(version).unwrap_or(0),
            checksum,
            applied_at,
        })
        .collect())
}
