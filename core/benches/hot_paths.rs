//! The pieces every extension request touches, each alone: the gate, the site gate of
//! `/sites/<slug>/ext/<name>/…` (1 000 sites × 20 extensions), the rate-limit check
//! (shared bucket; per-client buckets with 1 and 10 000 callers), a `pre_request` hook chain of
//! N filters, and a metric update (a request's status counter + duration histogram; a hook's).
//! `request_path.rs` measures them together; this bench says which one to blame.
//!
//! `cargo bench -p annex-core --bench hot_paths` (about 40 s; no database needed).
//! Filter with a name: `cargo bench -p annex-core --bench hot_paths -- rate_limit`.

use std::hint::black_box;
use std::time::Duration;

use annex_core::__bench::{Gate, HookChainFixture, MetricsFixture, RateLimitFixture, SiteGateFixture};
use axum::http::StatusCode;
use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};

fn gate(c: &mut Criterion) {
    let gate = Gate::default();
    c.bench_function("gate/is_open", |b| b.iter(|| black_box(black_box(&gate).is_open())));
}

fn site_gate(c: &mut Criterion) {
    let mut group = c.benchmark_group("site_gate");
    // Every request for another (site, extension), jumping between sites: the table cold.
    let spread = SiteGateFixture::new(1_000, 20);
    assert!(spread.check(0), "the fixture's gates are open");
    let mut i = 0usize;
    group.bench_function("1000 sites x 20 extensions, spread", |b| {
        b.iter(|| {
            i = i.wrapping_add(1);
            black_box(spread.check(black_box(i)))
        })
    });
    let hot = SiteGateFixture::new(1_000, 20).one_site();
    group.bench_function("1000 sites x 20 extensions, one site", |b| {
        b.iter(|| black_box(hot.check(black_box(0))))
    });
    group.finish();
}

fn rate_limit(c: &mut Criterion) {
    let mut group = c.benchmark_group("rate_limit");
    let shared = RateLimitFixture::shared();
    group.bench_function("shared", |b| b.iter(|| black_box(shared.check(0))));
    for clients in [1, 10_000] {
        let keyed = RateLimitFixture::per_client(clients);
        let mut i = 0usize;
        group.bench_with_input(BenchmarkId::new("per_client", clients), &clients, |b, _| {
            b.iter(|| {
                i = i.wrapping_add(7919);
                black_box(keyed.check(i))
            })
        });
    }
    group.finish();
}

fn hook_chain(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread().build().expect("runtime");
    let mut group = c.benchmark_group("hook_chain/pre_request");
    for n in [0, 1, 5, 20] {
        let chain = HookChainFixture::new(n);
        assert!(rt.block_on(chain.run()), "the chain lets the request through");
        group.bench_with_input(BenchmarkId::from_parameter(n), &n, |b, _| {
            b.iter(|| black_box(rt.block_on(chain.run())))
        });
    }
    group.finish();
}

fn metric_update(c: &mut Criterion) {
    let fixture = MetricsFixture::new(20, 50);
    let hook = fixture.hook_handles("ext3", "pre_request:bench");
    let mut group = c.benchmark_group("metric_update");
    group.bench_function("request (status counter + duration histogram)", |b| {
        b.iter(|| {
            fixture.record_request(black_box("ext3"), black_box("/ext/ext3/items23/{id}"), StatusCode::OK)
        })
    });
    group.bench_function("hook call (counter + histogram)", |b| {
        b.iter(|| hook.record(black_box(Duration::from_micros(3))))
    });
    group.finish();
}

fn quick() -> Criterion {
    Criterion::default().warm_up_time(Duration::from_millis(500)).measurement_time(Duration::from_secs(2))
}

criterion_group! {
    name = benches;
    config = quick();
    targets = gate, site_gate, rate_limit, hook_chain, metric_update
}
criterion_main!(benches);
