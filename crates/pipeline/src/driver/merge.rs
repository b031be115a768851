//! The event-time merger of every record source: records are applied in the order of their
//! `occurred_at`, merged across the streams a driver reads (the files of each source folder, every
//! assigned partition of the feed topics), not in the order reads or fetches happen to deliver
//! them.
//!
//! One person's records arrive in different streams (a death from the civil registry, the income
//! drop it explains from employment), and a household's risk is assessed after each of its
//! records: in delivery order, the same feeds could raise a warning in one run and none in another.
//! The merger keeps each stream's records in their own order and releases the earliest head among
//! them, but only once every stream either has a head or has been read to its end, so no earlier
//! record can still be on its way. Ties go to the lower stream key, and a record without a time
//! (refused at ingest) goes out at once.
//!
//! This is a k-way merge whose whole state is each stream's next position. Because a batch is a
//! prefix of what the merger released and its positions commit with its effects, a driver
//! restarted from the stored positions — after a crash, a rebalance or a deploy — continues the
//! very same merge: over the same records the outcome is the same, however often it was
//! interrupted.
//!
//! Two bounds keep it live and small where a stream can go quiet (Kafka). A stream that has
//! neither a head nor reached its end for `wait` (its leader is down, say) stops holding the
//! others back until it delivers again: lateness is then logged, and that record's order is the
//! fetch's. And a stream holding more than `buffer` records is reported for pausing (the caller
//! pauses its fetching) until it drains. A file reader always has its next record or knows it is
//! at its end, so neither bound ever applies to files.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A stream's key: its order breaks ties between equal times.
pub trait StreamKey: Ord + Clone {
    /// How logs name the stream (never personal data).
    fn describe(&self) -> String;
}

/// A Kafka partition: `(topic, partition)`.
impl StreamKey for (Arc<str>, i32) {
    fn describe(&self) -> String {
        format!("{}/{}", self.0, self.1)
    }
}

/// A reader's index among the driver's readers (files: source folders in name order).
impl StreamKey for usize {
    fn describe(&self) -> String {
        format!("reader {self}")
    }
}

#[derive(Debug)]
struct Part<T> {
    /// `(event time in microseconds, or None when it has none; item)`, in offset order.
    queue: VecDeque<(Option<i64>, T)>,
    /// The offset after the last record pushed (where the partition's reading stands).
    next: i64,
    /// Empty and read to its high watermark: holds nobody back.
    at_end: bool,
    /// Empty, not at its end, since when.
    empty_since: Option<Instant>,
    /// Waited longer than `wait`: holds nobody back until it delivers again.
    overdue: bool,
    paused: bool,
}

/// Records of the streams read, released in event-time order.
#[derive(Debug)]
pub struct Merger<K, T> {
    parts: BTreeMap<K, Part<T>>,
    wait: Duration,
    buffer: usize,
    held: usize,
}

/// What the caller should do with a stream's fetching.
#[derive(Debug, PartialEq, Eq)]
pub enum Fetch<K> {
    Pause(K),
    Resume(K),
}

impl<K: StreamKey, T> Merger<K, T> {
    pub fn new(wait: Duration, buffer: usize) -> Self {
        Merger {
            parts: BTreeMap::new(),
            wait,
            buffer: buffer.max(1),
            held: 0,
        }
    }

    /// A partition is now this worker's, read from `next`.
    pub fn assign(&mut self, key: K, next: i64, now: Instant) {
        let old = self.parts.insert(
            key,
            Part {
                queue: VecDeque::new(),
                next,
                at_end: false,
                empty_since: Some(now),
                overdue: false,
                paused: false,
            },
        );
        if let Some(old) = old {
            self.held -= old.queue.len();
        }
    }

    /// A partition is no longer this worker's: what it held is dropped (never committed here, it
    /// is read again by the partition's next owner). Returns how many records that was.
    pub fn revoke(&mut self, key: &K) -> usize {
        match self.parts.remove(key) {
            Some(p) => {
                self.held -= p.queue.len();
                p.queue.len()
            }
            None => 0,
        }
    }

    pub fn is_assigned(&self, key: &K) -> bool {
        self.parts.contains_key(key)
    }

    /// Where a partition's reading stands (`None`: not assigned).
    pub fn next_offset(&self, key: &K) -> Option<i64> {
        self.parts.get(key).map(|p| p.next)
    }

    /// Records held, over all partitions.
    pub fn held(&self) -> usize {
        self.held
    }

    /// A record of an assigned partition, at `offset`, with its event time (if it has one).
    /// Returns `Fetch::Pause` when the partition now holds more than the buffer.
    pub fn push(&mut self, key: &K, offset: i64, time: Option<i64>, item: T) -> Option<Fetch<K>> {
        let buffer = self.buffer;
        let p = self.parts.get_mut(key)?;
        p.queue.push_back((time, item));
        p.next = offset + 1;
        p.at_end = false;
        p.empty_since = None;
        p.overdue = false;
        self.held += 1;
        if p.queue.len() > buffer && !p.paused {
            p.paused = true;
            return Some(Fetch::Pause(key.clone()));
        }
        None
    }

    /// Empty partitions not known to be at their end: the caller asks the client whether they
    /// are (`at_end(key, next)`), from the watermarks it caches.
    pub fn refresh(&mut self, now: Instant, mut at_end: impl FnMut(&K, i64) -> bool) {
        for (key, p) in self.parts.iter_mut() {
            if !p.queue.is_empty() || p.at_end {
                continue;
            }
            if at_end(key, p.next) {
                p.at_end = true;
                p.empty_since = None;
                p.overdue = false;
                continue;
            }
            let since = *p.empty_since.get_or_insert(now);
            if !p.overdue && now.duration_since(since) >= self.wait {
                p.overdue = true;
                tracing::warn!(
                    stream = %key.describe(),
                    waited_ms = self.wait.as_millis() as u64,
                    "a partition delivered nothing for kafka.align_wait_ms; the others go on \
                     without it (its next records are applied as they come)"
                );
            }
        }
    }

    /// The consumer was away (handing a batch to a busy applier): partitions still waiting start
    /// their wait again, so only time spent reading counts against them.
    pub fn restart_waits(&mut self, now: Instant) {
        for p in self.parts.values_mut() {
            if p.empty_since.is_some() {
                p.empty_since = Some(now);
            }
        }
    }

    /// A partition that holds the merge back now (empty, not at its end, not overdue), if any.
    pub fn holding(&self) -> Option<&K> {
        self.parts
            .iter()
            .find(|(_, p)| p.queue.is_empty() && !p.at_end && !p.overdue)
            .map(|(k, _)| k)
    }

    /// A stream is read to its end (a file reader has nothing more): while it holds nothing, it
    /// holds nobody back. Pushing to it again makes it count again.
    pub fn mark_end(&mut self, key: &K) {
        if let Some(p) = self.parts.get_mut(key) {
            if p.queue.is_empty() {
                p.at_end = true;
                p.empty_since = None;
                p.overdue = false;
            }
        }
    }

    /// The next record in event-time order and its stream, if it can go now; `flows` gets the
    /// streams to resume. A stream emptied here must be refreshed (or given its next record, or
    /// marked at its end) before it stops holding others back.
    pub fn pop(&mut self, flows: &mut Vec<Fetch<K>>) -> Option<(K, T)> {
        let untimed = self
            .parts
            .iter()
            .find(|(_, p)| matches!(p.queue.front(), Some((None, _))))
            .map(|(k, _)| k.clone());
        let key = match untimed {
            Some(k) => k,
            None => {
                let mut best: Option<(&K, i64)> = None;
                for (key, p) in &self.parts {
                    match p.queue.front() {
                        Some((Some(t), _)) => {
                            if best.is_none_or(|(_, b)| *t < b) {
                                best = Some((key, *t));
                            }
                        }
                        Some((None, _)) => {}
                        None if p.at_end || p.overdue => {}
                        // Its next record may be earlier than every head: wait for it.
                        None => return None,
                    }
                }
                best?.0.clone()
            }
        };
        let buffer = self.buffer;
        let p = self.parts.get_mut(&key)?;
        let (_, item) = p.queue.pop_front()?;
        self.held -= 1;
        if p.queue.is_empty() {
            p.empty_since = None;
        }
        if p.paused && p.queue.len() <= buffer / 4 {
            p.paused = false;
            flows.push(Fetch::Resume(key.clone()));
        }
        Some((key, item))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    type Key = (Arc<str>, i32);

    fn key(t: &str, p: i32) -> Key {
        (Arc::from(t), p)
    }

    /// A merger waiting up to `wait`, holding `capacity` records a partition, with partition 0
    /// of each of `topics` assigned from offset 0 at `now`.
    fn merger(
        wait: Duration,
        capacity: usize,
        topics: &[&str],
        now: Instant,
    ) -> Merger<Key, &'static str> {
        let mut a = Merger::new(wait, capacity);
        for t in topics {
            a.assign(key(t, 0), 0, now);
        }
        a
    }

    fn drain(a: &mut Merger<Key, &'static str>) -> Vec<&'static str> {
        let mut out = Vec::new();
        let mut flows = Vec::new();
        while let Some((_, x)) = a.pop(&mut flows) {
            out.push(x);
        }
        out
    }

    #[test]
    fn releases_in_event_time_order_across_partitions_once_each_has_a_head() {
        let now = Instant::now();
        let mut a = merger(
            Duration::from_secs(5),
            100,
            &["employment", "civil_registry"],
            now,
        );
        a.push(&key("employment", 0), 0, Some(20), "income drop");
        a.push(&key("employment", 0), 1, Some(40), "job lost");
        // The civil registry has delivered nothing yet: its death may be earlier.
        assert!(drain(&mut a).is_empty());
        a.push(&key("civil_registry", 0), 0, Some(10), "death");
        assert_eq!(drain(&mut a), ["death"]);
        // Emptied: it holds the others back again, until its end is known.
        a.refresh(now, |k, next| k.0.as_ref() == "civil_registry" && next == 1);
        assert_eq!(drain(&mut a), ["income drop", "job lost"]);
        assert_eq!(a.held(), 0);
    }

    #[test]
    fn a_record_without_a_time_never_waits() {
        let now = Instant::now();
        let mut a = merger(Duration::from_secs(5), 100, &["a", "b"], now);
        a.push(&key("b", 0), 0, None, "refused");
        a.push(&key("b", 0), 1, Some(5), "later");
        assert_eq!(drain(&mut a), ["refused"]);
    }

    #[test]
    fn ties_go_to_the_lower_partition_and_order_within_a_partition_is_kept() {
        let now = Instant::now();
        let mut a = Merger::new(Duration::from_secs(5), 100);
        for p in [1, 0] {
            a.assign(key("t", p), 0, now);
        }
        a.push(&key("t", 1), 0, Some(7), "p1 first");
        a.push(&key("t", 1), 1, Some(3), "p1 late record");
        a.push(&key("t", 0), 0, Some(7), "p0");
        a.refresh(now, |_, _| true);
        let mut out = Vec::new();
        let mut flows = Vec::new();
        while let Some((_, x)) = a.pop(&mut flows) {
            out.push(x);
            a.refresh(now, |_, _| true);
        }
        assert_eq!(out, ["p0", "p1 first", "p1 late record"]);
    }

    #[test]
    fn resuming_from_the_offsets_of_a_released_prefix_continues_the_same_merge() {
        // Three partitions with out-of-order times; the merge from any prefix's offsets equals
        // the rest of the merge from the start.
        let data: [&[(i64, &'static str)]; 3] = [
            &[(5, "a0"), (1, "a1"), (9, "a2"), (12, "a3")],
            &[(2, "b0"), (8, "b1"), (8, "b2")],
            &[(7, "c0"), (3, "c1"), (20, "c2"), (4, "c3")],
        ];
        let run = |from: [usize; 3]| {
            let now = Instant::now();
            let mut a = Merger::new(Duration::from_secs(5), 100);
            let mut offsets = Vec::new();
            for (p, rows) in data.iter().enumerate() {
                a.assign(key("t", p as i32), from[p] as i64, now);
                for (o, (t, name)) in rows.iter().enumerate().skip(from[p]) {
                    a.push(&key("t", p as i32), o as i64, Some(*t), (*name, p));
                }
            }
            let mut out = Vec::new();
            let mut flows = Vec::new();
            loop {
                a.refresh(now, |_, _| true);
                let Some((_, x)) = a.pop(&mut flows) else {
                    break;
                };
                out.push(x.0);
                offsets.push(x.1);
            }
            (out, offsets)
        };
        let (whole, parts) = run([0, 0, 0]);
        assert_eq!(whole.len(), 11);
        for cut in 0..whole.len() {
            let mut from = [0; 3];
            for p in &parts[..cut] {
                from[*p] += 1;
            }
            assert_eq!(run(from).0, whole[cut..], "resumed after {cut}");
        }
    }

    #[test]
    fn a_silent_partition_holds_the_others_back_only_for_the_wait() {
        let start = Instant::now();
        let mut a = merger(Duration::from_millis(100), 100, &["a", "b"], start);
        a.push(&key("a", 0), 0, Some(1), "x");
        a.refresh(start, |_, _| false);
        assert!(drain(&mut a).is_empty());
        // Time the consumer spent elsewhere does not count.
        a.restart_waits(start + Duration::from_millis(150));
        a.refresh(start + Duration::from_millis(200), |_, _| false);
        assert!(drain(&mut a).is_empty());
        a.refresh(start + Duration::from_millis(260), |_, _| false);
        assert_eq!(drain(&mut a), ["x"]);
        // It delivers again: it counts again.
        a.push(&key("b", 0), 0, Some(9), "y");
        a.push(&key("a", 0), 1, Some(2), "z");
        assert_eq!(drain(&mut a), ["z"]);
    }

    #[test]
    fn a_full_partition_is_paused_and_resumed_once_drained() {
        let now = Instant::now();
        let mut a = merger(Duration::from_secs(5), 4, &["a"], now);
        let mut flows = Vec::new();
        for o in 0..5 {
            if let Some(f) = a.push(&key("a", 0), o, Some(o), "r") {
                flows.push(f);
            }
        }
        assert_eq!(flows, [Fetch::Pause(key("a", 0))]);
        flows.clear();
        let mut n = 0;
        while a.pop(&mut flows).is_some() {
            n += 1;
        }
        assert_eq!(n, 5);
        assert_eq!(flows, [Fetch::Resume(key("a", 0))]);
        assert_eq!(a.revoke(&key("a", 0)), 0);
        assert!(!a.is_assigned(&key("a", 0)));
    }

    #[test]
    fn file_readers_merge_by_time_with_ties_and_refusals_by_reader_order() {
        // Each reader offers its next record only once the previous one went out, as the file
        // driver does; a reader with nothing more is marked at its end.
        let readers: [&[(Option<i64>, &'static str)]; 3] = [
            &[(Some(5), "r0 a"), (Some(9), "r0 b")],
            &[(Some(5), "r1 a"), (None, "r1 refused"), (Some(6), "r1 c")],
            &[],
        ];
        let now = Instant::now();
        let mut m: Merger<usize, &'static str> = Merger::new(Duration::MAX, 1);
        let mut next = [0usize; 3];
        let offer =
            |m: &mut Merger<usize, &'static str>, next: &mut [usize; 3], i: usize| match readers[i]
                .get(next[i])
            {
                Some((t, name)) => {
                    m.push(&i, next[i] as i64, *t, *name);
                    next[i] += 1;
                }
                None => m.mark_end(&i),
            };
        for i in 0..3 {
            m.assign(i, 0, now);
            offer(&mut m, &mut next, i);
        }
        let mut out = Vec::new();
        let mut flows = Vec::new();
        while let Some((i, x)) = m.pop(&mut flows) {
            out.push(x);
            offer(&mut m, &mut next, i);
        }
        assert_eq!(out, ["r0 a", "r1 a", "r1 refused", "r1 c", "r0 b"]);
        assert_eq!(m.held(), 0);
    }
}
