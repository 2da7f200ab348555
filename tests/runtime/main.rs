//! The runtime in-process, on a real PostgreSQL and real HTTP: every test boots a host with the
//! test kit (one throwaway PostgreSQL for the whole binary, a database of its own per test).
//! One binary rather than one per file: linking dominates the test build.

/// The accounting allocator, as in the binary: the memory quota tests need it.
#[global_allocator]
static ALLOC: annex_alloc::Accounting = annex_alloc::Accounting;

mod common;
mod scripted;

mod analytics;
mod db_isolation;
mod entities;
mod events;
mod extension_migrations;
mod guardrails;
mod hello_db;
mod hooks;
mod lifecycle;
mod limits;
mod misbehaving;
mod permissions;
mod pipelines;
mod quotas;
mod serving;
mod sites;
mod startup_validation;
