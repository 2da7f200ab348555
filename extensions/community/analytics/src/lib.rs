//! The community `analytics` extension: a global `post_response` hook records every request to
//! an extension route (route template, method, status, duration, referrer, user-agent family,
//! identity) into a bounded in-memory buffer that a background task writes in batches;
//! `POST /ext/analytics/track` records custom events; `GET /ext/analytics/stats` aggregates;
//! `GET /ext/analytics/dashboard` draws it all as one HTML page.
//!
//! It needs permissions `database` and `hooks:global`. See the crate's README.md.
#![warn(missing_docs)]

mod agent;
mod dashboard;
mod recorder;
mod settings;
mod stats;
mod track;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::SystemTime;

use annex_core::{
    ApiError, Context, Extension, ExtensionResult, Health, Hook, Identity, Metadata, Migrations, Registrar,
    hooks::Completed, permission,
};
use axum::Json;
use axum::body::Bytes;
use axum::extract::Query;
use axum::extract::rejection::QueryRejection;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

pub use agent::{Agent, classify};
use recorder::Recorder;
pub use recorder::RecorderFigures;
pub use settings::Settings;

/// Records page views and custom events, and shows them.
#[derive(Debug, Default)]
pub struct Analytics {
    recorder: Arc<Recorder>,
}

impl Analytics {
    /// The recorder's figures since this instance was created.
    pub fn figures(&self) -> RecorderFigures {
        self.recorder.figures()
    }
}

/// The config as [`Settings`]; absent keys take their defaults.
fn settings_of(config: &Value) -> Result<Settings, serde_json::Error> {
    if config.is_null() { Ok(Settings::default()) } else { serde::Deserialize::deserialize(config) }
}

#[annex_core::async_trait]
impl Extension for Analytics {
    fn metadata(&self) -> Metadata {
        Metadata::new("analytics", env!("CARGO_PKG_VERSION"))
            .description("Page views, custom events, stats and a dashboard")
            .permission(permission::DATABASE)
            .permission(permission::HOOKS_GLOBAL)
    }

    fn config_schema(&self) -> Option<Value> {
        Some(settings::schema())
    }

    fn migrations(&self) -> Migrations {
        annex_core::migrations!("migrations")
    }

    fn register(&self, r: &mut Registrar) {
        let recorder = self.recorder.clone();
        // The action only buffers (see Recorder::record): no await, no database.
        r.post_response(Hook::new("page_views"), move |_cx: Context, done: Completed| {
            recorder.record(&done);
            std::future::ready(())
        });
        let recorder = self.recorder.clone();
        r.get("/stats", move |cx: Context, query: Result<Query<HashMap<String, String>>, QueryRejection>| {
            stats_json(cx, recorder.clone(), query)
        });
        let recorder = self.recorder.clone();
        r.get(
            "/dashboard",
            move |cx: Context, query: Result<Query<HashMap<String, String>>, QueryRejection>| {
                dashboard_page(cx, recorder.clone(), query)
            },
        );
        r.post("/track", track_event);
    }

    async fn init(&self, cx: &Context) -> ExtensionResult {
        self.recorder.set_settings(settings_of(&cx.config())?);
        Ok(())
    }

    async fn start(&self, cx: &Context) -> ExtensionResult {
        let pool = cx.db()?.clone();
        let (stop, done) = self.recorder.begin();
        cx.spawn(self.recorder.clone().run(pool, stop, done))?;
        Ok(())
    }

    async fn stop(&self, cx: &Context) -> ExtensionResult {
        self.recorder.shutdown(cx.db()?).await;
        Ok(())
    }

    async fn apply_config(&self, _cx: &Context, config: &Value) -> ExtensionResult {
        self.recorder.set_settings(settings_of(config)?);
        Ok(())
    }

    async fn health(&self, _cx: &Context) -> Health {
        if self.recorder.last_write_failed() {
            Health::degraded("the last batch of page views could not be written; see the log")
        } else {
            Health::healthy()
        }
    }
}

async fn load_stats(
    cx: &Context,
    recorder: &Recorder,
    query: Result<Query<HashMap<String, String>>, QueryRejection>,
) -> Result<stats::Stats, ApiError> {
    let Query(query) =
        query.map_err(|e| ApiError::bad_request(format!("cannot read the query string: {e}")))?;
    let window = stats::Window::from_query(&query, SystemTime::now())?;
    Ok(stats::query(cx.db()?, &window, recorder.figures()).await?)
}

async fn stats_json(
    cx: Context,
    recorder: Arc<Recorder>,
    query: Result<Query<HashMap<String, String>>, QueryRejection>,
) -> Result<Json<stats::Stats>, ApiError> {
    Ok(Json(load_stats(&cx, &recorder, query).await?))
}

async fn dashboard_page(
    cx: Context,
    recorder: Arc<Recorder>,
    query: Result<Query<HashMap<String, String>>, QueryRejection>,
) -> Result<Response, ApiError> {
    let stats = load_stats(&cx, &recorder, query).await?;
    Ok(([(header::CONTENT_TYPE, "text/html; charset=utf-8")], dashboard::render(&stats)).into_response())
}

async fn track_event(cx: Context, identity: Option<Identity>, body: Bytes) -> Result<Response, ApiError> {
    let event = track::parse(&body)?;
    let (id, at): (i64, String) = sqlx::query_as(
        r#"insert into events (name, properties, identity) values ($1, $2, $3)
           returning id, to_char(occurred_at at time zone 'utc', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')"#,
    )
    .bind(&event.name)
    .bind(&event.properties)
    .bind(identity.as_ref().map(Identity::id))
    .fetch_one(cx.db()?)
    .await?;
    Ok((StatusCode::CREATED, Json(json!({ "id": id, "name": event.name, "occurred_at": at })))
        .into_response())
}

annex_core::register_extension!(Analytics);
