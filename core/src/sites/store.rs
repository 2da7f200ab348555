//! The sites table (`annex.sites`): create, list, find by slug or id, suspend and resume. Every
//! change is one transaction with its audit row.

use serde::Serialize;
use sqlx::{PgExecutor, PgPool, Postgres, Transaction};
use uuid::Uuid;

use super::error::SiteError;
use super::gates::CHANNEL;
use crate::access::{Action, Actor};
use crate::observe::audit::{self, AuditEntry};

/// A site (tenant) as shown.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Site {
    /// Stable id.
    pub id: Uuid,
    /// `^[a-z0-9][a-z0-9-]{0,62}$`, unique; in URLs.
    pub slug: String,
    /// Shown to operators: 1 to 200 characters, not only blanks.
    pub name: String,
    /// `active` or `suspended`.
    pub status: String,
    /// Site policy, such as `{"allow_one_signer_for_several_roles": true}`.
    pub policy: serde_json::Value,
    /// When created (UTC, RFC 3339).
    pub created_at: String,
    /// When last changed (UTC, RFC 3339).
    pub updated_at: String,
}

impl<'r> sqlx::FromRow<'r, sqlx::postgres::PgRow> for Site {
    fn from_row(row: &'r sqlx::postgres::PgRow) -> Result<Self, sqlx::Error> {
        use sqlx::Row;
        Ok(Self {
            id: row.try_get("id")?,
            slug: row.try_get("slug")?,
            name: row.try_get("name")?,
            status: row.try_get("status")?,
            policy: row.try_get("policy")?,
            created_at: row.try_get("created_at")?,
            updated_at: row.try_get("updated_at")?,
        })
    }
}

impl Site {
    /// Whether it is suspended.
    pub fn is_suspended(&self) -> bool {
        self.status == "suspended"
    }

    /// The policy allows one person to sign several roles of one aspect.
    pub(crate) fn allows_one_signer_for_several_roles(&self) -> bool {
        self.policy.get("allow_one_signer_for_several_roles").and_then(serde_json::Value::as_bool)
            == Some(true)
    }

    /// `Err(SiteSuspended)` when suspended: every site-scoped mutation asks first.
    pub(crate) fn ensure_active(&self) -> Result<(), SiteError> {
        if self.is_suspended() { Err(SiteError::SiteSuspended(self.slug.clone())) } else { Ok(()) }
    }
}

const COLUMNS: &str = "id, slug, name, status, policy, \
     to_char(created_at at time zone 'utc', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"') as created_at, \
     to_char(updated_at at time zone 'utc', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"') as updated_at";

/// Whether `slug` matches `^[a-z0-9][a-z0-9-]{0,62}$`.
pub fn valid_slug(slug: &str) -> bool {
    let mut chars = slug.chars();
    matches!(chars.next(), Some('a'..='z' | '0'..='9'))
        && slug.len() <= 63
        && chars.all(|c| matches!(c, 'a'..='z' | '0'..='9' | '-'))
}

/// Creates a site.
pub(crate) async fn create(pool: &PgPool, actor: &Actor, slug: &str, name: &str) -> Result<Site, SiteError> {
    if !valid_slug(slug) {
        return Err(SiteError::InvalidSlug(slug.to_owned()));
    }
    // The length as given, and exactly the blanks the OpenAPI pattern names, so the document
    // and the server agree on every name.
    if name.chars().count() > 200 || name.contains('\0') {
        return Err(SiteError::InvalidName);
    }
    let name = name.trim_matches([' ', '\t', '\n', '\r']);
    if name.is_empty() {
        return Err(SiteError::InvalidName);
    }
    let mut tx = pool.begin().await?;
    let site = sqlx::query_as::<_, Site>(&format!(
        "insert into annex.sites (slug, name) values ($1, $2) on conflict (slug) do nothing returning {COLUMNS}"
    ))
    .bind(slug)
    .bind(name)
    .fetch_optional(&mut *tx)
    .await?
    .ok_or_else(|| SiteError::SiteExists(slug.to_owned()))?;
    let entry = AuditEntry::new(actor.audit_name(), "site.created", format!("sites/{slug}"))
        .details(serde_json::json!({ "id": site.id, "name": site.name }));
    audit::record(&mut *tx, &entry).await?;
    // The other replicas learn of the new slug now, not at their next resync.
    notify(&mut tx, site.id).await?;
    tx.commit().await?;
    Ok(site)
}

/// Every site the caller may see, by slug.
pub(crate) async fn list(pool: &PgPool, actor: &Actor) -> Result<Vec<Site>, SiteError> {
    let all = sqlx::query_as::<_, Site>(&format!("select {COLUMNS} from annex.sites order by slug"))
        .fetch_all(pool)
        .await?;
    Ok(all.into_iter().filter(|s| actor.sees_site(s.id)).collect())
}

/// A site by slug, or by id when `site` is a UUID that is no site's slug.
pub(crate) async fn find(executor: impl PgExecutor<'_>, site: &str) -> Result<Site, SiteError> {
    let id = Uuid::parse_str(site).ok();
    sqlx::query_as::<_, Site>(&format!(
        "select {COLUMNS} from annex.sites where slug = $1 or id = $2 order by (slug = $1) desc limit 1"
    ))
    .bind(site)
    .bind(id)
    .fetch_optional(executor)
    .await?
    .ok_or_else(|| SiteError::UnknownSite(site.to_owned()))
}

/// The site the caller names, if they may see it and do `action` there: 404 `unknown_site`
/// when it does not exist or they may not see it (the same answer), 403 when they see it but
/// may not do this.
pub(crate) async fn resolve(
    pool: &PgPool,
    actor: &Actor,
    site: &str,
    action: Action,
) -> Result<Site, SiteError> {
    let found = find(pool, site).await?;
    if !actor.sees_site(found.id) {
        return Err(SiteError::UnknownSite(site.to_owned()));
    }
    actor.authorize(action, Some(found.id))?;
    Ok(found)
}

/// Locks the site's row for the rest of `tx` (every change at a site takes it first, so
/// activations at one site run one at a time) and reads it again.
pub(crate) async fn lock(tx: &mut Transaction<'_, Postgres>, id: Uuid) -> Result<Site, SiteError> {
    sqlx::query_as::<_, Site>(&format!("select {COLUMNS} from annex.sites where id = $1 for update"))
        .bind(id)
        .fetch_optional(&mut **tx)
        .await?
        .ok_or_else(|| SiteError::UnknownSite(id.to_string()))
}

/// Suspends (`true`) or resumes a site; audited when it changes anything.
pub(crate) async fn set_suspended(
    pool: &PgPool,
    actor: &Actor,
    site: &Site,
    suspended: bool,
) -> Result<Site, SiteError> {
    let status = if suspended { "suspended" } else { "active" };
    let mut tx = pool.begin().await?;
    let current = lock(&mut tx, site.id).await?;
    if current.status == status {
        tx.rollback().await?;
        return Ok(current);
    }
    sqlx::query("update annex.sites set status = $2, updated_at = now() where id = $1")
        .bind(site.id)
        .bind(status)
        .execute(&mut *tx)
        .await?;
    let action = if suspended { "site.suspended" } else { "site.resumed" };
    audit::record(&mut *tx, &AuditEntry::new(actor.audit_name(), action, format!("sites/{}", site.slug)))
        .await?;
    notify(&mut tx, site.id).await?;
    let updated = find(&mut *tx, &site.id.to_string()).await?;
    tx.commit().await?;
    Ok(updated)
}

/// `NOTIFY annex_sites '<site id>'`, delivered when the transaction commits.
pub(crate) async fn notify(tx: &mut Transaction<'_, Postgres>, site: Uuid) -> Result<(), sqlx::Error> {
    sqlx::query("select pg_notify($1, $2)").bind(CHANNEL).bind(site.to_string()).execute(&mut **tx).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slugs_follow_the_rule() {
        for good in ["a", "0", "plant-7", "a-b-c", &"x".repeat(63)] {
            assert!(valid_slug(good), "{good}");
        }
        for bad in ["", "-a", "A", "a_b", "a b", "é", &"x".repeat(64)] {
            assert!(!valid_slug(bad), "{bad}");
        }
    }
}
