//! A throwaway `nats-server` per test process ([`test_nats_url`]), servers a test can stop and
//! restart on the same port ([`NatsServer`]), and annex's own NATS client for remote stages
//! ([`StageClient`], [`call_stage`]).
//!
//! ```no_run
//! use annex_core::testkit::nats::{NatsServer, test_nats_url};
//! # async fn t() -> Result<(), annex_core::testkit::nats::TestNatsError> {
//! let shared = test_nats_url().await?; // one server for the whole test process
//! let mut own = NatsServer::start().await?; // a server of this test alone
//! own.stop();
//! own.restart().await?; // same port, same URL
//! # Ok(()) }
//! ```
//!
//! Each server listens on a free loopback port, keeps nothing on disk (no JetStream) but its
//! log, in a temporary directory; a watchdog process stops it and removes the directory when
//! the test process exits, however it exits.

use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use crate::config::NatsConfig;
use crate::extension::stage::{StageRequest, StageResult};
use crate::pipelines::remote::{RemoteError, RemoteStages};

/// How long a fresh server may take to accept connections.
const READY_WITHIN: Duration = Duration::from_secs(10);

/// Why a test NATS server could not be started.
#[derive(Debug, Clone, thiserror::Error)]
pub enum TestNatsError {
    /// No `nats-server` binary on `PATH` (nor in `/usr/sbin`, `/usr/bin`).
    #[error(
        "`nats-server` is not installed: install Debian package nats-server (apt-get install nats-server)"
    )]
    NotInstalled,
    /// Starting or watching the server failed.
    #[error("test nats-server: {0}")]
    Io(String),
    /// The server did not accept connections in time, or exited.
    #[error("test nats-server on port {port} did not become ready: {reason}; its log: {log}")]
    NotReady {
        /// The port it was given.
        port: u16,
        /// What happened.
        reason: String,
        /// The log file's path and last lines.
        log: String,
    },
}

static SHARED: OnceLock<Result<NatsServer, TestNatsError>> = OnceLock::new();

/// The URL of the process-wide test NATS server, started on first use.
pub async fn test_nats_url() -> Result<String, TestNatsError> {
    tokio::task::spawn_blocking(|| {
        SHARED.get_or_init(NatsServer::start_blocking).as_ref().map(NatsServer::url)
    })
    .await
    .map_err(|e| TestNatsError::Io(e.to_string()))?
    .map_err(Clone::clone)
}

/// A `nats-server` of its own, on a fixed loopback port for its whole life: [`stop`](Self::stop)
/// and [`restart`](Self::restart) keep the URL, so clients can reconnect. Dropped: stopped.
#[derive(Debug)]
pub struct NatsServer {
    binary: PathBuf,
    port: u16,
    dir: PathBuf,
    child: Option<Child>,
}

impl NatsServer {
    /// Starts a server on a free port and waits (bounded) until it accepts connections.
    pub async fn start() -> Result<Self, TestNatsError> {
        tokio::task::spawn_blocking(Self::start_blocking)
            .await
            .map_err(|e| TestNatsError::Io(e.to_string()))?
    }

    fn start_blocking() -> Result<Self, TestNatsError> {
        let binary = find_binary().ok_or(TestNatsError::NotInstalled)?;
        let io = |e: std::io::Error| TestNatsError::Io(e.to_string());
        let dir = tempfile::Builder::new().prefix("annex-nats-").tempdir_in("/tmp").map_err(io)?.keep();
        let port = free_port().map_err(io)?;
        let child = spawn_server(&binary, port, &dir)?;
        Ok(Self { binary, port, dir, child: Some(child) })
    }

    /// `nats://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// Its port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Stops the server at once (SIGKILL: clients see the connection drop, as on a crash).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it again on the same port (stopping it first if it runs) and waits until it
    /// accepts connections.
    pub async fn restart(&mut self) -> Result<(), TestNatsError> {
        self.stop();
        let (binary, port, dir) = (self.binary.clone(), self.port, self.dir.clone());
        let child = tokio::task::spawn_blocking(move || spawn_server(&binary, port, &dir))
            .await
            .map_err(|e| TestNatsError::Io(e.to_string()))??;
        self.child = Some(child);
        Ok(())
    }
}

/// Runs `nats-server` on `port`, logging into `dir`, and waits until it accepts connections.
fn spawn_server(binary: &Path, port: u16, dir: &Path) -> Result<Child, TestNatsError> {
    let log = dir.join("nats.log");
    let mut child = Command::new(binary)
        .args(["-a", "127.0.0.1", "-p", &port.to_string(), "-l"])
        .arg(&log)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| TestNatsError::Io(format!("cannot run {}: {e}", binary.display())))?;
    spawn_watchdog(child.id(), dir);
    let not_ready = |reason: String| {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        let mut tail: Vec<&str> = text.lines().rev().take(5).collect();
        tail.reverse();
        TestNatsError::NotReady { port, reason, log: format!("{}: {}", log.display(), tail.join(" | ")) }
    };
    let deadline = Instant::now() + READY_WITHIN;
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return Err(not_ready(format!("it exited ({status})")));
        }
        if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
            return Ok(child);
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Err(not_ready(format!("no connection within {READY_WITHIN:?}")));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// annex's own client for remote stages (the transport the pipeline engine uses), for tests
/// that call a remote stage the way the host does. It reconnects by itself after a lost
/// connection.
#[derive(Debug, Clone)]
pub struct StageClient {
    remote: RemoteStages,
}

/// Why a [`StageClient::call`] gave no [`StageResult`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StageCallError {
    /// Nobody listens on the subject (the server says so at once).
    #[error("no responders on `{0}`")]
    NoResponders(String),
    /// A responder exists but did not answer in time.
    #[error("`{0}` did not answer in time")]
    Timeout(String),
    /// Anything else: connection, a malformed reply.
    #[error("{0}")]
    Other(String),
}

impl StageClient {
    /// Connects to `url` (a server that is down is retried in the background).
    pub async fn connect(url: &str) -> Result<Self, StageCallError> {
        let config = NatsConfig { url: Some(url.to_owned()) };
        let remote =
            RemoteStages::connect(&config).await.map_err(|e| StageCallError::Other(e.to_string()))?;
        Ok(Self { remote })
    }

    /// Calls the stage on `subject` as the host does (envelope JSON, `Annex-*` headers).
    pub async fn call(
        &self,
        subject: &str,
        request: &StageRequest,
        timeout: Duration,
    ) -> Result<StageResult, StageCallError> {
        self.remote.call(subject, request, timeout).await.map_err(|e| match e {
            RemoteError::NoResponders(s) => StageCallError::NoResponders(s),
            RemoteError::Timeout(s) => StageCallError::Timeout(s),
            other => StageCallError::Other(other.to_string()),
        })
    }
}

/// Connects to `url` and calls the stage on `subject` once ([`StageClient`] keeps a connection).
pub async fn call_stage(
    url: &str,
    subject: &str,
    request: &StageRequest,
    timeout: Duration,
) -> Result<StageResult, StageCallError> {
    StageClient::connect(url).await?.call(subject, request, timeout).await
}

fn find_binary() -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin".into(), "/usr/bin".into(), "/usr/local/bin".into()])
        .map(|dir| dir.join("nats-server"))
        .find(|p| p.is_file())
}

/// A port the kernel just handed out; the server binds it a moment later.
fn free_port() -> std::io::Result<u16> {
    Ok(TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?.local_addr()?.port())
}

/// A detached shell that waits for this process to end, then kills the server and removes its
/// directory (test processes never run destructors for statics). It gives up when the server
/// ends first ([`NatsServer::stop`]): a restart brings a watchdog of its own.
fn spawn_watchdog(server_pid: u32, dir: &Path) {
    let script = r#"
        while [ -d "/proc/$1" ] && [ -d "/proc/$2" ]; do sleep 0.2; done
        if [ ! -d "/proc/$1" ]; then
            kill -KILL "$2" 2>/dev/null
            rm -rf "$3"
        fi
    "#;
    let pid = server_pid.to_string();
    super::spawn_watchdog("annex-nats-watchdog", script, &[pid.as_ref(), dir.as_os_str()], "nats-server");
}
