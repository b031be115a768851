//! A development broker: librdkafka's Kafka-protocol mock cluster on loopback, with the feed,
//! dead-letter and warnings topics, and a line protocol to inject faults while workers run in
//! other processes (`doudi dev-broker`).

use std::time::Duration;

use rdkafka::mocking::MockCluster;
use rdkafka::producer::DefaultProducerContext;
use rdkafka::types::{RDKafkaApiKey, RDKafkaRespErr};

use crate::{KafkaConfig, KafkaError};

/// A running mock cluster (dropped: stopped). Not `Send`: keep it on the thread that made it.
pub struct DevBroker {
    cluster: MockCluster<'static, DefaultProducerContext>,
    brokers: i32,
}

impl DevBroker {
    /// Start `brokers` brokers and create every topic of `cfg` with `partitions` partitions.
    pub fn start(
        cfg: &KafkaConfig,
        brokers: i32,
        partitions: i32,
    ) -> Result<DevBroker, KafkaError> {
        let cluster =
            MockCluster::new(brokers).map_err(KafkaError::client("starting the mock cluster"))?;
        let replication = brokers.min(3);
        let mut topics: Vec<&str> = cfg.topics.all().iter().map(|(t, _)| *t).collect();
        topics.push(&cfg.dead_letter_topic);
        topics.push(&cfg.warnings_topic);
        for t in topics {
            cluster
                .create_topic(t, partitions, replication)
                .map_err(KafkaError::client("creating a topic"))?;
        }
        Ok(DevBroker { cluster, brokers })
    }

    /// The bootstrap address (`127.0.0.1:PORT,…`).
    pub fn bootstrap(&self) -> String {
        self.cluster.bootstrap_servers()
    }

    /// Apply one fault command; the answer (`ok …`) or why not (`error …` without the prefix).
    ///
    /// - `down ID` / `up ID`: take broker ID (1-based) down or bring it back;
    /// - `rtt ID MS`: delay broker ID's responses by MS milliseconds;
    /// - `errors API COUNT CODE`: the next COUNT requests of API (Fetch, Produce, Metadata,
    ///   OffsetCommit, OffsetFetch, JoinGroup, SyncGroup, Heartbeat, FindCoordinator,
    ///   ListOffsets, InitProducerId, LeaveGroup) fail with CODE (a name such as
    ///   NOT_LEADER_FOR_PARTITION, REQUEST_TIMED_OUT, TRANSPORT — or its number);
    /// - `clear API`: forget the errors pushed for API;
    /// - `create TOPIC PARTITIONS`: create a topic.
    pub fn command(&self, line: &str) -> Result<String, String> {
        let words: Vec<&str> = line.split_whitespace().collect();
        let broker = |w: Option<&&str>| -> Result<i32, String> {
            let id: i32 = w
                .ok_or("a broker id is needed")?
                .parse()
                .map_err(|_| "a broker id is a number".to_string())?;
            if id < 1 || id > self.brokers {
                return Err(format!("broker ids are 1 to {}", self.brokers));
            }
            Ok(id)
        };
        let mock = |r: rdkafka::error::KafkaResult<()>| r.map_err(|e| e.to_string());
        match words.as_slice() {
            ["down", ..] => {
                let id = broker(words.get(1))?;
                mock(self.cluster.broker_down(id))?;
                Ok(format!("ok broker {id} down"))
            }
            ["up", ..] => {
                let id = broker(words.get(1))?;
                mock(self.cluster.broker_up(id))?;
                Ok(format!("ok broker {id} up"))
            }
            ["rtt", _, ms] => {
                let id = broker(words.get(1))?;
                let ms: u64 = ms.parse().map_err(|_| "rtt needs milliseconds".to_string())?;
                mock(
                    self.cluster
                        .broker_round_trip_time(id, Duration::from_millis(ms)),
                )?;
                Ok(format!("ok broker {id} rtt {ms} ms"))
            }
            ["errors", api, count, code] => {
                let api = api_key(api)?;
                let count: usize = count
                    .parse()
                    .map_err(|_| "errors needs a count".to_string())?;
                let code = error_code(code)?;
                self.cluster.request_errors(api, &vec![code; count.min(10_000)]);
                Ok(format!("ok {count} {api:?} requests will fail with {code:?}"))
            }
            ["clear", api] => {
                let api = api_key(api)?;
                self.cluster.clear_request_errors(api);
                Ok(format!("ok {api:?} errors cleared"))
            }
            ["create", topic, partitions] => {
                let p: i32 = partitions
                    .parse()
                    .map_err(|_| "create needs a partition count".to_string())?;
                mock(self.cluster.create_topic(topic, p, self.brokers.min(3)))?;
                Ok(format!("ok topic {topic} with {p} partitions"))
            }
            ["help"] | ["?"] => Ok(
                "ok commands: down ID | up ID | rtt ID MS | errors API COUNT CODE | clear API | create TOPIC PARTITIONS"
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

    #[test]
    fn fault_commands_answer_ok_or_say_what_is_wrong() {
        let b = DevBroker::start(&KafkaConfig::default(), 2, 2).unwrap();
        assert!(b.bootstrap().contains("127.0.0.1"), "{}", b.bootstrap());
        assert_eq!(b.command("down 2").unwrap(), "ok broker 2 down");
        assert_eq!(b.command("up 2").unwrap(), "ok broker 2 up");
        assert!(b.command("rtt 1 50").unwrap().starts_with("ok"));
        assert!(b
            .command("errors Fetch 3 NOT_LEADER_FOR_PARTITION")
            .unwrap()
            .starts_with("ok 3"));
        assert!(b
            .command("errors fetch 1 7")
            .unwrap()
            .contains("REQUEST_TIMED_OUT"));
        assert!(b.command("clear Fetch").unwrap().starts_with("ok"));
        assert!(b.command("down 3").unwrap_err().contains("1 to 2"));
        assert!(b
            .command("errors Fetch 1 NOPE")
            .unwrap_err()
            .contains("unknown error code"));
        assert!(b.command("dance").unwrap_err().contains("unknown command"));
    }
}
