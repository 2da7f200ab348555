//! Compliance sign-offs (`annex.compliance_signoffs`, append-only by trigger): an operator who
//! holds the role signs an aspect an extension requires, re-entering their password, for the
//! hash of the active config or of the pending proposal. Two-person rule: one operator signs at
//! most one role of an aspect for a hash, unless the site's policy allows more.

use serde::{Deserialize, Serialize};
use serde_json::json;
use sqlx::PgPool;

use super::activation::{check_text, target};
use super::error::SiteError;
use super::site_extensions;
use super::store::{self, Site, notify};
use crate::access::{Operator, operators};
use crate::db::outbox::{self, NewEvent};
use crate::observe::audit::{self, AuditEntry};
use crate::plan::catalog::Catalog;

/// The meanings a signature may carry (21 CFR Part 11 §11.50(a)(3)).
pub const MEANINGS: [&str; 4] = ["review", "approval", "responsibility", "authorship"];

/// What a signer sends.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignoffRequest {
    /// The aspect signed, one the extension requires.
    pub aspect: String,
    /// The role signed in; the signer must hold it.
    pub role: String,
    /// `review`, `approval`, `responsibility` or `authorship`.
    pub meaning: String,
    /// The hash of the config approved: the active one's or the pending proposal's.
    pub config_hash: String,
    /// The signer's password, again.
    pub password: String,
    /// Free text (at most 2000 characters).
    #[serde(default)]
    pub notes: String,
}

/// A sign-off as recorded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Signoff {
    /// Its id.
    pub id: i64,
    /// The extension.
    pub extension: String,
    /// The aspect.
    pub aspect: String,
    /// The role signed in.
    pub role: String,
    /// What the signature means.
    pub meaning: String,
    /// The hash approved.
    pub config_hash: String,
    /// The signer's username.
    pub username: String,
    /// The signer's printed name.
    pub printed_name: String,
    /// Free text.
    pub notes: String,
    /// When signed (UTC, RFC 3339).
    pub signed_at: String,
    /// Whether it counts now: its hash is the active config's or the proposal's.
    pub valid: bool,
    /// `active`, `proposed`, or `null` when it names neither current hash.
    pub applies_to: Option<String>,
}

/// The sign-offs of an extension at a site, and what it requires.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SignoffList {
    /// The site's slug.
    pub site: String,
    /// The extension.
    pub extension: String,
    /// The active config's hash, if active.
    pub active_hash: Option<String>,
    /// The pending proposal's hash, if any.
    pub proposed_hash: Option<String>,
    /// What it requires: `{aspect, role}` pairs.
    pub required: Vec<RequiredSignoff>,
    /// Every sign-off ever given for it at the site, newest first.
    pub signoffs: Vec<Signoff>,
}

/// One required (aspect, role).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RequiredSignoff {
    /// The aspect.
    pub aspect: String,
    /// The role.
    pub role: String,
}

type Row = (i64, String, String, String, String, String, String, String, String, String);

const COLUMNS: &str = r#"id, extension, aspect, role, meaning, config_hash, username, printed_name, notes,
       to_char(signed_at at time zone 'utc', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')"#;

fn from_row(r: Row, active: Option<&str>, proposed: Option<&str>) -> Signoff {
    let applies_to = if Some(r.5.as_str()) == active {
        Some("active".to_owned())
    } else if Some(r.5.as_str()) == proposed {
        Some("proposed".to_owned())
    } else {
        None
    };
    Signoff {
        id: r.0,
        extension: r.1,
        aspect: r.2,
        role: r.3,
        meaning: r.4,
        config_hash: r.5,
        username: r.6,
        printed_name: r.7,
        notes: r.8,
        signed_at: r.9,
        valid: applies_to.is_some(),
        applies_to,
    }
}

/// Records a sign-off by `operator`.
pub(crate) async fn sign(
    pool: &PgPool,
    catalog: &Catalog,
    origin: &str,
    operator: &Operator,
    site: &Site,
    extension: &str,
    request: &SignoffRequest,
) -> Result<Signoff, SiteError> {
    let declared = catalog.get(extension).ok_or_else(|| SiteError::UnknownExtension(extension.to_owned()))?;
    site.ensure_active()?;
    if !MEANINGS.contains(&request.meaning.as_str()) {
        return Err(SiteError::InvalidInput(format!(
            "meaning `{}` is not one of review, approval, responsibility, authorship",
            request.meaning.replace('\0', "")
        )));
    }
    check_text("notes", &request.notes, 2000)?;
    let required = declared
        .metadata
        .signoffs
        .iter()
        .any(|s| s.aspect == request.aspect && s.roles.contains(&request.role));
    if !required {
        let pairs: Vec<String> = declared
            .metadata
            .signoffs
            .iter()
            .flat_map(|s| s.roles.iter().map(move |r| format!("`{}`/`{r}`", s.aspect)))
            .collect();
        return Err(SiteError::SignoffNotRequired {
            extension: extension.to_owned(),
            aspect: request.aspect.replace('\0', ""),
            role: request.role.replace('\0', ""),
            required: if pairs.is_empty() { "nothing".into() } else { pairs.join(", ") },
        });
    }
    if !operator.has_role(&request.role) {
        return Err(SiteError::RoleNotHeld {
            username: operator.username.clone(),
            role: request.role.clone(),
        });
    }
    if request.password.contains('\0') {
        return Err(SiteError::Access(crate::access::AccessError::WrongPassword(operator.username.clone())));
    }
    operators::reauthenticate(pool, operator.id, &request.password).await?;

    let mut tx = pool.begin().await?;
    let site = store::lock(&mut tx, site.id).await?;
    site.ensure_active()?;
    let rows = site_extensions::of_site(&mut *tx, site.id).await?;
    let row = rows.iter().find(|r| r.extension == extension);
    let (active, proposed) = row.map(|r| r.current_hashes()).unwrap_or((None, None));
    if Some(request.config_hash.as_str()) != active && Some(request.config_hash.as_str()) != proposed {
        return Err(SiteError::StaleConfigHash {
            extension: extension.to_owned(),
            given: request.config_hash.replace('\0', ""),
            active: active.map(str::to_owned),
            proposed: proposed.map(str::to_owned),
        });
    }
    let already: Vec<(String,)> = sqlx::query_as(
        "select role from annex.compliance_signoffs
          where site_id = $1 and extension = $2 and config_hash = $3 and aspect = $4 and operator_id = $5",
    )
    .bind(site.id)
    .bind(extension)
    .bind(&request.config_hash)
    .bind(&request.aspect)
    .bind(operator.id)
    .fetch_all(&mut *tx)
    .await?;
    if already.iter().any(|(r,)| *r == request.role) {
        return Err(SiteError::AlreadySigned {
            username: operator.username.clone(),
            aspect: request.aspect.clone(),
            role: request.role.clone(),
        });
    }
    if let Some((other,)) = already.first()
        && !site.allows_one_signer_for_several_roles()
    {
        return Err(SiteError::TwoPersonRule {
            username: operator.username.clone(),
            aspect: request.aspect.clone(),
            signed_role: other.clone(),
            role: request.role.clone(),
        });
    }
    let row: Row = sqlx::query_as(&format!(
        "insert into annex.compliance_signoffs
                (site_id, extension, aspect, role, meaning, config_hash, operator_id, username, printed_name, notes)
         values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
         returning {COLUMNS}"
    ))
    .bind(site.id)
    .bind(extension)
    .bind(&request.aspect)
    .bind(&request.role)
    .bind(&request.meaning)
    .bind(&request.config_hash)
    .bind(operator.id)
    .bind(&operator.username)
    .bind(&operator.printed_name)
    .bind(&request.notes)
    .fetch_one(&mut *tx)
    .await?;
    let signoff = from_row(row, active, proposed);
    let actor = format!("operator:{}", operator.username);
    let entry = AuditEntry::new(actor, "site.signoff_recorded", target(&site, extension)).details(json!({
        "signoff_id": signoff.id, "aspect": signoff.aspect, "role": signoff.role, "meaning": signoff.meaning,
        "config_hash": signoff.config_hash, "printed_name": signoff.printed_name,
    }));
    audit::record(&mut *tx, &entry).await?;
    let data = json!({
        "site": site.slug, "extension": extension, "signoff_id": signoff.id, "aspect": signoff.aspect,
        "role": signoff.role, "meaning": signoff.meaning, "config_hash": signoff.config_hash,
        "operator": operator.username,
    });
    outbox::record(&mut tx, NewEvent { name: "site.signoff_recorded", data: &data, origin }).await?;
    notify(&mut tx, site.id).await?;
    tx.commit().await?;
    Ok(signoff)
}

/// Every sign-off of `extension` at `site`, each marked valid or not for the current hashes.
pub(crate) async fn list(
    pool: &PgPool,
    catalog: &Catalog,
    site: &Site,
    extension: &str,
) -> Result<SignoffList, SiteError> {
    let declared = catalog.get(extension).ok_or_else(|| SiteError::UnknownExtension(extension.to_owned()))?;
    let rows = site_extensions::of_site(pool, site.id).await?;
    let row = rows.iter().find(|r| r.extension == extension);
    let (active, proposed) = row.map(|r| r.current_hashes()).unwrap_or((None, None));
    let signed: Vec<Row> = sqlx::query_as(&format!(
        "select {COLUMNS} from annex.compliance_signoffs where site_id = $1 and extension = $2 order by id desc"
    ))
    .bind(site.id)
    .bind(extension)
    .fetch_all(pool)
    .await?;
    Ok(SignoffList {
        site: site.slug.clone(),
        extension: extension.to_owned(),
        active_hash: active.map(str::to_owned),
        proposed_hash: proposed.map(str::to_owned),
        required: declared
            .metadata
            .signoffs
            .iter()
            .flat_map(|s| {
                s.roles.iter().map(|r| RequiredSignoff { aspect: s.aspect.clone(), role: r.clone() })
            })
            .collect(),
        signoffs: signed.into_iter().map(|r| from_row(r, active, proposed)).collect(),
    })
}

/// The sign-offs of the site for `(extension, hash)` pairs, for reports and snapshots.
pub(crate) async fn for_hashes(
    executor: impl sqlx::PgExecutor<'_>,
    site: &Site,
    hashes: &[String],
) -> Result<Vec<Signoff>, SiteError> {
    let rows: Vec<Row> = sqlx::query_as(&format!(
        "select {COLUMNS} from annex.compliance_signoffs where site_id = $1 and config_hash = any($2) order by id"
    ))
    .bind(site.id)
    .bind(hashes)
    .fetch_all(executor)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| {
            let hash = r.5.clone();
            from_row(r, Some(&hash), None)
        })
        .collect())
}
