//! The `workorders` example: work orders, their comments and saved reports, declared as
//! entities in `entities.toml` (checked at compile time by `annex_core::entities!`). annex
//! creates the tables and constraints in the extension's schema and serves
//! `/ext/workorders/entities/work_order`, `…/comment`, `…/report` and `…/_batch`.
//!
//! Enable it with `cargo run --features ext-workorders -- serve`.
#![warn(missing_docs)]

use annex_core::extension::Entities;
use annex_core::{Extension, Metadata};

/// Work orders as declared entities.
#[derive(Debug, Default)]
pub struct WorkOrders;

#[annex_core::async_trait]
impl Extension for WorkOrders {
    fn metadata(&self) -> Metadata {
        Metadata::new("workorders", env!("CARGO_PKG_VERSION"))
            .description("Example: work orders, comments and reports as declared entities")
            .provides("work-orders", "1.0.0")
    }

    fn entities(&self) -> Option<Entities> {
        Some(annex_core::entities!("entities.toml"))
    }
}

annex_core::register_extension!(WorkOrders);
