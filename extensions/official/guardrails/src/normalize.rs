//! `normalize_text` (pre): Unicode NFKC, whitespace runs collapsed to one space, trimmed,
//! lowercased; each step can be turned off.

use annex_core::stage::StageResult;
use serde::Deserialize;
use serde_json::{Value, json};
use unicode_normalization::UnicodeNormalization;

use crate::config;
use crate::text;

/// The config of `normalize_text`.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NormalizeConfig {
    /// Unicode NFKC (compatibility composition: `ﬁ` → `fi`, full-width `Ａ` → `A`).
    pub nfkc: bool,
    /// Every run of Unicode whitespace becomes one space.
    pub collapse_whitespace: bool,
    /// No leading or trailing whitespace.
    pub trim: bool,
    /// Lowercase (Unicode).
    pub lowercase: bool,
    /// Where the text is in object payloads.
    pub fields: Vec<String>,
}

impl Default for NormalizeConfig {
    fn default() -> Self {
        Self {
            nfkc: true,
            collapse_whitespace: true,
            trim: true,
            lowercase: true,
            fields: text::default_fields(),
        }
    }
}

/// The JSON Schema of its config.
pub(crate) fn schema() -> Value {
    json!({
        "type": "object",
        "additionalProperties": false,
        "properties": {
            "nfkc": {"type": "boolean", "default": true},
            "collapse_whitespace": {"type": "boolean", "default": true},
            "trim": {"type": "boolean", "default": true},
            "lowercase": {"type": "boolean", "default": true},
            "fields": text::fields_schema(),
        }
    })
}

/// The default config.
pub(crate) fn defaults() -> Value {
    json!({"nfkc": true, "collapse_whitespace": true, "trim": true, "lowercase": true, "fields": text::DEFAULT_FIELDS})
}

/// One string, normalised as `config` says.
pub fn normalize(config: &NormalizeConfig, s: &str) -> String {
    let mut out: String = if config.nfkc { s.nfkc().collect() } else { s.to_owned() };
    if config.collapse_whitespace {
        let mut collapsed = String::with_capacity(out.len());
        let mut in_space = false;
        for c in out.chars() {
            if c.is_whitespace() {
                if !in_space {
                    collapsed.push(' ');
                }
                in_space = true;
            } else {
                collapsed.push(c);
                in_space = false;
            }
        }
        out = collapsed;
    }
    if config.trim {
        out = out.trim().to_owned();
    }
    if config.lowercase {
        out = out.to_lowercase();
    }
    out
}

/// The stage: `modified` with the normalised payload, `continue` when nothing changes.
pub fn normalize_text(config: &Value, payload: &Value) -> StageResult {
    let config: NormalizeConfig = match config::parse(config) {
        Ok(c) => c,
        Err(e) => return e.into(),
    };
    text::rewrite(payload, &config.fields, |s| normalize(&config, s))
}

#[cfg(test)]
mod tests {
    use super::*;
    use annex_core::stage::Outcome;

    #[test]
    fn trims_collapses_lowercases_and_composes() {
        let res = normalize_text(&Value::Null, &json!("  Hello\t\n  ＷＯＲＬＤ\u{00a0}ﬁne  "));
        assert_eq!(res, StageResult::modified(json!("hello world fine")));
        let res = normalize_text(&json!({"lowercase": false}), &json!({"text": " Hi  There ", "n": 1}));
        assert_eq!(res, StageResult::modified(json!({"text": "Hi There", "n": 1})));
    }

    #[test]
    fn an_already_normal_payload_continues() {
        assert_eq!(normalize_text(&Value::Null, &json!("fine")).outcome, Outcome::Continue);
        assert_eq!(normalize_text(&Value::Null, &json!(17)).outcome, Outcome::Continue);
    }

    #[test]
    fn a_bad_config_is_a_non_retryable_error() {
        let res = normalize_text(&json!({"lowercase": "yes"}), &json!("x"));
        let error = res.error.expect("error");
        assert_eq!((error.code.as_str(), error.retryable), ("bad_config", false));
        assert!(normalize_text(&json!({"shout": true}), &json!("x")).error.is_some());
    }
}
