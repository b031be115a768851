//! Running over file feeds: the feed folders as one [`RecordSource`] (a reader per folder), read
//! by the driver's one reading loop on a blocking thread (read, parse, merge by time) feeding
//! batches through a bounded channel to the applier, which commits one transaction per batch.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use doudi_model::ParseLimits;
use doudi_store::Store;
use serde::Serialize;
use tokio::sync::{mpsc, Notify};

use crate::apply::{BatchOutcome, Engine};
use crate::driver::{
    apply_batches, read_records, Batch, BatchHooks, CancellationToken, Handover, InvalidGuard,
    Polled, RawRecord, ReadOptions, RecordSource,
};
use crate::files::{scan_feeds, FeedSource, FileMarks, SourceFiles};
use crate::ingest::Ingested;
use crate::PipelineError;

/// How to run over a feeds folder.
#[derive(Clone, Debug)]
pub struct RunOptions {
    pub feeds_dir: PathBuf,
    /// Records per transaction.
    pub batch_size: usize,
    /// Batches read ahead of the applier (the bound on memory).
    pub channel_batches: usize,
    /// Read what is there and stop; otherwise keep watching for new lines and files.
    pub once: bool,
    /// How often to look for new data when not `once`.
    pub poll_interval: Duration,
    /// The invalid-ratio guard over each feed file (`feeds.max_invalid_ratio`).
    pub invalid: InvalidGuard,
}

/// Totals of a run: the batches' counts added up, with how many batches and how long.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct RunReport {
    #[serde(flatten)]
    pub totals: BatchOutcome,
    pub batches: u64,
    pub elapsed_ms: u64,
}

impl std::ops::Deref for RunReport {
    type Target = BatchOutcome;
    fn deref(&self) -> &BatchOutcome {
        &self.totals
    }
}

impl RunReport {
    /// Records per second over the run.
    pub fn rate(&self) -> f64 {
        if self.elapsed_ms == 0 {
            0.0
        } else {
            self.received as f64 * 1000.0 / self.elapsed_ms as f64
        }
    }
}

/// Told about progress (a progress bar, a log line).
pub trait Progress: Send + Sync {
    /// A pass starts with this many bytes to read.
    fn start(&self, _total_bytes: u64) {}
    /// A batch of this many bytes was committed.
    fn advance(&self, _bytes: u64, _report: &RunReport) {}
}

impl Progress for () {}

/// How often the background checkpoint runs while batches are committed.
const CHECKPOINT_EVERY: Duration = Duration::from_millis(1000);

type Positions = HashMap<String, (u64, u64)>;

/// Run over `opts.feeds_dir` until the feeds are read (`once`) or `stop` is cancelled.
pub async fn run_files(
    store: &Store,
    engine: Arc<Engine>,
    opts: &RunOptions,
    progress: &dyn Progress,
    stop: CancellationToken,
) -> Result<RunReport, PipelineError> {
    let started = Instant::now();
    let mut report = RunReport::default();
    // Stored positions, by source code then stream.
    let mut positions: HashMap<String, Positions> = HashMap::new();
    for ((source, stream), p) in store.positions().await? {
        positions
            .entry(source)
            .or_default()
            .insert(stream, (p.byte_offset, p.line));
    }
    // Checkpoint the write-ahead log beside the writer, after each commit, so that copying pages
    // into the database file (and its fsync) uses the other core instead of delaying the batches.
    let checkpoint_due = Arc::new(Notify::new());
    let checkpoint_stop = CancellationToken::new();
    let checkpointer = tokio::spawn({
        let store = store.clone();
        let due = checkpoint_due.clone();
        let stop = checkpoint_stop.clone();
        async move {
            loop {
                tokio::select! {
                    _ = due.notified() => {}
                    _ = stop.cancelled() => break,
                }
                // Not after every commit: a page rewritten by many batches is then copied once.
                tokio::select! {
                    _ = tokio::time::sleep(CHECKPOINT_EVERY) => {}
                    _ = stop.cancelled() => break,
                }
                if let Err(e) = store.checkpoint().await {
                    tracing::warn!(error = %e, "background checkpoint failed (the next commit will checkpoint)");
                }
            }
        }
    });
    let result = run_passes(
        store,
        engine.clone(),
        opts,
        progress,
        stop,
        &checkpoint_due,
        started,
        &mut report,
        &mut positions,
    )
    .await;
    checkpoint_stop.cancel();
    let _ = checkpointer.await;
    result?;
    report.elapsed_ms = started.elapsed().as_millis() as u64;
    // Misses past the households seen for the first time are timelines read back from the store
    // (`memory.timeline_facts` too small for the register's year).
    let cache = engine.timeline_cache_stats();
    tracing::info!(
        hits = cache.hits,
        misses = cache.misses,
        facts_held = cache.facts,
        cap = cache.cap,
        "timeline cache"
    );
    Ok(report)
}

#[allow(clippy::too_many_arguments)]
async fn run_passes(
    store: &Store,
    engine: Arc<Engine>,
    opts: &RunOptions,
    progress: &dyn Progress,
    stop: CancellationToken,
    checkpoint_due: &Notify,
    started: Instant,
    report: &mut RunReport,
    positions: &mut HashMap<String, Positions>,
) -> Result<(), PipelineError> {
    // Department exports read to their end in an earlier pass: not opened again while unchanged.
    let marks = FileMarks::default();
    loop {
        let sources = scan_feeds(&opts.feeds_dir)?;
        let total: u64 = sources
            .iter()
            .flat_map(|s| {
                let pos = positions.get(s.source.code());
                s.files.iter().map(move |(stream, path)| {
                    let len = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
                    let done = pos.and_then(|p| p.get(stream)).map(|p| p.0).unwrap_or(0);
                    len.saturating_sub(done)
                })
            })
            .sum();
        progress.start(total);
        let (tx, mut rx) = mpsc::channel::<Batch<Vec<()>>>(opts.channel_batches.max(1));
        let handover = Arc::new(Handover::new(opts.batch_size.max(1), None, tx));
        let reader = {
            let positions = positions.clone();
            let engine = engine.clone();
            let read = ReadOptions {
                wait: Duration::MAX,
                buffer: 1,
                guard: opts.invalid,
            };
            let once = opts.once;
            let stop = stop.clone();
            let marks = marks.clone();
            let handover = handover.clone();
            tokio::task::spawn_blocking(move || {
                let mut files = FileSource::new(sources, positions, &engine, once, marks);
                let read = read_records(&mut files, &handover, &read, &stop, |item| {
                    item.link_with(&engine.index())
                });
                handover.close();
                read.map(|_| files.positions)
            })
        };
        let hooks = FileHooks {
            checkpoint_due,
            progress,
        };
        let failure = apply_batches(
            store,
            &engine,
            &mut rx,
            &hooks,
            Some(&stop),
            report,
            started,
        )
        .await
        .err();
        drop(rx);
        let pass = reader.await.map_err(|_| PipelineError::ReaderGone)?;
        if let Some(e) = failure {
            return Err(e);
        }
        *positions = pass?;
        if opts.once || stop.is_cancelled() {
            break;
        }
        tokio::select! {
            _ = tokio::time::sleep(opts.poll_interval) => {}
            _ = stop.cancelled() => break,
        }
    }
    Ok(())
}

/// The feed folders as one record source: a reader per source folder (envelope lines, or a
/// department's exports through its profile; the HTTP push writes envelope files), each a stream
/// of the merge, read on demand.
struct FileSource {
    readers: Vec<FeedSource>,
    limits: ParseLimits,
    /// The positions reached, by source code then stream (what was released; the applier
    /// commits them with the effects): where the next pass starts.
    positions: HashMap<String, Positions>,
}

impl FileSource {
    fn new(
        sources: Vec<SourceFiles>,
        positions: HashMap<String, Positions>,
        engine: &Engine,
        once: bool,
        marks: FileMarks,
    ) -> Self {
        let limits = engine.limits;
        // Read a little past the limit so that an oversized line is seen as oversized.
        let cap = limits.max_event_bytes.saturating_add(1);
        let readers = sources
            .into_iter()
            .map(|s| {
                let pos = positions.get(s.source.code()).cloned().unwrap_or_default();
                FeedSource::new(s, pos, cap, once, marks.clone())
            })
            .collect();
        FileSource {
            readers,
            limits,
            positions,
        }
    }
}

impl RecordSource for FileSource {
    /// A reader's index (source folders in name order: ties between equal times go to the
    /// first).
    type Key = usize;
    type Meta = ();
    type Error = PipelineError;

    fn streams(&mut self) -> Vec<(usize, i64)> {
        (0..self.readers.len()).map(|i| (i, 0)).collect()
    }

    fn reads_on_demand(&self) -> bool {
        true
    }

    fn poll(&mut self, waiting: Option<&usize>) -> Result<Polled<usize, ()>, PipelineError> {
        let Some(&i) = waiting else {
            // No reader waits for its next record: every one is at its end.
            return Ok(Polled::Done);
        };
        Ok(match self.readers[i].next_item(&self.limits)? {
            Some(item) => Polled::Record {
                key: i,
                offset: 0,
                item,
                meta: (),
            },
            None => Polled::End(i),
        })
    }

    fn released(&mut self, item: &Ingested) {
        let rec = &item.record;
        let code = rec.source.code();
        if !self.positions.contains_key(code) {
            self.positions.insert(code.to_string(), Positions::new());
        }
        let Some(streams) = self.positions.get_mut(code) else {
            return;
        };
        let at = (rec.position.resume_at(), rec.line());
        match streams.get_mut(rec.stream.as_str()) {
            Some(p) => *p = at,
            None => {
                streams.insert(rec.stream.clone(), at);
            }
        }
    }

    fn broken(
        &self,
        _reader: &usize,
        rec: &RawRecord,
        invalid: usize,
        guard: InvalidGuard,
    ) -> PipelineError {
        PipelineError::BrokenFeed {
            stream: rec.stream.clone(),
            line: rec.line(),
            invalid,
            window: guard.window,
            ratio: guard.max_ratio,
        }
    }
}

/// What a file run does around each commit: the checkpointer is due, progress advances by the
/// batch's bytes. Files have no dead-letter topic (the table only).
struct FileHooks<'a> {
    checkpoint_due: &'a Notify,
    progress: &'a dyn Progress,
}

impl BatchHooks<Vec<()>> for FileHooks<'_> {
    fn committed(&self, batch: &Batch<Vec<()>>, _outcome: &BatchOutcome, report: &RunReport) {
        self.checkpoint_due.notify_one();
        let bytes = batch.items.iter().map(|i| i.record.position.bytes()).sum();
        self.progress.advance(bytes, report);
    }
}
