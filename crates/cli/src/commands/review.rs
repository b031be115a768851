//! `doudi review`: the clerical queue of records the linker could not decide alone.

use std::process::ExitCode;

use clap::Subcommand;
use doudi_app::review::{decide, Decision};
use doudi_store::ReviewItem;

use super::{asker, engine_settings, open_store, refused};
use crate::lang::{lang, Lang};
use crate::Config;

#[derive(Debug, Subcommand)]
pub enum ReviewCommand {
    /// List records waiting for a person's decision, oldest first.
    List {
        /// At most this many.
        #[arg(long, default_value_t = 50)]
        limit: i64,
        /// Print as JSON (the evidence included).
        #[arg(long)]
        json: bool,
    },
    /// Show one record's identity evidence: candidates, each field's comparison and weight.
    Show {
        /// The record's number in the queue (the `#` of `doudi review list`).
        seq: i64,
        #[arg(long)]
        json: bool,
    },
    /// Decide a record: link it to a register member, or reject it. A linked record then goes on
    /// through the pipeline (timeline, assessment, warning) at once.
    #[command(after_help = "\
Examples:
  doudi review decide 1042 --link M0001234-2 --by officer-li --note \"same person: checked hukou\"
  doudi review decide 1043 --reject --by officer-li --note \"not in our register\"

Who decided and when is recorded with the decision; a decision cannot be changed afterwards.")]
    Decide {
        /// The record's number in the queue.
        seq: i64,
        /// Link the record to this register member (member id).
        #[arg(
            long,
            value_name = "MEMBER",
            conflicts_with = "reject",
            required_unless_present = "reject"
        )]
        link: Option<String>,
        /// The record is about nobody in the register (or cannot be told).
        #[arg(long)]
        reject: bool,
        /// Who decides (recorded with the decision).
        #[arg(long, env = "DOUDI_USER", value_name = "NAME")]
        by: String,
        /// Why (recorded with the decision).
        #[arg(long, default_value = "")]
        note: String,
    },
}

pub async fn run(config: &Config, cmd: ReviewCommand) -> anyhow::Result<ExitCode> {
    let store = open_store(config).await?;
    let code = match cmd {
        ReviewCommand::List { limit, json } => {
            let items = store.pending_reviews(limit).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&items)?);
            } else if items.is_empty() {
                say!("待人工确认队列为空", "the review queue is empty");
            } else {
                let total = store.pending_review_count().await?;
                say!(
                    "{total} 条记录待人工确认（最早的在前）：",
                    "{total} records wait for review (oldest first):"
                );
                for item in &items {
                    println!("{}", list_line(item));
                }
                say!(
                    "\n查看一条：doudi review show SEQ；确认：doudi review decide SEQ --link MEMBER | --reject",
                    "\nsee one: doudi review show SEQ; decide: doudi review decide SEQ --link MEMBER | --reject"
                );
            }
            ExitCode::SUCCESS
        }
        ReviewCommand::Show { seq, json } => match store.review_item(seq).await? {
            None => {
                complain!(
                    "记录 #{seq} 不在待人工确认队列中（见 `doudi review list`）",
                    "record #{seq} is not in the review queue (see `doudi review list`)"
                );
                ExitCode::from(2)
            }
            Some(item) if json => {
                println!("{}", serde_json::to_string_pretty(&item)?);
                ExitCode::SUCCESS
            }
            Some(item) => {
                print_item(config, &item);
                ExitCode::SUCCESS
            }
        },
        ReviewCommand::Decide {
            seq,
            link,
            reject: _,
            by,
            note,
        } => {
            let decision = match link {
                Some(member_id) => Decision::Link { member_id },
                None => Decision::Reject,
            };
            let settings = engine_settings(config)?;
            match decide(&store, &settings, &asker(), seq, decision, &by, &note).await {
                Ok(done) => {
                    match (&done.household_id, &done.level) {
                        (Some(hh), Some(level)) => {
                            let score = done.score.unwrap_or(0);
                            let (opened, raised) = (done.warnings_opened, done.warnings_raised);
                            let named = crate::lang::level(*level);
                            say!(
                                "记录 #{seq} 已确认属于户 {hh}；该户现为{named}（分数 {score}）；新开启预警 {opened} 条，升级 {raised} 条",
                                "record #{seq} linked to household {hh}; the household is now at level {level} (score {score}); warnings opened {opened}, raised {raised}"
                            )
                        }
                        (Some(hh), None) => say!(
                            "记录 #{seq} 已确认属于户 {hh}",
                            "record #{seq} linked to household {hh}"
                        ),
                        _ => say!(
                            "记录 #{seq} 已驳回：它不计入任何一户的记录",
                            "record #{seq} rejected: it stays out of every household's timeline"
                        ),
                    }
                    ExitCode::SUCCESS
                }
                Err(e) => refused(e)?,
            }
        }
    };
    store.close().await;
    Ok(code)
}

fn list_line(item: &ReviewItem) -> String {
    let (seq, at, n) = (
        item.seq,
        crate::lang::when(&item.occurred_at),
        item.evidence.candidates.len(),
    );
    match lang() {
        Lang::Zh => format!(
            "#{seq:<8} {}  {}  发生于 {at}  候选 {n} 个",
            lang().source(&item.source),
            lang().kind(&item.kind)
        ),
        Lang::En => format!(
            "#{seq:<8} {:<16} {:<22} occurred {at}  {n} candidate(s)",
            item.source, item.kind
        ),
    }
}

fn print_item(config: &Config, item: &ReviewItem) {
    let (seq, event) = (item.seq, &item.event_id);
    match lang() {
        Lang::Zh => println!(
            "记录 #{seq}：{} {}（{event}）",
            lang().source(&item.source),
            lang().kind(&item.kind)
        ),
        Lang::En => println!("record #{seq}: {} {} ({event})", item.source, item.kind),
    }
    let (occurred, queued) = (
        crate::lang::when(&item.occurred_at),
        crate::lang::when(&item.queued_at),
    );
    say!(
        "发生于 {occurred}；{queued} 转入人工确认",
        "occurred {occurred}; sent to review {queued}"
    );
    print!(
        "{}",
        super::linkage::explain(
            config,
            doudi_model::LinkOutcome::Review,
            None,
            None,
            item.evidence.clone()
        )
    );
    match &item.decision {
        None => say!(
            "尚未确认：doudi review decide {seq} --link MEMBER | --reject --by NAME",
            "undecided: doudi review decide {seq} --link MEMBER | --reject --by NAME"
        ),
        Some(d) => {
            let member = d.member_id.as_deref().unwrap_or("");
            let (by, at) = (&d.decided_by, crate::lang::when(&d.decided_at));
            let note = if d.note.is_empty() {
                String::new()
            } else {
                format!(" — {}", d.note)
            };
            let decision = match (lang(), d.decision.as_str()) {
                (Lang::En, other) => other,
                (Lang::Zh, "link") => "确认为",
                (Lang::Zh, "reject") => "驳回",
                (Lang::Zh, other) => other,
            };
            say!(
                "已处理：{decision} {member}（{by}，{at}）{note}",
                "decided: {decision} {member} by {by} at {at}{note}"
            )
        }
    }
}
