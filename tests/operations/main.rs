//! Operations end to end, on a real PostgreSQL and real HTTP: metrics, health and auto-disable,
//! the admin API, live config across replicas, the CLI, the scaffold, and the real `annex`
//! binary (zero-config serve, graceful shutdown, a shared private PostgreSQL).

mod admin_api;
mod audit_chain;
mod binary;
mod cli;
mod hardening;
mod health;
mod json_values;
mod metrics;
mod replicas;
mod scaffold;
mod sites;
mod support;
