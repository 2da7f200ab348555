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
