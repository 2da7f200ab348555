//! One throwaway PostgreSQL per test process; one database per test.

use std::os::unix::fs::PermissionsExt;
use std::str::FromStr;
use std::sync::OnceLock;

use sqlx::postgres::PgConnectOptions;
use sqlx::{ConnectOptions, Connection};

use crate::db::error::DbError;
use crate::db::private_postgres::{Durability, PostgresError, PrivatePostgres};
use crate::host::error::HostError;

/// The server the tests of this process share.
#[derive(Debug)]
pub(crate) enum TestPostgres {
    /// A private server started for this process.
    Private {
        /// The server (its temporary directory is removed by the watchdog when the process exits).
        server: PrivatePostgres,
    },
    /// `DATABASE_URL` pointed at an existing server.
    External {
        /// The admin URL.
        url: String,
    },
}

static SHARED: OnceLock<Result<TestPostgres, String>> = OnceLock::new();

impl TestPostgres {
    /// The process-wide server, started on first use. Blocking on first call.
    pub(crate) fn shared() -> Result<&'static TestPostgres, HostError> {
        SHARED
            .get_or_init(|| Self::start().map_err(|e| e.to_string()))
            .as_ref()
            .map_err(|e| HostError::Internal(format!("test PostgreSQL could not start: {e}")))
    }

    fn start() -> Result<TestPostgres, PostgresError> {
        if let Some(url) = std::env::var("DATABASE_URL").ok().filter(|u| !u.is_empty()) {
            return Ok(TestPostgres::External { url });
        }
        let io = |source| PostgresError::Io { context: "cannot create the test directory".into(), source };
        let root = tempfile::Builder::new().prefix("annex-test-").tempdir_in("/tmp").map_err(io)?.keep();
        // The server may run as another user, who must be able to reach its directory.
        std::fs::set_permissions(&root, std::fs::Permissions::from_mode(0o755)).map_err(io)?;
        let server = PrivatePostgres::ensure(&root, Durability { throwaway: true })?;
        spawn_watchdog(&server, &root);
        Ok(TestPostgres::Private { server })
    }

    /// Creates a fresh, empty database and returns its URL.
    pub(crate) async fn create_database(&self) -> Result<String, HostError> {
        let name = format!("annex_test_{}", uuid::Uuid::new_v4().simple());
        let (admin, url) = match self {
            TestPostgres::Private { server } => (server.connect_options("postgres"), server.url(&name)),
            TestPostgres::External { url } => {
                let admin =
                    PgConnectOptions::from_str(url).map_err(|e| HostError::Database(DbError::Url(e)))?;
                let mut target = url::Url::parse(url).map_err(|e| HostError::Internal(e.to_string()))?;
                target.set_path(&name);
                (admin, target.to_string())
            }
        };
        let mut conn = admin.connect().await.map_err(|e| HostError::Database(DbError::Connect(e)))?;
        sqlx::query(&format!("create database {name}")).execute(&mut conn).await?;
        conn.close().await?;
        Ok(url)
    }
}

/// A fresh database on the process-wide test server.
pub async fn test_database_url() -> Result<String, HostError> {
    let pg = tokio::task::spawn_blocking(TestPostgres::shared)
        .await
        .map_err(|e| HostError::Internal(e.to_string()))??;
    pg.create_database().await
}

/// A detached shell that waits for this process to end, however it ends, then stops the server
/// immediately and removes its directory. Test processes never run destructors for statics.
fn spawn_watchdog(server: &PrivatePostgres, root: &std::path::Path) {
    let script = r#"
        while [ -d "/proc/$1" ]; do sleep 0.2; done
        pid=$(head -n 1 "$2/postmaster.pid" 2>/dev/null)
        if [ -n "$pid" ]; then
            kill -QUIT "$pid" 2>/dev/null
            while [ -d "/proc/$pid" ]; do sleep 0.1; done
        fi
        rm -rf "$3"
    "#;
    let args = [server.cluster_dir().as_os_str(), root.as_os_str()];
    super::spawn_watchdog("annex-test-watchdog", script, &args, "PostgreSQL");
}

/// A PostgreSQL server of its own (not the process-wide one), for tests that stop and start the
/// database under a running host: [`stop`](Self::stop) and [`start_again`](Self::start_again)
/// keep its socket and password, so every URL it handed out works again after a restart.
/// Removed (and stopped) when the test process exits, however it exits.
#[derive(Debug)]
pub struct PostgresServer {
    root: std::path::PathBuf,
    server: PrivatePostgres,
}

impl PostgresServer {
    /// Initialises and starts a throwaway cluster (a few seconds).
    pub async fn start() -> Result<Self, HostError> {
        tokio::task::spawn_blocking(|| {
            let io =
                |source| PostgresError::Io { context: "cannot create the test directory".into(), source };
            let root = tempfile::Builder::new().prefix("annex-pg-").tempdir_in("/tmp").map_err(io)?.keep();
            std::fs::set_permissions(&root, std::fs::Permissions::from_mode(0o755)).map_err(io)?;
            let server = PrivatePostgres::ensure(&root, Durability { throwaway: true })?;
            spawn_watchdog(&server, &root);
            Ok::<_, PostgresError>(Self { root, server })
        })
        .await
        .map_err(|e| HostError::Internal(e.to_string()))?
        .map_err(|e| HostError::Internal(format!("test PostgreSQL could not start: {e}")))
    }

    /// Creates a fresh, empty database on this server and returns its URL.
    pub async fn create_database(&self) -> Result<String, HostError> {
        let name = format!("annex_test_{}", uuid::Uuid::new_v4().simple());
        let mut conn = self
            .server
            .connect_options("postgres")
            .connect()
            .await
            .map_err(|e| HostError::Database(DbError::Connect(e)))?;
        sqlx::query(&format!("create database {name}")).execute(&mut conn).await?;
        conn.close().await?;
        Ok(self.server.url(&name))
    }

    /// Stops the server (fast shutdown: every session is cut, as in an outage).
    pub async fn stop(&self) -> Result<(), HostError> {
        let server = self.server.clone();
        tokio::task::spawn_blocking(move || server.stop())
            .await
            .map_err(|e| HostError::Internal(e.to_string()))?
            .map_err(|e| HostError::Internal(format!("test PostgreSQL could not stop: {e}")))
    }

    /// Starts it again on the same directory and socket; waits until it accepts connections.
    pub async fn start_again(&self) -> Result<(), HostError> {
        let root = self.root.clone();
        tokio::task::spawn_blocking(move || PrivatePostgres::ensure(&root, Durability { throwaway: true }))
            .await
            .map_err(|e| HostError::Internal(e.to_string()))?
            .map(drop)
            .map_err(|e| HostError::Internal(format!("test PostgreSQL could not start again: {e}")))
    }
}
