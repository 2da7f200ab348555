//! The validation [`Report`]: one shape for `validate`, `validate-combination`, activation and
//! restore. Every entry has a `code` and a `message` naming the thing and the fix.

use serde::{Deserialize, Serialize};

/// What pre-activation validation found. `valid` means activation would go through: no
/// errors, no conflicts and no missing sign-offs.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Report {
    /// Nothing stands in the way of activating.
    pub valid: bool,
    /// The hash of the config validated (for a combination, of the first extension's; each
    /// entry's own hash is in `extensions`).
    pub config_hash: String,
    /// Problems with the config itself (schema violations, each with its JSON pointer).
    pub errors: Vec<Finding>,
    /// Worth knowing, not blocking.
    pub warnings: Vec<Finding>,
    /// Conflicts with what the site runs or with the rest of the combination, and unmet
    /// dependencies.
    pub conflicts: Vec<Conflict>,
    /// Required sign-offs that no one has given for the config's hash.
    pub missing_signoffs: Vec<MissingSignoff>,
    /// Per extension validated: its name and config hash (one entry for a single extension).
    pub extensions: Vec<Validated>,
}

/// One error or warning.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Finding {
    /// Stable snake_case code (`invalid_config`, `already_active`, …).
    pub code: String,
    /// What and how to fix it.
    pub message: String,
    /// The extension it is about.
    pub extension: String,
    /// The JSON pointer into the config, for config errors.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub pointer: Option<String>,
}

/// The kinds of conflict `annex.site_conflicts` records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConflictKind {
    /// One of the two declares `conflicts_with` the other.
    Explicit,
    /// Both provide the same exclusive capability.
    ExclusiveSlot,
    /// A dependency (extension or capability) is not active at the site.
    Dependency,
    /// A dependency is active but in a version outside the required range.
    Version,
}

impl ConflictKind {
    /// The name stored in `annex.site_conflicts.kind`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Explicit => "explicit",
            Self::ExclusiveSlot => "exclusive_slot",
            Self::Dependency => "dependency",
            Self::Version => "version",
        }
    }
}

/// One conflict or unmet dependency.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Conflict {
    /// Stable code: `conflicts_with`, `exclusive_slot`, `missing_dependency`,
    /// `missing_capability`, `dependency_version`, `capability_version`.
    pub code: String,
    /// The kind recorded in `annex.site_conflicts`.
    pub kind: ConflictKind,
    /// The extension validated.
    pub extension: String,
    /// The extension (or, for a missing capability, the capability) it conflicts with.
    pub other: String,
    /// What and how to fix it.
    pub message: String,
}

/// A required (aspect, role) sign-off not given for the config's hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MissingSignoff {
    /// Always `missing_signoff`.
    pub code: String,
    /// The extension.
    pub extension: String,
    /// The compliance aspect.
    pub aspect: String,
    /// The role whose holder must sign.
    pub role: String,
    /// The hash the sign-off must name.
    pub config_hash: String,
    /// What and how to fix it.
    pub message: String,
}

/// One extension of a validated set.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Validated {
    /// Its name.
    pub name: String,
    /// The hash of its config.
    pub config_hash: String,
}

impl Report {
    /// Sets `valid` from the entries.
    pub(crate) fn finish(mut self) -> Self {
        self.valid = self.errors.is_empty() && self.conflicts.is_empty() && self.missing_signoffs.is_empty();
        self
    }

    /// A one-line summary of what blocks activation, for error messages.
    pub(crate) fn summary(&self) -> String {
        let mut parts: Vec<String> = self.errors.iter().map(|e| e.message.clone()).collect();
        parts.extend(self.conflicts.iter().map(|c| c.message.clone()));
        parts.extend(self.missing_signoffs.iter().map(|m| m.message.clone()));
        parts.join("; ")
    }
}
