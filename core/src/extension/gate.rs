//! Each extension's run state and the atomic gate its routes check on every request.

use std::fmt;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use serde::Serialize;

/// Where an extension is in its lifecycle.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "state", content = "reason", rename_all = "snake_case")]
pub enum ExtensionState {
    /// Collected, not started yet.
    Registered,
    /// Running `init` / `start`.
    Starting,
    /// Serving.
    Running,
    /// Turned off by the operator.
    Disabled,
    /// Could not start, or was stopped by the host; the reason says why.
    Failed(String),
    /// Stopped at shutdown.
    Stopped,
}

impl ExtensionState {
    /// The state's name as stored in `annex.extensions.state`.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Registered => "registered",
            Self::Starting => "starting",
            Self::Running => "running",
            Self::Disabled => "disabled",
            Self::Failed(_) => "failed",
            Self::Stopped => "stopped",
        }
    }
}

impl fmt::Display for ExtensionState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Failed(reason) => write!(f, "failed: {reason}"),
            other => f.write_str(other.as_str()),
        }
    }
}

/// The gate is one atomic load on the request path; the state behind the mutex is for humans.
#[derive(Debug)]
pub(crate) struct Slot {
    open: AtomicBool,
    state: Mutex<ExtensionState>,
}

impl Slot {
    pub(crate) fn new() -> Self {
        Self { open: AtomicBool::new(false), state: Mutex::new(ExtensionState::Registered) }
    }

    pub(crate) fn is_open(&self) -> bool {
        self.open.load(Ordering::Acquire)
    }

    pub(crate) fn state(&self) -> ExtensionState {
        self.state.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Sets the state; the gate is open exactly when the state is `Running`.
    pub(crate) fn set(&self, state: ExtensionState) {
        let open = state == ExtensionState::Running;
        *self.state.lock().unwrap_or_else(|p| p.into_inner()) = state;
        self.open.store(open, Ordering::Release);
    }
}
