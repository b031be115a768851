use std::process::ExitCode;

use clap::Subcommand;

use super::open_store;
use crate::Config;

#[derive(Debug, Subcommand)]
pub enum DeadlettersCommand {
    /// List refused records with their reason and where they came from (file and line).
    List {
        /// At most this many.
        #[arg(long, default_value_t = 50)]
        limit: i64,
        /// Print as JSON, raw preview included (it may hold personal data).
        #[arg(long)]
        json: bool,
    },
}

pub async fn run(config: &Config, cmd: DeadlettersCommand) -> anyhow::Result<ExitCode> {
    let store = open_store(config).await?;
    match cmd {
        DeadlettersCommand::List { limit, json } => {
            let list = store.dead_letters(limit).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&list)?);
            } else if list.is_empty() {
                println!("no dead letters");
            } else {
                for d in &list {
                    println!(
                        "#{:<6} {}:{}  [{}] {}  ({} bytes)",
                        d.id, d.stream, d.line, d.reason_code, d.reason, d.raw_len
                    );
                }
            }
        }
    }
    store.close().await;
    Ok(ExitCode::SUCCESS)
}
