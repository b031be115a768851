//! What a record source is to the one reading loop ([`super::read_records`]): the
//! source-specific parts of reading — opening files, a consumer group's assignment, pausing and
//! resuming a stream's fetching, whether a stream is caught up, what to do after each turn —
//! behind one trait. Feed files (with the feed profiles' readers and the files the HTTP push
//! writes) and a Kafka consumer group implement it.

use super::{Fetch, InvalidGuard, RawRecord, StreamKey};
use crate::{Ingested, PipelineError};

/// What a poll gave.
// A record is what nearly every poll gives: moved once into the merger, not boxed.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum Polled<K, M> {
    /// A record of stream `key`, at `offset` in it (a partition's offset; a file reader's
    /// records need none: 0), ingested (an event, or why it is refused), with what the source
    /// keeps beside it (`meta`: Kafka's message timestamp and key; files: nothing).
    Record {
        key: K,
        offset: i64,
        item: Ingested,
        meta: M,
    },
    /// Stream `key` has nothing more (a file reader at the end of its last file): while it holds
    /// nothing, it holds nobody back.
    End(K),
    /// Nothing now (a poll that timed out, a message left to another worker).
    Idle,
    /// Every stream is read: the loop hands over what it gathered and ends (a file pass; a
    /// consumer group never is).
    Done,
}

/// A change of the streams a source reads (a consumer group's rebalance).
#[derive(Debug, PartialEq, Eq)]
pub enum Assignment<K> {
    /// The stream is now read from `next` (its stored position).
    Assigned { key: K, next: i64 },
    /// The stream is no longer read here: what the merge held of it is dropped (its next owner
    /// reads it again), its invalid-ratio window restarts.
    Revoked(K),
}

/// A source of records for the one reading loop.
pub trait RecordSource {
    /// A stream's key: its order breaks ties between equal event times.
    type Key: StreamKey;
    /// What the source keeps beside each record until its batch commits.
    type Meta: Send + 'static;
    type Error: From<PipelineError>;

    /// The streams read from the start, with their next offsets (files: one per source folder).
    /// Asked once, before the first poll.
    fn streams(&mut self) -> Vec<(Self::Key, i64)> {
        Vec::new()
    }

    /// Whether a stream's next record is read when asked for (a file reader: it has one, or its
    /// files are at their end). The loop then keeps every stream's head filled before releasing,
    /// and releases one record at a time: the order never depends on reading order. Otherwise
    /// (Kafka) the loop releases as far as the merge allows after each poll.
    fn reads_on_demand(&self) -> bool {
        false
    }

    /// Read: the next record, the end of a stream, or nothing now. `waiting` is the stream the
    /// merge waits on (empty, not at its end), which a source reading on demand reads next.
    fn poll(
        &mut self,
        waiting: Option<&Self::Key>,
    ) -> Result<Polled<Self::Key, Self::Meta>, Self::Error>;

    /// Streams assigned and revoked since last asked (after each poll: a rebalance happens
    /// inside it).
    fn assignment(&mut self) -> Vec<Assignment<Self::Key>> {
        Vec::new()
    }

    /// Whether stream `key`, empty in the merge and to be read next at `next`, is caught up (read
    /// to its end as far as the source knows: a partition's high watermark). A stream not caught
    /// up holds the merge back, at most the merge's wait.
    fn caught_up(&self, _key: &Self::Key, _next: i64) -> bool {
        false
    }

    /// The merge holds too much of a stream (`Fetch::Pause`), or drained it (`Fetch::Resume`).
    fn flow(&mut self, _fetch: Fetch<Self::Key>) {}

    /// A record left the merge for the batch being gathered (files: the positions a next pass
    /// starts from).
    fn released(&mut self, _item: &Ingested) {}

    /// After each turn of the loop (Kafka: the offsets the database committed, to the broker).
    fn tick(&mut self) {}

    /// The invalid-ratio guard tripped on `record`'s stream: `invalid` of its last
    /// `guard.window` records are invalid. The error the loop stops with.
    fn broken(
        &self,
        key: &Self::Key,
        record: &RawRecord,
        invalid: usize,
        guard: InvalidGuard,
    ) -> Self::Error;
}
