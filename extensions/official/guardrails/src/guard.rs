//! `pii_guard` (validator): per category, `block` (deny the run), `flag` (go on, with a finding)
//! or `off`. Neither the denial nor a finding ever contains the value found.

use std::collections::BTreeSet;

use annex_core::stage::{Finding, StageResult};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::pii::{self, Category};
use crate::{config, text};

/// What `pii_guard` does with one category.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// Deny the run (`pii_detected`).
    Block,
    /// Go on, with a finding.
    Flag,
    /// Do not look for it.
    Off,
}

/// The config of `pii_guard`.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GuardConfig {
    /// Card numbers (default `block`).
    pub credit_card: Action,
    /// US social security numbers (default `block`).
    pub ssn: Action,
    /// E-mail addresses (default `flag`).
    pub email: Action,
    /// Phone numbers (default `flag`).
    pub phone: Action,
    /// Where the text is in object payloads.
    pub fields: Vec<String>,
}

impl Default for GuardConfig {
    fn default() -> Self {
        Self {
            credit_card: Action::Block,
            ssn: Action::Block,
            email: Action::Flag,
            phone: Action::Flag,
            fields: text::default_fields(),
        }
    }
}

impl GuardConfig {
    fn action(&self, category: Category) -> Action {
        match category {
            Category::CreditCard => self.credit_card,
            Category::Ssn => self.ssn,
            Category::Email => self.email,
            Category::Phone => self.phone,
        }
    }
}

/// The JSON Schema of its config.
pub(crate) fn schema() -> Value {
    let action = |default: &str| json!({"enum": ["block", "flag", "off"], "default": default});
    json!({
        "type": "object",
        "additionalProperties": false,
        "properties": {
            "credit_card": action("block"),
            "ssn": action("block"),
            "email": action("flag"),
            "phone": action("flag"),
            "fields": text::fields_schema(),
        }
    })
}

/// The default config.
pub(crate) fn defaults() -> Value {
    json!({"credit_card": "block", "ssn": "block", "email": "flag", "phone": "flag", "fields": text::DEFAULT_FIELDS})
}

/// The stage: `deny` (`pii_detected`, the reason naming the blocked categories found) or
/// `continue`, with one finding per piece of personal data either way.
pub fn pii_guard(config: &Value, payload: &Value) -> StageResult {
    let config: GuardConfig = match config::parse(config) {
        Ok(c) => c,
        Err(e) => return e.into(),
    };
    let mut findings = Vec::new();
    let mut blocked = BTreeSet::new();
    for (pointer, text) in text::texts(payload, &config.fields) {
        for m in pii::scan(text) {
            let action = config.action(m.category);
            if action == Action::Off {
                continue;
            }
            if action == Action::Block {
                blocked.insert(m.category);
            }
            findings.push(Finding {
                code: m.category.code().to_owned(),
                message: format!(
                    "{} (bytes {}..{} of the text)",
                    m.category.noun(),
                    m.range.start,
                    m.range.end
                ),
                pointer: Some(pointer.clone()),
            });
        }
    }
    let mut result = if blocked.is_empty() {
        StageResult::continue_()
    } else {
        let nouns: Vec<&str> = blocked.iter().map(|c| c.noun()).collect();
        StageResult::deny("pii_detected", format!("the input contains personal data: found {}", join(&nouns)))
    };
    result.findings = findings;
    result
}

fn join(items: &[&str]) -> String {
    match items {
        [] => String::new(),
        [one] => (*one).to_owned(),
        [init @ .., last] => format!("{} and {last}", init.join(", ")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use annex_core::stage::Outcome;

    #[test]
    fn blocks_a_card_naming_the_category_never_the_value() {
        let res = pii_guard(&Value::Null, &json!("pay with 4111 1111 1111 1111 please"));
        assert_eq!(res.outcome, Outcome::Deny);
        let deny = res.deny.expect("denial");
        assert_eq!(deny.code, "pii_detected");
        assert!(deny.reason.contains("a credit card number"), "{}", deny.reason);
        let everything = serde_json::to_string(&res.findings).expect("json") + &deny.reason;
        assert!(!everything.contains("4111"), "{everything}");
        assert_eq!(res.findings[0].code, "credit_card");
    }

    #[test]
    fn flags_and_continues() {
        let res = pii_guard(&Value::Null, &json!({"messages": [{"content": "mail me at a@example.com"}]}));
        assert_eq!(res.outcome, Outcome::Continue);
        assert_eq!(res.findings.len(), 1);
        assert_eq!(res.findings[0].code, "email");
        assert_eq!(res.findings[0].pointer.as_deref(), Some("/messages/0/content"));
        assert!(!res.findings[0].message.contains("example"));
    }

    #[test]
    fn per_category_actions() {
        let text = json!("ssn 123-45-6789, call 212-555-0123");
        let res = pii_guard(&Value::Null, &text);
        assert_eq!(
            res.deny.expect("denied").reason,
            "the input contains personal data: found a US social security number"
        );
        assert_eq!(res.findings.len(), 2);
        let res = pii_guard(&json!({"ssn": "flag", "phone": "off"}), &text);
        assert_eq!(res.outcome, Outcome::Continue);
        assert_eq!(res.findings.len(), 1);
        let res = pii_guard(&json!({"phone": "block", "ssn": "block"}), &text);
        assert!(res.deny.expect("denied").reason.ends_with("a US social security number and a phone number"));
    }

    #[test]
    fn clean_input_continues_without_findings() {
        assert_eq!(
            pii_guard(&Value::Null, &json!("order 4111111111111112 shipped")),
            StageResult::continue_()
        );
        assert!(pii_guard(&json!({"email": "maybe"}), &json!("x")).error.is_some());
    }
}
