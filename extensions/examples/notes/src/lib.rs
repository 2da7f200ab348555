//! The site-scoped example: a notebook each site keeps for itself. It answers only under
//! `/sites/<slug>/ext/notes/…`, at sites where it is active:
//!
//! - `POST /sites/<slug>/ext/notes/notes` with `{"body": "…"}` adds a note;
//! - `GET /sites/<slug>/ext/notes/notes` lists the site's notes, newest first, under the site's
//!   `title` (its config there, default `"Notes"`).
//!
//! Every site's notes are in one table (`migrations/`) under a FORCE'd row-level-security
//! policy on `annex_api.annex_site_id()`; the handlers run their SQL in `cx.site_tx()` and never
//! name the site, yet a site sees and writes only its own rows.
//!
//! Enable it with `cargo run --features ext-notes -- serve`, then activate it at a site.
#![warn(missing_docs)]

use annex_core::{ApiError, Context, Extension, Json, Metadata, Migrations, Registrar};
use serde_json::{Value, json};

/// A notebook per site.
#[derive(Debug, Default)]
pub struct Notes;

#[annex_core::async_trait]
impl Extension for Notes {
    fn metadata(&self) -> Metadata {
        Metadata::new("notes", env!("CARGO_PKG_VERSION"))
            .description("Example site-scoped extension: each site's notes, isolated by row-level security")
            .site_scoped()
    }

    fn config_schema(&self) -> Option<Value> {
        Some(json!({
            "type": "object",
            "properties": { "title": { "type": "string", "minLength": 1, "maxLength": 200 } },
            "additionalProperties": false
        }))
    }

    fn migrations(&self) -> Migrations {
        annex_core::migrations!("migrations")
    }

    fn register(&self, r: &mut Registrar) {
        r.get("/notes", list_notes);
        r.post("/notes", add_note);
    }
}

async fn add_note(cx: Context, Json(body): Json<Value>) -> Result<Json<Value>, ApiError> {
    let Some(text) = body.get("body").and_then(Value::as_str).filter(|b| !b.is_empty() && b.len() <= 2000)
    else {
        return Err(ApiError::bad_request("expected a JSON body {\"body\": \"…\"} of 1 to 2000 bytes"));
    };
    let mut tx = cx.site_tx().await?;
    // No site_id: the column defaults to annex_site_id(), and the policy checks it.
    let (id, at): (i64, String) =
        sqlx::query_as("insert into notes (body) values ($1) returning id, written_at::text")
            .bind(text)
            .fetch_one(&mut *tx)
            .await?;
    tx.commit().await?;
    Ok(Json(json!({ "id": id, "body": text, "written_at": at })))
}

async fn list_notes(cx: Context) -> Result<Json<Value>, ApiError> {
    let mut tx = cx.site_tx().await?;
    // No where clause: the policy shows this site's rows only.
    let rows: Vec<(i64, String, String)> =
        sqlx::query_as("select id, body, written_at::text from notes order by id desc limit 100")
            .fetch_all(&mut *tx)
            .await?;
    tx.commit().await?;
    let config = cx.config();
    let title = config.get("title").and_then(Value::as_str).unwrap_or("Notes");
    let notes: Vec<Value> =
        rows.into_iter().map(|(id, body, at)| json!({ "id": id, "body": body, "written_at": at })).collect();
    Ok(Json(json!({ "site": cx.site().map(|s| s.slug()), "title": title, "notes": notes })))
}

annex_core::register_extension!(Notes);
