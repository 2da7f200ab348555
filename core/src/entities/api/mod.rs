//! The REST API of an extension's entities, registered as ordinary routes of the extension (so
//! they run through its request path: gate, quotas, rate limit, hooks, metrics):
//!
//! | route | file |
//! |---|---|
//! | `GET /ext/<name>/entities/<entity>`: filter, sort, page, per_page (≤ 500), fields, expand | `list.rs` |
//! | `GET`, `PATCH`, `DELETE …/<entity>/{id}`, `POST …/<entity>` (201, or 422 with `error.fields`) | `entity.rs` |
//! | `POST /ext/<name>/entities/_batch`: several operations in one transaction | `batch.rs` |
//!
//! Access per entity and operation by role; closed by default (role `admin` only, which the
//! admin token carries). Under a site (`/sites/<slug>/ext/<name>/entities/…`) every operation
//! runs in the site's transaction ([`Context::site_tx`]), so the row-level-security policy of a
//! site-scoped entity keeps each site to its own rows; a site-scoped entity outside a site is a
//! 404.

mod batch;
mod entity;
mod list;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use annex_entities::{Declaration, EnumValues};
use axum::Extension;
use axum::extract::{Path, Query};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::Value;

use crate::extension::Context;
use crate::extension::error::ApiError;
use crate::extension::hooks::Identity;
use crate::extension::json::Json;
use crate::extension::registrar::Registrar;
use entity::{EntityApi, Operation};

/// Every entity API of one extension, by entity name.
#[derive(Debug)]
struct Apis {
    entities: BTreeMap<String, EntityApi>,
}

type Caller = Option<Extension<Identity>>;

fn answer(result: Result<Response, ApiError>) -> Response {
    result.unwrap_or_else(IntoResponse::into_response)
}

/// The handlers of entity `name`, each resolving it once per request.
fn entity<'a>(apis: &'a Apis, name: &str) -> Result<&'a EntityApi, ApiError> {
    apis.entities
        .get(name)
        .ok_or_else(|| ApiError::internal(format!("entity `{name}` is registered but unknown")))
}

/// Adds the routes of every entity of `declaration`, and `_batch`. Site-scoped entities answer
/// only under `/sites/<slug>/ext/<name>/entities/…` (the router serves every route there too).
pub(crate) fn register(r: &mut Registrar, declaration: &Declaration, enums: &Arc<EnumValues>) {
    let extension = r.extension().to_owned();
    let entities: BTreeMap<String, EntityApi> = declaration
        .entities
        .iter()
        .map(|(name, e)| {
            let api = EntityApi {
                extension: extension.clone(),
                name: name.clone(),
                entity: e.clone(),
                enums: enums.clone(),
            };
            (name.clone(), api)
        })
        .collect();
    if entities.is_empty() {
        return;
    }
    let apis = Arc::new(Apis { entities });
    for name in apis.entities.keys() {
        let collection = format!("/entities/{name}");
        let one = format!("/entities/{name}/{{id}}");
        let (a, n) = (apis.clone(), name.clone());
        r.get(
            &collection,
            move |cx: Context, caller: Caller, Query(params): Query<HashMap<String, String>>| async move {
                answer(
                    async {
                        let api = entity(&a, &n)?;
                        api.allow(caller.as_deref(), Operation::Read)?;
                        let mut tx = api.begin(&cx).await?;
                        let res = list::list(&a, api, &mut tx, &params).await?;
                        tx.commit().await?;
                        Ok(res)
                    }
                    .await,
                )
            },
        );
        let (a, n) = (apis.clone(), name.clone());
        r.get(&one, move |cx: Context, caller: Caller, Path(id): Path<String>| async move {
            answer(
                async {
                    let api = entity(&a, &n)?;
                    api.allow(caller.as_deref(), Operation::Read)?;
                    let mut tx = api.begin(&cx).await?;
                    let row = api.get(&mut tx, &id).await?;
                    tx.commit().await?;
                    Ok(axum::Json(row).into_response())
                }
                .await,
            )
        });
        let (a, n) = (apis.clone(), name.clone());
        r.post(&collection, move |cx: Context, caller: Caller, Json(body): Json<Value>| async move {
            answer(
                async {
                    let api = entity(&a, &n)?;
                    api.allow(caller.as_deref(), Operation::Create)?;
                    let mut tx = api.begin(&cx).await?;
                    let row = api.create(&mut tx, body).await?;
                    tx.commit().await?;
                    Ok((StatusCode::CREATED, axum::Json(row)).into_response())
                }
                .await,
            )
        });
        let (a, n) = (apis.clone(), name.clone());
        r.patch(
            &one,
            move |cx: Context, caller: Caller, Path(id): Path<String>, Json(body): Json<Value>| async move {
                answer(
                    async {
                        let api = entity(&a, &n)?;
                        api.allow(caller.as_deref(), Operation::Update)?;
                        let mut tx = api.begin(&cx).await?;
                        let row = api.patch(&mut tx, &id, body).await?;
                        tx.commit().await?;
                        Ok(axum::Json(row).into_response())
                    }
                    .await,
                )
            },
        );
        let (a, n) = (apis.clone(), name.clone());
        r.delete(&one, move |cx: Context, caller: Caller, Path(id): Path<String>| async move {
            answer(
                async {
                    let api = entity(&a, &n)?;
                    api.allow(caller.as_deref(), Operation::Delete)?;
                    let mut tx = api.begin(&cx).await?;
                    api.delete(&mut tx, &id).await?;
                    tx.commit().await?;
                    Ok(StatusCode::NO_CONTENT.into_response())
                }
                .await,
            )
        });
    }
    let a = apis;
    r.post("/entities/_batch", move |cx: Context, caller: Caller, Json(body): Json<Value>| async move {
        answer(
            async { Ok(axum::Json(batch::run(&a, &cx, caller.as_deref(), body).await?).into_response()) }
                .await,
        )
    });
}

/// The values of every enum `declaration` of `extension` uses, under the names its fields use
/// (`status`, `<extension>.status`), with the values every other extension adds.
pub(crate) fn enum_values(
    extension: &str,
    declaration: &Declaration,
    all: &BTreeMap<&str, &Declaration>,
) -> EnumValues {
    let mut out = EnumValues::new();
    for e in declaration.entities.values() {
        for qualified in e.fields.values().filter_map(|f| f.enum_name.as_ref()) {
            let (owner, name) = qualified.split_once('.').unwrap_or((extension, qualified.as_str()));
            let Some(decl) = all.get(owner).and_then(|d| d.enums.get(name)) else { continue };
            let mut values: BTreeSet<String> = decl.values.iter().cloned().collect();
            let key = format!("{owner}.{name}");
            for d in all.values() {
                if let Some(x) = d.enum_extensions.get(&key) {
                    values.extend(x.values.iter().cloned());
                }
            }
            out.insert(qualified.clone(), values);
        }
    }
    out
}
