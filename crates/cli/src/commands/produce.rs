//! `doudi produce`: publish JSONL feed files to a Kafka topic, each event keyed by its person.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;

use crate::Config;

#[derive(Debug, Args)]
#[command(after_help = "\
Each event is keyed by its subject's ID number (as typed, trimmed, upper-case X), so one person's events go to one partition, in file order. Every non-blank line is published as is — bad lines included: the worker refuses them into dead letters with the reason, which is where they should be seen. Lines without a readable ID number are published without a key; their count and first line numbers are reported.

Examples:
  doudi produce --brokers 127.0.0.1:9092 --topic housing data/feeds/housing/2025-01.jsonl
  doudi produce --brokers 127.0.0.1:9092 --topic civil_registry data/feeds/civil_registry/*.jsonl")]
pub struct ProduceArgs {
    /// Kafka brokers (overrides kafka.brokers).
    #[arg(long, value_name = "HOST:PORT[,…]")]
    pub brokers: Option<String>,
    /// The topic to publish to.
    #[arg(long)]
    pub topic: String,
    /// JSONL files, one event per line, published in order.
    #[arg(required = true, value_name = "FILE.jsonl")]
    pub files: Vec<PathBuf>,
    /// Print the totals as JSON.
    #[arg(long)]
    pub json: bool,
}

pub async fn run(config: &Config, args: ProduceArgs) -> anyhow::Result<ExitCode> {
    let mut kafka = config.kafka.clone();
    if let Some(b) = &args.brokers {
        kafka.brokers = b.clone();
    }
    if kafka.brokers.is_empty() {
        anyhow::bail!("no brokers: pass --brokers HOST:PORT (or set kafka.brokers)");
    }
    let total: u64 = args
        .files
        .iter()
        .map(|f| std::fs::metadata(f).map(|m| m.len()).unwrap_or(0))
        .sum();
    let bar = crate::output::bar(total, "publishing");
    let mut all = doudi_kafka::produce::ProduceReport::default();
    let mut before = 0u64;
    for file in &args.files {
        let b = bar.clone();
        let base = before;
        let r = doudi_kafka::produce::produce_file(&kafka, &args.topic, file, &move |bytes| {
            b.set_position(base + bytes)
        })
        .await
        .with_context(|| format!("publishing {}", file.display()))?;
        before += r.bytes;
        if r.unkeyed > 0 {
            eprintln!(
                "{}: {} lines without a readable ID number published without a key (lines {:?}{})",
                file.display(),
                r.unkeyed,
                r.unkeyed_lines,
                if r.unkeyed as usize > r.unkeyed_lines.len() {
                    ", …"
                } else {
                    ""
                }
            );
        }
        all.published += r.published;
        all.unkeyed += r.unkeyed;
        all.blank += r.blank;
        all.bytes += r.bytes;
    }
    bar.finish_and_clear();
    if args.json {
        println!("{}", serde_json::to_string_pretty(&all)?);
    } else {
        println!(
            "published {} events to {} ({} without a key, {} blank lines skipped)",
            all.published, args.topic, all.unkeyed, all.blank
        );
    }
    Ok(ExitCode::SUCCESS)
}
