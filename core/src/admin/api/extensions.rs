//! `GET /api/v1/extensions` and `GET /api/v1/extensions/{name}`.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use serde_json::{Value, json};

use super::error::database;
use crate::control::{ControlError, dependents_of};
use crate::db::{ops_store, state};
use crate::host::HostInner;

/// Every extension with its switch, state and latest health.
pub(super) async fn list(State(host): State<Arc<HostInner>>) -> Result<Json<Value>, ControlError> {
    let stored: HashMap<String, bool> =
        state::all(&host.pool).await.map_err(database)?.into_iter().map(|r| (r.name, r.enabled)).collect();
    let health: HashMap<String, String> =
        ops_store::latest_health(&host.pool).await.map_err(database)?.into_iter().collect();
    let extensions: Vec<Value> = host
        .extensions
        .iter()
        .map(|m| {
            let name = &m.metadata.name;
            let st = m.slot.state();
            json!({
                "name": name,
                "version": m.metadata.version,
                "description": m.metadata.description,
                "enabled": stored.get(name).copied().unwrap_or(false),
                "state": st.as_str(),
                "reason": match &st { crate::gate::ExtensionState::Failed(r) => Some(r.as_str()), _ => None },
                "health": health.get(name).map(String::as_str).unwrap_or("unknown"),
            })
        })
        .collect();
    Ok(Json(json!({ "extensions": extensions })))
}

/// Metadata, permissions, routes, hooks, migrations, dependents.
pub(super) async fn info(
    State(host): State<Arc<HostInner>>,
    Path(name): Path<String>,
) -> Result<Json<Value>, ControlError> {
    let m = host.find(&name).ok_or_else(|| ControlError::NotFound(name.clone()))?;
    let stored = ops_store::switch_and_config(&host.pool, &name).await.map_err(database)?;
    let granted = host.config.extension(&name).permissions;
    let all: Vec<_> = host.extensions.iter().map(|x| &x.metadata).collect();
    let routes: Vec<Value> = m
        .routes
        .iter()
        .map(|r| json!({ "method": r.method.as_str(), "path": format!("/ext/{name}{}", r.path) }))
        .collect();
    let migrations: Vec<Value> = m
        .extension
        .migrations()
        .iter()
        .map(
            |s| json!({ "version": s.version, "description": s.description, "reversible": s.down.is_some() }),
        )
        .collect();
    let st = m.slot.state();
    Ok(Json(json!({
        "name": name,
        "version": m.metadata.version,
        "description": m.metadata.description,
        "enabled": stored.map(|(enabled, _)| enabled).unwrap_or(false),
        "state": st.as_str(),
        "reason": match &st { crate::gate::ExtensionState::Failed(r) => Some(r.as_str()), _ => None },
        "dependencies": m.metadata.dependencies,
        "dependents": dependents_of(&all, &name, |_| true),
        "permissions": { "required": m.metadata.permissions, "granted": granted },
        "routes": routes,
        // Filled in by the hooks engine once merged: one entry per hook point the extension uses.
        "hooks": [],
        "migrations": migrations,
        "config_schema": m.extension.config_schema(),
        "stats": m.cx.stats(),
    })))
}
