//! Processing-pipeline stages: the envelope (version 1) every stage speaks, compiled in or
//! remote over NATS, and how an extension registers a compiled-in one
//! ([`Registrar::stage`](crate::Registrar::stage)).
//!
//! A pipeline runs a payload through `pre` stages (may change it), `validator` stages (may deny;
//! never change it), one `provider` (produces the answer; candidates in priority order with
//! fallback) and `post` stages (may change the answer). Each call of a stage is one
//! [`StageRequest`] in and one [`StageResult`] out; over NATS both are plain JSON
//! (`docs/stage-envelope.schema.json`), so a remote stage can be written in any language.
//!
//! ```
//! use annex_core::stage::{StageKind, StageRequest, StageResult, StageSpec};
//! use annex_core::{Context, Registrar};
//!
//! fn register(r: &mut Registrar) {
//!     r.stage(StageSpec::new("shout", StageKind::Pre), |_cx: Context, req: StageRequest| async move {
//!         match req.payload.as_str() {
//!             Some(text) => StageResult::modified(text.to_uppercase().into()),
//!             None => StageResult::continue_(),
//!         }
//!     });
//! }
//! ```

use std::fmt;
use std::future::Future;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use futures::future::BoxFuture;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::extension::context::Context;

/// The envelope version this host speaks.
pub const ENVELOPE_VERSION: u32 = 1;

/// What a stage does in a pipeline, in the order a pipeline runs them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StageKind {
    /// Normalises the payload; may change it.
    Pre,
    /// May deny; never changes the payload (a `modified` outcome is an error).
    Validator,
    /// Produces the answer from the payload.
    Provider,
    /// May change the answer.
    Post,
}

impl StageKind {
    /// Every kind, in pipeline order.
    pub const ALL: [StageKind; 4] =
        [StageKind::Pre, StageKind::Validator, StageKind::Provider, StageKind::Post];

    /// `pre`, `validator`, `provider` or `post`.
    pub fn as_str(self) -> &'static str {
        match self {
            StageKind::Pre => "pre",
            StageKind::Validator => "validator",
            StageKind::Provider => "provider",
            StageKind::Post => "post",
        }
    }
}

impl fmt::Display for StageKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for StageKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        StageKind::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| format!("unknown stage kind `{s}` (pre, validator, provider or post)"))
    }
}

/// One call of a stage (envelope version 1).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StageRequest {
    /// Envelope version, [`ENVELOPE_VERSION`].
    #[serde(default = "envelope_version")]
    pub v: u32,
    /// The request id of the pipeline run (also in the `Annex-Request-Id` NATS header).
    pub request_id: String,
    /// The pipeline being run.
    pub pipeline: String,
    /// The stage's registry id.
    pub stage: String,
    /// 1 for the first try, 2 for the first retry, …
    pub attempt: u32,
    /// The absolute deadline of this call (RFC 3339, UTC): an answer after it is discarded.
    pub deadline: DateTime<Utc>,
    /// The payload: for `pre` and `validator` stages and providers the (normalised) input, for
    /// `post` stages the provider's answer.
    pub payload: Value,
    /// The stage's config from the registry (validated against its schema when written).
    #[serde(default)]
    pub config: Value,
    /// What the run knows besides the payload: the original input (for `post` stages), the
    /// caller's metadata, earlier stages' findings.
    #[serde(default)]
    pub context: Value,
}

fn envelope_version() -> u32 {
    ENVELOPE_VERSION
}

impl StageRequest {
    /// The time left until [`deadline`](StageRequest::deadline) (zero once it has passed).
    pub fn remaining(&self) -> std::time::Duration {
        (self.deadline - Utc::now()).to_std().unwrap_or_default()
    }
}

/// What a stage decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Go on with the payload unchanged.
    Continue,
    /// Go on with [`StageResult::payload`] instead.
    Modified,
    /// Stop the run: [`StageResult::deny`] says why (422 to the caller).
    Deny,
    /// The stage failed: [`StageResult::error`] says how, and whether a retry may help.
    Error,
}

/// Why a stage denied.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Denial {
    /// A snake_case code, such as `pii_detected`.
    pub code: String,
    /// A sentence for the caller.
    pub reason: String,
}

/// How a stage failed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StageFailure {
    /// A snake_case code, such as `upstream_unavailable`.
    pub code: String,
    /// Whether the same call may succeed if tried again (the host retries only these).
    #[serde(default)]
    pub retryable: bool,
    /// Detail for logs and operators (not shown to the caller).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
}

/// Something a stage noticed, whatever its outcome (a flagged e-mail address, say).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Finding {
    /// A snake_case code, such as `email`.
    pub code: String,
    /// A sentence for operators.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
    /// Where in the payload, as a JSON pointer, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pointer: Option<String>,
}

/// A stage's answer to one [`StageRequest`] (envelope version 1).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StageResult {
    /// What the stage decided.
    pub outcome: Outcome,
    /// The new payload, with [`Outcome::Modified`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payload: Option<Value>,
    /// Why, with [`Outcome::Deny`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deny: Option<Denial>,
    /// How, with [`Outcome::Error`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<StageFailure>,
    /// What the stage noticed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub findings: Vec<Finding>,
}

impl StageResult {
    /// Go on unchanged. (`continue` is a Rust keyword.)
    pub fn continue_() -> Self {
        Self { outcome: Outcome::Continue, payload: None, deny: None, error: None, findings: Vec::new() }
    }

    /// Go on with `payload`.
    pub fn modified(payload: Value) -> Self {
        Self { outcome: Outcome::Modified, payload: Some(payload), ..Self::continue_() }
    }

    /// Stop the run with a denial.
    pub fn deny(code: impl Into<String>, reason: impl Into<String>) -> Self {
        Self {
            outcome: Outcome::Deny,
            deny: Some(Denial { code: code.into(), reason: reason.into() }),
            ..Self::continue_()
        }
    }

    /// A failure; `retryable` says whether trying again may help.
    pub fn error(code: impl Into<String>, retryable: bool, message: impl Into<String>) -> Self {
        Self {
            outcome: Outcome::Error,
            error: Some(StageFailure { code: code.into(), retryable, message: message.into() }),
            ..Self::continue_()
        }
    }

    /// Adds a finding.
    pub fn with_finding(mut self, finding: Finding) -> Self {
        self.findings.push(finding);
        self
    }

    /// Checks the result is well formed for a stage of `kind`: `modified` carries a payload
    /// (and is not allowed for validators), `deny` a denial, `error` a failure.
    pub fn check(&self, kind: StageKind) -> Result<(), String> {
        match self.outcome {
            Outcome::Modified if kind == StageKind::Validator => {
                Err("a validator may not change the payload (outcome `modified`)".into())
            }
            Outcome::Modified if self.payload.is_none() => Err("outcome `modified` without a payload".into()),
            Outcome::Deny if self.deny.is_none() => Err("outcome `deny` without `deny`".into()),
            Outcome::Error if self.error.is_none() => Err("outcome `error` without `error`".into()),
            _ => Ok(()),
        }
    }
}

/// What a pipeline does when a stage fails (error, timeout, open breaker, no responders).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnError {
    /// The run fails (validators' default: a guardrail that cannot run blocks).
    Closed,
    /// The run goes on without this stage and the answer says so (`Annex-Degraded`).
    Open,
}

/// A compiled-in stage's handler, as registered.
pub(crate) type StageFn = Arc<dyn Fn(Context, StageRequest) -> BoxFuture<'static, StageResult> + Send + Sync>;

/// A compiled-in stage's declaration: its name (unique within the extension; its registry id
/// is `<extension>.<name>`), kind, major version and the JSON Schema of its config.
#[derive(Debug, Clone)]
pub struct StageSpec {
    pub(crate) name: String,
    pub(crate) kind: StageKind,
    pub(crate) version: u32,
    pub(crate) description: String,
    pub(crate) config_schema: Option<Value>,
    pub(crate) default_config: Value,
    pub(crate) timeout_ms: Option<u64>,
    pub(crate) on_error: Option<OnError>,
}

impl StageSpec {
    /// A stage called `name` (lowercase letters, digits and `_`) of `kind`, version 1.
    pub fn new(name: &str, kind: StageKind) -> Self {
        Self {
            name: name.to_owned(),
            kind,
            version: 1,
            description: String::new(),
            config_schema: None,
            default_config: Value::Object(Default::default()),
            timeout_ms: None,
            on_error: None,
        }
    }

    /// The major version of its contract (the `v<major>` of its NATS subject).
    pub fn version(mut self, major: u32) -> Self {
        self.version = major;
        self
    }

    /// One line for operators.
    pub fn description(mut self, text: &str) -> Self {
        self.description = text.to_owned();
        self
    }

    /// The JSON Schema its registry config must satisfy.
    pub fn config_schema(mut self, schema: Value) -> Self {
        self.config_schema = Some(schema);
        self
    }

    /// The config a fresh registry entry gets.
    pub fn default_config(mut self, config: Value) -> Self {
        self.default_config = config;
        self
    }

    /// The timeout a fresh registry entry gets.
    pub fn timeout_ms(mut self, ms: u64) -> Self {
        self.timeout_ms = Some(ms);
        self
    }

    /// The failure mode a fresh registry entry gets (validators default to closed, others to
    /// closed as well unless set).
    pub fn on_error(mut self, mode: OnError) -> Self {
        self.on_error = Some(mode);
        self
    }

    /// Its name within the extension.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Its kind.
    pub fn kind(&self) -> StageKind {
        self.kind
    }
}

/// One stage an extension registered.
pub(crate) struct StageRegistration {
    pub(crate) spec: StageSpec,
    #[allow(dead_code, reason = "called by the pipeline engine")]
    pub(crate) f: StageFn,
}

impl fmt::Debug for StageRegistration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StageRegistration").field("spec", &self.spec).finish()
    }
}

impl StageRegistration {
    pub(crate) fn new<F, Fut>(spec: StageSpec, f: F) -> Self
    where
        F: Fn(Context, StageRequest) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = StageResult> + Send + 'static,
    {
        Self { spec, f: Arc::new(move |cx, req| Box::pin(f(cx, req))) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn envelope_round_trips_as_plain_json() {
        let req: StageRequest = serde_json::from_value(json!({
            "request_id": "r1", "pipeline": "chat", "stage": "guardrails.pii_guard", "attempt": 1,
            "deadline": "2026-12-01T12:00:00.250Z", "payload": "hi"
        }))
        .unwrap();
        assert_eq!(req.v, 1);
        assert_eq!(req.config, Value::Null);
        let back = serde_json::to_value(&req).unwrap();
        assert_eq!(back["deadline"], "2026-12-01T12:00:00.250Z");

        let res: StageResult =
            serde_json::from_value(json!({"outcome": "deny", "deny": {"code": "pii", "reason": "card"}}))
                .unwrap();
        assert_eq!(res, StageResult::deny("pii", "card"));
        assert!(serde_json::from_value::<StageResult>(json!({"outcome": "maybe"})).is_err());
    }

    #[test]
    fn check_refuses_malformed_results() {
        assert!(StageResult::modified(json!(1)).check(StageKind::Validator).is_err());
        assert!(StageResult::modified(json!(1)).check(StageKind::Pre).is_ok());
        let mut bad = StageResult::continue_();
        bad.outcome = Outcome::Deny;
        assert!(bad.check(StageKind::Validator).is_err());
        bad.outcome = Outcome::Error;
        assert!(bad.check(StageKind::Provider).is_err());
        assert_eq!("post".parse::<StageKind>(), Ok(StageKind::Post));
        assert!("middle".parse::<StageKind>().is_err());
    }
}
