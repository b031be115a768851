//! Notices to the Kafka `warnings` topic, keyed by household, from the notices outbox.
//!
//! It runs in `doudi deliver --brokers` — one process, beside the webhook delivery — not in the
//! workers: workers scale out and come and go with rebalances, while publication must follow
//! one order (notice order) and one record of what was published. Each pass reads unpublished
//! notices in notice order, sends them with an idempotent producer (the broker drops the
//! producer's own retries, so a partition never holds a send twice nor out of order), waits for
//! every acknowledgement and records each notice's partition and offset in the store.
//!
//! A crash between the acknowledgement and the record would publish again on restart; so on
//! start [`Publisher::recover`] reads the tail of every partition (as many messages as a pass can
//! send) and records the notices it finds there (`doudi.notice_id` header) before publishing
//! anything: a restart neither loses nor repeats a notice. One publisher per topic.
//!
//! The payload is `doudi-deliver`'s item for the notice: IDs and names masked.

use std::time::Duration;

use doudi_store::Store;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Header, Headers, Message, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use serde::Serialize;

use crate::{KafkaConfig, KafkaError};

/// What a pass (or a run) published.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct PublishReport {
    /// Notices published and recorded.
    pub published: u64,
    /// Notices found on the topic at start but not recorded (a crash after sending): recorded now.
    pub recovered: u64,
}

/// Publishes the outbox to the warnings topic.
pub struct Publisher {
    cfg: KafkaConfig,
    producer: FutureProducer,
    web_base_url: String,
}

const NOTICE_HEADER: &str = "doudi.notice_id";

impl Publisher {
    pub fn new(cfg: &KafkaConfig, web_base_url: &str) -> Result<Publisher, KafkaError> {
        let producer = cfg
            .producer()
            .create()
            .map_err(KafkaError::client("creating the warnings producer"))?;
        Ok(Publisher {
            cfg: cfg.clone(),
            producer,
            web_base_url: web_base_url.to_string(),
        })
    }

    /// Record the notices already on the topic (its last `publish_batch` messages per partition)
    /// that the store does not know as published.
    pub async fn recover(&self, store: &Store) -> Result<u64, KafkaError> {
        let cfg = self.cfg.clone();
        let found = tokio::task::spawn_blocking(move || read_tail(&cfg))
            .await
            .map_err(|_| KafkaError::ReaderGone)??;
        if found.is_empty() {
            return Ok(0);
        }
        let n = store.mark_kafka_published(&found).await?;
        if n > 0 {
            tracing::info!(
                notices = n,
                "notices found on the warnings topic but not recorded (a crash after sending): recorded"
            );
        }
        Ok(n)
    }

    /// Publish up to `publish_batch` unpublished notices, in notice order; returns how many.
    pub async fn pass(&self, store: &Store) -> Result<u64, KafkaError> {
        let limit = i64::try_from(self.cfg.publish_batch).unwrap_or(i64::MAX);
        let notices = store.kafka_unpublished_notices(limit).await?;
        if notices.is_empty() {
            return Ok(0);
        }
        let mut waiting = Vec::with_capacity(notices.len());
        for n in &notices {
            let item = doudi_deliver::payload::item(n, &self.web_base_url);
            let body = serde_json::to_vec(&item)
                .map_err(|e| KafkaError::Publish(format!("cannot encode a notice: {e}")))?;
            let id = n.notice_id.to_string();
            let headers = OwnedHeaders::new_with_capacity(3)
                .insert(Header {
                    key: NOTICE_HEADER,
                    value: Some(id.as_bytes()),
                })
                .insert(Header {
                    key: "doudi.notice",
                    value: Some(n.kind.as_bytes()),
                })
                .insert(Header {
                    key: "doudi.level",
                    value: Some(n.level.code().as_bytes()),
                });
            let record = FutureRecord::to(&self.cfg.warnings_topic)
                .key(n.household_id.as_bytes())
                .payload(&body)
                .headers(headers);
            match self.producer.send_result(record) {
                Ok(f) => waiting.push((n.notice_id, Some(f))),
                Err((e, _)) => {
                    waiting.push((n.notice_id, None));
                    tracing::warn!(error = %e, "cannot queue a notice");
                    break;
                }
            }
        }
        let mut done = Vec::with_capacity(waiting.len());
        let mut failure = None;
        for (id, f) in waiting {
            let r = match f {
                Some(f) => match f.await {
                    Ok(Ok(d)) => Ok((d.partition, d.offset)),
                    Ok(Err((e, _))) => Err(KafkaError::client("publishing a notice")(e)),
                    Err(_) => Err(KafkaError::Publish("the producer went away".into())),
                },
                None => Err(KafkaError::Publish("the producer's queue is full".into())),
            };
            match r {
                // Every acknowledged notice is on the topic: record it, so it is never sent
                // again (a failed one is retried in the next pass).
                Ok((p, o)) => done.push((id, p, o)),
                Err(e) => {
                    failure.get_or_insert(e);
                }
            }
        }
        let n = store.mark_kafka_published(&done).await?;
        match failure {
            Some(e) => Err(e),
            None => Ok(n),
        }
    }

    /// Recover, then publish until `shutdown` resolves, looking for new notices every `poll`.
    /// A failed pass (broker away) is retried with backoff.
    pub async fn run(
        &self,
        store: &Store,
        poll: Duration,
        shutdown: impl std::future::Future<Output = ()>,
    ) -> Result<PublishReport, KafkaError> {
        let mut report = PublishReport {
            recovered: self.recover(store).await?,
            ..PublishReport::default()
        };
        tokio::pin!(shutdown);
        let mut delay = Duration::from_millis(200);
        loop {
            let wait = match self.pass(store).await {
                Ok(0) => poll,
                Ok(n) => {
                    report.published += n;
                    delay = Duration::from_millis(200);
                    Duration::ZERO
                }
                Err(e @ KafkaError::Store(_)) => return Err(e),
                Err(e) => {
                    tracing::warn!(error = %e, "publishing notices failed; retrying");
                    delay = (delay * 2).min(Duration::from_secs(10));
                    delay
                }
            };
            tokio::select! {
                _ = &mut shutdown => break,
                _ = tokio::time::sleep(wait) => {}
            }
        }
        Ok(report)
    }

    /// Recover, then publish everything pending now and stop.
    pub async fn once(&self, store: &Store) -> Result<PublishReport, KafkaError> {
        let mut report = PublishReport {
            recovered: self.recover(store).await?,
            ..PublishReport::default()
        };
        loop {
            let n = self.pass(store).await?;
            if n == 0 {
                break;
            }
            report.published += n;
        }
        Ok(report)
    }
}

/// `(notice_id, partition, offset)` of the notices among the last `publish_batch` messages of
/// every partition of the warnings topic.
fn read_tail(cfg: &KafkaConfig) -> Result<Vec<(i64, i32, i64)>, KafkaError> {
    let mut c = cfg.client();
    c.set("group.id", format!("{}-publisher-recovery", cfg.group_id))
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "true");
    let consumer: BaseConsumer<crate::Quiet> = c
        .create_with_context(crate::Quiet)
        .map_err(KafkaError::client("creating the recovery reader"))?;
    let topic = cfg.warnings_topic.as_str();
    let meta = consumer
        .fetch_metadata(Some(topic), Duration::from_secs(30))
        .map_err(KafkaError::client("reading the warnings topic's metadata"))?;
    let partitions: Vec<i32> = meta
        .topics()
        .iter()
        .filter(|t| t.name() == topic)
        .flat_map(|t| t.partitions().iter().map(|p| p.id()))
        .collect();
    let mut tpl = TopicPartitionList::new();
    let mut remaining = 0usize;
    for p in &partitions {
        let (low, high) = consumer
            .fetch_watermarks(topic, *p, Duration::from_secs(30))
            .map_err(KafkaError::client(
                "reading the warnings topic's watermarks",
            ))?;
        if high > low {
            let from = (high - cfg.publish_batch as i64).max(low);
            tpl.add_partition_offset(topic, *p, Offset::Offset(from))
                .map_err(KafkaError::client("preparing the recovery read"))?;
            remaining += 1;
        }
    }
    if remaining == 0 {
        return Ok(Vec::new());
    }
    consumer
        .assign(&tpl)
        .map_err(KafkaError::client("assigning the warnings topic"))?;
    let mut found = Vec::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while remaining > 0 {
        if std::time::Instant::now() > deadline {
            return Err(KafkaError::Publish(
                "could not read the tail of the warnings topic within 60 s".into(),
            ));
        }
        match consumer.poll(Duration::from_millis(200)) {
            None => {}
            Some(Err(rdkafka::error::KafkaError::PartitionEOF(_))) => remaining -= 1,
            Some(Err(e)) => tracing::warn!(error = %e, "reading the warnings topic (retrying)"),
            Some(Ok(m)) => {
                let id = m.headers().and_then(|h| {
                    h.iter()
                        .find(|h| h.key == NOTICE_HEADER)
                        .and_then(|h| h.value)
                        .and_then(|v| std::str::from_utf8(v).ok())
                        .and_then(|v| v.parse::<i64>().ok())
                });
                if let Some(id) = id {
                    found.push((id, m.partition(), m.offset()));
                }
            }
        }
    }
    Ok(found)
}
