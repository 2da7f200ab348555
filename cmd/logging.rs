//! Tracing output: human lines by default, JSON with `--log-format json`.

use annex_core::config::{LogConfig, LogFormat};
use tracing_subscriber::EnvFilter;

/// `RUST_LOG`, if set, wins over `[log] filter`. Logs go to stderr so `--json` output stays clean.
pub(crate) fn init(log: &LogConfig) {
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(&log.filter))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    let _ = match log.format {
        LogFormat::Human => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
}
