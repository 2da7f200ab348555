//! `annex.toml`, environment overrides and defaults. No file is needed to run.

pub(crate) mod admin_token;
pub(crate) mod canonical;
pub(crate) mod schema;
pub(crate) mod secret;

pub use schema::{SchemaViolation, check_config};

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// The whole host configuration.
///
/// ```
/// use annex_core::config::Config;
/// let c = Config::from_toml_str("[server]\nbind = \"0.0.0.0:9000\"").unwrap();
/// assert_eq!(c.server.bind, "0.0.0.0:9000");
/// assert!(c.database.url.is_none()); // → private PostgreSQL under data_dir
/// ```
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Where annex keeps its private PostgreSQL, admin token and extension storage.
    pub data_dir: PathBuf,
    /// The HTTP server.
    pub server: ServerConfig,
    /// The database.
    pub database: DatabaseConfig,
    /// Logging.
    pub log: LogConfig,
    /// Periodic health checks and auto-disable.
    pub health: HealthConfig,
    /// Per-extension settings, by extension name.
    pub extensions: BTreeMap<String, ExtensionConfig>,
    /// The NATS server remote pipeline stages are reached through.
    pub nats: NatsConfig,
}

/// `[nats]`: where remote pipeline stages are reached. Without a `url`, only compiled-in stages
/// run, and a remote stage is refused with an error that says so.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct NatsConfig {
    /// `nats://host:port`; absent: no NATS.
    pub url: Option<String>,
}

/// `[server]`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// Address to listen on.
    pub bind: String,
    /// Bearer token for the admin API; generated into the data dir if absent.
    pub admin_token: Option<String>,
    /// Key for the per-extension database passwords (HMAC); every replica must share it.
    /// Absent: generated into `<data_dir>/secret` (mode 0600) on first run and reused.
    pub secret: Option<String>,
    /// How long shutdown waits for in-flight requests before stopping anyway.
    pub shutdown_timeout_ms: u64,
    /// Time limit for each `init`, `start` and `stop` call.
    pub lifecycle_timeout_ms: u64,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            bind: "127.0.0.1:8080".into(),
            admin_token: None,
            secret: None,
            shutdown_timeout_ms: 10_000,
            lifecycle_timeout_ms: 30_000,
        }
    }
}

/// `[database]`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct DatabaseConfig {
    /// `postgres://…`; absent means a private PostgreSQL under `data_dir/postgres`.
    pub url: Option<String>,
    /// `role` (each extension logs in as its own role) or `schema` (weaker, search_path only).
    pub isolation: Isolation,
    /// Connections in the host's own pool.
    pub max_connections: u32,
}

impl Default for DatabaseConfig {
    fn default() -> Self {
        Self { url: None, isolation: Isolation::Role, max_connections: 10 }
    }
}

/// How extensions are kept apart in the database.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Isolation {
    /// Own schema and own LOGIN role per extension (the default).
    #[default]
    Role,
    /// Own schema only, for servers where annex cannot create roles.
    Schema,
}

/// `[health]`: how often each enabled extension's `health()` runs, and when the host gives up
/// on it. An extension is disabled after `failure_threshold` consecutive failed checks (down,
/// timed out or panicked), or after `panic_threshold` panics of any kind within `panic_window_ms`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct HealthConfig {
    /// Time between two checks of one extension.
    pub interval_ms: u64,
    /// Time limit of one `health()` call; a slower call counts as failed.
    pub timeout_ms: u64,
    /// Consecutive failed checks that disable an extension (0 never disables).
    pub failure_threshold: u32,
    /// Panics within `panic_window_ms` that disable an extension (0 never disables).
    pub panic_threshold: u32,
    /// The window over which panics are counted.
    pub panic_window_ms: u64,
}

impl Default for HealthConfig {
    fn default() -> Self {
        Self {
            interval_ms: 10_000,
            timeout_ms: 2_000,
            failure_threshold: 3,
            panic_threshold: 10,
            panic_window_ms: 60_000,
        }
    }
}

/// `[log]`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// `human` or `json`.
    pub format: LogFormat,
    /// A tracing filter such as `info` or `annex_core=debug,info`.
    pub filter: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self { format: LogFormat::Human, filter: "info".into() }
    }
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Human,
    /// One JSON object per line.
    Json,
}

/// `[extensions.<name>]`.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ExtensionConfig {
    /// Forces the extension on or off at startup; absent keeps the state stored in the database.
    pub enabled: Option<bool>,
    /// Permissions the operator grants.
    pub permissions: Vec<String>,
    /// Request rate limit.
    pub rate_limit: Option<RateLimitConfig>,
    /// Resource quotas.
    pub quotas: QuotaConfig,
    /// The extension's own config, validated against its JSON Schema.
    pub config: Option<serde_json::Value>,
}

/// `rate_limit = { per_second, burst, per_client }`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimitConfig {
    /// Sustained requests per second.
    pub per_second: u32,
    /// Requests allowed at once above the sustained rate.
    pub burst: u32,
    /// One bucket per client (identity, else IP) instead of one for the extension.
    #[serde(default)]
    pub per_client: bool,
}

/// `quotas = { … }`; every field optional.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct QuotaConfig {
    /// In-flight requests at once.
    pub max_concurrent: Option<u32>,
    /// Time limit per request.
    pub timeout_ms: Option<u64>,
    /// Largest request body.
    pub max_body_bytes: Option<u64>,
    /// Connections in the extension's database pool.
    pub db_connections: Option<u32>,
    /// Background tasks at once.
    pub max_tasks: Option<u32>,
    /// Bytes in the extension's storage directory.
    pub storage_bytes: Option<u64>,
    /// Milliseconds of CPU (time spent polling its handlers, tasks, hooks and middleware) per
    /// second of wall time, over a sliding window; over it, new requests answer 429
    /// `cpu_quota_exceeded` and its handlers and tasks are delayed.
    pub cpu_ms_per_s: Option<u32>,
    /// Live bytes allocated by its code and not freed yet; over it, new requests answer 503
    /// `memory_quota_exceeded`, and past the health window it is disabled.
    pub max_memory_bytes: Option<u64>,
}

/// The configuration could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The TOML is malformed or has unknown or mistyped keys.
    #[error("config {origin} is invalid: {message}")]
    Parse {
        /// The file, or `text`.
        origin: String,
        /// The parser's message, with line and column.
        message: String,
    },
    /// An environment variable has a value that does not fit its setting.
    #[error("environment variable {var}={value:?} is invalid: {reason}")]
    Env {
        /// The variable.
        var: &'static str,
        /// Its value.
        value: String,
        /// What is expected.
        reason: &'static str,
    },
}

impl Config {
    /// Parses TOML text; missing keys take their defaults.
    pub fn from_toml_str(text: &str) -> Result<Config, ConfigError> {
        Self::parse(text, "text")
    }

    fn parse(text: &str, origin: &str) -> Result<Config, ConfigError> {
        let mut config: Config = toml::from_str(text)
            .map_err(|e| ConfigError::Parse { origin: origin.to_owned(), message: e.to_string() })?;
        if config.data_dir.as_os_str().is_empty() {
            config.data_dir = PathBuf::from("data");
        }
        Ok(config)
    }

    /// Loads `path` (or `./annex.toml` if it exists, or defaults), then applies overrides from
    /// `env`: `ANNEX_DATA_DIR`, `ANNEX_BIND`, `ANNEX_ADMIN_TOKEN`, `ANNEX_SECRET`, `DATABASE_URL` (or
    /// `ANNEX_DATABASE_URL`), `ANNEX_DATABASE_ISOLATION`, `ANNEX_LOG_FORMAT`, `ANNEX_LOG`, `ANNEX_NATS_URL`.
    pub fn load(path: Option<&Path>, env: impl Fn(&str) -> Option<String>) -> Result<Config, ConfigError> {
        let default_path = Path::new("annex.toml");
        let file = match path {
            Some(p) => Some(p),
            None => default_path.exists().then_some(default_path),
        };
        let mut config = match file {
            Some(p) => {
                let text = std::fs::read_to_string(p)
                    .map_err(|source| ConfigError::Read { path: p.to_owned(), source })?;
                Self::parse(&text, &p.display().to_string())?
            }
            None => Self::parse("", "defaults")?,
        };
        config.apply_env(env)?;
        Ok(config)
    }

    fn apply_env(&mut self, env: impl Fn(&str) -> Option<String>) -> Result<(), ConfigError> {
        if let Some(v) = env("ANNEX_DATA_DIR") {
            self.data_dir = v.into();
        }
        if let Some(v) = env("ANNEX_BIND") {
            self.server.bind = v;
        }
        if let Some(v) = env("ANNEX_ADMIN_TOKEN") {
            self.server.admin_token = Some(v);
        }
        if let Some(v) = env("ANNEX_SECRET") {
            self.server.secret = Some(v).filter(|v| !v.is_empty());
        }
        if let Some(v) = env("ANNEX_DATABASE_URL").or_else(|| env("DATABASE_URL")) {
            self.database.url = Some(v).filter(|v| !v.is_empty());
        }
        if let Some(v) = env("ANNEX_DATABASE_ISOLATION") {
            self.database.isolation = match v.as_str() {
                "role" => Isolation::Role,
                "schema" => Isolation::Schema,
                _ => {
                    return Err(ConfigError::Env {
                        var: "ANNEX_DATABASE_ISOLATION",
                        value: v,
                        reason: "expected `role` or `schema`",
                    });
                }
            };
        }
        if let Some(v) = env("ANNEX_LOG_FORMAT") {
            self.log.format = match v.as_str() {
                "human" => LogFormat::Human,
                "json" => LogFormat::Json,
                _ => {
                    return Err(ConfigError::Env {
                        var: "ANNEX_LOG_FORMAT",
                        value: v,
                        reason: "expected `human` or `json`",
                    });
                }
            };
        }
        if let Some(v) = env("ANNEX_NATS_URL") {
            self.nats.url = Some(v);
        }
        if let Some(v) = env("ANNEX_LOG") {
            self.log.filter = v;
        }
        Ok(())
    }

    /// The settings of one extension (defaults if it has no section).
    pub fn extension(&self, name: &str) -> ExtensionConfig {
        self.extensions.get(name).cloned().unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_file_gives_working_defaults() {
        let c = Config::from_toml_str("").expect("empty is valid");
        assert_eq!(c.server.bind, "127.0.0.1:8080");
        assert_eq!(c.data_dir, PathBuf::from("data"));
        assert_eq!(c.database.isolation, Isolation::Role);
    }

    #[test]
    fn the_design_example_parses() {
        let c = Config::from_toml_str(
            r#"
            [server]
            bind = "127.0.0.1:8080"
            [database]
            isolation = "schema"
            [extensions.hello]
            enabled = true
            permissions = ["database", "storage"]
            rate_limit = { per_second = 50, burst = 100, per_client = false }
            quotas = { max_concurrent = 64, timeout_ms = 5000, max_body_bytes = 1048576 }
            config = { greeting = "hi" }
            "#,
        )
        .expect("valid");
        let hello = c.extension("hello");
        assert_eq!(hello.enabled, Some(true));
        assert_eq!(hello.rate_limit.map(|r| r.burst), Some(100));
        assert_eq!(hello.quotas.timeout_ms, Some(5000));
        assert_eq!(hello.config, Some(serde_json::json!({"greeting": "hi"})));
        assert_eq!(c.database.isolation, Isolation::Schema);
    }

    #[test]
    fn an_unknown_key_is_an_error_with_its_location() {
        let err = Config::from_toml_str("[server]\nbnd = \"x\"").expect_err("typo");
        let msg = err.to_string();
        assert!(msg.contains("bnd"), "{msg}");
        assert!(msg.contains("line 2"), "{msg}");
    }

    #[test]
    fn env_overrides_the_file_and_bad_values_are_named() {
        let mut c = Config::from_toml_str("[server]\nbind = \"a:1\"").expect("valid");
        c.apply_env(|k| match k {
            "ANNEX_BIND" => Some("b:2".into()),
            "DATABASE_URL" => Some("postgres://x/y".into()),
            _ => None,
        })
        .expect("valid env");
        assert_eq!(c.server.bind, "b:2");
        assert_eq!(c.database.url.as_deref(), Some("postgres://x/y"));
        let err = c
            .apply_env(|k| (k == "ANNEX_DATABASE_ISOLATION").then(|| "none".into()))
            .expect_err("bad isolation");
        assert!(err.to_string().contains("ANNEX_DATABASE_ISOLATION"));
    }

    #[test]
    fn a_missing_config_file_is_an_error_naming_it() {
        let err =
            Config::load(Some(Path::new("/nonexistent/annex.toml")), |_| None).expect_err("missing file");
        assert!(err.to_string().contains("/nonexistent/annex.toml"));
    }
}
