//! `mask_pii` (post): masks personal data in the answer: `partial` keeps a hint (`j***@example.com`,
//! the last four digits of a card, `***-**-6789`), `redact` leaves a tag (`[email]`), `off`
//! leaves it.

use annex_core::stage::StageResult;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::pii::{self, Category};
use crate::{config, text};

/// How `mask_pii` masks one category.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mask {
    /// Keep a hint: the e-mail's first character and domain, a number's last four digits.
    Partial,
    /// Replace with `[<category>]`.
    Redact,
    /// Leave it.
    Off,
}

/// The config of `mask_pii`.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MaskConfig {
    /// E-mail addresses.
    pub email: Mask,
    /// Card numbers.
    pub credit_card: Mask,
    /// US social security numbers.
    pub ssn: Mask,
    /// Phone numbers.
    pub phone: Mask,
    /// Where the text is in object payloads.
    pub fields: Vec<String>,
}

impl Default for MaskConfig {
    fn default() -> Self {
        Self {
            email: Mask::Partial,
            credit_card: Mask::Partial,
            ssn: Mask::Partial,
            phone: Mask::Partial,
            fields: text::default_fields(),
        }
    }
}

impl MaskConfig {
    fn mask(&self, category: Category) -> Mask {
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
    let mask = json!({"enum": ["partial", "redact", "off"], "default": "partial"});
    json!({
        "type": "object",
        "additionalProperties": false,
        "properties": {
            "email": mask, "credit_card": mask, "ssn": mask, "phone": mask,
            "fields": text::fields_schema(),
        }
    })
}

/// The default config.
pub(crate) fn defaults() -> Value {
    json!({"email": "partial", "credit_card": "partial", "ssn": "partial", "phone": "partial", "fields": text::DEFAULT_FIELDS})
}

/// `text` with its personal data masked as `config` says.
pub fn mask_text(config: &MaskConfig, text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut at = 0;
    for m in pii::scan(text) {
        let how = config.mask(m.category);
        if how == Mask::Off {
            continue;
        }
        out.push_str(&text[at..m.range.start]);
        let value = &text[m.range.clone()];
        match (how, m.category) {
            (Mask::Redact, c) => {
                out.push('[');
                out.push_str(c.code());
                out.push(']');
            }
            (_, Category::Email) => out.push_str(&partial_email(value)),
            (_, _) => out.push_str(&keep_last_digits(value, 4)),
        }
        at = m.range.end;
    }
    out.push_str(&text[at..]);
    out
}

/// `jane@example.com` → `j***@example.com`.
fn partial_email(value: &str) -> String {
    match value.rsplit_once('@') {
        Some((local, domain)) => {
            let first = local.chars().next().map(String::from).unwrap_or_default();
            format!("{first}***@{domain}")
        }
        None => "[email]".to_owned(),
    }
}

/// Every digit but the last `keep` becomes `*`; separators stay.
fn keep_last_digits(value: &str, keep: usize) -> String {
    let total = value.chars().filter(char::is_ascii_digit).count();
    let mut seen = 0;
    value
        .chars()
        .map(|c| {
            if c.is_ascii_digit() {
                seen += 1;
                if seen + keep <= total { '*' } else { c }
            } else {
                c
            }
        })
        .collect()
}

/// The stage: `modified` with the masked payload, `continue` when there is nothing to mask.
pub fn mask_pii(config: &Value, payload: &Value) -> StageResult {
    let config: MaskConfig = match config::parse(config) {
        Ok(c) => c,
        Err(e) => return e.into(),
    };
    text::rewrite(payload, &config.fields, |s| mask_text(&config, s))
}

#[cfg(test)]
mod tests {
    use super::*;
    use annex_core::stage::Outcome;

    #[test]
    fn partial_masks_keep_a_hint() {
        let res = mask_pii(
            &Value::Null,
            &json!("jane@example.com paid 4111-1111-1111-1111, ssn 123-45-6789, tel (212) 555-0123."),
        );
        assert_eq!(
            res,
            StageResult::modified(json!(
                "j***@example.com paid ****-****-****-1111, ssn ***-**-6789, tel (***) ***-0123."
            ))
        );
    }

    #[test]
    fn redact_and_off() {
        let config = json!({"email": "redact", "credit_card": "off"});
        let res = mask_pii(&config, &json!({"text": "a@example.org 4111111111111111", "id": "x"}));
        assert_eq!(res, StageResult::modified(json!({"text": "[email] 4111111111111111", "id": "x"})));
    }

    #[test]
    fn nothing_to_mask_continues() {
        assert_eq!(mask_pii(&Value::Null, &json!("all clear")).outcome, Outcome::Continue);
        assert_eq!(mask_pii(&Value::Null, &json!({"answer": "a@example.org"})).outcome, Outcome::Continue);
    }
}
