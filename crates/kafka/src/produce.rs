//! Publishing a JSONL file of feed events to a topic, each keyed by the person it is about (the
//! subject's ID number as the department typed it, trimmed and with an upper-case `X`), so that a
//! person's events stay in one partition and in order.
//!
//! Every non-blank line is published as is, bad ones included: refusing records is the worker's
//! job (dead letters with a reason), not the producer's. A line whose ID number cannot be read
//! (not JSON, no subject) is published without a key and counted.

use std::collections::VecDeque;
use std::io::BufRead;
use std::path::Path;
use std::time::Duration;

use rdkafka::producer::{FutureProducer, FutureRecord};
use serde::Serialize;

use crate::{KafkaConfig, KafkaError};

/// What a file's publication did.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct ProduceReport {
    /// Lines published (acknowledged by the broker).
    pub published: u64,
    /// Of those, lines published without a key (no readable ID number).
    pub unkeyed: u64,
    /// The first few of those line numbers (from 1).
    pub unkeyed_lines: Vec<u64>,
    /// Blank lines skipped.
    pub blank: u64,
    pub bytes: u64,
}

/// The key of a feed event: its subject's ID number, lightly normalised; `None` if unreadable.
pub fn person_key(line: &[u8]) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct Envelope {
        subject: Option<Subject>,
    }
    #[derive(serde::Deserialize)]
    struct Subject {
        id_number: Option<String>,
    }
    let e: Envelope = serde_json::from_slice(line).ok()?;
    let id: String = e
        .subject?
        .id_number?
        .chars()
        .filter(|c| !c.is_whitespace())
        .map(|c| if c == 'x' { 'X' } else { c })
        .collect();
    (!id.is_empty()).then_some(id)
}

/// The header carrying the feed profile (`name@version`) that made an event from a department's
/// export (`doudi produce --profile`); the worker stores it with the event, as the file reader does.
pub const PROFILE_HEADER: &str = "doudi-profile";

/// Queues records and settles their acknowledgements, bounded.
struct Publisher {
    producer: FutureProducer,
    inflight: VecDeque<rdkafka::producer::DeliveryFuture>,
    report: ProduceReport,
}

impl Publisher {
    fn new(cfg: &KafkaConfig) -> Result<Publisher, KafkaError> {
        let producer: FutureProducer = cfg
            .producer()
            .set("linger.ms", "20")
            .set("batch.num.messages", "10000")
            .create()
            .map_err(KafkaError::client("creating the producer"))?;
        Ok(Publisher {
            producer,
            inflight: VecDeque::new(),
            report: ProduceReport::default(),
        })
    }

    /// Queue one record (`number`: its line or row, for the report of unkeyed ones).
    async fn send(
        &mut self,
        topic: &str,
        line: &[u8],
        number: u64,
        profile: Option<&str>,
    ) -> Result<(), KafkaError> {
        let key = person_key(line);
        if key.is_none() {
            self.report.unkeyed += 1;
            if self.report.unkeyed_lines.len() < 20 {
                self.report.unkeyed_lines.push(number);
            }
        }
        let mut record = record(topic, line, key.as_deref(), profile);
        loop {
            match self.producer.send_result(record) {
                Ok(f) => {
                    self.inflight.push_back(f);
                    break;
                }
                Err((e, r)) if queue_full(&e) => {
                    record = r;
                    match self.inflight.pop_front() {
                        Some(f) => settle(f, &mut self.report).await?,
                        None => tokio::time::sleep(Duration::from_millis(10)).await,
                    }
                }
                Err((e, _)) => return Err(KafkaError::client("queueing a line")(e)),
            }
        }
        while self.inflight.len() > 50_000 {
            if let Some(f) = self.inflight.pop_front() {
                settle(f, &mut self.report).await?;
            }
        }
        Ok(())
    }

    /// Wait for every acknowledgement.
    async fn finish(mut self) -> Result<ProduceReport, KafkaError> {
        while let Some(f) = self.inflight.pop_front() {
            settle(f, &mut self.report).await?;
        }
        Ok(self.report)
    }
}

/// Publish every line of `path` to `topic`; `progress` is told the bytes read so far.
pub async fn produce_file(
    cfg: &KafkaConfig,
    topic: &str,
    path: &Path,
    progress: &(dyn Fn(u64) + Send + Sync),
) -> Result<ProduceReport, KafkaError> {
    let mut publisher = Publisher::new(cfg)?;
    let io = |e| KafkaError::Io {
        path: path.to_path_buf(),
        source: e,
    };
    let file = std::fs::File::open(path).map_err(io)?;
    let mut reader = std::io::BufReader::with_capacity(1 << 20, file);
    let mut line = Vec::new();
    let mut number = 0u64;
    let mut next_progress = 0u64;
    let mut bytes = 0u64;
    let mut blank = 0u64;
    loop {
        line.clear();
        let n = reader.read_until(b'\n', &mut line).map_err(io)?;
        if n == 0 {
            break;
        }
        number += 1;
        bytes += n as u64;
        while line.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
            line.pop();
        }
        if line.iter().all(u8::is_ascii_whitespace) {
            blank += 1;
            continue;
        }
        publisher.send(topic, &line, number, None).await?;
        if bytes >= next_progress {
            progress(bytes);
            next_progress = bytes + (1 << 20);
        }
    }
    let mut report = publisher.finish().await?;
    report.bytes = bytes;
    report.blank = blank;
    progress(bytes);
    Ok(report)
}

/// Publish events made elsewhere (a department's export read through its feed profile), each an
/// envelope event's JSON with the number of the row it came from, and the profile's
/// `name@version` in the [`PROFILE_HEADER`] header.
pub async fn produce_events(
    cfg: &KafkaConfig,
    topic: &str,
    profile: &str,
    events: impl Iterator<Item = (u64, Vec<u8>)>,
) -> Result<ProduceReport, KafkaError> {
    let mut publisher = Publisher::new(cfg)?;
    let mut bytes = 0u64;
    for (row, json) in events {
        bytes += json.len() as u64;
        publisher.send(topic, &json, row, Some(profile)).await?;
    }
    let mut report = publisher.finish().await?;
    report.bytes = bytes;
    Ok(report)
}

/// A producer kept for `doudi serve`'s HTTP push in Kafka mode (`serve.push_to = "kafka"`):
/// each batch is produced to its source's topic, keyed by person like `doudi produce`, and
/// [`PushProducer::publish`] returns only once every record is acknowledged by all in-sync
/// replicas (`acks=all`, idempotent: see [`KafkaConfig::producer`]).
pub struct PushProducer {
    producer: FutureProducer,
    topics: crate::Topics,
}

impl std::fmt::Debug for PushProducer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PushProducer")
            .field("topics", &self.topics)
            .finish_non_exhaustive()
    }
}

impl PushProducer {
    pub fn new(cfg: &KafkaConfig) -> Result<PushProducer, KafkaError> {
        let producer: FutureProducer = cfg
            .producer()
            .create()
            .map_err(KafkaError::client("creating the push producer"))?;
        Ok(PushProducer {
            producer,
            topics: cfg.topics.clone(),
        })
    }

    /// The topic `source`'s events go to (`kafka.topics`).
    pub fn topic(&self, source: doudi_model::Source) -> &str {
        self.topics.topic_of(source)
    }

    /// Produce `lines` (envelope JSON each) to `source`'s topic, the profile's `name@version` in
    /// the [`PROFILE_HEADER`] header when given; `Ok` once every one is acknowledged. On an error
    /// some may have been written: the caller answers that nothing may be taken as stored, and a
    /// repeat is stored once (events are unique by source and id).
    pub async fn publish(
        &self,
        source: doudi_model::Source,
        lines: &[Vec<u8>],
        profile: Option<&str>,
    ) -> Result<String, KafkaError> {
        let topic = self.topic(source).to_string();
        let mut inflight = Vec::with_capacity(lines.len());
        for line in lines {
            let key = person_key(line);
            let mut record = record(&topic, line, key.as_deref(), profile);
            loop {
                match self.producer.send_result(record) {
                    Ok(f) => {
                        inflight.push(f);
                        break;
                    }
                    Err((e, r)) if queue_full(&e) => {
                        record = r;
                        tokio::time::sleep(Duration::from_millis(5)).await;
                    }
                    Err((e, _)) => return Err(KafkaError::client("queueing a pushed event")(e)),
                }
            }
        }
        let mut report = ProduceReport::default();
        for f in inflight {
            settle(f, &mut report).await?;
        }
        Ok(topic)
    }
}

/// The record of `line` for `topic`: keyed by its person when it names one (so that one
/// person's events stay in order on one partition), the profile's name in [`PROFILE_HEADER`]
/// when given.
fn record<'a>(
    topic: &'a str,
    line: &'a [u8],
    key: Option<&'a str>,
    profile: Option<&'a str>,
) -> FutureRecord<'a, str, [u8]> {
    let mut record = FutureRecord::<str, [u8]>::to(topic).payload(line);
    if let Some(k) = key {
        record = record.key(k);
    }
    if let Some(p) = profile {
        record = record.headers(rdkafka::message::OwnedHeaders::new().insert(
            rdkafka::message::Header {
                key: PROFILE_HEADER,
                value: Some(p.as_bytes()),
            },
        ));
    }
    record
}

/// Whether a send was refused only because the producer's queue is full (make room, then retry).
fn queue_full(e: &rdkafka::error::KafkaError) -> bool {
    matches!(
        e,
        rdkafka::error::KafkaError::MessageProduction(rdkafka::types::RDKafkaErrorCode::QueueFull)
    )
}

async fn settle(
    f: rdkafka::producer::DeliveryFuture,
    report: &mut ProduceReport,
) -> Result<(), KafkaError> {
    match f.await {
        Ok(Ok(_)) => {
            report.published += 1;
            Ok(())
        }
        Ok(Err((e, _))) => Err(KafkaError::client("publishing a line")(e)),
        Err(_) => Err(KafkaError::Publish("the producer went away".into())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_key_is_the_subjects_id_number_and_unreadable_lines_have_none() {
        assert_eq!(
            person_key(br#"{"event_id":"a","subject":{"id_number":" 34240119490127046x "}}"#),
            Some("34240119490127046X".into())
        );
        assert_eq!(person_key(br#"{"event_id":"a","subject":{}}"#), None);
        assert_eq!(person_key(b"not json"), None);
        assert_eq!(person_key(br#"{"subject":{"id_number":""}}"#), None);
    }
}
