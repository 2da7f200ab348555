//! [`Storage`]: an extension's files under `<data_dir>/ext/<name>/`, within its
//! `quotas.storage_bytes`, never outside its directory.

use std::io;
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::Ordering;

use std::sync::Arc;

use crate::extension::permissions::{self, Grants, PermissionError};
use crate::limits::quota::Limits;

/// A storage call that was refused or failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StorageError {
    /// The extension lacks permission `storage`.
    #[error(transparent)]
    Permission(#[from] PermissionError),
    /// The path is absolute, empty, climbs out with `..`, or resolves outside the directory.
    #[error("storage path `{path}` of extension `{extension}` is refused: {reason}")]
    InvalidPath {
        /// The extension.
        extension: String,
        /// The path as given.
        path: String,
        /// Why.
        reason: &'static str,
    },
    /// The write would take the directory over `quotas.storage_bytes`.
    #[error(
        "writing `{path}` would take extension `{extension}` to {would_use} bytes of storage, over \
         its quota of {limit} bytes; free space or raise quotas.storage_bytes in \
         [extensions.{extension}]"
    )]
    QuotaExceeded {
        /// The extension.
        extension: String,
        /// The path being written.
        path: String,
        /// The directory's size had the write gone through.
        would_use: u64,
        /// The quota.
        limit: u64,
    },
    /// The file system said no.
    #[error("storage of extension `{extension}`: cannot {action} `{path}`: {source}")]
    Io {
        /// The extension.
        extension: String,
        /// The path as given.
        path: String,
        /// read, write, remove, measure.
        action: &'static str,
        /// The cause.
        #[source]
        source: io::Error,
    },
}

/// The extension's own directory. Get it with [`Context::storage`](crate::Context::storage); paths are relative to it.
///
/// ```no_run
/// # async fn f(cx: annex_core::Context) -> Result<(), annex_core::extension::StorageError> {
/// let storage = cx.storage();
/// storage.write("reports/2024.json", b"{}".as_slice()).await?;
/// let bytes = storage.read("reports/2024.json").await?;
/// assert_eq!(bytes, b"{}");
/// assert!(storage.write("../other/x", b"no".as_slice()).await.is_err());
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct Storage {
    scope: StorageScope,
}

/// What storage needs of its extension's context: who it is, where its directory is, its quota
/// and grants, and the lock that keeps the quota accounting exact.
#[derive(Debug, Clone)]
pub(crate) struct StorageScope {
    pub(crate) extension: String,
    pub(crate) dir: PathBuf,
    pub(crate) limits: Arc<Limits>,
    pub(crate) grants: Arc<Grants>,
    pub(crate) host_pool: Option<sqlx::PgPool>,
    /// `true` once the directory's size was measured.
    pub(crate) lock: Arc<tokio::sync::Mutex<bool>>,
}

struct Op {
    extension: String,
    path: String,
    root: PathBuf,
    relative: PathBuf,
}

impl Op {
    fn invalid(&self, reason: &'static str) -> StorageError {
        StorageError::InvalidPath { extension: self.extension.clone(), path: self.path.clone(), reason }
    }

    fn io(&self, action: &'static str, source: io::Error) -> StorageError {
        StorageError::Io { extension: self.extension.clone(), path: self.path.clone(), action, source }
    }

    fn target(&self) -> PathBuf {
        self.root.join(&self.relative)
    }

    /// Refuses a target whose existing part resolves outside the root (a symlink planted
    /// inside), or that is itself a symlink.
    fn confine(&self) -> Result<PathBuf, StorageError> {
        std::fs::create_dir_all(&self.root).map_err(|e| self.io("create", e))?;
        let root = self.root.canonicalize().map_err(|e| self.io("resolve", e))?;
        let target = self.target();
        let mut existing = target.parent().map(Path::to_path_buf).unwrap_or_else(|| self.root.clone());
        while !existing.exists() {
            match existing.parent() {
                Some(p) => existing = p.to_path_buf(),
                None => break,
            }
        }
        let resolved = existing.canonicalize().map_err(|e| self.io("resolve", e))?;
        if !resolved.starts_with(&root) {
            return Err(self.invalid("it resolves outside the extension's storage directory"));
        }
        if target.symlink_metadata().is_ok_and(|m| m.file_type().is_symlink()) {
            return Err(self.invalid("it is a symbolic link"));
        }
        Ok(target)
    }

    fn size_of(&self, target: &Path) -> Result<u64, StorageError> {
        match target.symlink_metadata() {
            Ok(m) if m.is_file() => Ok(m.len()),
            Ok(_) => Err(self.invalid("it is a directory")),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(0),
            Err(e) => Err(self.io("inspect", e)),
        }
    }
}

fn dir_size(dir: &Path) -> io::Result<u64> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(e),
    };
    let mut total = 0;
    for entry in entries {
        let entry = entry?;
        let meta = entry.path().symlink_metadata()?;
        if meta.is_dir() {
            total += dir_size(&entry.path())?;
        } else if meta.is_file() {
            total += meta.len();
        }
    }
    Ok(total)
}

/// Accepts only relative paths made of plain names (`.` is ignored).
fn relative(path: &str) -> Result<PathBuf, &'static str> {
    let mut out = PathBuf::new();
    for component in Path::new(path).components() {
        match component {
            Component::Normal(name) => out.push(name),
            Component::CurDir => {}
            Component::ParentDir => return Err("`..` would leave the extension's storage directory"),
            Component::RootDir | Component::Prefix(_) => {
                return Err("it is absolute; give a path relative to the storage directory");
            }
        }
    }
    if out.as_os_str().is_empty() {
        return Err("it names no file");
    }
    Ok(out)
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, StorageError> + Send + 'static,
) -> Result<T, StorageError> {
    match tokio::task::spawn_blocking(f).await {
        Ok(result) => result,
        Err(e) => Err(StorageError::Io {
            extension: String::new(),
            path: String::new(),
            action: "run",
            source: io::Error::other(e.to_string()),
        }),
    }
}

impl Storage {
    pub(crate) fn new(scope: StorageScope) -> Self {
        Self { scope }
    }

    fn op(&self, path: &str) -> Result<Op, StorageError> {
        permissions::require(
            self.scope.extension.as_str(),
            permissions::STORAGE,
            &self.scope.grants,
            self.scope.host_pool.as_ref(),
        )?;
        let extension = self.scope.extension.as_str().to_owned();
        let relative = relative(path).map_err(|reason| StorageError::InvalidPath {
            extension: extension.clone(),
            path: path.to_owned(),
            reason,
        })?;
        Ok(Op { extension, path: path.to_owned(), root: self.scope.dir.as_path().to_owned(), relative })
    }

    /// Measures the directory once per run; later calls keep the figure up to date.
    async fn measured(&self, scanned: &mut bool) -> Result<u64, StorageError> {
        let used = &self.scope.limits.storage_used;
        if !*scanned {
            let root = self.scope.dir.as_path().to_owned();
            let extension = self.scope.extension.as_str().to_owned();
            let size = blocking(move || {
                dir_size(&root).map_err(|source| StorageError::Io {
                    extension,
                    path: ".".into(),
                    action: "measure",
                    source,
                })
            })
            .await?;
            used.store(size, Ordering::Relaxed);
            *scanned = true;
        }
        Ok(used.load(Ordering::Relaxed))
    }

    /// Writes `data` to `path` (creating directories), replacing the file atomically. Refused
    /// when the directory would exceed `quotas.storage_bytes`; the old file is then untouched.
    pub async fn write(&self, path: &str, data: impl Into<Vec<u8>>) -> Result<(), StorageError> {
        let op = self.op(path)?;
        let data = data.into();
        let mut scanned = self.scope.lock.lock().await;
        let used = self.measured(&mut scanned).await?;
        let quota = self.scope.limits.storage_quota();
        let now = blocking(move || {
            let target = op.confine()?;
            let old = op.size_of(&target)?;
            let would_use = used.saturating_sub(old).saturating_add(data.len() as u64);
            if let Some(limit) = quota.filter(|limit| would_use > *limit) {
                return Err(StorageError::QuotaExceeded {
                    extension: op.extension,
                    path: op.path,
                    would_use,
                    limit,
                });
            }
            if let Some(parent) = target.parent() {
                std::fs::create_dir_all(parent).map_err(|e| op.io("create", e))?;
            }
            let mut tmp = target.clone().into_os_string();
            tmp.push(".annex-tmp");
            std::fs::write(&tmp, &data).map_err(|e| op.io("write", e))?;
            std::fs::rename(&tmp, &target).map_err(|e| op.io("write", e))?;
            Ok(would_use)
        })
        .await?;
        self.scope.limits.storage_used.store(now, Ordering::Relaxed);
        Ok(())
    }

    /// Reads a file.
    pub async fn read(&self, path: &str) -> Result<Vec<u8>, StorageError> {
        let op = self.op(path)?;
        blocking(move || {
            let target = op.confine()?;
            std::fs::read(&target).map_err(|e| op.io("read", e))
        })
        .await
    }

    /// Removes a file; a missing file is not an error.
    pub async fn remove(&self, path: &str) -> Result<(), StorageError> {
        let op = self.op(path)?;
        let mut scanned = self.scope.lock.lock().await;
        let used = self.measured(&mut scanned).await?;
        let now = blocking(move || {
            let target = op.confine()?;
            let old = op.size_of(&target)?;
            match std::fs::remove_file(&target) {
                Ok(()) => Ok(used.saturating_sub(old)),
                Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(used),
                Err(e) => Err(op.io("remove", e)),
            }
        })
        .await?;
        self.scope.limits.storage_used.store(now, Ordering::Relaxed);
        Ok(())
    }

    /// Bytes the directory holds.
    pub async fn used(&self) -> Result<u64, StorageError> {
        permissions::require(
            self.scope.extension.as_str(),
            permissions::STORAGE,
            &self.scope.grants,
            self.scope.host_pool.as_ref(),
        )?;
        let mut scanned = self.scope.lock.lock().await;
        self.measured(&mut scanned).await
    }
}

#[cfg(test)]
mod tests {
    use super::relative;

    #[test]
    fn only_plain_relative_paths_are_accepted() {
        assert_eq!(relative("a/./b.txt").expect("plain"), std::path::PathBuf::from("a/b.txt"));
        assert!(relative("../x").is_err());
        assert!(relative("a/../../x").is_err());
        assert!(relative("/etc/passwd").is_err());
        assert!(relative("").is_err());
        assert!(relative(".").is_err());
    }
}
