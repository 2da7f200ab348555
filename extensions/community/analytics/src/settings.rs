//! The extension's config (`[extensions.analytics] config = { … }`) and its JSON Schema.

use std::time::Duration;

use serde::Deserialize;
use serde_json::{Value, json};

/// How the recorder buffers and writes page views.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    /// Write buffered page views at least this often (milliseconds).
    pub flush_interval_ms: u64,
    /// Write as soon as this many page views are buffered; also the rows per INSERT.
    pub batch_size: usize,
    /// Page views held in memory at most; beyond it new views are dropped and counted.
    pub buffer_capacity: usize,
    /// Requests whose path starts with one of these (whole segments) are not recorded.
    pub exclude_prefixes: Vec<String>,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            flush_interval_ms: 1000,
            batch_size: 500,
            buffer_capacity: 10_000,
            exclude_prefixes: vec!["/ext/analytics".to_owned()],
        }
    }
}

impl Settings {
    /// The flush interval as a duration.
    pub fn flush_interval(&self) -> Duration {
        Duration::from_millis(self.flush_interval_ms)
    }

    /// Whether `path` lies under one of the excluded prefixes (matched by whole segments, so
    /// `/ext/analytics` excludes `/ext/analytics/track` but not `/ext/analytics2`).
    pub fn excludes(&self, path: &str) -> bool {
        self.exclude_prefixes.iter().any(|prefix| {
            let prefix = prefix.trim_end_matches('/');
            prefix.is_empty()
                || path.strip_prefix(prefix).is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
        })
    }
}

/// The JSON Schema the host validates the config against.
pub fn schema() -> Value {
    json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "analytics",
        "type": "object",
        "additionalProperties": false,
        "properties": {
            "flush_interval_ms": {
                "description": "Write buffered page views at least this often (milliseconds).",
                "type": "integer", "minimum": 10, "maximum": 600000, "default": 1000
            },
            "batch_size": {
                "description": "Write as soon as this many page views are buffered; rows per INSERT.",
                "type": "integer", "minimum": 1, "maximum": 10000, "default": 500
            },
            "buffer_capacity": {
                "description": "Page views held in memory at most; when full, new views are dropped and counted.",
                "type": "integer", "minimum": 1, "maximum": 10000000, "default": 10000
            },
            "exclude_prefixes": {
                "description": "Request paths under these prefixes are not recorded.",
                "type": "array",
                "items": { "type": "string", "pattern": "^/" },
                "default": ["/ext/analytics"]
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::Settings;

    #[test]
    fn prefixes_exclude_whole_segments_only() {
        let s = Settings::default();
        assert!(s.excludes("/ext/analytics"));
        assert!(s.excludes("/ext/analytics/stats"));
        assert!(!s.excludes("/ext/analytics2/stats"));
        assert!(!s.excludes("/ext/shop/items/1"));
    }

    #[test]
    fn missing_keys_take_their_defaults() {
        let s: Settings = serde_json::from_value(serde_json::json!({ "batch_size": 7 })).unwrap();
        assert_eq!(s.batch_size, 7);
        assert_eq!(s.buffer_capacity, Settings::default().buffer_capacity);
    }
}
