//! The registry's documents: a stage ([`StageDef`]) and a pipeline ([`PipelineDef`]) as stored
//! in `annex.pipeline_stages` / `annex.pipelines` and served by the admin API and the CLI, and
//! what an operator sends to add or change one.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::extension::stage::{OnError, StageKind};

/// How a stage is reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Transport {
    /// An extension of this binary registered it; called in-process.
    Compiled,
    /// A NATS subject; any program answering the envelope there.
    Remote,
}

impl Transport {
    /// `compiled` or `remote`.
    pub fn as_str(self) -> &'static str {
        match self {
            Transport::Compiled => "compiled",
            Transport::Remote => "remote",
        }
    }
}

/// Retries of retryable failures: exponential backoff with jitter, never past the deadline.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RetryPolicy {
    /// Calls in all, the first included (1 = no retry).
    pub max_attempts: u32,
    /// The wait before the first retry; doubled for each next one.
    pub backoff_ms: u64,
    /// The longest wait between two attempts.
    pub max_backoff_ms: u64,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self { max_attempts: 2, backoff_ms: 50, max_backoff_ms: 1000 }
    }
}

/// When a stage's circuit breaker opens and how long it stays open.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BreakerSettings {
    /// Failures in a row that open it.
    pub consecutive_failures: u32,
    /// A failure rate (0–1) over the window that opens it, once the window holds `min_calls`.
    pub failure_rate: f64,
    /// Calls the window must hold before `failure_rate` applies.
    pub min_calls: u32,
    /// How long it stays open before a probe call is let through (half-open).
    pub cooldown_ms: u64,
}

impl Default for BreakerSettings {
    fn default() -> Self {
        Self { consecutive_failures: 5, failure_rate: 0.5, min_calls: 20, cooldown_ms: 5000 }
    }
}

/// A stage in the registry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StageDef {
    /// `<extension>.<name>` for compiled-in stages; any such id for remote ones.
    pub id: String,
    /// Which slot of a pipeline it fits.
    pub kind: StageKind,
    /// Compiled in or remote.
    pub transport: Transport,
    /// Compiled: the extension that registered it.
    pub extension: Option<String>,
    /// Remote: the NATS subject it answers on.
    pub subject: Option<String>,
    /// One call's time limit (within what remains of the pipeline's deadline).
    pub timeout_ms: u64,
    /// Retries of retryable failures.
    pub retry: RetryPolicy,
    /// What a pipeline does when it fails.
    pub on_error: OnError,
    /// A disabled stage may not be part of a pipeline.
    pub enabled: bool,
    /// Handed to every call (`StageRequest::config`), checked against the stage's schema.
    pub config: Value,
    /// `description`, `version`, and for remote stages `config_schema`.
    pub metadata: Value,
    /// Its circuit breaker.
    pub breaker: BreakerSettings,
    /// When the row last changed.
    pub updated_at: Option<DateTime<Utc>>,
}

/// A remote stage to add (`POST /api/v1/stages`, `annex stages add`). Compiled-in stages are
/// added by the host itself, from their extension's registration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewStage {
    /// Its id: lowercase letters, digits, `_`, at most one `.`.
    pub id: String,
    /// Its kind.
    pub kind: StageKind,
    /// Its NATS subject; default `annex.stage.<kind>.<name>.v<major>` (name: the id with `.`
    /// as `_`; major: `metadata.version`'s first number, else 1).
    #[serde(default)]
    pub subject: Option<String>,
    /// Default 1000.
    #[serde(default)]
    pub timeout_ms: Option<u64>,
    /// Default `{max_attempts: 2, backoff_ms: 50, max_backoff_ms: 1000}`.
    #[serde(default)]
    pub retry: Option<RetryPolicy>,
    /// Default `closed`.
    #[serde(default)]
    pub on_error: Option<OnError>,
    /// Default true.
    #[serde(default)]
    pub enabled: Option<bool>,
    /// Default `{}`.
    #[serde(default)]
    pub config: Option<Value>,
    /// Default `{}`.
    #[serde(default)]
    pub metadata: Option<Value>,
    /// Default breaker settings.
    #[serde(default)]
    pub breaker: Option<BreakerSettings>,
}

/// A change to a stage (`PUT /api/v1/stages/{id}`, `annex stages set`): each field given
/// replaces the stored one; the others stay.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StageChange {
    /// Remote stages only.
    #[serde(default)]
    pub subject: Option<String>,
    /// A new timeout.
    #[serde(default)]
    pub timeout_ms: Option<u64>,
    /// A new retry policy.
    #[serde(default)]
    pub retry: Option<RetryPolicy>,
    /// A new failure mode.
    #[serde(default)]
    pub on_error: Option<OnError>,
    /// Enable or disable.
    #[serde(default)]
    pub enabled: Option<bool>,
    /// A new config (checked against the schema).
    #[serde(default)]
    pub config: Option<Value>,
    /// New metadata.
    #[serde(default)]
    pub metadata: Option<Value>,
    /// New breaker settings.
    #[serde(default)]
    pub breaker: Option<BreakerSettings>,
}

/// A validator in a pipeline: equal `order` runs concurrently, lower first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ValidatorRef {
    /// The stage id.
    pub stage: String,
    /// Its group.
    #[serde(default)]
    pub order: i32,
}

/// A provider candidate: lower `priority` is tried first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProviderRef {
    /// The stage id.
    pub stage: String,
    /// Its place in the fallback order.
    #[serde(default)]
    pub priority: i32,
}

/// The stages of a pipeline, by kind.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PipelineStages {
    /// Run in this order; each may change the payload.
    #[serde(default)]
    pub pre: Vec<String>,
    /// Run by order groups; each group concurrently.
    #[serde(default)]
    pub validators: Vec<ValidatorRef>,
    /// Tried by priority until one answers.
    #[serde(default)]
    pub providers: Vec<ProviderRef>,
    /// Run in this order on the answer.
    #[serde(default)]
    pub post: Vec<String>,
}

/// What an operator sends to create or replace a pipeline (`PUT /api/v1/pipelines/{name}`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PipelineInput {
    /// Run in this order; each may change the payload.
    #[serde(default)]
    pub pre: Vec<String>,
    /// Run by order groups; each group concurrently.
    #[serde(default)]
    pub validators: Vec<ValidatorRef>,
    /// Tried by priority until one answers.
    #[serde(default)]
    pub providers: Vec<ProviderRef>,
    /// Run in this order on the answer.
    #[serde(default)]
    pub post: Vec<String>,
    /// The whole run's time limit; default 5000.
    #[serde(default = "default_deadline")]
    pub deadline_ms: u64,
}

impl PipelineInput {
    /// Its stages as stored.
    pub(crate) fn stages(&self) -> PipelineStages {
        PipelineStages {
            pre: self.pre.clone(),
            validators: self.validators.clone(),
            providers: self.providers.clone(),
            post: self.post.clone(),
        }
    }
}

fn default_deadline() -> u64 {
    5000
}

/// A pipeline in the registry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PipelineDef {
    /// `^[a-z][a-z0-9_-]{0,62}$`; served at `POST /pipelines/<name>`.
    pub name: String,
    /// Its stages.
    #[serde(flatten)]
    pub stages: PipelineStages,
    /// The whole run's time limit.
    pub deadline_ms: u64,
    /// When the row last changed.
    pub updated_at: Option<DateTime<Utc>>,
}

impl PipelineStages {
    /// Every (kind slot, stage id) it names.
    pub(crate) fn slots(&self) -> impl Iterator<Item = (StageKind, &str)> {
        self.pre
            .iter()
            .map(|s| (StageKind::Pre, s.as_str()))
            .chain(self.validators.iter().map(|v| (StageKind::Validator, v.stage.as_str())))
            .chain(self.providers.iter().map(|p| (StageKind::Provider, p.stage.as_str())))
            .chain(self.post.iter().map(|s| (StageKind::Post, s.as_str())))
    }
}

/// Whether `id` is a valid stage id (the migration's check, here first for a clear error).
pub(crate) fn valid_stage_id(id: &str) -> bool {
    let mut parts = id.split('.');
    let ok = |p: &str, max: usize| {
        !p.is_empty()
            && p.len() <= max
            && p.starts_with(|c: char| c.is_ascii_lowercase())
            && p.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
    };
    match (parts.next(), parts.next(), parts.next()) {
        (Some(a), None, None) => ok(a, 40),
        (Some(a), Some(b), None) => ok(a, 40) && ok(b, 64),
        _ => false,
    }
}

/// Whether `name` is a valid pipeline name.
pub(crate) fn valid_pipeline_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 63
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-')
}

/// The default subject of a remote stage.
pub(crate) fn default_subject(kind: StageKind, id: &str, metadata: &Value) -> String {
    let major = metadata
        .get("version")
        .and_then(|v| match v {
            Value::Number(n) => n.as_u64(),
            Value::String(s) => s.split('.').next().and_then(|m| m.trim_start_matches('v').parse().ok()),
            _ => None,
        })
        .unwrap_or(1);
    format!("annex.stage.{kind}.{}.v{major}", id.replace('.', "_"))
}

/// Whether `subject` is a plain NATS subject to publish on (no wildcards, no spaces).
pub(crate) fn valid_subject(subject: &str) -> bool {
    !subject.is_empty()
        && subject.len() <= 255
        && subject
            .split('.')
            .all(|t| !t.is_empty() && t.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-'))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn ids_names_and_subjects() {
        assert!(valid_stage_id("guardrails.pii_guard"));
        assert!(valid_stage_id("translate"));
        assert!(!valid_stage_id("a.b.c") && !valid_stage_id("A.b") && !valid_stage_id(".b"));
        assert!(valid_pipeline_name("chat-v2") && !valid_pipeline_name("Chat"));
        assert_eq!(
            default_subject(StageKind::Validator, "acme.toxicity", &json!({"version": "2.1.0"})),
            "annex.stage.validator.acme_toxicity.v2"
        );
        assert!(valid_subject("annex.stage.pre.x.v1") && !valid_subject("a.*") && !valid_subject("a..b"));
    }

    #[test]
    fn a_pipeline_input_reads_with_defaults() {
        let p: PipelineInput = serde_json::from_value(json!({"providers": [{"stage": "m.echo"}]})).unwrap();
        assert_eq!(p.deadline_ms, 5000);
        assert_eq!(p.stages().providers[0].priority, 0);
        assert!(serde_json::from_value::<PipelineInput>(json!({"prov": []})).is_err());
    }
}
