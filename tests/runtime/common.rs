//! Test extensions shared by the integration tests: small, configurable, and observable, and
//! helpers for the database tests.

#![allow(dead_code, unreachable_pub)]

use std::sync::{Arc, Mutex};

use annex_core::{ApiError, Context, Extension, ExtensionResult, Metadata, Migration, Migrations, Registrar};
use axum::Json;
use serde_json::{Value, json};
use sqlx::{PgPool, Row};

/// What a [`Probe`] does in each lifecycle call.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Fault {
    #[default]
    None,
    PanicInInit,
    PanicInStart,
    FailStart,
    HangInStart,
    PanicInStop,
}

/// A configurable extension that records its lifecycle calls into a shared journal.
#[derive(Clone, Default)]
pub struct Probe {
    pub name: &'static str,
    pub version: &'static str,
    pub deps: Vec<(&'static str, &'static str)>,
    pub fault: Fault,
    pub journal: Journal,
    pub routes: bool,
}

/// `"<name>:<call>"` entries in call order.
#[derive(Clone, Default)]
pub struct Journal(Arc<Mutex<Vec<String>>>);

impl Journal {
    pub fn push(&self, entry: String) {
        self.0.lock().expect("journal").push(entry);
    }
    pub fn entries(&self) -> Vec<String> {
        self.0.lock().expect("journal").clone()
    }
    /// Entries for one call kind, as the names in order.
    pub fn names_for(&self, call: &str) -> Vec<String> {
        self.entries().iter().filter_map(|e| e.strip_suffix(&format!(":{call}")).map(str::to_owned)).collect()
    }
}

impl Probe {
    pub fn new(name: &'static str, journal: &Journal) -> Self {
        Self { name, version: "1.0.0", journal: journal.clone(), routes: true, ..Self::default() }
    }
    pub fn depends_on(mut self, name: &'static str, req: &'static str) -> Self {
        self.deps.push((name, req));
        self
    }
    pub fn fault(mut self, fault: Fault) -> Self {
        self.fault = fault;
        self
    }
}

#[annex_core::async_trait]
impl Extension for Probe {
    fn metadata(&self) -> Metadata {
        let mut m = Metadata::new(self.name, self.version).description("test probe");
        for (name, req) in &self.deps {
            m = m.depends_on(*name, *req);
        }
        m
    }

    fn register(&self, r: &mut Registrar) {
        if self.routes {
            r.get("/ping", |cx: Context| async move { Json(json!({ "pong": cx.name() })) });
            r.get("/boom", || async {
                if true {
                    panic!("handler exploded");
                }
                "unreachable"
            });
        }
    }

    async fn init(&self, _cx: &Context) -> ExtensionResult {
        self.journal.push(format!("{}:init", self.name));
        if self.fault == Fault::PanicInInit {
            panic!("init exploded");
        }
        Ok(())
    }

    async fn start(&self, _cx: &Context) -> ExtensionResult {
        self.journal.push(format!("{}:start", self.name));
        match self.fault {
            Fault::PanicInStart => panic!("start exploded"),
            Fault::FailStart => Err("the widget is not configured".into()),
            Fault::HangInStart => {
                tokio::time::sleep(std::time::Duration::from_secs(3600)).await;
                Ok(())
            }
            _ => Ok(()),
        }
    }

    async fn stop(&self, _cx: &Context) -> ExtensionResult {
        self.journal.push(format!("{}:stop", self.name));
        if self.fault == Fault::PanicInStop {
            panic!("stop exploded");
        }
        Ok(())
    }
}

/// Reads a JSON body, failing the test with the status and text if it is not JSON.
pub async fn json_body(res: reqwest::Response) -> Value {
    let status = res.status();
    let text = res.text().await.expect("body");
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("status {status}: body is not JSON ({e}): {text}"))
}

// Database test helpers: an extension with scripted migrations and SQL through its own pool.

/// An extension named at run time, with the given migrations and `POST /sql`.
pub struct Scripted {
    pub name: String,
    pub migrations: Migrations,
    pub entities: Option<annex_core::extension::Entities>,
}

impl Scripted {
    pub fn new(name: &str, steps: Vec<Migration>) -> Self {
        Self { name: name.to_owned(), migrations: Migrations::new(steps), entities: None }
    }

    /// The same, declaring entities.
    pub fn with_entities(mut self, entities: annex_core::extension::Entities) -> Self {
        self.entities = Some(entities);
        self
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
    fn entities(&self) -> Option<annex_core::extension::Entities> {
        self.entities.clone()
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
