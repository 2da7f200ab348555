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
//! NATS (for remote pipeline stages) is a throwaway `nats-server` the same way: [`nats`].

mod host;
pub mod nats;
mod postgres;

pub use host::{TEST_SECRET, TestHost, TestHostBuilder};
pub use postgres::test_database_url;
