//! The `[kafka]` section of doudi's configuration, and [`KafkaConfig::client`]: the one place
//! where every client's librdkafka settings are made (the consumer, the dead-letter and warnings
//! producers, `doudi produce`, the warnings reader), so that a secured cluster's settings
//! (`[kafka.client]`: TLS, mutual TLS, SASL PLAIN / SCRAM) reach them all.

use std::collections::BTreeMap;

use doudi_model::Source;
use rdkafka::ClientConfig;
use serde::{Deserialize, Deserializer, Serialize};

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
    /// Topics that carry a department's raw rows (each record a JSON object of column → cell, as
    /// its export has them), by topic: the feed profile that reads them (a shipped profile's
    /// name, or a path to a profile file). The profile says the source.
    pub profiles: BTreeMap<String, String>,
    /// The profiles of `profiles`, loaded by [`KafkaConfig::load_profiles`].
    #[serde(skip)]
    pub loaded_profiles: ProfileTopics,
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
    /// librdkafka properties for every client, passed through as they are: `security.protocol`
    /// (`SSL`, `SASL_SSL`), `sasl.mechanisms` (`PLAIN`, `SCRAM-SHA-256`, `SCRAM-SHA-512`),
    /// `sasl.username`, `ssl.ca.location`, `ssl.certificate.location`, `ssl.key.location`, ….
    /// Unknown properties are refused by name. Secrets never go here: they come from files
    /// (`DOUDI_KAFKA__SASL_PASSWORD_FILE`, `…__SSL_KEY_PASSWORD_FILE`,
    /// `…__SSL_KEYSTORE_PASSWORD_FILE`) into [`KafkaConfig::secrets`].
    #[serde(deserialize_with = "properties")]
    pub client: BTreeMap<String, String>,
    /// Secret librdkafka properties, set by the caller from files; never read from the
    /// configuration file, never serialised or printed.
    #[serde(skip)]
    pub secrets: ClientSecrets,
}

/// Secret librdkafka properties (`sasl.password`, `ssl.key.password`, …): `Debug` shows their
/// names only.
/// The raw-row topics with their loaded feed profiles.
#[derive(Clone, Default)]
pub struct ProfileTopics(pub Vec<ProfileTopic>);

/// A topic carrying a department's raw rows, and the profile that reads them.
#[derive(Clone)]
pub struct ProfileTopic {
    pub topic: String,
    pub profile: std::sync::Arc<doudi_feeds::Profile>,
    /// `name@version`, kept with every event made.
    pub provenance: std::sync::Arc<str>,
}

impl PartialEq for ProfileTopics {
    fn eq(&self, other: &Self) -> bool {
        let key = |p: &ProfileTopics| -> Vec<(String, String)> {
            p.0.iter()
                .map(|t| (t.topic.clone(), t.provenance.to_string()))
                .collect()
        };
        key(self) == key(other)
    }
}

impl std::fmt::Debug for ProfileTopics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_map()
            .entries(self.0.iter().map(|t| (&t.topic, &t.provenance)))
            .finish()
    }
}

#[derive(Clone, Default, PartialEq, Eq)]
pub struct ClientSecrets(BTreeMap<&'static str, String>);

impl ClientSecrets {
    pub fn set(&mut self, property: &'static str, value: String) {
        self.0.insert(property, value);
    }
}

impl std::fmt::Debug for ClientSecrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_map()
            .entries(self.0.keys().map(|k| (k, "<redacted>")))
            .finish()
    }
}

/// `[kafka.client]` values as librdkafka takes them, text: `true` and `5000` may be written
/// unquoted.
fn properties<'de, D: Deserializer<'de>>(d: D) -> Result<BTreeMap<String, String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Scalar {
        Text(String),
        Int(i64),
        Float(f64),
        Bool(bool),
    }
    let raw = BTreeMap::<String, Scalar>::deserialize(d)?;
    Ok(raw
        .into_iter()
        .map(|(k, v)| {
            let v = match v {
                Scalar::Text(t) => t,
                Scalar::Int(i) => i.to_string(),
                Scalar::Float(x) => x.to_string(),
                Scalar::Bool(b) => b.to_string(),
            };
            (k, v)
        })
        .collect())
}

/// Properties doudi sets itself: its guarantees rest on them (and the first two have their own
/// keys).
const RESERVED: [(&str, &str); 10] = [
    ("bootstrap.servers", "set kafka.brokers (or --brokers)"),
    ("group.id", "set kafka.group_id"),
    ("enable.auto.commit", "offsets commit with the database"),
    (
        "enable.auto.offset.store",
        "offsets commit with the database",
    ),
    ("auto.offset.reset", "positions come from the database"),
    (
        "enable.idempotence",
        "producers must not duplicate or reorder",
    ),
    ("acks", "producers wait for every in-sync replica"),
    (
        "isolation.level",
        "doudi reads what its producers committed",
    ),
    ("enable.partition.eof", "the consumer relies on it"),
    (
        "transactional.id",
        "doudi's producers are not transactional",
    ),
];

/// Secret properties, and where each comes from instead.
const SECRET_PROPERTIES: [(&str, &str); 6] = [
    ("sasl.password", "DOUDI_KAFKA__SASL_PASSWORD_FILE"),
    ("ssl.key.password", "DOUDI_KAFKA__SSL_KEY_PASSWORD_FILE"),
    (
        "ssl.keystore.password",
        "DOUDI_KAFKA__SSL_KEYSTORE_PASSWORD_FILE",
    ),
    ("ssl.key.pem", "a key file named by ssl.key.location"),
    ("ssl_key", "a key file named by ssl.key.location"),
    (
        "sasl.oauthbearer.client.secret",
        "nothing yet: doudi supports PLAIN and SCRAM; open an issue",
    ),
];

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

    /// The topic of `source`'s feed.
    pub fn topic_of(&self, source: Source) -> &str {
        match source {
            Source::HealthInsurance => &self.health_insurance,
            Source::Employment => &self.employment,
            Source::Housing => &self.housing,
            Source::CivilRegistry => &self.civil_registry,
        }
    }
}

impl Default for KafkaConfig {
    fn default() -> Self {
        KafkaConfig {
            brokers: String::new(),
            group_id: "doudi".into(),
            topics: Topics::default(),
            profiles: BTreeMap::new(),
            loaded_profiles: ProfileTopics::default(),
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
            client: BTreeMap::new(),
            secrets: ClientSecrets::default(),
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
        self.validate_client()
    }

    /// Check `[kafka.client]`: no property doudi sets itself, no secret, every property known to
    /// librdkafka with a value it takes, every file it names readable.
    fn validate_client(&self) -> Result<(), String> {
        for (key, value) in &self.client {
            let at = format!("kafka.client.{key:?}");
            if let Some((_, why)) = RESERVED.iter().find(|(k, _)| k == key) {
                return Err(format!("{at} is set by doudi and cannot be changed: {why}"));
            }
            if let Some((_, instead)) = SECRET_PROPERTIES.iter().find(|(k, _)| k == key) {
                return Err(format!(
                    "{at} is a secret and is not taken from the configuration; use {instead}"
                ));
            }
            let mut one = ClientConfig::new();
            one.set(key, value);
            if let Err(e) = one.create_native_config() {
                let why = match e {
                    rdkafka::error::KafkaError::ClientConfig(_, desc, _, _) => desc,
                    other => other.to_string(),
                };
                return Err(format!(
                    "{at}: {why} (librdkafka's properties are listed in its CONFIGURATION.md)"
                ));
            }
            if key.ends_with(".location") && value != "probe" {
                for path in value.split(',') {
                    if let Err(e) = std::fs::metadata(path) {
                        return Err(format!("{at}: cannot read {path}: {e}"));
                    }
                }
            }
        }
        Ok(())
    }

    /// The source a feed topic carries (a raw-row topic's: its profile's).
    pub fn source_of(&self, topic: &str) -> Option<Source> {
        self.topics
            .all()
            .into_iter()
            .find(|(t, _)| *t == topic)
            .map(|(_, s)| s)
            .or_else(|| self.profile_of(topic).map(|p| p.profile.source))
    }

    /// The feed profile of a raw-row topic (after [`KafkaConfig::load_profiles`]).
    pub fn profile_of(&self, topic: &str) -> Option<&ProfileTopic> {
        self.loaded_profiles.0.iter().find(|p| p.topic == topic)
    }

    /// Every topic the worker reads: the four feeds', then the raw-row topics.
    pub fn feed_topics(&self) -> Vec<&str> {
        let mut topics: Vec<&str> = self.topics.all().iter().map(|(t, _)| *t).collect();
        topics.extend(self.loaded_profiles.0.iter().map(|p| p.topic.as_str()));
        topics
    }

    /// Load the profiles of `[kafka.profiles]` (a shipped profile by name, else a file). A raw-row
    /// topic must be none of the other topics.
    pub fn load_profiles(&mut self) -> Result<(), String> {
        let mut loaded = Vec::new();
        for (topic, spec) in &self.profiles {
            let clash = self.topics.all().iter().any(|(t, _)| t == topic)
                || *topic == self.dead_letter_topic
                || *topic == self.warnings_topic;
            if clash || topic.is_empty() {
                return Err(format!(
                    "kafka.profiles.{topic}: a raw-row topic must have a name of its own, not a feed, dead-letter or warnings topic"
                ));
            }
            let profile = match doudi_feeds::shipped::profile(spec) {
                Some(p) => p,
                None => doudi_feeds::Profile::load(std::path::Path::new(spec)),
            }
            .map_err(|e| format!("kafka.profiles.{topic}: {e}"))?;
            loaded.push(ProfileTopic {
                topic: topic.clone(),
                provenance: std::sync::Arc::from(profile.provenance().to_string()),
                profile: std::sync::Arc::new(profile),
            });
        }
        self.loaded_profiles = ProfileTopics(loaded);
        Ok(())
    }

    /// Settings every client starts from: the brokers, quick reconnects, `[kafka.client]` and
    /// the secrets. Every client doudi makes is made from this (consumers and producers add
    /// their own settings on top).
    pub fn client(&self) -> ClientConfig {
        let mut c = ClientConfig::new();
        c.set("bootstrap.servers", &self.brokers)
            .set("reconnect.backoff.ms", "100")
            .set("reconnect.backoff.max.ms", "2000");
        for (key, value) in &self.client {
            c.set(key, value);
        }
        for (key, value) in &self.secrets.0 {
            c.set(*key, value);
        }
        c
    }

    /// An idempotent producer: retries never duplicate or reorder a partition's messages.
    pub fn producer(&self) -> ClientConfig {
        let mut c = self.client();
        c.set("enable.idempotence", "true")
            .set("acks", "all")
            .set("linger.ms", "5")
            .set("message.timeout.ms", "300000")
            .set("message.max.bytes", "16777216");
        c
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(key: &str, value: &str) -> KafkaConfig {
        let mut c = KafkaConfig::default();
        c.client.insert(key.into(), value.into());
        c
    }

    #[test]
    fn a_raw_row_topic_takes_its_profiles_source_and_may_not_be_a_feed_topic() {
        let mut c = KafkaConfig::default();
        c.profiles
            .insert("hukou_rows".into(), "gongan-hukou".into());
        c.load_profiles().unwrap();
        assert_eq!(c.source_of("hukou_rows"), Some(Source::CivilRegistry));
        assert_eq!(
            c.profile_of("hukou_rows").map(|p| p.provenance.to_string()),
            Some("gongan-hukou@1".into())
        );
        assert!(c.feed_topics().contains(&"hukou_rows"));
        assert_eq!(c.source_of("elsewhere"), None);

        let mut clash = KafkaConfig::default();
        clash
            .profiles
            .insert("housing".into(), "zhujian-dangerous-house".into());
        let e = clash.load_profiles().unwrap_err();
        assert!(e.starts_with("kafka.profiles.housing:"), "{e}");
        let mut missing = KafkaConfig::default();
        missing
            .profiles
            .insert("rows".into(), "/nonexistent/profile.toml".into());
        let e = missing.load_profiles().unwrap_err();
        assert!(
            e.contains("kafka.profiles.rows") && e.contains("/nonexistent/profile.toml"),
            "{e}"
        );
    }

    #[test]
    fn client_properties_reach_every_client_with_the_secrets() {
        let mut c = with("security.protocol", "SASL_SSL");
        c.client
            .insert("sasl.mechanisms".into(), "SCRAM-SHA-512".into());
        c.secrets.set("sasl.password", "pw-from-a-file".into());
        c.validate().unwrap();
        for made in [c.client(), c.producer()] {
            assert_eq!(made.get("security.protocol"), Some("SASL_SSL"));
            assert_eq!(made.get("sasl.mechanisms"), Some("SCRAM-SHA-512"));
            assert_eq!(made.get("sasl.password"), Some("pw-from-a-file"));
        }
        assert!(!format!("{c:?}").contains("pw-from-a-file"));
    }

    #[test]
    fn an_unknown_property_or_a_bad_value_is_named() {
        let e = with("security.protocl", "SSL").validate().unwrap_err();
        assert!(e.starts_with("kafka.client.\"security.protocl\":"), "{e}");
        assert!(e.contains("No such configuration property"), "{e}");
        let e = with("security.protocol", "TLS").validate().unwrap_err();
        assert!(e.contains("kafka.client.\"security.protocol\""), "{e}");
        let e = with("ssl.ca.location", "/nonexistent/ca.pem")
            .validate()
            .unwrap_err();
        assert!(e.contains("cannot read /nonexistent/ca.pem"), "{e}");
    }

    #[test]
    fn secrets_and_doudis_own_properties_are_refused_in_the_table() {
        let e = with("sasl.password", "literal").validate().unwrap_err();
        assert!(e.contains("DOUDI_KAFKA__SASL_PASSWORD_FILE"), "{e}");
        assert!(!e.contains("literal"), "{e}");
        let e = with("enable.auto.commit", "true").validate().unwrap_err();
        assert!(e.contains("set by doudi"), "{e}");
        let e = with("bootstrap.servers", "x:9092").validate().unwrap_err();
        assert!(e.contains("kafka.brokers"), "{e}");
    }

    #[test]
    fn the_build_speaks_tls_and_sasl() {
        for (key, value) in [
            ("security.protocol", "SASL_SSL"),
            ("sasl.mechanisms", "SCRAM-SHA-512"),
            ("sasl.mechanisms", "SCRAM-SHA-256"),
            ("sasl.mechanisms", "PLAIN"),
            ("ssl.endpoint.identification.algorithm", "https"),
        ] {
            with(key, value)
                .validate()
                .unwrap_or_else(|e| panic!("{key}={value}: {e}"));
        }
    }
}
