//! A sample of the feed topics, for training the identity model where the records are (a
//! Kafka-only deployment has no feed files): up to N records of every partition from its
//! beginning, read by a consumer of its own (manual assignment, no group membership, no offset
//! committed), so the workers' positions are untouched.
//!
//! Records that do not parse are counted and skipped (they are the dead-letter path's business);
//! nothing about a record is logged.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use doudi_model::{parse_event, ParseLimits, Subject};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{Message, Offset, TopicPartitionList};

use crate::{KafkaConfig, KafkaError};

/// What a sample read.
#[derive(Debug, Default)]
pub struct Sample {
    /// The subjects of the valid records.
    pub subjects: Vec<Subject>,
    /// Records read (valid and not).
    pub read: u64,
    /// Records that did not parse.
    pub invalid: u64,
    /// Partitions that held records.
    pub partitions: usize,
    /// Partitions not read to their target before the deadline.
    pub incomplete: usize,
}

/// Read up to `per_partition` records from the beginning of every partition of the feed topics,
/// within `timeout` overall. Blocking: call it from a blocking thread.
pub fn sample_subjects(
    cfg: &KafkaConfig,
    per_partition: usize,
    limits: &ParseLimits,
    timeout: Duration,
) -> Result<Sample, KafkaError> {
    let deadline = Instant::now() + timeout;
    let mut client = cfg.client();
    client
        .set("group.id", format!("{}-linkage-sample", cfg.group_id))
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("enable.partition.eof", "false");
    let consumer: BaseConsumer = client
        .create()
        .map_err(KafkaError::client("creating the sampling consumer"))?;
    let wait = timeout.min(Duration::from_secs(10));
    let mut tpl = TopicPartitionList::new();
    // (topic, partition) → the offset to stop before
    let mut targets: BTreeMap<(String, i32), i64> = BTreeMap::new();
    for (topic, _) in cfg.topics.all() {
        let meta = consumer
            .fetch_metadata(Some(topic), wait)
            .map_err(KafkaError::client("reading topic metadata"))?;
        for t in meta.topics() {
            for p in t.partitions() {
                let (low, high) = consumer
                    .fetch_watermarks(topic, p.id(), wait)
                    .map_err(KafkaError::client("reading partition offsets"))?;
                if high > low {
                    let stop = high.min(low.saturating_add(per_partition as i64));
                    tpl.add_partition_offset(topic, p.id(), Offset::Offset(low))
                        .map_err(KafkaError::client("assigning a partition"))?;
                    targets.insert((topic.to_string(), p.id()), stop);
                }
            }
        }
    }
    let mut sample = Sample {
        partitions: targets.len(),
        ..Sample::default()
    };
    if targets.is_empty() || per_partition == 0 {
        return Ok(sample);
    }
    consumer
        .assign(&tpl)
        .map_err(KafkaError::client("assigning the partitions"))?;
    while !targets.is_empty() && Instant::now() < deadline {
        let Some(msg) = consumer.poll(Duration::from_millis(200)) else {
            continue;
        };
        let msg = msg.map_err(KafkaError::client("reading a sample"))?;
        let key = (msg.topic().to_string(), msg.partition());
        let Some(stop) = targets.get(&key).copied() else {
            continue;
        };
        if msg.offset() >= stop {
            targets.remove(&key);
            continue;
        }
        sample.read += 1;
        match msg.payload().map(|p| parse_event(p, limits)) {
            Some(Ok(event)) => sample.subjects.push(event.subject),
            _ => sample.invalid += 1,
        }
        if msg.offset() + 1 >= stop {
            targets.remove(&key);
        }
    }
    sample.incomplete = targets.len();
    Ok(sample)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dev::DevBroker;
    use rdkafka::producer::{BaseProducer, BaseRecord, Producer};

    fn event(n: usize) -> String {
        serde_json::json!({
            "event_id": format!("YB-{n}"), "source": "health_insurance", "kind": "serious_illness_diagnosed",
            "occurred_at": "2026-02-12T10:05:00+08:00",
            "subject": {"id_number": "34240119490127046X", "name": "陈桂兰", "birth_date": "1949-01-27",
                "sex": "female", "region_code": "341502001003"},
            "data": {"diagnosis": "C34.9", "description": "肺恶性肿瘤", "diagnosed_on": "2026-02-12"}
        })
        .to_string()
    }

    #[test]
    fn reads_up_to_n_records_per_partition_from_the_beginning_and_counts_bad_ones() {
        let mut cfg = KafkaConfig::default();
        let broker = DevBroker::start(&cfg, 1, 2).unwrap();
        cfg.brokers = broker.bootstrap();
        let producer: BaseProducer = cfg.producer().create().unwrap();
        let topic = cfg.topics.all()[0].0.to_string();
        for n in 0..30 {
            let payload = if n == 3 {
                "not json".to_string()
            } else {
                event(n)
            };
            producer
                .send(
                    BaseRecord::<(), String>::to(&topic)
                        .payload(&payload)
                        .partition((n % 2) as i32),
                )
                .unwrap();
        }
        producer.flush(Duration::from_secs(10)).unwrap();
        let limits = ParseLimits::default();
        let s = sample_subjects(&cfg, 10, &limits, Duration::from_secs(30)).unwrap();
        assert_eq!(s.partitions, 2);
        assert_eq!(s.incomplete, 0);
        assert_eq!(s.read, 20, "10 per partition");
        assert_eq!(s.invalid, 1);
        assert_eq!(s.subjects.len(), 19);
        assert_eq!(s.subjects[0].name.as_deref(), Some("陈桂兰"));
        // everything there is, when a partition holds fewer than asked
        let all = sample_subjects(&cfg, 1000, &limits, Duration::from_secs(30)).unwrap();
        assert_eq!(all.read, 30);
    }
}
