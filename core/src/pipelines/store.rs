//! The registry's SQL: `annex.pipeline_stages`, `annex.pipelines`, `annex.stage_health`, and
//! `NOTIFY annex_pipelines` after every change. Inline SQL with bound values.

use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::types::Json;
use sqlx::{PgExecutor, PgPool, Row};

use super::error::RegistryError;
use super::model::{BreakerSettings, PipelineDef, PipelineStages, RetryPolicy, StageDef, Transport};
use crate::extension::stage::{OnError, StageKind};

/// The channel every replica LISTENs on; a notification means "reload the registry".
pub(crate) const CHANNEL: &str = "annex_pipelines";

const STAGE_COLUMNS: &str = "id, kind, transport, extension, subject, timeout_ms, retry, on_error, enabled, \
                             config, metadata, breaker, updated_at";

fn stage_of(row: &sqlx::postgres::PgRow) -> Result<StageDef, RegistryError> {
    let id: String = row.try_get("id")?;
    let bad =
        |what: &str, e: &dyn std::fmt::Display| RegistryError::Corrupt(format!("stage `{id}`: {what}: {e}"));
    let kind: String = row.try_get("kind")?;
    let transport: String = row.try_get("transport")?;
    let on_error: String = row.try_get("on_error")?;
    let retry: Value = row.try_get("retry")?;
    let breaker: Value = row.try_get("breaker")?;
    let timeout: i32 = row.try_get("timeout_ms")?;
    Ok(StageDef {
        kind: kind.parse::<StageKind>().map_err(|e| bad("kind", &e))?,
        transport: serde_json::from_value::<Transport>(Value::String(transport))
            .map_err(|e| bad("transport", &e))?,
        extension: row.try_get("extension")?,
        subject: row.try_get("subject")?,
        timeout_ms: u64::try_from(timeout).map_err(|e| bad("timeout_ms", &e))?,
        retry: serde_json::from_value::<RetryPolicy>(retry).map_err(|e| bad("retry", &e))?,
        on_error: serde_json::from_value::<OnError>(Value::String(on_error))
            .map_err(|e| bad("on_error", &e))?,
        enabled: row.try_get("enabled")?,
        config: row.try_get("config")?,
        metadata: row.try_get("metadata")?,
        breaker: serde_json::from_value::<BreakerSettings>(breaker).map_err(|e| bad("breaker", &e))?,
        updated_at: row.try_get::<Option<DateTime<Utc>>, _>("updated_at")?,
        id,
    })
}

fn pipeline_of(row: &sqlx::postgres::PgRow) -> Result<PipelineDef, RegistryError> {
    let name: String = row.try_get("name")?;
    let stages: Value = row.try_get("stages")?;
    let deadline: i32 = row.try_get("deadline_ms")?;
    let stages = serde_json::from_value::<PipelineStages>(stages)
        .map_err(|e| RegistryError::Corrupt(format!("pipeline `{name}`: stages: {e}")))?;
    Ok(PipelineDef {
        stages,
        deadline_ms: u64::try_from(deadline).unwrap_or(0),
        updated_at: row.try_get("updated_at")?,
        name,
    })
}

/// Every stage, by id.
pub(crate) async fn stages(db: impl PgExecutor<'_>) -> Result<Vec<StageDef>, RegistryError> {
    let sql = format!("select {STAGE_COLUMNS} from annex.pipeline_stages order by id");
    sqlx::query(&sql).fetch_all(db).await?.iter().map(stage_of).collect()
}

/// One stage.
pub(crate) async fn stage(db: impl PgExecutor<'_>, id: &str) -> Result<Option<StageDef>, RegistryError> {
    let sql = format!("select {STAGE_COLUMNS} from annex.pipeline_stages where id = $1");
    sqlx::query(&sql).bind(id).fetch_optional(db).await?.as_ref().map(stage_of).transpose()
}

/// Every stage and every pipeline, read in one repeatable-read transaction: a consistent view.
pub(crate) async fn registry(pool: &PgPool) -> Result<(Vec<StageDef>, Vec<PipelineDef>), RegistryError> {
    let mut tx = pool.begin().await?;
    sqlx::query("set transaction isolation level repeatable read, read only").execute(&mut *tx).await?;
    let stages = stages(&mut *tx).await?;
    let pipelines = pipelines(&mut *tx).await?;
    tx.commit().await?;
    Ok((stages, pipelines))
}

/// Every pipeline, by name.
pub(crate) async fn pipelines(db: impl PgExecutor<'_>) -> Result<Vec<PipelineDef>, RegistryError> {
    let rows = sqlx::query("select name, stages, deadline_ms, updated_at from annex.pipelines order by name")
        .fetch_all(db)
        .await?;
    rows.iter().map(pipeline_of).collect()
}

/// One pipeline.
pub(crate) async fn pipeline(
    db: impl PgExecutor<'_>,
    name: &str,
) -> Result<Option<PipelineDef>, RegistryError> {
    let row =
        sqlx::query("select name, stages, deadline_ms, updated_at from annex.pipelines where name = $1")
            .bind(name)
            .fetch_optional(db)
            .await?;
    row.as_ref().map(pipeline_of).transpose()
}

fn ms(v: u64) -> i32 {
    i32::try_from(v).unwrap_or(i32::MAX)
}

/// Inserts `stage` unless its id exists; true when it was inserted.
pub(crate) async fn insert_stage(db: impl PgExecutor<'_>, stage: &StageDef) -> Result<bool, RegistryError> {
    let done = sqlx::query(
        "insert into annex.pipeline_stages
             (id, kind, transport, extension, subject, timeout_ms, retry, on_error, enabled, config, metadata, breaker)
         values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
         on conflict (id) do nothing",
    )
    .bind(&stage.id)
    .bind(stage.kind.as_str())
    .bind(stage.transport.as_str())
    .bind(&stage.extension)
    .bind(&stage.subject)
    .bind(ms(stage.timeout_ms))
    .bind(Json(stage.retry))
    .bind(on_error_str(stage.on_error))
    .bind(stage.enabled)
    .bind(&stage.config)
    .bind(&stage.metadata)
    .bind(Json(stage.breaker))
    .execute(db)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Writes every editable field of `stage`.
pub(crate) async fn update_stage(db: impl PgExecutor<'_>, stage: &StageDef) -> Result<(), RegistryError> {
    sqlx::query(
        "update annex.pipeline_stages set subject = $2, timeout_ms = $3, retry = $4, on_error = $5, enabled = $6,
             config = $7, metadata = $8, breaker = $9, updated_at = now()
         where id = $1",
    )
    .bind(&stage.id)
    .bind(&stage.subject)
    .bind(ms(stage.timeout_ms))
    .bind(Json(stage.retry))
    .bind(on_error_str(stage.on_error))
    .bind(stage.enabled)
    .bind(&stage.config)
    .bind(&stage.metadata)
    .bind(Json(stage.breaker))
    .execute(db)
    .await?;
    Ok(())
}

/// Removes a stage (its health rows go with it).
pub(crate) async fn delete_stage(db: impl PgExecutor<'_>, id: &str) -> Result<(), RegistryError> {
    sqlx::query("delete from annex.pipeline_stages where id = $1").bind(id).execute(db).await?;
    Ok(())
}

/// Creates or replaces a pipeline.
pub(crate) async fn upsert_pipeline(
    db: impl PgExecutor<'_>,
    name: &str,
    stages: &PipelineStages,
    deadline_ms: u64,
) -> Result<(), RegistryError> {
    sqlx::query(
        "insert into annex.pipelines (name, stages, deadline_ms) values ($1, $2, $3)
         on conflict (name) do update set stages = excluded.stages, deadline_ms = excluded.deadline_ms,
             updated_at = now()",
    )
    .bind(name)
    .bind(Json(stages))
    .bind(ms(deadline_ms))
    .execute(db)
    .await?;
    Ok(())
}

/// Removes a pipeline.
pub(crate) async fn delete_pipeline(db: impl PgExecutor<'_>, name: &str) -> Result<(), RegistryError> {
    sqlx::query("delete from annex.pipelines where name = $1").bind(name).execute(db).await?;
    Ok(())
}

/// Tells every replica to reload.
pub(crate) async fn notify(db: impl PgExecutor<'_>) -> Result<(), RegistryError> {
    sqlx::query("select pg_notify($1, '')").bind(CHANNEL).execute(db).await?;
    Ok(())
}

/// One replica's figures of one stage, as mirrored to `annex.stage_health`.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct StoredHealth {
    /// The replica (`<hostname>:<pid>`).
    pub replica: String,
    /// Calls in the window.
    pub calls: i64,
    /// Failed calls in the window.
    pub failures: i64,
    /// 1 = every recent call succeeded.
    pub score: f64,
    /// `closed`, `open` or `half_open`.
    pub breaker: String,
    /// When the replica wrote it.
    pub updated_at: DateTime<Utc>,
}

/// Writes this replica's figures of `stage`.
pub(crate) async fn write_health(
    db: impl PgExecutor<'_>,
    stage: &str,
    replica: &str,
    figures: (i64, i64, f64, &str),
) -> Result<(), RegistryError> {
    let (calls, failures, score, breaker) = figures;
    sqlx::query(
        "insert into annex.stage_health (stage, replica, calls, failures, score, breaker) values ($1, $2, $3, $4, $5, $6)
         on conflict (stage, replica) do update set calls = excluded.calls, failures = excluded.failures,
             score = excluded.score, breaker = excluded.breaker, updated_at = now()",
    )
    .bind(stage)
    .bind(replica)
    .bind(calls)
    .bind(failures)
    .bind(score)
    .bind(breaker)
    .execute(db)
    .await?;
    Ok(())
}

/// Every replica's figures of `stage`, newest first.
pub(crate) async fn stored_health(pool: &PgPool, stage: &str) -> Result<Vec<StoredHealth>, RegistryError> {
    let rows = sqlx::query(
        "select replica, calls, failures, score, breaker, updated_at from annex.stage_health
         where stage = $1 order by updated_at desc",
    )
    .bind(stage)
    .fetch_all(pool)
    .await?;
    rows.iter()
        .map(|r| {
            Ok(StoredHealth {
                replica: r.try_get("replica")?,
                calls: r.try_get("calls")?,
                failures: r.try_get("failures")?,
                score: r.try_get("score")?,
                breaker: r.try_get("breaker")?,
                updated_at: r.try_get("updated_at")?,
            })
        })
        .collect()
}

fn on_error_str(mode: OnError) -> &'static str {
    match mode {
        OnError::Closed => "closed",
        OnError::Open => "open",
    }
}
