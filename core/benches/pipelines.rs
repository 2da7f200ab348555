//! The pipeline engine's own cost: finding a pipeline in the registry snapshot (alone, and while
//! another thread rebuilds and swaps the snapshot in a loop), and a run of four in-process no-op
//! stages (pre → validator → provider → post) next to the bare provider handler, so the
//! difference is what the engine adds (deadline, breaker, metrics, envelope, timings).
//!
//! `cargo bench -p annex-core --features bench --bench pipelines` (about 30 s; no database).

use std::hint::black_box;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use annex_core::__bench::PipelineFixture;
use criterion::{Criterion, criterion_group, criterion_main};
use serde_json::json;

fn lookup(c: &mut Criterion) {
    let mut group = c.benchmark_group("registry");
    let fixture = Arc::new(PipelineFixture::new(100));
    assert!(fixture.lookup("bench"));
    group.bench_function("lookup, 101 pipelines", |b| {
        b.iter(|| black_box(fixture.lookup(black_box("bench"))))
    });
    let stop = Arc::new(AtomicBool::new(false));
    let reloader = {
        let (fixture, stop) = (fixture.clone(), stop.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                fixture.reload();
            }
        })
    };
    group.bench_function("lookup while another thread reloads", |b| {
        b.iter(|| black_box(fixture.lookup(black_box("bench"))))
    });
    stop.store(true, Ordering::Relaxed);
    reloader.join().expect("the reloader ends");
    group.bench_function("rebuild and swap, 101 pipelines", |b| b.iter(|| fixture.reload()));
    group.finish();
}

fn run(c: &mut Criterion) {
    let mut group = c.benchmark_group("pipeline");
    let fixture = PipelineFixture::new(0);
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    assert!(rt.block_on(fixture.run(json!({"text": "hi"}))));
    group.bench_function("bare provider handler", |b| {
        b.to_async(&rt).iter(|| async { black_box(fixture.bare(json!({"text": "hi"})).await) })
    });
    group.bench_function("four no-op stages", |b| {
        b.to_async(&rt).iter(|| async { black_box(fixture.run(json!({"text": "hi"})).await) })
    });
    group.finish();
}

criterion_group!(benches, lookup, run);
criterion_main!(benches);
