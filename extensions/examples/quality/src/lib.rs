//! The `quality` example: inspections of the `workorders` extension's work orders. Its
//! `entities.toml` relates `inspection.work_order` to `workorders.work_order` (a real foreign
//! key across the two schemas) and adds `on_hold` to workorders' status enum, which it may
//! because it depends on workorders.
//!
//! Enable it with `cargo run --features ext-quality -- serve` (it brings `ext-workorders`).
#![warn(missing_docs)]

use annex_core::extension::Entities;
use annex_core::{Extension, Metadata};

/// Inspections as declared entities.
#[derive(Debug, Default)]
pub struct Quality;

#[annex_core::async_trait]
impl Extension for Quality {
    fn metadata(&self) -> Metadata {
        Metadata::new("quality", env!("CARGO_PKG_VERSION"))
            .description("Example: inspections of work orders, related across extensions")
            .depends_on("workorders", "^0.1")
            .requires_capability("work-orders", "^1")
            .signoff("inspection-procedure", ["quality-manager"])
    }

    fn entities(&self) -> Option<Entities> {
        Some(annex_core::entities!("entities.toml"))
    }
}

annex_core::register_extension!(Quality);
