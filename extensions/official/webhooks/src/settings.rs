//! The extension's config (`[extensions.webhooks] config = { … }`): its JSON Schema and the typed
//! settings the worker and the handlers read, fresh on every use so a live config change applies
//! without a restart.

use std::time::Duration;

use annex_core::Context;
use serde::Deserialize;
use serde_json::{Value, json};

/// The typed config, every field defaulted.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub(crate) struct Settings {
    /// Attempts per delivery before it is marked `failed`.
    pub(crate) max_attempts: u32,
    /// Delay before the second attempt; doubles with every further attempt.
    pub(crate) backoff_base_ms: u64,
    /// Ceiling of the delay between attempts.
    pub(crate) backoff_max_ms: u64,
    /// Time limit of one attempt (connect, send, response headers).
    pub(crate) timeout_ms: u64,
    /// How often an idle worker looks for due deliveries (deliveries enqueued on the same replica
    /// wake it at once).
    pub(crate) poll_interval_ms: u64,
    /// Allows targets on loopback, private, link-local and unique-local addresses.
    pub(crate) allow_private_targets: bool,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            max_attempts: 8,
            backoff_base_ms: 1_000,
            backoff_max_ms: 3_600_000,
            timeout_ms: 10_000,
            poll_interval_ms: 1_000,
            allow_private_targets: false,
        }
    }
}

impl Settings {
    /// The current config. The host validated it against [`schema`], so a shape error cannot
    /// happen in practice; should it, the defaults apply and the error is logged.
    pub(crate) fn load(cx: &Context) -> Self {
        if cx.config().is_null() {
            return Self::default();
        }
        cx.config_as::<Self>().unwrap_or_else(|e| {
            tracing::warn!(error = %e, "webhooks config unreadable; using the defaults");
            Self::default()
        })
    }

    pub(crate) fn timeout(&self) -> Duration {
        Duration::from_millis(self.timeout_ms)
    }

    pub(crate) fn poll_interval(&self) -> Duration {
        Duration::from_millis(self.poll_interval_ms)
    }

    /// How long a claimed delivery stays leased to one worker: one attempt's time limit plus a
    /// margin for recording it. A worker that dies mid-delivery loses the lease after this, and
    /// another worker retries the delivery.
    pub(crate) fn lease(&self) -> Duration {
        self.timeout() + Duration::from_secs(30)
    }

    /// The delay after failed attempt number `attempt` (1-based): `base · 2^(attempt-1)` capped
    /// at `backoff_max_ms`, of which the upper half is random ("equal jitter"), so receivers
    /// recovering from an outage are not hit by every sender at the same instant.
    pub(crate) fn backoff(&self, attempt: u32) -> Duration {
        let exp = attempt.saturating_sub(1).min(40);
        let full = self.backoff_base_ms.saturating_mul(1u64 << exp).min(self.backoff_max_ms).max(1);
        let half = full / 2;
        Duration::from_millis(full - half + fastrand::u64(0..=half))
    }
}

/// The JSON Schema of the config.
pub(crate) fn schema() -> Value {
    let d = Settings::default();
    json!({
        "type": "object",
        "additionalProperties": false,
        "properties": {
            "max_attempts": {
                "type": "integer", "minimum": 1, "maximum": 100, "default": d.max_attempts,
                "description": "attempts per delivery before it is marked failed"
            },
            "backoff_base_ms": {
                "type": "integer", "minimum": 1, "default": d.backoff_base_ms,
                "description": "delay before the second attempt; doubles per attempt, with jitter"
            },
            "backoff_max_ms": {
                "type": "integer", "minimum": 1, "default": d.backoff_max_ms,
                "description": "ceiling of the delay between attempts"
            },
            "timeout_ms": {
                "type": "integer", "minimum": 100, "maximum": 300000, "default": d.timeout_ms,
                "description": "time limit of one attempt"
            },
            "poll_interval_ms": {
                "type": "integer", "minimum": 10, "maximum": 60000, "default": d.poll_interval_ms,
                "description": "how often an idle worker looks for due deliveries"
            },
            "allow_private_targets": {
                "type": "boolean", "default": d.allow_private_targets,
                "description": "allow targets on loopback, private, link-local and unique-local addresses"
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::Settings;
    use std::time::Duration;

    #[test]
    fn backoff_doubles_with_jitter_in_the_upper_half_and_stops_at_the_ceiling() {
        let s = Settings { backoff_base_ms: 100, backoff_max_ms: 1_000, ..Settings::default() };
        for _ in 0..200 {
            let first = s.backoff(1);
            assert!(first >= Duration::from_millis(50) && first <= Duration::from_millis(100), "{first:?}");
            let third = s.backoff(3);
            assert!(third >= Duration::from_millis(200) && third <= Duration::from_millis(400), "{third:?}");
            let late = s.backoff(60);
            assert!(late >= Duration::from_millis(500) && late <= Duration::from_millis(1_000), "{late:?}");
        }
    }

    #[test]
    fn the_schema_accepts_the_defaults_and_documents_every_field() {
        let schema = super::schema();
        let props = schema["properties"].as_object().expect("properties");
        for key in [
            "max_attempts",
            "backoff_base_ms",
            "backoff_max_ms",
            "timeout_ms",
            "poll_interval_ms",
            "allow_private_targets",
        ] {
            assert!(props.contains_key(key), "{key} missing from the schema");
        }
        let parsed: Settings = serde_json::from_value(serde_json::json!({})).expect("defaults");
        assert_eq!(parsed, Settings::default());
    }
}
