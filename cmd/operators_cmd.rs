//! `annex operators add|list|disable|enable|passwd|token`: the people who operate annex, their
//! roles, site scope, password and personal API token. Works against the database, with or
//! without a running server. Passwords are read from standard input, never from a flag.

use std::io::BufRead;

use annex_core::access::{NewOperator, Operator, OperatorChange};
use annex_core::admin::Admin;
use annex_core::config::Config;
use anyhow::Context as _;
use clap::Subcommand;

#[derive(Debug, Subcommand)]
pub(crate) enum OperatorsCommand {
    /// Add an operator; prints their personal API token once (only its hash is stored).
    Add {
        /// Login name: lowercase letters, digits, `.`, `_`, `-`.
        username: String,
        /// The name printed on their signatures.
        #[arg(long = "name", value_name = "PRINTED NAME")]
        printed_name: String,
        /// A role (repeat for several): `admin`, `site-admin`, `viewer`, or a sign-off role such
        /// as `quality-focal`.
        #[arg(long = "role", value_name = "ROLE")]
        roles: Vec<String>,
        /// A site they may act on (repeat for several); none means every site.
        #[arg(long = "site", value_name = "SLUG")]
        sites: Vec<String>,
        /// Read the password (12 characters or more) from the first line of standard input.
        #[arg(long, required = true)]
        password_stdin: bool,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// List operators.
    List {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Disable an operator: their token and password stop working at once.
    Disable {
        /// The operator.
        username: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Enable a disabled operator again.
    Enable {
        /// The operator.
        username: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Set an operator's password, read from the first line of standard input.
    Passwd {
        /// The operator.
        username: String,
        /// Read the password from standard input.
        #[arg(long, required = true)]
        password_stdin: bool,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Give an operator a fresh personal token (printed once); the old one stops working.
    Token {
        /// The operator.
        username: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

pub(crate) async fn run(config: Config, command: OperatorsCommand) -> anyhow::Result<()> {
    let extensions = crate::compiled_in()?;
    let admin = Admin::connect(&config, &extensions).await?;
    let result = dispatch(&admin, command).await;
    admin.close().await;
    result
}

fn read_password() -> anyhow::Result<String> {
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line).context("reading the password from standard input")?;
    let password = line.trim_end_matches(['\n', '\r']).to_owned();
    anyhow::ensure!(
        !password.is_empty(),
        "no password on standard input (pipe it in: `… --password-stdin <<< 'secret'`)"
    );
    Ok(password)
}

async fn dispatch(admin: &Admin, command: OperatorsCommand) -> anyhow::Result<()> {
    match command {
        OperatorsCommand::Add { username, printed_name, roles, sites, password_stdin: _, json } => {
            let new = NewOperator {
                username,
                printed_name,
                roles,
                sites: (!sites.is_empty()).then_some(sites),
                password: read_password()?,
            };
            let (operator, token) = admin.add_operator(&new).await?;
            if json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(
                        &serde_json::json!({ "operator": operator, "token": token })
                    )?
                );
            } else {
                println!("added operator `{}` ({})", operator.username, describe(&operator));
                println!("personal API token (shown once, keep it secret): {token}");
            }
        }
        OperatorsCommand::List { json } => {
            let all = admin.operators().await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&all)?);
            } else if all.is_empty() {
                println!(
                    "no operators; add one with `annex operators add <username> --name … --role … --password-stdin`"
                );
            } else {
                println!("{:<20} {:<28} {:<10} ROLES / SITES", "USERNAME", "PRINTED NAME", "STATE");
                for o in &all {
                    let state = if o.disabled { "disabled" } else { "enabled" };
                    println!("{:<20} {:<28} {:<10} {}", o.username, o.printed_name, state, describe(o));
                }
            }
        }
        OperatorsCommand::Disable { username, json } => {
            change(admin, &username, OperatorChange::Disabled(true), json, "disabled").await?;
        }
        OperatorsCommand::Enable { username, json } => {
            change(admin, &username, OperatorChange::Disabled(false), json, "enabled").await?;
        }
        OperatorsCommand::Passwd { username, password_stdin: _, json } => {
            let password = read_password()?;
            change(admin, &username, OperatorChange::Password(password), json, "password changed").await?;
        }
        OperatorsCommand::Token { username, json } => {
            change(admin, &username, OperatorChange::RotateToken, json, "token rotated").await?;
        }
    }
    Ok(())
}

async fn change(
    admin: &Admin,
    username: &str,
    change: OperatorChange,
    json: bool,
    done: &str,
) -> anyhow::Result<()> {
    let (operator, token) = admin.change_operator(username, &change).await?;
    if json {
        let mut doc = serde_json::json!({ "operator": operator });
        if let Some(token) = &token {
            doc["token"] = serde_json::json!(token);
        }
        println!("{}", serde_json::to_string_pretty(&doc)?);
    } else {
        println!("operator `{}`: {done}", operator.username);
        if let Some(token) = token {
            println!("personal API token (shown once, keep it secret): {token}");
        }
    }
    Ok(())
}

fn describe(o: &Operator) -> String {
    let roles = if o.roles.is_empty() { "no roles".to_owned() } else { o.roles.join(", ") };
    let sites = match &o.site_slugs {
        None => "every site".to_owned(),
        Some(s) if s.is_empty() => "no site".to_owned(),
        Some(s) => format!("sites {}", s.join(", ")),
    };
    format!("{roles}; {sites}")
}
