//! What a site runs: its features (active extensions and their capabilities), who provides a
//! capability, and the status of every compiled-in extension there. Three indexed queries per
//! site whatever the number of extensions; validity is recomputed in memory.

use serde::Serialize;
use sqlx::PgPool;

use super::conflicts::{self, RecordedConflict};
use super::error::SiteError;
use super::report::MissingSignoff;
use super::site_extensions::{self, SiteExtension};
use super::store::Site;
use super::validate::{self, Candidate, Checks};
use crate::extension::metadata::Capability;
use crate::plan::catalog::Catalog;

/// One active extension of a site.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Feature {
    /// The extension.
    pub extension: String,
    /// Its version when activated.
    pub version: String,
    /// The active config's hash.
    pub config_hash: String,
    /// The active config's version.
    pub config_version: i32,
    /// When activated (UTC, RFC 3339).
    pub activated_at: Option<String>,
    /// The capabilities it provides.
    pub capabilities: Vec<Capability>,
}

/// A site's features.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Features {
    /// The site's slug.
    pub site: String,
    /// `active` or `suspended`.
    pub status: String,
    /// Its active extensions, by name.
    pub features: Vec<Feature>,
}

/// Who provides a capability at a site.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Providers {
    /// The site's slug.
    pub site: String,
    /// The capability.
    pub capability: String,
    /// The active extensions providing it (one for an exclusive slot).
    pub providers: Vec<Provider>,
}

/// One provider of a capability.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Provider {
    /// The extension.
    pub extension: String,
    /// The capability's version it provides.
    pub version: String,
    /// Whether the capability is an exclusive slot.
    pub exclusive: bool,
}

/// One compiled-in extension at a site.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ExtensionStatus {
    /// The extension.
    pub extension: String,
    /// Its compiled-in version.
    pub version: String,
    /// `active`, `pending`, `inactive` or `not_activated`.
    pub state: String,
    /// The config hash (the running one when active).
    pub config_hash: Option<String>,
    /// Its config version.
    pub config_version: Option<i32>,
    /// The pending proposal's hash.
    pub proposed_hash: Option<String>,
    /// For an active extension: it still passes validation against the rest of the site.
    /// For a pending one: its proposal would. `null` when neither.
    pub valid: Option<bool>,
    /// Its open conflicts.
    pub open_conflicts: Vec<RecordedConflict>,
    /// Sign-offs missing for the active hash (or the proposal's, when pending or proposed).
    pub missing_signoffs: Vec<MissingSignoff>,
}

/// Every compiled-in extension's state at a site.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SiteStatus {
    /// The site's slug.
    pub site: String,
    /// `active` or `suspended`.
    pub status: String,
    /// By extension name.
    pub extensions: Vec<ExtensionStatus>,
}

fn active_rows(rows: &[SiteExtension]) -> impl Iterator<Item = &SiteExtension> {
    rows.iter().filter(|r| r.is_active())
}

/// The active extensions of `site`.
pub(crate) async fn features(pool: &PgPool, catalog: &Catalog, site: &Site) -> Result<Features, SiteError> {
    let rows = site_extensions::of_site(pool, site.id).await?;
    let features = active_rows(&rows)
        .map(|r| Feature {
            extension: r.extension.clone(),
            version: r.version.clone(),
            config_hash: r.config_hash.clone(),
            config_version: r.config_version,
            activated_at: r.activated_at.clone(),
            capabilities: catalog.get(&r.extension).map(|d| d.metadata.provides.clone()).unwrap_or_default(),
        })
        .collect();
    Ok(Features { site: site.slug.clone(), status: site.status.clone(), features })
}

/// Which active extensions at `site` provide `capability`.
pub(crate) async fn providers(
    pool: &PgPool,
    catalog: &Catalog,
    site: &Site,
    capability: &str,
) -> Result<Providers, SiteError> {
    let rows = site_extensions::of_site(pool, site.id).await?;
    let providers: Vec<Provider> = active_rows(&rows)
        .filter_map(|r| {
            let cap = catalog.get(&r.extension)?.metadata.provides.iter().find(|p| p.name == capability)?;
            Some(Provider {
                extension: r.extension.clone(),
                version: cap.version.clone(),
                exclusive: cap.exclusive,
            })
        })
        .collect();
    if providers.is_empty() {
        return Err(SiteError::NoProvider {
            site: site.slug.clone(),
            capability: capability.replace('\0', ""),
        });
    }
    Ok(Providers { site: site.slug.clone(), capability: capability.to_owned(), providers })
}

/// Every compiled-in extension's state at `site`, with validity, open conflicts and missing
/// sign-offs.
pub(crate) async fn status(pool: &PgPool, catalog: &Catalog, site: &Site) -> Result<SiteStatus, SiteError> {
    let rows = site_extensions::of_site(pool, site.id).await?;
    let mut hashes: Vec<String> = Vec::new();
    for r in rows.iter().filter(|r| r.state != "inactive") {
        hashes.push(r.config_hash.clone());
        hashes.extend(r.proposed_hash.clone());
    }
    let signed = site_extensions::signed(pool, site.id, &hashes).await?;
    let open = conflicts::open(pool, site.id).await?;
    let mut extensions = Vec::new();
    for declared in catalog.iter() {
        let name = declared.metadata.name.as_str();
        let row = rows.iter().find(|r| r.extension == name);
        let (valid, missing) = match row {
            Some(r) if r.state != "inactive" => {
                let running = site_extensions::running(&rows, &[name]);
                let hash = r.proposed_hash.clone().unwrap_or_else(|| r.config_hash.clone());
                let config = r.proposed_config.clone().unwrap_or_else(|| r.config.clone());
                let candidate = Candidate { name: name.to_owned(), config, hash };
                let report = validate::check(
                    catalog,
                    &site.slug,
                    &running,
                    &[candidate],
                    &signed,
                    Checks { config: false },
                );
                (Some(report.valid), report.missing_signoffs)
            }
            _ => (None, Vec::new()),
        };
        extensions.push(ExtensionStatus {
            extension: name.to_owned(),
            version: declared.metadata.version.clone(),
            state: row.map_or_else(|| "not_activated".to_owned(), |r| r.state.clone()),
            config_hash: row.map(|r| r.config_hash.clone()),
            config_version: row.map(|r| r.config_version),
            proposed_hash: row.and_then(|r| r.proposed_hash.clone()),
            valid,
            open_conflicts: open.iter().filter(|c| c.extension == name).cloned().collect(),
            missing_signoffs: missing,
        });
    }
    Ok(SiteStatus { site: site.slug.clone(), status: site.status.clone(), extensions })
}
