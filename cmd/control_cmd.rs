//! `annex extensions info|enable|disable|status|health|config|metrics|validate`: operator
//! commands against the database through [`Admin`]; a running server picks changes up through
//! `NOTIFY` within a second. Every command takes `--json`; failures exit non-zero.

use std::io::Read;
use std::path::PathBuf;
use std::sync::Arc;

use crate::output::print_json;
use annex_core::{
    Extension,
    admin::{Admin, ControlError, preflight},
    config::Config,
};
use anyhow::Context as _;
use clap::Subcommand;
use serde_json::json;

#[derive(Debug, Subcommand)]
pub(crate) enum ConfigCommand {
    /// Print the stored config.
    Get {
        /// The extension.
        name: String,
        /// Print JSON (the config itself is JSON either way; this wraps it with the name).
        #[arg(long)]
        json: bool,
    },
    /// Replace the config with the JSON in FILE (`-` reads standard input). Validated against
    /// the extension's JSON Schema; running servers apply it.
    Set {
        /// The extension.
        name: String,
        /// A JSON file, or `-` for standard input.
        file: PathBuf,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

/// Actor recorded in the audit log for changes made with the CLI.
const ACTOR: &str = "cli";

/// Turns a refusal into an error whose text lists every schema violation.
pub(crate) fn refused(e: ControlError) -> anyhow::Error {
    if let ControlError::InvalidConfig { name, errors } = &e {
        let lines: Vec<String> = errors
            .iter()
            .map(|v| format!("  {}: {}", if v.pointer.is_empty() { "(root)" } else { &v.pointer }, v.message))
            .collect();
        return anyhow::anyhow!("config for `{name}` does not fit its schema:\n{}", lines.join("\n"));
    }
    anyhow::Error::new(e)
}

pub(crate) async fn info(admin: &Admin, name: &str, json: bool) -> anyhow::Result<()> {
    let d = admin.controller().info(name).await.map_err(refused)?;
    if json {
        return print_json(&d);
    }
    let r = &d.summary;
    println!("{} {} — {}", r.name, r.version, r.description);
    println!("enabled:      {}", r.enabled);
    println!(
        "state:        {}{}",
        r.state,
        r.reason.as_deref().map(|e| format!(" ({e})")).unwrap_or_default()
    );
    println!("health:       {}", r.health);
    let deps: Vec<String> = d.dependencies.iter().map(|x| format!("{} {}", x.name, x.requirement)).collect();
    println!("dependencies: {}", if deps.is_empty() { "-".into() } else { deps.join(", ") });
    println!("dependents:   {}", if d.dependents.is_empty() { "-".into() } else { d.dependents.join(", ") });
    println!(
        "permissions:  needs [{}], granted [{}]",
        d.permissions.required.join(", "),
        d.permissions.granted.join(", ")
    );
    println!("routes:");
    for route in &d.routes {
        println!("  {} {}", route.method, route.path);
    }
    println!("hooks:");
    for h in &d.hooks {
        println!(
            "  {} {} (priority {}, {})",
            h.point,
            h.id,
            h.priority,
            h.prefix.as_deref().unwrap_or("every route")
        );
    }
    println!("migrations:");
    for m in &d.migrations {
        println!("  {:04} {}{}", m.version, m.description, if m.reversible { "" } else { " (irreversible)" });
    }
    println!("config:       {}", serde_json::to_string(&d.config)?);
    Ok(())
}

pub(crate) async fn enable(admin: &Admin, name: &str, json: bool) -> anyhow::Result<()> {
    let report = admin.controller().enable(name, ACTOR).await.map_err(refused)?;
    if json {
        return print_json(&report);
    }
    println!("enabled `{name}`; running servers start it within a second");
    Ok(())
}

pub(crate) async fn disable(admin: &Admin, name: &str, cascade: bool, json: bool) -> anyhow::Result<()> {
    let report = admin.controller().disable(name, cascade, ACTOR, None).await.map_err(refused)?;
    if json {
        return print_json(&report);
    }
    let them = if report.disabled.len() == 1 { "it" } else { "them" };
    println!("disabled {}; running servers stop {them} within a second", report.disabled.join(", "));
    Ok(())
}

pub(crate) async fn status(admin: &Admin, json: bool) -> anyhow::Result<()> {
    let lines = admin.controller().list().await.map_err(refused)?;
    if json {
        return print_json(&lines);
    }
    let width = lines.iter().map(|r| r.name.len()).max().unwrap_or(4).max(4);
    println!("{:<width$}  {:<7}  {:<10}  {:<9}  REASON", "NAME", "ENABLED", "STATE", "HEALTH");
    for r in &lines {
        println!(
            "{:<width$}  {:<7}  {:<10}  {:<9}  {}",
            r.name,
            r.enabled,
            r.state,
            r.health,
            r.reason.as_deref().unwrap_or("")
        );
    }
    Ok(())
}

pub(crate) async fn health(admin: &Admin, name: &str, limit: i64, json: bool) -> anyhow::Result<()> {
    let report = admin.controller().health(name, limit).await.map_err(refused)?;
    if json {
        return print_json(&report);
    }
    println!("{}: {}", report.extension, report.status);
    for c in &report.history {
        let msg = c.message.as_deref().unwrap_or("");
        println!("  {}  {:<8}  {:>8.1} ms  {}  {msg}", c.at, c.status, c.duration_ms, c.replica);
    }
    if report.history.is_empty() {
        println!("  (no checks yet: a running server checks every [health] interval_ms)");
    }
    Ok(())
}

pub(crate) async fn config(admin: &Admin, command: ConfigCommand) -> anyhow::Result<()> {
    match command {
        ConfigCommand::Get { name, json } => {
            let view = admin.controller().config_of(&name).await.map_err(refused)?;
            if json { print_json(&view) } else { print_json(&view.config) }
        }
        ConfigCommand::Set { name, file, json } => {
            let text = if file.as_os_str() == "-" {
                let mut s = String::new();
                std::io::stdin()
                    .read_to_string(&mut s)
                    .context("cannot read the config from standard input")?;
                s
            } else {
                std::fs::read_to_string(&file).with_context(|| format!("cannot read {}", file.display()))?
            };
            let value: serde_json::Value = serde_json::from_str(&text).with_context(|| {
                format!("{} is not JSON; pass the config as a JSON object", file.display())
            })?;
            let view = admin.controller().set_config(&name, value, ACTOR).await.map_err(refused)?;
            if json {
                return print_json(&view);
            }
            println!("stored the new config of `{name}`; running servers apply it within a second");
            Ok(())
        }
    }
}

pub(crate) async fn metrics(admin: &Admin, name: &str, json: bool) -> anyhow::Result<()> {
    let figures = admin.controller().figures(name).await.map_err(refused)?;
    if json {
        return print_json(&figures);
    }
    if figures.replicas.is_empty() {
        println!("no figures for `{name}` yet: running servers store them every [health] interval_ms");
        return Ok(());
    }
    for r in &figures.replicas {
        println!("replica {} at {}", r.replica, r.at);
        // The quota figures first: CPU seconds used and live bytes held.
        let resource = |name: &str| {
            r.figures["extension_resource_usage"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|s| s["resource"] == name)
                .and_then(|s| s["value"].as_f64())
        };
        if let (Some(cpu), Some(memory)) = (resource("cpu_seconds"), resource("memory_bytes")) {
            println!("  cpu_seconds {cpu:.3}  memory_bytes {memory:.0}");
        }
        if let Some(families) = r.figures.as_object() {
            for (family, series) in families {
                for s in series.as_array().into_iter().flatten() {
                    let mut labels = Vec::new();
                    let mut value = String::new();
                    for (k, v) in s.as_object().into_iter().flatten() {
                        match k.as_str() {
                            "value" | "count" | "sum" => value.push_str(&format!(" {k}={v}")),
                            _ => labels.push(format!("{k}={}", v.as_str().unwrap_or_default())),
                        }
                    }
                    println!("  {family}{{{}}}{value}", labels.join(","));
                }
            }
        }
    }
    Ok(())
}

pub(crate) fn validate(config: &Config, extensions: &[Arc<dyn Extension>], json: bool) -> anyhow::Result<()> {
    let problems = preflight(config, extensions);
    if json {
        print_json(
            &json!({ "ok": problems.is_empty(), "extensions": extensions.len(), "problems": problems }),
        )?;
    } else if problems.is_empty() {
        println!("{} compiled-in extension(s): all checks passed", extensions.len());
    } else {
        for p in &problems {
            println!("[{}] {}", p.check, p.message);
        }
    }
    if problems.is_empty() { Ok(()) } else { anyhow::bail!("{} problem(s) found", problems.len()) }
}
