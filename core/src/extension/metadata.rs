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
}
