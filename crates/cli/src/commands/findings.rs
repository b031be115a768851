//! `doudi findings`: the open findings of the nightly cross-checks (eligibility reviews).

use std::process::ExitCode;

use clap::Subcommand;

use super::open_store;
use crate::Config;

#[derive(Debug, Subcommand)]
pub enum FindingsCommand {
    /// List open findings (eligibility reviews), by deadline, with the officer responsible.
    List {
        /// Only findings assigned to this officer.
        #[arg(long, value_name = "OFFICER")]
        officer: Option<String>,
        /// Closed findings too (with the note they were closed with).
        #[arg(long)]
        all: bool,
        /// At most this many.
        #[arg(long, default_value_t = 100)]
        limit: usize,
        #[arg(long)]
        json: bool,
    },
}

pub async fn run(config: &Config, cmd: FindingsCommand) -> anyhow::Result<ExitCode> {
    let store = open_store(config).await?;
    let FindingsCommand::List {
        officer,
        all,
        limit,
        json,
    } = cmd;
    let mut list = if all {
        store.all_findings().await?
    } else {
        store.open_findings().await?
    };
    store.close().await;
    if let Some(o) = &officer {
        list.retain(|f| f.row.assigned_to.as_deref() == Some(o.as_str()));
    }
    list.sort_by(|a, b| {
        (a.status.as_str(), &a.row.deadline, &a.row.key).cmp(&(
            b.status.as_str(),
            &b.row.deadline,
            &b.row.key,
        ))
    });
    list.truncate(limit);
    if json {
        let values: Vec<serde_json::Value> = list
            .iter()
            .map(|f| {
                let mut v = serde_json::to_value(f).unwrap_or_default();
                if let Some(obj) = v.as_object_mut() {
                    let finding = serde_json::from_str(&f.row.finding).unwrap_or_default();
                    obj.insert("finding".into(), finding);
                }
                v
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&values)?);
    } else if list.is_empty() {
        println!("no findings (run `doudi crosscheck --snapshots DIR`)");
    } else {
        for f in &list {
            let summary = serde_json::from_str::<serde_json::Value>(&f.row.finding)
                .ok()
                .and_then(|v| {
                    v.get("summary_zh")
                        .and_then(|s| s.as_str())
                        .map(str::to_string)
                })
                .unwrap_or_default();
            println!(
                "{:<7} {:<24} household {:<12} due {}  officer {:<12} {:>10.2} yuan  {}{}",
                f.status,
                f.row.check_code,
                f.row.household_id,
                f.row.deadline,
                f.row.assigned_to.as_deref().unwrap_or("(unassigned)"),
                f.row.amount_fen as f64 / 100.0,
                summary,
                f.close_note
                    .as_deref()
                    .map(|n| format!(" [closed: {n}]"))
                    .unwrap_or_default()
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}
