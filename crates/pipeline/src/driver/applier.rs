//! The one applier of every driver: batches commit one at a time, in the order they were
//! gathered, each retried afresh with backoff while the database is away (`super::retry`). Before
//! a batch commits, its source's hook runs (Kafka: its refused records to the dead-letter topic,
//! acknowledged); once it has committed, the source is told (positions to the broker, progress).
//!
//! On PostgreSQL, while a batch finishes (reads, assesses, writes, commits), the next one, if it is
//! already waiting, is staged on a second connection (`stage_batch`: its events and link decisions
//! inserted), so a backlog keeps two database connections busy. A staged batch finishes only
//! after the one before it committed; if that one failed, the staged one is rolled back and staged
//! again after it (its events' `seq` must follow). SQLite has one writer at a time: there batches
//! are staged and finished in turn.

use std::future::Future;
use std::time::Instant;

use doudi_store::Store;
use tokio::sync::mpsc;
use tracing::Instrument;

use super::retry::{self, Backoff};
use super::CancellationToken;
use crate::apply::{apply_batch, stage_batch, BatchOutcome, Engine, StagedBatch};
use crate::{Ingested, PipelineError, RunReport};

/// A batch of ingested records, with what its source keeps beside them (Kafka: each record's
/// message details; files: nothing).
#[derive(Debug)]
pub struct Batch<M> {
    pub items: Vec<Ingested>,
    pub meta: M,
}

/// What a source does around its batches' commits.
pub trait BatchHooks<M>: Sync {
    /// Before the batch commits — in its turn, or while the one before it finishes: send its
    /// refused records to the source's dead-letter topic, where it has one, and wait until they
    /// are acknowledged (`super::dead_letter`). Files have only the table: nothing to do.
    fn before_commit(&self, _batch: &Batch<M>) -> impl Future<Output = ()> + Send {
        async {}
    }
    /// The batch committed with `outcome`; `report` holds the run's totals so far. The batch is
    /// done.
    fn committed(&self, _batch: &Batch<M>, _outcome: &BatchOutcome, _report: &RunReport) {}
    /// The batch taken from the channel failed (not transiently): the driver stops.
    fn failed(&self) {}
}

/// A batch taken from the channel, with what was done of it ahead of its turn.
struct Pending<M> {
    batch: Batch<M>,
    /// Its source's hook ran (its refused records are on the topic).
    hooked: bool,
    /// Staged while the batch before it finished.
    staged: Option<StagedBatch>,
}

/// Apply the batches of `rx` until it closes, a batch fails (not transiently), or `stop` is
/// cancelled (checked after each commit and during every wait for the database; a batch staged
/// ahead, or one waiting for the database, is then rolled back, uncommitted).
/// `report` gathers the totals.
pub async fn apply_batches<M: Send + Sync, H: BatchHooks<M>>(
    store: &Store,
    engine: &Engine,
    rx: &mut mpsc::Receiver<Batch<M>>,
    hooks: &H,
    stop: Option<&CancellationToken>,
    report: &mut RunReport,
    started: Instant,
) -> Result<(), PipelineError> {
    let overlap = store.backend() == "postgres";
    let mut carried: Option<Pending<M>> = None;
    loop {
        let pending = match carried.take() {
            Some(p) => p,
            None => match rx.recv().await {
                Some(batch) => Pending {
                    batch,
                    hooked: false,
                    staged: None,
                },
                None => return Ok(()),
            },
        };
        let span = tracing::info_span!("batch", records = pending.batch.items.len());
        let Pending {
            batch,
            hooked,
            staged,
        } = pending;
        let step = Step {
            store,
            engine,
            hooks,
            stop,
        };
        let r = step
            .apply_one(&batch, hooked, staged, (overlap, &mut *rx), report, started)
            .instrument(span)
            .await;
        carried = match r {
            // Stopped while the database was away: the batch is not applied (read again).
            Err(PipelineError::Stopped) => return Ok(()),
            r => r.inspect_err(|_| hooks.failed())?,
        };
        if stop.is_some_and(CancellationToken::is_cancelled) {
            return Ok(());
        }
    }
}

struct Step<'a, H> {
    store: &'a Store,
    engine: &'a Engine,
    hooks: &'a H,
    /// Ends a wait for the database at once (`retry`).
    stop: Option<&'a CancellationToken>,
}

impl<H> Step<'_, H> {
    /// Apply one batch; with `overlap`, stage the next batch from `rx` (if one is waiting) while
    /// this one finishes, and return it. Once this one has committed, the source is told at once,
    /// without waiting for the next one's staging to end.
    async fn apply_one<M: Send + Sync>(
        &self,
        batch: &Batch<M>,
        hooked: bool,
        staged: Option<StagedBatch>,
        (overlap, rx): (bool, &mut mpsc::Receiver<Batch<M>>),
        report: &mut RunReport,
        started: Instant,
    ) -> Result<Option<Pending<M>>, PipelineError>
    where
        H: BatchHooks<M>,
    {
        let (store, engine) = (self.store, self.engine);
        let t0 = Instant::now();
        if !hooked {
            self.hooks.before_commit(batch).await;
        }
        // Records consumed, dead letters, stage latencies and warnings are counted by
        // `apply_batch` / `StagedBatch::finish` once the batch has committed.
        let staged = match staged {
            Some(s) => Some(s),
            None if overlap => Some(
                retry::retry("staging a batch", Backoff::default(), self.stop, || {
                    stage_batch(store, engine, &batch.items)
                })
                .await?,
            ),
            None => None,
        };
        let next = if overlap { rx.try_recv().ok() } else { None };
        let mut stage_next = Box::pin(async {
            match &next {
                Some(b) => Some(self.stage_ahead(b).await),
                None => None,
            }
        });
        // What staging the next batch gave, once it has ended.
        let mut ahead: Option<Option<Option<StagedBatch>>> = None;
        let outcome = match staged {
            Some(staged) => {
                let finish = staged.finish(engine);
                tokio::pin!(finish);
                let finished = loop {
                    tokio::select! {
                        r = &mut finish => break r,
                        s = &mut stage_next, if ahead.is_none() => ahead = Some(s),
                    }
                };
                match finished {
                    Ok(o) => o,
                    Err(e) => {
                        // The next batch's events were numbered after this one's: once its
                        // staging has ended, roll it back, and stage it again once this one has
                        // committed (its hook has run either way).
                        if ahead.take().is_none() {
                            drop(stage_next.as_mut().await);
                        }
                        ahead = Some(next.as_ref().map(|_| None));
                        retry::retry_after("a batch", e, Backoff::default(), self.stop, || {
                            apply_batch(store, engine, &batch.items)
                        })
                        .await?
                    }
                }
            }
            None => {
                retry::retry("a batch", Backoff::default(), self.stop, || {
                    apply_batch(store, engine, &batch.items)
                })
                .await?
            }
        };
        report.totals.add(&outcome);
        report.batches += 1;
        report.elapsed_ms = started.elapsed().as_millis() as u64;
        if outcome.dead_letters > 0 {
            tracing::warn!(
                count = outcome.dead_letters,
                reasons = ?outcome.dead_by_reason,
                "records refused at ingest went to dead letters"
            );
        }
        tracing::debug!(
            received = outcome.received,
            accepted = outcome.accepted,
            ms = t0.elapsed().as_secs_f64() * 1000.0,
            "batch committed"
        );
        self.hooks.committed(batch, &outcome, report);
        let next_staged = match ahead {
            Some(s) => {
                drop(stage_next);
                s
            }
            None => stage_next.await,
        };
        Ok(next.map(|batch| Pending {
            batch,
            hooked: next_staged.is_some(),
            staged: next_staged.flatten(),
        }))
    }

    /// Run the next batch's hook and stage it, while the batch before it finishes. A staging
    /// failure is left for its turn, where it is retried: returns the staged batch if it was.
    async fn stage_ahead<M: Send + Sync>(&self, batch: &Batch<M>) -> Option<StagedBatch>
    where
        H: BatchHooks<M>,
    {
        self.hooks.before_commit(batch).await;
        match stage_batch(self.store, self.engine, &batch.items).await {
            Ok(s) => Some(s),
            Err(e) => {
                tracing::warn!(error = %e, "staging the next batch ahead failed; it is tried again in its turn");
                None
            }
        }
    }
}
