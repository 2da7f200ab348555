//! Per-request cost of the extension request path: the same handler served with no hooks at all,
//! and with 5 extensions each registering global hooks at every point plus a middleware, an
//! authentication hook setting an identity and a (never exhausted) per-client rate limit.
//!
//! Run: `cargo bench -p annex-core --features testkit --bench request_path`
//! (needs the PostgreSQL server binaries, like the tests; the database is only used at startup).

use std::sync::Arc;

use annex_core::testkit::test_database_url;
use annex_core::{
    Context, Extension, Hook, Identity, Metadata, Registrar,
    config::{Config, RateLimitConfig},
    hooks::HookRequest,
    host::Host,
};
use axum::body::Body;
use axum::extract::Request;
use axum::http::HeaderValue;
use criterion::{Criterion, criterion_group, criterion_main};
use tower::ServiceExt;

struct Target;

#[annex_core::async_trait]
impl Extension for Target {
    fn metadata(&self) -> Metadata {
        Metadata::new("target", "1.0.0")
    }
    fn register(&self, r: &mut Registrar) {
        r.get("/ping", || async { "pong" });
    }
}

struct Hooked(&'static str);

#[annex_core::async_trait]
impl Extension for Hooked {
    fn metadata(&self) -> Metadata {
        Metadata::new(self.0, "1.0.0")
    }
    fn register(&self, r: &mut Registrar) {
        if self.0 == "hooks0" {
            r.authentication(Hook::new("user"), |_cx, req: HookRequest| async move {
                if req.header("x-user").is_some() {
                    req.set_identity(Identity::new("bench"));
                }
                Ok(())
            });
        }
        r.pre_request(Hook::new("pre"), |_cx, req: HookRequest| async move {
            let _ = req.header("x-user");
            Ok(())
        });
        r.post_request(Hook::new("post").priority(1), |_cx, _res| async { Ok(()) });
        r.pre_response(Hook::new("resp"), |_cx, res| async move {
            res.set_header(axum::http::HeaderName::from_static("x-seen"), HeaderValue::from_static("1"));
            Ok(())
        });
        r.post_response(Hook::new("observe"), |_cx, _done| async {});
        r.middleware(Hook::new("mw"), |_cx: Context, req: Request, next: annex_core::Next| async move {
            next.run(req).await
        });
    }
}

async fn host(hooked: bool) -> Host {
    let mut config = Config::default();
    config.database.url = Some(test_database_url().await.expect("database"));
    config.data_dir = std::env::temp_dir().join("annex-bench");
    let mut builder = Host::builder(config.clone()).extension(Target);
    if hooked {
        for name in ["hooks0", "hooks1", "hooks2", "hooks3", "hooks4"] {
            let e = config.extensions.entry(name.to_owned()).or_default();
            e.permissions = vec!["hooks:global".into(), "hooks:auth".into()];
        }
        config.extensions.entry("target".into()).or_default().rate_limit =
            Some(RateLimitConfig { per_second: u32::MAX, burst: u32::MAX, per_client: true });
        builder = Host::builder(config).extension(Target);
        for name in ["hooks0", "hooks1", "hooks2", "hooks3", "hooks4"] {
            builder = builder.extension(Hooked(name));
        }
    }
    builder.start().await.expect("host starts")
}

fn bench(c: &mut Criterion) {
    let rt = Arc::new(
        tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().expect("runtime"),
    );
    let (bare, hooked) = rt.block_on(async { (host(false).await, host(true).await) });
    let bare_app = bare.router().expect("router");
    let hooked_app = hooked.router().expect("router");
    let request =
        || Request::get("/ext/target/ping").header("x-user", "bench").body(Body::empty()).expect("request");

    // Both answer 200 before measuring.
    rt.block_on(async {
        for app in [&bare_app, &hooked_app] {
            let res = app.clone().oneshot(request()).await.expect("infallible");
            assert_eq!(res.status(), 200);
        }
    });

    let mut group = c.benchmark_group("request_path");
    group.bench_function("no_hooks", |b| {
        b.to_async(&*rt).iter(|| async { bare_app.clone().oneshot(request()).await.expect("infallible") })
    });
    group.bench_function("five_extensions_hooks_middleware_rate_limit", |b| {
        b.to_async(&*rt).iter(|| async { hooked_app.clone().oneshot(request()).await.expect("infallible") })
    });
    group.finish();
    rt.block_on(async {
        bare.shutdown().await;
        hooked.shutdown().await;
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
