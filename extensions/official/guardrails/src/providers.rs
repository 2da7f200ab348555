//! The LLM providers: `openai_compatible` (`POST {base_url}/chat/completions`) and `anthropic`
//! (the Messages API, `POST {base_url}/v1/messages`). The payload's text is sent as one user
//! message, or its `messages` as they are; the answer's text becomes the payload `{"text": …}`.
//!
//! Errors: HTTP 429 and 5xx, a connection that fails and a timeout are retryable; any other
//! 4xx, a missing API key and an answer without text are not. A call never outlives the
//! request's deadline: its timeout is the smaller of `timeout_ms` and the time left.

use std::time::Duration;

use annex_core::stage::{StageRequest, StageResult};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::config::{self, Fail};

/// Looks an environment variable up (the process environment in the host; a map in tests).
pub type EnvLookup<'a> = &'a (dyn Fn(&str) -> Option<String> + Send + Sync);

/// The config of `openai_compatible`.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OpenAiConfig {
    /// The API's base URL, without `/chat/completions`.
    pub base_url: String,
    /// The model.
    pub model: String,
    /// The environment variable that holds the API key (sent as a bearer token).
    pub api_key_env: String,
    /// The call's timeout (the request's deadline may cut it shorter).
    pub timeout_ms: u64,
    /// `max_tokens` of the request, if set.
    pub max_tokens: Option<u32>,
    /// A system message put before the payload's messages, if set.
    pub system: Option<String>,
}

impl Default for OpenAiConfig {
    fn default() -> Self {
        Self {
            base_url: "https://api.openai.com/v1".into(),
            model: "gpt-4o-mini".into(),
            api_key_env: "OPENAI_API_KEY".into(),
            timeout_ms: 30_000,
            max_tokens: None,
            system: None,
        }
    }
}

/// The config of `anthropic`.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AnthropicConfig {
    /// The API's base URL, without `/v1/messages`.
    pub base_url: String,
    /// The model.
    pub model: String,
    /// The environment variable that holds the API key (sent as `x-api-key`).
    pub api_key_env: String,
    /// The call's timeout (the request's deadline may cut it shorter).
    pub timeout_ms: u64,
    /// `max_tokens` of the request (the Messages API requires one).
    pub max_tokens: u32,
    /// The system prompt, if set (a `system` message of the payload is used too).
    pub system: Option<String>,
}

impl Default for AnthropicConfig {
    fn default() -> Self {
        Self {
            base_url: "https://api.anthropic.com".into(),
            model: "claude-3-5-haiku-latest".into(),
            api_key_env: "ANTHROPIC_API_KEY".into(),
            timeout_ms: 30_000,
            max_tokens: 1024,
            system: None,
        }
    }
}

fn common_schema(base_url: &str, model: &str, key_env: &str, max_tokens_default: Option<u32>) -> Value {
    let mut max_tokens = json!({"type": "integer", "minimum": 1});
    if let Some(d) = max_tokens_default {
        max_tokens["default"] = json!(d);
    }
    json!({
        "type": "object",
        "additionalProperties": false,
        "properties": {
            "base_url": {"type": "string", "pattern": "^https?://", "default": base_url},
            "model": {"type": "string", "minLength": 1, "default": model},
            "api_key_env": {"type": "string", "pattern": "^[A-Za-z_][A-Za-z0-9_]*$", "default": key_env},
            "timeout_ms": {"type": "integer", "minimum": 1, "maximum": 600000, "default": 30000},
            "max_tokens": max_tokens,
            "system": {"type": "string"},
        }
    })
}

/// The JSON Schema of `openai_compatible`'s config.
pub(crate) fn openai_schema() -> Value {
    let d = OpenAiConfig::default();
    common_schema(&d.base_url, &d.model, &d.api_key_env, None)
}

/// The default config of `openai_compatible`.
pub(crate) fn openai_defaults() -> Value {
    let d = OpenAiConfig::default();
    json!({"base_url": d.base_url, "model": d.model, "api_key_env": d.api_key_env, "timeout_ms": d.timeout_ms})
}

/// The JSON Schema of `anthropic`'s config.
pub(crate) fn anthropic_schema() -> Value {
    let d = AnthropicConfig::default();
    common_schema(&d.base_url, &d.model, &d.api_key_env, Some(d.max_tokens))
}

/// The default config of `anthropic`.
pub(crate) fn anthropic_defaults() -> Value {
    let d = AnthropicConfig::default();
    json!({"base_url": d.base_url, "model": d.model, "api_key_env": d.api_key_env, "timeout_ms": d.timeout_ms, "max_tokens": d.max_tokens})
}

/// The chat messages of a payload: its `messages`, or its text (a string payload or `text`) as
/// one user message.
fn messages(payload: &Value) -> Result<Vec<Value>, Fail> {
    if let Some(messages) = payload.get("messages").and_then(Value::as_array) {
        return Ok(messages.clone());
    }
    let text = payload.as_str().or_else(|| payload.get("text").and_then(Value::as_str));
    match text {
        Some(text) => Ok(vec![json!({"role": "user", "content": text})]),
        None => Err(Fail::new(
            "bad_payload",
            false,
            "the payload has no text: send a string, {\"text\": …} or {\"messages\": […]}",
        )),
    }
}

/// The API key from `env`, or a non-retryable error naming the variable.
fn api_key(env: EnvLookup<'_>, var: &str) -> Result<String, Fail> {
    env(var).filter(|k| !k.is_empty()).ok_or_else(|| {
        Fail::new("missing_api_key", false, format!("the API key is not set: set environment variable {var}"))
    })
}

/// The timeout of this call: `timeout_ms`, cut to the time left before the deadline.
fn timeout(request: &StageRequest, timeout_ms: u64) -> Result<Duration, Fail> {
    let left = request.remaining();
    if left.is_zero() {
        return Err(Fail::new("deadline_exceeded", false, "the request's deadline has passed"));
    }
    Ok(left.min(Duration::from_millis(timeout_ms)))
}

/// Sends the request and returns the answer's JSON, or the error as a stage result.
async fn send(builder: reqwest::RequestBuilder, timeout: Duration, what: &str) -> Result<Value, Fail> {
    let response = builder.timeout(timeout).send().await.map_err(|e| transport_error(&e, what))?;
    let status = response.status();
    if !status.is_success() {
        let body = response.text().await.unwrap_or_default();
        let detail: String = body.chars().take(300).collect();
        let message = format!("{what} answered HTTP {}: {detail}", status.as_u16());
        return Err(if status.as_u16() == 429 {
            Fail::new("upstream_rate_limited", true, message)
        } else if status.is_server_error() {
            Fail::new("upstream_unavailable", true, message)
        } else {
            Fail::new("upstream_rejected", false, message)
        });
    }
    response.json::<Value>().await.map_err(|e| {
        if e.is_timeout() {
            transport_error(&e, what)
        } else {
            Fail::new("bad_upstream_answer", false, format!("{what} answered with invalid JSON: {e}"))
        }
    })
}

fn transport_error(e: &reqwest::Error, what: &str) -> Fail {
    if e.is_timeout() {
        Fail::new("upstream_timeout", true, format!("{what} did not answer in time"))
    } else if e.is_connect() {
        Fail::new("upstream_unreachable", true, format!("cannot connect to {what}: {e}"))
    } else {
        Fail::new("upstream_failed", true, format!("request to {what} failed: {e}"))
    }
}

fn answer(text: Option<&str>, what: &str, path: &str) -> StageResult {
    match text {
        Some(text) => StageResult::modified(json!({ "text": text })),
        None => StageResult::error("bad_upstream_answer", false, format!("{what}'s answer has no {path}")),
    }
}

/// The `openai_compatible` stage.
pub async fn openai_compatible(
    http: &reqwest::Client,
    request: &StageRequest,
    env: EnvLookup<'_>,
) -> StageResult {
    let run = async {
        let config: OpenAiConfig = config::parse(&request.config)?;
        let mut messages = messages(&request.payload)?;
        if let Some(system) = &config.system {
            messages.insert(0, json!({"role": "system", "content": system}));
        }
        let key = api_key(env, &config.api_key_env)?;
        let timeout = timeout(request, config.timeout_ms)?;
        let mut body = json!({"model": config.model, "messages": messages});
        if let Some(max) = config.max_tokens {
            body["max_tokens"] = json!(max);
        }
        let url = format!("{}/chat/completions", config.base_url.trim_end_matches('/'));
        let answer_json = send(http.post(&url).bearer_auth(key).json(&body), timeout, &url).await?;
        let text = answer_json.pointer("/choices/0/message/content").and_then(Value::as_str);
        Ok::<_, Fail>(answer(text, &url, "choices[0].message.content"))
    };
    run.await.unwrap_or_else(StageResult::from)
}

/// The `anthropic` stage.
pub async fn anthropic(http: &reqwest::Client, request: &StageRequest, env: EnvLookup<'_>) -> StageResult {
    let run = async {
        let config: AnthropicConfig = config::parse(&request.config)?;
        // The Messages API takes the system prompt apart from the messages.
        let (system, messages): (Vec<Value>, Vec<Value>) = messages(&request.payload)?
            .into_iter()
            .partition(|m| m.get("role").and_then(Value::as_str) == Some("system"));
        let system: Vec<&str> = config
            .system
            .iter()
            .map(String::as_str)
            .chain(system.iter().filter_map(|m| m.get("content").and_then(Value::as_str)))
            .collect();
        let key = api_key(env, &config.api_key_env)?;
        let timeout = timeout(request, config.timeout_ms)?;
        let mut body = json!({"model": config.model, "max_tokens": config.max_tokens, "messages": messages});
        if !system.is_empty() {
            body["system"] = json!(system.join("\n\n"));
        }
        let url = format!("{}/v1/messages", config.base_url.trim_end_matches('/'));
        let builder =
            http.post(&url).header("x-api-key", key).header("anthropic-version", "2023-06-01").json(&body);
        let answer_json = send(builder, timeout, &url).await?;
        let text = answer_json
            .get("content")
            .and_then(Value::as_array)
            .and_then(|blocks| blocks.iter().find(|b| b.get("type").and_then(Value::as_str) == Some("text")))
            .and_then(|b| b.get("text"))
            .and_then(Value::as_str);
        Ok::<_, Fail>(answer(text, &url, "content[0].text"))
    };
    run.await.unwrap_or_else(StageResult::from)
}
