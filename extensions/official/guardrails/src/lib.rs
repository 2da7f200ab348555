//! The official `guardrails` extension: compiled-in pipeline stages.
//!
//! | stage (registry id `guardrails.<name>`) | kind | what it does |
//! |---|---|---|
//! | `normalize_text` | pre | NFKC, whitespace collapsed, trimmed, lowercased |
//! | `pii_guard` | validator | denies (`pii_detected`) or flags card numbers (Luhn), SSNs, e-mails, phones |
//! | `mask_pii` | post | masks them in the answer (`j***@example.com`, last four digits) |
//! | `mock` | provider | echoes the payload, with configurable latency and failure rate |
//! | `openai_compatible` | provider | `POST {base_url}/chat/completions` |
//! | `anthropic` | provider | the Messages API, `POST {base_url}/v1/messages` |
//!
//! The stages are plain functions ([`normalize_text`], [`pii_guard`], [`mask_pii`], [`mock`],
//! [`openai_compatible`], [`anthropic`]; [`call`] dispatches the ones without I/O by name), so a
//! remote stage can serve exactly the same logic (examples/remote_stage.rs does, over NATS).
//!
//! ```
//! use annex_core::stage::Outcome;
//! use serde_json::{Value, json};
//!
//! let res = annex_ext_guardrails::pii_guard(&Value::Null, &json!("card 4111 1111 1111 1111"));
//! assert_eq!(res.outcome, Outcome::Deny);
//! assert_eq!(res.deny.unwrap().code, "pii_detected");
//!
//! let res = annex_ext_guardrails::mask_pii(&Value::Null, &json!("mail jane@example.com"));
//! assert_eq!(res.payload, Some(json!("mail j***@example.com")));
//! ```
//!
//! The extension needs no permission to run; the two LLM providers need `http:outbound` when
//! called (without it they fail with `permission_denied`, not retryable).
#![warn(missing_docs)]

mod config;
mod guard;
mod mask;
mod mock;
mod normalize;
pub mod pii;
mod providers;
mod text;

#[cfg(test)]
mod providers_tests;

use std::sync::{Arc, OnceLock};

use annex_core::stage::{OnError, StageKind, StageRequest, StageResult, StageSpec};
use annex_core::{Context, Extension, Metadata, Registrar, permission};
use serde_json::Value;

pub use guard::{Action, GuardConfig, pii_guard};
pub use mask::{Mask, MaskConfig, mask_pii, mask_text};
pub use mock::{MockConfig, mock};
pub use normalize::{NormalizeConfig, normalize, normalize_text};
pub use providers::{AnthropicConfig, EnvLookup, OpenAiConfig, anthropic, openai_compatible};

/// The stages that need nothing but their request (no HTTP, no host), with their kinds: what a
/// remote copy of this extension can serve.
pub const PURE_STAGES: [(&str, StageKind); 4] = [
    ("normalize_text", StageKind::Pre),
    ("pii_guard", StageKind::Validator),
    ("mask_pii", StageKind::Post),
    ("mock", StageKind::Provider),
];

/// Runs the pure stage `stage` (`normalize_text` or `guardrails.normalize_text`, …) on
/// `request`; `None` for a stage that is not one of [`PURE_STAGES`].
pub async fn call(stage: &str, request: &StageRequest) -> Option<StageResult> {
    let name = stage.strip_prefix("guardrails.").unwrap_or(stage);
    Some(match name {
        "normalize_text" => normalize_text(&request.config, &request.payload),
        "pii_guard" => pii_guard(&request.config, &request.payload),
        "mask_pii" => mask_pii(&request.config, &request.payload),
        "mock" => mock(request).await,
        _ => return None,
    })
}

/// The default NATS subject of a remote copy of a stage: `annex.stage.<kind>.<name>.v1`.
pub fn subject(kind: StageKind, name: &str) -> String {
    format!("annex.stage.{kind}.{name}.v1")
}

/// One stage's declaration.
struct Declared {
    name: &'static str,
    kind: StageKind,
    description: &'static str,
    schema: Value,
    defaults: Value,
    timeout_ms: u64,
}

fn declared() -> Vec<Declared> {
    let d = |name, kind, description, schema, defaults, timeout_ms| Declared {
        name,
        kind,
        description,
        schema,
        defaults,
        timeout_ms,
    };
    vec![
        d(
            "normalize_text",
            StageKind::Pre,
            "Unicode NFKC, whitespace collapsed, trimmed, lowercased",
            normalize::schema(),
            normalize::defaults(),
            100,
        ),
        d(
            "pii_guard",
            StageKind::Validator,
            "Denies or flags credit card numbers, US SSNs, e-mail addresses and phone numbers",
            guard::schema(),
            guard::defaults(),
            100,
        ),
        d(
            "mask_pii",
            StageKind::Post,
            "Masks credit card numbers, US SSNs, e-mail addresses and phone numbers",
            mask::schema(),
            mask::defaults(),
            100,
        ),
        d(
            "mock",
            StageKind::Provider,
            "Echoes the payload; configurable latency and failure rate",
            mock::schema(),
            mock::defaults(),
            1000,
        ),
        d(
            "openai_compatible",
            StageKind::Provider,
            "An OpenAI-compatible chat completions API",
            providers::openai_schema(),
            providers::openai_defaults(),
            30_000,
        ),
        d(
            "anthropic",
            StageKind::Provider,
            "Anthropic's Messages API",
            providers::anthropic_schema(),
            providers::anthropic_defaults(),
            30_000,
        ),
    ]
}

fn spec(d: Declared) -> StageSpec {
    let spec = StageSpec::new(d.name, d.kind)
        .description(d.description)
        .config_schema(d.schema)
        .default_config(d.defaults)
        .timeout_ms(d.timeout_ms);
    // A guardrail that cannot run blocks; the others are closed too unless an operator opens them.
    spec.on_error(OnError::Closed)
}

/// The guardrails extension.
#[derive(Debug, Default)]
pub struct Guardrails {
    http: Arc<OnceLock<reqwest::Client>>,
}

fn process_env(var: &str) -> Option<String> {
    std::env::var(var).ok()
}

#[annex_core::async_trait]
impl Extension for Guardrails {
    fn metadata(&self) -> Metadata {
        Metadata::new("guardrails", env!("CARGO_PKG_VERSION"))
            .description("Pipeline stages: text normalisation, PII guard and masking, mock and LLM providers")
    }

    fn register(&self, r: &mut Registrar) {
        for d in declared() {
            let name = d.name;
            let spec = spec(d);
            match name {
                "openai_compatible" | "anthropic" => {
                    let http = self.http.clone();
                    r.stage(spec, move |cx: Context, req: StageRequest| {
                        let http = http.clone();
                        async move {
                            if cx.require_permission(permission::HTTP_OUTBOUND).is_err() {
                                return StageResult::error(
                                    "permission_denied",
                                    false,
                                    "guardrails needs permission `http:outbound` for the LLM providers; add it to \
                                     [extensions.guardrails] permissions in annex.toml",
                                );
                            }
                            let http = http.get_or_init(reqwest::Client::new);
                            if name == "anthropic" {
                                anthropic(http, &req, &process_env).await
                            } else {
                                openai_compatible(http, &req, &process_env).await
                            }
                        }
                    });
                }
                _ => {
                    r.stage(spec, move |_cx: Context, req: StageRequest| async move {
                        call(name, &req).await.unwrap_or_else(|| {
                            StageResult::error(
                                "unknown_stage",
                                false,
                                format!("guardrails has no stage `{name}`"),
                            )
                        })
                    });
                }
            }
        }
    }
}

annex_core::register_extension!(Guardrails);

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// A request with 5 s left.
    pub(crate) fn request(payload: Value, config: Value) -> StageRequest {
        StageRequest {
            v: 1,
            request_id: "r-1".into(),
            pipeline: "test".into(),
            stage: "guardrails.test".into(),
            attempt: 1,
            deadline: chrono::Utc::now() + chrono::Duration::seconds(5),
            payload,
            config,
            context: Value::Null,
        }
    }

    #[test]
    fn every_default_config_satisfies_its_schema() {
        let all = declared();
        assert_eq!(all.len(), 6);
        for d in all {
            let validator =
                jsonschema::validator_for(&d.schema).unwrap_or_else(|e| panic!("{}: {e}", d.name));
            let errors: Vec<String> = validator.iter_errors(&d.defaults).map(|e| e.to_string()).collect();
            assert!(errors.is_empty(), "{}: {errors:?}", d.name);
            assert!(validator.is_valid(&json!({})), "{}: an empty config means the defaults", d.name);
            assert!(!validator.is_valid(&json!({"no_such_key": 1})), "{}", d.name);
        }
    }

    #[tokio::test]
    async fn call_runs_the_pure_stages_by_name() {
        let req = request(json!("  Hi  "), Value::Null);
        assert_eq!(call("normalize_text", &req).await, Some(StageResult::modified(json!("hi"))));
        assert_eq!(call("guardrails.normalize_text", &req).await, Some(StageResult::modified(json!("hi"))));
        assert_eq!(call("openai_compatible", &req).await, None);
        assert_eq!(call("nope", &req).await, None);
        for (name, _) in PURE_STAGES {
            assert!(call(name, &req).await.is_some(), "{name}");
        }
        assert_eq!(subject(StageKind::Validator, "pii_guard"), "annex.stage.validator.pii_guard.v1");
    }
}
