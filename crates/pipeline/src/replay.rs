//! Replaying dead letters after a fix (a raised limit, a corrected parser): those that pass now go
//! through the pipeline (link, assess, warn) once and are marked replayed; the others stay, with
//! why. Used by `doudi deadletters replay` and the HTTP service.

use std::collections::HashMap;
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;
use std::sync::Arc;

use doudi_feeds::{Mapped, Profile};

use doudi_model::{ParseLimits, Source};
use doudi_store::Store;
use serde::Serialize;

use crate::apply::{apply_replayed, BatchOutcome, Engine};
use crate::driver::Position;
use crate::driver::RawRecord;
use crate::files::PROFILE_FILE;
use crate::{ingest_record, ingest_row, PipelineError};

/// A dead letter that is still refused, and why.
#[derive(Clone, Debug, Serialize)]
pub struct StillRefused {
    pub id: i64,
    pub stream: String,
    pub line: i64,
    /// A reason code (`bad_json`, …), or `unknown_source` / `partial` (kept only in part and its
    /// feed file cannot be read again).
    pub code: String,
    pub reason: String,
}

/// What a replay did.
#[derive(Clone, Debug, Default, Serialize)]
pub struct ReplayReport {
    /// Dead letters looked at (not replayed before, matching the selection).
    pub seen: usize,
    pub replayed: usize,
    pub still_refused: Vec<StillRefused>,
    pub outcome: BatchOutcome,
}

/// Which dead letters to replay, and how.
#[derive(Clone, Debug)]
pub struct ReplayOptions<'a> {
    /// Only these ids (empty: all).
    pub ids: &'a [i64],
    /// Only this reason code.
    pub reason: Option<&'a str>,
    /// The feeds folder, to re-read records that were kept only in part.
    pub feeds: &'a Path,
    pub limits: ParseLimits,
    /// Dead letters read (and applied in one transaction) at a time.
    pub page_size: i64,
    /// The Kafka topics that carry a department's raw rows, with the profile that reads them now
    /// (`[kafka.profiles]`): a refused row of such a topic (stream `TOPIC/PARTITION`) is mapped
    /// again with it, as an export's row is with its folder's `profile.toml`.
    pub topic_profiles: &'a [(String, Arc<Profile>)],
}

/// Replay the dead letters `opts` selects through `engine`, a page at a time.
pub async fn replay_dead_letters(
    store: &Store,
    engine: &Engine,
    opts: &ReplayOptions<'_>,
) -> Result<ReplayReport, PipelineError> {
    let mut report = ReplayReport::default();
    let mut profiles = Profiles::default();
    let mut after = 0;
    loop {
        let letters = store
            .dead_letters_to_replay(opts.ids, opts.reason, after, opts.page_size.max(1))
            .await?;
        let Some(last) = letters.last() else {
            break;
        };
        after = last.id;
        report.seen += letters.len();
        let mut good = Vec::new();
        let mut good_ids = Vec::new();
        for d in &letters {
            let refuse = |code: &str, reason: String| StillRefused {
                id: d.id,
                stream: d.stream.clone(),
                line: d.line,
                code: code.to_string(),
                reason,
            };
            let Some(source) = Source::from_code(&d.source) else {
                report.still_refused.push(refuse(
                    "unknown_source",
                    format!("unknown source {:?}", d.source),
                ));
                continue;
            };
            if d.reason_code == "file_unreadable" {
                report.still_refused.push(refuse(
                    "file_unreadable",
                    format!(
                        "a whole file stopped being readable after row {}: fix or re-export the file (or the profile), and `doudi run` reads it on from there",
                        d.line
                    ),
                ));
                continue;
            }
            let mut item = if d.reason_code == "row_refused" {
                // A row of a department's export: mapped again with its folder's profile as it
                // stands now.
                let profile = match profiles.get(opts.feeds, opts.topic_profiles, &d.stream) {
                    Ok(p) => p,
                    Err(e) => {
                        report.still_refused.push(refuse("row_refused", e));
                        continue;
                    }
                };
                let line = u64::try_from(d.line).unwrap_or(0);
                let record = RawRecord {
                    source,
                    stream: d.stream.clone(),
                    position: Position::Replayed {
                        line,
                        start: u64::try_from(d.byte_offset).unwrap_or(0),
                        end: u64::try_from(d.byte_offset).unwrap_or(0),
                    },
                    full_len: d.raw.len() as u64,
                    bytes: d.raw.clone(),
                };
                let result = match profile.0.map_raw(line, &d.raw) {
                    Mapped::Event(e) if e.source != source => {
                        report.still_refused.push(refuse(
                            "source_mismatch",
                            format!(
                                "the folder's profile is now for source {:?}, the row came from {:?}",
                                e.source.code(),
                                source.code()
                            ),
                        ));
                        continue;
                    }
                    Mapped::Event(e) => Ok(*e),
                    Mapped::Refused(e) => Err(e),
                    Mapped::Skipped(_) => {
                        // The fixed profile passes the row over (a totals line, a filter): no
                        // event, and nothing left to replay.
                        good_ids.push(d.id);
                        continue;
                    }
                };
                ingest_row(record, result, &profile.1)
            } else {
                let bytes = if d.raw_len as usize > d.raw.len() {
                    match reread(opts.feeds, &d.stream, d.byte_offset, d.raw_len) {
                        Ok(b) => b,
                        Err(e) => {
                            report.still_refused.push(refuse(
                                "partial",
                                format!("kept only in part and {e} (give the feeds folder)"),
                            ));
                            continue;
                        }
                    }
                } else {
                    d.raw.clone()
                };
                let record = RawRecord {
                    source,
                    stream: d.stream.clone(),
                    position: Position::Replayed {
                        line: u64::try_from(d.line).unwrap_or(0),
                        start: u64::try_from(d.byte_offset).unwrap_or(0),
                        end: u64::try_from(d.byte_offset + d.raw_len + 1).unwrap_or(0),
                    },
                    full_len: bytes.len() as u64,
                    bytes,
                };
                ingest_record(record, &opts.limits)
            };
            match &item.result {
                Ok(_) => {
                    item.link_with(&engine.index());
                    good.push(item);
                    good_ids.push(d.id);
                }
                Err(e) => report.still_refused.push(refuse(e.code(), e.to_string())),
            }
        }
        if !good_ids.is_empty() {
            let out = apply_replayed(store, engine, &good, &good_ids).await?;
            report.outcome.add(&out);
            report.replayed += good_ids.len();
        }
    }
    Ok(report)
}

/// The whole line of a record kept only in part, from its feed file.
fn reread(feeds: &Path, stream: &str, offset: i64, len: i64) -> Result<Vec<u8>, String> {
    let path = feeds.join(stream);
    let mut f = std::fs::File::open(&path)
        .map_err(|e| format!("its file {} cannot be opened: {e}", path.display()))?;
    let offset = u64::try_from(offset).map_err(|_| format!("bad offset {offset}"))?;
    f.seek(SeekFrom::Start(offset))
        .map_err(|e| format!("its file {} cannot be read: {e}", path.display()))?;
    let mut buf = vec![0; usize::try_from(len).map_err(|_| format!("bad length {len}"))?];
    f.read_exact(&mut buf)
        .map_err(|_| format!("its file {} is shorter than recorded", path.display()))?;
    Ok(buf)
}

/// The feed profiles of export folders, loaded once per replay: the one beside the dead letter's
/// file now (after the fix), with its `name@version`.
#[derive(Default)]
struct Profiles {
    by_folder: HashMap<String, Result<FolderProfile, String>>,
}

/// A folder's profile and its `name@version`.
type FolderProfile = (Arc<Profile>, Arc<str>);

impl Profiles {
    fn get(
        &mut self,
        feeds: &Path,
        topics: &[(String, Arc<Profile>)],
        stream: &str,
    ) -> Result<FolderProfile, String> {
        let folder = stream.split('/').next().unwrap_or_default().to_string();
        self.by_folder
            .entry(folder.clone())
            .or_insert_with(|| {
                // A raw-row topic's partition (`TOPIC/PARTITION`): its configured profile.
                if let Some((_, p)) = topics.iter().find(|(t, _)| *t == folder) {
                    return Ok((Arc::clone(p), Arc::from(p.provenance().to_string())));
                }
                let path = feeds.join(&folder).join(PROFILE_FILE);
                if !path.is_file() {
                    return Err(format!(
                        "a row of a department's export, and {} is not there to read it again (give the feeds folder; for a raw-row Kafka topic, its profile in [kafka.profiles])",
                        path.display()
                    ));
                }
                let p = Profile::load(&path).map_err(|e| e.to_string())?;
                let provenance = Arc::from(p.provenance().to_string());
                Ok((Arc::new(p), provenance))
            })
            .clone()
    }
}
