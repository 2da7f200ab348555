//! The test kit (feature `testkit`): a throwaway PostgreSQL per test process, a fresh database
//! per test, and a host booted with the extensions you choose, served on a real socket.
//!
//! ```no_run
//! use annex_core::testkit::TestHost;
//! # #[derive(Default)] struct Hello;
//! # #[annex_core::async_trait] impl annex_core::Extension for Hello {
//! #     fn metadata(&self) -> annex_core::Metadata { annex_core::Metadata::new("hello", "0.1.0") } }
//! # async fn t() {
//! let t = TestHost::builder().extension(Hello).start().await.expect("host starts");
//! let res = t.get("/ext/hello/ping").await;
//! assert_eq!(res.status(), 200);
//! t.shutdown().await;
//! # }
//! ```
//!
//! The PostgreSQL server comes from the machine's server binaries (as root, it runs as the
//! `postgres` user), lives in a temporary directory and is removed by a watchdog process when
//! the test process exits, however it exits. Set `DATABASE_URL` to use an existing server
//! instead: each test then gets a fresh database there.
//!
//! NATS (for remote pipeline stages) is a throwaway `nats-server` the same way: [`nats`]; a
//! headless Chromium for browser tests comes from one `chromedriver` per process: [`browser`].

pub mod browser;
mod host;
pub mod nats;
mod postgres;

pub use host::{TEST_SECRET, TestHost, TestHostBuilder};
pub use postgres::{PostgresServer, test_database_url};

/// Starts `script` (sh) detached in a process group of its own, with this test process's pid as
/// `$1` and `args` as `$2`…: a watchdog that outlives the test process to clean up after it.
/// `what` names the server for the warning when it cannot start.
fn spawn_watchdog(name: &str, script: &str, args: &[&std::ffi::OsStr], what: &str) {
    use std::os::unix::process::CommandExt;
    use std::process::{Command, Stdio};
    let spawned = Command::new("sh")
        .arg("-c")
        .arg(script)
        .arg(name)
        .arg(std::process::id().to_string())
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0)
        .spawn();
    if let Err(e) = spawned {
        tracing::warn!(error = %e, "could not start the watchdog of the test {what}; the server will outlive the tests");
    }
}
