//! `doudi linkage`: the identity model — train it, show it, explain a decision, and evaluate the
//! engine on any pair of CSV files.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Subcommand;
use doudi_linkage::{LinkDecision, Model, Outcome};

use super::open_store;
use crate::Config;

#[derive(Debug, Subcommand)]
pub enum LinkageCommand {
    /// Train the identity model by EM on a sample of the feeds (no labels needed) and make it the
    /// one the pipeline links with.
    #[command(after_help = "\
The model (m and u probabilities per field and comparison level, the prior, term-frequency settings) is estimated from the register and a sample of feed records (linkage.train_sample, evenly over the sources). `doudi run` does this itself on its first run; run it again after the register or the feeds change a lot. Decisions already made keep the model version they were made with.")]
    Train {
        /// Feeds folder to sample (overrides feeds.dir).
        #[arg(long, value_name = "DIR")]
        feeds: Option<PathBuf>,
        /// Records to sample (overrides linkage.train_sample).
        #[arg(long)]
        sample: Option<usize>,
    },
    /// Show the active model: each field's levels with m, u and weight.
    Show {
        #[arg(long)]
        json: bool,
    },
    /// Explain the identity decision of a stored event: each field's level and weight, the total,
    /// the thresholds, the decision.
    Explain {
        /// The event's number (`#` in `doudi review list`).
        seq: i64,
        #[arg(long)]
        json: bool,
    },
    /// Measure the engine on your own files: train, link (or deduplicate), score against truth.
    #[command(after_help = "\
Example:
  doudi linkage eval --spec people.toml --left a.csv --right b.csv --truth pairs.csv

The spec (TOML) names the id column and, per compared column, a comparator type:
  id = \"rec_id\"
  [[field]]
  column = \"given_name\"
  type = \"given_name\"   # identity_number | person_name | given_name | family_name | date | text | code | number
Without --right the left file is deduplicated. The truth file is CSV with a header row and two columns: the ids of a true pair. Errors name the file, line and column. See the README for the whole format.")]
    Eval {
        #[arg(long, value_name = "SPEC.toml")]
        spec: PathBuf,
        #[arg(long, value_name = "A.csv")]
        left: PathBuf,
        #[arg(long, value_name = "B.csv")]
        right: Option<PathBuf>,
        #[arg(long, value_name = "PAIRS.csv")]
        truth: PathBuf,
        #[arg(long)]
        json: bool,
    },
}

pub async fn run(config: &Config, cmd: LinkageCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        LinkageCommand::Train { feeds, sample } => {
            let feeds = feeds.unwrap_or_else(|| config.feeds.dir.clone());
            if !feeds.is_dir() {
                anyhow::bail!(
                    "feeds folder {} does not exist (pass --feeds DIR)",
                    feeds.display()
                );
            }
            let mut config = config.clone();
            if let Some(n) = sample {
                config.linkage.train_sample = n;
            }
            let store = open_store(&config).await?;
            let register = store
                .load_register()
                .await
                .context("cannot load the register")?;
            if register.is_empty() {
                anyhow::bail!("the register is empty: import it first (doudi import FILE)");
            }
            let engine = doudi_pipeline::Engine::new(
                config.rule_set()?,
                config.limits.parse_limits(),
                register,
            );
            let settings = super::engine_settings(&config)?;
            match doudi_app::engine::train_and_store(&store, &settings, &engine, &feeds).await? {
                Some(model) => println!(
                    "trained identity model {} ({}); it is now the active model",
                    model.version, model.method
                ),
                None => println!(
                    "no valid records in {}: nothing to train on",
                    feeds.display()
                ),
            }
            store.close().await;
            Ok(ExitCode::SUCCESS)
        }
        LinkageCommand::Show { json } => {
            let store = open_store(config).await?;
            let stored = store.active_linkage_model().await?;
            store.close().await;
            let (model, trained) = match stored {
                Some(m) => (
                    serde_json::from_str::<Model>(&m.model)
                        .context("the stored model is unreadable")?,
                    format!("trained on {} records at {}", m.trained_on, m.trained_at),
                ),
                None => (
                    Model::prior(),
                    "the prior (no model trained yet)".to_string(),
                ),
            };
            if json {
                println!("{}", serde_json::to_string_pretty(&model)?);
            } else {
                println!(
                    "identity model {} ({}), {trained}",
                    model.version, model.method
                );
                println!(
                    "prior share of records about a register member: {:.3}",
                    model.lambda
                );
                for f in &model.fields {
                    println!("{}:", f.field);
                    for l in &f.levels {
                        println!(
                            "  {:<18} m {:<10.6} u {:<12.3e} weight {:+7.2} bits",
                            l.level,
                            l.m,
                            l.u,
                            (l.m.max(1e-12) / l.u.max(1e-12)).log2()
                        );
                    }
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        LinkageCommand::Explain { seq, json } => {
            let store = open_store(config).await?;
            let stored = store.link_decision(seq).await?;
            store.close().await;
            let Some(row) = stored else {
                eprintln!("error: event #{seq} has no identity decision");
                return Ok(ExitCode::from(2));
            };
            if json {
                println!("{}", serde_json::to_string_pretty(&row)?);
            } else {
                print!(
                    "{}",
                    explain(
                        config,
                        row.outcome,
                        row.household_id,
                        row.member_id,
                        row.evidence
                    )
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        LinkageCommand::Eval {
            spec,
            left,
            right,
            truth,
            json,
        } => {
            let report = tokio::task::spawn_blocking(move || {
                doudi_linkage::eval::run_eval(&spec, &left, right.as_deref(), &truth)
            })
            .await
            .context("the evaluation thread stopped")?;
            match report {
                Ok(r) if json => println!("{}", serde_json::to_string_pretty(&r)?),
                Ok(r) => print!("{r}"),
                Err(e) => {
                    eprintln!("error: {e}");
                    return Ok(ExitCode::from(2));
                }
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// A stored decision, for a person to read.
pub fn explain(
    config: &Config,
    outcome: Outcome,
    household_id: Option<String>,
    member_id: Option<String>,
    evidence: doudi_model::Evidence,
) -> String {
    doudi_linkage::explain(
        &LinkDecision {
            outcome,
            household_id,
            member_id,
            evidence,
        },
        &config.linkage.thresholds,
    )
}
