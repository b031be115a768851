//! `doudi warnings`: the open warnings, most urgent first.

use std::process::ExitCode;

use clap::Subcommand;
use doudi_model::mask_id_str;

use super::open_store;
use crate::Config;

#[derive(Debug, Subcommand)]
pub enum WarningsCommand {
    /// List open warnings, most urgent first (level, then score), with the officer responsible.
    List {
        /// At most this many.
        #[arg(long, default_value_t = 50)]
        limit: i64,
        /// Only warnings assigned to this officer.
        #[arg(long, value_name = "OFFICER")]
        officer: Option<String>,
        /// Print as JSON (household records included, ID numbers masked).
        #[arg(long)]
        json: bool,
    },
}

pub async fn run(config: &Config, cmd: WarningsCommand) -> anyhow::Result<ExitCode> {
    let store = open_store(config).await?;
    match cmd {
        WarningsCommand::List {
            limit,
            officer,
            json,
        } => {
            let mut list = store.open_warnings(limit, officer.as_deref()).await?;
            for w in &mut list {
                mask_household(&mut w.household);
            }
            if json {
                println!("{}", serde_json::to_string_pretty(&list)?);
            } else if list.is_empty() {
                println!("no open warnings");
            } else {
                for w in &list {
                    println!(
                        "#{:<6} {:<6} score {:<4} household {:<20} region {} deadline {} officer {}",
                        w.warning_id,
                        w.level,
                        w.score,
                        w.household_id,
                        w.region_code,
                        w.deadline,
                        w.assigned_to.as_deref().unwrap_or("(unassigned)")
                    );
                }
            }
        }
    }
    store.close().await;
    Ok(ExitCode::SUCCESS)
}

/// Mask the ID numbers and names in a household record shown to a person.
fn mask_household(h: &mut serde_json::Value) {
    if let Some(members) = h.get_mut("members").and_then(|m| m.as_array_mut()) {
        for m in members {
            if let Some(id) = m.get("id_number").and_then(|v| v.as_str()) {
                m["id_number"] = serde_json::Value::String(mask_id_str(id));
            }
            if let Some(name) = m.get("name").and_then(|v| v.as_str()) {
                m["name"] = serde_json::Value::String(doudi_model::mask_name(name));
            }
        }
    }
}
