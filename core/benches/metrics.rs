//! Metrics costs: rendering `/metrics` with 20 extensions and 50 routes (after traffic on every
//! route), and the per-request cost of the metrics middleware (with versus without it).
//!
//! `cargo bench -p annex-core --bench metrics`

use std::hint::black_box;

use annex_core::__bench::MetricsFixture;
use axum::body::Body;
use axum::http::Request;
use criterion::{Criterion, criterion_group, criterion_main};
use tower::ServiceExt;

fn render(c: &mut Criterion) {
    let fixture = MetricsFixture::new(20, 50);
    let text = fixture.render();
    eprintln!("/metrics with 20 extensions, 50 routes: {} bytes, {} lines", text.len(), text.lines().count());
    c.bench_function("render /metrics (20 extensions, 50 routes)", |b| {
        b.iter(|| black_box(fixture.render()))
    });
}

fn per_request(c: &mut Criterion) {
    let fixture = MetricsFixture::new(20, 50);
    let rt = tokio::runtime::Builder::new_current_thread().build().expect("runtime");
    let metered = fixture.router("ext3");
    let bare = MetricsFixture::bare_router("ext3");
    let noop = MetricsFixture::noop_router("ext3");
    let request = || Request::get("/ext/ext3/items23/200").body(Body::empty()).expect("request");
    let mut group = c.benchmark_group("request");
    group.bench_function("without metrics", |b| {
        b.iter(|| rt.block_on(bare.clone().oneshot(request())).map(|r| black_box(r.status())))
    });
    group.bench_function("with an empty middleware", |b| {
        b.iter(|| rt.block_on(noop.clone().oneshot(request())).map(|r| black_box(r.status())))
    });
    group.bench_function("with metrics", |b| {
        b.iter(|| rt.block_on(metered.clone().oneshot(request())).map(|r| black_box(r.status())))
    });
    group.finish();
}

criterion_group!(benches, render, per_request);
criterion_main!(benches);
