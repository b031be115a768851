//! A development broker: librdkafka's Kafka-protocol mock cluster on loopback, with the feed,
//! dead-letter and warnings topics, and a line protocol to inject faults while workers run in
//! other processes (`doudi dev-broker`): whole brokers down or slow, requests failing, and one
//! partition held back (its records reach consumers a chosen time after the others').

use std::time::Duration;

use rdkafka::mocking::MockCluster;
use rdkafka::producer::{BaseProducer, DefaultProducerContext, Producer};
use rdkafka::types::{RDKafkaApiKey, RDKafkaRespErr};
use rdkafka::ClientConfig;

use crate::{KafkaConfig, KafkaError};

/// A running mock cluster (dropped: stopped). Not `Send`: keep it on the thread that made it.
pub struct DevBroker {
    /// The client that owns the cluster (`test.mock.num.brokers`): the cluster lives as long as it.
    owner: BaseProducer,
    brokers: i32,
    /// Every topic and its partition count, to move leaders (`slow`).
    topics: Vec<(String, i32)>,
}

impl DevBroker {
    /// Start `brokers` brokers and create every topic of `cfg` with `partitions` partitions.
    pub fn start(
        cfg: &KafkaConfig,
        brokers: i32,
        partitions: i32,
    ) -> Result<DevBroker, KafkaError> {
        let owner: BaseProducer = ClientConfig::new()
            .set("test.mock.num.brokers", brokers.to_string())
            .create()
            .map_err(KafkaError::client("starting the mock cluster"))?;
        let mut broker = DevBroker {
            owner,
            brokers,
            topics: Vec::new(),
        };
        let mut topics: Vec<String> = cfg
            .topics
            .all()
            .iter()
            .map(|(t, _)| t.to_string())
            .collect();
        topics.push(cfg.dead_letter_topic.clone());
        topics.push(cfg.warnings_topic.clone());
        for t in topics {
            broker
                .create_topic(&t, partitions)
                .map_err(|e| KafkaError::Config(format!("creating topic {t}: {e}")))?;
        }
        Ok(broker)
    }

    /// The cluster, borrowed from the client that owns it.
    fn cluster(&self) -> Result<MockCluster<'_, DefaultProducerContext>, String> {
        self.owner
            .client()
            .mock_cluster()
            .ok_or_else(|| "the mock cluster is gone".to_string())
    }

    fn create_topic(&mut self, topic: &str, partitions: i32) -> Result<(), String> {
        self.cluster()?
            .create_topic(topic, partitions, self.brokers.min(3))
            .map_err(|e| e.to_string())?;
        self.topics.retain(|(t, _)| t != topic);
        self.topics.push((topic.to_string(), partitions));
        Ok(())
    }

    /// The bootstrap address (`127.0.0.1:PORT,…`).
    pub fn bootstrap(&self) -> String {
        self.cluster()
            .map(|c| c.bootstrap_servers())
            .unwrap_or_default()
    }

    /// Answer the next `count` requests of `api` that broker `id` receives `delay` late (the
    /// broker's other requests as usual).
    fn delay_requests(
        &self,
        id: i32,
        api: RDKafkaApiKey,
        delay: Duration,
        count: usize,
    ) -> Result<(), String> {
        let ms = std::os::raw::c_int::try_from(delay.as_millis())
            .map_err(|_| "the delay is too long".to_string())?;
        // SAFETY: the cluster belongs to `self.owner`'s handle, alive for this borrow;
        // librdkafka locks the cluster while it pushes; each call passes exactly one
        // (error code, milliseconds) pair of C ints, as `cnt` = 1 announces.
        unsafe {
            let cluster =
                rdkafka::bindings::rd_kafka_handle_mock_cluster(self.owner.client().native_ptr());
            if cluster.is_null() {
                return Err("the mock cluster is gone".into());
            }
            for _ in 0..count {
                let err = rdkafka::bindings::rd_kafka_mock_broker_push_request_error_rtts(
                    cluster,
                    id,
                    i16::from(api),
                    1,
                    RDKafkaRespErr::RD_KAFKA_RESP_ERR_NO_ERROR as std::os::raw::c_int,
                    ms,
                );
                if err != RDKafkaRespErr::RD_KAFKA_RESP_ERR_NO_ERROR {
                    return Err(format!("broker {id}: {err:?}"));
                }
            }
        }
        Ok(())
    }

    /// Hold one partition back: the last broker (set aside) leads `topic`/`partition` alone,
    /// every other partition it led moves to the others, and its next Fetch is answered `delay`
    /// late — so the partition's records reach a consumer at least `delay` after the other
    /// partitions' (the first Fetch after the command; later ones as usual). Needs 2 brokers.
    fn hold_back(&self, topic: &str, partition: i32, delay: Duration) -> Result<i32, String> {
        if self.brokers < 2 {
            return Err("slow needs a broker set aside: start with --brokers 2 or more".into());
        }
        let Some((_, count)) = self.topics.iter().find(|(t, _)| t == topic) else {
            return Err(format!("no topic {topic:?}"));
        };
        if partition < 0 || partition >= *count {
            return Err(format!("{topic} has partitions 0 to {}", count - 1));
        }
        let aside = self.brokers;
        let cluster = self.cluster()?;
        for (t, n) in &self.topics {
            for p in 0..*n {
                let leader = if t == topic && p == partition {
                    aside
                } else {
                    1 + p % (aside - 1)
                };
                cluster
                    .partition_leader(t, p, Some(leader))
                    .map_err(|e| format!("moving {t}/{p} to broker {leader}: {e}"))?;
            }
        }
        self.delay_requests(aside, RDKafkaApiKey::Fetch, delay, 1)?;
        Ok(aside)
    }

    /// Apply one fault command; the answer (`ok …`) or why not (`error …` without the prefix).
    ///
    /// - `down ID` / `up ID`: take broker ID (1-based) down or bring it back;
    /// - `rtt ID MS`: delay broker ID's responses by MS milliseconds;
    /// - `delay ID API MS [COUNT]`: answer the next COUNT (1) requests of API broker ID receives
    ///   MS milliseconds late, its other requests as usual;
    /// - `lead TOPIC PARTITION ID`: broker ID leads that partition from now on;
    /// - `slow TOPIC PARTITION MS`: hold that partition back — the last broker leads it alone
    ///   and answers its next Fetch MS late, so its records reach a consumer at least MS after
    ///   the other partitions' (needs 2 brokers or more);
    /// - `errors API COUNT CODE`: the next COUNT requests of API (Fetch, Produce, Metadata,
    ///   OffsetCommit, OffsetFetch, JoinGroup, SyncGroup, Heartbeat, FindCoordinator,
    ///   ListOffsets, InitProducerId, LeaveGroup) fail with CODE (a name such as
    ///   NOT_LEADER_FOR_PARTITION, REQUEST_TIMED_OUT, TRANSPORT — or its number);
    /// - `clear API`: forget the errors pushed for API;
    /// - `create TOPIC PARTITIONS`: create a topic.
    pub fn command(&mut self, line: &str) -> Result<String, String> {
        let words: Vec<&str> = line.split_whitespace().collect();
        let brokers = self.brokers;
        let broker = |w: Option<&&str>| -> Result<i32, String> {
            let id: i32 = w
                .ok_or("a broker id is needed")?
                .parse()
                .map_err(|_| "a broker id is a number".to_string())?;
            if id < 1 || id > brokers {
                return Err(format!("broker ids are 1 to {brokers}"));
            }
            Ok(id)
        };
        let millis = |w: &str, what: &str| -> Result<u64, String> {
            w.parse()
                .map_err(|_| format!("{what} needs milliseconds (a whole number)"))
        };
        let mock = |r: rdkafka::error::KafkaResult<()>| r.map_err(|e| e.to_string());
        match words.as_slice() {
            ["down", ..] => {
                let id = broker(words.get(1))?;
                mock(self.cluster()?.broker_down(id))?;
                Ok(format!("ok broker {id} down"))
            }
            ["up", ..] => {
                let id = broker(words.get(1))?;
                mock(self.cluster()?.broker_up(id))?;
                Ok(format!("ok broker {id} up"))
            }
            ["rtt", _, ms] => {
                let id = broker(words.get(1))?;
                let ms = millis(ms, "rtt")?;
                mock(
                    self.cluster()?
                        .broker_round_trip_time(id, Duration::from_millis(ms)),
                )?;
                Ok(format!("ok broker {id} rtt {ms} ms"))
            }
            ["delay", _, api, ms, rest @ ..] if rest.len() <= 1 => {
                let id = broker(words.get(1))?;
                let api = api_key(api)?;
                let ms = millis(ms, "delay")?;
                let count: usize = match rest.first() {
                    Some(c) => c
                        .parse()
                        .map_err(|_| "delay's COUNT is a number".to_string())?,
                    None => 1,
                };
                self.delay_requests(id, api, Duration::from_millis(ms), count.min(10_000))?;
                Ok(format!(
                    "ok broker {id} answers its next {count} {api:?} requests {ms} ms late"
                ))
            }
            ["lead", topic, partition, _] => {
                let id = broker(words.get(3))?;
                let p: i32 = partition
                    .parse()
                    .map_err(|_| "lead needs a partition number".to_string())?;
                mock(self.cluster()?.partition_leader(topic, p, Some(id)))?;
                Ok(format!("ok broker {id} leads {topic}/{p}"))
            }
            ["slow", topic, partition, ms] => {
                let p: i32 = partition
                    .parse()
                    .map_err(|_| "slow needs a partition number".to_string())?;
                let ms = millis(ms, "slow")?;
                let aside = self.hold_back(topic, p, Duration::from_millis(ms))?;
                Ok(format!(
                    "ok {topic}/{p} held back {ms} ms (led alone by broker {aside})"
                ))
            }
            ["errors", api, count, code] => {
                let api = api_key(api)?;
                let count: usize = count
                    .parse()
                    .map_err(|_| "errors needs a count".to_string())?;
                let code = error_code(code)?;
                self.cluster()?
                    .request_errors(api, &vec![code; count.min(10_000)]);
                Ok(format!("ok {count} {api:?} requests will fail with {code:?}"))
            }
            ["clear", api] => {
                let api = api_key(api)?;
                self.cluster()?.clear_request_errors(api);
                Ok(format!("ok {api:?} errors cleared"))
            }
            ["create", topic, partitions] => {
                let p: i32 = partitions
                    .parse()
                    .map_err(|_| "create needs a partition count".to_string())?;
                self.create_topic(topic, p)?;
                Ok(format!("ok topic {topic} with {p} partitions"))
            }
            ["help"] | ["?"] => Ok(
                "ok commands: down ID | up ID | rtt ID MS | delay ID API MS [COUNT] | lead TOPIC PARTITION ID | slow TOPIC PARTITION MS | errors API COUNT CODE | clear API | create TOPIC PARTITIONS"
                    .into(),
            ),
            [] => Err("empty command".into()),
            _ => Err(format!("unknown command {line:?} (try help)")),
        }
    }
}

fn api_key(name: &str) -> Result<RDKafkaApiKey, String> {
    use RDKafkaApiKey as K;
    Ok(match name.to_ascii_lowercase().as_str() {
        "produce" => K::Produce,
        "fetch" => K::Fetch,
        "listoffsets" => K::ListOffsets,
        "metadata" => K::Metadata,
        "offsetcommit" => K::OffsetCommit,
        "offsetfetch" => K::OffsetFetch,
        "findcoordinator" => K::FindCoordinator,
        "joingroup" => K::JoinGroup,
        "heartbeat" => K::Heartbeat,
        "leavegroup" => K::LeaveGroup,
        "syncgroup" => K::SyncGroup,
        "initproducerid" => K::InitProducerId,
        _ => return Err(format!("unknown API {name:?}")),
    })
}

fn error_code(name: &str) -> Result<RDKafkaRespErr, String> {
    use RDKafkaRespErr as E;
    const KNOWN: [(&str, RDKafkaRespErr); 12] = [
        ("TRANSPORT", E::RD_KAFKA_RESP_ERR__TRANSPORT),
        (
            "UNKNOWN_TOPIC_OR_PART",
            E::RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART,
        ),
        (
            "LEADER_NOT_AVAILABLE",
            E::RD_KAFKA_RESP_ERR_LEADER_NOT_AVAILABLE,
        ),
        (
            "NOT_LEADER_FOR_PARTITION",
            E::RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION,
        ),
        ("REQUEST_TIMED_OUT", E::RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT),
        (
            "BROKER_NOT_AVAILABLE",
            E::RD_KAFKA_RESP_ERR_BROKER_NOT_AVAILABLE,
        ),
        ("NETWORK_EXCEPTION", E::RD_KAFKA_RESP_ERR_NETWORK_EXCEPTION),
        (
            "COORDINATOR_LOAD_IN_PROGRESS",
            E::RD_KAFKA_RESP_ERR_COORDINATOR_LOAD_IN_PROGRESS,
        ),
        (
            "COORDINATOR_NOT_AVAILABLE",
            E::RD_KAFKA_RESP_ERR_COORDINATOR_NOT_AVAILABLE,
        ),
        ("NOT_COORDINATOR", E::RD_KAFKA_RESP_ERR_NOT_COORDINATOR),
        (
            "NOT_ENOUGH_REPLICAS",
            E::RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS,
        ),
        (
            "REBALANCE_IN_PROGRESS",
            E::RD_KAFKA_RESP_ERR_REBALANCE_IN_PROGRESS,
        ),
    ];
    let upper = name.to_ascii_uppercase();
    let bare = upper
        .trim_start_matches("RD_KAFKA_RESP_ERR_")
        .trim_start_matches('_');
    if let Some((_, e)) = KNOWN.iter().find(|(n, _)| *n == bare) {
        return Ok(*e);
    }
    if let Ok(n) = name.parse::<i32>() {
        if let Some((_, e)) = KNOWN.iter().find(|(_, e)| *e as i32 == n) {
            return Ok(*e);
        }
    }
    Err(format!(
        "unknown error code {name:?} (known: {})",
        KNOWN.iter().map(|(n, _)| *n).collect::<Vec<_>>().join(", ")
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    #[test]
    fn fault_commands_answer_ok_or_say_what_is_wrong() {
        let mut b = DevBroker::start(&KafkaConfig::default(), 2, 2).unwrap();
        assert!(b.bootstrap().contains("127.0.0.1"), "{}", b.bootstrap());
        // In order (the broker keeps what each did): a command, and what its answer holds.
        enum Says {
            Is(&'static str),
            Starts(&'static str),
            Has(&'static str),
            Refused(&'static str),
        }
        use Says::{Has, Is, Refused, Starts};
        for (command, says) in [
            ("down 2", Is("ok broker 2 down")),
            ("up 2", Is("ok broker 2 up")),
            ("rtt 1 50", Starts("ok")),
            ("errors Fetch 3 NOT_LEADER_FOR_PARTITION", Starts("ok 3")),
            ("errors fetch 1 7", Has("REQUEST_TIMED_OUT")),
            ("clear Fetch", Starts("ok")),
            ("down 3", Refused("1 to 2")),
            ("errors Fetch 1 NOPE", Refused("unknown error code")),
            ("dance", Refused("unknown command")),
            ("lead housing 1 1", Starts("ok")),
            ("delay 2 Fetch 10", Has("next 1 Fetch")),
            ("delay 2 Fetch 10 3", Has("next 3 Fetch")),
            ("delay 2 Fetch soon", Refused("milliseconds")),
            ("slow housing 2 10", Refused("0 to 1")),
            ("slow nowhere 0 10", Refused("no topic")),
        ] {
            let answer = b.command(command);
            match says {
                Is(w) => assert_eq!(answer.unwrap(), w),
                Starts(w) => assert!(answer.unwrap().starts_with(w), "{command}"),
                Has(w) => assert!(answer.unwrap().contains(w), "{command}"),
                Refused(w) => assert!(answer.unwrap_err().contains(w), "{command}"),
            }
        }
        let mut one = DevBroker::start(&KafkaConfig::default(), 1, 2).unwrap();
        assert!(one
            .command("slow housing 0 10")
            .unwrap_err()
            .contains("--brokers 2"));
    }

    /// The time each of two records (one per partition) reaches a consumer reading both.
    fn arrivals(cfg: &KafkaConfig, topic: &str, slow: i32, fast: i32) -> (Instant, Instant) {
        use rdkafka::consumer::{BaseConsumer, Consumer};
        use rdkafka::producer::BaseRecord;
        use rdkafka::{Message, Offset, TopicPartitionList};
        let producer: BaseProducer = cfg.producer().create().unwrap();
        for p in [slow, fast] {
            producer
                .send(
                    BaseRecord::<(), String>::to(topic)
                        .payload(&format!("record of partition {p}"))
                        .partition(p),
                )
                .unwrap();
        }
        producer.flush(Duration::from_secs(10)).unwrap();
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", &cfg.brokers)
            .set("group.id", "dev-broker-test")
            .set("enable.auto.commit", "false")
            .create()
            .unwrap();
        let mut tpl = TopicPartitionList::new();
        for p in [slow, fast] {
            tpl.add_partition_offset(topic, p, Offset::Beginning)
                .unwrap();
        }
        consumer.assign(&tpl).unwrap();
        let (mut at_slow, mut at_fast) = (None, None);
        let deadline = Instant::now() + Duration::from_secs(60);
        while (at_slow.is_none() || at_fast.is_none()) && Instant::now() < deadline {
            if let Some(Ok(m)) = consumer.poll(Duration::from_millis(10)) {
                let at = Some(Instant::now());
                if m.partition() == slow {
                    at_slow = at;
                } else {
                    at_fast = at;
                }
            }
        }
        (
            at_slow.expect("the slow record"),
            at_fast.expect("the fast record"),
        )
    }

    #[test]
    fn a_partition_held_back_delivers_its_records_the_delay_after_the_others() {
        let delay = Duration::from_millis(3000);
        let mut cfg = KafkaConfig::default();
        let mut broker = DevBroker::start(&cfg, 3, 4).unwrap();
        cfg.brokers = broker.bootstrap();
        let answer = broker.command("slow housing 2 3000").unwrap();
        assert_eq!(
            answer,
            "ok housing/2 held back 3000 ms (led alone by broker 3)"
        );
        let (slow, fast) = arrivals(&cfg, "housing", 2, 0);
        // Both partitions' first fetches leave together: the held-back answer comes the delay
        // after its request, the other at once (give or take the fetches' few milliseconds).
        let gap = slow.saturating_duration_since(fast);
        assert!(
            gap + Duration::from_millis(100) >= delay,
            "the held-back record came {gap:?} after the other"
        );
        // Only the next Fetch was held: the partition then delivers as the others do.
        let (slow, fast) = arrivals(&cfg, "housing", 2, 1);
        let gap = slow.max(fast).duration_since(slow.min(fast));
        assert!(gap < delay / 2, "{gap:?} between two ordinary partitions");
    }
}
