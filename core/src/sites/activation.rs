//! Validation, activation and deactivation of extensions at a site. Each change is one
//! transaction that first locks the site's row (so activations at one site run one at a time
//! and two of them cannot both fill an exclusive slot), re-validates against what the site runs
//! inside that transaction, writes `annex.site_extensions`, the audit row and
//! `NOTIFY annex_sites '<site id>'` (delivered at commit).

use serde::Serialize;
use serde_json::{Value, json};
use sqlx::{PgPool, Postgres, Transaction};

use super::conflicts;
use super::error::SiteError;
use super::report::{Finding, Report};
use super::site_extensions::{self, SiteExtension, Written};
use super::store::{self, Site, notify};
use super::validate::{self, Candidate, Checks};
use crate::access::Actor;
use crate::config::schema::SchemaViolation;
use crate::db::outbox::{self, NewEvent};
use crate::observe::audit::{self, AuditEntry};
use crate::plan::catalog::Catalog;

/// What an activation did.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Activation {
    /// The site's slug.
    pub site: String,
    /// The extension.
    pub extension: String,
    /// `activated`, `reconfigured` or `unchanged` (already active with this config).
    pub action: String,
    /// The hash of the config now active.
    pub config_hash: String,
    /// The hash active before, if any.
    pub old_hash: Option<String>,
    /// The config version now active.
    pub config_version: i32,
    /// The validation report it passed.
    pub report: Report,
}

/// What a deactivation did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Deactivation {
    /// The site's slug.
    pub site: String,
    /// The extension asked for.
    pub extension: String,
    /// Every extension deactivated, dependents first.
    pub deactivated: Vec<String>,
}

/// The audit target of an extension at a site.
pub(crate) fn target(site: &Site, extension: &str) -> String {
    format!("sites/{}/extensions/{extension}", site.slug)
}

/// Checks a free-text field: at most `max` characters and no NUL.
pub(crate) fn check_text(field: &str, value: &str, max: usize) -> Result<(), SiteError> {
    if value.contains('\0') {
        return Err(SiteError::InvalidInput(format!("`{field}` contains a NUL character; remove it")));
    }
    if value.chars().count() > max {
        return Err(SiteError::InvalidInput(format!(
            "`{field}` is longer than {max} characters; shorten it"
        )));
    }
    Ok(())
}

/// The candidates for `(name, config)` pairs: every name compiled in and given once.
pub(crate) fn candidates(
    catalog: &Catalog,
    pairs: Vec<(String, Value)>,
) -> Result<Vec<Candidate>, SiteError> {
    let mut out: Vec<Candidate> = Vec::with_capacity(pairs.len());
    for (name, config) in pairs {
        if catalog.get(&name).is_none() {
            return Err(SiteError::UnknownExtension(name));
        }
        if out.iter().any(|c| c.name == name) {
            return Err(SiteError::InvalidInput(format!(
                "extension `{name}` is listed twice; list each extension of a combination once"
            )));
        }
        out.push(Candidate::new(name, config));
    }
    if out.is_empty() {
        return Err(SiteError::InvalidInput(
            "`extensions` is empty; list at least one {name, config}".into(),
        ));
    }
    Ok(out)
}

/// Validates `candidates` against what the site runs, inside `tx`.
async fn evaluate(
    tx: &mut Transaction<'_, Postgres>,
    catalog: &Catalog,
    site: &Site,
    candidates: &[Candidate],
) -> Result<(Report, Vec<SiteExtension>), SiteError> {
    let rows = site_extensions::of_site(&mut **tx, site.id).await?;
    let names: Vec<&str> = candidates.iter().map(|c| c.name.as_str()).collect();
    let running = site_extensions::running(&rows, &names);
    let hashes: Vec<String> = candidates.iter().map(|c| c.hash.clone()).collect();
    let signed = site_extensions::signed(&mut **tx, site.id, &hashes).await?;
    let mut report =
        validate::check(catalog, &site.slug, &running, candidates, &signed, Checks { config: true });
    for c in candidates {
        if rows.iter().any(|r| r.extension == c.name && r.is_active() && r.config_hash == c.hash) {
            report.warnings.push(Finding {
                code: "already_active".into(),
                message: format!(
                    "extension `{}` is already active at site `{}` with this config; activating it changes nothing",
                    c.name, site.slug
                ),
                extension: c.name.clone(),
                pointer: None,
            });
        }
    }
    if site.is_suspended() {
        report.warnings.push(Finding {
            code: "site_suspended".into(),
            message: format!("site `{}` is suspended: resume it before activating anything", site.slug),
            extension: candidates.first().map(|c| c.name.clone()).unwrap_or_default(),
            pointer: None,
        });
    }
    Ok((report, rows))
}

/// `validate` and `validate-combination`: the report, changing nothing but the record of
/// detected conflicts.
pub(crate) async fn validate(
    pool: &PgPool,
    catalog: &Catalog,
    site: &Site,
    candidates: &[Candidate],
) -> Result<Report, SiteError> {
    let mut tx = pool.begin().await?;
    let (report, _) = evaluate(&mut tx, catalog, site, candidates).await?;
    let names: Vec<&str> = candidates.iter().map(|c| c.name.as_str()).collect();
    conflicts::record(&mut tx, site.id, &names, &report.conflicts).await?;
    tx.commit().await?;
    Ok(report)
}

fn refusal(site: &Site, candidates: &[Candidate], report: Report) -> SiteError {
    if let Some(first) = report.errors.first() {
        let extension = first.extension.clone();
        let errors = report
            .errors
            .iter()
            .filter(|e| e.extension == extension)
            .map(|e| SchemaViolation {
                pointer: e.pointer.clone().unwrap_or_default(),
                message: e.message.clone(),
            })
            .collect();
        return SiteError::InvalidConfig { extension, errors, report: Box::new(report) };
    }
    let names: Vec<String> = candidates.iter().map(|c| format!("`{}`", c.name)).collect();
    SiteError::Refused {
        message: format!(
            "activation of {} at site `{}` refused: {}",
            names.join(", "),
            site.slug,
            report.summary()
        ),
        report: Box::new(report),
    }
}

/// Re-validates and activates `candidates` inside `tx` (whose caller holds the site's lock);
/// writes nothing and answers the refusal when the report is not valid.
pub(crate) async fn apply(
    tx: &mut Transaction<'_, Postgres>,
    catalog: &Catalog,
    origin: &str,
    actor: &Actor,
    site: &Site,
    candidates: &[Candidate],
    reason: &str,
) -> Result<Vec<Activation>, SiteError> {
    let (report, rows) = evaluate(tx, catalog, site, candidates).await?;
    if !report.valid {
        return Err(refusal(site, candidates, report));
    }
    let stored = serde_json::to_value(&report).unwrap_or(Value::Null);
    let mut done = Vec::with_capacity(candidates.len());
    for c in candidates {
        let version = catalog.get(&c.name).map(|d| d.metadata.version.clone()).unwrap_or_default();
        let current = rows.iter().find(|r| r.extension == c.name);
        let old_hash = current.filter(|r| r.is_active()).map(|r| r.config_hash.clone());
        if let Some(row) = current.filter(|r| r.is_active() && r.config_hash == c.hash) {
            if row.proposed_hash.is_some() {
                sqlx::query(
                    "update annex.site_extensions set proposed_config = null, proposed_hash = null, updated_at = now()
                      where site_id = $1 and extension = $2",
                )
                .bind(site.id)
                .bind(&c.name)
                .execute(&mut **tx)
                .await?;
            }
            done.push(Activation {
                site: site.slug.clone(),
                extension: c.name.clone(),
                action: "unchanged".into(),
                config_hash: c.hash.clone(),
                old_hash,
                config_version: row.config_version,
                report: report.clone(),
            });
            continue;
        }
        let config_version =
            site_extensions::write_active(tx, site.id, Written::of(c, &version, &stored)).await?;
        let action = if old_hash.is_some() { "reconfigured" } else { "activated" };
        let details = json!({
            "old_hash": old_hash, "new_hash": c.hash, "reason": reason, "actor": actor.audit_name(),
            "version": version, "config_version": config_version,
        });
        let entry =
            AuditEntry::new(actor.audit_name(), format!("site.extension_{action}"), target(site, &c.name))
                .details(details);
        audit::record(&mut **tx, &entry).await?;
        let data = json!({
            "site": site.slug, "extension": c.name, "config_hash": c.hash, "old_hash": old_hash,
            "config_version": config_version, "actor": actor.audit_name(),
        });
        let name = format!("site.extension_{action}");
        outbox::record(tx, NewEvent { name: &name, data: &data, origin }).await?;
        done.push(Activation {
            site: site.slug.clone(),
            extension: c.name.clone(),
            action: action.into(),
            config_hash: c.hash.clone(),
            old_hash,
            config_version,
            report: report.clone(),
        });
    }
    let names: Vec<&str> = candidates.iter().map(|c| c.name.as_str()).collect();
    conflicts::record(tx, site.id, &names, &[]).await?;
    notify(tx, site.id).await?;
    Ok(done)
}

/// Activates (or re-activates with a new config) extension `candidate` at `site`. Refused
/// with the report for conflicts, unmet dependencies or missing sign-offs (409; a config that
/// lacks sign-offs is stored as the proposal, so operators can sign its hash, while the old
/// config keeps running), or an invalid config (422, nothing written).
pub(crate) async fn activate(
    pool: &PgPool,
    catalog: &Catalog,
    origin: &str,
    actor: &Actor,
    site: &Site,
    candidate: Candidate,
    reason: &str,
) -> Result<Activation, SiteError> {
    check_text("reason", reason, 1000)?;
    let mut tx = pool.begin().await?;
    let site = store::lock(&mut tx, site.id).await?;
    site.ensure_active()?;
    let candidates = [candidate];
    match apply(&mut tx, catalog, origin, actor, &site, &candidates, reason).await {
        Ok(mut done) => {
            tx.commit().await?;
            done.pop().ok_or_else(|| SiteError::InvalidInput("nothing to activate".into()))
        }
        Err(SiteError::Refused { message, report }) => {
            let [c] = &candidates;
            conflicts::record(&mut tx, site.id, &[c.name.as_str()], &report.conflicts).await?;
            let mut message = message;
            if !report.missing_signoffs.is_empty() {
                let version = catalog.get(&c.name).map(|d| d.metadata.version.clone()).unwrap_or_default();
                let stored = serde_json::to_value(&*report).unwrap_or(Value::Null);
                site_extensions::write_proposal(&mut tx, site.id, Written::of(c, &version, &stored)).await?;
                let entry =
                    AuditEntry::new(actor.audit_name(), "site.extension_proposed", target(&site, &c.name))
                        .details(
                            json!({ "proposed_hash": c.hash, "reason": reason, "actor": actor.audit_name() }),
                        );
                audit::record(&mut *tx, &entry).await?;
                message.push_str(&format!(
                    "; the config is stored as the proposal (hash `{}`): sign it, then activate again",
                    c.hash
                ));
            }
            tx.commit().await?;
            Err(SiteError::Refused { message, report })
        }
        Err(e) => Err(e),
    }
}

/// The active extensions that need `target` (directly or not): `(dependents first, the rest)`.
fn dependents(catalog: &Catalog, active: &[&SiteExtension], target: &str) -> Vec<String> {
    let mut removed: Vec<&str> = vec![target];
    loop {
        let mut grew = false;
        for x in active {
            let name = x.extension.as_str();
            if removed.contains(&name) {
                continue;
            }
            let Some(m) = catalog.get(name).map(|d| &d.metadata) else { continue };
            let needs_dependency = m.dependencies.iter().any(|d| removed.contains(&d.name.as_str()));
            let needs_capability = m.requires_capabilities.iter().any(|r| {
                let provides = |n: &str| {
                    catalog.get(n).is_some_and(|d| d.metadata.provides.iter().any(|p| p.name == r.name))
                };
                let lost = removed.iter().any(|n| provides(n));
                let kept = active
                    .iter()
                    .map(|a| a.extension.as_str())
                    .any(|n| n != name && !removed.contains(&n) && provides(n));
                lost && !kept
            });
            if needs_dependency || needs_capability {
                removed.push(name);
                grew = true;
            }
        }
        if !grew {
            break;
        }
    }
    removed.iter().skip(1).rev().map(|s| (*s).to_owned()).collect()
}

/// Deactivates `extension` at `site`; with `cascade`, the active extensions that need it too
/// (dependents first), all in one transaction. Without it, 409 naming them.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn deactivate(
    pool: &PgPool,
    catalog: &Catalog,
    origin: &str,
    actor: &Actor,
    site: &Site,
    extension: &str,
    cascade: bool,
    reason: &str,
) -> Result<Deactivation, SiteError> {
    if catalog.get(extension).is_none() {
        return Err(SiteError::UnknownExtension(extension.to_owned()));
    }
    check_text("reason", reason, 1000)?;
    let mut tx = pool.begin().await?;
    let site = store::lock(&mut tx, site.id).await?;
    site.ensure_active()?;
    let rows = site_extensions::of_site(&mut *tx, site.id).await?;
    let active: Vec<&SiteExtension> = rows.iter().filter(|r| r.is_active()).collect();
    if !active.iter().any(|r| r.extension == extension) {
        return Err(SiteError::NotActive { site: site.slug.clone(), extension: extension.to_owned() });
    }
    let dependents = dependents(catalog, &active, extension);
    if !dependents.is_empty() && !cascade {
        return Err(SiteError::HasDependents {
            site: site.slug.clone(),
            extension: extension.to_owned(),
            dependents,
        });
    }
    let mut order = dependents;
    order.push(extension.to_owned());
    for name in &order {
        let cascade_of = (name != extension).then_some(extension);
        deactivate_one(&mut tx, origin, actor, &site, &rows, name, reason, cascade_of).await?;
    }
    notify(&mut tx, site.id).await?;
    tx.commit().await?;
    Ok(Deactivation { site: site.slug.clone(), extension: extension.to_owned(), deactivated: order })
}

/// Marks one extension inactive at `site` (in `tx`, under the site's lock), audited; resolves
/// its open conflicts.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn deactivate_one(
    tx: &mut Transaction<'_, Postgres>,
    origin: &str,
    actor: &Actor,
    site: &Site,
    rows: &[SiteExtension],
    name: &str,
    reason: &str,
    cascade_of: Option<&str>,
) -> Result<(), SiteError> {
    let old_hash = rows.iter().find(|r| r.extension == name).map(|r| r.config_hash.clone());
    site_extensions::write_inactive(tx, site.id, name).await?;
    conflicts::resolve_deactivated(tx, site.id, name).await?;
    let details = json!({
        "old_hash": old_hash, "reason": reason, "actor": actor.audit_name(), "cascade_of": cascade_of,
    });
    let entry = AuditEntry::new(actor.audit_name(), "site.extension_deactivated", target(site, name))
        .details(details);
    audit::record(&mut **tx, &entry).await?;
    let data = json!({
        "site": site.slug, "extension": name, "old_hash": old_hash, "cascade_of": cascade_of,
        "actor": actor.audit_name(),
    });
    outbox::record(tx, NewEvent { name: "site.extension_deactivated", data: &data, origin }).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::extension::metadata::Metadata;
    use crate::sites::test_catalog::catalog;

    fn row(name: &str) -> SiteExtension {
        SiteExtension {
            extension: name.into(),
            version: "1.0.0".into(),
            state: "active".into(),
            config: json!({}),
            config_hash: String::new(),
            config_version: 1,
            proposed_config: None,
            proposed_hash: None,
            activated_at: None,
            updated_at: String::new(),
        }
    }

    #[test]
    fn dependents_are_found_through_dependencies_and_capabilities_no_one_else_provides() {
        let catalog = catalog(vec![
            Metadata::new("base", "1.0.0").provides("printing", "1.0.0"),
            Metadata::new("spare", "1.0.0").provides("printing", "1.0.0"),
            Metadata::new("consumer", "1.0.0").requires_capability("printing", "^1"),
            Metadata::new("child", "1.0.0").depends_on("base", "^1"),
            Metadata::new("grandchild", "1.0.0").depends_on("child", "^1"),
        ]);
        let rows: Vec<SiteExtension> = ["base", "consumer", "child", "grandchild"].map(row).into();
        let active: Vec<&SiteExtension> = rows.iter().collect();
        assert_eq!(dependents(&catalog, &active, "base"), ["grandchild", "child", "consumer"]);
        let with_spare: Vec<SiteExtension> = ["base", "spare", "consumer"].map(row).into();
        let active: Vec<&SiteExtension> = with_spare.iter().collect();
        assert!(dependents(&catalog, &active, "base").is_empty(), "`spare` still provides printing");
    }
}
