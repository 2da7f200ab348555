//! The compliance report of a site: every active extension, its config hash, the sign-offs
//! given for that hash (printed name, role, meaning, time) and the required ones missing. As
//! JSON, or as CSV (one line per required or given sign-off).

use serde::Serialize;
use sqlx::PgPool;

use super::error::SiteError;
use super::signoffs::{self, Signoff};
use super::site_extensions;
use super::store::Site;
use crate::plan::catalog::Catalog;

/// The compliance report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ComplianceReport {
    /// The site's slug.
    pub site: String,
    /// The site's name.
    pub name: String,
    /// Every active extension, by name.
    pub extensions: Vec<ExtensionCompliance>,
}

/// One active extension's compliance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ExtensionCompliance {
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
    /// The sign-offs given for the active hash.
    pub signoffs: Vec<Signoff>,
    /// The required (aspect, role) pairs no one signed for the active hash.
    pub missing: Vec<super::signoffs::RequiredSignoff>,
}

/// Builds the report.
pub(crate) async fn report(
    pool: &PgPool,
    catalog: &Catalog,
    site: &Site,
) -> Result<ComplianceReport, SiteError> {
    let rows = site_extensions::of_site(pool, site.id).await?;
    let active: Vec<_> = rows.into_iter().filter(|r| r.is_active()).collect();
    let hashes: Vec<String> = active.iter().map(|r| r.config_hash.clone()).collect();
    let all = signoffs::for_hashes(pool, site, &hashes).await?;
    let extensions = active
        .into_iter()
        .map(|r| {
            let signed: Vec<Signoff> = all
                .iter()
                .filter(|s| s.extension == r.extension && s.config_hash == r.config_hash)
                .cloned()
                .collect();
            let missing = catalog
                .get(&r.extension)
                .map(|d| {
                    d.metadata
                        .signoffs
                        .iter()
                        .flat_map(|s| s.roles.iter().map(move |role| (s.aspect.clone(), role.clone())))
                        .filter(|(aspect, role)| {
                            !signed.iter().any(|s| s.aspect == *aspect && s.role == *role)
                        })
                        .map(|(aspect, role)| super::signoffs::RequiredSignoff { aspect, role })
                        .collect()
                })
                .unwrap_or_default();
            ExtensionCompliance {
                extension: r.extension,
                version: r.version,
                config_hash: r.config_hash,
                config_version: r.config_version,
                activated_at: r.activated_at,
                signoffs: signed,
                missing,
            }
        })
        .collect();
    Ok(ComplianceReport { site: site.slug.clone(), name: site.name.clone(), extensions })
}

/// One CSV field: quoted when needed; a leading `=`, `+`, `-`, `@` is prefixed with `'` so a
/// spreadsheet does not run it as a formula.
fn field(value: &str) -> String {
    let value = if value.starts_with(['=', '+', '-', '@']) { format!("'{value}") } else { value.to_owned() };
    if value.contains([',', '"', '\n', '\r']) { format!("\"{}\"", value.replace('"', "\"\"")) } else { value }
}

impl ComplianceReport {
    /// As CSV: a header, then one line per sign-off given (`signed`) or missing (`missing`)
    /// per active extension; an extension that needs none has one line with status `none_required`.
    pub fn to_csv(&self) -> String {
        let mut out = String::from(
            "site,extension,version,config_hash,config_version,status,aspect,role,printed_name,username,meaning,signed_at,notes\r\n",
        );
        for e in &self.extensions {
            let version = e.config_version.to_string();
            let mut line = |status: &str, rest: [&str; 7]| {
                let head = [self.site.as_str(), &e.extension, &e.version, &e.config_hash, &version, status];
                let cells: Vec<String> = head.iter().chain(rest.iter()).map(|c| field(c)).collect();
                out.push_str(&cells.join(","));
                out.push_str("\r\n");
            };
            for s in &e.signoffs {
                line(
                    "signed",
                    [&s.aspect, &s.role, &s.printed_name, &s.username, &s.meaning, &s.signed_at, &s.notes],
                );
            }
            for m in &e.missing {
                line("missing", [&m.aspect, &m.role, "", "", "", "", ""]);
            }
            if e.signoffs.is_empty() && e.missing.is_empty() {
                line("none_required", [""; 7]);
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_fields_are_quoted_and_formulas_defused() {
        assert_eq!(field("plain"), "plain");
        assert_eq!(field("a,b"), "\"a,b\"");
        assert_eq!(field("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(field("=SUM(A1)"), "'=SUM(A1)");
    }
}
