//! A private PostgreSQL server run from the machine's server binaries: the zero-config default.
//!
//! Layout under the data dir: `postgres/` is the cluster (and holds its Unix socket),
//! `postgres.password` the superuser password (0600), `postgres.lock` serialises set-up between
//! annex processes. The server listens on its socket only and uses SCRAM password auth. Started
//! as root, annex runs it as the unprivileged `postgres` user, because PostgreSQL refuses root.

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use nix::unistd::{Gid, Uid, User};
use sqlx::postgres::PgConnectOptions;

/// The superuser annex creates in its private cluster.
const SUPERUSER: &str = "annex";
/// Unix socket paths are limited to 107 bytes; `/.s.PGSQL.5432` takes 15.
const MAX_SOCKET_DIR: usize = 90;

/// What went wrong running the private PostgreSQL.
#[derive(Debug, thiserror::Error)]
pub enum PostgresError {
    /// No server binaries anywhere annex looks.
    #[error(
        "no PostgreSQL server binaries (initdb, pg_ctl) found on PATH, via `pg_config --bindir`, \
         or under /usr/lib/postgresql/*/bin. Install them (Debian/Ubuntu: `apt-get install \
         postgresql`; Fedora: `dnf install postgresql-server`; macOS: `brew install postgresql`) \
         or set DATABASE_URL to use an existing server"
    )]
    BinariesNotFound,
    /// Running as root with nobody to drop to.
    #[error(
        "annex runs as root and PostgreSQL refuses to; no unprivileged `postgres` user exists to \
         run it as. Create one (`useradd --system postgres`), run annex as an ordinary user, or \
         set DATABASE_URL"
    )]
    NoUnprivilegedUser,
    /// The data directory path is too long for a Unix socket.
    #[error(
        "the private PostgreSQL directory {path} is too long to hold a Unix socket (max \
         {MAX_SOCKET_DIR} bytes); set data_dir (or ANNEX_DATA_DIR) to a shorter path"
    )]
    PathTooLong {
        /// The directory.
        path: PathBuf,
    },
    /// A file operation failed.
    #[error("{context}: {source}")]
    Io {
        /// What annex was doing.
        context: String,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// `initdb` or `pg_ctl` failed.
    #[error("{step} failed: {detail}")]
    Command {
        /// The command.
        step: String,
        /// Its output, or the server log's tail.
        detail: String,
    },
}

fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> PostgresError {
    let context = context.into();
    move |source| PostgresError::Io { context, source }
}

/// Tuning for a cluster that is thrown away (tests): no fsync, more connections.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Durability {
    pub(crate) throwaway: bool,
}

/// The exclusive lock on `<data_dir>/postgres.lock`, held while one annex process initialises,
/// starts, attaches to or stops the private server. The kernel releases it when the file is
/// closed, however the process ends.
#[derive(Debug)]
pub(crate) struct SetupLock {
    _file: File,
}

impl SetupLock {
    /// The lock of the server whose cluster is `cluster` (`<data_dir>/postgres`).
    pub(crate) fn for_cluster(cluster: &Path) -> Result<Self, PostgresError> {
        Self::acquire(cluster.parent().unwrap_or(cluster))
    }

    /// Blocks until the lock of `data_dir` is ours.
    fn acquire(data_dir: &Path) -> Result<Self, PostgresError> {
        let path = data_dir.join("postgres.lock");
        let file = File::create(&path).map_err(io(format!("cannot create {}", path.display())))?;
        file.lock().map_err(io(format!("cannot lock {}", path.display())))?;
        Ok(Self { _file: file })
    }
}

/// A private PostgreSQL cluster that annex started or attached to.
#[derive(Debug, Clone)]
pub(crate) struct PrivatePostgres {
    cluster: PathBuf,
    bin: PathBuf,
    owner: Option<(Uid, Gid)>,
    password: String,
    started_here: bool,
}

impl PrivatePostgres {
    /// Finds the server binaries, initialises `<data_dir>/postgres` if needed, and starts the
    /// server unless another process already runs it. Blocking: call from `spawn_blocking`.
    #[cfg(feature = "testkit")]
    pub(crate) fn ensure(data_dir: &Path, durability: Durability) -> Result<Self, PostgresError> {
        Self::ensure_locked(data_dir, durability).map(|(pg, _lock)| pg)
    }

    /// [`ensure`](Self::ensure), returning the set-up lock still held: until the caller has a
    /// session on the server (and so counts as a user of it), no other annex process may decide
    /// it is the last one and stop the server.
    pub(crate) fn ensure_locked(
        data_dir: &Path,
        durability: Durability,
    ) -> Result<(Self, SetupLock), PostgresError> {
        let bin = find_binaries()?;
        let owner = unprivileged_owner()?;
        fs::create_dir_all(data_dir).map_err(io(format!("cannot create {}", data_dir.display())))?;
        let data_dir =
            fs::canonicalize(data_dir).map_err(io(format!("cannot resolve {}", data_dir.display())))?;
        let cluster = data_dir.join("postgres");
        if cluster.as_os_str().len() > MAX_SOCKET_DIR {
            return Err(PostgresError::PathTooLong { path: cluster });
        }
        let lock = SetupLock::acquire(&data_dir)?;

        let password = read_or_create_password(&data_dir.join("postgres.password"))?;
        let mut pg = Self { cluster, bin, owner, password, started_here: false };
        if !pg.cluster.join("PG_VERSION").exists() {
            tracing::info!(dir = %pg.cluster.display(), "initialising private PostgreSQL (first run)");
            pg.initdb(&data_dir, durability)?;
        }
        if !pg.is_running() {
            pg.start()?;
            pg.started_here = true;
        } else {
            tracing::info!(dir = %pg.cluster.display(), "attached to the running private PostgreSQL");
        }
        Ok((pg, lock))
    }

    /// Connection options for `database` over the private socket.
    pub(crate) fn connect_options(&self, database: &str) -> PgConnectOptions {
        PgConnectOptions::new()
            .socket(&self.cluster)
            .username(SUPERUSER)
            .password(&self.password)
            .database(database)
    }

    /// A `postgres://` URL for `database` over the private socket.
    #[cfg_attr(not(feature = "testkit"), allow(dead_code))]
    pub(crate) fn url(&self, database: &str) -> String {
        format!(
            "postgres://{SUPERUSER}:{}@localhost/{database}?host={}",
            self.password,
            self.cluster.display()
        )
    }

    /// Whether this process started the server (rather than attaching to a running one).
    pub(crate) fn started_here(&self) -> bool {
        self.started_here
    }

    /// The cluster directory.
    #[cfg_attr(not(feature = "testkit"), allow(dead_code))]
    pub(crate) fn cluster_dir(&self) -> &Path {
        &self.cluster
    }

    fn command(&self, program: &str) -> Command {
        let mut cmd = Command::new(self.bin.join(program));
        cmd.current_dir("/").env_remove("PGDATA").env("LC_ALL", "C");
        if let Some((uid, gid)) = self.owner {
            cmd.uid(uid.as_raw()).gid(gid.as_raw());
        }
        cmd
    }

    fn chown(&self, path: &Path) -> Result<(), PostgresError> {
        if let Some((uid, gid)) = self.owner {
            std::os::unix::fs::chown(path, Some(uid.as_raw()), Some(gid.as_raw()))
                .map_err(io(format!("cannot hand {} to the postgres user", path.display())))?;
        }
        Ok(())
    }

    fn initdb(&self, data_dir: &Path, durability: Durability) -> Result<(), PostgresError> {
        fs::create_dir_all(&self.cluster).map_err(io(format!("cannot create {}", self.cluster.display())))?;
        fs::set_permissions(&self.cluster, fs::Permissions::from_mode(0o700))
            .map_err(io("cannot restrict the cluster directory"))?;
        self.chown(&self.cluster)?;
        let pwfile = data_dir.join("postgres.pwfile");
        write_private(&pwfile, &self.password)?;
        self.chown(&pwfile)?;
        let mut cmd = self.command("initdb");
        cmd.arg("-D").arg(&self.cluster).args([
            "-U",
            SUPERUSER,
            "-A",
            "scram-sha-256",
            "-E",
            "UTF8",
            "--locale=C",
        ]);
        cmd.arg(format!("--pwfile={}", pwfile.display()));
        if durability.throwaway {
            cmd.arg("--no-sync");
        }
        let out = cmd.output();
        let _ = fs::remove_file(&pwfile);
        check("initdb", out.map_err(io("cannot run initdb"))?)?;

        let mut conf = String::from(
            "\n# written by annex: private server, Unix socket only\nlisten_addresses = ''\nunix_socket_permissions = 0700\n",
        );
        if durability.throwaway {
            conf.push_str(
                "fsync = off\nsynchronous_commit = off\nfull_page_writes = off\nmax_connections = 400\n",
            );
        }
        let conf_path = self.cluster.join("postgresql.conf");
        let mut f =
            OpenOptions::new().append(true).open(&conf_path).map_err(io("cannot open postgresql.conf"))?;
        f.write_all(conf.as_bytes()).map_err(io("cannot write postgresql.conf"))?;
        Ok(())
    }

    fn is_running(&self) -> bool {
        self.command("pg_ctl")
            .arg("status")
            .arg("-D")
            .arg(&self.cluster)
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false)
    }

    fn start(&self) -> Result<(), PostgresError> {
        let socket_dir = self.cluster.display().to_string();
        if socket_dir.contains('\'') {
            return Err(PostgresError::Command {
                step: "pg_ctl start".into(),
                detail: "the data directory path must not contain a single quote".into(),
            });
        }
        let log = self.cluster.join("server.log");
        let out = self
            .command("pg_ctl")
            .arg("start")
            .args(["-w", "-t", "60", "-D"])
            .arg(&self.cluster)
            .arg("-l")
            .arg(&log)
            .arg("-o")
            .arg(format!("-k '{socket_dir}'"))
            .output()
            .map_err(io("cannot run pg_ctl"))?;
        if out.status.success() {
            tracing::info!(dir = %self.cluster.display(), "private PostgreSQL started");
            return Ok(());
        }
        if self.is_running() {
            // Another annex process won the race to start it.
            return Ok(());
        }
        Err(PostgresError::Command { step: "pg_ctl start".into(), detail: tail(&log) })
    }

    /// Stops the server (fast shutdown: open sessions are ended). Blocking.
    pub(crate) fn stop(&self) -> Result<(), PostgresError> {
        let out = self
            .command("pg_ctl")
            .arg("stop")
            .args(["-w", "-t", "60", "-m", "fast", "-D"])
            .arg(&self.cluster)
            .output()
            .map_err(io("cannot run pg_ctl"))?;
        check("pg_ctl stop", out)?;
        tracing::info!(dir = %self.cluster.display(), "private PostgreSQL stopped");
        Ok(())
    }
}

fn check(step: &str, out: Output) -> Result<(), PostgresError> {
    if out.status.success() {
        return Ok(());
    }
    let mut detail = String::from_utf8_lossy(&out.stderr).trim().to_owned();
    if detail.is_empty() {
        detail = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    }
    Err(PostgresError::Command { step: step.to_owned(), detail })
}

fn tail(log: &Path) -> String {
    let text = fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    let start = lines.len().saturating_sub(15);
    format!("server log {}:\n{}", log.display(), lines[start..].join("\n"))
}

fn unprivileged_owner() -> Result<Option<(Uid, Gid)>, PostgresError> {
    if !Uid::effective().is_root() {
        return Ok(None);
    }
    match User::from_name("postgres") {
        Ok(Some(user)) => Ok(Some((user.uid, user.gid))),
        _ => Err(PostgresError::NoUnprivilegedUser),
    }
}

fn write_private(path: &Path, text: &str) -> Result<(), PostgresError> {
    let mut f = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .map_err(io(format!("cannot write {}", path.display())))?;
    f.write_all(text.as_bytes()).map_err(io(format!("cannot write {}", path.display())))
}

fn read_or_create_password(path: &Path) -> Result<String, PostgresError> {
    if let Ok(mut f) = File::open(path) {
        let mut s = String::new();
        f.read_to_string(&mut s).map_err(io(format!("cannot read {}", path.display())))?;
        let s = s.trim().to_owned();
        if !s.is_empty() {
            return Ok(s);
        }
    }
    let password = format!("{}{}", uuid::Uuid::new_v4().simple(), uuid::Uuid::new_v4().simple());
    write_private(path, &password)?;
    Ok(password)
}

/// The directory holding `initdb` and `pg_ctl`: PATH, then `pg_config --bindir`, then the
/// newest `/usr/lib/postgresql/*/bin`.
pub(crate) fn find_binaries() -> Result<PathBuf, PostgresError> {
    find_binaries_in(std::env::var_os("PATH"), Path::new("pg_config"), Path::new("/usr/lib/postgresql"))
}

fn find_binaries_in(
    path_var: Option<std::ffi::OsString>,
    pg_config: &Path,
    lib_root: &Path,
) -> Result<PathBuf, PostgresError> {
    let has_both = |dir: &Path| dir.join("initdb").is_file() && dir.join("pg_ctl").is_file();
    if let Some(dir) = path_var.and_then(|p| std::env::split_paths(&p).find(|d| has_both(d))) {
        return Ok(dir);
    }
    if let Ok(out) = Command::new(pg_config).arg("--bindir").output() {
        let dir = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        if out.status.success() && has_both(&dir) {
            return Ok(dir);
        }
    }
    let mut versions: Vec<(u32, PathBuf)> = fs::read_dir(lib_root)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let version = e.file_name().to_str()?.parse::<u32>().ok()?;
            let bin = e.path().join("bin");
            has_both(&bin).then_some((version, bin))
        })
        .collect();
    versions.sort();
    versions.pop().map(|(_, dir)| dir).ok_or(PostgresError::BinariesNotFound)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_binaries_give_one_error_that_says_how_to_install_them() {
        let empty = tempfile::tempdir().expect("tempdir");
        let err = find_binaries_in(
            Some(empty.path().as_os_str().to_owned()),
            &empty.path().join("no-pg-config"),
            empty.path(),
        )
        .expect_err("nothing to find");
        let msg = err.to_string();
        assert!(matches!(err, PostgresError::BinariesNotFound));
        assert!(msg.contains("apt-get install postgresql") && msg.contains("DATABASE_URL"), "{msg}");
    }

    #[test]
    fn the_newest_versioned_install_wins() {
        let root = tempfile::tempdir().expect("tempdir");
        for v in ["9", "15", "13"] {
            let bin = root.path().join(v).join("bin");
            fs::create_dir_all(&bin).expect("mkdir");
            fs::write(bin.join("initdb"), "").expect("write");
            fs::write(bin.join("pg_ctl"), "").expect("write");
        }
        let found = find_binaries_in(None, &root.path().join("no-pg-config"), root.path()).expect("found");
        assert_eq!(found, root.path().join("15").join("bin"));
    }
}
