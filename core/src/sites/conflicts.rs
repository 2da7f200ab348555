//! Detected conflicts (`annex.site_conflicts`), with resolution tracking: a validation or
//! activation records what it found as open conflicts and marks resolved those of the same
//! extensions it no longer finds; a deactivation resolves those that involve the extension.

use serde::Serialize;
use sqlx::{PgExecutor, Postgres, Transaction};
use uuid::Uuid;

use super::report::Conflict;

/// A conflict as recorded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RecordedConflict {
    /// Its id.
    pub id: i64,
    /// The extension validated.
    pub extension: String,
    /// The extension or capability it conflicts with.
    pub other: String,
    /// `explicit`, `exclusive_slot`, `dependency` or `version`.
    pub kind: String,
    /// What and how to fix it.
    pub message: String,
    /// When first detected (UTC, RFC 3339).
    pub detected_at: String,
}

/// Records `found` for the extensions in `validated` (inserting the new ones, leaving the
/// still-open ones as they are) and resolves their open conflicts no longer found.
pub(crate) async fn record(
    tx: &mut Transaction<'_, Postgres>,
    site: Uuid,
    validated: &[&str],
    found: &[Conflict],
) -> Result<(), sqlx::Error> {
    for c in found {
        sqlx::query(
            "insert into annex.site_conflicts (site_id, extension, other, kind, message)
             values ($1, $2, $3, $4, $5)
             on conflict (site_id, extension, other, kind) where resolved_at is null do nothing",
        )
        .bind(site)
        .bind(&c.extension)
        .bind(&c.other)
        .bind(c.kind.as_str())
        .bind(&c.message)
        .execute(&mut **tx)
        .await?;
    }
    let names: Vec<String> = validated.iter().map(|s| (*s).to_owned()).collect();
    let keys: Vec<String> =
        found.iter().map(|c| format!("{}\u{1}{}\u{1}{}", c.extension, c.other, c.kind.as_str())).collect();
    sqlx::query(
        "update annex.site_conflicts
            set resolved_at = now(), resolution = 'no longer detected by a later validation'
          where site_id = $1 and resolved_at is null and extension = any($2)
            and not (extension || chr(1) || other || chr(1) || kind = any($3))",
    )
    .bind(site)
    .bind(&names)
    .bind(&keys)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Resolves every open conflict involving `extension` (it was deactivated).
pub(crate) async fn resolve_deactivated(
    tx: &mut Transaction<'_, Postgres>,
    site: Uuid,
    extension: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "update annex.site_conflicts
            set resolved_at = now(), resolution = format('`%s` was deactivated at this site', $2::text)
          where site_id = $1 and resolved_at is null and (extension = $2 or other = $2)",
    )
    .bind(site)
    .bind(extension)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// The site's open conflicts, oldest first.
pub(crate) async fn open(
    executor: impl PgExecutor<'_>,
    site: Uuid,
) -> Result<Vec<RecordedConflict>, sqlx::Error> {
    let rows: Vec<(i64, String, String, String, String, String)> = sqlx::query_as(
        r#"select id, extension, other, kind, message,
                  to_char(detected_at at time zone 'utc', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') as detected_at
             from annex.site_conflicts where site_id = $1 and resolved_at is null order by id"#,
    )
    .bind(site)
    .fetch_all(executor)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(id, extension, other, kind, message, detected_at)| RecordedConflict {
            id,
            extension,
            other,
            kind,
            message,
            detected_at,
        })
        .collect())
}
