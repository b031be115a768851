use std::path::PathBuf;
use std::process::ExitCode;

use clap::Subcommand;

use doudi_pipeline::ReplayOptions;

use super::{asker, engine_settings, open_store};
use crate::Config;

#[derive(Debug, Subcommand)]
pub enum DeadlettersCommand {
    /// List refused records with their reason and where they came from (file and line).
    List {
        /// At most this many.
        #[arg(long, default_value_t = 50)]
        limit: i64,
        /// Print as JSON, raw preview included (it may hold personal data).
        #[arg(long)]
        json: bool,
    },
    /// Try refused records again after a fix (a raised limit, a corrected parser): those that
    /// pass now go through the pipeline and are marked replayed; the others stay, with why.
    #[command(after_help = "\
Examples:
  DOUDI_LIMITS__MAX_EVENT_BYTES=262144 doudi deadletters replay --reason too_large
  doudi deadletters replay --id 17 --id 18

A record longer than the size limit in force when it was refused was kept only in part; its whole line is read again from its feed file (under --feeds, by its byte offset). A refused row of a department's export is mapped again with the profile as it stands now: the folder's profile.toml, or for a raw-row Kafka topic its profile in [kafka.profiles]. Replayed records keep their original event ids, so replaying twice changes nothing.")]
    Replay {
        /// Only these dead letters (repeat the flag for more).
        #[arg(long = "id", value_name = "ID")]
        ids: Vec<i64>,
        /// Only dead letters refused for this reason code.
        #[arg(long, value_name = "CODE")]
        reason: Option<String>,
        /// The feeds folder, to re-read records that were kept only in part (overrides feeds.dir).
        #[arg(long, value_name = "DIR")]
        feeds: Option<PathBuf>,
    },
}

pub async fn run(config: &Config, cmd: DeadlettersCommand) -> anyhow::Result<ExitCode> {
    let store = open_store(config).await?;
    match cmd {
        DeadlettersCommand::List { limit, json } => {
            let list = store.dead_letters(limit).await?;
            let empty = || tr!("没有死信", "no dead letters");
            crate::output::print_list(json, &list, empty, |d| {
                let (id, stream, line, code) = (d.id, &d.stream, d.line, &d.reason_code);
                let (reason, len) = (&d.reason, d.raw_len);
                let replayed = d
                    .replayed_at
                    .as_deref()
                    .map(|t| tr!("  已于 {t} 重放", "  replayed {t}"))
                    .unwrap_or_default();
                say!(
                    "#{id:<6} {stream}:{line}  [{code}] {reason}（{len} 字节）{replayed}",
                    "#{id:<6} {stream}:{line}  [{code}] {reason}  ({len} bytes){replayed}"
                );
            })?;
        }
        DeadlettersCommand::Replay { ids, reason, feeds } => {
            let feeds = feeds.unwrap_or_else(|| config.feeds.dir.clone());
            replay(config, &store, &ids, reason.as_deref(), &feeds).await?;
        }
    }
    store.close().await;
    Ok(ExitCode::SUCCESS)
}

async fn replay(
    config: &Config,
    store: &doudi_store::Store,
    ids: &[i64],
    reason: Option<&str>,
    feeds: &std::path::Path,
) -> anyhow::Result<()> {
    let settings = engine_settings(config)?;
    let topic_profiles = super::topic_profiles(config)?;
    let replay = ReplayOptions {
        ids,
        reason,
        feeds,
        limits: settings.limits,
        page_size: config.limits.batch_size.max(1) as i64,
        topic_profiles: &topic_profiles,
    };
    let Some(report) = doudi_app::replay::replay(store, &settings, &asker(), &replay).await? else {
        say!("没有需要重放的死信", "no dead letters to replay");
        return Ok(());
    };
    for s in &report.still_refused {
        let (id, stream, line, code, reason) = (s.id, &s.stream, s.line, &s.code, &s.reason);
        say!(
            "#{id} {stream}:{line}：仍被拒收：[{code}] {reason}",
            "#{id} {stream}:{line}: still refused: [{code}] {reason}"
        );
    }
    let (replayed, still, total) = (report.replayed, report.still_refused.len(), &report.outcome);
    let (new, dups, linked) = (total.accepted, total.duplicates, total.linked);
    let (review, unmatched, opened) = (total.review, total.unmatched, total.warnings_opened);
    say!(
        "已重放 {replayed} 条死信：新记录 {new} 条（重复 {dups} 条），已确认身份 {linked}，待人工确认 {review}，未匹配 {unmatched}，新开启预警 {opened} 条；仍被拒收 {still} 条",
        "replayed {replayed} dead letters: {new} new events ({dups} duplicates), {linked} linked, {review} for review, {unmatched} unmatched, {opened} warnings opened; {still} still refused"
    );
    Ok(())
}
