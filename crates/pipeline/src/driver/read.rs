//! The one reading loop of every driver, whatever its [`RecordSource`]: poll records, feed the
//! event-time [`Merger`], keep the invalid-ratio guard per stream, release into the batch being
//! gathered, hand batches to the applier's channel (by size, or once they linger), and stop when
//! the token is cancelled, the source is read (`Polled::Done`) or the applier is gone.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use super::source::{Assignment, Polled, RecordSource};
use super::{CancellationToken, Handover, InvalidGuard, InvalidWindow, Merger, StreamKey};
use crate::Ingested;

/// How the loop merges and guards.
#[derive(Clone, Copy, Debug)]
pub struct ReadOptions {
    /// How long a stream that is neither caught up nor delivering holds the merge back
    /// (`kafka.align_wait_ms`; files: never overdue, `Duration::MAX`).
    pub wait: Duration,
    /// Records the merge holds of one stream before its fetching is paused (`kafka.align_buffer`).
    pub buffer: usize,
    /// The invalid-ratio guard over each stream (by the record's stream name).
    pub guard: InvalidGuard,
}

/// What the loop saw, for the stop log.
#[derive(Clone, Copy, Debug, Default)]
pub struct ReadStats {
    /// Time the merge held records back, waiting for a stream's next record.
    pub merge_wait: Duration,
}

/// Read `source` until it is read (`Polled::Done`), `stop` is cancelled or the applier is gone;
/// what is gathered is then handed over. `link` links each record ahead of the applier. Returns
/// the source's error when the invalid-ratio guard trips (nothing gathered is handed over: it is
/// read again after the fix) or a poll fails. Blocking: run it on a thread of its own.
pub fn read_records<S: RecordSource>(
    source: &mut S,
    handover: &Handover<S::Meta>,
    opts: &ReadOptions,
    stop: &CancellationToken,
    mut link: impl FnMut(&mut Ingested),
) -> Result<ReadStats, S::Error> {
    let mut merger: Merger<S::Key, (Ingested, S::Meta)> = Merger::new(opts.wait, opts.buffer);
    let now = Instant::now();
    for (key, next) in source.streams() {
        merger.assign(key, next, now);
    }
    let on_demand = source.reads_on_demand();
    let guard = opts.guard;
    let mut windows: HashMap<String, InvalidWindow> = HashMap::new();
    let mut flows = Vec::new();
    let mut stats = ReadStats::default();
    // Which stream the merge waits on while it holds records back, and since when.
    let mut held_by: Option<(S::Key, Instant)> = None;
    while !stop.is_cancelled() {
        let waiting = if on_demand {
            merger.holding().cloned()
        } else {
            None
        };
        let polled = source.poll(waiting.as_ref())?;
        // A rebalance runs inside a poll: a record it delivered with an assignment is this
        // worker's only once the assignment is known here.
        for change in source.assignment() {
            match change {
                Assignment::Assigned { key, next } => merger.assign(key, next, Instant::now()),
                Assignment::Revoked(key) => {
                    windows.remove(&key.describe());
                    let dropped = merger.revoke(&key);
                    if dropped > 0 {
                        tracing::debug!(stream = %key.describe(), dropped, "read-ahead of a revoked stream dropped (its next owner reads it)");
                    }
                }
            }
        }
        match polled {
            Polled::Record {
                key,
                offset,
                mut item,
                meta,
            } => {
                let Some(next) = merger.next_offset(&key) else {
                    // Not (or no longer) this worker's: never applied here; its owner reads it.
                    tracing::debug!(stream = %key.describe(), offset, "record of a stream not assigned here left to its owner");
                    continue;
                };
                if !on_demand && offset > next {
                    tracing::error!(
                        stream = %key.describe(),
                        expected = next,
                        got = offset,
                        "records missing from the stream (removed by retention or compaction before they were read)"
                    );
                }
                link(&mut item);
                let time = item
                    .result
                    .as_ref()
                    .ok()
                    .map(|e| e.occurred_at.timestamp_micros());
                if let Some(fetch) = merger.push(&key, offset, time, (item, meta)) {
                    source.flow(fetch);
                }
            }
            Polled::End(key) => merger.mark_end(&key),
            Polled::Idle => {}
            Polled::Done => break,
        }
        // Reading on demand, every stream has its head before anything goes.
        if on_demand && merger.holding().is_some() {
            continue;
        }
        // Release what the merge allows into the gathering batch.
        loop {
            let popped = match merger.pop(&mut flows) {
                Some(p) => p,
                None => {
                    // Empty streams caught up hold nobody back; one silent too long neither.
                    merger.refresh(Instant::now(), |k, next| source.caught_up(k, next));
                    match merger.pop(&mut flows) {
                        Some(p) => p,
                        None => break,
                    }
                }
            };
            for fetch in flows.drain(..) {
                source.flow(fetch);
            }
            let (key, (item, meta)) = popped;
            let rec = &item.record;
            if !windows.contains_key(rec.stream.as_str()) {
                windows.insert(rec.stream.clone(), InvalidWindow::new(guard.window));
            }
            let tripped = windows
                .get_mut(rec.stream.as_str())
                .and_then(|w| w.record(item.result.is_err(), guard.max_ratio));
            if let Some(invalid) = tripped {
                // Nothing gathered is handed over: it is read again after the fix.
                handover.clear();
                return Err(source.broken(&key, rec, invalid, guard));
            }
            source.released(&item);
            if let Some(full) = handover.push((item, meta), Instant::now()) {
                handover.hand_over(full);
                // Time spent handing over (a busy applier) does not count against a stream.
                merger.restart_waits(Instant::now());
                if handover.applier_gone() {
                    return Ok(stats);
                }
            }
            if on_demand && merger.holding().is_some() {
                break;
            }
        }
        if !on_demand {
            note_holding(&merger, &mut held_by, &mut stats);
        }
        if handover.due(Instant::now()) {
            handover.flush();
            merger.restart_waits(Instant::now());
        }
        if handover.applier_gone() {
            return Ok(stats);
        }
        source.tick();
    }
    handover.flush();
    Ok(stats)
}

/// Which stream holds the merge back now, and for how long it did (summed up in `stats`; an
/// idle merge, holding nothing, waits on nobody).
fn note_holding<K: StreamKey, T>(
    merger: &Merger<K, T>,
    held_by: &mut Option<(K, Instant)>,
    stats: &mut ReadStats,
) {
    let holding = if merger.held() > 0 {
        merger.holding()
    } else {
        None
    };
    if held_by.as_ref().map(|(k, _)| k) == holding {
        return;
    }
    if let Some((k, since)) = held_by.take() {
        let waited = since.elapsed();
        stats.merge_wait += waited;
        if waited >= Duration::from_millis(50) {
            tracing::debug!(stream = %k.describe(), ms = waited.as_millis() as u64, held = merger.held(), next = ?merger.next_offset(&k), "a stream held the event-time merge back");
        }
    }
    *held_by = holding.map(|k| (k.clone(), Instant::now()));
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;
    use std::sync::Arc;

    use doudi_model::{ParseLimits, Source};
    use tokio::sync::mpsc;

    use super::*;
    use crate::driver::{Batch, Fetch, Position, RawRecord};
    use crate::{ingest_record, PipelineError};

    /// A stream: `(topic, partition)`, as Kafka's.
    type Key = (Arc<str>, i32);

    fn key(p: i32) -> Key {
        (Arc::from("t"), p)
    }

    /// A record at `offset` of partition `p`: an event at `minute` past midnight, or (None) a
    /// line that is no event (refused at ingest, without a time). Its meta is its name.
    fn record(p: i32, offset: i64, minute: Option<u32>) -> Ingested {
        let bytes = match minute {
            Some(m) => format!(
                r#"{{"event_id":"e{p}-{offset}","source":"civil_registry","kind":"death","occurred_at":"2026-03-01T{:02}:{:02}:00Z","subject":{{"name":"张三"}},"data":{{"died_on":"2026-02-28"}}}}"#,
                m / 60,
                m % 60
            )
            .into_bytes(),
            None => b"not an event".to_vec(),
        };
        let raw = RawRecord {
            source: Source::CivilRegistry,
            stream: format!("t/{p}"),
            position: Position::Kafka {
                topic: Arc::from("t"),
                partition: p,
                offset,
            },
            full_len: bytes.len() as u64,
            bytes,
        };
        ingest_record(raw, &ParseLimits::default())
    }

    /// A fake source: each stream's records (minute or refused, name); delivered in `order`
    /// (stream indexes, one record a poll; on demand: whichever stream the loop waits on).
    struct Fake {
        streams: Vec<VecDeque<(Option<u32>, &'static str)>>,
        next: Vec<i64>,
        order: VecDeque<usize>,
        on_demand: bool,
        /// Streams caught up once read out, from this poll on (before it: held back).
        caught_up_from: usize,
        polls: usize,
        /// Cancel this token at this poll.
        cancel_at: Option<(usize, CancellationToken)>,
        /// Revoke this stream at this poll.
        revoke_at: Option<(usize, usize)>,
        revoked: Vec<usize>,
        /// Endless: a stream read out delivers again (never caught up).
        endless: bool,
        released: Vec<(&'static str, usize)>,
        flows: Vec<Fetch<Key>>,
    }

    impl Fake {
        fn new(streams: Vec<Vec<(Option<u32>, &'static str)>>) -> Self {
            let n = streams.len();
            Fake {
                streams: streams.into_iter().map(VecDeque::from).collect(),
                next: vec![0; n],
                order: VecDeque::new(),
                on_demand: false,
                caught_up_from: 0,
                polls: 0,
                cancel_at: None,
                revoke_at: None,
                revoked: Vec::new(),
                endless: false,
                released: Vec::new(),
                flows: Vec::new(),
            }
        }

        fn take(&mut self, i: usize) -> Polled<Key, &'static str> {
            if self.endless && self.streams[i].is_empty() {
                self.streams[i].push_back((Some(self.polls as u32 % 1000), "more"));
            }
            match self.streams[i].pop_front() {
                Some((minute, name)) => {
                    let offset = self.next[i];
                    self.next[i] += 1;
                    Polled::Record {
                        key: key(i as i32),
                        offset,
                        item: record(i as i32, offset, minute),
                        meta: name,
                    }
                }
                None if self.on_demand => Polled::End(key(i as i32)),
                None => Polled::Idle,
            }
        }
    }

    impl RecordSource for Fake {
        type Key = Key;
        type Meta = &'static str;
        type Error = PipelineError;

        fn streams(&mut self) -> Vec<(Key, i64)> {
            (0..self.streams.len())
                .map(|i| (key(i as i32), 0))
                .collect()
        }

        fn reads_on_demand(&self) -> bool {
            self.on_demand
        }

        fn poll(
            &mut self,
            waiting: Option<&Key>,
        ) -> Result<Polled<Key, &'static str>, PipelineError> {
            self.polls += 1;
            if let Some((at, stop)) = &self.cancel_at {
                if self.polls >= *at {
                    stop.cancel();
                }
            }
            if self.on_demand {
                return Ok(match waiting {
                    Some(k) => self.take(k.1 as usize),
                    None => Polled::Done,
                });
            }
            match self.order.pop_front() {
                Some(i) => Ok(self.take(i)),
                None if self.endless => Ok(self.take(self.polls % self.streams.len())),
                None => Ok(Polled::Idle),
            }
        }

        fn assignment(&mut self) -> Vec<Assignment<Key>> {
            match self.revoke_at {
                Some((at, i)) if self.polls == at => {
                    self.revoked.push(i);
                    vec![Assignment::Revoked(key(i as i32))]
                }
                _ => Vec::new(),
            }
        }

        fn caught_up(&self, k: &Key, next: i64) -> bool {
            let i = k.1 as usize;
            !self.endless
                && self.polls >= self.caught_up_from
                && self.streams[i].is_empty()
                && next == self.next[i]
        }

        fn flow(&mut self, fetch: Fetch<Key>) {
            self.flows.push(fetch);
        }

        fn released(&mut self, item: &Ingested) {
            let name = match item.result {
                Ok(_) => "event",
                Err(_) => "refused",
            };
            self.released.push((name, self.polls));
        }

        fn broken(
            &self,
            k: &Key,
            rec: &RawRecord,
            invalid: usize,
            guard: InvalidGuard,
        ) -> PipelineError {
            PipelineError::BrokenFeed {
                stream: k.describe(),
                line: rec.line(),
                invalid,
                window: guard.window,
                ratio: guard.max_ratio,
            }
        }
    }

    fn opts() -> ReadOptions {
        ReadOptions {
            wait: Duration::from_secs(3600),
            buffer: 100,
            guard: InvalidGuard::default(),
        }
    }

    /// A batch with each record's name.
    type Named = Batch<Vec<&'static str>>;

    /// Run the loop over `fake` until it ends, on a thread of its own; an applier takes each
    /// batch (the names and positions of its records) and says it is done.
    fn run(
        mut fake: Fake,
        batch_size: usize,
        opts: ReadOptions,
        stop: CancellationToken,
    ) -> (Result<ReadStats, PipelineError>, Fake, Vec<Named>) {
        let (tx, mut rx) = mpsc::channel(1000);
        let handover = Arc::new(Handover::new(batch_size, None, tx));
        let reader = {
            let handover = handover.clone();
            std::thread::spawn(move || {
                let r = read_records(&mut fake, &handover, &opts, &stop, |_| {});
                handover.close();
                (r, fake)
            })
        };
        let mut batches = Vec::new();
        while let Some(b) = rx.blocking_recv() {
            batches.push(b);
            handover.done();
        }
        assert!(
            handover.drain(Duration::from_secs(5)),
            "every batch handed over is done"
        );
        let (r, fake) = reader.join().unwrap();
        (r, fake, batches)
    }

    fn names(batches: &[Named]) -> Vec<&'static str> {
        batches
            .iter()
            .flat_map(|b| b.meta.iter().copied())
            .collect()
    }

    fn data() -> Vec<Vec<(Option<u32>, &'static str)>> {
        vec![
            vec![
                (Some(5), "a 5"),
                (Some(1), "a 1 (late in its stream)"),
                (Some(9), "a 9"),
            ],
            vec![(Some(5), "b 5"), (None, "b refused"), (Some(6), "b 6")],
            vec![(Some(2), "c 2"), (Some(20), "c 20")],
        ]
    }

    const MERGED: [&str; 8] = [
        "c 2",
        "a 5",
        "a 1 (late in its stream)",
        "b 5",
        "b refused",
        "b 6",
        "a 9",
        "c 20",
    ];

    #[test]
    fn records_go_out_in_event_time_order_whatever_order_the_polls_deliver_them() {
        for order in [
            vec![0, 0, 0, 1, 1, 1, 2, 2],
            vec![2, 1, 0, 2, 1, 0, 1, 0],
            vec![1, 1, 1, 2, 0, 0, 2, 0],
        ] {
            let mut fake = Fake::new(data());
            fake.order = order.clone().into();
            // Endless polling would never end: stop once everything has been delivered.
            let stop = CancellationToken::new();
            fake.cancel_at = Some((40, stop.clone()));
            let (r, _, batches) = run(fake, 3, opts(), stop);
            assert!(r.is_ok());
            assert_eq!(names(&batches), MERGED, "delivered in {order:?}");
            // Batches of three, the last one what was gathered at the stop.
            let sizes: Vec<usize> = batches.iter().map(|b| b.items.len()).collect();
            assert_eq!(sizes, [3, 3, 2]);
        }
    }

    #[test]
    fn a_source_read_on_demand_merges_the_same_and_ends_when_every_stream_has() {
        let mut fake = Fake::new(data());
        fake.on_demand = true;
        let (r, fake, batches) = run(fake, 3, opts(), CancellationToken::new());
        assert!(r.is_ok());
        assert_eq!(names(&batches), MERGED);
        // One record released per refill: never more than one poll ahead of the merge.
        assert_eq!(fake.released.len(), 8);
        assert!(fake.flows.is_empty());
    }

    #[test]
    fn a_stream_not_caught_up_holds_the_others_back_until_it_is() {
        // Stream 1 delivers nothing; stream 0's records wait until stream 1 is caught up.
        let mut fake = Fake::new(vec![vec![(Some(1), "x"), (Some(2), "y")], vec![]]);
        fake.order = vec![0, 0].into();
        fake.caught_up_from = 10;
        let stop = CancellationToken::new();
        fake.cancel_at = Some((15, stop.clone()));
        let (r, fake, batches) = run(fake, 10, opts(), stop);
        assert!(r.is_ok());
        assert_eq!(names(&batches), ["x", "y"]);
        assert!(
            fake.released.iter().all(|(_, poll)| *poll >= 10),
            "released before the silent stream was caught up: {:?}",
            fake.released
        );
    }

    #[test]
    fn a_silent_stream_holds_the_others_back_only_for_the_wait() {
        let mut fake = Fake::new(vec![vec![(Some(1), "x")], vec![]]);
        fake.order = vec![0].into();
        fake.caught_up_from = usize::MAX;
        let stop = CancellationToken::new();
        let o = ReadOptions {
            wait: Duration::from_millis(30),
            ..opts()
        };
        let canceller = {
            let stop = stop.clone();
            std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(300));
                stop.cancel();
            })
        };
        let (r, fake, batches) = run(fake, 10, o, stop);
        canceller.join().unwrap();
        assert!(r.is_ok());
        assert_eq!(names(&batches), ["x"]);
        assert_eq!(fake.released.len(), 1);
    }

    #[test]
    fn a_cancelled_token_stops_the_loop_mid_stream_and_hands_over_what_went_out() {
        let mut fake = Fake::new(vec![vec![], vec![]]);
        fake.endless = true;
        // The merge never waits: both streams always deliver (they are never caught up).
        let stop = CancellationToken::new();
        fake.cancel_at = Some((500, stop.clone()));
        let (r, fake, batches) = run(fake, 16, opts(), stop);
        assert!(r.is_ok());
        assert_eq!(
            fake.polls, 500,
            "the loop stops at the first turn after the cancel"
        );
        // Everything released was handed over (the last batch partial), nothing else.
        let handed: usize = batches.iter().map(|b| b.items.len()).sum();
        assert_eq!(handed, fake.released.len());
        assert!(handed > 0 && handed < 500);
    }

    #[test]
    fn positions_reach_the_applier_in_each_stream_s_order_as_a_prefix_of_the_merge() {
        let mut fake = Fake::new(data());
        fake.on_demand = true;
        let (_, _, batches) = run(fake, 2, opts(), CancellationToken::new());
        // What a commit hook records after each batch: each stream's next position.
        let mut committed: std::collections::BTreeMap<String, u64> = Default::default();
        let mut after_each = Vec::new();
        for b in &batches {
            for item in &b.items {
                let p = &item.record.position;
                let next = committed.entry(p.kafka_stream().unwrap()).or_insert(0);
                assert_eq!(*next, p.start(), "in its stream's order, none skipped");
                *next = p.resume_at();
            }
            after_each.push(committed.clone());
        }
        let last = after_each.last().unwrap();
        assert_eq!(
            last.iter()
                .map(|(k, v)| (k.as_str(), *v))
                .collect::<Vec<_>>(),
            [("t/0", 3), ("t/1", 3), ("t/2", 2)]
        );
        // After the first batch ("c 2", "a 5"): stream 1 has nothing committed yet.
        assert_eq!(after_each[0].get("t/1"), None);
        assert_eq!(after_each[0].get("t/2"), Some(&1));
    }

    #[test]
    fn a_broken_stream_stops_the_loop_and_nothing_gathered_is_handed_over() {
        let refused: Vec<(Option<u32>, &'static str)> = vec![(None, "bad"); 10];
        let mut fake = Fake::new(vec![vec![(Some(1), "ok")], refused]);
        fake.on_demand = true;
        let o = ReadOptions {
            guard: InvalidGuard {
                max_ratio: 0.5,
                window: 4,
            },
            ..opts()
        };
        let (r, _, batches) = run(fake, 100, o, CancellationToken::new());
        match r {
            Err(PipelineError::BrokenFeed {
                stream, invalid, ..
            }) => {
                assert_eq!(stream, "t/1");
                assert_eq!(invalid, 4);
            }
            other => panic!("{other:?}"),
        }
        assert!(
            batches.is_empty(),
            "the gathered batch is read again after the fix"
        );
    }

    #[test]
    fn a_revoked_stream_s_read_ahead_is_dropped_and_its_records_no_longer_go_out() {
        // Stream 1 is revoked once its first record is held (stream 0 had not delivered).
        let mut fake = Fake::new(vec![
            vec![(Some(5), "a 5")],
            vec![(Some(1), "b 1"), (Some(2), "b 2")],
        ]);
        fake.order = vec![1, 0, 1].into();
        fake.revoke_at = Some((2, 1));
        let stop = CancellationToken::new();
        fake.cancel_at = Some((10, stop.clone()));
        let (r, fake, batches) = run(fake, 10, opts(), stop);
        assert!(r.is_ok());
        assert_eq!(fake.revoked, [1]);
        assert_eq!(names(&batches), ["a 5"]);
    }
}
