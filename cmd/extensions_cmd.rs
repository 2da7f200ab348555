//! `annex extensions …`: works against the database, with or without a running server.

use annex_core::admin::{Admin, ExtensionSummary};
use annex_core::config::Config;
use clap::Subcommand;

use crate::{control_cmd, scaffold};

#[derive(Debug, Subcommand)]
pub(crate) enum ExtensionsCommand {
    /// List extensions: name, version, enabled, state, description.
    List {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    #[command(flatten)]
    Database(crate::migrate_cmd::MigrateCommand),
    /// Details: metadata, dependencies, permissions, routes, migrations, config, health.
    Info {
        /// The extension.
        name: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Enable an extension; running servers start it within a second.
    Enable {
        /// The extension.
        name: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Disable an extension; running servers stop it within a second.
    Disable {
        /// The extension.
        name: String,
        /// Also disable every enabled extension that depends on it.
        #[arg(long)]
        cascade: bool,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// State and latest health of every extension.
    Status {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Health status and history of one extension.
    Health {
        /// The extension.
        name: String,
        /// History entries to show.
        #[arg(long, default_value_t = 20)]
        limit: i64,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Show or change an extension's config.
    Config {
        #[command(subcommand)]
        command: crate::control_cmd::ConfigCommand,
    },
    /// Each running replica's latest figures for one extension.
    Metrics {
        /// The extension.
        name: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Check the compiled-in set against the config: names, dependencies, permissions, schemas,
    /// routes, migration files. Needs no database.
    Validate {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Scaffold extensions/custom/<name> (a route, a migration pair, a test) and wire it into
    /// Cargo.toml so the next `cargo build` includes it.
    New {
        /// The new extension's name.
        name: String,
        /// The workspace root (default: the nearest directory upwards with a workspace Cargo.toml).
        #[arg(long, value_name = "DIR")]
        path: Option<std::path::PathBuf>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

pub(crate) async fn run(config: Config, command: ExtensionsCommand) -> anyhow::Result<()> {
    let extensions = crate::compiled_in()?;
    // These two need no database.
    let command = match command {
        ExtensionsCommand::Validate { json } => return control_cmd::validate(&config, &extensions, json),
        ExtensionsCommand::New { name, path, json } => {
            let taken: Vec<String> = extensions.iter().map(|e| e.metadata().name).collect();
            return scaffold::new(&name, path.as_deref(), &taken, json);
        }
        other => other,
    };
    let admin = Admin::connect(&config, &extensions).await?;
    let result = match command {
        ExtensionsCommand::List { json } => list(&admin, json).await,
        ExtensionsCommand::Database(command) => crate::migrate_cmd::run(&admin, command).await,
        ExtensionsCommand::Info { name, json } => control_cmd::info(&admin, &name, json).await,
        ExtensionsCommand::Enable { name, json } => control_cmd::enable(&admin, &name, json).await,
        ExtensionsCommand::Disable { name, cascade, json } => {
            control_cmd::disable(&admin, &name, cascade, json).await
        }
        ExtensionsCommand::Status { json } => control_cmd::status(&admin, json).await,
        ExtensionsCommand::Health { name, limit, json } => {
            control_cmd::health(&admin, &name, limit, json).await
        }
        ExtensionsCommand::Config { command } => control_cmd::config(&admin, command).await,
        ExtensionsCommand::Metrics { name, json } => control_cmd::metrics(&admin, &name, json).await,
        ExtensionsCommand::Validate { .. } | ExtensionsCommand::New { .. } => Ok(()),
    };
    admin.close().await;
    result
}

async fn list(admin: &Admin, json: bool) -> anyhow::Result<()> {
    let records = admin.controller().list().await.map_err(crate::control_cmd::refused)?;
    if json {
        println!("{}", serde_json::to_string_pretty(&records)?);
    } else {
        print!("{}", table(&records));
    }
    Ok(())
}

pub(crate) fn table(records: &[ExtensionSummary]) -> String {
    let rows: Vec<[String; 5]> = records
        .iter()
        .map(|r| {
            let mut state = r.state.clone();
            if !r.compiled_in {
                state.push_str(" (not compiled in)");
            }
            [r.name.clone(), r.version.clone(), r.enabled.to_string(), state, r.description.clone()]
        })
        .collect();
    let header = ["NAME", "VERSION", "ENABLED", "STATE", "DESCRIPTION"].map(String::from);
    let mut widths = header.clone().map(|h| h.len());
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.len());
        }
    }
    let mut out = String::new();
    for row in std::iter::once(&header).chain(&rows) {
        let cells: Vec<String> = row.iter().zip(widths).map(|(c, w)| format!("{c:<w$}")).collect();
        out.push_str(cells.join("  ").trim_end());
        out.push('\n');
    }
    if records.is_empty() {
        out.push_str("(no extensions compiled in)\n");
    }
    out
}
