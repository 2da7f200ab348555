//! Opening the host's database: a given URL, or the private PostgreSQL under the data dir.

use std::str::FromStr;
use std::time::Duration;

use sqlx::PgPool;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{ConnectOptions, Connection};

use crate::config::Config;
use crate::db::error::DbError;
use crate::db::host_migrations::{HOST_SCOPE, host_migrations};
use crate::db::migrate;
use crate::db::private_postgres::{Durability, PostgresError, PrivatePostgres, SetupLock};

/// The host's connection pool, and the private server if annex runs one.
#[derive(Debug)]
pub(crate) struct Database {
    pub(crate) pool: PgPool,
    /// How the host connects; extension pools derive theirs from it (other user, same server).
    pub(crate) options: PgConnectOptions,
    private: Option<PrivateServer>,
}

/// Every annex process tags its sessions so the last one out can tell it is the last.
fn application_name() -> String {
    format!("annex:{}", std::process::id())
}

impl Database {
    /// Connects (starting the private server if no URL is configured) and applies the host's
    /// own migrations. If anything fails after the private server was started or attached to,
    /// it is let go of again (stopped unless another annex process uses it).
    pub(crate) async fn open(config: &Config) -> Result<Self, DbError> {
        let (options, started) = match &config.database.url {
            Some(url) => (PgConnectOptions::from_str(url).map_err(DbError::Url)?, None),
            None => {
                let dir = config.data_dir.clone();
                let (pg, lock) = tokio::task::spawn_blocking(move || {
                    PrivatePostgres::ensure_locked(&dir, Durability::default())
                })
                .await
                .map_err(|e| PostgresError::Command {
                    step: "starting the private PostgreSQL".into(),
                    detail: e.to_string(),
                })??;
                (pg.connect_options("postgres"), Some((pg, lock)))
            }
        };
        // NOTICEs such as "schema already exists, skipping" are noise in operators' logs.
        let options =
            options.application_name(&application_name()).options([("client_min_messages", "warning")]);
        let mut private = started.map(|(pg, lock)| PrivateServer {
            pg: Some(pg),
            setup_lock: Some(lock),
            options: options.clone(),
        });
        // From here on `private` is dropped on every error path, and its Drop lets go of the server.
        let pool = PgPoolOptions::new()
            .max_connections(config.database.max_connections)
            .acquire_timeout(Duration::from_secs(10))
            .connect_with(options.clone())
            .await
            .map_err(DbError::Connect)?;
        // The pool holds a session now, so other processes count this one as a user.
        if let Some(server) = &mut private {
            server.setup_lock = None;
        }
        migrate::apply(&pool, HOST_SCOPE, &host_migrations()).await?;
        Ok(Self { pool, options, private })
    }

    /// Closes the pool; stops the private server if no other annex process still uses it.
    pub(crate) async fn close(self) {
        let Database { pool, private, .. } = self;
        pool.close().await;
        if let Some(mut server) = private {
            server.release().await;
        }
    }
}

/// The private server as this process uses it. Letting go of it (`release`) stops it unless
/// another annex process has a session on it. `Database::close` releases it on the orderly
/// path; on every other path (a failed start, an early return, a panic) `Drop` does, so no
/// error path can leave a server running that nobody uses.
#[derive(Debug)]
struct PrivateServer {
    /// `None` once released.
    pg: Option<PrivatePostgres>,
    /// Held from set-up until this process has a session on the server.
    setup_lock: Option<SetupLock>,
    /// How this process connects; `release` counts the other users on a session of its own.
    options: PgConnectOptions,
}

impl PrivateServer {
    async fn release(&mut self) {
        let Some(pg) = self.pg.take() else { return };
        let held = self.setup_lock.take();
        // Stopping or not is decided under the set-up lock, so no process can attach between
        // the count and the stop.
        let lock = match held {
            Some(lock) => Some(lock),
            None => {
                let cluster = pg.cluster_dir().to_owned();
                let locked = tokio::task::spawn_blocking(move || SetupLock::for_cluster(&cluster))
                    .await
                    .map_err(|e| e.to_string())
                    .and_then(|locked| locked.map_err(|e| e.to_string()));
                match locked {
                    Ok(lock) => Some(lock),
                    Err(e) => {
                        tracing::warn!(error = %e, "deciding whether to stop the private PostgreSQL without its set-up lock");
                        None
                    }
                }
            }
        };
        let others = other_processes(&self.options).await;
        match others {
            Ok(0) => {}
            Ok(others) => {
                let what = if others == 1 {
                    "another annex process uses it"
                } else {
                    "other annex processes use it"
                };
                tracing::info!(others, "private PostgreSQL left running: {what}");
                return;
            }
            // Nobody else can be counted: stop it only if this process started it.
            Err(e) if pg.started_here() => {
                tracing::warn!(error = %e, "cannot count the other users of the private PostgreSQL; stopping the server this process started");
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot count the other users of the private PostgreSQL; leaving it running");
                return;
            }
        }
        let stopped = tokio::task::spawn_blocking(move || {
            let stopped = pg.stop();
            drop(lock);
            stopped
        })
        .await;
        match stopped {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::error!(error = %e, "could not stop the private PostgreSQL"),
            Err(e) => tracing::error!(error = %e, "could not stop the private PostgreSQL"),
        }
    }
}

impl Drop for PrivateServer {
    fn drop(&mut self) {
        if self.pg.is_none() {
            return;
        }
        // Drop may run on a runtime thread, where nothing may block on a runtime: release on a
        // thread of its own, with a runtime of its own, and wait for it.
        let mut server = PrivateServer {
            pg: self.pg.take(),
            setup_lock: self.setup_lock.take(),
            options: self.options.clone(),
        };
        let released = std::thread::spawn(move || {
            match tokio::runtime::Builder::new_current_thread().enable_all().build() {
                Ok(runtime) => runtime.block_on(server.release()),
                Err(e) => tracing::error!(error = %e, "cannot stop the private PostgreSQL: no runtime"),
            }
        })
        .join();
        if released.is_err() {
            tracing::error!("stopping the private PostgreSQL panicked");
        }
    }
}

/// How many other annex processes have a session on the server: distinct `annex:<pid>`
/// application names other than this process's, counted on a session of its own.
async fn other_processes(options: &PgConnectOptions) -> Result<i64, sqlx::Error> {
    let mut conn = options.connect().await?;
    let others = sqlx::query_scalar(
        "select count(distinct application_name) from pg_stat_activity
          where application_name like 'annex:%' and application_name <> $1",
    )
    .bind(application_name())
    .fetch_one(&mut conn)
    .await;
    let _ = conn.close().await;
    others
}
