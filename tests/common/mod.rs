//! Helpers shared by the database tests: an extension with scripted migrations and a route that
//! runs SQL through the extension's own pool.
#![allow(dead_code, unreachable_pub)]

use annex_core::{ApiError, Context, Extension, Metadata, Migration, Migrations, Registrar};
use axum::Json;
use serde_json::{Value, json};
use sqlx::{PgPool, Row};

/// An extension named at run time, with the given migrations and `POST /sql`.
pub struct Scripted {
    pub name: String,
    pub migrations: Migrations,
}

impl Scripted {
    pub fn new(name: &str, steps: Vec<Migration>) -> Self {
        Self { name: name.to_owned(), migrations: Migrations::new(steps) }
    }
}

#[annex_core::async_trait]
impl Extension for Scripted {
    fn metadata(&self) -> Metadata {
        Metadata::new(self.name.clone(), "1.0.0").description("scripted test extension")
    }
    fn migrations(&self) -> Migrations {
        self.migrations.clone()
    }
    fn register(&self, r: &mut Registrar) {
        r.post("/sql", run_sql);
        r.get("/ping", || async { Json(json!({ "pong": true })) });
    }
}

/// Runs the body as SQL on the extension's pool: `{"value": <first column of first row as text>}`
/// or `{"error": <database message>}`.
async fn run_sql(cx: Context, sql: String) -> Result<Json<Value>, ApiError> {
    let pool = cx.db()?;
    match sqlx::raw_sql(&sql).fetch_all(pool).await {
        Ok(rows) => {
            let value = rows.first().and_then(|r| r.try_get::<Option<String>, _>(0).ok()).flatten();
            Ok(Json(json!({ "value": value })))
        }
        Err(e) => Ok(Json(json!({ "error": e.to_string() }))),
    }
}

/// `POST /ext/<ext>/sql` → Ok(value) or Err(database message).
pub async fn sql(t: &annex_core::testkit::TestHost, ext: &str, sql: &str) -> Result<Option<String>, String> {
    let res = t
        .client()
        .post(t.url(&format!("/ext/{ext}/sql")))
        .body(sql.to_owned())
        .send()
        .await
        .expect("request sent");
    assert_eq!(res.status(), 200, "POST /ext/{ext}/sql");
    let body: Value = res.json().await.expect("json");
    match body.get("error").and_then(Value::as_str) {
        Some(e) => Err(e.to_owned()),
        None => Ok(body["value"].as_str().map(str::to_owned)),
    }
}

/// A superuser pool on the test database, for assertions.
pub async fn superuser(url: &str) -> PgPool {
    PgPool::connect(url).await.expect("superuser connects")
}

/// A step with up and down SQL.
pub fn step(version: i64, description: &str, up: &str, down: &str) -> Migration {
    Migration::new(version, description, up, Some(down))
}
