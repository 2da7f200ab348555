//! `annex entities plan|apply`: an extension's declared entities against what is applied.
//! `plan` prints the change and its SQL both ways and changes nothing; `apply` applies it,
//! refusing a change that can lose data unless `--allow-destructive`.

use annex_core::admin::{Admin, EntityPlan};
use annex_core::config::Config;
use clap::Subcommand;

#[derive(Debug, Subcommand)]
pub(crate) enum EntitiesCommand {
    /// Show what applying an extension's entity declaration would change, with its SQL.
    Plan {
        /// The extension.
        name: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Apply an extension's entity declaration (and its other pending migrations).
    Apply {
        /// The extension.
        name: String,
        /// Apply even a change that can lose data (a dropped field or entity, a narrowed type).
        #[arg(long)]
        allow_destructive: bool,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

pub(crate) async fn run(config: Config, command: EntitiesCommand) -> anyhow::Result<()> {
    let extensions = crate::compiled_in()?;
    let admin = Admin::connect(&config, &extensions).await?;
    let result = match command {
        EntitiesCommand::Plan { name, json } => plan(&admin, &name, json).await,
        EntitiesCommand::Apply { name, allow_destructive, json } => {
            apply(&admin, &name, allow_destructive, json).await
        }
    };
    admin.close().await;
    result
}

async fn plan(admin: &Admin, name: &str, json: bool) -> anyhow::Result<()> {
    let plan = admin.entity_plan(name).await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&plan)?);
        return Ok(());
    }
    print_plan(&plan);
    Ok(())
}

fn print_plan(plan: &EntityPlan) {
    let from = plan.applied_version.map_or_else(|| "nothing applied".to_owned(), |v| format!("version {v}"));
    println!("{}: {from} → version {}", plan.extension, plan.declared_version);
    if plan.applied_version == Some(plan.declared_version) {
        println!("up to date: nothing to apply");
        return;
    }
    for c in &plan.changes {
        let change = serde_json::to_value(&c.change).unwrap_or_default();
        let mark = if c.destructive { "DESTRUCTIVE" } else { "ok" };
        println!("  [{mark}] {change}{}", c.why.as_ref().map(|w| format!(" ({w})")).unwrap_or_default());
    }
    println!("-- up");
    for s in &plan.up {
        println!("{s};");
    }
    println!("-- down");
    for s in &plan.down {
        println!("{s};");
    }
}

async fn apply(admin: &Admin, name: &str, allow_destructive: bool, json: bool) -> anyhow::Result<()> {
    if !json {
        println!("{name}: applying its entities and pending migrations");
    }
    let steps = admin
        .apply_entities(name, allow_destructive, |s| {
            if !json {
                println!("  {s}");
            }
        })
        .await?;
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({ "extension": name, "applied": steps }))?
        );
    } else if steps.is_empty() {
        println!("{name}: up to date");
    } else {
        println!("{name}: {} step(s) applied", steps.len());
    }
    Ok(())
}
