use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use doudi_pipeline::{run_files, RunOptions, RunReport};
use doudi_store::Store;

use super::open_store;
use crate::output::RunProgress;
use crate::Config;

#[derive(Debug, Args)]
#[command(after_help = "\
The feeds folder holds one folder per source (health_insurance/, employment/, housing/, civil_registry/) of *.jsonl files, one event per line, read in file-name order. Each batch's effects and the position it was read to commit together: stop it (Ctrl-C) or kill it at any moment and run it again, and it continues where it stopped without losing or repeating anything. Invalid lines go to dead letters (see `doudi deadletters list`) and never stop the run.")]
pub struct RunArgs {
    /// Feeds folder (overrides feeds.dir).
    #[arg(long, value_name = "DIR")]
    pub feeds: Option<PathBuf>,
    /// Read what is there, then stop (otherwise keep watching for new lines and files).
    #[arg(long)]
    pub once: bool,
    /// Print the run's totals as JSON on stdout.
    #[arg(long)]
    pub json: bool,
}

pub async fn run(config: &Config, args: RunArgs) -> anyhow::Result<ExitCode> {
    let feeds = args
        .feeds
        .clone()
        .unwrap_or_else(|| config.feeds.dir.clone());
    if !feeds.is_dir() {
        anyhow::bail!(
            "feeds folder {} does not exist (pass --feeds DIR, or try `doudi demo`)",
            feeds.display()
        );
    }
    let store = open_store(config).await?;
    let report = run_pipeline(config, &store, feeds, args.once).await?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print_report(&report);
    }
    store.close().await;
    Ok(ExitCode::SUCCESS)
}

/// Load the register and rules, then run over `feeds` (until done with `once`, or until Ctrl-C).
pub async fn run_pipeline(
    config: &Config,
    store: &Store,
    feeds: PathBuf,
    once: bool,
) -> anyhow::Result<RunReport> {
    let engine = Arc::new(super::load_engine(config, store, Some(&feeds)).await?);
    tracing::info!(feeds = %feeds.display(), "pipeline starting");
    let opts = RunOptions {
        feeds_dir: feeds,
        batch_size: config.limits.batch_size,
        channel_batches: config.limits.channel_batches,
        once,
        poll_interval: Duration::from_millis(config.feeds.poll_interval_ms),
    };
    let stop = Arc::new(AtomicBool::new(false));
    {
        let stop = stop.clone();
        tokio::spawn(async move {
            if tokio::signal::ctrl_c().await.is_ok() {
                tracing::info!("stopping after the current batch (Ctrl-C again to abort)");
                stop.store(true, Ordering::Relaxed);
                if tokio::signal::ctrl_c().await.is_ok() {
                    std::process::exit(130);
                }
            }
        });
    }
    let progress = RunProgress::new();
    let report = run_files(store, engine, &opts, &progress, stop).await;
    progress.finish();
    let report = report.context("the pipeline stopped")?;
    tracing::info!(
        received = report.received,
        accepted = report.accepted,
        duplicates = report.duplicates,
        dead_letters = report.dead_letters,
        warnings_opened = report.warnings_opened,
        elapsed_ms = report.elapsed_ms,
        "pipeline finished"
    );
    Ok(report)
}

pub fn print_report(r: &RunReport) {
    println!(
        "read {} records in {:.1} s ({:.0}/s): {} new, {} duplicates, {} dead letters",
        r.received,
        r.elapsed_ms as f64 / 1000.0,
        r.rate(),
        r.accepted,
        r.duplicates,
        r.dead_letters
    );
    println!(
        "identity: {} linked, {} for review, {} unmatched; warnings: {} opened, {} raised",
        r.linked, r.review, r.unmatched, r.warnings_opened, r.warnings_raised
    );
    if !r.dead_by_reason.is_empty() {
        let reasons: Vec<String> = r
            .dead_by_reason
            .iter()
            .map(|(k, v)| format!("{k} {v}"))
            .collect();
        println!(
            "dead letters by reason: {} (see `doudi deadletters list`)",
            reasons.join(", ")
        );
    }
}
