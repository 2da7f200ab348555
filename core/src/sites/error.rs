//! [`SiteError`]: why a site operation was refused or failed, each kind with one stable
//! snake_case code and one HTTP status, the same from the admin API and the CLI.

use axum::http::StatusCode;

use super::report::Report;
use crate::access::AccessError;
use crate::config::schema::SchemaViolation;

/// Why a site operation was refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum SiteError {
    /// A slug that does not match `^[a-z0-9][a-z0-9-]{0,62}$`.
    #[error(
        "site slug `{0}` is invalid: use 1 to 63 characters, a lowercase letter or digit, then \
         lowercase letters, digits or `-` (`^[a-z0-9][a-z0-9-]{{0,62}}$`)"
    )]
    InvalidSlug(String),
    /// A site name that is empty or longer than 200 characters.
    #[error(
        "the site name must be 1 to 200 characters, not only blanks, without NUL (it is shown to operators)"
    )]
    InvalidName,
    /// The slug is taken.
    #[error("site `{0}` already exists; pick another slug")]
    SiteExists(String),
    /// No such site, or one the caller may not see (the same answer, so existence does not leak).
    #[error("no site `{0}`; `GET /api/v1/sites` (or `annex sites list`) shows the sites you may see")]
    UnknownSite(String),
    /// No extension of that name is compiled in.
    #[error("no extension named `{0}` is compiled in; `annex extensions list` shows the known ones")]
    UnknownExtension(String),
    /// The site is suspended: nothing at it may change until it is resumed.
    #[error("site `{0}` is suspended; resume it (`annex sites resume {0}`) before changing it")]
    SiteSuspended(String),
    /// The config does not fit the extension's JSON Schema (or is not an object).
    #[error("config for extension `{extension}` does not fit its schema: {}", violations(.errors))]
    InvalidConfig {
        /// The extension.
        extension: String,
        /// One entry per problem, by JSON pointer.
        errors: Vec<SchemaViolation>,
        /// The whole validation report.
        report: Box<Report>,
    },
    /// Activation refused: conflicts, unmet dependencies or missing sign-offs (in the report).
    #[error("{message}")]
    Refused {
        /// What was refused and how to fix it.
        message: String,
        /// The validation report naming every problem.
        report: Box<Report>,
    },
    /// The extension is not active at the site.
    #[error("extension `{extension}` is not active at site `{site}`; nothing to deactivate")]
    NotActive {
        /// The site's slug.
        site: String,
        /// The extension.
        extension: String,
    },
    /// Deactivating it would leave active extensions at the site without what they need.
    #[error(
        "extension `{extension}` is needed at site `{site}` by {}; deactivate those first or \
         deactivate with cascade (`?cascade=true`, `annex sites deactivate {site} {extension} --cascade`)",
        quoted(.dependents)
    )]
    HasDependents {
        /// The site's slug.
        site: String,
        /// The extension.
        extension: String,
        /// The active extensions that need it, directly or not.
        dependents: Vec<String>,
    },
    /// Only an operator signs: a sign-off is personal.
    #[error(
        "a sign-off is personal: call with your operator token (or `annex sites signoff --operator \
         <username> --password-stdin`), not the admin token"
    )]
    OperatorRequired,
    /// The signer lacks the role the sign-off is for.
    #[error(
        "operator `{username}` does not hold role `{role}`; an admin can grant it, or ask a holder to sign"
    )]
    RoleNotHeld {
        /// The signer.
        username: String,
        /// The role asked for.
        role: String,
    },
    /// The extension requires no sign-off of that (aspect, role).
    #[error(
        "extension `{extension}` requires no sign-off of aspect `{aspect}` by role `{role}`; it \
         requires: {required}"
    )]
    SignoffNotRequired {
        /// The extension.
        extension: String,
        /// The aspect given.
        aspect: String,
        /// The role given.
        role: String,
        /// What it requires, as `aspect/role` pairs.
        required: String,
    },
    /// The hash signed is neither the active config's nor the pending proposal's.
    #[error(
        "config hash `{given}` is not the hash of extension `{extension}`'s active config ({}) \
         nor of its pending proposal ({}); sign one of those (a refused activation stores its \
         config as the proposal)",
        or_none(.active), or_none(.proposed)
    )]
    StaleConfigHash {
        /// The extension.
        extension: String,
        /// The hash given.
        given: String,
        /// The active config's hash.
        active: Option<String>,
        /// The pending proposal's hash.
        proposed: Option<String>,
    },
    /// The same person would sign two roles of one aspect for one hash.
    #[error(
        "operator `{username}` already signed aspect `{aspect}` as `{signed_role}` for this config; \
         another person must sign as `{role}` (two-person rule), unless the site's policy sets \
         allow_one_signer_for_several_roles"
    )]
    TwoPersonRule {
        /// The signer.
        username: String,
        /// The aspect.
        aspect: String,
        /// The role they already signed.
        signed_role: String,
        /// The role they tried to sign.
        role: String,
    },
    /// This operator already signed this (aspect, role) for this hash.
    #[error("operator `{username}` already signed aspect `{aspect}` as `{role}` for this config hash")]
    AlreadySigned {
        /// The signer.
        username: String,
        /// The aspect.
        aspect: String,
        /// The role.
        role: String,
    },
    /// Input that breaks a rule other than those above (the message names the field and the rule).
    #[error("{0}")]
    InvalidInput(String),
    /// No such snapshot at the site.
    #[error("no snapshot `{0}` at this site; `GET …/snapshots` lists them")]
    UnknownSnapshot(String),
    /// No active extension at the site provides the capability.
    #[error("no extension active at site `{site}` provides capability `{capability}`")]
    NoProvider {
        /// The site's slug.
        site: String,
        /// The capability.
        capability: String,
    },
    /// Identifying or authorising the caller failed (wrong password, role, scope).
    #[error(transparent)]
    Access(#[from] AccessError),
    /// A database call failed.
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
}

fn violations(errors: &[SchemaViolation]) -> String {
    let list: Vec<String> = errors
        .iter()
        .map(|e| format!("{}: {}", if e.pointer.is_empty() { "(root)" } else { &e.pointer }, e.message))
        .collect();
    list.join("; ")
}

fn quoted(names: &[String]) -> String {
    names.iter().map(|n| format!("`{n}`")).collect::<Vec<_>>().join(", ")
}

fn or_none(hash: &Option<String>) -> String {
    hash.as_ref().map_or_else(|| "none".to_owned(), |h| format!("`{h}`"))
}

impl SiteError {
    /// The stable snake_case code clients match on.
    pub fn code(&self) -> &'static str {
        match self {
            Self::InvalidSlug(_) => "invalid_slug",
            Self::InvalidName => "invalid_site_name",
            Self::SiteExists(_) => "site_exists",
            Self::UnknownSite(_) => "unknown_site",
            Self::UnknownExtension(_) => "unknown_extension",
            Self::SiteSuspended(_) => "site_suspended",
            Self::InvalidConfig { .. } => "invalid_config",
            Self::Refused { .. } => "activation_refused",
            Self::NotActive { .. } => "not_active",
            Self::HasDependents { .. } => "has_dependents",
            Self::OperatorRequired => "operator_required",
            Self::RoleNotHeld { .. } => "role_not_held",
            Self::SignoffNotRequired { .. } => "signoff_not_required",
            Self::StaleConfigHash { .. } => "stale_config_hash",
            Self::TwoPersonRule { .. } => "two_person_rule",
            Self::AlreadySigned { .. } => "already_signed",
            Self::InvalidInput(_) => "invalid_input",
            Self::UnknownSnapshot(_) => "unknown_snapshot",
            Self::NoProvider { .. } => "capability_not_provided",
            Self::Access(e) => match e {
                AccessError::InvalidUsername(_)
                | AccessError::InvalidRole(_)
                | AccessError::InvalidPrintedName
                | AccessError::WeakPassword => "invalid_operator",
                AccessError::UsernameTaken(_) => "operator_exists",
                AccessError::UnknownOperator(_) => "unknown_operator",
                AccessError::UnknownSite(_) => "unknown_site",
                AccessError::Disabled(_) => "operator_disabled",
                AccessError::WrongPassword(_) => "wrong_password",
                AccessError::Forbidden(_) => "forbidden",
                AccessError::Database(_) => "database_error",
                AccessError::Hashing(_) => "internal",
            },
            Self::Database(_) => "database_error",
        }
    }

    /// The HTTP status the admin API answers with.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::InvalidSlug(_)
            | Self::InvalidName
            | Self::InvalidConfig { .. }
            | Self::SignoffNotRequired { .. }
            | Self::InvalidInput(_) => StatusCode::UNPROCESSABLE_ENTITY,
            Self::SiteExists(_)
            | Self::SiteSuspended(_)
            | Self::Refused { .. }
            | Self::NotActive { .. }
            | Self::HasDependents { .. }
            | Self::StaleConfigHash { .. }
            | Self::TwoPersonRule { .. }
            | Self::AlreadySigned { .. } => StatusCode::CONFLICT,
            Self::UnknownSite(_)
            | Self::UnknownExtension(_)
            | Self::UnknownSnapshot(_)
            | Self::NoProvider { .. } => StatusCode::NOT_FOUND,
            Self::OperatorRequired | Self::RoleNotHeld { .. } => StatusCode::FORBIDDEN,
            Self::Access(e) => match e {
                AccessError::InvalidUsername(_)
                | AccessError::InvalidRole(_)
                | AccessError::InvalidPrintedName
                | AccessError::WeakPassword => StatusCode::UNPROCESSABLE_ENTITY,
                AccessError::UsernameTaken(_) => StatusCode::CONFLICT,
                AccessError::UnknownOperator(_) | AccessError::UnknownSite(_) => StatusCode::NOT_FOUND,
                AccessError::Disabled(_) | AccessError::Forbidden(_) => StatusCode::FORBIDDEN,
                AccessError::WrongPassword(_) => StatusCode::UNAUTHORIZED,
                AccessError::Database(_) | AccessError::Hashing(_) => StatusCode::INTERNAL_SERVER_ERROR,
            },
            Self::Database(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The validation report behind a refusal, if there is one.
    pub fn report(&self) -> Option<&Report> {
        match self {
            Self::InvalidConfig { report, .. } | Self::Refused { report, .. } => Some(report),
            _ => None,
        }
    }

    /// Whether the failure is the server's (logged; its text never sent to a client).
    pub fn is_internal(&self) -> bool {
        self.status() == StatusCode::INTERNAL_SERVER_ERROR
    }
}
