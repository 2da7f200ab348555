//! [`RegistryError`]: why a change to the stage registry was refused, with one status and one
//! code per kind (the admin API and the CLI show the same).

use crate::config::schema::SchemaViolation;

/// Why a registry operation failed. Nothing was changed.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// No stage with this id.
    #[error("no stage `{0}`; `annex stages list` shows the registry")]
    UnknownStage(String),
    /// No pipeline with this name.
    #[error("no pipeline `{0}`; `annex pipelines list` shows them")]
    UnknownPipeline(String),
    /// The config does not fit the stage's schema.
    #[error("the config of stage `{stage}` does not match its schema")]
    InvalidConfig {
        /// The stage.
        stage: String,
        /// Every violation, by JSON pointer.
        errors: Vec<SchemaViolation>,
    },
    /// The stage's fields are not acceptable (the message says which and why).
    #[error("{0}")]
    InvalidStage(String),
    /// The pipeline is not acceptable: every problem found.
    #[error("pipeline `{name}` is refused: {}", problems.join("; "))]
    InvalidPipeline {
        /// The pipeline.
        name: String,
        /// What is wrong, one sentence each.
        problems: Vec<String>,
    },
    /// A remote stage while `[nats] url` is not set.
    #[error("remote stages need NATS: set [nats] url in annex.toml (or ANNEX_NATS_URL), then add the stage")]
    NatsRequired,
    /// A stage with this id (or subject) exists.
    #[error("{0}")]
    Exists(String),
    /// The stage is part of pipelines, which would name an unknown stage.
    #[error("stage `{stage}` is used by pipeline(s) {}; remove it from them first", pipelines.join(", "))]
    InUse {
        /// The stage.
        stage: String,
        /// The pipelines naming it.
        pipelines: Vec<String>,
    },
    /// A compiled-in stage's row cannot be removed (the host would add it back at start).
    #[error("stage `{0}` is compiled in; disable it instead (`annex stages disable {0}`)")]
    CompiledIn(String),
    /// A stored row cannot be read.
    #[error("the registry holds an unreadable row: {0}")]
    Corrupt(String),
    /// Text PostgreSQL cannot store (a NUL character).
    #[error("a text value contains a NUL character (\\u0000), which PostgreSQL cannot store")]
    InvalidText,
    /// The database failed.
    #[error("database error: {0}")]
    Database(sqlx::Error),
}

impl From<sqlx::Error> for RegistryError {
    fn from(e: sqlx::Error) -> Self {
        let code = e.as_database_error().and_then(|d| d.code().map(|c| c.into_owned()));
        if matches!(code.as_deref(), Some("22021" | "22P05")) {
            return Self::InvalidText;
        }
        Self::Database(e)
    }
}

impl RegistryError {
    /// The HTTP status the admin API answers with.
    pub fn status(&self) -> u16 {
        match self {
            Self::UnknownStage(_) | Self::UnknownPipeline(_) => 404,
            Self::InvalidConfig { .. }
            | Self::InvalidStage(_)
            | Self::InvalidPipeline { .. }
            | Self::NatsRequired
            | Self::InvalidText => 422,
            Self::Exists(_) | Self::InUse { .. } | Self::CompiledIn(_) => 409,
            Self::Corrupt(_) | Self::Database(_) => 500,
        }
    }

    /// The snake_case error code.
    pub fn code(&self) -> &'static str {
        match self {
            Self::UnknownStage(_) => "unknown_stage",
            Self::UnknownPipeline(_) => "pipeline_not_found",
            Self::InvalidConfig { .. } => "invalid_config",
            Self::InvalidStage(_) => "invalid_stage",
            Self::InvalidPipeline { .. } => "invalid_pipeline",
            Self::NatsRequired => "nats_required",
            Self::Exists(_) => "conflict",
            Self::InUse { .. } => "stage_in_use",
            Self::CompiledIn(_) => "compiled_in",
            Self::InvalidText => "invalid_text",
            Self::Corrupt(_) | Self::Database(_) => "database_error",
        }
    }

    /// Whether the cause is on the server's side (logged, never shown).
    pub fn is_internal(&self) -> bool {
        self.status() >= 500
    }
}
