//! `doudi trace HOUSEHOLD`: everything about one household, in order — source records with where
//! they came from, each identity decision with its evidence, each assessment with its rule-set
//! version and contributions, each warning change and every human action, and cross-check findings.

use std::process::ExitCode;

use clap::Args;
use doudi_app::household::trace;
use doudi_app::mask::View;
use doudi_app::AppError;
use doudi_store::{ts, TraceEntry};
use serde_json::Value;

use super::{asker, open_store, refused};
use crate::Config;

#[derive(Debug, Args)]
#[command(after_help = "\
Answers \"why was this household flagged on that day?\" from the store alone. Personal data (ID numbers, names) is masked in the output. Events are dated by when they happened; warning changes by when the system or a person made them.

Example: doudi trace H00001804 --json > H00001804-trace.json")]
pub struct TraceArgs {
    /// The household id.
    pub household: String,
    /// Print as JSON (one array of entries, oldest first).
    #[arg(long)]
    pub json: bool,
}

pub async fn run(config: &Config, args: TraceArgs) -> anyhow::Result<ExitCode> {
    let store = open_store(config).await?;
    let read = trace(&store, &asker(), &args.household, View::Trace, "trace").await;
    store.close().await;
    let entries = match read {
        Ok(r) => r.value,
        Err(AppError::NotFound(_)) => {
            eprintln!(
                "error: the store knows nothing of household {} (check the id: `doudi warnings list`)",
                args.household
            );
            return Ok(ExitCode::from(2));
        }
        Err(e) => return refused(e),
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&entries)?);
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "trace of household {} ({} entries)",
        args.household,
        entries.len()
    );
    for e in &entries {
        print_entry(e);
    }
    Ok(ExitCode::SUCCESS)
}

fn print_entry(e: &TraceEntry) {
    match e {
        TraceEntry::Register {
            at, change, file, ..
        } => {
            println!("{}  register   {change} (import of {file})", ts(at));
        }
        TraceEntry::Event {
            seq,
            at,
            source,
            event_id,
            kind,
            stream,
            position,
            profile,
            outcome,
            member_id,
            evidence,
            review,
            earlier_decisions,
            ..
        } => {
            let total = evidence.total;
            let model = &evidence.model_version;
            println!(
                "{}  event #{seq} {source} {kind} {event_id} ({stream}:{position}{}) → {outcome} {}{}",
                ts(at),
                profile
                    .as_deref()
                    .map(|p| format!(", profile {p}"))
                    .unwrap_or_default(),
                member_id.as_deref().unwrap_or(""),
                total
                    .map(|t| format!(" [match weight {t:.1}, model {model}]"))
                    .unwrap_or_default()
            );
            if let Some(r) = review {
                println!(
                    "{:27}reviewed: {} by {} at {} {}",
                    "",
                    r.get("decision").and_then(Value::as_str).unwrap_or(""),
                    r.get("decided_by").and_then(Value::as_str).unwrap_or(""),
                    r.get("decided_at").and_then(Value::as_str).unwrap_or(""),
                    r.get("note").and_then(Value::as_str).unwrap_or("")
                );
            }
            for d in earlier_decisions {
                println!(
                    "{:27}first {} at {} (register version {}); decided again at {} after register version {}",
                    "",
                    d.outcome,
                    d.decided_at,
                    d.register_version,
                    d.superseded_at,
                    d.superseded_by_register_version
                );
            }
        }
        TraceEntry::Assessment {
            seq,
            at,
            rule_set_version,
            score,
            level,
            assessment,
        } => {
            println!(
                "{}  assessed after #{seq}: score {score}, {level} (rules {rule_set_version})",
                ts(at)
            );
            if let Some(a) = assessment {
                for c in &a.contributions {
                    println!("{:27}{:+5} {}", "", c.points, c.reason_zh);
                }
            }
        }
        TraceEntry::Warning {
            warning_id,
            at,
            action,
            actor,
            level,
            note,
            refused,
            ..
        } => {
            println!(
                "{}  warning #{warning_id} {action} by {actor} ({level}){}{}",
                ts(at),
                note.as_deref()
                    .filter(|n| !n.is_empty())
                    .map(|n| format!(" — {n}"))
                    .unwrap_or_default(),
                refused
                    .as_deref()
                    .map(|r| format!(" [REFUSED: {r}]"))
                    .unwrap_or_default()
            );
        }
        TraceEntry::Finding {
            at,
            status,
            check,
            finding,
            close_note,
            ..
        } => {
            println!(
                "{at}  finding {check} ({status}): {}{}",
                finding
                    .get("summary_zh")
                    .and_then(Value::as_str)
                    .unwrap_or(""),
                close_note
                    .as_deref()
                    .map(|n| format!(" [closed: {n}]"))
                    .unwrap_or_default()
            );
        }
    }
}
