//! What an extension says about itself.

use serde::Serialize;

/// Name, version, description, dependencies and permissions of an extension.
///
/// Values are checked when the host starts (names, semver versions and requirements), so a bad
/// value is a startup error naming the extension, never a panic.
///
/// ```
/// use annex_core::Metadata;
/// let m = Metadata::new("reports", "1.2.0")
///     .description("Monthly reports")
///     .depends_on("analytics", "^1.2")
///     .permission("database");
/// assert_eq!(m.name, "reports");
/// assert_eq!(m.dependencies[0].name, "analytics");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Metadata {
    /// Unique name: `^[a-z][a-z0-9_]{0,39}$`. Routes live under `/ext/<name>/`.
    pub name: String,
    /// A semver version, such as `1.4.0`.
    pub version: String,
    /// One line for operators.
    pub description: String,
    /// Other extensions this one needs, with semver requirements.
    pub dependencies: Vec<Dependency>,
    /// Permissions this extension needs (`database`, `storage`, `http:outbound`, …).
    pub permissions: Vec<String>,
    /// Capabilities this extension provides to the other extensions of a site.
    pub provides: Vec<Capability>,
    /// Capabilities this extension needs some extension active at the same site to provide.
    pub requires_capabilities: Vec<CapabilityRequirement>,
    /// Extensions that must not be active at the same site as this one.
    pub conflicts_with: Vec<String>,
    /// Compliance aspects that need a sign-off before this extension is activated at a site.
    pub signoffs: Vec<SignoffRequirement>,
    /// Served only under `/sites/<slug>/ext/<name>/…`, at sites where it is active; never under
    /// `/ext/<name>/`.
    pub site_scoped: bool,
}

/// A capability an extension provides: a name (same rules as extension names, plus `-`) and a
/// semver version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Capability {
    /// Its name, such as `work-orders`.
    pub name: String,
    /// The version of the capability's contract, such as `1.2.0`.
    pub version: String,
    /// A slot only one active extension per site may fill.
    pub exclusive: bool,
}

/// A capability an extension needs, with a semver requirement on its version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CapabilityRequirement {
    /// The capability's name.
    pub name: String,
    /// A semver requirement such as `^1`.
    pub requirement: String,
}

/// A compliance aspect that needs a sign-off, before activation at a site, by someone holding
/// one of `roles` (every role listed must sign: `["quality-focal", "quality-manager"]` needs
/// two sign-offs, by two people unless the site's policy allows one person both).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SignoffRequirement {
    /// The aspect, such as `electronic-signature-validation`.
    pub aspect: String,
    /// The roles whose sign-off the aspect needs, each once.
    pub roles: Vec<String>,
}

/// A dependency on another extension.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Dependency {
    /// The other extension's name.
    pub name: String,
    /// A semver requirement such as `^1.2` or `>=0.3, <0.5`.
    pub requirement: String,
}

impl Metadata {
    /// Metadata with a name and version; the rest empty.
    pub fn new(name: impl Into<String>, version: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            version: version.into(),
            description: String::new(),
            dependencies: Vec::new(),
            permissions: Vec::new(),
            provides: Vec::new(),
            requires_capabilities: Vec::new(),
            conflicts_with: Vec::new(),
            signoffs: Vec::new(),
            site_scoped: false,
        }
    }

    /// Sets the description.
    pub fn description(mut self, description: impl Into<String>) -> Self {
        self.description = description.into();
        self
    }

    /// Adds a dependency on extension `name` matching the semver `requirement`.
    pub fn depends_on(mut self, name: impl Into<String>, requirement: impl Into<String>) -> Self {
        self.dependencies.push(Dependency { name: name.into(), requirement: requirement.into() });
        self
    }

    /// Adds a permission this extension needs.
    pub fn permission(mut self, permission: impl Into<String>) -> Self {
        self.permissions.push(permission.into());
        self
    }

    /// Provides capability `name` at `version` (semver) to the extensions of a site.
    pub fn provides(mut self, name: impl Into<String>, version: impl Into<String>) -> Self {
        self.provides.push(Capability { name: name.into(), version: version.into(), exclusive: false });
        self
    }

    /// Provides capability `name` as an exclusive slot: at most one extension active at a site
    /// may provide it (a second is an `exclusive_slot` conflict).
    pub fn provides_exclusive(mut self, name: impl Into<String>, version: impl Into<String>) -> Self {
        self.provides.push(Capability { name: name.into(), version: version.into(), exclusive: true });
        self
    }

    /// Needs capability `name`, in a version matching the semver `requirement`, from an
    /// extension active at the same site.
    pub fn requires_capability(mut self, name: impl Into<String>, requirement: impl Into<String>) -> Self {
        self.requires_capabilities
            .push(CapabilityRequirement { name: name.into(), requirement: requirement.into() });
        self
    }

    /// Must not be active at the same site as extension `name`.
    pub fn conflicts_with(mut self, name: impl Into<String>) -> Self {
        self.conflicts_with.push(name.into());
        self
    }

    /// Activation at a site needs a sign-off of compliance `aspect` by a holder of each of
    /// `roles`, bound to the hash of the exact config activated.
    pub fn signoff<R: Into<String>>(
        mut self,
        aspect: impl Into<String>,
        roles: impl IntoIterator<Item = R>,
    ) -> Self {
        self.signoffs.push(SignoffRequirement {
            aspect: aspect.into(),
            roles: roles.into_iter().map(Into::into).collect(),
        });
        self
    }

    /// Served only under sites (`/sites/<slug>/ext/<name>/…`) where it is active.
    pub fn site_scoped(mut self) -> Self {
        self.site_scoped = true;
        self
    }
}
