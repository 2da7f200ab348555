//! A host booted for a test, served on `127.0.0.1:<random port>`, with an HTTP client.

use std::sync::Arc;

use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::config::Config;
use crate::extension::Extension;
use crate::host::Host;
use crate::host::error::HostError;
use crate::testkit::postgres::test_database_url;

/// The host secret test hosts use unless the config sets one.
pub const TEST_SECRET: &str = "annex-test-secret-not-for-production";

/// Builds a [`TestHost`].
pub struct TestHostBuilder {
    config: Config,
    extensions: Vec<Arc<dyn Extension>>,
}

impl std::fmt::Debug for TestHostBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestHostBuilder").field("config", &self.config).finish_non_exhaustive()
    }
}

/// A running host on a real socket and a real database, for tests.
#[derive(Debug)]
pub struct TestHost {
    host: Host,
    base_url: String,
    database_url: String,
    client: reqwest::Client,
    stop: Option<oneshot::Sender<()>>,
    server: Option<JoinHandle<Result<(), HostError>>>,
    _data_dir: tempfile::TempDir,
}

impl TestHost {
    /// Starts building a test host with default config and no extensions.
    pub fn builder() -> TestHostBuilder {
        TestHostBuilder { config: Config::default(), extensions: Vec::new() }
    }
}

impl TestHostBuilder {
    /// Adds an extension.
    pub fn extension(mut self, extension: impl Extension) -> Self {
        self.extensions.push(Arc::new(extension));
        self
    }

    /// Adds several extensions.
    pub fn extensions(mut self, extensions: Vec<Arc<dyn Extension>>) -> Self {
        self.extensions.extend(extensions);
        self
    }

    /// Changes the config before start. Leave `database.url` unset to get a fresh database.
    pub fn config(mut self, change: impl FnOnce(&mut Config)) -> Self {
        change(&mut self.config);
        self
    }

    /// Uses an existing database (for a second replica on the same database, say).
    pub fn database_url(mut self, url: &str) -> Self {
        self.config.database.url = Some(url.to_owned());
        self
    }

    /// Creates a database if none was given, starts the host and serves it.
    pub async fn start(self) -> Result<TestHost, HostError> {
        let mut config = self.config;
        let database_url = match &config.database.url {
            Some(url) => url.clone(),
            None => test_database_url().await?,
        };
        config.database.url = Some(database_url.clone());
        let data_dir = tempfile::tempdir().map_err(|e| HostError::Internal(e.to_string()))?;
        config.data_dir = data_dir.path().to_owned();
        config.server.shutdown_timeout_ms = config.server.shutdown_timeout_ms.min(2_000);
        // Several test hosts on one database behave like replicas sharing the host secret.
        config.server.secret.get_or_insert_with(|| TEST_SECRET.to_owned());

        let host = Host::builder(config).extensions(self.extensions).start().await?;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(|source| HostError::Bind { addr: "127.0.0.1:0".into(), source })?;
        let addr = listener.local_addr().map_err(|e| HostError::Internal(e.to_string()))?;
        let (stop, stopped) = oneshot::channel::<()>();
        let serving = host.clone();
        let server = tokio::spawn(async move {
            serving
                .serve(listener, async move {
                    let _ = stopped.await;
                })
                .await
        });
        Ok(TestHost {
            host,
            base_url: format!("http://{addr}"),
            database_url,
            client: reqwest::Client::new(),
            stop: Some(stop),
            server: Some(server),
            _data_dir: data_dir,
        })
    }
}

impl TestHost {
    /// The host.
    pub fn host(&self) -> &Host {
        &self.host
    }

    /// `http://127.0.0.1:<port>`.
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// The full URL of `path`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base_url)
    }

    /// The database this host uses (a superuser URL: for assertions, never for extensions).
    pub fn database_url(&self) -> &str {
        &self.database_url
    }

    /// An HTTP client.
    pub fn client(&self) -> &reqwest::Client {
        &self.client
    }

    /// `GET path`. Panics if the request cannot be sent at all (a test failure).
    pub async fn get(&self, path: &str) -> reqwest::Response {
        match self.client.get(self.url(path)).send().await {
            Ok(res) => res,
            Err(e) => panic!("GET {path} could not be sent: {e}"),
        }
    }

    /// Stops serving, then stops every extension in reverse order.
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(server) = self.server.take() {
            let _ = server.await;
        }
        self.host.shutdown().await;
    }
}
