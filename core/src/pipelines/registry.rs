//! [`Registry`]: every operation on the stage registry, the one implementation the admin API and
//! the CLI both call. Each change is checked first (a refused change changes nothing), then
//! stored, audited with before and after, and announced with `NOTIFY annex_pipelines` in one
//! transaction, so every replica reloads its snapshot.

use std::collections::BTreeMap;

use serde_json::{Value, json};
use sqlx::PgPool;

use super::error::RegistryError;
use super::model::{
    BreakerSettings, NewStage, PipelineDef, PipelineInput, PipelineStages, RetryPolicy, StageChange,
    StageDef, Transport, default_subject, valid_pipeline_name, valid_stage_id, valid_subject,
};
use super::store;
use crate::config::schema::{SchemaViolation, check_config, schema_problem};
use crate::extension::stage::{OnError, StageSpec};
use crate::observe::audit::{self, AuditEntry};
use crate::plan::catalog::Catalog;

/// The longest timeout or deadline, in ms (10 minutes).
const MAX_MS: u64 = 600_000;

/// The registry operations over one database and this binary's compiled-in set.
#[derive(Debug, Clone, Copy)]
pub struct Registry<'a> {
    pool: &'a PgPool,
    catalog: &'a Catalog,
    nats: bool,
}

impl<'a> Registry<'a> {
    /// `nats`: whether `[nats] url` is set (remote stages need it).
    pub(crate) fn new(pool: &'a PgPool, catalog: &'a Catalog, nats: bool) -> Self {
        Self { pool, catalog, nats }
    }

    /// Every stage.
    pub async fn stages(&self) -> Result<Vec<StageDef>, RegistryError> {
        store::stages(self.pool).await
    }

    /// One stage.
    pub async fn stage(&self, id: &str) -> Result<StageDef, RegistryError> {
        if !valid_stage_id(id) {
            return Err(RegistryError::UnknownStage(id.to_owned()));
        }
        store::stage(self.pool, id).await?.ok_or_else(|| RegistryError::UnknownStage(id.to_owned()))
    }

    /// Every pipeline.
    pub async fn pipelines(&self) -> Result<Vec<PipelineDef>, RegistryError> {
        store::pipelines(self.pool).await
    }

    /// One pipeline.
    pub async fn pipeline(&self, name: &str) -> Result<PipelineDef, RegistryError> {
        if !valid_pipeline_name(name) {
            return Err(RegistryError::UnknownPipeline(name.to_owned()));
        }
        store::pipeline(self.pool, name).await?.ok_or_else(|| RegistryError::UnknownPipeline(name.to_owned()))
    }

    /// Every replica's mirrored figures of stage `id`.
    pub async fn stored_health(&self, id: &str) -> Result<Vec<store::StoredHealth>, RegistryError> {
        self.stage(id).await?;
        store::stored_health(self.pool, id).await
    }

    /// Adds a remote stage.
    pub async fn add_stage(&self, actor: &str, new: NewStage) -> Result<StageDef, RegistryError> {
        if !self.nats {
            return Err(RegistryError::NatsRequired);
        }
        if !valid_stage_id(&new.id) {
            return Err(RegistryError::InvalidStage(format!(
                "`{}` is not a stage id: lowercase letters, digits and `_`, at most one `.` (`acme.toxicity`)",
                new.id
            )));
        }
        let metadata = new.metadata.unwrap_or_else(|| json!({}));
        let subject = new.subject.unwrap_or_else(|| default_subject(new.kind, &new.id, &metadata));
        let stage = StageDef {
            kind: new.kind,
            transport: Transport::Remote,
            extension: None,
            subject: Some(subject),
            timeout_ms: new.timeout_ms.unwrap_or(1000),
            retry: new.retry.unwrap_or_default(),
            on_error: new.on_error.unwrap_or(OnError::Closed),
            enabled: new.enabled.unwrap_or(true),
            config: new.config.unwrap_or_else(|| json!({})),
            metadata,
            breaker: new.breaker.unwrap_or_default(),
            updated_at: None,
            id: new.id,
        };
        check_stage(&stage, self.catalog)?;
        let mut tx = self.pool.begin().await?;
        if let Some(s) = &stage.subject
            && let Some(other) = subject_owner(&mut *tx, s).await?
        {
            return Err(RegistryError::Exists(format!("subject `{s}` is already stage `{other}`'s")));
        }
        if !store::insert_stage(&mut *tx, &stage).await? {
            return Err(RegistryError::Exists(format!("stage `{}` exists; change it with PUT", stage.id)));
        }
        let stored = store::stage(&mut *tx, &stage.id)
            .await?
            .ok_or_else(|| RegistryError::UnknownStage(stage.id.clone()))?;
        let entry = AuditEntry::new(actor, "stage.added", &stage.id)
            .details(json!({ "before": null, "after": stored }));
        audit::record(&mut *tx, &entry).await?;
        store::notify(&mut *tx).await?;
        tx.commit().await?;
        Ok(stored)
    }

    /// Changes the fields `change` gives.
    pub async fn change_stage(
        &self,
        actor: &str,
        id: &str,
        change: StageChange,
    ) -> Result<StageDef, RegistryError> {
        let mut tx = self.pool.begin().await?;
        let before = locked_stage(&mut tx, id).await?;
        let mut after = before.clone();
        if let Some(subject) = change.subject {
            if after.transport == Transport::Compiled {
                return Err(RegistryError::InvalidStage(format!(
                    "stage `{id}` is compiled in; it has no subject"
                )));
            }
            if let Some(other) = subject_owner(&mut *tx, &subject).await?.filter(|o| o != id) {
                return Err(RegistryError::Exists(format!(
                    "subject `{subject}` is already stage `{other}`'s"
                )));
            }
            after.subject = Some(subject);
        }
        if let Some(v) = change.timeout_ms {
            after.timeout_ms = v;
        }
        if let Some(v) = change.retry {
            after.retry = v;
        }
        if let Some(v) = change.on_error {
            after.on_error = v;
        }
        if let Some(v) = change.enabled {
            after.enabled = v;
        }
        if let Some(v) = change.config {
            after.config = v;
        }
        if let Some(v) = change.metadata {
            after.metadata = v;
        }
        if let Some(v) = change.breaker {
            after.breaker = v;
        }
        if after.transport == Transport::Remote && !self.nats && after.enabled && !before.enabled {
            return Err(RegistryError::NatsRequired);
        }
        check_stage(&after, self.catalog)?;
        self.finish_change(tx, actor, "stage.changed", before, after).await
    }

    /// Enables or disables a stage.
    pub async fn set_enabled(&self, actor: &str, id: &str, enabled: bool) -> Result<StageDef, RegistryError> {
        let mut tx = self.pool.begin().await?;
        let before = locked_stage(&mut tx, id).await?;
        if enabled && before.transport == Transport::Remote && !self.nats {
            return Err(RegistryError::NatsRequired);
        }
        let after = StageDef { enabled, ..before.clone() };
        let action = if enabled { "stage.enabled" } else { "stage.disabled" };
        self.finish_change(tx, actor, action, before, after).await
    }

    async fn finish_change(
        &self,
        mut tx: sqlx::Transaction<'_, sqlx::Postgres>,
        actor: &str,
        action: &str,
        before: StageDef,
        after: StageDef,
    ) -> Result<StageDef, RegistryError> {
        store::update_stage(&mut *tx, &after).await?;
        let stored = store::stage(&mut *tx, &after.id)
            .await?
            .ok_or_else(|| RegistryError::UnknownStage(after.id.clone()))?;
        let entry =
            AuditEntry::new(actor, action, &after.id).details(json!({ "before": before, "after": stored }));
        audit::record(&mut *tx, &entry).await?;
        store::notify(&mut *tx).await?;
        tx.commit().await?;
        Ok(stored)
    }

    /// Removes a stage no pipeline uses: a remote one, or a compiled-in one whose extension is not
    /// in this binary any more.
    pub async fn remove_stage(&self, actor: &str, id: &str) -> Result<(), RegistryError> {
        let mut tx = self.pool.begin().await?;
        let before = locked_stage(&mut tx, id).await?;
        // A compiled-in stage would come back at the next start; one of an extension no longer in
        // this binary may go.
        if before.transport == Transport::Compiled && compiled_spec(&before, self.catalog).is_some() {
            return Err(RegistryError::CompiledIn(id.to_owned()));
        }
        let users: Vec<String> = store::pipelines(&mut *tx)
            .await?
            .into_iter()
            .filter(|p| p.stages.slots().any(|(_, s)| s == id))
            .map(|p| p.name)
            .collect();
        if !users.is_empty() {
            return Err(RegistryError::InUse { stage: id.to_owned(), pipelines: users });
        }
        store::delete_stage(&mut *tx, id).await?;
        let entry =
            AuditEntry::new(actor, "stage.removed", id).details(json!({ "before": before, "after": null }));
        audit::record(&mut *tx, &entry).await?;
        store::notify(&mut *tx).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Creates or replaces pipeline `name`.
    pub async fn put_pipeline(
        &self,
        actor: &str,
        name: &str,
        input: PipelineInput,
    ) -> Result<PipelineDef, RegistryError> {
        let stages = input.stages();
        let mut tx = self.pool.begin().await?;
        // Locks every stage row, so none is disabled or removed under this check.
        sqlx::query("select 1 from annex.pipeline_stages for share").execute(&mut *tx).await?;
        let registry: BTreeMap<String, StageDef> =
            store::stages(&mut *tx).await?.into_iter().map(|s| (s.id.clone(), s)).collect();
        let mut problems = Vec::new();
        if !valid_pipeline_name(name) {
            problems.push(format!(
                "`{name}` is not a pipeline name: lowercase letters, digits, `_` and `-`, starting with a letter, at most 63"
            ));
        }
        if !(1..=MAX_MS).contains(&input.deadline_ms) {
            problems.push(format!("deadline_ms must be between 1 and {MAX_MS}"));
        }
        problems.extend(check_pipeline(&stages, &registry, self.catalog, true));
        if !problems.is_empty() {
            return Err(RegistryError::InvalidPipeline { name: name.to_owned(), problems });
        }
        let before = store::pipeline(&mut *tx, name).await?;
        store::upsert_pipeline(&mut *tx, name, &stages, input.deadline_ms).await?;
        let after = store::pipeline(&mut *tx, name)
            .await?
            .ok_or_else(|| RegistryError::UnknownPipeline(name.to_owned()))?;
        let action = if before.is_some() { "pipeline.changed" } else { "pipeline.created" };
        let entry = AuditEntry::new(actor, action, name).details(json!({ "before": before, "after": after }));
        audit::record(&mut *tx, &entry).await?;
        store::notify(&mut *tx).await?;
        tx.commit().await?;
        Ok(after)
    }

    /// Removes pipeline `name`.
    pub async fn remove_pipeline(&self, actor: &str, name: &str) -> Result<(), RegistryError> {
        if !valid_pipeline_name(name) {
            return Err(RegistryError::UnknownPipeline(name.to_owned()));
        }
        let mut tx = self.pool.begin().await?;
        let before = store::pipeline(&mut *tx, name)
            .await?
            .ok_or_else(|| RegistryError::UnknownPipeline(name.to_owned()))?;
        store::delete_pipeline(&mut *tx, name).await?;
        let entry = AuditEntry::new(actor, "pipeline.removed", name)
            .details(json!({ "before": before, "after": null }));
        audit::record(&mut *tx, &entry).await?;
        store::notify(&mut *tx).await?;
        tx.commit().await?;
        Ok(())
    }
}

async fn locked_stage(
    tx: &mut sqlx::Transaction<'_, sqlx::Postgres>,
    id: &str,
) -> Result<StageDef, RegistryError> {
    if !valid_stage_id(id) {
        return Err(RegistryError::UnknownStage(id.to_owned()));
    }
    sqlx::query("select 1 from annex.pipeline_stages where id = $1 for update")
        .bind(id)
        .execute(&mut **tx)
        .await?;
    store::stage(&mut **tx, id).await?.ok_or_else(|| RegistryError::UnknownStage(id.to_owned()))
}

async fn subject_owner(
    db: impl sqlx::PgExecutor<'_>,
    subject: &str,
) -> Result<Option<String>, RegistryError> {
    Ok(sqlx::query_scalar("select id from annex.pipeline_stages where subject = $1")
        .bind(subject)
        .fetch_optional(db)
        .await?)
}

/// The row a compiled-in stage gets when it has none: its spec's defaults.
pub(crate) fn compiled_row(extension: &str, spec: &StageSpec) -> StageDef {
    StageDef {
        id: format!("{extension}.{}", spec.name),
        kind: spec.kind,
        transport: Transport::Compiled,
        extension: Some(extension.to_owned()),
        subject: None,
        timeout_ms: spec.timeout_ms.unwrap_or(1000).clamp(1, MAX_MS),
        retry: RetryPolicy::default(),
        on_error: spec.on_error.unwrap_or(OnError::Closed),
        enabled: true,
        config: spec.default_config.clone(),
        metadata: json!({ "description": spec.description, "version": spec.version }),
        breaker: BreakerSettings::default(),
        updated_at: None,
    }
}

/// Gives every compiled-in stage a registry row with its spec's defaults if it has none (an
/// operator's edits are never overwritten). Returns the ids added.
pub(crate) async fn seed(pool: &PgPool, catalog: &Catalog) -> Result<Vec<String>, RegistryError> {
    let mut added = Vec::new();
    for d in catalog.iter() {
        for spec in &d.stages {
            let row = compiled_row(&d.metadata.name, spec);
            if !valid_stage_id(&row.id) {
                tracing::warn!(stage = %row.id, "a compiled-in stage has an invalid name; it is not registered");
                continue;
            }
            if store::insert_stage(pool, &row).await? {
                let entry = AuditEntry::new("host", "stage.registered", &row.id)
                    .details(json!({ "before": null, "after": row }));
                audit::record_or_log(pool, entry).await;
                added.push(row.id);
            }
        }
    }
    if !added.is_empty() {
        store::notify(pool).await?;
    }
    Ok(added)
}

/// The JSON Schema a stage's config must fit: a compiled stage's spec's, a remote stage's
/// `metadata.config_schema`.
pub(crate) fn schema_of<'c>(stage: &'c StageDef, catalog: &'c Catalog) -> Option<&'c Value> {
    match stage.transport {
        Transport::Compiled => compiled_spec(stage, catalog).and_then(|s| s.config_schema.as_ref()),
        Transport::Remote => stage.metadata.get("config_schema"),
    }
}

/// A compiled stage's spec, when its extension is compiled in and registered it.
pub(crate) fn compiled_spec<'c>(stage: &StageDef, catalog: &'c Catalog) -> Option<&'c StageSpec> {
    let ext = stage.extension.as_deref()?;
    let name = stage.id.strip_prefix(ext)?.strip_prefix('.')?;
    catalog.get(ext)?.stages.iter().find(|s| s.name == name)
}

/// Checks one stage's fields; the first problem found.
pub(crate) fn check_stage(stage: &StageDef, catalog: &Catalog) -> Result<(), RegistryError> {
    let invalid = |m: String| Err(RegistryError::InvalidStage(m));
    let id = &stage.id;
    if !(1..=MAX_MS).contains(&stage.timeout_ms) {
        return invalid(format!("stage `{id}`: timeout_ms must be between 1 and {MAX_MS}"));
    }
    let r = &stage.retry;
    if !(1..=10).contains(&r.max_attempts) || r.backoff_ms > r.max_backoff_ms || r.max_backoff_ms > MAX_MS {
        return invalid(format!(
            "stage `{id}`: retry needs 1 ≤ max_attempts ≤ 10 and backoff_ms ≤ max_backoff_ms ≤ {MAX_MS}"
        ));
    }
    let b = &stage.breaker;
    if b.consecutive_failures == 0
        || !(b.failure_rate > 0.0 && b.failure_rate <= 1.0)
        || b.cooldown_ms == 0
        || b.cooldown_ms > 3_600_000
    {
        return invalid(format!(
            "stage `{id}`: breaker needs consecutive_failures ≥ 1, 0 < failure_rate ≤ 1 and 1 ≤ cooldown_ms ≤ 3600000"
        ));
    }
    if !stage.metadata.is_object() {
        return invalid(format!("stage `{id}`: metadata must be a JSON object"));
    }
    match stage.transport {
        Transport::Compiled => {
            let ext = stage.extension.as_deref().unwrap_or_default();
            let Some(spec) = compiled_spec(stage, catalog) else {
                return invalid(format!(
                    "stage `{id}` is compiled in, but extension `{ext}` is not in this binary or registers no such stage"
                ));
            };
            if spec.kind != stage.kind {
                return invalid(format!(
                    "stage `{id}` is registered as a {} stage, not {}",
                    spec.kind, stage.kind
                ));
            }
        }
        Transport::Remote => {
            let subject = stage.subject.as_deref().unwrap_or_default();
            if !valid_subject(subject) {
                return invalid(format!(
                    "stage `{id}`: `{subject}` is not a NATS subject (dot-separated tokens of letters, digits, `_`, `-`; no wildcards)"
                ));
            }
            if let Some(schema) = stage.metadata.get("config_schema")
                && let Some(problem) = schema_problem(schema)
            {
                return invalid(format!(
                    "stage `{id}`: metadata.config_schema is not a valid JSON Schema: {problem}"
                ));
            }
        }
    }
    check_config(schema_of(stage, catalog), &stage.config)
        .map_err(|errors: Vec<SchemaViolation>| RegistryError::InvalidConfig { stage: id.clone(), errors })
}

/// Every problem of a pipeline's stage list against `registry`. `strict` (a change being made)
/// also refuses disabled stages; a snapshot keeps a pipeline whose stage was disabled later (it
/// is skipped when run).
pub(crate) fn check_pipeline(
    stages: &PipelineStages,
    registry: &BTreeMap<String, StageDef>,
    catalog: &Catalog,
    strict: bool,
) -> Vec<String> {
    let mut problems = Vec::new();
    if stages.providers.is_empty() {
        problems.push("it needs at least one provider".to_owned());
    }
    let mut seen = std::collections::BTreeSet::new();
    for (slot, id) in stages.slots() {
        if !seen.insert((slot, id)) {
            problems.push(format!("stage `{id}` is named twice as a {slot}"));
        }
        let Some(stage) = registry.get(id) else {
            problems.push(format!("stage `{id}` is not in the registry"));
            continue;
        };
        if stage.kind != slot {
            problems.push(format!("stage `{id}` is a {} stage and cannot be used as a {slot}", stage.kind));
        }
        if strict && !stage.enabled {
            problems.push(format!("stage `{id}` is disabled; enable it first"));
        }
        if stage.transport == Transport::Compiled && compiled_spec(stage, catalog).is_none() {
            problems.push(format!(
                "stage `{id}` is compiled into extension `{}`, which is not in this binary",
                stage.extension.as_deref().unwrap_or_default()
            ));
        }
    }
    problems
}
