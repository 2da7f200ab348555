//! Test extensions and helpers shared by the operations tests.

use std::io::{BufRead, BufReader};
use std::process::{Child, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use annex_core::testkit::TestHost;
use annex_core::{Context, Extension, ExtensionResult, Health, Metadata, Registrar};
use axum::Json;
use axum::extract::Path;
use serde_json::{Value, json};

pub(crate) const TOKEN: &str = "test-admin-token";

/// `base`: items route, a panicking route, a config schema; `apply_config` refuses
/// `{"greeting": "reject"}`; health follows a switch.
#[derive(Clone, Default)]
pub(crate) struct Base {
    pub(crate) probe: Arc<Probe>,
}

/// What tests observe of `Base`.
#[derive(Default)]
pub(crate) struct Probe {
    pub(crate) unhealthy: AtomicBool,
    pub(crate) stops: AtomicUsize,
    pub(crate) applied: AtomicUsize,
}

#[annex_core::async_trait]
impl Extension for Base {
    fn metadata(&self) -> Metadata {
        Metadata::new("base", "1.0.0").description("test base")
    }

    fn config_schema(&self) -> Option<Value> {
        Some(json!({
            "type": "object",
            "properties": { "greeting": { "type": "string" }, "limit": { "type": "integer", "minimum": 1 } },
            "additionalProperties": false
        }))
    }

    fn register(&self, r: &mut Registrar) {
        r.get("/items/{id}", item);
        r.get("/greeting", greeting);
        r.get("/boom", boom);
    }

    async fn stop(&self, _cx: &Context) -> ExtensionResult {
        self.probe.stops.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }

    async fn health(&self, _cx: &Context) -> Health {
        if self.probe.unhealthy.load(Ordering::SeqCst) {
            Health::down("switched off by the test")
        } else {
            Health::healthy()
        }
    }

    async fn apply_config(&self, _cx: &Context, config: &Value) -> ExtensionResult {
        if config["greeting"] == "reject" {
            return Err("greeting `reject` is refused".into());
        }
        self.probe.applied.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }
}

async fn item(Path(id): Path<u32>) -> Json<Value> {
    Json(json!({ "id": id }))
}

async fn greeting(cx: Context) -> Json<Value> {
    Json(json!({ "greeting": cx.config()["greeting"] }))
}

async fn boom() -> &'static str {
    panic!("boom on purpose")
}

/// `dependent`: depends on `base`.
#[derive(Default)]
pub(crate) struct Dependent;

#[annex_core::async_trait]
impl Extension for Dependent {
    fn metadata(&self) -> Metadata {
        Metadata::new("dependent", "0.1.0").depends_on("base", "^1")
    }

    fn register(&self, r: &mut Registrar) {
        r.get("/ping", || async { "pong" });
    }
}

/// A host with `base` and `dependent`, the test token and a fast health interval.
pub(crate) async fn host(base: Base, database_url: Option<&str>) -> TestHost {
    let mut b = TestHost::builder().extension(base).extension(Dependent).config(|c| {
        c.server.admin_token = Some(TOKEN.into());
        c.health.interval_ms = 100;
        c.health.failure_threshold = 3;
    });
    if let Some(url) = database_url {
        b = b.database_url(url);
    }
    b.start().await.expect("host starts")
}

/// An authenticated admin request.
pub(crate) fn admin(t: &TestHost, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
    t.client().request(method, t.url(path)).bearer_auth(TOKEN)
}

/// Polls `check` until it is true or `limit` passes; returns how long it took.
pub(crate) async fn eventually<F, Fut>(limit: Duration, mut check: F) -> Option<Duration>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = Instant::now();
    while start.elapsed() < limit {
        if check().await {
            return Some(start.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    None
}

/// The body of a response as JSON.
pub(crate) async fn body(res: reqwest::Response) -> Value {
    res.json().await.expect("JSON body")
}

/// A running `annex serve` and its base URL.
pub(crate) struct Server {
    child: Child,
    pub(crate) url: String,
}

impl Server {
    /// Spawns `command` (an `annex serve --bind 127.0.0.1:0`) and waits for its address.
    pub(crate) fn start(mut command: std::process::Command, data: &std::path::Path) -> Server {
        let mut child = command
            .env("ANNEX_DATA_DIR", data)
            .env("ANNEX_LOG", "info")
            .env("ANNEX_LOG_FORMAT", "json")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("annex serve runs");
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut sent = false;
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if !sent && let Some(at) = line.find("http://") {
                    let url: String =
                        line[at..].chars().take_while(|c| !c.is_whitespace() && *c != '"').collect();
                    let _ = tx.send(url);
                    sent = true;
                }
            }
        });
        let url = rx.recv_timeout(Duration::from_secs(60)).expect("annex serve announced its address");
        Server { child, url }
    }

    /// SIGKILL (no shutdown of any kind), then wait.
    pub(crate) fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM, then wait.
    pub(crate) fn stop(mut self) {
        let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        let _ = self.child.wait();
    }
}

/// An extension made of metadata and an optional config schema, with `GET /ping` and
/// `GET /config` (the sites and console tests).
pub(crate) struct Declared(pub(crate) Metadata, pub(crate) Option<Value>);

#[annex_core::async_trait]
impl Extension for Declared {
    fn metadata(&self) -> Metadata {
        self.0.clone()
    }

    fn config_schema(&self) -> Option<Value> {
        self.1.clone()
    }

    fn register(&self, r: &mut Registrar) {
        r.get("/ping", || async { "pong" });
        r.get("/config", |cx: Context| async move { Json((*cx.config()).clone()) });
    }
}
