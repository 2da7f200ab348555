//! The `annex` command line and the set of extensions compiled into this binary.
//!
//! `main.rs` only calls [`run`]; everything else lives here so tests can reach it.

use std::sync::Arc;

use annex_core::{Extension, host::RegistrationError};

mod audit_cmd;
mod cli;
mod control_cmd;
mod entities_cmd;
mod extensions_cmd;
mod logging;
mod migrate_cmd;
mod operators_cmd;
mod output;
mod pipelines_cmd;
mod scaffold;
mod serve;
mod sites_cmd;
mod stages_cmd;

pub use cli::run;

include!(concat!(env!("OUT_DIR"), "/extensions.rs"));

/// Every extension compiled into this binary, checked against the enabled `ext-<name>` features.
pub fn compiled_in() -> Result<Vec<Arc<dyn Extension>>, RegistrationError> {
    annex_core::host::compiled_in(EXPECTED_EXTENSION_CRATES)
}
