//! `doudi produce`: publish JSONL feed files to a Kafka topic, each event keyed by its person.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;

use crate::Config;

#[derive(Debug, Args)]
#[command(after_help = "\
Each event is keyed by its subject's ID number (as typed, trimmed, upper-case X), so one person's events go to one partition, in file order. Every non-blank line is published as is — bad lines included: the worker refuses them into dead letters with the reason, which is where they should be seen. Lines without a readable ID number are published without a key; their count and first line numbers are reported.

With --profile, the files are a department's own exports (CSV, Excel, JSON lines, fixed width), read through that feed profile (a shipped one by name, or a path): each row becomes an envelope event, published keyed by its person with the profile's name@version in the `doudi-profile` header (the worker keeps it with the event, and `doudi trace` shows it); the topic defaults to the profile's source's (kafka.topics). A row the profile refuses is not published: it is named on stderr (file, row, column, why — never the cell) and the command exits 1 after publishing the rest, so that the file can be fixed and the refused rows checked with `doudi feeds check`.

Examples:
  doudi produce --brokers 127.0.0.1:9092 --topic housing data/feeds/housing/2025-01.jsonl
  doudi produce --brokers 127.0.0.1:9092 --topic civil_registry data/feeds/civil_registry/*.jsonl
  doudi produce --brokers 127.0.0.1:9092 --profile yibao-settlement data/native/yibao-settlement/2026-03.csv")]
pub struct ProduceArgs {
    /// Kafka brokers (overrides kafka.brokers).
    #[arg(long, value_name = "HOST:PORT[,…]")]
    pub brokers: Option<String>,
    /// The topic to publish to (with --profile: the profile's source's topic by default).
    #[arg(long, required_unless_present = "profile")]
    pub topic: Option<String>,
    /// Read the files as a department's exports through this feed profile (a shipped profile's
    /// name, or a path to a profile file) and publish the events made.
    #[arg(long, value_name = "NAME|FILE")]
    pub profile: Option<String>,
    /// JSONL files, one event per line, published in order (with --profile: export files).
    #[arg(required = true, value_name = "FILE")]
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
        anyhow::bail!(tr!(
            "没有 Kafka 地址：请用 --brokers HOST:PORT 指定（或设置 kafka.brokers）",
            "no brokers: pass --brokers HOST:PORT (or set kafka.brokers)"
        ));
    }
    if let Some(spec) = &args.profile {
        return produce_exports(&kafka, spec, &args).await;
    }
    let Some(topic) = args.topic.clone() else {
        anyhow::bail!(tr!(
            "请给出 --topic（或 --profile）",
            "pass --topic (or --profile)"
        ));
    };
    let total: u64 = args
        .files
        .iter()
        .map(|f| std::fs::metadata(f).map(|m| m.len()).unwrap_or(0))
        .sum();
    let bar = crate::output::bar(total, crate::lang::t("发布", "publishing"));
    let mut all = doudi_kafka::produce::ProduceReport::default();
    let mut before = 0u64;
    for file in &args.files {
        let b = bar.clone();
        let base = before;
        let r = doudi_kafka::produce::produce_file(&kafka, &topic, file, &move |bytes| {
            b.set_position(base + bytes)
        })
        .await
        .with_context(|| crate::output::cannot("发布", "publish", file))?;
        before += r.bytes;
        if r.unkeyed > 0 {
            let (name, n, lines) = (file.display(), r.unkeyed, &r.unkeyed_lines);
            let more = if n as usize > lines.len() {
                ", …"
            } else {
                ""
            };
            eprintln!(
                "{}",
                tr!(
                    "{name}：{n} 行没有可读的身份证号，已无键发布（行 {lines:?}{more}）",
                    "{name}: {n} lines without a readable ID number published without a key (lines {lines:?}{more})"
                )
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
        let (published, unkeyed, blank) = (all.published, all.unkeyed, all.blank);
        say!(
            "已向 {topic} 发布 {published} 条记录（无键 {unkeyed} 条，跳过空行 {blank} 行）",
            "published {published} events to {topic} ({unkeyed} without a key, {blank} blank lines skipped)"
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// What publishing exports through a profile did.
#[derive(Debug, Default, serde::Serialize)]
struct ExportReport {
    profile: String,
    topic: String,
    rows: u64,
    published: u64,
    unkeyed: u64,
    refused: u64,
    /// Files that stopped being readable (rows before the error were published).
    unreadable: u64,
}

/// `--profile`: read each file through the profile, publish the events, name every refused row.
async fn produce_exports(
    kafka: &doudi_kafka::KafkaConfig,
    spec: &str,
    args: &ProduceArgs,
) -> anyhow::Result<ExitCode> {
    let profile = std::sync::Arc::new(
        super::feeds::load_profile(spec)
            .with_context(|| tr!("数据格式 {spec}", "profile {spec}"))?,
    );
    let provenance = profile.provenance().to_string();
    let topic = match &args.topic {
        Some(t) => t.clone(),
        None => kafka
            .topics
            .all()
            .into_iter()
            .find(|(_, s)| *s == profile.source)
            .map(|(t, _)| t.to_string())
            .unwrap_or_else(|| profile.source.code().to_string()),
    };
    let mut all = ExportReport {
        profile: provenance.clone(),
        topic: topic.clone(),
        ..ExportReport::default()
    };
    for file in &args.files {
        let reader = match doudi_feeds::FeedReader::open(profile.clone(), file) {
            Ok(r) => r,
            Err(e) => {
                eprintln!("{e}");
                all.unreadable += 1;
                continue;
            }
        };
        let name = reader.file().to_string();
        let mut events = Vec::new();
        for row in reader {
            match row {
                Ok(row) => {
                    all.rows += 1;
                    match row.result {
                        Ok(event) => events.push((row.position.row, event.to_json().into_bytes())),
                        Err(refused) => {
                            all.refused += 1;
                            eprintln!("{name}: refused {refused}");
                        }
                    }
                }
                Err(e) => {
                    eprintln!("{e}");
                    all.unreadable += 1;
                }
            }
        }
        let r =
            doudi_kafka::produce::produce_events(kafka, &topic, &provenance, events.into_iter())
                .await
                .with_context(|| crate::output::cannot("发布", "publish", file))?;
        all.published += r.published;
        all.unkeyed += r.unkeyed;
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&all)?);
    } else {
        let (published, profile, topic) = (all.published, &all.profile, &all.topic);
        let (unkeyed, refused, unreadable) = (all.unkeyed, all.refused, all.unreadable);
        say!(
            "已按数据格式 {profile} 向 {topic} 发布 {published} 条记录（无键 {unkeyed} 条）；拒收 {refused} 行，无法读取的文件 {unreadable} 个",
            "published {published} events made by profile {profile} to {topic} ({unkeyed} without a key); {refused} rows refused, {unreadable} files unreadable"
        );
    }
    Ok(if all.refused + all.unreadable > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}
