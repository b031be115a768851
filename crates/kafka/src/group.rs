//! What a worker's consumer thread, its rebalance callbacks and its applier share ([`Shared`]):
//! the consumer context ([`Ctx`]: librdkafka's log, errors, statistics and the rebalance
//! callbacks — start each assigned partition at its stored position, drain and commit before a
//! partition is revoked), the record's message details ([`RecordMeta`]) and the [`Observer`] of
//! assignments and commits. A leaf of the crate's worker: the record source ([`crate::source`])
//! and the run loop ([`crate::worker`]) both build on it.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use doudi_pipeline::driver::{CancellationToken, Handover};
use doudi_pipeline::RunReport;
use doudi_store::Store;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext};
use rdkafka::statistics::Statistics;
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use rdkafka::types::RDKafkaRespErr;
use rdkafka::ClientContext;
use tokio::runtime::Handle;

use crate::{KafkaConfig, KafkaError};

/// What a Kafka record carries beside its position (a `Position::Kafka` in its `RawRecord`)
/// until its batch commits: what only a message has.
#[derive(Clone, Debug, Default)]
pub struct RecordMeta {
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

/// What the consumer thread, its rebalance callbacks and the applier share.
pub(crate) struct Shared {
    pub(crate) cfg: KafkaConfig,
    pub(crate) store: Store,
    pub(crate) handle: Handle,
    /// The batch being gathered and the channel to the applier.
    pub(crate) handover: Handover<RecordMeta>,
    /// The next offset of each assigned partition as committed in the database.
    pub(crate) committed: Mutex<HashMap<(String, i32), i64>>,
    /// Partitions whose database commit moved since the last commit to Kafka.
    pub(crate) dirty: AtomicBool,
    /// Partitions revoked since the consumer thread last looked (their windows restart).
    pub(crate) revoked: Mutex<HashSet<(String, i32)>>,
    /// Partitions assigned since the consumer thread last looked, with their next offsets.
    pub(crate) assigned: Mutex<Vec<(String, i32, i64)>>,
    pub(crate) stop: CancellationToken,
    pub(crate) fatal: Mutex<Option<KafkaError>>,
    pub(crate) observer: Arc<dyn Observer>,
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Shared {
    pub(crate) fn fail(&self, e: KafkaError) {
        let mut f = lock(&self.fatal);
        if f.is_none() {
            *f = Some(e);
        }
        self.stop.cancel();
    }

    pub(crate) fn commit_list(&self, only: Option<&HashSet<(String, i32)>>) -> TopicPartitionList {
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
    pub(crate) fn stored_positions(
        &self,
    ) -> Option<HashMap<(String, String), doudi_store::Position>> {
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

pub(crate) struct Ctx(pub(crate) Arc<Shared>);

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

/// The topics and partitions of a rebalance's list.
fn partitions<C: FromIterator<(String, i32)>>(tpl: &TopicPartitionList) -> C {
    tpl.elements()
        .iter()
        .map(|e| (e.topic().to_string(), e.partition()))
        .collect()
}

impl Ctx {
    /// Start each partition at its stored position (the next offset), or at the beginning.
    pub(crate) fn on_assign(&self, tpl: &mut TopicPartitionList) {
        let s = &self.0;
        let parts: Vec<(String, i32)> = partitions(tpl);
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
    pub(crate) fn on_revoke(&self, consumer: &BaseConsumer<Self>, tpl: &TopicPartitionList) {
        let s = &self.0;
        let revoked: HashSet<(String, i32)> = partitions(tpl);
        s.handover.flush();
        let within = Duration::from_millis(s.cfg.drain_timeout_ms);
        if !s.handover.drain(within) {
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
