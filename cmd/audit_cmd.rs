//! `annex audit verify`: checks the audit log's hash chain against the database, with or without
//! a running server; the same verdict `GET /api/v1/audit/verify` answers. A broken chain exits
//! non-zero.

use annex_core::admin::{Admin, ChainVerdict};
use annex_core::config::Config;
use clap::Subcommand;

#[derive(Debug, Subcommand)]
pub(crate) enum AuditCommand {
    /// Check every row's hash against its content and its predecessor; exits non-zero and names
    /// the first broken row when the chain is broken.
    Verify {
        /// Print JSON (`{"ok": true, "rows": N}` or `{"ok": false, "rows_checked": N, "first_broken": {…}}`).
        #[arg(long)]
        json: bool,
    },
}

pub(crate) async fn run(config: Config, command: AuditCommand) -> anyhow::Result<()> {
    let extensions = crate::compiled_in()?;
    let admin = Admin::connect(&config, &extensions).await?;
    let result = match command {
        AuditCommand::Verify { json } => verify(&admin, json).await,
    };
    admin.close().await;
    result
}

async fn verify(admin: &Admin, json: bool) -> anyhow::Result<()> {
    let verdict = admin.verify_audit().await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&verdict)?);
    }
    match verdict {
        ChainVerdict::Intact { rows } => {
            if !json {
                println!("audit log intact: {rows} rows, every hash and link checks out");
            }
            Ok(())
        }
        ChainVerdict::Broken { rows_checked, first_broken } => Err(anyhow::anyhow!(
            "audit log broken at entry {}: {} ({rows_checked} rows read; the rows before it check out)",
            first_broken.id,
            first_broken.reason
        )),
    }
}
