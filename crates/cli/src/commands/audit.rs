//! `doudi audit`: the hash-chained audit trail — verify it, read it.

use std::process::ExitCode;

use clap::Subcommand;

use super::open_store;
use crate::Config;

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Recompute the hash chain from the first record; name the first record that was altered,
    /// deleted or reordered. Exit 0 when intact, 3 when broken.
    Verify {
        #[arg(long)]
        json: bool,
    },
    /// Print audit records, oldest first.
    List {
        /// From this record number.
        #[arg(long, default_value_t = 1)]
        from: i64,
        #[arg(long, default_value_t = 100)]
        limit: i64,
        #[arg(long)]
        json: bool,
    },
}

pub async fn run(config: &Config, cmd: AuditCommand) -> anyhow::Result<ExitCode> {
    let store = open_store(config).await?;
    let code = match cmd {
        AuditCommand::Verify { json } => {
            let check = store.verify_audit().await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&check)?);
            }
            match &check.first_broken {
                None => {
                    if !json {
                        println!(
                            "audit trail intact: {} records, hash chain verified",
                            check.records
                        );
                    }
                    ExitCode::SUCCESS
                }
                Some((seq, why)) => {
                    if !json {
                        println!("audit trail BROKEN at record #{seq}: {why}");
                    }
                    tracing::error!(record = seq, "the audit trail's hash chain is broken");
                    ExitCode::from(3)
                }
            }
        }
        AuditCommand::List { from, limit, json } => {
            let records = store.audit_records(from, limit).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&records)?);
            } else {
                for r in &records {
                    println!(
                        "#{:<6} {} {:<10} {:<28} {:<24} {}",
                        r.seq, r.at, r.actor, r.action, r.subject, r.detail
                    );
                }
            }
            ExitCode::SUCCESS
        }
    };
    store.close().await;
    Ok(code)
}
