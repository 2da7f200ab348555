//! The generated extensions of the load benchmark's scale rows (`bench/load.sh`): `Generated<I>`
//! is a trivial extension named `gen_<I>` with one route (`GET /ext/gen_<I>/ping`) and one
//! migration (a table in its own schema), so each instance costs what a small real extension
//! costs the host: a database role and schema, a connection pool, a migration, a router, metrics.
//!
//! `generated!(0 1 2 …)` registers one instance per index. Shared by the examples
//! `bench_ext_1` and `bench_ext_50` (never part of the `annex` binary).

use annex_core::{Extension, Json, Metadata, Migration, Migrations, Registrar};
use serde_json::{Value, json};

/// The extension `gen_<I>`.
#[derive(Debug, Default)]
pub struct Generated<const I: usize>;

async fn ping() -> Json<Value> {
    Json(json!({ "pong": true }))
}

#[annex_core::async_trait]
impl<const I: usize> Extension for Generated<I> {
    fn metadata(&self) -> Metadata {
        Metadata::new(format!("gen_{I:02}"), "0.1.0")
            .description("Load benchmark: a generated trivial extension")
    }

    fn migrations(&self) -> Migrations {
        Migrations::new(vec![Migration::new(
            1,
            "marker",
            "create table marker (id bigint primary key)",
            Some("drop table marker"),
        )])
    }

    fn register(&self, r: &mut Registrar) {
        r.get("/ping", ping);
    }
}

/// Registers `Generated<I>` for every index given.
macro_rules! generated {
    ($($i:literal)*) => {
        $( annex_core::register_extension!(support::Generated<$i>); )*
    };
}
pub(crate) use generated;
