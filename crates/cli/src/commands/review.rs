//! `doudi review`: the clerical queue of records the linker could not decide alone.

use std::process::ExitCode;

use clap::Subcommand;
use doudi_app::review::{decide, Decision};
use doudi_store::{ts, ReviewItem};

use super::{asker, engine_settings, open_store, refused};
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
                println!("the review queue is empty");
            } else {
                let total = store.pending_review_count().await?;
                println!("{total} records wait for review (oldest first):");
                for item in &items {
                    println!("{}", list_line(item));
                }
                println!("\nsee one: doudi review show SEQ; decide: doudi review decide SEQ --link MEMBER | --reject");
            }
            ExitCode::SUCCESS
        }
        ReviewCommand::Show { seq, json } => match store.review_item(seq).await? {
            None => {
                eprintln!(
                    "error: record #{seq} is not in the review queue (see `doudi review list`)"
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
                        (Some(hh), Some(level)) => println!(
                            "record #{seq} linked to household {hh}; the household is now at level {level} (score {}); warnings opened {}, raised {}",
                            done.score.unwrap_or(0),
                            done.warnings_opened,
                            done.warnings_raised
                        ),
                        (Some(hh), None) => println!("record #{seq} linked to household {hh}"),
                        _ => println!("record #{seq} rejected: it stays out of every household's timeline"),
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
    format!(
        "#{:<8} {:<16} {:<22} occurred {}  {} candidate(s)",
        item.seq,
        item.source,
        item.kind,
        ts(&item.occurred_at),
        item.evidence.candidates.len()
    )
}

fn print_item(config: &Config, item: &ReviewItem) {
    println!(
        "record #{}: {} {} ({})",
        item.seq, item.source, item.kind, item.event_id
    );
    println!(
        "occurred {}; sent to review {}",
        ts(&item.occurred_at),
        ts(&item.queued_at)
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
        None => println!(
            "undecided: doudi review decide {} --link MEMBER | --reject --by NAME",
            item.seq
        ),
        Some(d) => println!(
            "decided: {} {} by {} at {}{}",
            d.decision,
            d.member_id.as_deref().unwrap_or(""),
            d.decided_by,
            ts(&d.decided_at),
            if d.note.is_empty() {
                String::new()
            } else {
                format!(" — {}", d.note)
            }
        ),
    }
}
