//! Tracing output: human lines by default, JSON with `--log-format json`.

use std::io::IsTerminal;

use annex_core::config::{LogConfig, LogFormat};
use tracing_subscriber::EnvFilter;

/// `RUST_LOG`, if set, wins over `[log] filter`. Logs go to stderr so `--json` output stays clean;
/// they are coloured only when stderr is a terminal (and `NO_COLOR` is not set), so files, pipes
/// and journald get plain text.
pub(crate) fn init(log: &LogConfig) {
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(&log.filter))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let colour = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    let builder =
        tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_ansi(colour);
    let _ = match log.format {
        LogFormat::Human => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
}
