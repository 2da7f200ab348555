//! The load benchmark is only meaningful if every bench extension really runs on the measured
//! request; these tests check that against a real host, as `bench/load.sh` configures it.

use annex_core::config::RateLimitConfig;
use annex_core::testkit::TestHost;
use annex_ext_loadtest::{BenchAuth, BenchHeaders, BenchObserver, BenchTarget, BenchTiming};

/// The benchmark's set-up; `per_second` is the rate limit's (the benchmark uses 1e9).
async fn host(per_second: u32) -> TestHost {
    TestHost::builder()
        .extension(BenchTarget)
        .extension(BenchAuth::armed())
        .extension(BenchHeaders::armed())
        .extension(BenchTiming::armed())
        .extension(BenchObserver::armed())
        .config(|c| {
            for (name, perms) in [
                ("bench_auth", &["hooks:global", "hooks:auth"][..]),
                ("bench_headers", &["hooks:global"][..]),
                ("bench_timing", &["hooks:global"][..]),
                ("bench_observer", &["hooks:global"][..]),
            ] {
                c.extensions.entry(name.into()).or_default().permissions =
                    perms.iter().map(|p| (*p).to_owned()).collect();
            }
            c.extensions.entry("bench_target".into()).or_default().rate_limit =
                Some(RateLimitConfig { per_second, burst: 1_000_000_000, per_client: true });
        })
        .start()
        .await
        .expect("host starts")
}

#[tokio::test]
async fn a_measured_request_crosses_every_bench_extension() {
    let t = host(1_000_000_000).await;
    let res =
        t.client().get(t.url("/ext/bench_target/ping")).header("x-user", "bench").send().await.expect("sent");
    assert_eq!(res.status(), 200);
    let headers = res.headers();
    assert_eq!(headers["x-bench-seen"], "1", "the pre_response filter ran");
    assert!(headers.contains_key("x-handled-in-us"), "the middleware ran");
    assert!(headers.contains_key("x-ratelimit-remaining"), "the rate limit was checked");
    assert_eq!(res.text().await.expect("body"), r#"{"pong":true}"#, "the same body as bare axum");
    t.shutdown().await;
}

#[tokio::test]
async fn the_rate_limit_keys_by_the_identity_the_auth_hook_sets() {
    // A slow refill, so a bucket visibly shrinks between two requests.
    let t = host(1).await;
    let get =
        |user: &'static str| t.client().get(t.url("/ext/bench_target/ping")).header("x-user", user).send();
    let first = remaining(get("alice").await.expect("sent").headers());
    let second = remaining(get("alice").await.expect("sent").headers());
    let other = remaining(get("bob").await.expect("sent").headers());
    assert!(second < first, "alice's own bucket shrinks: {first} then {second}");
    assert_eq!(other, first, "bob has a bucket of his own");
    t.shutdown().await;
}

fn remaining(headers: &axum::http::HeaderMap) -> u64 {
    headers["x-ratelimit-remaining"].to_str().expect("ascii").parse().expect("a number")
}

#[tokio::test]
async fn unarmed_bench_extensions_start_without_permissions_and_hook_nothing() {
    let t = TestHost::builder()
        .extension(BenchTarget)
        .extension(BenchAuth::default())
        .extension(BenchHeaders::default())
        .extension(BenchTiming::default())
        .extension(BenchObserver::default())
        .start()
        .await
        .expect("host starts");
    let res = t.get("/ext/bench_target/ping").await;
    assert_eq!(res.status(), 200);
    assert!(!res.headers().contains_key("x-bench-seen"), "no hook ran");
    let states = t.get("/ready").await.text().await.expect("body");
    assert!(!states.contains("failed"), "every bench extension runs: {states}");
    t.shutdown().await;
}
