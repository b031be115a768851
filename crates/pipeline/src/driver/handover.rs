//! Between the reading loop and the applier: the batch being gathered (the [`Batcher`]) and the
//! bounded channel batches cross, with a count of the batches handed over and done, so that a
//! source can wait until everything it handed over has committed (a consumer group's revoke, a
//! worker's stop) — from the reading thread or from a callback inside a poll.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use tokio::sync::mpsc;

use super::{Batch, Batcher};
use crate::Ingested;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

#[derive(Default)]
struct Flow {
    sent: u64,
    done: u64,
    /// The applier stopped (failed or finished): nothing more will be done.
    applier_gone: bool,
}

/// The gathering batch and the channel to the applier. Batches carry each record's meta.
pub struct Handover<M> {
    gathering: Mutex<Batcher<(Ingested, M)>>,
    tx: Mutex<Option<mpsc::Sender<Batch<Vec<M>>>>>,
    flow: Mutex<Flow>,
    flow_changed: Condvar,
    /// Time spent waiting for the applier to take a batch (microseconds).
    wait_us: AtomicU64,
}

impl<M> Handover<M> {
    /// Batches of at most `batch_size` (or, with `linger`, once the first record has waited
    /// that long), sent on `tx`.
    pub fn new(
        batch_size: usize,
        linger: Option<Duration>,
        tx: mpsc::Sender<Batch<Vec<M>>>,
    ) -> Self {
        Handover {
            gathering: Mutex::new(Batcher::new(batch_size, linger)),
            tx: Mutex::new(Some(tx)),
            flow: Mutex::new(Flow::default()),
            flow_changed: Condvar::new(),
            wait_us: AtomicU64::new(0),
        }
    }

    /// Gather a record; returns the batch when it filled it.
    pub fn push(&self, record: (Ingested, M), now: Instant) -> Option<Vec<(Ingested, M)>> {
        lock(&self.gathering).push(record, now)
    }

    /// Whether the gathering batch should go although it is not full (it lingered).
    pub fn due(&self, now: Instant) -> bool {
        lock(&self.gathering).due(now)
    }

    /// Forget what is gathered (never handed over: it is read again).
    pub fn clear(&self) {
        lock(&self.gathering).clear();
    }

    /// Hand what is gathered to the applier.
    pub fn flush(&self) {
        let gathered = lock(&self.gathering).take();
        self.hand_over(gathered);
    }

    /// Hand a batch to the applier, waiting while the channel is full. If the applier is gone,
    /// the records stay uncommitted (read again) and [`Self::applier_gone`] says so.
    pub fn hand_over(&self, gathered: Vec<(Ingested, M)>) {
        if gathered.is_empty() {
            return;
        }
        let (items, meta): (Vec<Ingested>, Vec<M>) = gathered.into_iter().unzip();
        let batch = Batch { items, meta };
        let tx = lock(&self.tx).clone();
        let Some(tx) = tx else { return };
        lock(&self.flow).sent += 1;
        let t = Instant::now();
        let sent = tx.blocking_send(batch);
        self.wait_us
            .fetch_add(t.elapsed().as_micros() as u64, Ordering::Relaxed);
        if sent.is_err() {
            let mut f = lock(&self.flow);
            f.sent -= 1;
            f.applier_gone = true;
        }
    }

    /// No more batches: the applier ends once it has applied those in the channel.
    pub fn close(&self) {
        *lock(&self.tx) = None;
    }

    /// A batch handed over is done (committed, or failed): wake whoever waits for it.
    pub fn done(&self) {
        lock(&self.flow).done += 1;
        self.flow_changed.notify_all();
    }

    /// The applier stopped: nobody waits for it any more.
    pub fn set_applier_gone(&self) {
        lock(&self.flow).applier_gone = true;
        self.flow_changed.notify_all();
    }

    pub fn applier_gone(&self) -> bool {
        lock(&self.flow).applier_gone
    }

    /// Wait until every batch handed over is done (or the applier is gone), at most `within`.
    pub fn drain(&self, within: Duration) -> bool {
        let deadline = Instant::now() + within;
        let mut f = lock(&self.flow);
        while f.done < f.sent && !f.applier_gone {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            f = self
                .flow_changed
                .wait_timeout(f, left)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
        true
    }

    /// Time the reading side spent waiting for the applier to take a batch.
    pub fn waited(&self) -> Duration {
        Duration::from_micros(self.wait_us.load(Ordering::Relaxed))
    }
}
