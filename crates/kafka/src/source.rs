//! The consumer-group source: one worker of many in a group over the four feed topics.
//!
//! A consumer thread polls, ingests each message (parse, validate, link: the same [`Ingested`]
//! record the file reader makes, its position a `Position::Kafka`), releases the records of all
//! its partitions in event-time order (the driver's `Merger`: so a run's outcome does not depend on
//! how fetches interleave, nor on where it was interrupted) and gathers batches (the driver's
//! `Batcher`, by size or `kafka.linger_ms`), which a bounded channel carries to the driver's
//! applier (`apply_batches`). Before each batch commits, its invalid records go to the
//! dead-letter topic and are acknowledged (`KafkaHooks::before_commit`); the batch's effects and
//! the next offset of each of its partitions then commit in one database transaction, retried with
//! backoff while the database is away. Batches commit one at a time in the order they were
//! released, so each partition's records are applied in offset order, and a slow database fills the
//! channel, then the merger's and librdkafka's bounded read-ahead, and so slows the consumption. On
//! PostgreSQL the next batch, when one is waiting, is staged ahead on a second connection while the
//! one before it finishes (see `doudi_pipeline::driver::apply_batches`).
//!
//! The database is the truth: on assignment the consumer seeks each partition to its stored
//! position; on revoke and on shutdown it hands over what it has gathered, waits (within
//! `drain_timeout_ms`) until every batch is committed, then commits the same offsets to Kafka —
//! which it also does after each database commit, for monitoring only.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use doudi_model::Source;
use doudi_pipeline::driver::dead_letter::{send_until_acknowledged, Ack, DeadLetterTopic};
use doudi_pipeline::driver::retry::Backoff;
use doudi_pipeline::driver::RawRecord;
use doudi_pipeline::driver::{
    apply_batches, BatchHooks, Batcher, CancellationToken, Fetch, InvalidWindow, Merger, Position,
};
use doudi_pipeline::{ingest_raw_row, ingest_record, BatchOutcome, Engine, Ingested, RunReport};
use doudi_store::Store;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext};
use rdkafka::message::{Header, Message, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::statistics::Statistics;
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use rdkafka::types::RDKafkaRespErr;
use rdkafka::ClientContext;
use tokio::runtime::Handle;
use tokio::sync::mpsc;

use crate::{KafkaConfig, KafkaError};

/// A partition: `(topic, partition)`.
type Key = (Arc<str>, i32);

/// How much to gather and read ahead.
#[derive(Clone, Debug)]
pub struct SourceOptions {
    /// Records per transaction (at most).
    pub batch_size: usize,
    /// Batches gathered ahead of the applier (with librdkafka's prefetch, the bound on memory).
    pub channel_batches: usize,
}

/// Where one record came from.
#[derive(Clone, Debug)]
pub struct RecordMeta {
    pub topic: Arc<str>,
    pub partition: i32,
    pub offset: i64,
    /// The message's timestamp (producer create time), milliseconds since the epoch.
    pub timestamp_ms: Option<i64>,
    /// The message key, kept only for records refused at ingest (for the dead-letter topic).
    pub key: Option<Vec<u8>>,
}

/// Told when partitions are assigned and after each batch commits (benchmarks, progress).
pub trait Observer: Send + Sync {
    /// Partitions were assigned to this worker (`partitions`: how many, this time).
    fn assigned(&self, _partitions: usize) {}
    fn committed(&self, _records: &[RecordMeta], _report: &RunReport) {}
}

impl Observer for () {}

/// A batch with each record's message details.
type Batch = doudi_pipeline::driver::Batch<Vec<RecordMeta>>;

/// The records being gathered into the next batch (the driver's batcher: `limits.batch_size`, or
/// `kafka.linger_ms` after the first).
type Gathering = Batcher<(Ingested, RecordMeta)>;

#[derive(Default)]
struct Flow {
    sent: u64,
    done: u64,
    /// The applier stopped (failed or finished): nothing more will be done.
    applier_gone: bool,
}

/// What the consumer thread, its rebalance callbacks and the applier share.
struct Shared {
    cfg: KafkaConfig,
    store: Store,
    handle: Handle,
    gathering: Mutex<Gathering>,
    tx: Mutex<Option<mpsc::Sender<Batch>>>,
    flow: Mutex<Flow>,
    flow_changed: Condvar,
    /// The next offset of each assigned partition as committed in the database.
    committed: Mutex<HashMap<(String, i32), i64>>,
    /// Partitions whose database commit moved since the last commit to Kafka.
    dirty: AtomicBool,
    /// Partitions revoked since the consumer thread last looked (their windows restart).
    revoked: Mutex<HashSet<(String, i32)>>,
    /// Partitions assigned since the consumer thread last looked, with their next offsets.
    assigned: Mutex<Vec<(String, i32, i64)>>,
    stop: CancellationToken,
    fatal: Mutex<Option<KafkaError>>,
    observer: Arc<dyn Observer>,
    /// Time the consumer thread spent waiting for the applier to take a batch (microseconds).
    handover_wait_us: AtomicU64,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Shared {
    fn fail(&self, e: KafkaError) {
        let mut f = lock(&self.fatal);
        if f.is_none() {
            *f = Some(e);
        }
        self.stop.cancel();
    }

    /// Hand what is gathered to the applier.
    fn flush(&self) {
        let gathered = lock(&self.gathering).take();
        self.hand_over(gathered);
    }

    /// Hand a batch to the applier (waiting while the channel is full).
    fn hand_over(&self, gathered: Vec<(Ingested, RecordMeta)>) {
        if gathered.is_empty() {
            return;
        }
        let (items, meta) = gathered.into_iter().unzip();
        let batch = Batch { items, meta };
        let tx = lock(&self.tx).clone();
        let Some(tx) = tx else { return };
        lock(&self.flow).sent += 1;
        let t = Instant::now();
        let sent = tx.blocking_send(batch);
        self.handover_wait_us
            .fetch_add(t.elapsed().as_micros() as u64, Ordering::Relaxed);
        if sent.is_err() {
            // The applier is gone; the records stay uncommitted and are read again.
            let mut f = lock(&self.flow);
            f.sent -= 1;
            f.applier_gone = true;
        }
    }

    /// Wait until every batch handed over is committed (or the applier is gone), at most `within`.
    fn drain(&self, within: Duration) -> bool {
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

    fn commit_list(&self, only: Option<&HashSet<(String, i32)>>) -> TopicPartitionList {
        let mut tpl = TopicPartitionList::new();
        for ((topic, partition), next) in lock(&self.committed).iter() {
            if only.is_some_and(|o| !o.contains(&(topic.clone(), *partition))) {
                continue;
            }
            if *next > 0 {
                let _ = tpl.add_partition_offset(topic, *partition, Offset::Offset(*next));
            }
        }
        tpl
    }

    /// Stored positions of the feed topics, retried while the database is away.
    fn stored_positions(&self) -> Option<HashMap<(String, String), doudi_store::Position>> {
        let mut delay = Duration::from_millis(100);
        loop {
            match self.handle.block_on(self.store.positions()) {
                Ok(p) => return Some(p),
                Err(e) => {
                    doudi_telemetry::db_error("positions");
                    tracing::warn!(error = %e, "cannot read stored positions; retrying");
                    if self.stop.is_cancelled() {
                        return None;
                    }
                    std::thread::sleep(delay);
                    delay = (delay * 2).min(Duration::from_secs(5));
                }
            }
        }
    }
}

struct Ctx(Arc<Shared>);

impl ClientContext for Ctx {
    fn log(&self, level: rdkafka::config::RDKafkaLogLevel, fac: &str, message: &str) {
        crate::forward_log(level, fac, message);
    }

    fn error(&self, error: rdkafka::error::KafkaError, reason: &str) {
        tracing::warn!(error = %error, "Kafka: {reason}");
    }

    fn stats(&self, statistics: Statistics) {
        let committed = lock(&self.0.committed);
        for (topic, t) in &statistics.topics {
            for (partition, p) in &t.partitions {
                if *partition < 0 || p.hi_offset < 0 {
                    continue;
                }
                if let Some(next) = committed.get(&(topic.clone(), *partition)) {
                    doudi_telemetry::set_consumer_lag(topic, *partition, p.hi_offset - next);
                }
            }
        }
    }
}

impl ConsumerContext for Ctx {
    fn rebalance(
        &self,
        consumer: &BaseConsumer<Self>,
        err: RDKafkaRespErr,
        tpl: &mut TopicPartitionList,
    ) {
        match err {
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS => {
                self.on_assign(tpl);
                if let Err(e) = consumer.assign(tpl) {
                    self.0.fail(KafkaError::client("assigning partitions")(e));
                }
            }
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS => {
                self.on_revoke(consumer, tpl);
                if let Err(e) = consumer.unassign() {
                    tracing::warn!(error = %e, "unassigning partitions failed");
                }
            }
            other => {
                // Give up every partition as a revoke would (drain, then forget what was read
                // ahead), so nothing held for them is applied after they move.
                tracing::error!(error = ?other, "rebalance error; letting every partition go");
                let mut all = TopicPartitionList::new();
                for (topic, partition) in lock(&self.0.committed).keys() {
                    all.add_partition(topic, *partition);
                }
                self.on_revoke(consumer, &all);
                let _ = consumer.unassign();
            }
        }
    }
}

impl Ctx {
    /// Start each partition at its stored position (the next offset), or at the beginning.
    fn on_assign(&self, tpl: &mut TopicPartitionList) {
        let s = &self.0;
        let parts: Vec<(String, i32)> = tpl
            .elements()
            .iter()
            .map(|e| (e.topic().to_string(), e.partition()))
            .collect();
        let Some(stored) = s.stored_positions() else {
            return;
        };
        let mut committed = lock(&s.committed);
        let mut assigned = lock(&s.assigned);
        let mut described = Vec::new();
        for (topic, partition) in parts {
            let Some(source) = s.cfg.source_of(&topic) else {
                continue;
            };
            let stream = format!("{topic}/{partition}");
            let next = stored
                .get(&(source.code().to_string(), stream.clone()))
                .map(|p| p.byte_offset as i64);
            let offset = next.map_or(Offset::Beginning, Offset::Offset);
            if let Err(e) = tpl.set_partition_offset(&topic, partition, offset) {
                tracing::error!(error = %e, %stream, "cannot set a start offset");
            }
            committed.insert((topic.clone(), partition), next.unwrap_or(0));
            assigned.push((topic, partition, next.unwrap_or(0)));
            described.push(format!("{stream}@{}", next.unwrap_or(0)));
        }
        tracing::info!(partitions = %described.join(" "), "partitions assigned; resuming at the stored positions");
        drop((committed, assigned));
        s.observer.assigned(described.len());
    }

    /// Hand over what is gathered, wait for it to commit, commit the offsets to Kafka.
    fn on_revoke(&self, consumer: &BaseConsumer<Self>, tpl: &TopicPartitionList) {
        let s = &self.0;
        let revoked: HashSet<(String, i32)> = tpl
            .elements()
            .iter()
            .map(|e| (e.topic().to_string(), e.partition()))
            .collect();
        s.flush();
        let within = Duration::from_millis(s.cfg.drain_timeout_ms);
        if !s.drain(within) {
            tracing::error!(
                "in-flight batches did not commit within kafka.drain_timeout_ms; stopping this \
                 worker so it cannot race the partitions' next owner"
            );
            s.fail(KafkaError::Config(format!(
                "in-flight batches did not commit within {} ms of a revoke",
                s.cfg.drain_timeout_ms
            )));
        }
        if !consumer.assignment_lost() {
            let list = s.commit_list(Some(&revoked));
            if list.count() > 0 {
                if let Err(e) = consumer.commit(&list, CommitMode::Sync) {
                    tracing::warn!(error = %e, "committing offsets to Kafka on revoke failed (the database holds them)");
                }
            }
        }
        let mut committed = lock(&s.committed);
        for (topic, partition) in &revoked {
            committed.remove(&(topic.clone(), *partition));
            doudi_telemetry::clear_consumer_lag(topic, *partition);
        }
        lock(&s.revoked).extend(revoked.iter().cloned());
        tracing::info!(
            partitions = revoked.len(),
            "partitions revoked after draining"
        );
    }
}

impl KafkaConfig {
    fn consumer_config(&self) -> rdkafka::ClientConfig {
        let mut c = self.client();
        let session = self.session_timeout_ms.max(3000);
        c.set("group.id", &self.group_id)
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("auto.offset.reset", "earliest")
            .set("enable.partition.eof", "false")
            .set("session.timeout.ms", session.to_string())
            .set("heartbeat.interval.ms", (session / 4).max(500).to_string())
            .set(
                "max.poll.interval.ms",
                (session * 6).max(60_000).to_string(),
            )
            .set(
                "queued.max.messages.kbytes",
                self.queued_max_kbytes.to_string(),
            )
            .set("queued.min.messages", self.queued_min_messages.to_string())
            .set("fetch.max.bytes", "16777216")
            // A fetch that finds nothing new waits at most this long at the broker before it is
            // answered (librdkafka's default, 500 ms, is a floor under a quiet feed's latency).
            .set("fetch.wait.max.ms", "50")
            // A partition whose fetch queue was over its thresholds is not fetched again for
            // this long (librdkafka's default: 1 s). Under a backlog, the merge in event-time
            // order (which needs the next record of every partition) then found one partition
            // after another with nothing fetched for about a second while the others waited:
            // 11,400–13,900 events/s into SQLite instead of 25,600–34,600 (benches/kafka.rs,
            // four runs each, 2026-12-04).
            .set("fetch.queue.backoff.ms", "50")
            .set("statistics.interval.ms", "2000");
        c
    }
}

/// Run a worker of the group until `stop` is cancelled (then drain and commit) or something fails.
pub async fn run_kafka(
    store: &Store,
    engine: Arc<Engine>,
    cfg: &KafkaConfig,
    opts: &SourceOptions,
    observer: Arc<dyn Observer>,
    stop: CancellationToken,
) -> Result<RunReport, KafkaError> {
    cfg.validate().map_err(KafkaError::Config)?;
    let mut cfg = cfg.clone();
    if cfg.loaded_profiles.0.len() != cfg.profiles.len() {
        cfg.load_profiles().map_err(KafkaError::Config)?;
    }
    let cfg = &cfg;
    let started = Instant::now();
    let (tx, rx) = mpsc::channel::<Batch>(opts.channel_batches.max(1));
    let shared = Arc::new(Shared {
        cfg: cfg.clone(),
        store: store.clone(),
        handle: Handle::current(),
        gathering: Mutex::new(Batcher::new(
            opts.batch_size,
            Some(Duration::from_millis(cfg.linger_ms)),
        )),
        tx: Mutex::new(Some(tx)),
        flow: Mutex::new(Flow::default()),
        flow_changed: Condvar::new(),
        committed: Mutex::new(HashMap::new()),
        dirty: AtomicBool::new(false),
        revoked: Mutex::new(HashSet::new()),
        assigned: Mutex::new(Vec::new()),
        stop: stop.clone(),
        fatal: Mutex::new(None),
        observer,
        handover_wait_us: AtomicU64::new(0),
    });
    let consumer: BaseConsumer<Ctx> = cfg
        .consumer_config()
        .create_with_context(Ctx(shared.clone()))
        .map_err(KafkaError::client("creating the consumer"))?;
    let producer: FutureProducer = cfg
        .producer()
        .create()
        .map_err(KafkaError::client("creating the dead-letter producer"))?;
    let topics: Vec<&str> = cfg.feed_topics();
    consumer
        .subscribe(&topics)
        .map_err(KafkaError::client("subscribing to the feed topics"))?;
    tracing::info!(group = %cfg.group_id, topics = %topics.join(","), "Kafka worker joining its group");

    let reader = {
        let shared = shared.clone();
        let engine = engine.clone();
        std::thread::Builder::new()
            .name("kafka-consumer".into())
            .spawn(move || read_loop(&shared, consumer, &engine))
            .map_err(|e| KafkaError::Io {
                path: "kafka-consumer thread".into(),
                source: e,
            })?
    };
    let applier = tokio::spawn(apply_loop(shared.clone(), engine, rx, producer, started));
    let applied = wait_applier(applier, &shared).await;
    {
        let mut f = lock(&shared.flow);
        f.applier_gone = true;
    }
    shared.flow_changed.notify_all();
    if applied.is_err() {
        stop.cancel();
    }
    let read = tokio::task::spawn_blocking(move || reader.join())
        .await
        .map_err(|_| KafkaError::ReaderGone)?
        .map_err(|_| KafkaError::ReaderGone)?;
    if let Some(e) = lock(&shared.fatal).take() {
        return Err(e);
    }
    read?;
    let mut report = applied?;
    report.elapsed_ms = started.elapsed().as_millis() as u64;
    Ok(report)
}

/// The applier's result; once `stop` is cancelled it gets `drain_timeout_ms` to finish.
async fn wait_applier(
    mut applier: tokio::task::JoinHandle<Result<RunReport, KafkaError>>,
    shared: &Shared,
) -> Result<RunReport, KafkaError> {
    tokio::select! {
        r = &mut applier => return r.map_err(|_| KafkaError::ReaderGone)?,
        _ = shared.stop.cancelled() => {}
    }
    // The reader drains first (up to the same deadline), then closes the channel.
    let grace = Duration::from_millis(shared.cfg.drain_timeout_ms) * 2;
    tokio::select! {
        r = &mut applier => r.map_err(|_| KafkaError::ReaderGone)?,
        _ = tokio::time::sleep(grace) => {
            applier.abort();
            Err(KafkaError::Config(format!(
                "in-flight batches did not commit within {} ms of the stop; \
                 they are read again on restart",
                shared.cfg.drain_timeout_ms
            )))
        }
    }
}

/// The consumer thread: poll, ingest, gather, hand over; commit offsets to Kafka after the
/// database; on stop, drain and commit.
fn read_loop(
    shared: &Arc<Shared>,
    consumer: BaseConsumer<Ctx>,
    engine: &Engine,
) -> Result<(), KafkaError> {
    let cfg = &shared.cfg;
    let limits = engine.limits;
    let cap = limits.max_event_bytes.saturating_add(1);
    let mut topics: HashMap<String, (Arc<str>, Source)> = HashMap::new();
    for t in cfg.feed_topics() {
        if let Some(s) = cfg.source_of(t) {
            topics.insert(t.to_string(), (Arc::from(t), s));
        }
    }
    let mut windows: HashMap<(Arc<str>, i32), InvalidWindow> = HashMap::new();
    let mut last_commit = Instant::now();
    let mut broken = None;
    let mut last_error_log: Option<Instant> = None;
    // Each assigned partition's records, released in event-time order (the driver's merger). It also
    // knows the offset each partition should deliver next: a jump past it means records were
    // removed (retention, compaction) before this group read them — said loudly, never silently.
    let mut aligner: Merger<Key, (Ingested, RecordMeta)> =
        Merger::new(Duration::from_millis(cfg.align_wait_ms), cfg.align_buffer);
    let mut held_by: Option<(Key, Instant)> = None;
    let mut merge_wait = Duration::ZERO;
    let reading_since = Instant::now();
    while !shared.stop.is_cancelled() {
        let polled = consumer.poll(Duration::from_millis(20));
        {
            let mut revoked = lock(&shared.revoked);
            if !revoked.is_empty() {
                windows.retain(|(t, p), _| !revoked.contains(&(t.to_string(), *p)));
                for (t, p) in revoked.iter() {
                    let dropped = aligner.revoke(&(Arc::from(t.as_str()), *p));
                    if dropped > 0 {
                        tracing::debug!(stream = %format!("{t}/{p}"), dropped, "read-ahead of a revoked partition dropped (its next owner reads it)");
                    }
                }
                revoked.clear();
            }
        }
        {
            let assigned = std::mem::take(&mut *lock(&shared.assigned));
            if !assigned.is_empty() {
                let mut tpl = TopicPartitionList::new();
                for (topic, partition, next) in assigned {
                    if let Some((t, _)) = topics.get(&topic) {
                        aligner.assign((t.clone(), partition), next, Instant::now());
                        tpl.add_partition(&topic, partition);
                    }
                }
                // A partition this consumer paused before it was revoked fetches again.
                if let Err(e) = consumer.resume(&tpl) {
                    tracing::warn!(error = %e, "resuming newly assigned partitions failed");
                }
            }
        }
        match polled {
            None => {}
            // librdkafka retries on its own; say so at most every few seconds.
            Some(Err(e))
                if last_error_log.is_none_or(|t: Instant| t.elapsed() > Duration::from_secs(5)) =>
            {
                last_error_log = Some(Instant::now());
                tracing::warn!(error = %e, "Kafka consumer error (librdkafka retries)");
            }
            Some(Err(_)) => {}
            Some(Ok(msg)) => {
                let Some((topic, source)) = topics.get(msg.topic()) else {
                    tracing::warn!(
                        topic = msg.topic(),
                        "message from a topic not configured; skipped"
                    );
                    continue;
                };
                let payload = msg.payload().unwrap_or_default();
                let offset = msg.offset();
                let partition = msg.partition();
                let part = (topic.clone(), partition);
                if !aligner.is_assigned(&part) {
                    // Not (or no longer) this worker's: never applied here; its owner reads it.
                    tracing::debug!(stream = %format!("{topic}/{partition}"), offset, "record of a partition not assigned to this worker left to its owner");
                    continue;
                }
                let next = aligner.next_offset(&part).unwrap_or(offset);
                if offset > next {
                    tracing::error!(
                        stream = %format!("{topic}/{partition}"),
                        expected = next,
                        got = offset,
                        "records missing from the partition (removed by retention or compaction before they were read)"
                    );
                }
                let record = RawRecord {
                    source: *source,
                    stream: format!("{topic}/{partition}"),
                    position: Position::Kafka {
                        topic: topic.clone(),
                        partition,
                        offset,
                    },
                    bytes: payload[..payload.len().min(cap)].to_vec(),
                    full_len: payload.len() as u64,
                };
                let mut item = match cfg.profile_of(topic) {
                    // A department's raw row, read through the topic's profile.
                    Some(p) => ingest_raw_row(record, &p.profile, &p.provenance),
                    None => {
                        let mut item = ingest_record(record, &limits);
                        item.profile = profile_header(&msg);
                        item
                    }
                };
                item.link_with(&engine.index());
                let invalid = item.result.is_err();
                let window = windows
                    .entry((topic.clone(), partition))
                    .or_insert_with(|| InvalidWindow::new(cfg.invalid_window));
                if let Some(n) = window.record(invalid, cfg.max_invalid_ratio) {
                    let resume_at = lock(&shared.committed)
                        .get(&(topic.to_string(), partition))
                        .copied()
                        .unwrap_or(0);
                    broken = Some(KafkaError::BrokenUpstream {
                        topic: topic.to_string(),
                        partition,
                        invalid: n,
                        window: cfg.invalid_window,
                        ratio: cfg.max_invalid_ratio,
                        resume_at,
                    });
                    // Nothing gathered is handed over: it is read again after the fix.
                    lock(&shared.gathering).clear();
                    break;
                }
                let time = item
                    .result
                    .as_ref()
                    .ok()
                    .map(|e| e.occurred_at.timestamp_micros());
                let meta = RecordMeta {
                    topic: topic.clone(),
                    partition,
                    offset,
                    timestamp_ms: msg.timestamp().to_millis(),
                    key: if invalid {
                        msg.key().map(<[u8]>::to_vec)
                    } else {
                        None
                    },
                };
                if let Some(Fetch::Pause(k)) = aligner.push(&part, offset, time, (item, meta)) {
                    set_paused(&consumer, &k, true);
                }
            }
        }
        release(shared, &consumer, &mut aligner);
        // Which partition the merge waits on while it holds records back, and for how long (the
        // stop log sums it up; an idle merge, holding nothing, waits on nobody).
        let holding = if aligner.held() > 0 {
            aligner.holding()
        } else {
            None
        };
        if held_by.as_ref().map(|(k, _)| k) != holding {
            let holding = holding.cloned();
            if let Some((k, since)) = held_by.take() {
                let waited = since.elapsed();
                merge_wait += waited;
                if waited >= Duration::from_millis(50) {
                    tracing::debug!(stream = %format!("{}/{}", k.0, k.1), ms = waited.as_millis() as u64, held = aligner.held(), watermarks = ?cached_watermarks(&consumer, &k.0, k.1), next = ?aligner.next_offset(&k), "a partition held the event-time merge back");
                }
            }
            held_by = holding.map(|k| (k, Instant::now()));
        }
        let due = lock(&shared.gathering).due(Instant::now());
        if due {
            shared.flush();
            aligner.restart_waits(Instant::now());
        }
        if lock(&shared.flow).applier_gone {
            break;
        }
        if shared.dirty.load(Ordering::Relaxed)
            && last_commit.elapsed() >= Duration::from_millis(200)
        {
            shared.dirty.store(false, Ordering::Relaxed);
            last_commit = Instant::now();
            let list = shared.commit_list(None);
            if list.count() > 0 {
                if let Err(e) = consumer.commit(&list, CommitMode::Async) {
                    tracing::debug!(error = %e, "committing offsets to Kafka failed (the database holds them)");
                }
            }
        }
    }
    if broken.is_none() {
        // Stopping: hand over what is gathered and wait for it to commit.
        shared.flush();
    }
    *lock(&shared.tx) = None;
    let drained = shared.drain(Duration::from_millis(cfg.drain_timeout_ms));
    if !drained {
        tracing::error!("in-flight batches did not commit within kafka.drain_timeout_ms; they are read again on restart");
    }
    let list = shared.commit_list(None);
    if list.count() > 0 {
        if let Err(e) = consumer.commit(&list, CommitMode::Sync) {
            tracing::warn!(error = %e, "committing offsets to Kafka on shutdown failed (the database holds them)");
        }
    }
    tracing::info!(
        reading_ms = reading_since.elapsed().as_millis() as u64,
        waiting_for_applier_ms = shared.handover_wait_us.load(Ordering::Relaxed) / 1000,
        waiting_for_partitions_ms = merge_wait.as_millis() as u64,
        "the consumer stops: time spent waiting for the database to take batches, and for a partition to deliver its next record (event-time order)"
    );
    // Leave the group now, so the partitions move to another worker at once.
    consumer.unsubscribe();
    drop(consumer);
    match broken {
        Some(e) => {
            shared.fail(e);
            Ok(())
        }
        None => Ok(()),
    }
}

/// Move what the aligner can release into the gathering, handing over each full batch.
fn release(
    shared: &Shared,
    consumer: &BaseConsumer<Ctx>,
    aligner: &mut Merger<Key, (Ingested, RecordMeta)>,
) {
    let mut flows = Vec::new();
    loop {
        // Empty partitions read to their high watermark (as last fetched) hold nobody back.
        aligner.refresh(Instant::now(), |(topic, partition), next| {
            matches!(
                cached_watermarks(consumer, topic, *partition),
                Some((low, high)) if next.max(low) >= high
            )
        });
        let mut moved = 0;
        let full = {
            let mut g = lock(&shared.gathering);
            let now = Instant::now();
            let mut full = None;
            while full.is_none() {
                let Some((_, record)) = aligner.pop(&mut flows) else {
                    break;
                };
                full = g.push(record, now);
                moved += 1;
            }
            full
        };
        for f in flows.drain(..) {
            if let Fetch::Resume(k) = f {
                set_paused(consumer, &k, false);
            }
        }
        if let Some(batch) = full {
            shared.hand_over(batch);
            aligner.restart_waits(Instant::now());
            if lock(&shared.flow).applier_gone {
                return;
            }
        } else if moved == 0 {
            return;
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

/// Pause or resume one partition's fetching (the aligner holds enough of it, or drained it).
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

/// Apply batches in the order they were gathered: the driver's applier (`apply_batches`: staging
/// ahead on PostgreSQL, retry while the database is away), with the dead-letter topic before each
/// commit and the partitions' offsets after it.
async fn apply_loop(
    shared: Arc<Shared>,
    engine: Arc<Engine>,
    mut rx: mpsc::Receiver<Batch>,
    producer: FutureProducer,
    started: Instant,
) -> Result<RunReport, KafkaError> {
    let mut report = RunReport::default();
    let hooks = KafkaHooks {
        shared: &shared,
        producer: &producer,
    };
    let result = apply_batches(
        &shared.store,
        &engine,
        &mut rx,
        &hooks,
        None,
        &mut report,
        started,
    )
    .await
    .map_err(KafkaError::from);
    if let Err(e) = &result {
        tracing::error!(error = %e, "the Kafka worker stops");
    }
    result.map(|()| report)
}

/// A batch handed to the applier is done (committed, or failed): wake whoever waits for it.
fn batch_done(shared: &Shared) {
    lock(&shared.flow).done += 1;
    shared.flow_changed.notify_all();
}

/// What the worker does around each commit.
struct KafkaHooks<'a> {
    shared: &'a Shared,
    producer: &'a FutureProducer,
}

impl BatchHooks<Vec<RecordMeta>> for KafkaHooks<'_> {
    /// The batch's refused records to the dead-letter topic, acknowledged.
    async fn before_commit(&self, batch: &Batch) {
        let t = Instant::now();
        send_dead_letters(self.shared, self.producer, batch).await;
        doudi_telemetry::observe_stage("dead_letter_topic", t.elapsed().as_secs_f64());
    }

    /// Its partitions' next offsets (committed to Kafka by the consumer thread), the batch done,
    /// the observer told.
    fn committed(&self, batch: &Batch, _outcome: &BatchOutcome, report: &RunReport) {
        let shared = self.shared;
        {
            let mut committed = lock(&shared.committed);
            for m in &batch.meta {
                let next = committed
                    .entry((m.topic.to_string(), m.partition))
                    .or_insert(0);
                *next = (*next).max(m.offset + 1);
            }
        }
        shared.dirty.store(true, Ordering::Relaxed);
        batch_done(shared);
        shared.observer.committed(&batch.meta, report);
    }

    /// A batch that failed is done too (the worker stops).
    fn failed(&self) {
        batch_done(self.shared);
    }
}

/// Whether a failed store operation may succeed if tried again (the driver's retry policy).
pub use doudi_pipeline::driver::retry::is_transient;

/// The dead-letter topic of a batch (`doudi_pipeline::driver::dead_letter`): each refused record
/// with its partition, offset, reason and key in headers.
struct DeadLetterTopicOf<'b> {
    topic: &'b str,
    producer: &'b FutureProducer,
    metas: &'b [RecordMeta],
}

impl DeadLetterTopic for DeadLetterTopicOf<'_> {
    fn send<'a>(&'a self, n: usize, item: &'a Ingested) -> Ack<'a> {
        let (Some(meta), Err(e)) = (self.metas.get(n), &item.result) else {
            return Box::pin(async { true });
        };
        let (code, reason) = (e.code(), e.to_string());
        let headers = OwnedHeaders::new_with_capacity(7)
            .insert(Header {
                key: "doudi.topic",
                value: Some(meta.topic.as_bytes()),
            })
            .insert(Header {
                key: "doudi.partition",
                value: Some(meta.partition.to_string().as_bytes()),
            })
            .insert(Header {
                key: "doudi.offset",
                value: Some(meta.offset.to_string().as_bytes()),
            })
            .insert(Header {
                key: "doudi.reason",
                value: Some(code.as_bytes()),
            })
            .insert(Header {
                key: "doudi.reason_text",
                value: Some(reason.as_bytes()),
            })
            .insert(Header {
                key: "doudi.source",
                value: Some(item.record.source.code().as_bytes()),
            })
            .insert(Header {
                key: "doudi.original_length",
                value: Some(item.record.full_len.to_string().as_bytes()),
            });
        let mut record = FutureRecord::<[u8], [u8]>::to(self.topic)
            .payload(&item.record.bytes)
            .headers(headers);
        if let Some(k) = &meta.key {
            record = record.key(k.as_slice());
        }
        match self.producer.send_result(record) {
            Ok(f) => Box::pin(async move {
                match f.await {
                    Ok(Ok(_)) => true,
                    Ok(Err((e, _))) => {
                        tracing::warn!(error = %e, "dead letter not acknowledged; retrying");
                        false
                    }
                    Err(_) => false,
                }
            }),
            Err((e, _)) => {
                tracing::warn!(error = %e, "cannot queue a dead letter; retrying");
                Box::pin(async { false })
            }
        }
    }
}

/// Send a batch's refused records to the dead-letter topic and wait for every acknowledgement
/// (retrying what failed), before the batch commits: each reaches the topic at least once.
async fn send_dead_letters(shared: &Shared, producer: &FutureProducer, batch: &Batch) {
    let topic = DeadLetterTopicOf {
        topic: &shared.cfg.dead_letter_topic,
        producer,
        metas: &batch.meta,
    };
    let backoff = Backoff::new(Duration::from_millis(200), Duration::from_secs(5));
    send_until_acknowledged(&topic, &batch.items, backoff).await;
}

/// The feed profile (`name@version`) a record says made it (`doudi produce --profile`), if any
/// and if it is short, plain text.
fn profile_header(msg: &rdkafka::message::BorrowedMessage<'_>) -> Option<std::sync::Arc<str>> {
    use rdkafka::message::{Headers, Message};
    let headers = msg.headers()?;
    let value = headers
        .iter()
        .find(|h| h.key == crate::produce::PROFILE_HEADER)?
        .value?;
    let text = std::str::from_utf8(value).ok()?;
    (!text.is_empty() && text.len() <= 128 && !text.chars().any(char::is_control))
        .then(|| std::sync::Arc::from(text))
}
