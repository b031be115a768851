//! Running over file feeds: a blocking reader thread (read, parse, merge by time) feeding batches
//! through a bounded channel to the applier, which commits one transaction per batch.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use doudi_store::Store;
use serde::Serialize;
use tokio::sync::{mpsc, Notify};

use crate::apply::{BatchOutcome, Engine};
use crate::driver::{
    apply_batches, Batch, BatchHooks, Batcher, CancellationToken, InvalidGuard, InvalidWindow,
    Merger,
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
        engine,
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
        let (tx, mut rx) = mpsc::channel::<Batch<()>>(opts.channel_batches.max(1));
        let reader = {
            let positions = positions.clone();
            let engine = engine.clone();
            let batch_size = opts.batch_size.max(1);
            let once = opts.once;
            let guard = opts.invalid;
            let stop = stop.clone();
            let marks = marks.clone();
            tokio::task::spawn_blocking(move || {
                read_pass(
                    sources, positions, &engine, batch_size, once, guard, tx, stop, marks,
                )
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

/// One pass over every source: read, parse, merge the sources by event time, send batches.
/// Returns the positions reached (what was sent; the applier commits them with the effects).
#[allow(clippy::too_many_arguments)]
fn read_pass(
    sources: Vec<SourceFiles>,
    mut positions: HashMap<String, Positions>,
    engine: &Engine,
    batch_size: usize,
    once: bool,
    guard: InvalidGuard,
    tx: mpsc::Sender<Batch<()>>,
    stop: CancellationToken,
    marks: FileMarks,
) -> Result<HashMap<String, Positions>, PipelineError> {
    // Read a little past the limit so that an oversized line is seen as oversized.
    let limits = engine.limits;
    // Parse, normalise and link here, on the reader's core, ahead of the applier.
    let link = |mut item: Ingested| {
        item.link_with(&engine.index());
        item
    };
    let cap = limits.max_event_bytes.saturating_add(1);
    let mut readers: Vec<FeedSource> = sources
        .into_iter()
        .map(|s| {
            let pos = positions.get(s.source.code()).cloned().unwrap_or_default();
            FeedSource::new(s, pos, cap, once, marks.clone())
        })
        .collect();
    // The sources merged by event time (`crate::driver::Merger`): each reader offers its next
    // record once the one before went out, and is marked at its end when it has no more.
    let mut merger: Merger<usize, Ingested> = Merger::new(Duration::MAX, 1);
    let now = Instant::now();
    for (i, r) in readers.iter_mut().enumerate() {
        merger.assign(i, 0, now);
        offer(&mut merger, i, r.next_item(&limits)?.map(link));
    }
    let mut flows = Vec::new();
    let mut windows: HashMap<String, InvalidWindow> = HashMap::new();
    let mut batcher = Batcher::new(batch_size, None);
    loop {
        if stop.is_cancelled() {
            return Ok(positions);
        }
        // The head with the earliest event time; a refused record (no trusted time) goes first.
        let Some((i, item)) = merger.pop(&mut flows) else {
            break;
        };
        let rec = &item.record;
        let window = windows
            .entry(rec.stream.clone())
            .or_insert_with(|| InvalidWindow::new(guard.window));
        if let Some(invalid) = window.record(item.result.is_err(), guard.max_ratio) {
            // Nothing gathered is handed over: it is read again after the fix.
            return Err(PipelineError::BrokenFeed {
                stream: rec.stream.clone(),
                line: rec.line(),
                invalid,
                window: guard.window,
                ratio: guard.max_ratio,
            });
        }
        positions
            .entry(rec.source.code().to_string())
            .or_default()
            .insert(rec.stream.clone(), (rec.position.resume_at(), rec.line()));
        let full = batcher.push(item, now);
        offer(&mut merger, i, readers[i].next_item(&limits)?.map(link));
        if let Some(items) = full {
            if tx.blocking_send(Batch { items, meta: () }).is_err() {
                return Ok(positions);
            }
        }
    }
    if !batcher.is_empty() {
        let _ = tx.blocking_send(Batch {
            items: batcher.take(),
            meta: (),
        });
    }
    Ok(positions)
}

/// What a file run does around each commit: the checkpointer is due, progress advances by the
/// batch's bytes. Files have no dead-letter topic (the table only).
struct FileHooks<'a> {
    checkpoint_due: &'a Notify,
    progress: &'a dyn Progress,
}

impl BatchHooks<()> for FileHooks<'_> {
    fn committed(&self, batch: &Batch<()>, _outcome: &BatchOutcome, report: &RunReport) {
        self.checkpoint_due.notify_one();
        let bytes = batch.items.iter().map(|i| i.record.position.bytes()).sum();
        self.progress.advance(bytes, report);
    }
}

/// Give reader `i`'s next record to the merger (keyed by its event time), or mark it at its end.
fn offer(merger: &mut Merger<usize, Ingested>, i: usize, next: Option<Ingested>) {
    match next {
        Some(item) => {
            let time = item
                .result
                .as_ref()
                .ok()
                .map(|e| e.occurred_at.timestamp_micros());
            merger.push(&i, 0, time, item);
        }
        None => merger.mark_end(&i),
    }
}
