//! Background tasks started by an extension: panic-caught, counted, metered as the extension
//! (busy time, allocations, CPU budget: delayed while it is spent, never killed), and aborted
//! when it stops.

use std::future::Future;
use std::sync::{Arc, Mutex};

use tokio::task::AbortHandle;
use tracing::Instrument;

use crate::extension::panic;
use crate::limits::meter::{Throttle, metered};
use crate::limits::quota::Limits;
use crate::observe::stats::Counters;

#[derive(Debug, Default)]
pub(crate) struct Tasks {
    handles: Mutex<Vec<AbortHandle>>,
}

impl Tasks {
    /// Starts `fut` unless `limit` tasks already run; `Err` carries how many run.
    pub(crate) fn spawn<F>(
        &self,
        extension: &str,
        span: tracing::Span,
        counters: Arc<Counters>,
        limits: Arc<Limits>,
        limit: Option<u64>,
        fut: F,
    ) -> Result<(), usize>
    where
        F: Future<Output = ()> + Send + 'static,
    {
        // Count and start under one lock so two racing spawns cannot both take the last slot.
        let mut handles = self.handles.lock().unwrap_or_else(|p| p.into_inner());
        handles.retain(|h| !h.is_finished());
        if limit.is_some_and(|limit| handles.len() as u64 >= limit) {
            return Err(handles.len());
        }
        Counters::bump(&counters.tasks_spawned);
        let name = extension.to_owned();
        let task = async move {
            if let Err(message) =
                panic::catch(metered(&counters.busy_nanos, &limits, Throttle::Delay, fut)).await
            {
                Counters::bump(&counters.task_panics);
                tracing::error!(extension = %name, panic = %message, "background task panicked");
            }
        };
        let handle = tokio::spawn(task.instrument(span)).abort_handle();
        handles.push(handle);
        Ok(())
    }

    pub(crate) fn running(&self) -> usize {
        let handles = self.handles.lock().unwrap_or_else(|p| p.into_inner());
        handles.iter().filter(|h| !h.is_finished()).count()
    }

    pub(crate) fn abort_all(&self) {
        let mut handles = self.handles.lock().unwrap_or_else(|p| p.into_inner());
        for h in handles.drain(..) {
            h.abort();
        }
    }
}
