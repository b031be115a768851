use std::io::{Read, Seek, SeekFrom};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Subcommand;
use doudi_model::Source;
use doudi_pipeline::files::RawRecord;

use super::{load_engine, open_store};
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

A record longer than the size limit in force when it was refused was kept only in part; its whole line is read again from its feed file (under --feeds, by its byte offset). Replayed records keep their original event ids, so replaying twice changes nothing.")]
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
            if json {
                println!("{}", serde_json::to_string_pretty(&list)?);
            } else if list.is_empty() {
                println!("no dead letters");
            } else {
                for d in &list {
                    println!(
                        "#{:<6} {}:{}  [{}] {}  ({} bytes){}",
                        d.id,
                        d.stream,
                        d.line,
                        d.reason_code,
                        d.reason,
                        d.raw_len,
                        d.replayed_at
                            .as_deref()
                            .map(|t| format!("  replayed {t}"))
                            .unwrap_or_default()
                    );
                }
            }
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
    let limits = config.limits.parse_limits();
    let page_size = config.limits.batch_size.max(1) as i64;
    let mut engine = None;
    let mut after = 0;
    let (mut replayed, mut still, mut seen) = (0usize, 0u64, 0usize);
    let mut total = doudi_pipeline::BatchOutcome::default();
    // A page of dead letters at a time (their bytes can be large), each applied in one transaction.
    loop {
        let letters = store
            .dead_letters_to_replay(ids, reason, after, page_size)
            .await?;
        let Some(last) = letters.last() else {
            break;
        };
        after = last.id;
        seen += letters.len();
        if engine.is_none() {
            engine = Some(load_engine(config, store, None).await?);
        }
        let Some(engine) = engine.as_ref() else {
            break;
        };
        let mut good = Vec::new();
        let mut good_ids = Vec::new();
        for d in &letters {
            let Some(source) = Source::from_code(&d.source) else {
                println!("#{}: unknown source {:?}: left as it is", d.id, d.source);
                still += 1;
                continue;
            };
            let bytes = if d.raw_len as usize > d.raw.len() {
                match reread(feeds, &d.stream, d.byte_offset, d.raw_len) {
                    Ok(b) => b,
                    Err(e) => {
                        println!(
                            "#{}: kept only in part and {e:#}: left as it is (pass --feeds DIR)",
                            d.id
                        );
                        still += 1;
                        continue;
                    }
                }
            } else {
                d.raw.clone()
            };
            let record = RawRecord {
                source,
                stream: d.stream.clone(),
                line: u64::try_from(d.line).unwrap_or(0),
                byte_offset: u64::try_from(d.byte_offset).unwrap_or(0),
                end_offset: u64::try_from(d.byte_offset + d.raw_len + 1).unwrap_or(0),
                full_len: bytes.len() as u64,
                bytes,
            };
            let mut item = doudi_pipeline::ingest_record(record, &limits);
            match &item.result {
                Ok(_) => {
                    item.link_with(engine.index());
                    good.push(item);
                    good_ids.push(d.id);
                }
                Err(e) => {
                    println!(
                        "#{} {}:{}: still refused: [{}] {e}",
                        d.id,
                        d.stream,
                        d.line,
                        e.code()
                    );
                    still += 1;
                }
            }
        }
        if !good.is_empty() {
            let out = doudi_pipeline::apply_replayed(store, engine, &good, &good_ids).await?;
            total.add(&out);
            replayed += good_ids.len();
        }
    }
    if seen == 0 {
        println!("no dead letters to replay");
        return Ok(());
    }
    tracing::info!(replayed, still_refused = still, "dead letters replayed");
    println!(
        "replayed {replayed} dead letters: {} new events ({} duplicates), {} linked, {} for review, {} unmatched, {} warnings opened; {still} still refused",
        total.accepted,
        total.duplicates,
        total.linked,
        total.review,
        total.unmatched,
        total.warnings_opened,
    );
    Ok(())
}

/// The whole line of a record kept only in part, from its feed file.
fn reread(feeds: &std::path::Path, stream: &str, offset: i64, len: i64) -> anyhow::Result<Vec<u8>> {
    let path = feeds.join(stream);
    let mut f = std::fs::File::open(&path)
        .with_context(|| format!("its file {} cannot be opened", path.display()))?;
    f.seek(SeekFrom::Start(u64::try_from(offset)?))?;
    let mut buf = vec![0; usize::try_from(len)?];
    f.read_exact(&mut buf)
        .with_context(|| format!("its file {} is shorter than recorded", path.display()))?;
    Ok(buf)
}
