//! Five extensions for the load benchmark (`bench/load.sh`): a target route and four extensions
//! whose global hooks and middleware run on every request to it. With the rate limit and the
//! metrics the host applies to every extension route, a request to `GET /ext/bench_target/ping`
//! crosses the whole request path:
//!
//! | extension | registers |
//! |---|---|
//! | `bench_target` | `GET /ping` → `{"pong":true}` (the handler `examples/bare_axum.rs` serves too) |
//! | `bench_auth` | an `authentication` hook: `x-user: <id>` becomes the caller's identity |
//! | `bench_headers` | a `pre_request` filter reading a header, a `pre_response` filter adding one |
//! | `bench_timing` | a middleware adding `x-handled-in-us` to the response |
//! | `bench_observer` | a `post_request` filter and a `post_response` action counting requests |
//!
//! The benchmark's `annex.toml` grants `hooks:global` (and `hooks:auth` to `bench_auth`) and sets
//! a per-client rate limit at a quota the load never reaches. Opt-in: feature `ext-loadtest`.
//!
//! The four hooking extensions are **inert unless `ANNEX_LOADTEST=1`** is set when annex starts
//! (`bench/load.sh` sets it): inert, they register nothing and need no permission, so a build with
//! every feature (`cargo test --all-features`) runs unaffected and without permission errors.
//! Code that builds a host itself uses `BenchAuth::armed()` and its siblings.
#![warn(missing_docs)]

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

/// Whether `ANNEX_LOADTEST=1` arms the hooking extensions.
fn armed_by_env() -> bool {
    std::env::var_os("ANNEX_LOADTEST").is_some_and(|v| v == "1")
}

/// The permissions an armed extension needs; none when inert.
fn needs(meta: Metadata, armed: bool, permissions: &[&str]) -> Metadata {
    if !armed {
        return meta;
    }
    permissions.iter().fold(meta, |m, p| m.permission(*p))
}

macro_rules! armable {
    ($ty:ident) => {
        impl $ty {
            /// Active whatever the environment says.
            pub fn armed() -> Self {
                Self { armed: true }
            }

            /// Active when `ANNEX_LOADTEST=1`, else inert.
            pub fn from_env() -> Self {
                Self { armed: armed_by_env() }
            }
        }
    };
}

use annex_core::{Context, Extension, Hook, Identity, Metadata, Next, Registrar, hooks::HookRequest};
use axum::Json;
use axum::extract::Request;
use axum::http::{HeaderName, HeaderValue};
use serde_json::{Value, json};

/// The handler both load-benchmark servers answer with.
pub async fn ping() -> Json<Value> {
    Json(json!({ "pong": true }))
}

/// Serves `GET /ext/bench_target/ping`.
#[derive(Debug, Default)]
pub struct BenchTarget;

#[annex_core::async_trait]
impl Extension for BenchTarget {
    fn metadata(&self) -> Metadata {
        Metadata::new("bench_target", env!("CARGO_PKG_VERSION"))
            .description("Load benchmark: the target route")
    }

    fn register(&self, r: &mut Registrar) {
        r.get("/ping", ping);
    }
}

/// Authenticates `x-user: <id>` callers (so the per-client rate limit keys by identity).
#[derive(Debug, Default)]
pub struct BenchAuth {
    armed: bool,
}

armable!(BenchAuth);

#[annex_core::async_trait]
impl Extension for BenchAuth {
    fn metadata(&self) -> Metadata {
        let meta = Metadata::new("bench_auth", env!("CARGO_PKG_VERSION"))
            .description("Load benchmark: an authentication hook (inert unless ANNEX_LOADTEST=1)");
        needs(meta, self.armed, &[annex_core::permission::HOOKS_GLOBAL, annex_core::permission::HOOKS_AUTH])
    }

    fn register(&self, r: &mut Registrar) {
        if !self.armed {
            return;
        }
        r.authentication(Hook::new("x-user"), |_cx, req: HookRequest| async move {
            if let Some(user) = req.header("x-user").and_then(|v| v.to_str().ok().map(str::to_owned)) {
                req.set_identity(Identity::new(user));
            }
            Ok(())
        });
    }
}

const SEEN: HeaderName = HeaderName::from_static("x-bench-seen");

/// A request filter and a response filter.
#[derive(Debug, Default)]
pub struct BenchHeaders {
    armed: bool,
}

armable!(BenchHeaders);

#[annex_core::async_trait]
impl Extension for BenchHeaders {
    fn metadata(&self) -> Metadata {
        let meta = Metadata::new("bench_headers", env!("CARGO_PKG_VERSION")).description(
            "Load benchmark: pre_request and pre_response filters (inert unless ANNEX_LOADTEST=1)",
        );
        needs(meta, self.armed, &[annex_core::permission::HOOKS_GLOBAL])
    }

    fn register(&self, r: &mut Registrar) {
        if !self.armed {
            return;
        }
        r.pre_request(Hook::new("read"), |_cx, req: HookRequest| async move {
            let _ = req.header("user-agent");
            Ok(())
        });
        r.pre_response(Hook::new("tag"), |_cx, res| async move {
            res.set_header(SEEN, HeaderValue::from_static("1"));
            Ok(())
        });
    }
}

const HANDLED_IN: HeaderName = HeaderName::from_static("x-handled-in-us");

/// A middleware timing the handler.
#[derive(Debug, Default)]
pub struct BenchTiming {
    armed: bool,
}

armable!(BenchTiming);

#[annex_core::async_trait]
impl Extension for BenchTiming {
    fn metadata(&self) -> Metadata {
        let meta = Metadata::new("bench_timing", env!("CARGO_PKG_VERSION"))
            .description("Load benchmark: a middleware timing the handler (inert unless ANNEX_LOADTEST=1)");
        needs(meta, self.armed, &[annex_core::permission::HOOKS_GLOBAL])
    }

    fn register(&self, r: &mut Registrar) {
        if !self.armed {
            return;
        }
        r.middleware(Hook::new("timer"), |_cx: Context, req: Request, next: Next| async move {
            let started = Instant::now();
            let mut res = next.run(req).await;
            let micros = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
            res.headers_mut().insert(HANDLED_IN, HeaderValue::from(micros));
            res
        });
    }
}

static RESPONSES: AtomicU64 = AtomicU64::new(0);
static COMPLETED: AtomicU64 = AtomicU64::new(0);

/// A response filter and an action, counting what they see.
#[derive(Debug, Default)]
pub struct BenchObserver {
    armed: bool,
}

armable!(BenchObserver);

#[annex_core::async_trait]
impl Extension for BenchObserver {
    fn metadata(&self) -> Metadata {
        let meta = Metadata::new("bench_observer", env!("CARGO_PKG_VERSION"))
            .description("Load benchmark: a post_request filter and a post_response action (inert unless ANNEX_LOADTEST=1)");
        needs(meta, self.armed, &[annex_core::permission::HOOKS_GLOBAL])
    }

    fn register(&self, r: &mut Registrar) {
        if !self.armed {
            return;
        }
        r.post_request(Hook::new("count"), |_cx, _res| async {
            RESPONSES.fetch_add(1, Ordering::Relaxed);
            Ok(())
        });
        r.post_response(Hook::new("observe"), |_cx, _done| async {
            COMPLETED.fetch_add(1, Ordering::Relaxed);
        });
    }
}

annex_core::register_extension!(BenchTarget);
annex_core::register_extension!(BenchAuth, BenchAuth::from_env());
annex_core::register_extension!(BenchHeaders, BenchHeaders::from_env());
annex_core::register_extension!(BenchTiming, BenchTiming::from_env());
annex_core::register_extension!(BenchObserver, BenchObserver::from_env());
