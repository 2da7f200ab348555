//! Operations end to end, on a real PostgreSQL and real HTTP: metrics, health and auto-disable,
//! the admin API, live config across replicas, the CLI and the scaffold.

mod admin_api;
mod cli;
mod hardening;
mod health;
mod metrics;
mod replicas;
mod scaffold;
mod support;
