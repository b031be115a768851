//! A consumer group's partitions as a record source of the driver's one reading loop
//! (`doudi_pipeline::driver::read_records`): each polled message ingested (parse, validate; a
//! raw-row topic through its feed profile) into the same record a file reader makes, its position
//! a `Position::Kafka`; the group's assignments and revokes (from the rebalance callbacks, see
//! [`crate::worker`]) handed to the loop; a partition is caught up at its high watermark (as last
//! fetched); the merge's read-ahead pauses and resumes its fetching; and the offsets the database
//! committed go to the broker after each turn (for monitoring only).

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use doudi_model::{ParseLimits, Source};
use doudi_pipeline::driver::{
    Assignment, Fetch, InvalidGuard, Polled, Position, RawRecord, RecordSource,
};
use doudi_pipeline::{ingest_raw_row, ingest_record, Ingested};
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::message::Message;
use rdkafka::topic_partition_list::TopicPartitionList;
use rdkafka::types::RDKafkaRespErr;

pub use crate::group::RecordMeta;
use crate::group::{lock, Ctx, Shared};
use crate::{KafkaConfig, KafkaError};

/// A partition: `(topic, partition)`.
pub(crate) type Key = (Arc<str>, i32);

/// A polled message, as much of it as ingest needs.
pub(crate) struct Delivery<'a> {
    pub topic: &'a Arc<str>,
    pub source: Source,
    pub partition: i32,
    pub offset: i64,
    pub payload: &'a [u8],
    pub key: Option<&'a [u8]>,
    pub timestamp_ms: Option<i64>,
    /// The feed profile the producer says made it (`doudi produce --profile`).
    pub profile: Option<Arc<str>>,
}

/// Ingest a message of a feed topic: an envelope, or a department's raw row through the topic's
/// profile. The payload is cut at the size cap (`limits.max_event_bytes`, plus one byte so that
/// an oversized one is seen as such).
pub(crate) fn ingest_message(
    cfg: &KafkaConfig,
    limits: &ParseLimits,
    m: Delivery<'_>,
) -> (Ingested, RecordMeta) {
    let cap = limits.max_event_bytes.saturating_add(1);
    let record = RawRecord {
        source: m.source,
        stream: format!("{}/{}", m.topic, m.partition),
        position: Position::Kafka {
            topic: m.topic.clone(),
            partition: m.partition,
            offset: m.offset,
        },
        bytes: m.payload[..m.payload.len().min(cap)].to_vec(),
        full_len: m.payload.len() as u64,
    };
    let item = match cfg.profile_of(m.topic) {
        Some(p) => ingest_raw_row(record, &p.profile, &p.provenance),
        None => {
            let mut item = ingest_record(record, limits);
            item.profile = m.profile;
            item
        }
    };
    let meta = RecordMeta {
        timestamp_ms: m.timestamp_ms,
        key: if item.result.is_err() {
            m.key.map(<[u8]>::to_vec)
        } else {
            None
        },
    };
    (item, meta)
}

/// The consumer, as the reading loop's source.
pub(crate) struct KafkaSource {
    shared: Arc<Shared>,
    consumer: BaseConsumer<Ctx>,
    /// The feed topics, by name: the key's shared name and the source each carries.
    topics: HashMap<String, (Arc<str>, Source)>,
    limits: ParseLimits,
    last_commit: Instant,
    last_error_log: Option<Instant>,
}

impl KafkaSource {
    pub(crate) fn new(
        shared: Arc<Shared>,
        consumer: BaseConsumer<Ctx>,
        limits: ParseLimits,
    ) -> Self {
        let mut topics = HashMap::new();
        for t in shared.cfg.feed_topics() {
            if let Some(s) = shared.cfg.source_of(t) {
                topics.insert(t.to_string(), (Arc::from(t), s));
            }
        }
        KafkaSource {
            shared,
            consumer,
            topics,
            limits,
            last_commit: Instant::now(),
            last_error_log: None,
        }
    }

    /// The reading ended: commit the database's offsets to Kafka, and leave the group now, so
    /// that the partitions move to another worker at once.
    pub(crate) fn leave(self) {
        let list = self.shared.commit_list(None);
        if list.count() > 0 {
            if let Err(e) = self.consumer.commit(&list, CommitMode::Sync) {
                tracing::warn!(error = %e, "committing offsets to Kafka on shutdown failed (the database holds them)");
            }
        }
        self.consumer.unsubscribe();
    }
}

impl RecordSource for KafkaSource {
    type Key = Key;
    type Meta = RecordMeta;
    type Error = KafkaError;

    fn poll(&mut self, _waiting: Option<&Key>) -> Result<Polled<Key, RecordMeta>, KafkaError> {
        let msg = match self.consumer.poll(Duration::from_millis(20)) {
            None => return Ok(Polled::Idle),
            Some(Err(e)) => {
                // librdkafka retries on its own; say so at most every few seconds.
                if self
                    .last_error_log
                    .is_none_or(|t| t.elapsed() > Duration::from_secs(5))
                {
                    self.last_error_log = Some(Instant::now());
                    tracing::warn!(error = %e, "Kafka consumer error (librdkafka retries)");
                }
                return Ok(Polled::Idle);
            }
            Some(Ok(msg)) => msg,
        };
        let Some((topic, source)) = self.topics.get(msg.topic()) else {
            tracing::warn!(
                topic = msg.topic(),
                "message from a topic not configured; skipped"
            );
            return Ok(Polled::Idle);
        };
        let (item, meta) = ingest_message(
            &self.shared.cfg,
            &self.limits,
            Delivery {
                topic,
                source: *source,
                partition: msg.partition(),
                offset: msg.offset(),
                payload: msg.payload().unwrap_or_default(),
                key: msg.key(),
                timestamp_ms: msg.timestamp().to_millis(),
                profile: profile_header(&msg),
            },
        );
        Ok(Polled::Record {
            key: (topic.clone(), msg.partition()),
            offset: msg.offset(),
            item,
            meta,
        })
    }

    fn assignment(&mut self) -> Vec<Assignment<Key>> {
        let shared = &self.shared;
        let mut changes = Vec::new();
        {
            let mut revoked = lock(&shared.revoked);
            for (t, p) in revoked.drain() {
                let topic = self
                    .topics
                    .get(&t)
                    .map_or_else(|| Arc::from(t.as_str()), |(a, _)| a.clone());
                changes.push(Assignment::Revoked((topic, p)));
            }
        }
        let assigned = std::mem::take(&mut *lock(&shared.assigned));
        if !assigned.is_empty() {
            let mut tpl = TopicPartitionList::new();
            for (topic, partition, next) in assigned {
                if let Some((t, _)) = self.topics.get(&topic) {
                    changes.push(Assignment::Assigned {
                        key: (t.clone(), partition),
                        next,
                    });
                    tpl.add_partition(&topic, partition);
                }
            }
            // A partition this consumer paused before it was revoked fetches again.
            if let Err(e) = self.consumer.resume(&tpl) {
                tracing::warn!(error = %e, "resuming newly assigned partitions failed");
            }
        }
        changes
    }

    /// Read to its high watermark, as last fetched.
    fn caught_up(&self, (topic, partition): &Key, next: i64) -> bool {
        matches!(
            cached_watermarks(&self.consumer, topic, *partition),
            Some((low, high)) if next.max(low) >= high
        )
    }

    fn flow(&mut self, fetch: Fetch<Key>) {
        match fetch {
            Fetch::Pause(k) => set_paused(&self.consumer, &k, true),
            Fetch::Resume(k) => set_paused(&self.consumer, &k, false),
        }
    }

    /// The offsets the database committed, to Kafka (monitoring only), at most every 200 ms.
    fn tick(&mut self) {
        let shared = &self.shared;
        if shared.dirty.load(Ordering::Relaxed)
            && self.last_commit.elapsed() >= Duration::from_millis(200)
        {
            shared.dirty.store(false, Ordering::Relaxed);
            self.last_commit = Instant::now();
            let list = shared.commit_list(None);
            if list.count() > 0 {
                if let Err(e) = self.consumer.commit(&list, CommitMode::Async) {
                    tracing::debug!(error = %e, "committing offsets to Kafka failed (the database holds them)");
                }
            }
        }
    }

    fn broken(
        &self,
        (topic, partition): &Key,
        _record: &RawRecord,
        invalid: usize,
        guard: InvalidGuard,
    ) -> KafkaError {
        let resume_at = lock(&self.shared.committed)
            .get(&(topic.to_string(), *partition))
            .copied()
            .unwrap_or(0);
        KafkaError::BrokenUpstream {
            topic: topic.to_string(),
            partition: *partition,
            invalid,
            window: guard.window,
            ratio: guard.max_ratio,
            resume_at,
        }
    }
}

/// A partition's low and high watermarks as of its last fetch (librdkafka's cache: no request
/// to the broker); `None` until a fetch has told them.
fn cached_watermarks(
    consumer: &BaseConsumer<Ctx>,
    topic: &str,
    partition: i32,
) -> Option<(i64, i64)> {
    let topic = std::ffi::CString::new(topic).ok()?;
    let (mut low, mut high) = (-1i64, -1i64);
    // SAFETY: the client handle is alive for as long as `consumer` is borrowed; the topic is a
    // NUL-terminated string that outlives the call; librdkafka only writes the two integers.
    let err = unsafe {
        rdkafka::bindings::rd_kafka_get_watermark_offsets(
            consumer.client().native_ptr(),
            topic.as_ptr(),
            partition,
            &mut low,
            &mut high,
        )
    };
    (err == RDKafkaRespErr::RD_KAFKA_RESP_ERR_NO_ERROR && high >= 0).then_some((low, high))
}

/// Pause or resume one partition's fetching (the merge holds enough of it, or drained it).
fn set_paused(consumer: &BaseConsumer<Ctx>, (topic, partition): &Key, pause: bool) {
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition(topic, *partition);
    let r = if pause {
        consumer.pause(&tpl)
    } else {
        consumer.resume(&tpl)
    };
    if let Err(e) = r {
        tracing::warn!(error = %e, stream = %format!("{topic}/{partition}"), pause, "pausing or resuming a partition failed");
    }
}

/// The feed profile (`name@version`) a record says made it (`doudi produce --profile`), if any
/// and if it is short, plain text.
fn profile_header(msg: &rdkafka::message::BorrowedMessage<'_>) -> Option<Arc<str>> {
    use rdkafka::message::Headers;
    let headers = msg.headers()?;
    let value = headers
        .iter()
        .find(|h| h.key == crate::produce::PROFILE_HEADER)?
        .value?;
    let text = std::str::from_utf8(value).ok()?;
    (!text.is_empty() && text.len() <= 128 && !text.chars().any(char::is_control))
        .then(|| Arc::from(text))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message<'a>(topic: &'a Arc<str>, payload: &'a [u8]) -> Delivery<'a> {
        Delivery {
            topic,
            source: Source::Employment,
            partition: 3,
            offset: 41,
            payload,
            key: Some(b"110101199001011234"),
            timestamp_ms: Some(1_700_000_000_000),
            profile: None,
        }
    }

    #[test]
    fn a_message_is_a_record_at_its_partition_offset_and_only_a_refused_one_keeps_its_key() {
        let cfg = KafkaConfig::default();
        let limits = ParseLimits::default();
        let topic: Arc<str> = Arc::from("employment");
        let (item, meta) = ingest_message(&cfg, &limits, message(&topic, b"not an event"));
        assert!(item.result.is_err());
        assert_eq!(item.record.stream, "employment/3");
        assert_eq!(
            item.record.position,
            Position::Kafka {
                topic: topic.clone(),
                partition: 3,
                offset: 41
            }
        );
        assert_eq!(item.record.position.resume_at(), 42);
        assert_eq!(meta.key.as_deref(), Some(&b"110101199001011234"[..]));
        assert_eq!(meta.timestamp_ms, Some(1_700_000_000_000));
    }

    #[test]
    fn an_oversized_message_is_cut_at_the_cap_and_refused_as_too_large() {
        let cfg = KafkaConfig::default();
        let limits = ParseLimits::default();
        let topic: Arc<str> = Arc::from("employment");
        let big = vec![b'x'; limits.max_event_bytes + 100];
        let (item, _) = ingest_message(&cfg, &limits, message(&topic, &big));
        assert_eq!(item.record.bytes.len(), limits.max_event_bytes + 1);
        assert_eq!(item.record.full_len, big.len() as u64);
        assert!(item.record.truncated());
        assert!(item.result.is_err());
    }
}
