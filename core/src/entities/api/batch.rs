//! `POST /ext/<name>/entities/_batch`: several creates, patches and deletes in one transaction,
//! all or nothing. A refusal names the operation (`error.fields` pointers are prefixed with
//! `/operations/<i>/data`).

use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};

use super::Apis;
use super::entity::Operation;
use crate::config::SchemaViolation;
use crate::extension::Context;
use crate::extension::error::ApiError;
use crate::extension::hooks::Identity;

/// The most operations in one batch.
pub(super) const MAX_OPERATIONS: usize = 100;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Batch {
    operations: Vec<Op>,
}

#[derive(Debug, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case", deny_unknown_fields)]
enum Op {
    Create { entity: String, data: Value },
    Patch { entity: String, id: String, data: Value },
    Delete { entity: String, id: String },
}

/// Why operation `i` failed, with its fields' pointers placed in the batch body.
fn at(i: usize, e: ApiError) -> ApiError {
    let message = format!("operation {i}: {}; nothing was written", e.message());
    let fields: Vec<SchemaViolation> = e
        .fields()
        .iter()
        .map(|f| SchemaViolation {
            pointer: format!("/operations/{i}/data{}", f.pointer),
            message: f.message.clone(),
        })
        .collect();
    let out = ApiError::new(e.status(), e.code().to_owned(), message);
    if fields.is_empty() { out } else { out.with_fields(fields) }
}

pub(super) async fn run(
    apis: &Apis,
    cx: &Context,
    caller: Option<&Identity>,
    body: Value,
) -> Result<Value, ApiError> {
    let batch: Batch = serde_json::from_value(body).map_err(|e| {
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_batch",
            format!("a batch is {{\"operations\": [{{\"op\": \"create\"|\"patch\"|\"delete\", \"entity\", \"id\", \"data\"}}]}}: {e}"),
        )
    })?;
    if batch.operations.is_empty() || batch.operations.len() > MAX_OPERATIONS {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_batch",
            format!("a batch holds 1 to {MAX_OPERATIONS} operations, got {}", batch.operations.len()),
        ));
    }
    let mut tx = if cx.site().is_some() { cx.site_tx().await? } else { cx.db()?.begin().await? };
    let mut results = Vec::with_capacity(batch.operations.len());
    for (i, op) in batch.operations.into_iter().enumerate() {
        let entity = match &op {
            Op::Create { entity, .. } | Op::Patch { entity, .. } | Op::Delete { entity, .. } => {
                entity.clone()
            }
        };
        let Some(api) = apis.entities.get(&entity) else {
            return Err(at(i, ApiError::not_found(format!("no entity `{entity}` in this extension"))));
        };
        if api.entity.site_scoped && cx.site().is_none() {
            return Err(at(i, api.outside_site()));
        }
        let result = match op {
            Op::Create { data, .. } => {
                api.allow(caller, Operation::Create).map_err(|e| at(i, e))?;
                json!({ "status": 201, "item": api.create(&mut tx, data).await.map_err(|e| at(i, e))? })
            }
            Op::Patch { id, data, .. } => {
                api.allow(caller, Operation::Update).map_err(|e| at(i, e))?;
                json!({ "status": 200, "item": api.patch(&mut tx, &id, data).await.map_err(|e| at(i, e))? })
            }
            Op::Delete { id, .. } => {
                api.allow(caller, Operation::Delete).map_err(|e| at(i, e))?;
                api.delete(&mut tx, &id).await.map_err(|e| at(i, e))?;
                json!({ "status": 204 })
            }
        };
        results.push(result);
    }
    tx.commit().await?;
    Ok(json!({ "results": results }))
}
