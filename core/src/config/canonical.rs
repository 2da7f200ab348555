//! `config_hash`: the SHA-256 (lowercase hex) of a JSON value's RFC 8785 (JCS) canonical form,
//! so the same config hashes the same whatever its key order or number spelling. Sign-offs name
//! a site config by it; applied entity declarations are checksummed with it.

use sha2::{Digest, Sha256};

/// The hash a sign-off names. `serde_json::Value` always canonicalises (its numbers are finite).
pub fn config_hash(config: &serde_json::Value) -> String {
    let canonical =
        serde_json_canonicalizer::to_vec(config).unwrap_or_else(|_| config.to_string().into_bytes());
    Sha256::digest(&canonical).iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn key_order_and_number_spelling_do_not_change_the_hash() {
        let a: serde_json::Value = serde_json::from_str(r#"{"b": 1.0, "a": [1, "x"]}"#).expect("json");
        let b: serde_json::Value = serde_json::from_str(r#"{"a":[1,"x"],"b":1}"#).expect("json");
        assert_eq!(config_hash(&a), config_hash(&b));
        assert_ne!(config_hash(&a), config_hash(&json!({"a": [1, "x"], "b": 2})));
    }

    #[test]
    fn the_hash_is_sha256_of_the_canonical_text() {
        // sha256 of `{}`
        assert_eq!(
            config_hash(&json!({})),
            "44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"
        );
    }
}
