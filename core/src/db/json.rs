//! Reading `jsonb` columns. PostgreSQL can hold numbers serde_json cannot represent (say
//! `1e400`, written by another tool or an older annex); a query that decodes such a value as
//! JSON fails for every row it returns. So the host reads its `jsonb` columns as text
//! (`column::text`) and parses each value here: an unreadable value is that one row's problem,
//! reported as [`Unreadable`], never the whole list's.

use serde_json::Value;

/// A stored JSON value that cannot be read back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Unreadable(pub(crate) String);

impl std::fmt::Display for Unreadable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Parses one stored value.
pub(crate) fn parse(text: &str) -> Result<Value, Unreadable> {
    serde_json::from_str(text).map_err(|e| Unreadable(format!("the stored JSON cannot be read ({e})")))
}

/// Parses one stored value, replacing an unreadable one by `{"unreadable": "<why>"}` so it can
/// still be shown (audit details, figures).
pub(crate) fn parse_or_note(text: &str) -> Value {
    parse(text).unwrap_or_else(|e| serde_json::json!({ "unreadable": e.0 }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_number_beyond_f64_is_unreadable_not_a_panic() {
        assert!(parse(r#"{"x": 1e400}"#).is_err());
        assert_eq!(
            parse_or_note("{\"x\": 1e400}")["unreadable"].as_str().map(|s| s.contains("number")),
            Some(true)
        );
        assert_eq!(parse(r#"{"x": 1}"#), Ok(serde_json::json!({ "x": 1 })));
    }

    #[test]
    fn postgres_s_plain_decimal_of_the_largest_double_reads_back_exactly() {
        // jsonb stores 1.7976931348623157e308 as its 309 plain digits; float_roundtrip parses
        // them to the same double (the default fast path overflowed to "number out of range").
        let digits = format!("17976931348623157{}", "0".repeat(292));
        assert_eq!(parse(&digits).map(|v| v.as_f64()), Ok(Some(f64::MAX)));
        let tiny = format!("0.{}49406564584124654", "0".repeat(323));
        assert_eq!(parse(&tiny).map(|v| v.as_f64()), Ok(Some(5e-324)));
    }
}
