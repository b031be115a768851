//! A worker of the consumer group over the feed topics: the group's plumbing around the
//! driver's one reading loop and one applier.
//!
//! A consumer thread runs the reading loop (`doudi_pipeline::driver::read_records`) over the
//! consumer as a record source ([`crate::source`]): each message ingested (the same [`Ingested`]
//! record the file reader makes, its position a `Position::Kafka`), the records of all its
//! partitions released in event-time order (the driver's `Merger`: so a run's outcome does not
//! depend on how fetches interleave, nor on where it was interrupted) and gathered into batches
//! (by size or `kafka.linger_ms`), which a bounded channel carries to the driver's applier
//! (`apply_batches`). Before each batch commits, its invalid records go to the dead-letter topic
//! and are acknowledged (`KafkaHooks::before_commit`); the batch's effects and the next offset of
//! each of its partitions then commit in one database transaction, retried with backoff while the
//! database is away. Batches commit one at a time in the order they were released, so each
//! partition's records are applied in offset order, and a slow database fills the channel, then
//! the merger's and librdkafka's bounded read-ahead, and so slows the consumption. On PostgreSQL
//! the next batch, when one is waiting, is staged ahead on a second connection while the one
//! before it finishes (see `doudi_pipeline::driver::apply_batches`).
//!
//! The database is the truth: on assignment the consumer seeks each partition to its stored
//! position; on revoke and on shutdown it hands over what it has gathered, waits (within
//! `drain_timeout_ms`) until every batch is committed, then commits the same offsets to Kafka —
//! which it also does after each database commit, for monitoring only.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use doudi_pipeline::driver::dead_letter::{send_until_acknowledged, Ack, DeadLetterTopic};
use doudi_pipeline::driver::retry::Backoff;
use doudi_pipeline::driver::{
    apply_batches, read_records, BatchHooks, CancellationToken, Handover, InvalidGuard, Position,
    ReadOptions,
};
use doudi_pipeline::{BatchOutcome, Engine, Ingested, RunReport};
use doudi_store::Store;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use tokio::runtime::Handle;
use tokio::sync::mpsc;

use crate::group::{lock, Ctx, Observer, RecordMeta, Shared};
use crate::source::KafkaSource;
use crate::{KafkaConfig, KafkaError};

/// How much to gather and read ahead.
#[derive(Clone, Debug)]
pub struct SourceOptions {
    /// Records per transaction (at most).
    pub batch_size: usize,
    /// Batches gathered ahead of the applier (with librdkafka's prefetch, the bound on memory).
    pub channel_batches: usize,
}

/// A batch with each record's message details.
type Batch = doudi_pipeline::driver::Batch<Vec<RecordMeta>>;

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
        handover: Handover::new(
            opts.batch_size,
            Some(Duration::from_millis(cfg.linger_ms)),
            tx,
        ),
        committed: Mutex::new(HashMap::new()),
        dirty: AtomicBool::new(false),
        revoked: Mutex::new(HashSet::new()),
        assigned: Mutex::new(Vec::new()),
        stop: stop.clone(),
        fatal: Mutex::new(None),
        observer,
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
            .spawn(move || consume(&shared, consumer, &engine))
            .map_err(|e| KafkaError::Io {
                path: "kafka-consumer thread".into(),
                source: e,
            })?
    };
    let applier = tokio::spawn(apply_loop(shared.clone(), engine, rx, producer, started));
    let applied = wait_applier(applier, &shared).await;
    shared.handover.set_applier_gone();
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

/// The consumer thread: the reading loop over the consumer; on stop (or a broken upstream),
/// wait for what was handed over to commit, commit the offsets to Kafka, leave the group.
fn consume(
    shared: &Arc<Shared>,
    consumer: BaseConsumer<Ctx>,
    engine: &Engine,
) -> Result<(), KafkaError> {
    let cfg = &shared.cfg;
    let mut source = KafkaSource::new(shared.clone(), consumer, engine.limits);
    let opts = ReadOptions {
        wait: Duration::from_millis(cfg.align_wait_ms),
        buffer: cfg.align_buffer,
        guard: InvalidGuard {
            max_ratio: cfg.max_invalid_ratio,
            window: cfg.invalid_window,
        },
    };
    let reading_since = Instant::now();
    let read = read_records(&mut source, &shared.handover, &opts, &shared.stop, |item| {
        item.link_with(&engine.index())
    });
    shared.handover.close();
    if !shared
        .handover
        .drain(Duration::from_millis(cfg.drain_timeout_ms))
    {
        tracing::error!("in-flight batches did not commit within kafka.drain_timeout_ms; they are read again on restart");
    }
    source.leave();
    let merge_wait = read.as_ref().map(|s| s.merge_wait).unwrap_or_default();
    tracing::info!(
        reading_ms = reading_since.elapsed().as_millis() as u64,
        waiting_for_applier_ms = shared.handover.waited().as_millis() as u64,
        waiting_for_partitions_ms = merge_wait.as_millis() as u64,
        "the consumer stops: time spent waiting for the database to take batches, and for a partition to deliver its next record (event-time order)"
    );
    if let Err(e) = read {
        shared.fail(e);
    }
    Ok(())
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
            for item in &batch.items {
                if let Position::Kafka {
                    topic,
                    partition,
                    offset,
                } = &item.record.position
                {
                    let next = committed
                        .entry((topic.to_string(), *partition))
                        .or_insert(0);
                    *next = (*next).max(offset + 1);
                }
            }
        }
        shared.dirty.store(true, Ordering::Relaxed);
        shared.handover.done();
        shared.observer.committed(&batch.meta, report);
    }

    /// A batch that failed is done too (the worker stops).
    fn failed(&self) {
        self.shared.handover.done();
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
        let (
            Some(meta),
            Err(e),
            Position::Kafka {
                topic,
                partition,
                offset,
            },
        ) = (self.metas.get(n), &item.result, &item.record.position)
        else {
            return Box::pin(async { true });
        };
        let (code, reason) = (e.code(), e.to_string());
        let headers = OwnedHeaders::new_with_capacity(7)
            .insert(Header {
                key: "doudi.topic",
                value: Some(topic.as_bytes()),
            })
            .insert(Header {
                key: "doudi.partition",
                value: Some(partition.to_string().as_bytes()),
            })
            .insert(Header {
                key: "doudi.offset",
                value: Some(offset.to_string().as_bytes()),
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
