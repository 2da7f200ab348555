//! [`ControlError`]: why the controller refused or failed an operation, with one HTTP status and
//! one stable code per kind of failure, the same on every route.

use axum::http::StatusCode;

use crate::config::schema::SchemaViolation;

/// Why an enable, disable or config change was refused.
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    /// No such extension in this binary.
    #[error("no extension named `{0}` is compiled in; `annex extensions list` shows the known ones")]
    NotFound(String),
    /// Disabling it would leave enabled extensions without a dependency.
    #[error(
        "extension `{name}` is needed by {}; disable those first or disable with cascade \
         (`?cascade=true`, `annex extensions disable {name} --cascade`)",
        list(.dependents)
    )]
    HasDependents {
        /// The extension.
        name: String,
        /// The enabled extensions that depend on it, directly or not.
        dependents: Vec<String>,
    },
    /// Enabling it needs dependencies that are disabled.
    #[error("extension `{name}` depends on {}, which {} not enabled; enable {} first", list(.missing), if .missing.len() == 1 { "is" } else { "are" }, if .missing.len() == 1 { "it" } else { "them" })]
    DependenciesDisabled {
        /// The extension.
        name: String,
        /// Its dependencies that are not enabled (or not running).
        missing: Vec<String>,
    },
    /// The config does not fit the extension's JSON Schema.
    #[error("config for extension `{name}` does not fit its schema: {}", violations(.errors))]
    InvalidConfig {
        /// The extension.
        name: String,
        /// One entry per problem.
        errors: Vec<SchemaViolation>,
    },
    /// The extension's `apply_config` refused the config; the old one stays.
    #[error("extension `{name}` rejected the new config ({reason}); the old config stays in force")]
    ConfigRejected {
        /// The extension.
        name: String,
        /// What `apply_config` said.
        reason: String,
    },
    /// `init` or `start` failed when enabling.
    #[error("extension `{name}` is enabled but failed to start: {reason}; fix it and enable it again")]
    StartFailed {
        /// The extension.
        name: String,
        /// What `init` or `start` said, or why it could not run.
        reason: String,
    },
    /// A database call failed.
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
}

fn list(names: &[String]) -> String {
    names.iter().map(|n| format!("`{n}`")).collect::<Vec<_>>().join(", ")
}

fn violations(errors: &[SchemaViolation]) -> String {
    errors
        .iter()
        .map(|e| format!("{} {}", if e.pointer.is_empty() { "(root)" } else { &e.pointer }, e.message))
        .collect::<Vec<_>>()
        .join("; ")
}

impl ControlError {
    /// The HTTP status the admin API answers with.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::HasDependents { .. } | Self::DependenciesDisabled { .. } => StatusCode::CONFLICT,
            Self::InvalidConfig { .. } | Self::ConfigRejected { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            Self::StartFailed { .. } | Self::Database(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The stable snake_case code.
    pub fn code(&self) -> &'static str {
        match self {
            Self::NotFound(_) => "extension_not_found",
            Self::HasDependents { .. } => "has_dependents",
            Self::DependenciesDisabled { .. } => "dependencies_disabled",
            Self::InvalidConfig { .. } => "invalid_config",
            Self::ConfigRejected { .. } => "config_rejected",
            Self::StartFailed { .. } => "start_failed",
            Self::Database(_) => "database_error",
        }
    }
}
