//! Schema migrations an extension (or the host) ships: numbered, reversible steps.

use sha2::{Digest, Sha256};

/// One migration step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Migration {
    /// Position in the sequence; applied in ascending order.
    pub version: i64,
    /// Short description, from the file name.
    pub description: String,
    /// SQL that applies the step (several statements allowed).
    pub up: String,
    /// SQL that reverts it; `None` makes the step irreversible.
    pub down: Option<String>,
}

impl Migration {
    /// A step with up and down SQL.
    pub fn new(version: i64, description: &str, up: &str, down: Option<&str>) -> Self {
        Self {
            version,
            description: description.to_owned(),
            up: up.to_owned(),
            down: down.map(str::to_owned),
        }
    }

    /// Hex SHA-256 of the up SQL; an applied step whose checksum changed is refused.
    pub fn checksum(&self) -> String {
        let digest = Sha256::digest(self.up.as_bytes());
        digest.iter().map(|b| format!("{b:02x}")).collect()
    }
}

/// An ordered set of migrations.
///
/// ```
/// use annex_core::{Migration, Migrations};
/// let m = Migrations::new(vec![
///     Migration::new(1, "items", "create table items (id bigint)", Some("drop table items")),
/// ]);
/// assert_eq!(m.iter().count(), 1);
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Migrations {
    steps: Vec<Migration>,
}

impl Migrations {
    /// No migrations.
    pub fn none() -> Self {
        Self::default()
    }

    /// The given steps, sorted by version.
    pub fn new(mut steps: Vec<Migration>) -> Self {
        steps.sort_by_key(|m| m.version);
        Self { steps }
    }

    /// The steps in version order.
    pub fn iter(&self) -> impl Iterator<Item = &Migration> {
        self.steps.iter()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.steps.is_empty()
    }
}
