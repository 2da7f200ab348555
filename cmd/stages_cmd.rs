//! `annex stages list|show|add|set|enable|disable|remove|health`: the stage registry, against
//! the database with or without a running server (servers follow through `NOTIFY
//! annex_pipelines`). Every command runs the `annex_core::admin::Registry` operation the admin
//! API runs, as `cli`, and prints the same JSON document with `--json`.

use annex_core::admin::{Admin, NewStage, Registry, StageChange, StageDef};
use annex_core::config::Config;
use anyhow::Context as _;
use clap::Subcommand;
use serde_json::{Value, json};

use crate::output::{print_json, read_json, table};

#[derive(Debug, Subcommand)]
pub(crate) enum StagesCommand {
    /// Every stage in the registry.
    List {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// One stage.
    Show {
        /// Its id.
        id: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Add a remote stage: a JSON document (`{"id": …, "kind": …, "subject": …}`; `-` reads
    /// standard input). NATS must be configured.
    Add {
        /// The stage as JSON.
        stage_json: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Change the fields a JSON document gives (`{"timeout_ms": 300, "on_error": "open"}`).
    Set {
        /// Its id.
        id: String,
        /// The change as JSON (`-` reads standard input).
        change_json: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Enable a stage.
    Enable {
        /// Its id.
        id: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Disable a stage (pipelines naming it skip it).
    Disable {
        /// Its id.
        id: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Remove a remote stage no pipeline uses.
    Remove {
        /// Its id.
        id: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Every replica's recent figures of a stage (mirrored every 10 s).
    Health {
        /// Its id.
        id: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

pub(crate) async fn run(config: Config, command: StagesCommand) -> anyhow::Result<()> {
    let extensions = crate::compiled_in()?;
    let admin = Admin::connect(&config, &extensions).await?;
    let result = dispatch(admin.registry(), command).await;
    admin.close().await;
    result
}

fn one(stage: &StageDef, json: bool, verb: &str) -> anyhow::Result<()> {
    if json {
        return print_json(stage);
    }
    println!(
        "{verb} stage `{}`: {} {}, {}, timeout {} ms, on error {}",
        stage.id,
        stage.kind,
        stage.transport.as_str(),
        if stage.enabled { "enabled" } else { "disabled" },
        stage.timeout_ms,
        serde_json::to_value(stage.on_error)?.as_str().unwrap_or_default()
    );
    Ok(())
}

async fn dispatch(registry: Registry<'_>, command: StagesCommand) -> anyhow::Result<()> {
    const CLI: &str = "cli";
    match command {
        StagesCommand::List { json } => {
            let stages = registry.stages().await?;
            if json {
                return print_json(&json!({ "stages": stages }));
            }
            let rows: Vec<Vec<String>> = stages
                .iter()
                .map(|s| {
                    vec![
                        s.id.clone(),
                        s.kind.to_string(),
                        s.transport.as_str().to_owned(),
                        if s.enabled { "yes".into() } else { "no".into() },
                        s.timeout_ms.to_string(),
                        s.subject.clone().or_else(|| s.extension.clone()).unwrap_or_default(),
                    ]
                })
                .collect();
            print!(
                "{}",
                table(&["ID", "KIND", "TRANSPORT", "ENABLED", "TIMEOUT_MS", "EXTENSION/SUBJECT"], &rows)
            );
            Ok(())
        }
        StagesCommand::Show { id, json } => {
            let stage = registry.stage(&id).await?;
            if json {
                return print_json(&stage);
            }
            println!("{}", serde_json::to_string_pretty(&stage)?);
            Ok(())
        }
        StagesCommand::Add { stage_json, json } => {
            let new: NewStage =
                serde_json::from_value(read_json(&stage_json, "the stage")?).context("not a stage")?;
            one(&registry.add_stage(CLI, new).await?, json, "added")
        }
        StagesCommand::Set { id, change_json, json } => {
            let change: StageChange = serde_json::from_value(read_json(&change_json, "the change")?)
                .context("not a stage change")?;
            one(&registry.change_stage(CLI, &id, change).await?, json, "changed")
        }
        StagesCommand::Enable { id, json } => {
            one(&registry.set_enabled(CLI, &id, true).await?, json, "enabled")
        }
        StagesCommand::Disable { id, json } => {
            one(&registry.set_enabled(CLI, &id, false).await?, json, "disabled")
        }
        StagesCommand::Remove { id, json } => {
            registry.remove_stage(CLI, &id).await?;
            if json {
                return print_json(&json!({ "removed": id }));
            }
            println!("removed stage `{id}`");
            Ok(())
        }
        StagesCommand::Health { id, json } => {
            let rows = registry.stored_health(&id).await?;
            if json {
                return print_json(&json!({ "stage": id, "live": Value::Null, "replicas": rows }));
            }
            let rows: Vec<Vec<String>> = rows
                .iter()
                .map(|h| {
                    vec![
                        h.replica.clone(),
                        h.calls.to_string(),
                        h.failures.to_string(),
                        format!("{:.3}", h.score),
                        h.breaker.clone(),
                        h.updated_at.to_rfc3339(),
                    ]
                })
                .collect();
            print!("{}", table(&["REPLICA", "CALLS", "FAILURES", "SCORE", "BREAKER", "UPDATED"], &rows));
            Ok(())
        }
    }
}
