//! Extensions at a site: `POST …/extensions/{name}/validate`,
//! `POST …/extensions/validate-combination`, `POST …/extensions/{name}/activate`,
//! `DELETE …/extensions/{name}[?cascade=true&reason=…]`, `GET|POST …/extensions/{name}/signoffs`
//! and `GET …/extensions/{name}/audit-trail[?before=&limit=]`.

use std::collections::HashMap;

use axum::Extension;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde::Deserialize;
use serde_json::Value;

use super::ApiState;
use super::sites::{answer, changed, resolve, sites};
use crate::access::{Action, Actor};
use crate::extension::json::Json;
use crate::sites::{SignoffRequest, SiteError};

/// `POST …/validate` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ValidateBody {
    config: Value,
}

/// One member of `validate-combination`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Member {
    name: String,
    config: Value,
}

/// `POST …/validate-combination` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct CombinationBody {
    extensions: Vec<Member>,
}

/// `POST …/activate` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ActivateBody {
    config: Value,
    #[serde(default)]
    reason: String,
}

/// A config must be a JSON object; anything else is a malformed body, refused before validation.
fn object_config(config: &Value, pointer: &str) -> Result<(), SiteError> {
    if config.is_object() {
        Ok(())
    } else {
        Err(SiteError::InvalidInput(format!("`{pointer}` must be a JSON object (the extension's config)")))
    }
}

fn unknown_query(query: &HashMap<String, String>, known: &[&str]) -> Result<(), SiteError> {
    match query.keys().find(|k| !known.contains(&k.as_str())) {
        Some(k) => Err(SiteError::InvalidInput(format!(
            "unknown query parameter `{}`; use {}",
            k.replace('\0', ""),
            known.join(", ")
        ))),
        None => Ok(()),
    }
}

/// The report for one extension's config; changes nothing but the record of conflicts.
pub(super) async fn validate(
    State(state): State<ApiState>,
    Extension(actor): Extension<Actor>,
    Path((site, name)): Path<(String, String)>,
    Json(body): Json<ValidateBody>,
) -> Response {
    answer(
        async {
            let site = resolve(&state, &actor, &site, Action::Validate).await?;
            object_config(&body.config, "/config")?;
            sites(&state).validate(&site, &name, body.config).await
        }
        .await,
    )
}

/// The report for a set of extensions validated together.
pub(super) async fn validate_combination(
    State(state): State<ApiState>,
    Extension(actor): Extension<Actor>,
    Path(site): Path<String>,
    Json(body): Json<CombinationBody>,
) -> Response {
    answer(
        async {
            let site = resolve(&state, &actor, &site, Action::Validate).await?;
            for (i, m) in body.extensions.iter().enumerate() {
                object_config(&m.config, &format!("/extensions/{i}/config"))?;
            }
            let set = body.extensions.into_iter().map(|m| (m.name, m.config)).collect();
            // A name in the body is not a resource of the path: one not compiled in is bad input.
            sites(&state).validate_combination(&site, set).await.map_err(|e| match e {
                SiteError::UnknownExtension(name) => SiteError::InvalidInput(format!(
                    "no extension named `{name}` is compiled in; `annex extensions list` shows the known ones"
                )),
                other => other,
            })
        }
        .await,
    )
}

/// Activates (or re-activates with a new config): 200, 409 with the report, 422.
pub(super) async fn activate(
    State(state): State<ApiState>,
    Extension(actor): Extension<Actor>,
    Path((site, name)): Path<(String, String)>,
    Json(body): Json<ActivateBody>,
) -> Response {
    let result = async {
        let site = resolve(&state, &actor, &site, Action::Manage).await?;
        let done = sites(&state).activate(&actor, &site, &name, body.config, &body.reason).await?;
        Ok((site.id, done))
    }
    .await;
    changed(&state, StatusCode::OK, result).await
}

/// Deactivates: 200, or 409 naming the active dependents unless `cascade=true`.
pub(super) async fn deactivate(
    State(state): State<ApiState>,
    Extension(actor): Extension<Actor>,
    Path((site, name)): Path<(String, String)>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let result = async {
        unknown_query(&query, &["cascade", "reason"])?;
        let cascade = match query.get("cascade").map(String::as_str) {
            None | Some("false") => false,
            Some("true") => true,
            Some(_) => return Err(SiteError::InvalidInput("cascade must be true or false".into())),
        };
        let reason = query.get("reason").cloned().unwrap_or_default();
        let site = resolve(&state, &actor, &site, Action::Manage).await?;
        let done = sites(&state).deactivate(&actor, &site, &name, cascade, &reason).await?;
        Ok((site.id, done))
    }
    .await;
    changed(&state, StatusCode::OK, result).await
}

/// Records a sign-off by the calling operator: 201.
pub(super) async fn sign(
    State(state): State<ApiState>,
    Extension(actor): Extension<Actor>,
    Path((site, name)): Path<(String, String)>,
    Json(body): Json<SignoffRequest>,
) -> Response {
    let result = async {
        let site = resolve(&state, &actor, &site, Action::Sign).await?;
        let done = sites(&state).sign(&actor, &site, &name, &body).await?;
        Ok((site.id, done))
    }
    .await;
    changed(&state, StatusCode::CREATED, result).await
}

/// Every sign-off of the extension at the site, each marked valid for the current hash or not.
pub(super) async fn signoffs(
    State(state): State<ApiState>,
    Extension(actor): Extension<Actor>,
    Path((site, name)): Path<(String, String)>,
) -> Response {
    answer(
        async {
            let site = resolve(&state, &actor, &site, Action::Read).await?;
            sites(&state).signoffs(&site, &name).await
        }
        .await,
    )
}

/// The extension's audit trail at the site, newest first.
pub(super) async fn trail(
    State(state): State<ApiState>,
    Extension(actor): Extension<Actor>,
    Path((site, name)): Path<(String, String)>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    answer(
        async {
            unknown_query(&query, &["before", "limit"])?;
            let limit = match query.get("limit").map(|l| l.parse::<i64>()) {
                None => 50,
                Some(Ok(n)) => n,
                Some(Err(_)) => {
                    return Err(SiteError::InvalidInput("limit must be a whole number from 1 to 500".into()));
                }
            };
            let before = match query.get("before").map(|b| b.parse::<i64>()) {
                None => None,
                Some(Ok(n)) => Some(n),
                Some(Err(_)) => {
                    return Err(SiteError::InvalidInput(
                        "before must be an entry id (a whole number)".into(),
                    ));
                }
            };
            let site = resolve(&state, &actor, &site, Action::Read).await?;
            sites(&state).trail(&site, &name, before, limit).await
        }
        .await,
    )
}
