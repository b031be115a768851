//! `doudi trace HOUSEHOLD`: everything about one household, in order — source records with where
//! they came from, each identity decision with its evidence, each assessment with its rule-set
//! version and contributions, each warning change and every human action, and cross-check findings.

use std::process::ExitCode;

use clap::Args;
use doudi_app::household::trace;
use doudi_app::mask::View;
use doudi_app::AppError;
use doudi_store::TraceEntry;
use serde_json::Value;

use super::{asker, open_store, refused};
use crate::lang::{lang, Lang};
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
            let hh = &args.household;
            return super::refusal(tr!(
                "数据库中没有户 {hh} 的任何记录（请核对户号：`doudi warnings list`）",
                "the store knows nothing of household {hh} (check the id: `doudi warnings list`)"
            ));
        }
        Err(e) => return refused(e),
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&entries)?);
        return Ok(ExitCode::SUCCESS);
    }
    let (hh, n) = (&args.household, entries.len());
    say!(
        "户 {hh} 的全部记录（{n} 条）",
        "trace of household {hh} ({n} entries)"
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
            let at = crate::lang::when(at);
            match lang() {
                Lang::Zh => println!(
                    "{at}  名册  {}（导入 {file}）",
                    lang().register_change(change)
                ),
                Lang::En => println!("{at}  register   {change} (import of {file})"),
            }
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
            let at = crate::lang::when(at);
            let profile = profile
                .as_deref()
                .map(|p| tr!("，数据格式 {p}", ", profile {p}"))
                .unwrap_or_default();
            let member = member_id.as_deref().unwrap_or("");
            let weight = total
                .map(|t| {
                    tr!(
                        " [匹配权重 {t:.1}，模型 {model}]",
                        " [match weight {t:.1}, model {model}]"
                    )
                })
                .unwrap_or_default();
            match lang() {
                Lang::Zh => println!(
                    "{at}  记录 #{seq} {} {} {event_id}（{stream}:{position}{profile}）→ {} {member}{weight}",
                    lang().source(source),
                    lang().kind(kind),
                    lang().outcome(outcome.code())
                ),
                Lang::En => println!(
                    "{at}  event #{seq} {source} {kind} {event_id} ({stream}:{position}{profile}) → {outcome} {member}{weight}"
                ),
            }
            if let Some(r) = review {
                let field = |k: &str| r.get(k).and_then(Value::as_str).unwrap_or("");
                let (decision, by) = (field("decision"), field("decided_by"));
                let (at, note) = (field("decided_at"), field("note"));
                say!(
                    "{:27}人工确认：{decision}（{by}，{at}）{note}",
                    "{:27}reviewed: {decision} by {by} at {at} {note}",
                    ""
                );
            }
            for d in earlier_decisions {
                let (at, version) = (&d.decided_at, &d.register_version);
                let (again, after) = (&d.superseded_at, &d.superseded_by_register_version);
                match lang() {
                    Lang::Zh => println!(
                        "{:27}最初于 {at} {}（名册版本 {version}）；名册版本 {after} 后于 {again} 重新判定",
                        "",
                        lang().outcome(d.outcome.code())
                    ),
                    Lang::En => println!(
                        "{:27}first {} at {at} (register version {version}); decided again at {again} after register version {after}",
                        "", d.outcome
                    ),
                }
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
            let (at, named) = (crate::lang::when(at), crate::lang::level(*level));
            say!(
                "{at}  记录 #{seq} 之后评估：分数 {score}，{named}（规则集 {rule_set_version}）",
                "{at}  assessed after #{seq}: score {score}, {level} (rules {rule_set_version})"
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
            let at = crate::lang::when(at);
            let tail = crate::output::note_and_refusal(note.as_deref(), refused.as_deref());
            match lang() {
                Lang::Zh => println!(
                    "{at}  预警 #{warning_id} {}（{}，{}）{tail}",
                    lang().action(action),
                    lang().actor(actor),
                    crate::lang::level(*level)
                ),
                Lang::En => {
                    println!("{at}  warning #{warning_id} {action} by {actor} ({level}){tail}")
                }
            }
        }
        TraceEntry::Finding {
            at,
            status,
            check,
            finding,
            close_note,
            ..
        } => {
            let summary = finding
                .get("summary_zh")
                .and_then(Value::as_str)
                .unwrap_or("");
            let closed = close_note
                .as_deref()
                .map(|n| tr!(" [已关闭：{n}]", " [closed: {n}]"))
                .unwrap_or_default();
            let status_words = lang().finding_status(status);
            say!(
                "{at}  核查发现 {check}（{status_words}）：{summary}{closed}",
                "{at}  finding {check} ({status}): {summary}{closed}"
            );
        }
    }
}
