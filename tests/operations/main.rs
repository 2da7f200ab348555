//! Operations end to end, on a real PostgreSQL and real HTTP: metrics, health and auto-disable,
//! the admin API, live config across replicas, the CLI, the scaffold, and the real `annex`
//! binary (zero-config serve, graceful shutdown, a shared private PostgreSQL), and site-scoped
//! requests across two `annex serve` processes; the sites admin API (validation, sign-offs,
//! activation, reports, snapshots) in sites_admin.rs; durable host events through the outbox, with
//! `annex serve` killed by SIGKILL, in outbox.rs; the admin console in a real headless Chromium in
//! console.rs.

mod admin_api;
mod audit_chain;
mod binary;
mod cli;
mod console;
mod faults;
mod hardening;
mod health;
mod hostile_input;
mod json_values;
mod metrics;
mod outbox;
mod pipelines_admin;
mod replicas;
mod scaffold;
mod sites;
mod sites_admin;
mod support;
