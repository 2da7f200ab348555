//! The `annex.site_extensions` table: one row per (site, extension) ever proposed or activated,
//! with its config, hash, state and pending proposal, and the sign-offs given for those hashes.

use serde::Serialize;
use serde_json::Value;
use sqlx::{PgExecutor, Postgres, Transaction};
use uuid::Uuid;

use super::validate::{Candidate, Running, Signed};

/// One extension at one site.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SiteExtension {
    /// The extension.
    pub extension: String,
    /// Its version when activated.
    pub version: String,
    /// `active`, `pending` (proposed, never activated) or `inactive`.
    pub state: String,
    /// The config (the running one when active).
    pub config: Value,
    /// Its hash.
    pub config_hash: String,
    /// 1 for the first activation, +1 per change.
    pub config_version: i32,
    /// A config waiting for sign-offs, and its hash.
    pub proposed_config: Option<Value>,
    /// The proposal's hash.
    pub proposed_hash: Option<String>,
    /// When last activated (UTC, RFC 3339).
    pub activated_at: Option<String>,
    /// When last changed (UTC, RFC 3339).
    pub updated_at: String,
}

impl<'r> sqlx::FromRow<'r, sqlx::postgres::PgRow> for SiteExtension {
    fn from_row(row: &'r sqlx::postgres::PgRow) -> Result<Self, sqlx::Error> {
        use sqlx::Row;
        Ok(Self {
            extension: row.try_get("extension")?,
            version: row.try_get("version")?,
            state: row.try_get("state")?,
            config: row.try_get("config")?,
            config_hash: row.try_get("config_hash")?,
            config_version: row.try_get("config_version")?,
            proposed_config: row.try_get("proposed_config")?,
            proposed_hash: row.try_get("proposed_hash")?,
            activated_at: row.try_get("activated_at")?,
            updated_at: row.try_get("updated_at")?,
        })
    }
}

impl SiteExtension {
    /// Whether it runs at the site.
    pub fn is_active(&self) -> bool {
        self.state == "active"
    }

    /// The hashes a sign-off may name now: the active config's and the proposal's.
    pub(crate) fn current_hashes(&self) -> (Option<&str>, Option<&str>) {
        let active = (self.is_active()).then_some(self.config_hash.as_str());
        let proposed = self.proposed_hash.as_deref();
        (active, proposed)
    }
}

const COLUMNS: &str = "extension, version, state, config, config_hash, config_version, proposed_config, proposed_hash, \
     to_char(activated_at at time zone 'utc', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"') as activated_at, \
     to_char(updated_at at time zone 'utc', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"') as updated_at";

/// Every row of the site, by extension name.
pub(crate) async fn of_site(
    executor: impl PgExecutor<'_>,
    site: Uuid,
) -> Result<Vec<SiteExtension>, sqlx::Error> {
    sqlx::query_as::<_, SiteExtension>(&format!(
        "select {COLUMNS} from annex.site_extensions where site_id = $1 order by extension"
    ))
    .bind(site)
    .fetch_all(executor)
    .await
}

/// The active rows, except those named in `except`, as validation sees them.
pub(crate) fn running(rows: &[SiteExtension], except: &[&str]) -> Vec<Running> {
    rows.iter()
        .filter(|r| r.is_active() && !except.contains(&r.extension.as_str()))
        .map(|r| Running { name: r.extension.clone(), version: r.version.clone() })
        .collect()
}

/// The sign-offs given at the site for any of `hashes`.
pub(crate) async fn signed(
    executor: impl PgExecutor<'_>,
    site: Uuid,
    hashes: &[String],
) -> Result<Signed, sqlx::Error> {
    let rows: Vec<(String, String, String, String)> = sqlx::query_as(
        "select extension, config_hash, aspect, role from annex.compliance_signoffs
          where site_id = $1 and config_hash = any($2)",
    )
    .bind(site)
    .bind(hashes)
    .fetch_all(executor)
    .await?;
    Ok(rows.into_iter().collect())
}

/// What an activation or a proposal writes for one extension.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Written<'a> {
    pub(crate) extension: &'a str,
    /// The compiled-in version.
    pub(crate) version: &'a str,
    pub(crate) config: &'a Value,
    pub(crate) hash: &'a str,
    /// The validation report, as stored.
    pub(crate) validation: &'a Value,
}

impl<'a> Written<'a> {
    /// What activating (or proposing) `c` writes.
    pub(crate) fn of(c: &'a Candidate, version: &'a str, validation: &'a Value) -> Self {
        Written { extension: &c.name, version, config: &c.config, hash: &c.hash, validation }
    }
}

/// Writes an activation; returns the new config version.
pub(crate) async fn write_active(
    tx: &mut Transaction<'_, Postgres>,
    site: Uuid,
    w: Written<'_>,
) -> Result<i32, sqlx::Error> {
    sqlx::query_scalar(
        "insert into annex.site_extensions
                (site_id, extension, version, config, config_hash, config_version, state, validation, activated_at)
         values ($1, $2, $3, $4, $5, 1, 'active', $6, now())
         on conflict (site_id, extension) do update set
                version = excluded.version, config = excluded.config, config_hash = excluded.config_hash,
                config_version = case when annex.site_extensions.activated_at is null then 1
                                      else annex.site_extensions.config_version + 1 end,
                state = 'active', proposed_config = null, proposed_hash = null,
                validation = excluded.validation, activated_at = now(), updated_at = now()
         returning config_version",
    )
    .bind(site)
    .bind(w.extension)
    .bind(w.version)
    .bind(w.config)
    .bind(w.hash)
    .bind(w.validation)
    .fetch_one(&mut **tx)
    .await
}

/// Stores a config waiting for sign-offs. At an active row only the proposal changes (the old
/// config keeps running); otherwise the row becomes `pending` with the proposal as its config.
pub(crate) async fn write_proposal(
    tx: &mut Transaction<'_, Postgres>,
    site: Uuid,
    w: Written<'_>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "insert into annex.site_extensions
                (site_id, extension, version, config, config_hash, state, proposed_config, proposed_hash, validation)
         values ($1, $2, $3, $4, $5, 'pending', $4, $5, $6)
         on conflict (site_id, extension) do update set
                version = case when annex.site_extensions.state = 'active' then annex.site_extensions.version
                               else excluded.version end,
                config = case when annex.site_extensions.state = 'active' then annex.site_extensions.config
                              else excluded.config end,
                config_hash = case when annex.site_extensions.state = 'active' then annex.site_extensions.config_hash
                                   else excluded.config_hash end,
                state = case when annex.site_extensions.state = 'active' then 'active' else 'pending' end,
                proposed_config = excluded.proposed_config, proposed_hash = excluded.proposed_hash,
                validation = excluded.validation, updated_at = now()",
    )
    .bind(site)
    .bind(w.extension)
    .bind(w.version)
    .bind(w.config)
    .bind(w.hash)
    .bind(w.validation)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Marks a row inactive and drops its proposal.
pub(crate) async fn write_inactive(
    tx: &mut Transaction<'_, Postgres>,
    site: Uuid,
    extension: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "update annex.site_extensions set state = 'inactive', proposed_config = null, proposed_hash = null,
                updated_at = now()
          where site_id = $1 and extension = $2",
    )
    .bind(site)
    .bind(extension)
    .execute(&mut **tx)
    .await?;
    Ok(())
}
