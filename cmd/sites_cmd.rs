//! `annex sites …`: sites, their extensions, sign-offs, reports and snapshots, against the
//! database with or without a running server (servers follow through `NOTIFY annex_sites`).
//! Every command runs the same `annex_core::sites::Sites` operation the admin API runs, as
//! `Actor::Cli`, and prints the same JSON document with `--json`; a refusal exits non-zero
//! (with `--json`, its error and report are printed on stdout first).

use std::io::Read;

use crate::output::{print_json, read_json, table};
use annex_core::access::{Action, Actor};
use annex_core::admin::Admin;
use annex_core::config::Config;
use annex_core::sites::{SignoffRequest, Site, SiteError, Sites};
use anyhow::Context as _;
use clap::Subcommand;
use serde::Serialize;
use serde_json::json;

#[derive(Debug, Subcommand)]
pub(crate) enum SitesCommand {
    /// Create a site.
    Create {
        /// Its slug: `^[a-z0-9][a-z0-9-]{0,62}$`.
        slug: String,
        /// Its name, shown to operators.
        #[arg(long)]
        name: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// List the sites.
    List {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Every compiled-in extension's state at a site: validity, open conflicts, missing sign-offs.
    Status {
        /// The site (slug or id).
        site: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Suspend a site: its extension routes answer 503 and nothing at it may change.
    Suspend {
        /// The site.
        site: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Resume a suspended site.
    Resume {
        /// The site.
        site: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Validate an extension's config at a site (changes nothing but the record of conflicts).
    Validate {
        /// The site.
        site: String,
        /// The extension.
        extension: String,
        /// The config as JSON (default `{}`); `-` reads it from standard input.
        #[arg(value_name = "CONFIG", default_value = "{}")]
        config_json: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Activate an extension at a site, or re-activate it with a new config.
    Activate {
        /// The site.
        site: String,
        /// The extension.
        extension: String,
        /// The config as JSON (default `{}`); `-` reads it from standard input.
        #[arg(value_name = "CONFIG", default_value = "{}")]
        config_json: String,
        /// Why, for the audit log.
        #[arg(long, default_value = "")]
        reason: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Deactivate an extension at a site.
    Deactivate {
        /// The site.
        site: String,
        /// The extension.
        extension: String,
        /// Also deactivate the active extensions that need it.
        #[arg(long)]
        cascade: bool,
        /// Why, for the audit log.
        #[arg(long, default_value = "")]
        reason: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Sign off a compliance aspect as an operator; the password is read from standard input.
    Signoff {
        /// The site.
        site: String,
        /// The extension.
        extension: String,
        /// The signing operator's username.
        #[arg(long)]
        operator: String,
        /// The aspect.
        #[arg(long)]
        aspect: String,
        /// The role signed in.
        #[arg(long)]
        role: String,
        /// review, approval, responsibility or authorship.
        #[arg(long, default_value = "approval")]
        meaning: String,
        /// The config hash approved (the report of `validate` or a refused `activate` names it).
        #[arg(long = "hash")]
        config_hash: String,
        /// Free text.
        #[arg(long, default_value = "")]
        notes: String,
        /// Read the password from standard input (the only way: never a flag).
        #[arg(long, required = true)]
        password_stdin: bool,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// The sign-offs of an extension at a site, each marked valid for the current hash or not.
    Signoffs {
        /// The site.
        site: String,
        /// The extension.
        extension: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// The audit trail of an extension at a site, newest first.
    Trail {
        /// The site.
        site: String,
        /// The extension.
        extension: String,
        /// Entries to show (1 to 500).
        #[arg(long, default_value_t = 50)]
        limit: i64,
        /// Only entries older than this id.
        #[arg(long)]
        before: Option<i64>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// The compliance report: active extensions, hashes, sign-offs, what is missing.
    Report {
        /// The site.
        site: String,
        /// `text` (a summary), `csv` (one line per sign-off given or missing) or `json`.
        #[arg(long, value_enum, default_value = "text")]
        format: ReportFormat,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Take a snapshot of a site's configuration and sign-offs (`--list` lists them instead).
    Snapshot {
        /// The site.
        site: String,
        /// A label.
        #[arg(long, default_value = "")]
        label: String,
        /// List the snapshots instead of taking one.
        #[arg(long)]
        list: bool,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Restore a snapshot through validation and sign-offs: all or nothing.
    Restore {
        /// The site.
        site: String,
        /// The snapshot's id.
        snapshot: String,
        /// Why, for the audit log.
        #[arg(long, default_value = "")]
        reason: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

/// How `annex sites report` prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum ReportFormat {
    Text,
    Csv,
    Json,
}

pub(crate) async fn run(config: Config, command: SitesCommand) -> anyhow::Result<()> {
    let extensions = crate::compiled_in()?;
    let admin = Admin::connect(&config, &extensions).await?;
    let result = dispatch(admin.sites(), command).await;
    admin.close().await;
    result
}

/// Prints a refusal with `--json` (error and report on stdout), then fails with its message.
fn refused(e: SiteError, json: bool) -> anyhow::Error {
    if json {
        let mut body = json!({ "error": { "code": e.code(), "message": e.to_string() } });
        if let SiteError::InvalidConfig { errors, .. } = &e {
            body["error"]["errors"] = json!(errors);
        }
        if let Some(report) = e.report() {
            body["report"] = json!(report);
        }
        if let Ok(text) = serde_json::to_string_pretty(&body) {
            println!("{text}");
        }
    }
    anyhow::anyhow!("{e} ({})", e.code())
}

/// The JSON document with `--json`, else the line `human` makes.
fn emit(json: bool, value: &impl Serialize, human: impl FnOnce() -> String) -> anyhow::Result<()> {
    if json {
        return print_json(value);
    }
    println!("{}", human());
    Ok(())
}

fn short(hash: &str) -> String {
    hash.chars().take(12).collect()
}

async fn site(sites: &Sites<'_>, site: &str, action: Action, json: bool) -> anyhow::Result<Site> {
    sites.resolve(&Actor::Cli, site, action).await.map_err(|e| refused(e, json))
}

async fn dispatch(sites: Sites<'_>, command: SitesCommand) -> anyhow::Result<()> {
    let cli = Actor::Cli;
    match command {
        SitesCommand::Create { slug, name, json } => {
            let s = sites.create(&cli, &slug, &name).await.map_err(|e| refused(e, json))?;
            emit(json, &s, || format!("created site `{}` ({}) {}", s.slug, s.name, s.id))
        }
        SitesCommand::List { json } => {
            let list = sites.list(&cli).await.map_err(|e| refused(e, json))?;
            if json {
                return print_json(&json!({ "sites": list }));
            }
            let rows: Vec<Vec<String>> = list
                .iter()
                .map(|s| vec![s.slug.clone(), s.status.clone(), s.name.clone(), s.id.to_string()])
                .collect();
            print!("{}", table(&["SLUG", "STATUS", "NAME", "ID"], &rows));
            Ok(())
        }
        SitesCommand::Status { site: name, json } => {
            let s = site(&sites, &name, Action::Read, json).await?;
            let status = sites.status(&s).await.map_err(|e| refused(e, json))?;
            if json {
                return print_json(&status);
            }
            println!("site `{}` ({})", status.site, status.status);
            let rows: Vec<Vec<String>> = status
                .extensions
                .iter()
                .map(|e| {
                    vec![
                        e.extension.clone(),
                        e.version.clone(),
                        e.state.clone(),
                        e.config_hash.as_deref().map(short).unwrap_or_else(|| "-".into()),
                        e.valid.map_or_else(|| "-".into(), |v| v.to_string()),
                        e.open_conflicts.len().to_string(),
                        e.missing_signoffs
                            .iter()
                            .map(|m| format!("{}/{}", m.aspect, m.role))
                            .collect::<Vec<_>>()
                            .join(", "),
                    ]
                })
                .collect();
            print!(
                "{}",
                table(
                    &["EXTENSION", "VERSION", "STATE", "HASH", "VALID", "CONFLICTS", "MISSING SIGN-OFFS"],
                    &rows
                )
            );
            Ok(())
        }
        SitesCommand::Suspend { site: name, json } => set_suspended(&sites, &name, true, json).await,
        SitesCommand::Resume { site: name, json } => set_suspended(&sites, &name, false, json).await,
        SitesCommand::Validate { site: name, extension, config_json, json } => {
            let s = site(&sites, &name, Action::Validate, json).await?;
            let report = sites
                .validate(&s, &extension, read_json(&config_json, "the config")?)
                .await
                .map_err(|e| refused(e, json))?;
            if json {
                print_json(&report)?;
            } else {
                println!(
                    "{} (config hash {})",
                    if report.valid { "valid" } else { "not valid" },
                    report.config_hash
                );
                for line in report_lines(&report) {
                    println!("  {line}");
                }
            }
            if report.valid {
                Ok(())
            } else {
                Err(anyhow::anyhow!("extension `{extension}` does not validate at `{name}`"))
            }
        }
        SitesCommand::Activate { site: name, extension, config_json, reason, json } => {
            let s = site(&sites, &name, Action::Manage, json).await?;
            let config = read_json(&config_json, "the config")?;
            let done = sites.activate(&cli, &s, &extension, config, &reason).await.map_err(|e| {
                if !json && let Some(report) = e.report() {
                    for line in report_lines(report) {
                        eprintln!("  {line}");
                    }
                }
                refused(e, json)
            })?;
            emit(json, &done, || {
                format!(
                    "{} `{}` at `{}` (config hash {}, version {})",
                    done.action, done.extension, done.site, done.config_hash, done.config_version
                )
            })
        }
        SitesCommand::Deactivate { site: name, extension, cascade, reason, json } => {
            let s = site(&sites, &name, Action::Manage, json).await?;
            let done = sites
                .deactivate(&cli, &s, &extension, cascade, &reason)
                .await
                .map_err(|e| refused(e, json))?;
            emit(json, &done, || format!("deactivated at `{}`: {}", done.site, done.deactivated.join(", ")))
        }
        SitesCommand::Signoff {
            site: name,
            extension,
            operator,
            aspect,
            role,
            meaning,
            config_hash,
            notes,
            password_stdin: _,
            json,
        } => {
            let s = site(&sites, &name, Action::Sign, json).await?;
            let mut password = String::new();
            std::io::stdin()
                .read_to_string(&mut password)
                .context("reading the password from standard input")?;
            let password = password.strip_suffix('\n').unwrap_or(&password);
            let password = password.strip_suffix('\r').unwrap_or(password).to_owned();
            let request = SignoffRequest { aspect, role, meaning, config_hash, password, notes };
            let signed =
                sites.sign_as(&operator, &s, &extension, &request).await.map_err(|e| refused(e, json))?;
            emit(json, &signed, || {
                format!(
                    "signed: {} ({}) as `{}` for `{}`, aspect `{}`, meaning {}, hash {}",
                    signed.printed_name,
                    signed.username,
                    signed.role,
                    signed.extension,
                    signed.aspect,
                    signed.meaning,
                    signed.config_hash
                )
            })
        }
        SitesCommand::Signoffs { site: name, extension, json } => {
            let s = site(&sites, &name, Action::Read, json).await?;
            let list = sites.signoffs(&s, &extension).await.map_err(|e| refused(e, json))?;
            if json {
                return print_json(&list);
            }
            let rows: Vec<Vec<String>> = list
                .signoffs
                .iter()
                .map(|s| {
                    vec![
                        s.signed_at.clone(),
                        s.printed_name.clone(),
                        s.aspect.clone(),
                        s.role.clone(),
                        s.meaning.clone(),
                        short(&s.config_hash),
                        s.valid.to_string(),
                    ]
                })
                .collect();
            print!("{}", table(&["SIGNED AT", "NAME", "ASPECT", "ROLE", "MEANING", "HASH", "VALID"], &rows));
            Ok(())
        }
        SitesCommand::Trail { site: name, extension, limit, before, json } => {
            let s = site(&sites, &name, Action::Read, json).await?;
            let trail = sites.trail(&s, &extension, before, limit).await.map_err(|e| refused(e, json))?;
            if json {
                return print_json(&trail);
            }
            let rows: Vec<Vec<String>> = trail
                .entries
                .iter()
                .map(|e| {
                    vec![
                        e.id.to_string(),
                        e.at.clone(),
                        e.actor.clone(),
                        e.action.clone(),
                        e.details.to_string(),
                    ]
                })
                .collect();
            print!("{}", table(&["ID", "AT", "ACTOR", "ACTION", "DETAILS"], &rows));
            Ok(())
        }
        SitesCommand::Report { site: name, format, json } => {
            let json = json || format == ReportFormat::Json;
            let s = site(&sites, &name, Action::Read, json).await?;
            let report = sites.compliance(&s).await.map_err(|e| refused(e, json))?;
            if json {
                return print_json(&report);
            }
            if format == ReportFormat::Csv {
                print!("{}", report.to_csv());
                return Ok(());
            }
            for e in &report.extensions {
                println!(
                    "{} {} (config hash {}, version {})",
                    e.extension, e.version, e.config_hash, e.config_version
                );
                for s in &e.signoffs {
                    println!(
                        "  signed  {}/{} by {} ({}), {}, {}",
                        s.aspect, s.role, s.printed_name, s.username, s.meaning, s.signed_at
                    );
                }
                for m in &e.missing {
                    println!("  MISSING {}/{}", m.aspect, m.role);
                }
            }
            Ok(())
        }
        SitesCommand::Snapshot { site: name, label, list, json } => {
            if list {
                let s = site(&sites, &name, Action::Read, json).await?;
                let all = sites.snapshots(&s).await.map_err(|e| refused(e, json))?;
                if json {
                    return print_json(&json!({ "snapshots": all }));
                }
                let rows: Vec<Vec<String>> = all
                    .iter()
                    .map(|s| {
                        vec![
                            s.id.to_string(),
                            s.taken_at.clone(),
                            s.taken_by.clone(),
                            s.extensions.to_string(),
                            s.label.clone(),
                        ]
                    })
                    .collect();
                print!("{}", table(&["ID", "TAKEN AT", "BY", "EXTENSIONS", "LABEL"], &rows));
                return Ok(());
            }
            let s = site(&sites, &name, Action::Manage, json).await?;
            let snap = sites.snapshot(&cli, &s, &label).await.map_err(|e| refused(e, json))?;
            emit(json, &snap, || format!("snapshot {} of `{}` taken", snap.id, snap.site))
        }
        SitesCommand::Restore { site: name, snapshot, reason, json } => {
            let s = site(&sites, &name, Action::Manage, json).await?;
            let done = sites.restore(&cli, &s, &snapshot, &reason).await.map_err(|e| refused(e, json))?;
            if json {
                return print_json(&done);
            }
            for a in &done.activated {
                println!("{} `{}` (config hash {})", a.action, a.extension, a.config_hash);
            }
            for d in &done.deactivated {
                println!("deactivated `{d}`");
            }
            Ok(())
        }
    }
}

async fn set_suspended(sites: &Sites<'_>, name: &str, suspended: bool, json: bool) -> anyhow::Result<()> {
    let s = site(sites, name, Action::Administer, json).await?;
    let s = sites.set_suspended(&Actor::Cli, &s, suspended).await.map_err(|e| refused(e, json))?;
    emit(json, &s, || format!("site `{}` is {}", s.slug, s.status))
}

fn report_lines(report: &annex_core::sites::Report) -> Vec<String> {
    let mut lines = Vec::new();
    lines.extend(report.errors.iter().map(|e| format!("error: {}", e.message)));
    lines.extend(report.conflicts.iter().map(|c| format!("conflict ({}): {}", c.code, c.message)));
    lines.extend(report.missing_signoffs.iter().map(|m| format!("missing sign-off: {}", m.message)));
    lines.extend(report.warnings.iter().map(|w| format!("warning: {}", w.message)));
    lines
}
