//! The `[kafka]` section of doudi's configuration.

use doudi_model::Source;
use rdkafka::ClientConfig;
use serde::{Deserialize, Serialize};

/// Kafka settings (every key has a default; see `deploy/doudi.example.toml`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct KafkaConfig {
    /// Bootstrap servers, `HOST:PORT[,HOST:PORT…]`; empty: no Kafka (`--brokers` sets it).
    pub brokers: String,
    /// The consumer group every worker joins.
    pub group_id: String,
    /// The topic of each feed.
    pub topics: Topics,
    /// Records refused at ingest, with their origin in headers.
    pub dead_letter_topic: String,
    /// Notices, keyed by household (`doudi deliver --brokers`).
    pub warnings_topic: String,
    /// Stop the worker when more than this share of the last `invalid_window` records of a
    /// partition are invalid (a broken upstream), instead of dead-lettering the whole feed.
    pub max_invalid_ratio: f64,
    /// Records per partition the ratio is taken over (at least 1000); it is only checked once the
    /// window is full.
    pub invalid_window: usize,
    /// Longest a record waits for its batch to fill before the batch is committed anyway.
    pub linger_ms: u64,
    /// Records are applied in event-time order across the worker's partitions, which waits for
    /// every partition to deliver its next record or reach its end; a partition that does
    /// neither for this long (its broker is down, say) stops holding the others back.
    pub align_wait_ms: u64,
    /// Records held per partition for that ordering before its fetching pauses (at least 100).
    pub align_buffer: usize,
    /// On revoke and on shutdown, how long to wait for in-flight batches to commit.
    pub drain_timeout_ms: u64,
    /// Consumer session timeout: a worker that dies is replaced after this long.
    pub session_timeout_ms: u64,
    /// Prefetch bound per partition queue in librdkafka (kilobytes).
    pub queued_max_kbytes: u64,
    /// Prefetch bound per partition queue in librdkafka (messages).
    pub queued_min_messages: u64,
    /// Notices published per pass by `doudi deliver --brokers`.
    pub publish_batch: usize,
}

/// The feed topic of each source.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Topics {
    pub health_insurance: String,
    pub employment: String,
    pub housing: String,
    pub civil_registry: String,
}

impl Default for Topics {
    fn default() -> Self {
        Topics {
            health_insurance: Source::HealthInsurance.code().into(),
            employment: Source::Employment.code().into(),
            housing: Source::Housing.code().into(),
            civil_registry: Source::CivilRegistry.code().into(),
        }
    }
}

impl Topics {
    /// `(topic, source)` for every feed.
    pub fn all(&self) -> [(&str, Source); 4] {
        [
            (self.health_insurance.as_str(), Source::HealthInsurance),
            (self.employment.as_str(), Source::Employment),
            (self.housing.as_str(), Source::Housing),
            (self.civil_registry.as_str(), Source::CivilRegistry),
        ]
    }
}

impl Default for KafkaConfig {
    fn default() -> Self {
        KafkaConfig {
            brokers: String::new(),
            group_id: "doudi".into(),
            topics: Topics::default(),
            dead_letter_topic: "dead_letters".into(),
            warnings_topic: "warnings".into(),
            max_invalid_ratio: 0.9,
            invalid_window: 1000,
            linger_ms: 100,
            align_wait_ms: 5000,
            align_buffer: 1000,
            drain_timeout_ms: 20_000,
            session_timeout_ms: 10_000,
            queued_max_kbytes: 8192,
            queued_min_messages: 10_000,
            publish_batch: 1000,
        }
    }
}

impl KafkaConfig {
    /// Check the values; the message names the key.
    pub fn validate(&self) -> Result<(), String> {
        if !(0.0..=1.0).contains(&self.max_invalid_ratio) || self.max_invalid_ratio.is_nan() {
            return Err(format!(
                "kafka.max_invalid_ratio must be between 0 and 1 (got {})",
                self.max_invalid_ratio
            ));
        }
        if self.invalid_window < 1000 {
            return Err(format!(
                "kafka.invalid_window must be at least 1000 (got {})",
                self.invalid_window
            ));
        }
        if self.group_id.is_empty() {
            return Err("kafka.group_id must not be empty".into());
        }
        let mut names: Vec<&str> = self.topics.all().iter().map(|(t, _)| *t).collect();
        if names.iter().any(|t| t.is_empty()) {
            return Err("kafka.topics: every source needs a topic".into());
        }
        names.sort_unstable();
        names.dedup();
        if names.len() != 4 {
            return Err("kafka.topics: each source needs its own topic".into());
        }
        if self.session_timeout_ms < 3000 {
            return Err("kafka.session_timeout_ms must be at least 3000".into());
        }
        if self.align_buffer < 100 {
            return Err(format!(
                "kafka.align_buffer must be at least 100 (got {})",
                self.align_buffer
            ));
        }
        if self.publish_batch == 0 || self.queued_max_kbytes == 0 {
            return Err("kafka.publish_batch and queued_max_kbytes must be at least 1".into());
        }
        Ok(())
    }

    /// The source a feed topic carries.
    pub fn source_of(&self, topic: &str) -> Option<Source> {
        self.topics
            .all()
            .into_iter()
            .find(|(t, _)| *t == topic)
            .map(|(_, s)| s)
    }

    /// Client settings shared by every client: brokers, and quick reconnects.
    pub(crate) fn client(&self) -> ClientConfig {
        let mut c = ClientConfig::new();
        c.set("bootstrap.servers", &self.brokers)
            .set("reconnect.backoff.ms", "100")
            .set("reconnect.backoff.max.ms", "2000");
        c
    }

    /// An idempotent producer: retries never duplicate or reorder a partition's messages.
    pub(crate) fn producer(&self) -> ClientConfig {
        let mut c = self.client();
        c.set("enable.idempotence", "true")
            .set("acks", "all")
            .set("linger.ms", "5")
            .set("message.timeout.ms", "300000")
            .set("message.max.bytes", "16777216");
        c
    }
}
