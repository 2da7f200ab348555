//! The two annex profiles of `bench/load.sh`, in process and without a database: one request
//! through the router `annex serve` builds, sent with tower's `oneshot` (no HTTP, no sockets).
//!
//! - `request_profile/bare_axum`: the same handler on a bare axum router (the baseline);
//! - `request_profile/plain`: the target extension with a per-client rate limit (request id,
//!   gate, metrics, quotas, rate limit, panic catching);
//! - `request_profile/full`: plus four extensions hooking every point and a middleware;
//! - `request_profile/plain_at_site`: the plain profile under `/sites/<slug>/ext/…` (the path
//!   rewritten, the site's gate among 1 000 sites, the site's config in the Context).
//!
//! Run: `cargo bench -p annex-core --features bench --bench request_profiles` (no database).

use annex_core::__bench::RequestPathFixture;

/// The binary's allocator (`cmd/main.rs`): what the quotas' attribution costs is measured with it
/// (against the system allocator with `--features bench-system-alloc`: bench/alloc_cost.sh).
#[cfg(not(feature = "bench-system-alloc"))]
#[global_allocator]
static ALLOC: annex_alloc::Accounting = annex_alloc::Accounting;
use criterion::{Criterion, criterion_group, criterion_main};
use tower::ServiceExt;

/// `ANNEX_PROFILE_ONLY=<bare|plain|full|plain_at_site>:<n>`: send `n` requests of that profile
/// and exit, without criterion — for instruction counts under `valgrind --tool=callgrind`
/// (repeatable whatever else the machine does): run with two `n` and divide the difference.
fn profile_only(spec: &str) {
    let (name, n) = spec.split_once(':').unwrap_or((spec, "10000"));
    let n: usize = n.parse().expect("ANNEX_PROFILE_ONLY=<profile>:<n>");
    // One thread: no worker to park and wake, so the counts repeat from run to run.
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    rt.block_on(async {
        let (app, request): (axum::Router, fn() -> axum::extract::Request) = match name {
            "bare" => (RequestPathFixture::bare_axum(), RequestPathFixture::request),
            "plain" => (RequestPathFixture::plain().router(), RequestPathFixture::request),
            "full" => (RequestPathFixture::full().router(), RequestPathFixture::request),
            "plain_at_site" => {
                (RequestPathFixture::plain().with_site().router(), RequestPathFixture::site_request)
            }
            other => panic!("unknown profile {other}"),
        };
        for _ in 0..n {
            let res = measured_request(&app, request()).await;
            assert_eq!(res.status(), 200);
        }
    });
}

/// One request of `profile_only`, each poll of it through [`measured_poll`].
async fn measured_request(app: &axum::Router, request: axum::extract::Request) -> axum::response::Response {
    let mut fut = std::pin::pin!(app.clone().oneshot(request));
    std::future::poll_fn(|cx| measured_poll(fut.as_mut(), cx)).await.expect("infallible")
}

/// bench/alloc_cost.sh counts the instructions inside this function only (callgrind
/// `--toggle-collect=*measured_poll*`): the request's own work, without the runtime's timers
/// and the pool's upkeep between requests, whose share depends on how long the run takes.
#[inline(never)]
fn measured_poll<F: std::future::Future>(
    fut: std::pin::Pin<&mut F>,
    cx: &mut std::task::Context<'_>,
) -> std::task::Poll<F::Output> {
    fut.poll(cx)
}

fn bench(c: &mut Criterion) {
    if let Ok(spec) = std::env::var("ANNEX_PROFILE_ONLY") {
        profile_only(&spec);
        std::process::exit(0);
    }
    let rt =
        tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().expect("runtime");
    let (plain, full, at_site) = rt.block_on(async {
        (RequestPathFixture::plain(), RequestPathFixture::full(), RequestPathFixture::plain().with_site())
    });
    let bare = RequestPathFixture::bare_axum();

    // Every router answers 200; the full profile's hooks ran, the plain one's rate limit did.
    rt.block_on(async {
        for (name, app) in [("bare", bare.clone()), ("plain", plain.router()), ("full", full.router())] {
            let res = app.oneshot(RequestPathFixture::request()).await.expect("infallible");
            assert_eq!(res.status(), 200, "{name}");
            if name != "bare" {
                assert!(res.headers().contains_key("x-ratelimit-remaining"), "{name}: the rate limit ran");
            }
            assert_eq!(res.headers().contains_key("x-bench-seen"), name == "full", "{name}: hooks");
        }
        let res = at_site.router().oneshot(RequestPathFixture::site_request()).await.expect("infallible");
        assert_eq!(res.status(), 200, "at a site");
    });

    let mut group = c.benchmark_group("request_profile");
    group.bench_function("bare_axum", |b| {
        b.to_async(&rt)
            .iter(|| async { bare.clone().oneshot(RequestPathFixture::request()).await.expect("infallible") })
    });
    group.bench_function("plain", |b| {
        b.to_async(&rt).iter(|| async {
            plain.router().oneshot(RequestPathFixture::request()).await.expect("infallible")
        })
    });
    group.bench_function("full", |b| {
        b.to_async(&rt).iter(|| async {
            full.router().oneshot(RequestPathFixture::request()).await.expect("infallible")
        })
    });
    group.bench_function("plain_at_site", |b| {
        b.to_async(&rt).iter(|| async {
            at_site.router().oneshot(RequestPathFixture::site_request()).await.expect("infallible")
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
