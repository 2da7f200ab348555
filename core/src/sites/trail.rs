//! The audit trail of one extension at one site: its activations, reconfigurations,
//! proposals, deactivations and sign-offs, from `annex.audit_log` by target, newest first,
//! paginated by id.

use serde::Serialize;
use sqlx::PgPool;

use super::activation::target;
use super::error::SiteError;
use super::store::Site;

/// One page of a trail.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Trail {
    /// The site's slug.
    pub site: String,
    /// The extension.
    pub extension: String,
    /// Entries, newest first.
    pub entries: Vec<TrailEntry>,
    /// The `before` of the next page; `null` on the last.
    pub next_before: Option<i64>,
}

/// One audit entry.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TrailEntry {
    /// The audit row's id.
    pub id: i64,
    /// When (UTC, RFC 3339).
    pub at: String,
    /// Who.
    pub actor: String,
    /// `site.extension_activated`, `site.extension_reconfigured`, `site.extension_proposed`,
    /// `site.extension_deactivated` or `site.signoff_recorded`.
    pub action: String,
    /// Old and new hash, reason, sign-off details.
    pub details: serde_json::Value,
}

/// Largest page.
pub const MAX_LIMIT: i64 = 500;

/// One page of the trail of `extension` at `site`.
pub(crate) async fn trail(
    pool: &PgPool,
    site: &Site,
    extension: &str,
    before: Option<i64>,
    limit: i64,
) -> Result<Trail, SiteError> {
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(SiteError::InvalidInput(format!("limit must be a whole number from 1 to {MAX_LIMIT}")));
    }
    let rows: Vec<(i64, String, String, String, serde_json::Value)> = sqlx::query_as(
        r#"select id, to_char(at at time zone 'utc', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'), actor, action, details
             from annex.audit_log
            where target = $1 and ($2::bigint is null or id < $2)
            order by id desc
            limit $3"#,
    )
    .bind(target(site, extension))
    .bind(before)
    .bind(limit)
    .fetch_all(pool)
    .await?;
    let next_before = (rows.len() as i64 == limit).then(|| rows.last().map(|r| r.0)).flatten();
    let entries = rows
        .into_iter()
        .map(|(id, at, actor, action, details)| TrailEntry { id, at, actor, action, details })
        .collect();
    Ok(Trail { site: site.slug.clone(), extension: extension.to_owned(), entries, next_before })
}
