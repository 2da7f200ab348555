//! `mock` (provider): answers `{"echo": <payload>}` after `latency_ms`, failing (retryably) with
//! probability `failure_rate`: 0 never fails, 1 always does. For testing pipelines without an
//! upstream.

use std::time::Duration;

use annex_core::stage::{StageRequest, StageResult};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::config;

/// The config of `mock`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MockConfig {
    /// How long it takes to answer.
    pub latency_ms: u64,
    /// The probability of a retryable `mock_failure`, 0 to 1.
    pub failure_rate: f64,
}

/// The JSON Schema of its config.
pub(crate) fn schema() -> Value {
    json!({
        "type": "object",
        "additionalProperties": false,
        "properties": {
            "latency_ms": {"type": "integer", "minimum": 0, "maximum": 600000, "default": 0},
            "failure_rate": {"type": "number", "minimum": 0, "maximum": 1, "default": 0},
        }
    })
}

/// The default config.
pub(crate) fn defaults() -> Value {
    json!({"latency_ms": 0, "failure_rate": 0})
}

/// Whether this call fails: never at 0, always at 1, at random in between.
fn fails(rate: f64) -> bool {
    if rate <= 0.0 {
        false
    } else if rate >= 1.0 {
        true
    } else {
        fastrand::f64() < rate
    }
}

/// The stage. A latency beyond the request's deadline waits until the deadline and fails
/// (`deadline_exceeded`, not retryable: there is no time left for another try).
pub async fn mock(request: &StageRequest) -> StageResult {
    let config: MockConfig = match config::parse(&request.config) {
        Ok(c) => c,
        Err(e) => return e.into(),
    };
    if !(0.0..=1.0).contains(&config.failure_rate) {
        return StageResult::error("bad_config", false, "failure_rate must be between 0 and 1");
    }
    let latency = Duration::from_millis(config.latency_ms);
    let remaining = request.remaining();
    if latency > remaining {
        tokio::time::sleep(remaining).await;
        return StageResult::error(
            "deadline_exceeded",
            false,
            format!("latency {latency:?} is past the deadline"),
        );
    }
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    if fails(config.failure_rate) {
        return StageResult::error("mock_failure", true, "the mock provider failed, as configured");
    }
    StageResult::modified(json!({ "echo": request.payload }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tests::request;
    use annex_core::stage::Outcome;

    #[tokio::test]
    async fn echoes_or_fails_deterministically_at_the_extremes() {
        let res = mock(&request(json!({"q": 1}), Value::Null)).await;
        assert_eq!(res, StageResult::modified(json!({"echo": {"q": 1}})));
        for _ in 0..20 {
            assert_eq!(mock(&request(json!(1), json!({"failure_rate": 0}))).await.outcome, Outcome::Modified);
            let failed = mock(&request(json!(1), json!({"failure_rate": 1}))).await;
            let error = failed.error.expect("fails");
            assert_eq!((error.code.as_str(), error.retryable), ("mock_failure", true));
        }
        assert!(mock(&request(json!(1), json!({"failure_rate": 2}))).await.error.is_some());
    }

    #[tokio::test]
    async fn latency_past_the_deadline_fails_at_the_deadline() {
        let mut req = request(json!(1), json!({"latency_ms": 60000}));
        req.deadline = chrono::Utc::now() + chrono::Duration::milliseconds(50);
        let started = std::time::Instant::now();
        let res = mock(&req).await;
        assert_eq!(res.error.expect("error").code, "deadline_exceeded");
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "returned at the deadline, not after the latency"
        );
    }
}
