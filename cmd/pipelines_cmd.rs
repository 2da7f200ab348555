//! `annex pipelines list|show|set|remove|run`: pipelines, against the database with or without
//! a running server (the same `annex_core::admin::Registry` operations the admin API runs);
//! `run` posts a payload to a running server's `POST /pipelines/<name>`.

use crate::output::{print_json, read_json, table};
use annex_core::admin::{Admin, PipelineDef, PipelineInput};
use annex_core::config::Config;
use anyhow::Context as _;
use clap::Subcommand;
use serde_json::{Value, json};

#[derive(Debug, Subcommand)]
pub(crate) enum PipelinesCommand {
    /// Every pipeline.
    List {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// One pipeline.
    Show {
        /// Its name.
        name: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Create or replace a pipeline from JSON (`{"pre": [...], "validators": [{"stage": …,
    /// "order": 0}], "providers": [{"stage": …, "priority": 0}], "post": [...], "deadline_ms": 5000}`;
    /// `-` reads standard input).
    Set {
        /// Its name.
        name: String,
        /// The pipeline as JSON.
        pipeline_json: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Remove a pipeline.
    Remove {
        /// Its name.
        name: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Run a pipeline on a running server and print its answer.
    Run {
        /// Its name.
        name: String,
        /// The payload as JSON (`-` reads standard input).
        payload_json: String,
        /// The server (default `http://` + [server] bind).
        #[arg(long)]
        url: Option<String>,
        /// Print `{"status", "degraded", "server_timing", "body"}` as JSON.
        #[arg(long)]
        json: bool,
    },
}

pub(crate) async fn run(config: Config, command: PipelinesCommand) -> anyhow::Result<()> {
    let command = match command {
        PipelinesCommand::Run { name, payload_json, url, json } => {
            let base = url.unwrap_or_else(|| format!("http://{}", config.server.bind));
            return run_remote(&base, &name, read_json(&payload_json, "the payload")?, json).await;
        }
        other => other,
    };
    let extensions = crate::compiled_in()?;
    let admin = Admin::connect(&config, &extensions).await?;
    let result = dispatch(&admin, command).await;
    admin.close().await;
    result
}

fn one(p: &PipelineDef, json: bool, verb: &str) -> anyhow::Result<()> {
    if json {
        return print_json(p);
    }
    println!("{verb} pipeline `{}`: {}", p.name, summary(p));
    Ok(())
}

fn summary(p: &PipelineDef) -> String {
    let validators: Vec<String> =
        p.stages.validators.iter().map(|v| format!("{}@{}", v.stage, v.order)).collect();
    let providers: Vec<String> =
        p.stages.providers.iter().map(|c| format!("{}#{}", c.stage, c.priority)).collect();
    format!(
        "pre [{}] → validators [{}] → providers [{}] → post [{}], deadline {} ms",
        p.stages.pre.join(", "),
        validators.join(", "),
        providers.join(", "),
        p.stages.post.join(", "),
        p.deadline_ms
    )
}

async fn dispatch(admin: &Admin, command: PipelinesCommand) -> anyhow::Result<()> {
    const CLI: &str = "cli";
    let registry = admin.registry();
    match command {
        PipelinesCommand::List { json } => {
            let list = registry.pipelines().await?;
            if json {
                return print_json(&json!({ "pipelines": list, "registry": Value::Null }));
            }
            let rows: Vec<Vec<String>> = list.iter().map(|p| vec![p.name.clone(), summary(p)]).collect();
            print!("{}", table(&["NAME", "STAGES"], &rows));
            Ok(())
        }
        PipelinesCommand::Show { name, json } => one(&registry.pipeline(&name).await?, json, "pipeline"),
        PipelinesCommand::Set { name, pipeline_json, json } => {
            let input: PipelineInput = serde_json::from_value(read_json(&pipeline_json, "the pipeline")?)
                .context("not a pipeline")?;
            one(&registry.put_pipeline(CLI, &name, input).await?, json, "stored")
        }
        PipelinesCommand::Remove { name, json } => {
            registry.remove_pipeline(CLI, &name).await?;
            if json {
                return print_json(&json!({ "removed": name }));
            }
            println!("removed pipeline `{name}`");
            Ok(())
        }
        PipelinesCommand::Run { .. } => anyhow::bail!("`pipelines run` talks to a server, not the database"),
    }
}

async fn run_remote(base: &str, name: &str, payload: Value, json: bool) -> anyhow::Result<()> {
    let url = format!("{}/pipelines/{name}", base.trim_end_matches('/'));
    let res = reqwest::Client::new()
        .post(&url)
        .json(&payload)
        .send()
        .await
        .with_context(|| format!("POST {url}"))?;
    let status = res.status();
    let header = |h: &str| res.headers().get(h).and_then(|v| v.to_str().ok()).map(str::to_owned);
    let (degraded, timing) = (header("annex-degraded"), header("server-timing"));
    let body: Value = res.json().await.unwrap_or(Value::Null);
    if json {
        print_json(
            &json!({ "status": status.as_u16(), "degraded": degraded, "server_timing": timing, "body": body }),
        )?;
    } else {
        println!("{}", serde_json::to_string_pretty(&body)?);
        if let Some(d) = degraded {
            eprintln!("degraded: {d}");
        }
    }
    anyhow::ensure!(status.is_success(), "the pipeline answered {status}");
    Ok(())
}
