//! The audit log (`annex.audit_log`): append-only, a trigger rejects UPDATE, DELETE and TRUNCATE.

use serde::Serialize;
use sqlx::PgPool;

/// One audit entry.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub(crate) struct AuditEntry {
    /// Who: `host`, `cli`, `admin`, or `extension:<name>`.
    pub actor: String,
    /// What: `extension.enabled`, `config.changed`, `<ext>.<action>`, …
    pub action: String,
    /// To what: usually an extension name.
    pub target: String,
    /// Anything else worth keeping.
    pub details: serde_json::Value,
    /// The request that caused it, if any.
    pub request_id: Option<String>,
}

impl AuditEntry {
    /// An entry with empty details; the current request id is filled in when there is one.
    pub(crate) fn new(
        actor: impl Into<String>,
        action: impl Into<String>,
        target: impl Into<String>,
    ) -> Self {
        Self {
            actor: actor.into(),
            action: action.into(),
            target: target.into(),
            details: serde_json::Value::Object(Default::default()),
            request_id: crate::observe::request_id::RequestId::current().map(|r| r.to_string()),
        }
    }

    /// Sets the details.
    pub(crate) fn details(mut self, details: serde_json::Value) -> Self {
        self.details = details;
        self
    }
}

/// Appends an entry.
pub(crate) async fn record(pool: &PgPool, entry: &AuditEntry) -> Result<(), sqlx::Error> {
    sqlx::query(
        "insert into annex.audit_log (actor, action, target, details, request_id) values ($1, $2, $3, $4, $5)",
    )
    .bind(&entry.actor)
    .bind(&entry.action)
    .bind(&entry.target)
    .bind(&entry.details)
    .bind(&entry.request_id)
    .execute(pool)
    .await?;
    Ok(())
}

/// Appends an entry, logging instead of failing: the action it records already happened.
pub(crate) async fn record_or_log(pool: &PgPool, entry: AuditEntry) {
    if let Err(e) = record(pool, &entry).await {
        tracing::error!(error = %e, action = %entry.action, target = %entry.target, "could not write the audit log");
    }
}
