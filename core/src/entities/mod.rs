//! Declarative entities on the host side: the SQL a declaration becomes (`ddl.rs`) and the
//! migration steps it adds to its extension's ledger (`migrations.rs`). The declaration format
//! and its validation are the `annex-entities` crate, shared with the `entities!` macro.

pub(crate) mod api;
pub(crate) mod changes;
pub(crate) mod ddl;
pub(crate) mod migrations;
pub(crate) mod query;
pub(crate) mod store;

#[cfg(test)]
mod format_schema_tests;
