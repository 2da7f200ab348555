//! `annex extensions …`: works against the database, with or without a running server.

use annex_core::{Admin, Config, ExtensionRecord};
use clap::Subcommand;

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
}

pub(crate) async fn run(config: Config, command: ExtensionsCommand) -> anyhow::Result<()> {
    let extensions = crate::compiled_in()?;
    let admin = Admin::connect(&config, &extensions).await?;
    let result = match command {
        ExtensionsCommand::List { json } => list(&admin, json).await,
        ExtensionsCommand::Database(command) => crate::migrate_cmd::run(&admin, command).await,
    };
    admin.close().await;
    result
}

async fn list(admin: &Admin, json: bool) -> anyhow::Result<()> {
    let records = admin.list().await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&records)?);
    } else {
        print!("{}", table(&records));
    }
    Ok(())
}

fn table(records: &[ExtensionRecord]) -> String {
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
