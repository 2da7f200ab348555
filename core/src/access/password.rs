//! Passwords (argon2id, PHC strings) and personal API tokens (random, only their SHA-256 kept).

use argon2::Argon2;
use argon2::password_hash::rand_core::{OsRng, RngCore};
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use sha2::{Digest, Sha256};

use super::error::AccessError;

/// The prefix of every personal token, so a leaked one is recognisable (secret scanners).
pub(crate) const TOKEN_PREFIX: &str = "annex_op_";

/// Checks length rules: 12 to 1024 characters.
pub(crate) fn check_strength(password: &str) -> Result<(), AccessError> {
    let chars = password.chars().count();
    if chars < 12 || password.len() > 1024 {
        return Err(AccessError::WeakPassword);
    }
    Ok(())
}

/// An argon2id hash (default parameters: 19 MiB, 2 passes) with a fresh salt, as a PHC string.
pub(crate) fn hash(password: &str) -> Result<String, AccessError> {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| AccessError::Hashing(e.to_string()))
}

/// Whether `password` matches the PHC string `stored` (constant time inside argon2).
pub(crate) fn verify(password: &str, stored: &str) -> bool {
    PasswordHash::new(stored)
        .is_ok_and(|h| Argon2::default().verify_password(password.as_bytes(), &h).is_ok())
}

/// A new personal token: the prefix and 32 random bytes in hex. Shown once, never stored.
pub(crate) fn new_token() -> String {
    let mut bytes = [0u8; 32];
    OsRng.fill_bytes(&mut bytes);
    let mut token = String::with_capacity(TOKEN_PREFIX.len() + 64);
    token.push_str(TOKEN_PREFIX);
    for b in bytes {
        token.push_str(&format!("{b:02x}"));
    }
    token
}

/// What is stored of a token: its SHA-256 in hex (tokens are 256 random bits, so a fast hash
/// is enough and lets the lookup use an index).
pub(crate) fn token_hash(token: &str) -> String {
    Sha256::digest(token.as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hash_verifies_its_password_and_no_other() {
        let stored = hash("correct horse battery").expect("hash");
        assert!(stored.starts_with("$argon2id$"), "{stored}");
        assert!(verify("correct horse battery", &stored));
        assert!(!verify("correct horse batterY", &stored));
        assert!(!verify("correct horse battery", "not a phc string"));
    }

    #[test]
    fn tokens_are_random_prefixed_and_hashed_to_hex() {
        let (a, b) = (new_token(), new_token());
        assert_ne!(a, b);
        assert!(a.starts_with(TOKEN_PREFIX) && a.len() == TOKEN_PREFIX.len() + 64);
        let h = token_hash(&a);
        assert_eq!(h.len(), 64);
        assert!(h.chars().all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()));
    }

    #[test]
    fn short_passwords_are_refused() {
        assert!(matches!(check_strength("short"), Err(AccessError::WeakPassword)));
        assert!(check_strength("twelve chars").is_ok());
    }
}
