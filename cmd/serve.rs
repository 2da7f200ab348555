//! `annex serve`.

use annex_core::{config::Config, host::Host};
use anyhow::Context as _;
use tokio::net::TcpListener;

use std::path::PathBuf;

pub(crate) async fn serve(
    mut config: Config,
    bind: Option<String>,
    config_path: Option<PathBuf>,
) -> anyhow::Result<()> {
    if let Some(bind) = bind {
        config.server.bind = bind;
    }
    // Bind first: a taken port fails fast, before any database work.
    let listener = TcpListener::bind(&config.server.bind)
        .await
        .with_context(|| format!("cannot listen on {}; choose another with --bind", config.server.bind))?;
    let extensions = crate::compiled_in()?;
    let host = Host::builder(config).extensions(extensions).start().await?;
    let reload = tokio::spawn(reload_on_sighup(host.clone(), config_path));
    let addr = listener.local_addr()?;
    tracing::info!(%addr, "annex is serving on http://{addr}");
    let served = host.serve(listener, shutdown_signal()).await;
    reload.abort();
    host.shutdown().await;
    served?;
    tracing::info!("annex stopped");
    Ok(())
}

/// SIGINT (Ctrl-C) or SIGTERM.
async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(error = %e, "cannot listen for SIGTERM; only Ctrl-C stops annex");
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}

/// On SIGHUP, re-reads the config file (same path and env as at start). Extension switches and
/// configs need no reload: they live in the database and reach every replica through NOTIFY.
async fn reload_on_sighup(host: Host, path: Option<PathBuf>) {
    use tokio::signal::unix::{SignalKind, signal};
    let mut hup = match signal(SignalKind::hangup()) {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(error = %e, "cannot listen for SIGHUP; restart annex to reload annex.toml");
            return;
        }
    };
    while hup.recv().await.is_some() {
        match Config::load(path.as_deref(), |k| std::env::var(k).ok()) {
            Ok(new_config) => match host.reload_limits(&new_config) {
                Ok(()) => tracing::info!("SIGHUP: configuration re-read; rate limits and quotas reloaded"),
                Err(e) => tracing::error!(error = %e, "SIGHUP: new limits refused; the old ones stay"),
            },
            Err(e) => {
                tracing::error!(error = %e, "SIGHUP: the configuration is invalid; keeping the current one")
            }
        }
    }
}
