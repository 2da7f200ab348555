//! The host secret: the key from which per-extension database passwords are derived (HMAC), so
//! every replica that shares it agrees on them without storing any.

use std::fs::{self, OpenOptions};
use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};

use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::config::Config;

/// The host secret could not be read or created.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    /// `<data_dir>/secret` could not be read or written.
    #[error(
        "cannot {action} the host secret file {path}: {source}. Set [server] secret in annex.toml \
         (or ANNEX_SECRET) to the same value on every replica, or make the data directory writable"
    )]
    File {
        /// `read` or `write`.
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The configured secret is too short to derive passwords from.
    #[error("[server] secret (or ANNEX_SECRET) must be at least 16 characters; it has {len}")]
    TooShort {
        /// Its length.
        len: usize,
    },
}

/// The key every password annex derives comes from. Never logged.
#[derive(Clone)]
pub(crate) struct HostSecret(String);

impl std::fmt::Debug for HostSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("HostSecret(..)")
    }
}

const FILE_NAME: &str = "secret";
const MIN_LEN: usize = 16;

impl HostSecret {
    /// `[server] secret` / `ANNEX_SECRET` if set; else `<data_dir>/secret`, created (mode 0600)
    /// with a random value on first run and reused afterwards.
    pub(crate) fn load(config: &Config) -> Result<Self, SecretError> {
        if let Some(secret) = config.server.secret.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
            if secret.len() < MIN_LEN {
                return Err(SecretError::TooShort { len: secret.len() });
            }
            return Ok(Self(secret.to_owned()));
        }
        read_or_create(&config.data_dir.join(FILE_NAME)).map(Self)
    }

    /// Hex HMAC-SHA256 of `purpose` under the secret.
    pub(crate) fn derive(&self, purpose: &str) -> String {
        // HMAC accepts keys of any length; this cannot fail.
        let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(self.0.as_bytes()) else {
            unreachable!("HMAC-SHA256 takes keys of any length")
        };
        mac.update(purpose.as_bytes());
        mac.finalize().into_bytes().iter().map(|b| format!("{b:02x}")).collect()
    }

    #[cfg(test)]
    pub(crate) fn for_test(secret: &str) -> Self {
        Self(secret.to_owned())
    }
}

fn read_or_create(path: &Path) -> Result<String, SecretError> {
    match fs::read_to_string(path) {
        Ok(text) if !text.trim().is_empty() => return Ok(text.trim().to_owned()),
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(source) => return Err(SecretError::File { action: "read", path: path.to_owned(), source }),
    }
    let err = |source| SecretError::File { action: "write", path: path.to_owned(), source };
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir).map_err(err)?;
    }
    let secret = format!("{}{}", uuid::Uuid::new_v4().simple(), uuid::Uuid::new_v4().simple());
    // create_new: if another process on the same data dir wins the race, use its secret.
    match OpenOptions::new().write(true).create_new(true).mode(0o600).open(path) {
        Ok(mut f) => {
            f.write_all(secret.as_bytes()).map_err(err)?;
            tracing::info!(path = %path.display(), "generated the host secret (first run); every replica must share it");
            Ok(secret)
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            let text = fs::read_to_string(path).map_err(|source| SecretError::File {
                action: "read",
                path: path.to_owned(),
                source,
            })?;
            Ok(text.trim().to_owned())
        }
        Err(source) => Err(err(source)),
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt as _;

    use super::*;

    #[test]
    fn a_generated_secret_is_private_and_reused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = Config { data_dir: dir.path().to_owned(), ..Config::default() };
        let first = HostSecret::load(&config).expect("created");
        let second = HostSecret::load(&config).expect("reused");
        assert_eq!(first.derive("x"), second.derive("x"));
        let mode = fs::metadata(dir.path().join(FILE_NAME)).expect("file").permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    #[test]
    fn the_configured_secret_wins_and_must_be_long_enough() {
        let mut config = Config::default();
        config.server.secret = Some("0123456789abcdef".into());
        let a = HostSecret::load(&config).expect("configured");
        assert_eq!(a.derive("role"), HostSecret::for_test("0123456789abcdef").derive("role"));
        assert_ne!(a.derive("role"), a.derive("other"));
        config.server.secret = Some("short".into());
        assert!(HostSecret::load(&config).expect_err("too short").to_string().contains("16"));
    }
}
