//! Processing pipelines: the stage registry (`annex.pipeline_stages`, `annex.pipelines`,
//! `annex.stage_health`) and its operations (`registry.rs`, `store.rs`), the in-memory snapshot
//! every replica serves from (`snapshot.rs`), the engine that runs a payload through the stages
//! (`engine.rs`), each stage's health score and circuit breaker (`health.rs`), and the NATS
//! transport of remote stages (`remote.rs`). The envelope and the author's side are in
//! [`crate::stage`]; the contract is docs/pipelines.md.

pub(crate) mod engine;
pub(crate) mod error;
pub(crate) mod health;
pub(crate) mod model;
pub(crate) mod registry;
pub(crate) mod remote;
pub(crate) mod snapshot;
pub(crate) mod store;
