//! Remote stages: one [`StageRequest`] as a NATS request (JSON body; request id, deadline and
//! attempt in headers), one [`StageResult`] as the reply. No responders fails at once, without
//! waiting for the timeout.

use std::time::Duration;

use crate::config::NatsConfig;
use crate::extension::stage::{StageRequest, StageResult};

/// Header with the run's request id.
pub(crate) const HEADER_REQUEST_ID: &str = "Annex-Request-Id";
/// Header with the call's absolute deadline (RFC 3339).
pub(crate) const HEADER_DEADLINE: &str = "Annex-Deadline";
/// Header with the attempt (1, 2, …).
pub(crate) const HEADER_ATTEMPT: &str = "Annex-Attempt";

/// Why a remote call gave no [`StageResult`].
#[derive(Debug, thiserror::Error)]
pub(crate) enum RemoteError {
    /// `[nats] url` is not set.
    #[error("remote stages need NATS: set [nats] url (or ANNEX_NATS_URL)")]
    NotConfigured,
    /// Nobody listens on the subject (answered by the server at once).
    #[error("no responders on `{0}`")]
    NoResponders(String),
    /// A responder exists but did not answer in time.
    #[error("`{0}` did not answer in time")]
    Timeout(String),
    /// The connection failed.
    #[error("NATS request to `{subject}` failed: {reason}")]
    Transport { subject: String, reason: String },
    /// The reply is not a well-formed envelope.
    #[error("`{subject}` answered with a malformed result: {reason}")]
    BadReply { subject: String, reason: String },
}

impl RemoteError {
    /// Whether another attempt may help.
    pub(crate) fn retryable(&self) -> bool {
        matches!(self, RemoteError::Timeout(_) | RemoteError::Transport { .. })
    }
}

/// The NATS connection of this replica, or none.
#[derive(Debug, Clone, Default)]
pub(crate) struct RemoteStages {
    client: Option<async_nats::Client>,
}

impl RemoteStages {
    /// No NATS: every remote call is [`RemoteError::NotConfigured`].
    pub(crate) fn none() -> Self {
        Self { client: None }
    }

    /// Connects to `[nats] url` (none configured: [`RemoteStages::none`]). A server that is
    /// down at start is retried in the background, and a lost connection is re-established.
    pub(crate) async fn connect(config: &NatsConfig) -> Result<Self, RemoteError> {
        let Some(url) = &config.url else { return Ok(Self::none()) };
        let client = async_nats::ConnectOptions::new()
            .name("annex")
            .retry_on_initial_connect()
            .connect(url.as_str())
            .await
            .map_err(|e| RemoteError::Transport { subject: url.clone(), reason: e.to_string() })?;
        Ok(Self { client: Some(client) })
    }

    /// Whether NATS is configured.
    pub(crate) fn configured(&self) -> bool {
        self.client.is_some()
    }

    /// Calls the stage on `subject`, waiting at most `timeout`.
    pub(crate) async fn call(
        &self,
        subject: &str,
        request: &StageRequest,
        timeout: Duration,
    ) -> Result<StageResult, RemoteError> {
        let client = self.client.as_ref().ok_or(RemoteError::NotConfigured)?;
        let body = serde_json::to_vec(request)
            .map_err(|e| RemoteError::Transport { subject: subject.into(), reason: e.to_string() })?;
        let mut headers = async_nats::HeaderMap::new();
        headers.insert(HEADER_REQUEST_ID, request.request_id.as_str());
        headers.insert(
            HEADER_DEADLINE,
            request.deadline.to_rfc3339_opts(chrono::SecondsFormat::Millis, true).as_str(),
        );
        headers.insert(HEADER_ATTEMPT, request.attempt.to_string().as_str());
        let req = async_nats::Request::new().payload(body.into()).headers(headers).timeout(Some(timeout));
        let reply = client.send_request(subject.to_owned(), req).await.map_err(|e| match e.kind() {
            async_nats::RequestErrorKind::NoResponders => RemoteError::NoResponders(subject.into()),
            async_nats::RequestErrorKind::TimedOut => RemoteError::Timeout(subject.into()),
            async_nats::RequestErrorKind::Other => {
                RemoteError::Transport { subject: subject.into(), reason: e.to_string() }
            }
        })?;
        serde_json::from_slice(&reply.payload)
            .map_err(|e| RemoteError::BadReply { subject: subject.into(), reason: e.to_string() })
    }
}
