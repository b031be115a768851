//! The `doudi` command line. A thin shell: parse flags, load configuration, call the library
//! crates — a person's decision (a warning move, a review decision, a replay, a read of a
//! household's data) through the use cases of `doudi-app`, the same the HTTP service calls — and
//! print for people (or JSON for scripts); a refusal is `error: …` and exit 2. `anyhow` lives
//! here and nowhere else.

// First: its macros (`tr!`, `say!`, `complain!`) serve every module after it.
#[macro_use]
pub mod lang;
mod commands;
mod config;
mod output;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

pub use commands::serve::KafkaPush;
pub use config::{secret_from_env, Config, Secret};

const AFTER_HELP: &str = "\
Start here:
  doudi demo                         generate data, import it, run the pipeline, show warnings

A real run on the embedded default (SQLite, file feeds):
  doudi import register.jsonl        load or update the low-income register
  doudi regions import regions.csv   names of the counties, townships and villages
  doudi run --feeds feeds --once     read every feed file once and stop
  doudi run --feeds feeds            keep watching the feeds for new lines and files
  doudi run --brokers HOST:PORT      a Kafka worker of the group over the four feed topics
  doudi status                       counts: events, duplicates, dead letters, links, warnings

Daily work:
  doudi warnings list --officer ID   an officer's warnings, most urgent first
  doudi warnings ack|visit|resolve   move a warning on (its officer, their substitute, a supervisor)
  doudi review list                  records the linker left for a person to decide
  doudi trace HOUSEHOLD              why a household was flagged, record by record
  doudi crosscheck --snapshots DIR   the nightly cross-check (from cron)
  doudi serve                        the HTTP API and the officers' pages (tokens: doudi tokens create)

Configuration: built-in defaults < --config FILE (TOML) < DOUDI_SECTION__KEY environment
variables < flags. Example: DOUDI_LIMITS__BATCH_SIZE=500. Logs: DOUDI_LOG=debug.

Language: what doudi prints for people is in Chinese (中文) by default; --lang en or DOUDI_LANG=en
for English. JSON, CSV, codes and logs are the same in both.";

/// 兜底 doudi — finds low-income households falling into hardship from department feeds, and
/// warns the township officer in time.
#[derive(Debug, Parser)]
#[command(
    name = "doudi",
    version,
    about = "兜底 doudi: finds low-income households falling into hardship in department feeds, and warns the township officer in time",
    after_help = AFTER_HELP
)]
pub struct Cli {
    /// Configuration file (TOML). Without it, built-in defaults apply.
    #[arg(long, global = true, env = "DOUDI_CONFIG", value_name = "FILE")]
    config: Option<PathBuf>,
    /// Database URL, e.g. sqlite://doudi.db (overrides store.url).
    #[arg(long, global = true, env = "DOUDI_DB", value_name = "URL")]
    db: Option<String>,
    /// Language of what is printed for people: zh (default) or en. JSON and CSV never change.
    #[arg(long, global = true, env = "DOUDI_LANG", value_name = "zh|en", value_parser = lang_arg)]
    lang: Option<lang::Lang>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Generate data, import it, run the pipeline once and print what an officer would see.
    Demo(commands::demo::DemoArgs),
    /// Generate a synthetic register and department feeds with ground truth.
    Gen(commands::gen::GenArgs),
    /// Import (or re-import) the register from a JSONL file, one household per line.
    Import(commands::import::ImportArgs),
    /// Run the pipeline over a feeds folder.
    Run(commands::run::RunArgs),
    /// A Kafka broker for development and tests (in memory), with fault injection on stdin.
    DevBroker(commands::dev_broker::DevBrokerArgs),
    /// Publish JSONL feed files to a Kafka topic, each event keyed by its person.
    Produce(commands::produce::ProduceArgs),
    /// Show counts: events received, applied, duplicates, dead letters, links, warnings.
    Status(commands::status::StatusArgs),
    /// Remove raw payloads older than the retention age (store.raw_retention_days); run nightly.
    Retention(commands::retention::RetentionArgs),
    /// Inspect records refused at ingest.
    #[command(subcommand)]
    Deadletters(commands::deadletters::DeadlettersCommand),
    /// Warnings: list, show, acknowledge, visit, resolve; escalation (tick) and officers' inboxes.
    #[command(subcommand)]
    Warnings(commands::warnings::WarningsCommand),
    /// Send notices to officers' signed webhooks (retries, quotas, digests, a delivery log).
    Deliver(commands::deliver::DeliverArgs),
    /// Hold back notices for a household or region, for a reason and a time window.
    #[command(subcommand)]
    Silences(commands::silences::SilencesCommand),
    /// The officer directory warnings and findings are routed to.
    #[command(subcommand)]
    Officers(commands::officers::OfficersCommand),
    /// Region names (county, township, village), so that pages and notices say 东河口镇大塘村.
    #[command(subcommand)]
    Regions(commands::regions::RegionsCommand),
    /// The identity model: train, show, explain a decision, evaluate on CSV files.
    #[command(subcommand)]
    Linkage(commands::linkage::LinkageCommand),
    /// The identity review queue: records the linker could not decide alone.
    #[command(subcommand)]
    Review(commands::review::ReviewCommand),
    /// Nightly cross-check of the register against full department snapshots (deaths, hukou,
    /// vehicles, properties, companies, wages, payments).
    Crosscheck(commands::crosscheck::CrosscheckArgs),
    /// Everything about one household, in order: source records, identity decisions, assessments,
    /// warnings and every human action, findings.
    Trace(commands::trace::TraceArgs),
    /// Findings of the nightly cross-checks: eligibility reviews routed to officers.
    #[command(subcommand)]
    Findings(commands::findings::FindingsCommand),
    /// Replay every stored household timeline under another rule set: what would change.
    Backtest(commands::backtest::BacktestArgs),
    /// The hash-chained audit trail: verify it, read it, sign a checkpoint of its head.
    #[command(subcommand)]
    Audit(commands::audit::AuditCommand),
    /// Rule sets: check a file, activate one (every worker adopts it at one stream position), list
    /// the activations.
    #[command(subcommand)]
    Rules(commands::rules::RulesCommand),
    /// Department exports (CSV, Excel, GB18030) read through feed profiles: dry-run check,
    /// shipped profiles.
    #[command(subcommand)]
    Feeds(commands::feeds::FeedsCommand),
    /// The HTTP service: JSON API, officers' and auditors' pages, /metrics, /healthz, /readyz.
    Serve(commands::serve::ServeArgs),
    /// API tokens of the HTTP service: create (shown once), list, revoke.
    #[command(subcommand)]
    Tokens(commands::tokens::TokensCommand),
    /// Create or upgrade the database schema, then exit.
    Migrate,
    /// Print the effective configuration (after file and environment) as TOML.
    Config,
}

/// Entry point of the binary.
pub fn main() -> ExitCode {
    // Output piped into `head` and closed early: end quietly, as other command-line tools do,
    // instead of panicking on the next print.
    #[cfg(unix)]
    // SAFETY: restoring the default disposition of SIGPIPE before any thread starts.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    let cli = Cli::parse();
    lang::set(cli.lang.unwrap_or(lang::Lang::Zh));
    init_logging();
    // Worker threads follow the machine: TOKIO_WORKER_THREADS if set, else the available
    // parallelism (tokio's default), instead of a fixed two.
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            complain!(
                "无法启动异步运行时：{e}",
                "cannot start the async runtime: {e}"
            );
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(dispatch(cli)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("{}", lang::error_chain(&e));
            ExitCode::FAILURE
        }
    }
}

/// `--lang` / `DOUDI_LANG`: `zh…` or `en…` (a locale such as `en_US.UTF-8` will do).
fn lang_arg(s: &str) -> Result<lang::Lang, String> {
    lang::parse(s).ok_or_else(|| format!("{s:?}: zh or en"))
}

fn init_logging() {
    use tracing_subscriber::EnvFilter;
    let filter =
        EnvFilter::try_from_env("DOUDI_LOG").unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr)
        .with_target(false)
        .try_init();
}

async fn dispatch(cli: Cli) -> anyhow::Result<ExitCode> {
    // The configuration's own messages name its keys (English, as the keys are); in Chinese a
    // lead sentence says what failed.
    let mut config = Config::load(cli.config.as_deref()).map_err(|e| match lang::lang() {
        lang::Lang::Zh => e.context("无法加载配置"),
        lang::Lang::En => e,
    })?;
    if let Some(db) = cli.db {
        config.store.url = db;
    }
    // Times for people in the locality's zone (a bad zone is refused where it is used).
    if let Ok(zone) = config.locality.zone() {
        lang::set_zone(zone);
    }
    match cli.command {
        Command::Demo(args) => commands::demo::run(&config, args).await,
        Command::Gen(args) => commands::gen::run(args),
        Command::Import(args) => commands::import::run(&config, args).await,
        Command::Run(args) => commands::run::run(&config, args).await,
        Command::DevBroker(args) => commands::dev_broker::run(&config, args).await,
        Command::Produce(args) => commands::produce::run(&config, args).await,
        Command::Status(args) => commands::status::run(&config, args).await,
        Command::Retention(args) => commands::retention::run(&config, args).await,
        Command::Deadletters(c) => commands::deadletters::run(&config, c).await,
        Command::Warnings(c) => commands::warnings::run(&config, c).await,
        Command::Deliver(args) => commands::deliver::run(&config, args).await,
        Command::Silences(c) => commands::silences::run(&config, c).await,
        Command::Officers(c) => commands::officers::run(&config, c).await,
        Command::Regions(c) => commands::regions::run(&config, c).await,
        Command::Linkage(c) => commands::linkage::run(&config, c).await,
        Command::Review(c) => commands::review::run(&config, c).await,
        Command::Crosscheck(args) => commands::crosscheck::run(&config, args).await,
        Command::Trace(args) => commands::trace::run(&config, args).await,
        Command::Findings(c) => commands::findings::run(&config, c).await,
        Command::Backtest(args) => commands::backtest::run(&config, args).await,
        Command::Audit(c) => commands::audit::run(&config, c).await,
        Command::Rules(c) => commands::rules::run(&config, c).await,
        Command::Feeds(c) => commands::feeds::run(c),
        Command::Serve(args) => commands::serve::run(&config, args).await,
        Command::Tokens(c) => commands::tokens::run(&config, c).await,
        Command::Migrate => {
            let store = commands::open_store(&config).await?;
            store.close().await;
            let db = doudi_store::redact_url(&config.store.url);
            say!("数据库 {db} 已是最新结构", "database {db} is up to date");
            Ok(ExitCode::SUCCESS)
        }
        Command::Config => {
            print!("{}", config.printable()?);
            Ok(ExitCode::SUCCESS)
        }
    }
}
