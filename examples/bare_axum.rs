//! The baseline of the load benchmark (`bench/load.sh`): plain axum serving the handler of the
//! `bench_target` extension (`extensions/examples/loadtest`) at the same path, on the same
//! multi-threaded tokio runtime `annex serve` uses — no hooks, no metrics, no request id.
//!
//! `cargo run --release --example bare_axum -- 127.0.0.1:18081`

use axum::routing::get;
use axum::{Json, Router};
use serde_json::{Value, json};

/// The same body as `annex_ext_loadtest::ping` (kept apart so this example does not link, and
/// register, the load-test extensions).
async fn ping() -> Json<Value> {
    Json(json!({ "pong": true }))
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let addr = std::env::args().nth(1).unwrap_or_else(|| "127.0.0.1:18081".to_owned());
    let app = Router::new().route("/ext/bench_target/ping", get(ping));
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    eprintln!("bare axum serving on http://{addr}");
    axum::serve(listener, app).await
}
