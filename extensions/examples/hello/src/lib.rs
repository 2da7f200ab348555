//! The example extension: `GET /ext/hello/ping` answers `{"pong": true}`; `POST /ext/hello/greetings`
//! with `{"name": "…"}` stores a greeting in the extension's own schema and `GET
//! /ext/hello/greetings` lists them, newest first. Its two migrations (`migrations/`) create the
//! table and then add a column to it; both are reversible.
//!
//! Enable it with `cargo run --features ext-hello -- serve`.
#![warn(missing_docs)]

use annex_core::Json;
use annex_core::{ApiError, Context, Extension, Metadata, Migrations, Registrar};
use serde_json::{Value, json};

/// Answers pings and keeps greetings.
#[derive(Debug, Default)]
pub struct Hello;

#[annex_core::async_trait]
impl Extension for Hello {
    fn metadata(&self) -> Metadata {
        Metadata::new("hello", env!("CARGO_PKG_VERSION"))
            .description("Example extension: GET /ext/hello/ping answers {\"pong\": true}")
    }

    fn migrations(&self) -> Migrations {
        annex_core::migrations!("migrations")
    }

    fn register(&self, r: &mut Registrar) {
        r.get("/ping", ping);
        r.get("/greetings", list_greetings);
        r.post("/greetings", add_greeting);
    }
}

async fn ping() -> Json<Value> {
    Json(json!({ "pong": true }))
}

async fn add_greeting(cx: Context, Json(body): Json<Value>) -> Result<Json<Value>, ApiError> {
    let Some(name) = body.get("name").and_then(Value::as_str).filter(|n| !n.is_empty()) else {
        return Err(ApiError::bad_request("expected a JSON body {\"name\": \"…\"} with a non-empty name"));
    };
    let (id, at): (i64, String) =
        sqlx::query_as("insert into greetings (name) values ($1) returning id, greeted_at::text")
            .bind(name)
            .fetch_one(cx.db()?)
            .await?;
    Ok(Json(json!({ "id": id, "name": name, "greeted_at": at })))
}

async fn list_greetings(cx: Context) -> Result<Json<Value>, ApiError> {
    let rows: Vec<(i64, String, String)> =
        sqlx::query_as("select id, name, greeted_at::text from greetings order by id desc limit 100")
            .fetch_all(cx.db()?)
            .await?;
    let greetings: Vec<Value> =
        rows.into_iter().map(|(id, name, at)| json!({ "id": id, "name": name, "greeted_at": at })).collect();
    Ok(Json(json!({ "greetings": greetings })))
}

annex_core::register_extension!(Hello);
