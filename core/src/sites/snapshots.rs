//! Snapshots of a site's whole configuration and sign-offs (`annex.site_snapshots`), and
//! restoring one: every extension of the snapshot is re-activated through the same activation
//! path (so a restore cannot bypass validation or sign-offs), those not in it are deactivated,
//! all in one transaction: all or nothing.

use serde::Serialize;
use serde_json::{Value, json};
use sqlx::PgPool;
use uuid::Uuid;

use super::activation::{self, Activation, check_text};
use super::error::SiteError;
use super::signoffs;
use super::site_extensions;
use super::store::{self, Site};
use super::validate::Candidate;
use crate::access::Actor;
use crate::observe::audit::{self, AuditEntry};
use crate::plan::catalog::Catalog;

/// A snapshot as listed.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SnapshotSummary {
    /// Its id.
    pub id: Uuid,
    /// A label given when taken.
    pub label: String,
    /// Who took it.
    pub taken_by: String,
    /// When (UTC, RFC 3339).
    pub taken_at: String,
    /// How many active extensions it holds.
    pub extensions: i64,
}

/// A snapshot with its content.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Snapshot {
    /// Its id.
    pub id: Uuid,
    /// The site's slug.
    pub site: String,
    /// A label given when taken.
    pub label: String,
    /// Who took it.
    pub taken_by: String,
    /// When (UTC, RFC 3339).
    pub taken_at: String,
    /// `{"extensions": [{name, version, config, config_hash, config_version, signoffs}]}`.
    pub content: Value,
}

/// What a restore did.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Restore {
    /// The site's slug.
    pub site: String,
    /// The snapshot restored.
    pub snapshot: Uuid,
    /// Each extension of the snapshot: activated, reconfigured or unchanged.
    pub activated: Vec<Activation>,
    /// Extensions deactivated because the snapshot does not hold them.
    pub deactivated: Vec<String>,
}

const TAKEN_AT: &str = r#"to_char(taken_at at time zone 'utc', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')"#;

/// Takes a snapshot of `site`.
pub(crate) async fn take(
    pool: &PgPool,
    actor: &Actor,
    site: &Site,
    label: &str,
) -> Result<Snapshot, SiteError> {
    check_text("label", label, 200)?;
    let mut tx = pool.begin().await?;
    let site = store::lock(&mut tx, site.id).await?;
    let rows = site_extensions::of_site(&mut *tx, site.id).await?;
    let active: Vec<_> = rows.into_iter().filter(|r| r.is_active()).collect();
    let hashes: Vec<String> = active.iter().map(|r| r.config_hash.clone()).collect();
    let signed = signoffs::for_hashes(&mut *tx, &site, &hashes).await?;
    let extensions: Vec<Value> = active
        .iter()
        .map(|r| {
            let theirs: Vec<&signoffs::Signoff> =
                signed.iter().filter(|s| s.extension == r.extension && s.config_hash == r.config_hash).collect();
            json!({ "name": r.extension, "version": r.version, "config": r.config, "config_hash": r.config_hash,
                    "config_version": r.config_version, "signoffs": theirs })
        })
        .collect();
    let content = json!({ "site": site.slug, "extensions": extensions });
    let (id, taken_at): (Uuid, String) = sqlx::query_as(&format!(
        "insert into annex.site_snapshots (site_id, label, taken_by, content) values ($1, $2, $3, $4)
         returning id, {TAKEN_AT}"
    ))
    .bind(site.id)
    .bind(label)
    .bind(actor.audit_name())
    .bind(&content)
    .fetch_one(&mut *tx)
    .await?;
    let entry = AuditEntry::new(actor.audit_name(), "site.snapshot_taken", format!("sites/{}", site.slug))
        .details(json!({ "snapshot": id, "label": label, "extensions": active.len() }));
    audit::record(&mut *tx, &entry).await?;
    tx.commit().await?;
    Ok(Snapshot {
        id,
        site: site.slug.clone(),
        label: label.to_owned(),
        taken_by: actor.audit_name(),
        taken_at,
        content,
    })
}

/// The snapshots of `site`, newest first.
pub(crate) async fn list(pool: &PgPool, site: &Site) -> Result<Vec<SnapshotSummary>, SiteError> {
    let rows: Vec<(Uuid, String, String, String, i64)> = sqlx::query_as(&format!(
        "select id, label, taken_by, {TAKEN_AT},
                coalesce(jsonb_array_length(case when jsonb_typeof(content -> 'extensions') = 'array'
                                                 then content -> 'extensions' end), 0)::bigint
           from annex.site_snapshots where site_id = $1 order by taken_at desc, id"
    ))
    .bind(site.id)
    .fetch_all(pool)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(id, label, taken_by, taken_at, extensions)| SnapshotSummary {
            id,
            label,
            taken_by,
            taken_at,
            extensions,
        })
        .collect())
}

/// One snapshot of `site`.
pub(crate) async fn get(
    executor: impl sqlx::PgExecutor<'_>,
    site: &Site,
    id: &str,
) -> Result<Snapshot, SiteError> {
    let unknown = || SiteError::UnknownSnapshot(id.replace('\0', ""));
    let uuid = Uuid::parse_str(id).map_err(|_| unknown())?;
    let row: Option<(Uuid, String, String, String, Value)> = sqlx::query_as(&format!(
        "select id, label, taken_by, {TAKEN_AT}, content from annex.site_snapshots where site_id = $1 and id = $2"
    ))
    .bind(site.id)
    .bind(uuid)
    .fetch_optional(executor)
    .await?;
    let (id, label, taken_by, taken_at, content) = row.ok_or_else(unknown)?;
    Ok(Snapshot { id, site: site.slug.clone(), label, taken_by, taken_at, content })
}

/// The `(name, config)` pairs a snapshot holds.
fn pairs(snapshot: &Snapshot) -> Result<Vec<(String, Value)>, SiteError> {
    let bad = || {
        SiteError::InvalidInput(format!(
            "snapshot `{}` is malformed: it has no `extensions` list",
            snapshot.id
        ))
    };
    let list = snapshot.content.get("extensions").and_then(Value::as_array).ok_or_else(bad)?;
    list.iter()
        .map(|e| {
            let name = e.get("name").and_then(Value::as_str).ok_or_else(bad)?;
            let config = e.get("config").cloned().ok_or_else(bad)?;
            Ok((name.to_owned(), config))
        })
        .collect()
}

/// Restores snapshot `id` at `site`: all or nothing.
pub(crate) async fn restore(
    pool: &PgPool,
    catalog: &Catalog,
    origin: &str,
    actor: &Actor,
    site: &Site,
    id: &str,
    reason: &str,
) -> Result<Restore, SiteError> {
    check_text("reason", reason, 1000)?;
    let mut tx = pool.begin().await?;
    let site = store::lock(&mut tx, site.id).await?;
    site.ensure_active()?;
    let snapshot = get(&mut *tx, &site, id).await?;
    let pairs = pairs(&snapshot)?;
    let reason =
        if reason.is_empty() { format!("restore of snapshot {}", snapshot.id) } else { reason.to_owned() };
    let rows = site_extensions::of_site(&mut *tx, site.id).await?;
    let keep: Vec<&str> = pairs.iter().map(|(n, _)| n.as_str()).collect();
    let mut deactivated = Vec::new();
    for r in rows.iter().filter(|r| r.is_active() && !keep.contains(&r.extension.as_str())) {
        activation::deactivate_one(&mut tx, origin, actor, &site, &rows, &r.extension, &reason, None).await?;
        deactivated.push(r.extension.clone());
    }
    let activated = if pairs.is_empty() {
        Vec::new()
    } else {
        let candidates: Vec<Candidate> = activation::candidates(catalog, pairs)?;
        activation::apply(&mut tx, catalog, origin, actor, &site, &candidates, &reason).await?
    };
    store::notify(&mut tx, site.id).await?;
    let entry = AuditEntry::new(actor.audit_name(), "site.snapshot_restored", format!("sites/{}", site.slug))
        .details(json!({ "snapshot": snapshot.id, "reason": reason, "deactivated": deactivated,
                         "activated": activated.iter().map(|a| &a.extension).collect::<Vec<_>>() }));
    audit::record(&mut *tx, &entry).await?;
    tx.commit().await?;
    Ok(Restore { site: site.slug.clone(), snapshot: snapshot.id, activated, deactivated })
}
