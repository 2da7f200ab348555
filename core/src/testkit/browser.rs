//! A real headless Chromium for browser tests: one `chromedriver` per test process on a free
//! loopback port ([`chromedriver_url`]), and the capabilities of a fresh headless Chromium
//! session ([`chrome_capabilities`]), each with a user-data directory of its own. Connect any
//! WebDriver client to the URL (the operations tests use `fantoccini`).
//!
//! ```no_run
//! use annex_core::testkit::browser::{chrome_capabilities, chromedriver_url};
//! # async fn t() -> Result<(), annex_core::testkit::browser::BrowserError> {
//! let url = chromedriver_url().await?; // http://127.0.0.1:<port>
//! let caps = chrome_capabilities(1280, 800)?; // goog:chromeOptions with --headless=new, …
//! # let _ = (url, caps); Ok(()) }
//! ```
//!
//! Needs the Debian packages `chromium` and `chromium-driver` (`/usr/bin/chromium`,
//! `/usr/bin/chromedriver`). Chromium runs with `--no-sandbox` (tests run as root) and without
//! background networking, component updates and sync, which would otherwise keep calling out
//! of a closed network. A watchdog kills chromedriver and every browser it started (its process
//! group) and removes their directories when the test process exits, however it exits.

use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use serde_json::{Map, Value, json};

/// How long chromedriver may take to accept connections.
const READY_WITHIN: Duration = Duration::from_secs(15);

/// The browser binary.
pub const CHROMIUM: &str = "/usr/bin/chromium";
/// The driver binary.
pub const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// Why no browser could be had.
#[derive(Debug, Clone, thiserror::Error)]
pub enum BrowserError {
    /// chromium or chromedriver is missing.
    #[error("{0} is not installed: install the Debian packages chromium and chromium-driver")]
    NotInstalled(&'static str),
    /// Starting chromedriver failed, or it did not accept connections in time.
    #[error("chromedriver: {0}")]
    Driver(String),
}

struct Driver {
    port: u16,
    dir: PathBuf,
}

static SHARED: OnceLock<Result<Driver, BrowserError>> = OnceLock::new();

/// The URL of this test process's chromedriver (`http://127.0.0.1:<port>`), started on first use.
pub async fn chromedriver_url() -> Result<String, BrowserError> {
    tokio::task::spawn_blocking(|| {
        SHARED
            .get_or_init(start)
            .as_ref()
            .map(|d| format!("http://127.0.0.1:{}", d.port))
            .map_err(Clone::clone)
    })
    .await
    .map_err(|e| BrowserError::Driver(e.to_string()))?
}

/// The capabilities of a new headless Chromium session with a `width`×`height` window and a
/// user-data directory of its own (removed with chromedriver's at the end of the process).
pub fn chrome_capabilities(width: u32, height: u32) -> Result<Map<String, Value>, BrowserError> {
    if !Path::new(CHROMIUM).is_file() {
        return Err(BrowserError::NotInstalled(CHROMIUM));
    }
    let parent = match SHARED.get() {
        Some(Ok(d)) => d.dir.clone(),
        _ => std::env::temp_dir(),
    };
    let profile = tempfile::Builder::new()
        .prefix("profile-")
        .tempdir_in(&parent)
        .map_err(|e| BrowserError::Driver(format!("cannot create a profile directory: {e}")))?
        .keep();
    let args = [
        "--headless=new".to_owned(),
        "--no-sandbox".to_owned(),
        "--disable-gpu".to_owned(),
        "--disable-dev-shm-usage".to_owned(),
        "--disable-quic".to_owned(),
        "--no-first-run".to_owned(),
        "--disable-background-networking".to_owned(),
        "--disable-component-update".to_owned(),
        "--disable-sync".to_owned(),
        "--disable-extensions".to_owned(),
        "--hide-scrollbars".to_owned(),
        format!("--window-size={width},{height}"),
        format!("--user-data-dir={}", profile.display()),
    ];
    let caps = json!({
        "browserName": "chrome",
        "goog:chromeOptions": { "binary": CHROMIUM, "args": args },
    });
    match caps {
        Value::Object(map) => Ok(map),
        _ => Err(BrowserError::Driver("capabilities are not an object".into())),
    }
}

fn start() -> Result<Driver, BrowserError> {
    if !Path::new(CHROMEDRIVER).is_file() {
        return Err(BrowserError::NotInstalled(CHROMEDRIVER));
    }
    let io = |what: &str, e: std::io::Error| BrowserError::Driver(format!("{what}: {e}"));
    let dir = tempfile::Builder::new()
        .prefix("annex-chromedriver-")
        .tempdir_in("/tmp")
        .map_err(|e| io("cannot create its directory", e))?
        .keep();
    let port = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|l| l.local_addr())
        .map_err(|e| io("no free port", e))?
        .port();
    let log = dir.join("chromedriver.log");
    use std::os::unix::process::CommandExt;
    let mut child = Command::new(CHROMEDRIVER)
        .arg(format!("--port={port}"))
        .arg(format!("--log-path={}", log.display()))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        // Its own process group: the watchdog kills the driver and every browser it started.
        .process_group(0)
        .spawn()
        .map_err(|e| io(&format!("cannot run {CHROMEDRIVER}"), e))?;
    spawn_watchdog(child.id(), &dir);
    let deadline = Instant::now() + READY_WITHIN;
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            return Err(BrowserError::Driver(format!("it exited ({status}); its log: {text}")));
        }
        if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
            return Ok(Driver { port, dir });
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Err(BrowserError::Driver(format!(
                "no connection on port {port} within {READY_WITHIN:?}"
            )));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A detached shell that waits for this process to end, then kills chromedriver's process group
/// (the driver and its browsers) and removes the directory.
fn spawn_watchdog(driver_pid: u32, dir: &Path) {
    let script = r#"
        while [ -d "/proc/$1" ] && [ -d "/proc/$2" ]; do sleep 0.2; done
        kill -KILL -- "-$2" 2>/dev/null
        sleep 0.2
        rm -rf "$3"
    "#;
    let pid = driver_pid.to_string();
    super::spawn_watchdog(
        "annex-chromedriver-watchdog",
        script,
        &[pid.as_ref(), dir.as_os_str()],
        "chromedriver",
    );
}
