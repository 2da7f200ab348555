//! Processing pipelines: the stage registry (`annex.pipeline_stages`, `annex.pipelines`), its
//! in-memory snapshot, the engine that runs a payload through the stages, and the NATS transport
//! of remote stages. The envelope and the author's side are in [`crate::stage`].

// The engine and the registry land next; until then the transport has no caller.
#[allow(dead_code)]
pub(crate) mod remote;
