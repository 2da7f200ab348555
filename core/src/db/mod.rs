//! The database: connecting (or running a private server), migrations, and the host's tables.

pub(crate) mod database;
pub(crate) mod error;
pub(crate) mod extension_db;
pub(crate) mod host_migrations;
pub(crate) mod isolation;
pub(crate) mod json;
pub(crate) mod migrate;
pub(crate) mod outbox;
pub(crate) mod private_postgres;
pub(crate) mod state;
pub(crate) mod store;
