//! Background tasks started by an extension: panic-caught, counted, and aborted when it stops.

use std::future::Future;
use std::sync::{Arc, Mutex};

use tokio::task::AbortHandle;
use tracing::Instrument;

use crate::panic;
use crate::stats::Counters;

#[derive(Debug, Default)]
pub(crate) struct Tasks {
    handles: Mutex<Vec<AbortHandle>>,
}

impl Tasks {
    pub(crate) fn spawn<F>(&self, extension: &str, span: tracing::Span, counters: Arc<Counters>, fut: F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        Counters::bump(&counters.tasks_spawned);
        let name = extension.to_owned();
        let task = async move {
            if let Err(message) = panic::catch(crate::metrics::measured(&counters.busy_nanos, fut)).await {
                Counters::bump(&counters.task_panics);
                tracing::error!(extension = %name, panic = %message, "background task panicked");
            }
        };
        let handle = tokio::spawn(task.instrument(span)).abort_handle();
        let mut handles = self.handles.lock().unwrap_or_else(|p| p.into_inner());
        handles.retain(|h| !h.is_finished());
        handles.push(handle);
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
