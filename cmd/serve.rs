//! `annex serve`.

use annex_core::{Config, Host};
use anyhow::Context as _;
use tokio::net::TcpListener;

pub(crate) async fn serve(mut config: Config, bind: Option<String>) -> anyhow::Result<()> {
    if let Some(bind) = bind {
        config.server.bind = bind;
    }
    // Bind first: a taken port fails fast, before any database work.
    let listener = TcpListener::bind(&config.server.bind)
        .await
        .with_context(|| format!("cannot listen on {}; choose another with --bind", config.server.bind))?;
    let extensions = crate::compiled_in()?;
    let host = Host::builder(config).extensions(extensions).start().await?;
    let addr = listener.local_addr()?;
    tracing::info!(%addr, "annex is serving on http://{addr}");
    let served = host.serve(listener, shutdown_signal()).await;
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
