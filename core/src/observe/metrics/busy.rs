//! Busy time: how long an extension's futures spend being polled, summed per extension.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

/// Runs `fut`, adding the time spent inside each of its polls to `busy_nanos`. Time spent
/// waiting (for I/O, timers, locks) is not counted: this is the CPU the extension's code used on
/// the runtime's threads, the figure that tells which extension starves the others.
pub(crate) async fn measured<F: Future>(busy_nanos: &AtomicU64, fut: F) -> F::Output {
    let mut fut = std::pin::pin!(fut);
    std::future::poll_fn(|cx| {
        let start = Instant::now();
        let polled = fut.as_mut().poll(cx);
        busy_nanos.fetch_add(start.elapsed().as_nanos() as u64, Ordering::Relaxed);
        polled
    })
    .await
}
