//! The example extension: `GET /ext/hello/ping` answers `{"pong": true}`.
//!
//! Enable it with `cargo run --features ext-hello -- serve`.
#![warn(missing_docs)]

use annex_core::{Extension, Metadata, Registrar};
use axum::Json;
use serde_json::{Value, json};

/// Answers pings.
#[derive(Debug, Default)]
pub struct Hello;

#[annex_core::async_trait]
impl Extension for Hello {
    fn metadata(&self) -> Metadata {
        Metadata::new("hello", env!("CARGO_PKG_VERSION"))
            .description("Example extension: GET /ext/hello/ping answers {\"pong\": true}")
    }

    fn register(&self, r: &mut Registrar) {
        r.get("/ping", ping);
    }
}

async fn ping() -> Json<Value> {
    Json(json!({ "pong": true }))
}

annex_core::register_extension!(Hello);
