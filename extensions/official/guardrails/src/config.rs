//! A stage's config: the registry's JSON (or nothing: the defaults), parsed with serde; and
//! [`Fail`], a failure on its way to becoming a [`StageResult`].

use annex_core::stage::StageResult;
use serde::de::DeserializeOwned;
use serde_json::Value;

/// A stage failure (`StageResult::error`), small enough to travel in a `Result`.
#[derive(Debug)]
pub(crate) struct Fail {
    code: &'static str,
    retryable: bool,
    message: String,
}

impl Fail {
    pub(crate) fn new(code: &'static str, retryable: bool, message: impl Into<String>) -> Self {
        Self { code, retryable, message: message.into() }
    }
}

impl From<Fail> for StageResult {
    fn from(f: Fail) -> Self {
        StageResult::error(f.code, f.retryable, f.message)
    }
}

/// Parses `config`; `null` is the defaults. A config that does not parse is a non-retryable
/// `bad_config` error (the registry validates configs when written, so this is a remote caller
/// or a stale entry).
pub(crate) fn parse<T: DeserializeOwned + Default>(config: &Value) -> Result<T, Fail> {
    if config.is_null() {
        return Ok(T::default());
    }
    T::deserialize(config).map_err(|e| Fail::new("bad_config", false, format!("invalid stage config: {e}")))
}
