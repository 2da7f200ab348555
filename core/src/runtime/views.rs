//! The documents the controller answers with: one shape per resource, printed as is by
//! `annex extensions … --json` and served as is by the admin API.

use serde::Serialize;
use serde_json::Value;

use crate::db::store::HealthCheck;
use crate::extension::metadata::{
    Capability, CapabilityRequirement, Dependency, Metadata, SignoffRequirement,
};
use crate::plan::catalog::DeclaredHook;

/// One extension in the list (`GET /api/v1/extensions`, `annex extensions list|status`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ExtensionSummary {
    /// Its name.
    pub name: String,
    /// Its version (compiled in, else last seen).
    pub version: String,
    /// Its one-line description (empty if not compiled in).
    pub description: String,
    /// The operator's switch.
    pub enabled: bool,
    /// Its lifecycle state: this process's when it runs the extension, else the last one a
    /// host recorded (`registered` if none ran it yet).
    pub state: String,
    /// Why it failed or was disabled, when it did or was.
    pub reason: Option<String>,
    /// The latest health status, `unknown` before the first check.
    pub health: String,
    /// Whether this binary contains it.
    pub compiled_in: bool,
}

/// Everything about one extension (`GET /api/v1/extensions/{name}`, `annex extensions info`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ExtensionDetails {
    /// Name, version, switch, state and health.
    #[serde(flatten)]
    pub summary: ExtensionSummary,
    /// What it needs.
    pub dependencies: Vec<Dependency>,
    /// Extensions that need it, directly or not, in a safe stop order.
    pub dependents: Vec<String>,
    /// Permissions it declares and those the operator granted.
    pub permissions: Permissions,
    /// Each route, under `/ext/<name>`.
    pub routes: Vec<Route>,
    /// Each hook and middleware it registers.
    pub hooks: Vec<DeclaredHook>,
    /// Each migration step it carries.
    pub migrations: Vec<MigrationInfo>,
    /// The config in force.
    pub config: Value,
    /// Its JSON Schema, if it declares one.
    pub config_schema: Option<Value>,
    /// What it declares for sites: capabilities, conflicts, required sign-offs.
    pub sites: SiteDeclarations,
}

/// What an extension declares for sites (see docs/sites.md).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SiteDeclarations {
    /// Served only under `/sites/<slug>/ext/<name>/…`.
    pub site_scoped: bool,
    /// Capabilities it provides.
    pub provides: Vec<Capability>,
    /// Capabilities it needs from another extension active at the site.
    pub requires_capabilities: Vec<CapabilityRequirement>,
    /// Extensions it cannot be active beside.
    pub conflicts_with: Vec<String>,
    /// Aspects that need sign-offs before activation.
    pub signoffs: Vec<SignoffRequirement>,
}

impl SiteDeclarations {
    pub(crate) fn of(m: &Metadata) -> Self {
        Self {
            site_scoped: m.site_scoped,
            provides: m.provides.clone(),
            requires_capabilities: m.requires_capabilities.clone(),
            conflicts_with: m.conflicts_with.clone(),
            signoffs: m.signoffs.clone(),
        }
    }
}

/// Declared and granted permissions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Permissions {
    /// Declared in its metadata.
    pub required: Vec<String>,
    /// Granted in `[extensions.<name>] permissions`.
    pub granted: Vec<String>,
}

/// One route.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Route {
    /// `GET`, `POST`, …
    pub method: String,
    /// The full path template, such as `/ext/shop/items/{id}`.
    pub path: String,
}

/// One migration step an extension carries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MigrationInfo {
    /// Its version.
    pub version: i64,
    /// Its description.
    pub description: String,
    /// Whether it has a `.down.sql`.
    pub reversible: bool,
}

/// What an enable or disable did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SwitchReport {
    /// The extension asked for.
    pub extension: String,
    /// The switch as it now stands.
    pub enabled: bool,
    /// This process's state of the extension afterwards; absent when this process does not run
    /// it (the CLI): running servers converge within a second.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
    /// Every extension disabled, in stop order (dependents first); empty for an enable.
    pub disabled: Vec<String>,
}

/// An extension's config and the schema it must fit.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ConfigView {
    /// The extension.
    pub extension: String,
    /// The config in force.
    pub config: Value,
    /// Its JSON Schema, if it declares one.
    pub schema: Option<Value>,
}

/// Health status and history of one extension.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HealthReport {
    /// The extension.
    pub extension: String,
    /// Its lifecycle state (as in [`ExtensionSummary::state`]).
    pub state: String,
    /// The latest status, `unknown` before the first check.
    pub status: String,
    /// Checks, newest first.
    pub history: Vec<HealthCheck>,
}

/// Each replica's latest figures for one extension.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ExtensionFigures {
    /// The extension.
    pub extension: String,
    /// Newest first; this process's live figures first when it runs the extension.
    pub replicas: Vec<ReplicaFigures>,
}

/// One replica's figures.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ReplicaFigures {
    /// `<hostname>:<pid>` of the process.
    pub replica: String,
    /// When they were taken (UTC, RFC 3339).
    pub at: String,
    /// Every `extension_*` series of the extension, by family.
    pub figures: Value,
}
