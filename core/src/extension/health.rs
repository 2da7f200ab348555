//! What an extension reports from [`Extension::health`](crate::Extension::health).

use serde::Serialize;

/// How well an extension is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum HealthStatus {
    /// Working normally.
    Healthy,
    /// Working, but with reduced function.
    Degraded,
    /// Not working.
    Down,
}

/// A health report: a status and an optional human message.
///
/// ```
/// use annex_core::{Health, HealthStatus};
/// let h = Health::degraded("queue is 90% full");
/// assert_eq!(h.status, HealthStatus::Degraded);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Health {
    /// The status.
    pub status: HealthStatus,
    /// Why, for humans.
    pub message: Option<String>,
}

impl Health {
    /// All is well.
    pub fn healthy() -> Self {
        Self { status: HealthStatus::Healthy, message: None }
    }

    /// Working with reduced function.
    pub fn degraded(message: impl Into<String>) -> Self {
        Self { status: HealthStatus::Degraded, message: Some(message.into()) }
    }

    /// Not working.
    pub fn down(message: impl Into<String>) -> Self {
        Self { status: HealthStatus::Down, message: Some(message.into()) }
    }
}
