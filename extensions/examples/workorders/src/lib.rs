//! The `workorders` example: work orders, their comments and saved reports, declared as
//! entities in `entities.toml` (checked at compile time by `annex_core::entities!`). annex
//! creates the tables and constraints in the extension's schema and serves
//! `/ext/workorders/entities/work_order`, `…/comment`, `…/report` and `…/_batch`. Its own
//! handler `GET /ext/workorders/open` reads the same rows typed, through the types
//! `annex_core::entity_types!` writes from the same file ([`WorkOrder`], [`Status`], …).
//!
//! Enable it with `cargo run --features ext-workorders -- serve`.
#![warn(missing_docs)]

use annex_core::extension::Entities;
use annex_core::{ApiError, Context, Extension, Json, Metadata, Registrar};

annex_core::entity_types!("entities.toml");

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

    fn register(&self, r: &mut Registrar) {
        r.get("/open", open_orders);
    }
}

/// The open work orders, by number, read typed.
async fn open_orders(cx: Context) -> Result<Json<Vec<WorkOrder>>, ApiError> {
    let rows: Vec<WorkOrder> =
        sqlx::query_as("select * from work_order where status = 'open' order by number")
            .fetch_all(cx.db()?)
            .await?;
    Ok(Json(rows))
}

annex_core::register_extension!(WorkOrders);
