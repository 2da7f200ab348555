//! Test extensions shared by the integration tests: small, configurable, and observable.

#![allow(dead_code)]

use std::sync::{Arc, Mutex};

use annex_core::{Context, Extension, ExtensionResult, Metadata, Registrar};
use axum::Json;
use serde_json::{Value, json};

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
