//! `annex extensions migrate|rollback|migrations|purge`: an extension's database, from the CLI.
//! Each step prints a progress line as it completes.

use crate::output::table;
use annex_core::admin::{Admin, MigrationReport, MigrationStep};
use anyhow::bail;
use clap::Subcommand;

#[derive(Debug, Subcommand)]
pub(crate) enum MigrateCommand {
    /// Apply the pending migrations of one extension (or of every compiled-in one with --all).
    #[command(group(clap::ArgGroup::new("which").required(true).args(["name", "all"])))]
    Migrate {
        /// The extension.
        name: Option<String>,
        /// Every compiled-in extension.
        #[arg(long)]
        all: bool,
    },
    /// Revert an extension's migrations newer than VERSION, newest first (0 reverts all).
    /// Refuses, changing nothing, if one of them has no .down.sql.
    Rollback {
        /// The extension.
        name: String,
        /// The version to go back to; it stays applied.
        version: i64,
        /// Disable the extension first (refused otherwise while it is enabled); running servers
        /// stop it within a second.
        #[arg(long)]
        disable: bool,
    },
    /// Show an extension's migrations (applied, pending, changed) and their history.
    Migrations {
        /// The extension.
        name: String,
        /// Print JSON instead of tables.
        #[arg(long)]
        json: bool,
    },
    /// Drop an extension's schema with all its data, and its role. Refuses while it is enabled.
    Purge {
        /// The extension.
        name: String,
        /// Confirm: the data is gone for good.
        #[arg(long)]
        yes: bool,
    },
}

pub(crate) async fn run(admin: &Admin, command: MigrateCommand) -> anyhow::Result<()> {
    match command {
        MigrateCommand::Migrate { name, all } => {
            let names = if all { admin.extension_names() } else { name.into_iter().collect() };
            migrate(admin, &names).await
        }
        MigrateCommand::Rollback { name, version, disable } => rollback(admin, &name, version, disable).await,
        MigrateCommand::Migrations { name, json } => report(admin, &name, json).await,
        MigrateCommand::Purge { name, yes } => purge(admin, &name, yes).await,
    }
}

fn print_step(step: &MigrationStep) {
    println!("  {step}");
}

async fn migrate(admin: &Admin, names: &[String]) -> anyhow::Result<()> {
    if names.is_empty() {
        println!("(no extensions compiled in)");
    }
    let mut failed = Vec::new();
    for name in names {
        println!("{name}: applying pending migrations");
        match admin.migrate(name, print_step).await {
            Ok(steps) if steps.is_empty() => println!("{name}: up to date"),
            Ok(steps) => println!("{name}: {} migration(s) applied", steps.len()),
            Err(e) => {
                println!("{name}: FAILED: {e}");
                failed.push(name.as_str());
            }
        }
    }
    if !failed.is_empty() {
        bail!("migrations failed for: {}", failed.join(", "));
    }
    Ok(())
}

async fn rollback(admin: &Admin, name: &str, version: i64, disable: bool) -> anyhow::Result<()> {
    if disable {
        let report = admin
            .controller()
            .disable(name, false, "cli", Some("disabled to roll back its migrations"))
            .await?;
        println!(
            "{name}: disabled ({}); running servers stop it within a second",
            report.disabled.join(", ")
        );
    }
    println!("{name}: rolling back to version {version}");
    let steps = admin.rollback(name, version, print_step).await?;
    if steps.is_empty() {
        println!("{name}: nothing newer than {version} is applied");
    } else {
        println!("{name}: {} migration(s) rolled back; the next start applies them again", steps.len());
    }
    Ok(())
}

async fn report(admin: &Admin, name: &str, json: bool) -> anyhow::Result<()> {
    let report = admin.migration_report(name).await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", render(&report));
    }
    Ok(())
}

fn render(r: &MigrationReport) -> String {
    let steps: Vec<Vec<String>> = r
        .steps
        .iter()
        .map(|s| {
            vec![
                format!("{:04}", s.version),
                s.description.clone(),
                s.state.clone(),
                match s.reversible {
                    Some(true) => "yes".into(),
                    Some(false) => "no (irreversible)".into(),
                    None => "?".into(),
                },
                s.applied_at.clone().unwrap_or_else(|| "-".into()),
                s.duration_ms.map(|d| format!("{d} ms")).unwrap_or_else(|| "-".into()),
            ]
        })
        .collect();
    let history: Vec<Vec<String>> = r
        .history
        .iter()
        .map(|h| {
            vec![
                h.at.clone(),
                h.action.clone(),
                format!("{:04}", h.version),
                h.description.clone(),
                format!("{} ms", h.duration_ms),
            ]
        })
        .collect();
    let mut out = format!("extension {} (schema {})\n\n", r.extension, r.schema);
    out.push_str(&table(
        &["VERSION", "DESCRIPTION", "STATE", "REVERSIBLE", "APPLIED_AT", "DURATION"],
        &steps,
    ));
    if steps.is_empty() {
        out.push_str("(no migrations)\n");
    }
    out.push_str("\nhistory\n");
    out.push_str(&table(&["AT", "ACTION", "VERSION", "DESCRIPTION", "DURATION"], &history));
    out
}

async fn purge(admin: &Admin, name: &str, yes: bool) -> anyhow::Result<()> {
    if !yes {
        bail!(
            "purge drops schema ext_{name} with all its data and the role of `{name}`; this cannot be \
             undone. Re-run with --yes to confirm"
        );
    }
    // Nothing is printed before purge has checked it may: a refusal must not read as progress.
    let done = admin.purge(name).await?;
    println!("{name}: purged");
    for line in done {
        println!("  {line}");
    }
    Ok(())
}
