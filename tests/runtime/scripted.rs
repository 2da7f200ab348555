//! A test extension whose registration is a closure, so each test declares exactly the routes,
//! hooks, middleware and permissions it exercises; plus a shared log and config helpers.

#![allow(dead_code)]

use std::sync::{Arc, Mutex, OnceLock};

use annex_core::{Context, Extension, ExtensionResult, Metadata, Registrar, config::Config};

type Register = Arc<dyn Fn(&mut Registrar) + Send + Sync>;

/// An extension built from a name, declared permissions and a registration closure. Its
/// `Context` is kept once started, so tests can call its services directly.
#[derive(Clone)]
pub struct Scripted {
    name: &'static str,
    permissions: Vec<&'static str>,
    register: Register,
    pub cx: Arc<OnceLock<Context>>,
}

impl Scripted {
    pub fn new(name: &'static str, register: impl Fn(&mut Registrar) + Send + Sync + 'static) -> Self {
        Self { name, permissions: Vec::new(), register: Arc::new(register), cx: Arc::default() }
    }

    pub fn needs(mut self, permission: &'static str) -> Self {
        self.permissions.push(permission);
        self
    }

    /// The context, once `init` ran.
    pub fn context(&self) -> Context {
        self.cx.get().cloned().expect("extension was initialised")
    }
}

#[annex_core::async_trait]
impl Extension for Scripted {
    fn metadata(&self) -> Metadata {
        self.permissions.iter().fold(Metadata::new(self.name, "1.0.0"), |m, p| m.permission(*p))
    }

    fn register(&self, r: &mut Registrar) {
        (self.register)(r);
    }

    async fn init(&self, cx: &Context) -> ExtensionResult {
        let _ = self.cx.set(cx.clone());
        Ok(())
    }
}

/// Entries in the order they were pushed, shared between hooks, handlers and the test.
#[derive(Clone, Default)]
pub struct Log(Arc<Mutex<Vec<String>>>);

impl Log {
    pub fn push(&self, entry: impl Into<String>) {
        self.0.lock().expect("log").push(entry.into());
    }
    pub fn take(&self) -> Vec<String> {
        std::mem::take(&mut *self.0.lock().expect("log"))
    }
    pub fn entries(&self) -> Vec<String> {
        self.0.lock().expect("log").clone()
    }
}

/// Grants `permissions` to extension `name`.
pub fn grant(c: &mut Config, name: &str, permissions: &[&str]) {
    let e = c.extensions.entry(name.to_owned()).or_default();
    e.permissions.extend(permissions.iter().map(|p| (*p).to_owned()));
}
