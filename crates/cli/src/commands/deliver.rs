//! `doudi deliver`: send notices from the outbox to officers' signed webhooks or their WeCom or
//! DingTalk group robots, with retries, per-recipient quotas and digests, every attempt in the
//! delivery log.

use std::num::NonZeroU32;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use doudi_deliver::{Backoff, Deliverer, PassReport, Settings};

use super::open_store;
use crate::Config;

#[derive(Debug, Args)]
#[command(after_help = "\
Reads the notices (opened, raised, escalated, overdue, reminder) in notice order and POSTs each to
its recipient's channels.webhook, signed: X-Doudi-Timestamp, X-Doudi-Signature (sha256= HMAC of
\"{timestamp}.{body}\" with deliver.secret), X-Doudi-Key-Id (deliver.key_id: receivers hold the old and
the new key during a key change and check with the one named), Idempotency-Key (doudi-notice-<id>).
The receiver's check and the steps of a key change: crates/deliver/src/sign.rs.

An officer whose channels.wecom or channels.dingtalk is set gets one markdown message in Chinese
per notice in their WeCom (企业微信) or DingTalk (钉钉) group: level, household (head's name
masked), village, top reason, deadline in locality.time_zone, link. The directory names the files
holding the robot's webhook URL (and DingTalk's signing secret), read at each pass; DingTalk URLs
are signed (timestamp, HMAC-SHA256 sign). A robot's answer must be errcode 0; any other errcode is
a failed attempt, retried, the errcode in the log. A robot's quota is at most 20 a minute.

A failed attempt is retried with backoff; a household's later notices wait behind an earlier one.
A recipient over the quota gets one digest of everything pending (a robot: as much as one message
holds). Officers without a channel read notices in their inbox only. Needs the webhook key while
any officer has a webhook (robots need none): DOUDI_DELIVER__SECRET_FILE names a file holding it
(or DOUDI_DELIVER__SECRET holds it).

With --brokers (or kafka.brokers) it also publishes every notice to the Kafka topic
kafka.warnings_topic, keyed by household (the same item as a webhook's: IDs and names masked),
with an idempotent producer, in notice order, each notice once: what was published is recorded per
notice, and on start the tail of the topic is read back so that a crash between sending and
recording repeats nothing. Without a secret, only Kafka publication runs. Run one `doudi deliver`.

Examples:
  DOUDI_DELIVER__SECRET_FILE=/run/secrets/webhook-key doudi deliver
  doudi deliver --brokers 127.0.0.1:9092 --once")]
pub struct DeliverArgs {
    /// Deliver what is due now, then stop (notices in backoff stay for a later run).
    #[arg(long)]
    pub once: bool,
    /// Print the totals (or the log) as JSON.
    #[arg(long)]
    pub json: bool,
    /// Also publish notices to the Kafka warnings topic of these brokers (overrides kafka.brokers).
    #[arg(long, value_name = "HOST:PORT[,…]", conflicts_with = "log")]
    pub brokers: Option<String>,
    /// Show the delivery log (newest first: every attempt with its channel, status or error
    /// (a robot's errcode) and time taken)
    /// instead of delivering; needs no secret.
    #[arg(long, conflicts_with = "once")]
    pub log: bool,
    /// With --log: only attempts carrying this notice.
    #[arg(long, value_name = "NOTICE", requires = "log")]
    pub notice: Option<i64>,
    /// With --log: at most this many rows.
    #[arg(long, default_value_t = 50, requires = "log")]
    pub limit: i64,
}

pub fn settings(config: &Config) -> anyhow::Result<Settings> {
    let d = &config.deliver;
    // Without a secret, a directory with a webhook is refused at the first pass (robots need none).
    Ok(Settings {
        secret: d.secret.expose().as_bytes().to_vec(),
        key_id: d.key_id.clone(),
        quota_per_minute: NonZeroU32::new(d.quota_per_minute)
            .context("deliver.quota_per_minute must be at least 1")?,
        max_digest_items: d.max_digest_items,
        backoff: Backoff {
            base: Duration::from_millis(d.backoff_base_ms),
            cap: Duration::from_millis(d.backoff_cap_ms),
        },
        max_attempts: d.max_attempts,
        timeout: Duration::from_millis(d.timeout_ms),
        web_base_url: d.web_base_url.clone(),
        time_zone: config.locality.zone()?,
        batch_size: i64::try_from(d.batch_size).unwrap_or(i64::MAX),
        concurrency: d.concurrency,
    })
}

pub async fn run(config: &Config, args: DeliverArgs) -> anyhow::Result<ExitCode> {
    if args.log {
        return show_log(config, &args).await;
    }
    let brokers = args
        .brokers
        .clone()
        .or_else(|| (!config.kafka.brokers.is_empty()).then(|| config.kafka.brokers.clone()));
    if let Some(brokers) = brokers {
        return deliver_with_kafka(config, &args, &brokers).await;
    }
    let settings = settings(config)?;
    let store = open_store(config).await?;
    let mut deliverer = Deliverer::new(settings)?;
    let report = if args.once {
        deliverer.pass(&store).await?
    } else {
        tracing::info!("delivering notices until Ctrl-C");
        let poll = Duration::from_millis(config.deliver.poll_interval_ms);
        deliverer
            .run(&store, poll, async {
                let _ = tokio::signal::ctrl_c().await;
            })
            .await?
    };
    store.close().await;
    print_report(&report, args.json)?;
    Ok(ExitCode::SUCCESS)
}

/// Kafka publication, and webhook delivery too when a secret is set.
async fn deliver_with_kafka(
    config: &Config,
    args: &DeliverArgs,
    brokers: &str,
) -> anyhow::Result<ExitCode> {
    let kafka = config.kafka_at(brokers);
    let store = open_store(config).await?;
    let publisher = doudi_kafka::publish::Publisher::new(&kafka, &config.deliver.web_base_url)?;
    let webhooks = if config.deliver.secret.expose().is_empty() {
        tracing::info!("no DOUDI_DELIVER__SECRET: publishing to Kafka only (no webhooks)");
        None
    } else {
        Some(Deliverer::new(settings(config)?)?)
    };
    let poll = Duration::from_millis(config.deliver.poll_interval_ms);
    let (published, delivered) = if args.once {
        let p = publisher.once(&store).await?;
        let d = match webhooks {
            Some(mut d) => Some(d.pass(&store).await?),
            None => None,
        };
        (p, d)
    } else {
        tracing::info!(topic = %kafka.warnings_topic, "publishing notices until SIGTERM or Ctrl-C");
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
            let _ = rx.wait_for(|s| *s).await;
        };
        let signal = async {
            super::shutdown_signal().await;
            let _ = stop_tx.send(true);
        };
        let publish = publisher.run(&store, poll, stopped(stop_rx.clone()));
        let deliver = async {
            match webhooks {
                Some(mut d) => d
                    .run(&store, poll, stopped(stop_rx.clone()))
                    .await
                    .map(Some),
                None => Ok(None),
            }
        };
        let ((), p, d) = tokio::join!(signal, publish, deliver);
        (p?, d?)
    };
    store.close().await;
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(
                &serde_json::json!({"kafka": published, "webhooks": delivered})
            )?
        );
    } else {
        let (n, topic, recovered) = (
            published.published,
            &kafka.warnings_topic,
            published.recovered,
        );
        say!(
            "已向 {topic} 发布 {n} 条通知（启动时发现已发布 {recovered} 条）",
            "published {n} notices to {topic} ({recovered} found already published at start)"
        );
        if let Some(d) = &delivered {
            print_report(d, false)?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn show_log(config: &Config, args: &DeliverArgs) -> anyhow::Result<ExitCode> {
    let store = open_store(config).await?;
    let log = store.delivery_log(args.notice, args.limit).await?;
    store.close().await;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&log)?);
    } else if log.is_empty() {
        say!("还没有发送记录", "no delivery attempts yet");
    } else {
        for l in &log {
            let ids: Vec<String> = l.notice_ids.iter().map(|i| i.to_string()).collect();
            let (at, outcome, to, channel) = (&l.at, &l.outcome, &l.recipient, &l.channel);
            let (attempt, ms, ids) = (l.attempt, l.elapsed_ms, ids.join(","));
            let status = l.http_status.map_or("-".to_string(), |s| s.to_string());
            let digest = if l.digest {
                crate::lang::t("汇总 ", "digest ")
            } else {
                ""
            };
            let error = l.error.as_deref().unwrap_or("");
            say!(
                "{at}  {outcome:<10} {to:<14} {channel:<8} 第 {attempt:<2} 次 {status:<6} {ms:>6} 毫秒  {digest}{error}  通知 {ids}",
                "{at}  {outcome:<10} {to:<14} {channel:<8} attempt {attempt:<2} {status:<6} {ms:>6} ms  {digest}{error}  notices {ids}"
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn print_report(r: &PassReport, json: bool) -> anyhow::Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(r)?);
    } else {
        let (delivered, attempts, digests) = (r.delivered, r.attempts, r.digests);
        let (retrying, failed) = (r.retrying, r.failed);
        let (inbox_only, waiting) = (r.inbox_only, r.waiting);
        say!(
            "已送达 {delivered} 条通知（请求 {attempts} 次，汇总 {digests} 份），待重试 {retrying}，失败 {failed}，仅站内 {inbox_only}，等待中 {waiting}",
            "delivered {delivered} notices ({attempts} requests, {digests} digests), {retrying} to retry, {failed} failed, {inbox_only} inbox only, {waiting} waiting"
        );
    }
    Ok(())
}
