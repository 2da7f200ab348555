//! Opening the host's database: a given URL, or the private PostgreSQL under the data dir.

use std::str::FromStr;
use std::time::Duration;

use sqlx::PgPool;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

use crate::config::Config;
use crate::db::error::DbError;
use crate::db::host_migrations::{HOST_SCOPE, host_migrations};
use crate::db::migrate;
use crate::db::private_postgres::{Durability, PostgresError, PrivatePostgres};

/// The host's connection pool, and the private server if annex runs one.
#[derive(Debug)]
pub(crate) struct Database {
    pub(crate) pool: PgPool,
    /// How the host connects; extension pools derive theirs from it (other user, same server).
    pub(crate) options: PgConnectOptions,
    private: Option<PrivatePostgres>,
}

/// Every annex process tags its sessions so the last one out can tell it is the last.
fn application_name() -> String {
    format!("annex:{}", std::process::id())
}

impl Database {
    /// Connects (starting the private server if no URL is configured) and applies the host's
    /// own migrations.
    pub(crate) async fn open(config: &Config) -> Result<Self, DbError> {
        let (options, private) = match &config.database.url {
            Some(url) => (PgConnectOptions::from_str(url).map_err(DbError::Url)?, None),
            None => {
                let dir = config.data_dir.clone();
                let pg =
                    tokio::task::spawn_blocking(move || PrivatePostgres::ensure(&dir, Durability::default()))
                        .await
                        .map_err(|e| PostgresError::Command {
                            step: "starting the private PostgreSQL".into(),
                            detail: e.to_string(),
                        })??;
                (pg.connect_options("postgres"), Some(pg))
            }
        };
        // NOTICEs such as "schema already exists, skipping" are noise in operators' logs.
        let options =
            options.application_name(&application_name()).options([("client_min_messages", "warning")]);
        let pool = PgPoolOptions::new()
            .max_connections(config.database.max_connections)
            .acquire_timeout(Duration::from_secs(10))
            .connect_with(options.clone())
            .await
            .map_err(DbError::Connect)?;
        migrate::apply(&pool, HOST_SCOPE, &host_migrations()).await?;
        Ok(Self { pool, options, private })
    }

    /// Closes the pool; stops the private server if no other annex process still uses it.
    pub(crate) async fn close(self) {
        let others: i64 = sqlx::query_scalar(
            "select count(*) from pg_stat_activity where application_name like 'annex:%' and application_name <> $1",
        )
        .bind(application_name())
        .fetch_one(&self.pool)
        .await
        .unwrap_or(0);
        self.pool.close().await;
        let Some(pg) = self.private else { return };
        if others > 0 {
            tracing::info!(others, "private PostgreSQL left running: other annex processes use it");
            return;
        }
        match tokio::task::spawn_blocking(move || pg.stop()).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::error!(error = %e, "could not stop the private PostgreSQL"),
            Err(e) => tracing::error!(error = %e, "could not stop the private PostgreSQL"),
        }
    }
}
