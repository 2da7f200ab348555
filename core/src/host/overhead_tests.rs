//! The guard of the request path's cost (docs/benchmarks.md): the full profile (four extensions
//! hooking every point, a middleware) must stay within a generous multiple of the plain one.
//! A ratio of two paths timed in the same rounds, interleaved, so the machine's noise cancels;
//! the median of the rounds, never the best. The figures themselves are criterion's
//! (`core/benches/request_profiles.rs`), not this test's.

use std::time::{Duration, Instant};

use axum::Router;
use tower::ServiceExt;

use crate::__bench::RequestPathFixture;

/// Full ÷ plain, in a test build: about 2.8 there (unoptimized: hook code weighs more than in
/// release, where it is about 1.6 in instructions), so twice that. A regression that makes hooks
/// several times dearer, a spawn or an allocation storm per hook, fails it; noise does not.
const MAX_FULL_OVER_PLAIN: f64 = 6.0;

async fn time(router: &Router, requests: usize) -> Duration {
    let started = Instant::now();
    for _ in 0..requests {
        let res = router.clone().oneshot(RequestPathFixture::request()).await.expect("infallible");
        assert_eq!(res.status(), 200);
    }
    started.elapsed()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 1)]
async fn the_full_request_path_stays_within_a_few_times_the_plain_one() {
    let (plain, full) = (RequestPathFixture::plain().router(), RequestPathFixture::full().router());
    let res = full.clone().oneshot(RequestPathFixture::request()).await.expect("infallible");
    assert!(res.headers().contains_key("x-bench-seen"), "the full profile's hooks ran");
    time(&plain, 200).await;
    time(&full, 200).await;
    let mut ratios: Vec<f64> = Vec::new();
    for round in 0..9 {
        // Alternate which goes first, so neither always follows the other's cache effects.
        let (p, f) = if round % 2 == 0 {
            let p = time(&plain, 300).await;
            (p, time(&full, 300).await)
        } else {
            let f = time(&full, 300).await;
            (time(&plain, 300).await, f)
        };
        ratios.push(f.as_secs_f64() / p.as_secs_f64());
    }
    ratios.sort_by(f64::total_cmp);
    let median = ratios[ratios.len() / 2];
    eprintln!("full ÷ plain, median of {} rounds: {median:.2} (rounds {ratios:.2?})", ratios.len());
    assert!(
        median <= MAX_FULL_OVER_PLAIN,
        "the full request path costs {median:.2}× the plain one (rounds {ratios:.2?}); the bound is {MAX_FULL_OVER_PLAIN}×"
    );
}
