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
        say!(
            "没有核查发现（请运行 `doudi crosscheck --snapshots DIR`）",
            "no findings (run `doudi crosscheck --snapshots DIR`)"
        );
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
            let r = &f.row;
            let (check, hh, due) = (&r.check_code, &r.household_id, &r.deadline);
            let officer = crate::lang::assignee(r.assigned_to.as_deref());
            let amount = r.amount_fen as f64 / 100.0;
            let closed = f
                .close_note
                .as_deref()
                .map(|n| tr!(" [已关闭：{n}]", " [closed: {n}]"))
                .unwrap_or_default();
            match crate::lang::lang() {
                crate::lang::Lang::Zh => println!(
                    "{}  {check:<24} 户 {hh:<12} 截止 {due}  责任人 {officer:<12} {amount:>10.2} 元  {summary}{closed}",
                    crate::lang::lang().finding_status(&f.status.to_string())
                ),
                crate::lang::Lang::En => println!(
                    "{:<7} {check:<24} household {hh:<12} due {due}  officer {officer:<12} {amount:>10.2} yuan  {summary}{closed}",
                    f.status
                ),
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
