//! An extension's database, end to end: its schema and role, its pool, and its migrations
//! applied (or reverted) as its own role. The host and the CLI both go through here.

use sqlx::PgPool;

use crate::db::isolation::{ForeignGrant, IsolationError, Isolator};
use crate::db::migrate::{self, MigrationError, MigrationStep, Progress};
use crate::extension::migrations::Migrations;

/// Why an extension's database could not be opened.
#[derive(Debug, thiserror::Error)]
pub(crate) enum OpenError {
    #[error(transparent)]
    Isolation(#[from] IsolationError),
    #[error(transparent)]
    Migration(#[from] MigrationError),
}

/// Provisions the extension's schema and role, grants it what its entities need on other
/// extensions' tables, opens its pool of `size`, and applies its pending migrations through that
/// pool. On failure the pool is closed.
pub(crate) async fn open(
    isolator: &Isolator,
    extension: &str,
    migrations: &Migrations,
    grants: &[ForeignGrant],
    size: u32,
    progress: Progress<'_>,
) -> Result<(PgPool, Vec<MigrationStep>), OpenError> {
    let provisioned = isolator.provision(extension, size).await?;
    if let Err(e) = isolator.grant_foreign(extension, grants).await {
        provisioned.pool.close().await;
        return Err(e.into());
    }
    let pool = provisioned.pool;
    let applied = async {
        let mut conn = pool.acquire().await.map_err(MigrationError::Database)?;
        migrate::up(&mut conn, provisioned.ledger, extension, migrations, progress).await
    }
    .await;
    match applied {
        Ok(steps) => Ok((pool, steps)),
        Err(e) => {
            pool.close().await;
            Err(e.into())
        }
    }
}

/// Reverts the extension's applied steps newer than `target`, as its own role.
pub(crate) async fn rollback(
    isolator: &Isolator,
    extension: &str,
    migrations: &Migrations,
    target: i64,
    progress: Progress<'_>,
) -> Result<Vec<MigrationStep>, OpenError> {
    let provisioned = isolator.provision(extension, 1).await?;
    let reverted = async {
        let mut conn = provisioned.pool.acquire().await.map_err(MigrationError::Database)?;
        migrate::down(&mut conn, provisioned.ledger, extension, migrations, target, progress).await
    }
    .await;
    provisioned.pool.close().await;
    Ok(reverted?)
}
