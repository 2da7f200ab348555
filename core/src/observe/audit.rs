//! The audit log (`annex.audit_log`): append-only (a trigger rejects UPDATE, DELETE and
//! TRUNCATE) and hash-chained (migration 0006): each row stores the SHA-256 of its content and
//! of the previous row's hash. An insert trigger computes both under a transaction-level advisory
//! lock, so every writer (this process, another replica, the CLI, plain SQL) appends to one
//! linear chain; [`verify`] recomputes the chain here, independently of the database's function.

use serde::Serialize;
use serde::ser::{SerializeMap, Serializer};
use sha2::{Digest, Sha256};
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

/// Appends an entry; the database chains it (`annex.audit_log_chain`, migration 0006). Must not
/// run inside a repeatable read or serializable transaction: the trigger refuses those, since
/// their snapshot may not see the last entry.
pub(crate) async fn record(
    executor: impl sqlx::PgExecutor<'_>,
    entry: &AuditEntry,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "insert into annex.audit_log (actor, action, target, details, request_id) values ($1, $2, $3, $4, $5)",
    )
    .bind(&entry.actor)
    .bind(&entry.action)
    .bind(&entry.target)
    .bind(&entry.details)
    .bind(&entry.request_id)
    .execute(executor)
    .await?;
    Ok(())
}

/// Appends an entry, logging instead of failing: the action it records already happened.
pub(crate) async fn record_or_log(pool: &PgPool, entry: AuditEntry) {
    if let Err(e) = record(pool, &entry).await {
        tracing::error!(error = %e, action = %entry.action, target = %entry.target, "could not write the audit log");
    }
}

/// The `prev_hash` of the first row.
const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// Rows read per query while verifying: the log is paged by id, never loaded whole.
const PAGE: i64 = 1000;

/// What checking the audit log's hash chain found (`annex audit verify`,
/// `GET /api/v1/audit/verify`): the whole chain intact, or its first broken link. Serialized as
/// `{"ok": true, "rows": N}` or `{"ok": false, "rows_checked": N, "first_broken": {"id", "reason"}}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChainVerdict {
    /// Every row's hash matches its content and its predecessor.
    Intact {
        /// Rows checked (the whole log as of the last page read).
        rows: u64,
    },
    /// A row whose hash or link does not check out; rows after it were not checked.
    Broken {
        /// Rows read, the broken one included.
        rows_checked: u64,
        /// The first row that does not check out.
        first_broken: BrokenLink,
    },
}

impl ChainVerdict {
    /// Whether the chain is intact.
    pub fn is_ok(&self) -> bool {
        matches!(self, ChainVerdict::Intact { .. })
    }
}

impl Serialize for ChainVerdict {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(if self.is_ok() { 2 } else { 3 }))?;
        map.serialize_entry("ok", &self.is_ok())?;
        match self {
            ChainVerdict::Intact { rows } => map.serialize_entry("rows", rows)?,
            ChainVerdict::Broken { rows_checked, first_broken } => {
                map.serialize_entry("rows_checked", rows_checked)?;
                map.serialize_entry("first_broken", first_broken)?;
            }
        }
        map.end()
    }
}

/// The first row of the log that does not check out.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BrokenLink {
    /// The row's id.
    pub id: i64,
    /// What is wrong with it.
    pub reason: BreakReason,
}

/// Why a row breaks the chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum BreakReason {
    /// Its stored hash is not the hash of its content: the row was edited.
    #[serde(rename = "hash does not match the row's content")]
    Content,
    /// Its `prev_hash` is not the hash of the row before it: a row was removed or inserted.
    #[serde(rename = "prev_hash does not match the previous row")]
    PrevHash,
}

impl std::fmt::Display for BreakReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            BreakReason::Content => "hash does not match the row's content",
            BreakReason::PrevHash => "prev_hash does not match the previous row",
        })
    }
}

/// One row as the verifier reads it: every hashed field as text, exactly as hashed.
struct ChainRow {
    id: i64,
    at: String,
    actor: String,
    action: String,
    target: String,
    details: String,
    request_id: Option<String>,
    prev_hash: String,
    hash: String,
}

impl ChainRow {
    /// The SHA-256 (hex) of this row's content after `prev_hash`: the bytes
    /// `annex.audit_log_hash` (migration 0006) hashes, each field `<byte length>:<bytes>` and a
    /// bare `-` for a null request id.
    fn content_hash(&self) -> String {
        let mut h = Sha256::new();
        let id = self.id.to_string();
        for field in [&self.prev_hash, &id, &self.at, &self.actor, &self.action, &self.target, &self.details]
        {
            h.update(field.len().to_string());
            h.update(b":");
            h.update(field);
        }
        match &self.request_id {
            Some(r) => {
                h.update(r.len().to_string());
                h.update(b":");
                h.update(r);
            }
            None => h.update(b"-"),
        }
        h.finalize().iter().map(|b| format!("{b:02x}")).collect()
    }
}

/// Walks the whole audit log in id order, a page at a time, and returns the first row whose hash
/// does not match its content or whose `prev_hash` is not its predecessor's hash. The admin API
/// (`GET /api/v1/audit/verify`) and the CLI (`annex audit verify`) both answer with this.
pub(crate) async fn verify(pool: &PgPool) -> Result<ChainVerdict, sqlx::Error> {
    let mut previous = GENESIS.to_owned();
    let mut after = 0_i64;
    let mut checked = 0_u64;
    loop {
        // `at` is formatted as annex.audit_log_hash formats it; details as jsonb prints itself.
        type Row = (i64, String, String, String, String, String, Option<String>, String, String);
        let page: Vec<Row> = sqlx::query_as(
            r#"
            select id, to_char(at at time zone 'utc', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') as at,
                   actor, action, target, details::text as details, request_id, prev_hash, hash
              from annex.audit_log
             where id > $1
             order by id
             limit $2
            "#,
        )
        .bind(after)
        .bind(PAGE)
        .fetch_all(pool)
        .await?;
        let full = page.len() as i64 == PAGE;
        let page =
            page.into_iter().map(|(id, at, actor, action, target, details, request_id, prev_hash, hash)| {
                ChainRow { id, at, actor, action, target, details, request_id, prev_hash, hash }
            });
        let mut last = None;
        for row in page {
            checked += 1;
            let reason = if row.content_hash() != row.hash {
                Some(BreakReason::Content)
            } else if row.prev_hash != previous {
                Some(BreakReason::PrevHash)
            } else {
                None
            };
            if let Some(reason) = reason {
                let first_broken = BrokenLink { id: row.id, reason };
                return Ok(ChainVerdict::Broken { rows_checked: checked, first_broken });
            }
            last = Some(row.id);
            previous = row.hash;
        }
        match last {
            Some(id) if full => after = id,
            _ => return Ok(ChainVerdict::Intact { rows: checked }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row() -> ChainRow {
        ChainRow {
            id: 1,
            at: "2026-12-01T08:00:00.000000Z".into(),
            actor: "cli".into(),
            action: "extension.enabled".into(),
            target: "hello".into(),
            details: "{}".into(),
            request_id: None,
            prev_hash: GENESIS.into(),
            hash: String::new(),
        }
    }

    #[test]
    fn the_content_hash_is_sha256_of_length_prefixed_fields() {
        let bytes =
            format!("64:{GENESIS}1:127:2026-12-01T08:00:00.000000Z3:cli17:extension.enabled5:hello2:{{}}-");
        let expected: String = Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(row().content_hash(), expected);
    }

    #[test]
    fn a_null_request_id_and_an_empty_one_hash_differently() {
        let empty = ChainRow { request_id: Some(String::new()), ..row() };
        assert_ne!(row().content_hash(), empty.content_hash());
    }

    #[test]
    fn field_boundaries_cannot_be_moved() {
        let moved = ChainRow { actor: "clie".into(), action: "xtension.enabled".into(), ..row() };
        assert_ne!(row().content_hash(), moved.content_hash());
    }

    #[test]
    fn verdicts_serialize_in_the_documented_shape() {
        let ok = serde_json::to_value(ChainVerdict::Intact { rows: 3 }).unwrap();
        assert_eq!(ok, serde_json::json!({ "ok": true, "rows": 3 }));
        let broken = ChainVerdict::Broken {
            rows_checked: 2,
            first_broken: BrokenLink { id: 7, reason: BreakReason::PrevHash },
        };
        assert_eq!(
            serde_json::to_value(broken).unwrap(),
            serde_json::json!({ "ok": false, "rows_checked": 2,
                                "first_broken": { "id": 7, "reason": "prev_hash does not match the previous row" } })
        );
    }
}
