//! Argument parsing and dispatch.

use std::path::PathBuf;
use std::process::ExitCode;

use annex_core::config::{Config, LogFormat};
use clap::{Parser, Subcommand, ValueEnum};

use crate::{
    audit_cmd, entities_cmd, extensions_cmd, logging, operators_cmd, pipelines_cmd, serve, sites_cmd,
    stages_cmd,
};

/// annex: a host runtime for compiled-in extensions.
#[derive(Debug, Parser)]
#[command(name = "annex", version, about)]
struct Cli {
    /// Config file (default: ./annex.toml if it exists).
    #[arg(long, global = true, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Log format; overrides [log] format.
    #[arg(long, global = true, value_enum)]
    log_format: Option<LogFormatArg>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum LogFormatArg {
    Human,
    Json,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve HTTP: host endpoints, the admin API and every enabled extension.
    Serve {
        /// Address to listen on; overrides [server] bind.
        #[arg(long, value_name = "ADDR")]
        bind: Option<String>,
    },
    /// Inspect and manage extensions.
    Extensions {
        #[command(subcommand)]
        command: extensions_cmd::ExtensionsCommand,
    },
    /// Declared entities: plan and apply a declaration change.
    Entities {
        #[command(subcommand)]
        command: entities_cmd::EntitiesCommand,
    },
    /// Sites (tenants): their extensions, sign-offs, reports and snapshots.
    Sites {
        #[command(subcommand)]
        command: sites_cmd::SitesCommand,
    },
    /// Manage operators: people with roles, a site scope, a password and a personal token.
    Operators {
        #[command(subcommand)]
        command: operators_cmd::OperatorsCommand,
    },
    /// The pipeline stage registry: compiled-in and remote stages.
    Stages {
        #[command(subcommand)]
        command: stages_cmd::StagesCommand,
    },
    /// Pipelines composed from the registry's stages.
    Pipelines {
        #[command(subcommand)]
        command: pipelines_cmd::PipelinesCommand,
    },
    /// Check the audit log.
    Audit {
        #[command(subcommand)]
        command: audit_cmd::AuditCommand,
    },
}

/// Parses the command line, runs the command, and maps failure to exit code 1.
pub fn run() -> ExitCode {
    let cli = Cli::parse();
    match run_cli(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run_cli(cli: Cli) -> anyhow::Result<()> {
    let mut config = Config::load(cli.config.as_deref(), |k| std::env::var(k).ok())?;
    if let Some(f) = cli.log_format {
        config.log.format = match f {
            LogFormatArg::Human => LogFormat::Human,
            LogFormatArg::Json => LogFormat::Json,
        };
    }
    logging::init(&config.log);
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(async move {
        match cli.command {
            Command::Serve { bind } => serve::serve(config, bind, cli.config).await,
            Command::Extensions { command } => extensions_cmd::run(config, command).await,
            Command::Entities { command } => entities_cmd::run(config, command).await,
            Command::Sites { command } => sites_cmd::run(config, command).await,
            Command::Operators { command } => operators_cmd::run(config, command).await,
            Command::Stages { command } => stages_cmd::run(config, command).await,
            Command::Pipelines { command } => pipelines_cmd::run(config, command).await,
            Command::Audit { command } => audit_cmd::run(config, command).await,
        }
    })
}
