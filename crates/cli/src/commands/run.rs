use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use doudi_pipeline::driver::CancellationToken;
use doudi_pipeline::{run_files, RunOptions, RunReport};
use doudi_store::Store;

use super::open_store;
use crate::output::RunProgress;
use crate::Config;

#[derive(Debug, Args)]
#[command(after_help = "\
The feeds folder holds one folder per source (health_insurance/, employment/, housing/, civil_registry/) of *.jsonl files, one event per line, read in file-name order; and any folder of a department's own exports (CSV, Excel, JSON lines, fixed width) with its feed profile beside them as profile.toml (`doudi feeds show NAME` prints a shipped one): each row is read through the profile, a refused row becomes a dead letter with its file, row, column and why, and every event keeps the profile's name@version. Each batch's effects and the position it was read to commit together: stop it (Ctrl-C) or kill it at any moment and run it again, and it continues where it stopped without losing or repeating anything. Invalid lines go to dead letters (see `doudi deadletters list`) and never stop the run.

With --brokers (or kafka.brokers) the worker joins the consumer group kafka.group_id over the four feed topics instead, and runs until SIGTERM or Ctrl-C: each batch commits with the next offset of its partitions, and a partition assigned to it resumes at the stored offset. Run several workers (one database) to share the partitions. Invalid records also go to the dead-letter topic. A partition whose records are nearly all invalid (kafka.max_invalid_ratio) stops the worker with an error.

Examples:
  doudi run --feeds data/feeds --once
  doudi run --feeds data/native --once        # the exports `doudi gen --native` wrote
  doudi run --brokers 127.0.0.1:9092 --metrics-addr 127.0.0.1:9464
  DOUDI_STORE__URL=postgres://doudi@db/doudi doudi run --brokers kafka-1:9092,kafka-2:9092")]
pub struct RunArgs {
    /// Feeds folder (overrides feeds.dir).
    #[arg(long, value_name = "DIR", conflicts_with = "brokers")]
    pub feeds: Option<PathBuf>,
    /// Consume the feed topics of these Kafka brokers (overrides kafka.brokers).
    #[arg(long, value_name = "HOST:PORT[,…]")]
    pub brokers: Option<String>,
    /// Serve Prometheus metrics on http://ADDR/metrics while running.
    #[arg(long, value_name = "ADDR", env = "DOUDI_METRICS_ADDR")]
    pub metrics_addr: Option<std::net::SocketAddr>,
    /// Read what is there, then stop (otherwise keep watching for new lines and files).
    #[arg(long)]
    pub once: bool,
    /// Print the run's totals as JSON on stdout.
    #[arg(long)]
    pub json: bool,
}

pub async fn run(config: &Config, args: RunArgs) -> anyhow::Result<ExitCode> {
    // First of all: from here on SIGTERM or Ctrl-C stops the run after draining, exit 0. A
    // worker stopped in its first second (a rolling update, a scale-down) is still opening the
    // database or loading the register: without this it would die of the signal (exit 143).
    let stop = stop_on_signal();
    let metrics = args.metrics_addr.map(|addr| {
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(doudi_telemetry::serve(addr, async {
            let _ = stopped.await;
        }));
        (stop, server)
    });
    let result = run_inner(config, args, stop).await;
    if let Some((stop, server)) = metrics {
        let _ = stop.send(());
        if let Ok(Err(e)) = server.await {
            tracing::warn!(error = %e, "the metrics listener failed");
        }
    }
    result
}

async fn run_inner(
    config: &Config,
    args: RunArgs,
    stop: CancellationToken,
) -> anyhow::Result<ExitCode> {
    let brokers = args
        .brokers
        .clone()
        .or_else(|| (!config.kafka.brokers.is_empty()).then(|| config.kafka.brokers.clone()))
        .filter(|_| args.feeds.is_none());
    if let Some(brokers) = brokers {
        if args.once {
            anyhow::bail!(tr!(
                "--once 只用于读取数据文件；Kafka 消费进程一直运行，直到收到 SIGTERM 或 Ctrl-C",
                "--once reads feed files; a Kafka worker runs until SIGTERM or Ctrl-C"
            ));
        }
        let store = open_store(config).await?;
        let report = run_kafka(config, &store, &brokers, stop).await;
        store.close().await;
        let report = report?;
        if args.json {
            println!("{}", serde_json::to_string_pretty(&report)?);
        } else {
            print_report(&report);
        }
        return Ok(ExitCode::SUCCESS);
    }
    let feeds = args
        .feeds
        .clone()
        .unwrap_or_else(|| config.feeds.dir.clone());
    if !feeds.is_dir() {
        let dir = feeds.display();
        anyhow::bail!(tr!(
            "数据目录 {dir} 不存在（请用 --feeds DIR 指定，或先试试 `doudi demo`）",
            "feeds folder {dir} does not exist (pass --feeds DIR, or try `doudi demo`)"
        ));
    }
    let store = open_store(config).await?;
    let report = run_pipeline_until(config, &store, feeds, args.once, stop).await?;
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
    run_pipeline_until(config, store, feeds, once, stop_on_signal()).await
}

/// [`run_pipeline`] until `stop` is cancelled (already cancelled: nothing is read).
async fn run_pipeline_until(
    config: &Config,
    store: &Store,
    feeds: PathBuf,
    once: bool,
    stop: CancellationToken,
) -> anyhow::Result<RunReport> {
    let Some(engine) = load_unless_stopped(config, store, Some(&feeds), &stop).await? else {
        return Ok(RunReport::default());
    };
    tracing::info!(feeds = %feeds.display(), "pipeline starting");
    let opts = RunOptions {
        feeds_dir: feeds,
        batch_size: config.limits.batch_size,
        channel_batches: config.limits.channel_batches,
        once,
        poll_interval: Duration::from_millis(config.feeds.poll_interval_ms),
        invalid: doudi_pipeline::InvalidGuard {
            max_ratio: config.feeds.max_invalid_ratio,
            window: config.feeds.invalid_window,
        },
    };
    let follower = follow_register(config, store, &engine, &stop);
    let progress = RunProgress::new();
    let report = run_files(store, engine, &opts, &progress, stop).await;
    progress.finish();
    follower.stop().await;
    let report = report.context(crate::lang::t("数据处理中止", "the pipeline stopped"))?;
    doudi_telemetry::info_counts!(report, "pipeline finished";
        received, accepted, duplicates, dead_letters, warnings_opened, elapsed_ms);
    Ok(report)
}

/// The engine (register, rules, linkage model), unless `stop` comes first: loading a large
/// register takes a while, and a stop meanwhile ends the run before it reads anything.
async fn load_unless_stopped(
    config: &Config,
    store: &Store,
    feeds: Option<&std::path::Path>,
    stop: &CancellationToken,
) -> anyhow::Result<Option<Arc<doudi_pipeline::Engine>>> {
    if stop.is_cancelled() {
        tracing::info!("stopped before the run began: nothing was read");
        return Ok(None);
    }
    tokio::select! {
        engine = super::load_engine(config, store, feeds) => Ok(Some(Arc::new(engine?))),
        _ = stop.cancelled() => {
            tracing::info!("stopped while loading: nothing was read");
            Ok(None)
        }
    }
}

/// SIGTERM and SIGINT (Ctrl-C), listened to from the moment this is made: the signals' default
/// action (ending the process) is replaced at once, not when a task first polls.
struct StopSignals {
    #[cfg(unix)]
    term: Option<tokio::signal::unix::Signal>,
    #[cfg(unix)]
    int: Option<tokio::signal::unix::Signal>,
}

impl StopSignals {
    fn install() -> StopSignals {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{signal, SignalKind};
            StopSignals {
                term: signal(SignalKind::terminate()).ok(),
                int: signal(SignalKind::interrupt()).ok(),
            }
        }
        #[cfg(not(unix))]
        StopSignals {}
    }

    /// The next SIGTERM or SIGINT.
    async fn recv(&mut self) {
        #[cfg(unix)]
        {
            async fn next(s: &mut Option<tokio::signal::unix::Signal>) {
                match s {
                    Some(s) => {
                        s.recv().await;
                    }
                    None => std::future::pending().await,
                }
            }
            if self.term.is_none() && self.int.is_none() {
                let _ = tokio::signal::ctrl_c().await;
                return;
            }
            tokio::select! {
                _ = next(&mut self.term) => {}
                _ = next(&mut self.int) => {}
            }
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

/// A token cancelled on the first SIGTERM or Ctrl-C (the work then stops after draining); a
/// second one ends the process at once. The handlers are in place when this returns.
pub fn stop_on_signal() -> CancellationToken {
    let stop = CancellationToken::new();
    let flag = stop.clone();
    let mut signals = StopSignals::install();
    tokio::spawn(async move {
        signals.recv().await;
        tracing::info!("stopping after the current batch (again to abort)");
        flag.cancel();
        signals.recv().await;
        std::process::exit(130);
    });
    stop
}

/// Run a Kafka worker until `stop` (SIGTERM or Ctrl-C).
async fn run_kafka(
    config: &Config,
    store: &Store,
    brokers: &str,
    stop: CancellationToken,
) -> anyhow::Result<RunReport> {
    let kafka = config.kafka_at(brokers);
    let Some(engine) = load_unless_stopped(config, store, None, &stop).await? else {
        return Ok(RunReport::default());
    };
    let opts = doudi_kafka::SourceOptions {
        batch_size: config.limits.batch_size,
        channel_batches: config.limits.channel_batches,
    };
    let follower = follow_register(config, store, &engine, &stop);
    let report = doudi_kafka::run_kafka(store, engine, &kafka, &opts, Arc::new(()), stop).await;
    follower.stop().await;
    let report = report.context(crate::lang::t(
        "Kafka 消费进程中止",
        "the Kafka worker stopped",
    ))?;
    doudi_telemetry::info_counts!(report, "Kafka worker finished";
        received, accepted, dead_letters, elapsed_ms);
    Ok(report)
}

/// The task that keeps a worker's register up to date (`register.refresh_secs`) while it runs.
struct Follower {
    stop: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

impl Follower {
    /// Stop following and wait for the task (a refresh under way finishes first).
    async fn stop(self) {
        self.stop.cancel();
        let _ = self.task.await;
    }
}

/// Follow register imports beside the run (see `doudi_pipeline::follow_register`); stops with
/// `run_stop` or [`Follower::stop`].
fn follow_register(
    config: &Config,
    store: &Store,
    engine: &Arc<doudi_pipeline::Engine>,
    run_stop: &CancellationToken,
) -> Follower {
    let stop = run_stop.child_token();
    let task = tokio::spawn(doudi_pipeline::follow_register(
        store.clone(),
        engine.clone(),
        Duration::from_secs(config.register.refresh_secs.max(1)),
        stop.clone(),
    ));
    Follower { stop, task }
}

pub fn print_report(r: &RunReport) {
    let (received, secs, rate) = (r.received, r.elapsed_ms as f64 / 1000.0, r.rate());
    let (new, dups, dead) = (r.accepted, r.duplicates, r.dead_letters);
    let (linked, review, unmatched) = (r.linked, r.review, r.unmatched);
    let (opened, raised) = (r.warnings_opened, r.warnings_raised);
    say!(
        "读取 {received} 条记录，用时 {secs:.1} 秒（每秒 {rate:.0} 条）：新记录 {new} 条，重复 {dups} 条，死信 {dead} 条",
        "read {received} records in {secs:.1} s ({rate:.0}/s): {new} new, {dups} duplicates, {dead} dead letters"
    );
    say!(
        "身份匹配：已确认 {linked}，待人工确认 {review}，未匹配 {unmatched}；预警：新开启 {opened} 条，升级 {raised} 条",
        "identity: {linked} linked, {review} for review, {unmatched} unmatched; warnings: {opened} opened, {raised} raised"
    );
    if !r.dead_by_reason.is_empty() {
        let reasons: Vec<String> = r
            .dead_by_reason
            .iter()
            .map(|(k, v)| format!("{k} {v}"))
            .collect();
        let reasons = reasons.join(crate::lang::t("，", ", "));
        say!(
            "死信原因：{reasons}（见 `doudi deadletters list`）",
            "dead letters by reason: {reasons} (see `doudi deadletters list`)"
        );
    }
}
