//! Finding personal data in text: credit card numbers (13–19 digits, spaces or dashes between
//! them, valid Luhn checksum), US social security numbers (`AAA-GG-SSSS` with the SSA's
//! validity rules), e-mail addresses and phone numbers (E.164 and common NANP formats).
//!
//! Regexes find candidates (ASCII digits only: the `regex` crate's `\d` would match every
//! Unicode digit), code checks them. Every regex here runs in linear time.

use std::ops::Range;
use std::sync::LazyLock;

use regex::Regex;
use serde::{Deserialize, Serialize};

/// A kind of personal data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Category {
    /// A payment card number with a valid Luhn checksum.
    CreditCard,
    /// A US social security number.
    Ssn,
    /// An e-mail address.
    Email,
    /// A phone number.
    Phone,
}

impl Category {
    /// Every category, in the order findings are reported.
    pub const ALL: [Category; 4] = [Category::CreditCard, Category::Ssn, Category::Email, Category::Phone];

    /// `credit_card`, `ssn`, `email`, `phone`: the finding code.
    pub fn code(self) -> &'static str {
        match self {
            Category::CreditCard => "credit_card",
            Category::Ssn => "ssn",
            Category::Email => "email",
            Category::Phone => "phone",
        }
    }

    /// For sentences: "a credit card number".
    pub fn noun(self) -> &'static str {
        match self {
            Category::CreditCard => "a credit card number",
            Category::Ssn => "a US social security number",
            Category::Email => "an e-mail address",
            Category::Phone => "a phone number",
        }
    }
}

/// One piece of personal data: its category and where it is (byte range).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Match {
    /// What it is.
    pub category: Category,
    /// Its bytes in the text.
    pub range: Range<usize>,
}

/// A run of ASCII digits with single spaces or dashes between them.
static DIGIT_RUN: LazyLock<Regex> = LazyLock::new(|| regex(r"[0-9](?:[ -]?[0-9])*"));
static EMAIL: LazyLock<Regex> = LazyLock::new(|| {
    regex(
        r"[A-Za-z0-9._%+-]+@[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)+",
    )
});
static PHONE: LazyLock<Regex> = LazyLock::new(|| {
    regex(concat!(
        r"\+[1-9][0-9]{7,14}",                                                 // E.164
        r"|(?:\+?1[ .-]?)?\([2-9][0-9]{2}\)[ .-]?[2-9][0-9]{2}[ .-]?[0-9]{4}", // (212) 555-0123
        r"|(?:\+?1[ .-]?)?[2-9][0-9]{2}[.-][2-9][0-9]{2}[.-][0-9]{4}",         // 212-555-0123, 212.555.0123
        r"|(?:\+?1 )?[2-9][0-9]{2} [2-9][0-9]{2} [0-9]{4}",                    // 212 555 0123
    ))
});

fn regex(pattern: &str) -> Regex {
    // The patterns are constants, checked by the tests.
    Regex::new(pattern).unwrap_or_else(|e| panic!("guardrails: bad built-in regex: {e}"))
}

/// Every piece of personal data in `text`, in text order, without overlaps (a card or SSN
/// wins over a phone number on the same digits).
pub fn scan(text: &str) -> Vec<Match> {
    let mut found = Vec::new();
    for m in DIGIT_RUN.find_iter(text) {
        // `+4915112345678` is a phone number, whatever its checksum.
        if !bounded(text, m.range()) || text[..m.start()].ends_with('+') {
            continue;
        }
        let run = m.as_str();
        if is_ssn(run) {
            found.push(Match { category: Category::Ssn, range: m.range() });
        } else if is_card(run) {
            found.push(Match { category: Category::CreditCard, range: m.range() });
        }
    }
    for m in EMAIL.find_iter(text) {
        if is_email(m.as_str()) {
            found.push(Match { category: Category::Email, range: m.range() });
        }
    }
    for m in PHONE.find_iter(text) {
        let overlaps = found.iter().any(|f| f.range.start < m.end() && m.start() < f.range.end);
        if !overlaps && bounded(text, m.range()) {
            found.push(Match { category: Category::Phone, range: m.range() });
        }
    }
    found.sort_by_key(|f| f.range.start);
    found
}

/// No ASCII digit or letter right before or after: `x4111…` or `…1111z` is not a number alone.
fn bounded(text: &str, range: Range<usize>) -> bool {
    let before = text[..range.start].chars().next_back();
    let after = text[range.end..].chars().next();
    let joins = |c: Option<char>| c.is_some_and(|c| c.is_ascii_alphanumeric());
    !joins(before) && !joins(after)
}

/// 13 to 19 digits (spaces or dashes between them allowed) with a valid Luhn checksum.
pub fn is_card(candidate: &str) -> bool {
    let digits: Vec<u32> = candidate.chars().filter_map(|c| c.to_digit(10)).collect();
    (13..=19).contains(&digits.len()) && luhn(&digits)
}

/// The Luhn checksum: from the right, every second digit doubled (minus 9 above 9), the sum a
/// multiple of 10.
pub fn luhn(digits: &[u32]) -> bool {
    let sum: u32 = digits
        .iter()
        .rev()
        .enumerate()
        .map(|(i, &d)| {
            if i % 2 == 1 {
                let d = d * 2;
                if d > 9 { d - 9 } else { d }
            } else {
                d
            }
        })
        .sum();
    !digits.is_empty() && sum.is_multiple_of(10)
}

/// `AAA-GG-SSSS`: area not 000, 666 or 900–999; group not 00; serial not 0000.
pub fn is_ssn(candidate: &str) -> bool {
    let b = candidate.as_bytes();
    let shape = b.len() == 11
        && b[3] == b'-'
        && b[6] == b'-'
        && b.iter().enumerate().all(|(i, c)| i == 3 || i == 6 || c.is_ascii_digit());
    if !shape {
        return false;
    }
    let (area, group, serial) = (&candidate[0..3], &candidate[4..6], &candidate[7..11]);
    let area_ok = area != "000" && area != "666" && !area.starts_with('9');
    area_ok && group != "00" && serial != "0000"
}

/// A candidate of the e-mail regex that is an address: no leading, trailing or doubled dot
/// in the local part, a top-level domain of two letters or more.
pub fn is_email(candidate: &str) -> bool {
    let Some((local, domain)) = candidate.rsplit_once('@') else { return false };
    let local_ok = !local.is_empty()
        && local.len() <= 64
        && !local.starts_with('.')
        && !local.ends_with('.')
        && !local.contains("..");
    let tld = domain.rsplit('.').next().unwrap_or_default();
    local_ok && tld.len() >= 2 && tld.chars().all(|c| c.is_ascii_alphabetic())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn categories(text: &str) -> Vec<Category> {
        scan(text).into_iter().map(|m| m.category).collect()
    }

    #[test]
    fn luhn_accepts_valid_numbers_only() {
        for valid in [
            "4111111111111111",
            "4111 1111 1111 1111",
            "5500-0000-0000-0004",
            "378282246310005",
            "6011000990139424",
        ] {
            assert!(is_card(valid), "{valid}");
        }
        for invalid in ["4111111111111112", "1234567890123", "411111111111", "41111111111111111111", "0000"] {
            assert!(!is_card(invalid), "{invalid}");
        }
        assert!(!luhn(&[]));
    }

    #[test]
    fn ssn_rules() {
        assert!(is_ssn("123-45-6789"));
        assert!(is_ssn("899-01-0001"));
        for invalid in [
            "000-12-3456",
            "666-12-3456",
            "900-12-3456",
            "999-12-3456",
            "123-00-4567",
            "123-45-0000",
            "123456789",
            "12-345-6789",
        ] {
            assert!(!is_ssn(invalid), "{invalid}");
        }
    }

    #[test]
    fn emails() {
        assert_eq!(categories("write to jane.doe+x@mail.example.com today"), vec![Category::Email]);
        assert!(categories("no .x@example.c or a@b").is_empty());
        assert!(!is_email("a..b@example.com"));
        assert!(!is_email(".a@example.com"));
    }

    #[test]
    fn phones() {
        for phone in [
            "+4915112345678",
            "(212) 555-0123",
            "212-555-0123",
            "212.555.0123",
            "+1 212 555 0123",
            "1-212-555-0123",
        ] {
            assert_eq!(categories(&format!("call {phone} now")), vec![Category::Phone], "{phone}");
        }
        assert!(categories("call 112-555-0123 or 2125550123x or version 1.2.3").is_empty());
    }

    #[test]
    fn cards_and_ssns_in_text() {
        let text = "card 4111 1111 1111 1111, ssn 123-45-6789, mail j@example.org";
        assert_eq!(categories(text), vec![Category::CreditCard, Category::Ssn, Category::Email]);
        let m = &scan(text)[0];
        assert_eq!(&text[m.range.clone()], "4111 1111 1111 1111");
    }

    #[test]
    fn a_digit_run_that_fails_luhn_passes() {
        assert!(categories("order 4111111111111112 shipped").is_empty());
        assert!(categories("id 12345678901234567").is_empty());
    }

    #[test]
    fn hostile_input_does_not_blow_up() {
        let long_digits = "9".repeat(1_000_000);
        assert!(categories(&long_digits).is_empty());
        let spaced = "1 ".repeat(500_000);
        assert!(categories(&spaced).is_empty());
        let ats = "a@".repeat(300_000);
        assert!(categories(&ats).is_empty());
        // Unicode digits (Arabic-Indic, full-width, Devanagari) are not ASCII digits: no match, no panic.
        let unicode = "٤١١١١١١١١١١١١١١١ ４１１１１１１１１１１１１１１１ ४१११";
        assert!(categories(unicode).is_empty());
        // Multi-byte characters right next to a match keep the byte ranges on char boundaries.
        let text = "é4111111111111111é";
        let found = scan(text);
        assert_eq!(found.len(), 1);
        assert_eq!(&text[found[0].range.clone()], "4111111111111111");
    }
}
