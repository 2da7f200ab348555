//! [`LimitsError`]: a rate limit or quota in the config that cannot be applied.

/// A rate limit or quota in the config that cannot be applied.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("extensions.{extension}.{key} in annex.toml {reason}")]
pub struct LimitsError {
    /// The extension.
    pub extension: String,
    /// The key under `[extensions.<name>]`, such as `rate_limit.burst`.
    pub key: &'static str,
    /// What is wrong and how to fix it.
    pub reason: String,
}
