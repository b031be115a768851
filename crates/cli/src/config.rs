//! Configuration: built-in defaults → a TOML file → `DOUDI_*` environment variables → flags.
//! Unknown keys are errors, so a typo never silently falls back to a default.

use std::path::{Path, PathBuf};

use anyhow::Context;
use figment::providers::{Env, Format, Serialized, Toml};
use figment::Figment;
use serde::{Deserialize, Serialize};

/// The whole configuration. Every field has a default; see `deploy/doudi.example.toml`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Where the service is used: its time zone (pages, notices).
    pub locality: LocalityConfig,
    pub store: StoreConfig,
    pub feeds: FeedsConfig,
    /// How running workers follow register imports.
    pub register: RegisterConfig,
    pub limits: LimitsConfig,
    /// How much a `run` worker holds in memory: household records, timelines, the identity index.
    pub memory: MemoryConfig,
    pub rules: RulesConfig,
    /// Identity resolution: training of the model, decision thresholds.
    pub linkage: LinkageConfig,
    /// Deadlines to acknowledge, escalation and reminders of warnings.
    pub warnings: WarningsConfig,
    /// What the nightly cross-check counts as disqualifying, income lines, review deadline.
    pub crosscheck: doudi_crosscheck::CheckConfig,
    /// Delivery of notices over signed webhooks (`doudi deliver`).
    pub deliver: DeliverConfig,
    /// The HTTP service (`doudi serve`).
    pub serve: ServeConfig,
    /// Kafka feeds, dead-letter and warnings topics (`doudi run --brokers`, `doudi deliver --brokers`).
    pub kafka: doudi_kafka::KafkaConfig,
    /// The audit trail's checkpoints (`doudi audit checkpoint`).
    pub audit: AuditConfig,
}

/// The locality the service serves (`[locality]`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LocalityConfig {
    /// The locality's time zone (an IANA name): the pages show times in it, to the minute, and
    /// WeCom and DingTalk messages give deadlines in it.
    pub time_zone: String,
}

impl Default for LocalityConfig {
    fn default() -> Self {
        LocalityConfig {
            time_zone: "Asia/Shanghai".into(),
        }
    }
}

impl LocalityConfig {
    /// [`LocalityConfig::time_zone`] as a zone.
    pub fn zone(&self) -> anyhow::Result<chrono_tz::Tz> {
        doudi_service::parse_timezone(&self.time_zone)
            .map_err(|e| anyhow::anyhow!("locality.time_zone: {e}"))
    }
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuditConfig {
    /// HMAC-SHA256 key signing audit checkpoints: `DOUDI_AUDIT__CHECKPOINT_KEY_FILE` (or
    /// `DOUDI_AUDIT__CHECKPOINT_KEY`). Kept away from the database (whoever can change the
    /// database must not hold it). Never printed.
    #[serde(skip_serializing)]
    pub checkpoint_key: Secret,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StoreConfig {
    /// `sqlite://PATH` (created if missing) or `postgres://USER@HOST/DATABASE` (must exist), with
    /// libpq's TLS parameters (`sslmode`, `sslrootcert`, `sslcert`, `sslkey`).
    pub url: String,
    /// The PostgreSQL password, apart from the URL: `DOUDI_STORE__PASSWORD_FILE` (see
    /// [`secret_from_env`]). Never printed.
    #[serde(skip_serializing)]
    pub password: Secret,
    /// Raw payloads (records as the departments sent them) received more than this many days ago
    /// are removed by `doudi retention`, marked with when; the normalised events and everything
    /// decided from them stay. `None`: kept for good.
    pub raw_retention_days: Option<u32>,
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            url: "sqlite://doudi.db".into(),
            password: Secret::default(),
            raw_retention_days: None,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FeedsConfig {
    /// Folder with one sub-folder per source (`health_insurance/`, …) of `*.jsonl` files.
    pub dir: PathBuf,
    /// How often `run` (without `--once`) looks for new lines and files, in milliseconds.
    pub poll_interval_ms: u64,
    /// Stop `run` when more than this share of the last `invalid_window` records of one feed
    /// file are invalid (a broken export), as `kafka.max_invalid_ratio` does for a partition.
    /// 1.0 (the default) never stops: every refused record goes to the dead letters.
    pub max_invalid_ratio: f64,
    /// Records per feed file the ratio is taken over (at least 100).
    pub invalid_window: usize,
}

impl Default for FeedsConfig {
    fn default() -> Self {
        FeedsConfig {
            dir: PathBuf::from("feeds"),
            poll_interval_ms: 1000,
            max_invalid_ratio: 1.0,
            invalid_window: 1000,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RegisterConfig {
    /// How often each `doudi run` worker looks for a new register version (an import), in
    /// seconds: it then applies the changes and links again the records that waited for them.
    pub refresh_secs: u64,
}

impl Default for RegisterConfig {
    fn default() -> Self {
        RegisterConfig { refresh_secs: 5 }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MemoryConfig {
    /// Register households whose records a worker holds (the identity index covers every member
    /// whatever this is, bounded by `identity_members`); the others are read from the database
    /// when a record of theirs comes.
    pub register_households: usize,
    /// Register members whose identity numbers, birth dates, sexes and blocking keys the identity
    /// index holds in memory (about 100 of its 130–160 bytes a member); past it, these go to a
    /// private file (mode 0600, unlinked as soon as made, so never left behind) in
    /// `identity_dir` and are read back as records come (about 50 bytes a member stay in memory).
    /// Links the same either way. 0: always on disk.
    pub identity_members: usize,
    /// The directory of the identity index's file; empty: beside the SQLite database (the system's
    /// temporary directory for PostgreSQL).
    pub identity_dir: PathBuf,
    /// Timeline facts a worker holds for the households it saw lately; past it, those of the
    /// households seen longest ago are read back from the database when next needed.
    pub timeline_facts: usize,
    /// SQLite: the page cache of the connection that writes (batches), in MiB; a bound, taken as
    /// pages are read. Kept from batch to batch: sized to the indexes a batch inserts into at
    /// random places (about 100 bytes an event stored), they are read from the file once.
    pub sqlite_write_cache_mib: u32,
    /// `doudi import`: register households read, checked and written at a time (the file is
    /// never held whole; of the households before, only their ids' 16-byte keys are kept).
    pub import_households: usize,
}

impl Default for MemoryConfig {
    fn default() -> Self {
        let caps = doudi_pipeline::MemoryCaps::default();
        MemoryConfig {
            register_households: caps.households,
            identity_members: doudi_app::engine::DEFAULT_IDENTITY_MEMBERS,
            identity_dir: PathBuf::new(),
            timeline_facts: caps.timeline_facts,
            sqlite_write_cache_mib: doudi_store::DEFAULT_WRITE_CACHE_MIB,
            import_households: 5_000,
        }
    }
}

impl MemoryConfig {
    /// Where the identity index keeps its bulk.
    pub fn identity_index(&self) -> doudi_app::IdentityIndexSettings {
        doudi_app::IdentityIndexSettings {
            members_in_memory: self.identity_members,
            dir: (!self.identity_dir.as_os_str().is_empty()).then(|| self.identity_dir.clone()),
        }
    }

    pub fn caps(&self) -> doudi_pipeline::MemoryCaps {
        doudi_pipeline::MemoryCaps {
            households: self.register_households,
            timeline_facts: self.timeline_facts,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsConfig {
    /// Largest accepted event in bytes; larger ones go to dead letters.
    pub max_event_bytes: usize,
    /// Deepest accepted nesting of JSON objects/arrays in an event.
    pub max_depth: usize,
    /// Records per transaction.
    pub batch_size: usize,
    /// Batches read ahead of the database (bounds memory).
    pub channel_batches: usize,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        let p = doudi_model::ParseLimits::default();
        LimitsConfig {
            max_event_bytes: p.max_event_bytes,
            max_depth: p.max_depth,
            batch_size: 10_000,
            channel_batches: 2,
        }
    }
}

impl LimitsConfig {
    pub fn parse_limits(&self) -> doudi_model::ParseLimits {
        doudi_model::ParseLimits {
            max_event_bytes: self.max_event_bytes,
            max_depth: self.max_depth,
        }
    }
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RulesConfig {
    /// A rule-set TOML file; empty means the built-in `rules/default.toml`.
    pub file: Option<PathBuf>,
}

impl Config {
    /// The Kafka settings with the brokers a command was given (`--brokers`).
    pub fn kafka_at(&self, brokers: &str) -> doudi_kafka::KafkaConfig {
        let mut kafka = self.kafka.clone();
        kafka.brokers = brokers.to_string();
        kafka
    }

    /// Load: defaults, then `file` (if given), then `DOUDI_SECTION__KEY` environment variables.
    pub fn load(file: Option<&Path>) -> anyhow::Result<Config> {
        let mut given = Figment::new();
        if let Some(path) = file {
            if !path.exists() {
                anyhow::bail!(
                    "configuration file {} does not exist (see deploy/doudi.example.toml for one to start from)",
                    path.display()
                );
            }
            given = given.merge(Toml::file_exact(path));
        }
        // Secrets are read as they are, below (through figment an all-digit secret would become
        // a number), from the variable or the file its `_FILE` variable names.
        given = given.merge(
            Env::prefixed("DOUDI_")
                .filter(|k| k.as_str().contains("__") && !is_secret_variable(k.as_str()))
                .split("__"),
        );
        let locality_given = given.find_value("locality.time_zone").is_ok();
        let fig = Figment::from(Serialized::defaults(Config::default())).merge(given);
        let mut config: Config = fig.extract().map_err(|e| {
            let mut msg = String::from("invalid configuration");
            for err in e {
                msg.push_str(&format!("\n  - {err}"));
            }
            anyhow::anyhow!(msg)
        })?;
        apply_secrets(&mut config, |var| std::env::var_os(var))?;
        for warning in config.one_time_zone(locality_given)? {
            tracing::warn!("{warning}");
        }
        config.validate()?;
        Ok(config)
    }

    /// One time zone: `locality.time_zone`. The keys it replaced (`serve.time_zone`,
    /// `deliver.time_zone`) are still read, each with a warning naming the new key, and refused
    /// when they disagree with each other or with `locality.time_zone` (`locality_given`: set in
    /// the file or the environment). Returns the warnings.
    fn one_time_zone(&mut self, locality_given: bool) -> anyhow::Result<Vec<String>> {
        let mut warnings = Vec::new();
        let old = [
            ("serve.time_zone", self.serve.time_zone.take()),
            ("deliver.time_zone", self.deliver.time_zone.take()),
        ];
        let mut chosen: Option<(&str, String)> =
            locality_given.then(|| ("locality.time_zone", self.locality.time_zone.clone()));
        for (key, value) in old {
            let Some(value) = value else { continue };
            warnings.push(format!(
                "{key} is replaced by locality.time_zone (one zone for pages and notices): write `[locality] time_zone = {value:?}` instead"
            ));
            match &chosen {
                Some((other, zone)) if zone.trim() != value.trim() => anyhow::bail!(
                    "{key} = {value:?} disagrees with {other} = {zone:?}: set one time zone, locality.time_zone"
                ),
                Some(_) => {}
                None => chosen = Some((key, value)),
            }
        }
        if let Some((_, zone)) = chosen {
            self.locality.time_zone = zone;
        }
        Ok(warnings)
    }

    fn validate(&self) -> anyhow::Result<()> {
        /// Refuse setting `key` below `min`, saying both (every such bound reads alike).
        fn at_least<T: PartialOrd + std::fmt::Display>(
            key: &str,
            value: T,
            min: T,
        ) -> anyhow::Result<()> {
            if value < min {
                anyhow::bail!("{key} must be at least {min} (got {value})");
            }
            Ok(())
        }

        if !(0.0..=1.0).contains(&self.feeds.max_invalid_ratio) {
            anyhow::bail!(
                "feeds.max_invalid_ratio must be between 0 and 1 (got {})",
                self.feeds.max_invalid_ratio
            );
        }
        at_least("feeds.invalid_window", self.feeds.invalid_window, 100)?;
        let l = &self.limits;
        at_least("limits.max_event_bytes", l.max_event_bytes, 256)?;
        if l.max_depth < 3 {
            anyhow::bail!("limits.max_depth must be at least 3 (an event nests subject and data)");
        }
        if l.batch_size == 0 || l.batch_size > 100_000 {
            anyhow::bail!(
                "limits.batch_size must be 1 to 100000 (got {})",
                l.batch_size
            );
        }
        if l.channel_batches == 0 {
            anyhow::bail!("limits.channel_batches must be at least 1");
        }
        at_least(
            "memory.register_households",
            self.memory.register_households,
            1,
        )?;
        at_least(
            "memory.sqlite_write_cache_mib",
            self.memory.sqlite_write_cache_mib,
            1,
        )?;
        at_least("memory.import_households", self.memory.import_households, 1)?;
        let dir = &self.memory.identity_dir;
        if !dir.as_os_str().is_empty() && !dir.is_dir() {
            anyhow::bail!(
                "memory.identity_dir must be an existing directory for the identity index's file (got {})",
                dir.display()
            );
        }
        self.warnings
            .escalation
            .validate()
            .map_err(anyhow::Error::msg)?;
        self.warnings
            .deadline_policy()
            .validate()
            .map_err(anyhow::Error::msg)?;
        let d = &self.deliver;
        if d.quota_per_minute == 0 {
            anyhow::bail!("deliver.quota_per_minute must be at least 1");
        }
        if d.max_attempts == 0 {
            anyhow::bail!("deliver.max_attempts must be at least 1");
        }
        if d.batch_size == 0 || d.max_digest_items == 0 || d.concurrency == 0 {
            anyhow::bail!(
                "deliver.batch_size, max_digest_items and concurrency must be at least 1"
            );
        }
        self.locality.zone()?;
        if d.backoff_base_ms == 0 || d.backoff_cap_ms < d.backoff_base_ms {
            anyhow::bail!("deliver.backoff_base_ms must be at least 1 and at most backoff_cap_ms");
        }
        let s = &self.serve;
        at_least("serve.max_body_bytes", s.max_body_bytes, 1024)?;
        if s.auth_failures_per_minute == 0 {
            anyhow::bail!("serve.auth_failures_per_minute must be at least 1");
        }
        at_least("serve.push_max_bytes", s.push_max_bytes, 1024)?;
        if s.push_batches_per_minute == 0 {
            anyhow::bail!("serve.push_batches_per_minute must be at least 1");
        }
        if !(1..=10_000).contains(&s.max_page_size) {
            anyhow::bail!(
                "serve.max_page_size must be 1 to 10000 (got {})",
                s.max_page_size
            );
        }
        if !(s.public_url.starts_with("http://") || s.public_url.starts_with("https://")) {
            anyhow::bail!(
                "serve.public_url must start with http:// or https:// (got {:?})",
                s.public_url
            );
        }
        doudi_service::TrustedProxies::parse(&s.trusted_proxies)
            .map_err(|e| anyhow::anyhow!("serve.trusted_proxies: {e}"))?;
        if s.tls_cert.is_some() != s.tls_key.is_some() {
            anyhow::bail!("serve.tls_cert and serve.tls_key go together: set both or neither");
        }
        if !valid_key_id(&d.key_id) {
            anyhow::bail!(
                "deliver.key_id must be 1 to 64 letters, digits, '.', '_' or '-' (got {:?})",
                d.key_id
            );
        }
        self.kafka.validate().map_err(anyhow::Error::msg)?;
        self.crosscheck
            .validate()
            .map_err(|e| anyhow::anyhow!("crosscheck: {e}"))?;
        Ok(())
    }

    /// The configuration as `doudi config` prints it: no secret, and a password inside
    /// `store.url` masked.
    pub fn printable(&self) -> anyhow::Result<String> {
        let mut shown = self.clone();
        shown.store.url = doudi_store::redact_url(&shown.store.url);
        Ok(toml::to_string_pretty(&shown)?)
    }

    /// The rule set named by the configuration, or the built-in one.
    /// The configured rule set's TOML (`None`: the built-in one).
    pub fn rule_set_text(&self) -> anyhow::Result<Option<String>> {
        match &self.rules.file {
            None => Ok(None),
            Some(path) => std::fs::read_to_string(path)
                .map(Some)
                .with_context(|| format!("cannot read rule set {}", path.display())),
        }
    }

    pub fn rule_set(&self) -> anyhow::Result<doudi_risk::RuleSet> {
        match &self.rules.file {
            None => Ok(doudi_risk::RuleSet::builtin()),
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("cannot read rule set {}", path.display()))?;
                doudi_risk::RuleSet::from_toml_str(&text)
                    .with_context(|| format!("rule set {} is invalid", path.display()))
            }
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LinkageConfig {
    /// Records sampled from the feeds (evenly over the sources) to train the identity model by
    /// EM when none is stored yet (`doudi linkage train` retrains on demand).
    pub train_sample: usize,
    /// EM iterations when training.
    pub train_iterations: usize,
    /// How many labelled pairs the EM estimate is worth when people's review decisions are
    /// blended in (each decided review is a labelled pair; more decisions weigh more).
    pub label_strength: f64,
    /// Decision thresholds on the total match weight (bits): link, margin over the runner-up,
    /// review, and the blocking cap.
    pub thresholds: doudi_linkage::Thresholds,
}

impl Default for LinkageConfig {
    fn default() -> Self {
        LinkageConfig {
            train_sample: 50_000,
            train_iterations: 25,
            label_strength: 1000.0,
            thresholds: doudi_linkage::Thresholds::default(),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WarningsConfig {
    /// A warning's deadline is never earlier than this many hours after its fact was received.
    pub deadline_floor_hours: i64,
    /// A fact received more than this many hours after it happened is late (a catch-up case).
    pub late_after_hours: i64,
    /// The deadline of a late warning: receipt + these hours, by level.
    pub catch_up_hours: doudi_warnings::fold::LevelHours,
    pub escalation: doudi_warnings::escalation::EscalationConfig,
}

impl Default for WarningsConfig {
    fn default() -> Self {
        let d = doudi_warnings::fold::DeadlinePolicy::default();
        WarningsConfig {
            deadline_floor_hours: d.floor_hours,
            late_after_hours: d.late_after_hours,
            catch_up_hours: d.catch_up_hours,
            escalation: Default::default(),
        }
    }
}

impl WarningsConfig {
    /// The deadline policy of late records (issue 19).
    pub fn deadline_policy(&self) -> doudi_warnings::fold::DeadlinePolicy {
        doudi_warnings::fold::DeadlinePolicy {
            floor_hours: self.deadline_floor_hours,
            late_after_hours: self.late_after_hours,
            catch_up_hours: self.catch_up_hours,
        }
    }
}

/// Every secret setting: the variable after `DOUDI_` (see [`secret_from_env`]) and where it goes.
/// A new secret setting is one line here (and a `Secret` field that is never serialised).
type SetSecret = fn(&mut Config, Secret);
const SECRETS: &[(&str, SetSecret)] = &[
    ("DELIVER__SECRET", |c, s| c.deliver.secret = s),
    ("STORE__PASSWORD", |c, s| c.store.password = s),
    ("KAFKA__SASL_PASSWORD", |c, s| {
        c.kafka.secrets.set("sasl.password", s.0)
    }),
    ("KAFKA__SSL_KEY_PASSWORD", |c, s| {
        c.kafka.secrets.set("ssl.key.password", s.0)
    }),
    ("KAFKA__SSL_KEYSTORE_PASSWORD", |c, s| {
        c.kafka.secrets.set("ssl.keystore.password", s.0)
    }),
    ("AUDIT__CHECKPOINT_KEY", |c, s| c.audit.checkpoint_key = s),
];

fn valid_key_id(id: &str) -> bool {
    (1..=64).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// Every secret of [`SECRETS`] that the environment (`var`) sets, into `config`.
fn apply_secrets(
    config: &mut Config,
    var: impl Fn(&str) -> Option<std::ffi::OsString>,
) -> anyhow::Result<()> {
    for (name, set) in SECRETS {
        if let Some(secret) = secret_from(name, &var)? {
            set(config, secret);
        }
    }
    Ok(())
}

/// A `DOUDI_` variable (without the prefix) that holds a secret or names its file.
fn is_secret_variable(key: &str) -> bool {
    let key = key.to_ascii_uppercase();
    let key = key.strip_suffix("_FILE").unwrap_or(&key);
    SECRETS.iter().any(|(name, _)| *name == key)
}

/// One secret setting from the environment, by the one convention every secret follows (as the
/// official PostgreSQL image does): `DOUDI_<NAME>_FILE` names a file that holds it — a mounted
/// Kubernetes secret, a Docker secret, a systemd credential — or `DOUDI_<NAME>` holds it (visible
/// to whoever can read the process's environment: prefer the file). Not both. One trailing line
/// break of a file is dropped, so `echo "$key" > file` works; an empty file is an error. `None`:
/// neither variable is set.
pub fn secret_from_env(name: &str) -> anyhow::Result<Option<Secret>> {
    secret_from(name, &|var: &str| std::env::var_os(var))
}

fn secret_from(
    name: &str,
    var: &impl Fn(&str) -> Option<std::ffi::OsString>,
) -> anyhow::Result<Option<Secret>> {
    let direct = format!("DOUDI_{name}");
    let file_var = format!("{direct}_FILE");
    match (var(&direct), var(&file_var)) {
        (Some(_), Some(_)) => anyhow::bail!(
            "both {direct} and {file_var} are set: keep one (the file: an environment is easier to leak)"
        ),
        (Some(value), None) => value
            .into_string()
            .map(|v| Some(Secret(v)))
            .map_err(|_| anyhow::anyhow!("{direct} is not valid UTF-8")),
        (None, Some(path)) => {
            let path = PathBuf::from(path);
            let text = std::fs::read_to_string(&path).with_context(|| {
                format!("{file_var}: cannot read the secret file {}", path.display())
            })?;
            let text = text
                .strip_suffix('\n')
                .map(|t| t.strip_suffix('\r').unwrap_or(t))
                .unwrap_or(&text);
            if text.is_empty() {
                anyhow::bail!("{file_var}: the secret file {} is empty", path.display());
            }
            Ok(Some(Secret(text.to_string())))
        }
        (None, None) => Ok(None),
    }
}

/// A secret: never printed (`Debug` shows `<redacted>`, `doudi config` leaves it out).
#[derive(Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct Secret(pub String);

impl Secret {
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The secret, or `None` when it is empty (not set).
    pub fn get(&self) -> Option<&str> {
        Some(self.0.as_str()).filter(|s| !s.is_empty())
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_empty() {
            "<empty>"
        } else {
            "<redacted>"
        })
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DeliverConfig {
    /// HMAC-SHA256 key shared with the receivers: `DOUDI_DELIVER__SECRET_FILE` (or
    /// `DOUDI_DELIVER__SECRET`). Delivery refuses to start without one while an officer is reached
    /// by a webhook (robots need none). Never printed.
    #[serde(skip_serializing)]
    pub secret: Secret,
    /// The id of that key, sent in `X-Doudi-Key-Id`: receivers hold the old and the new key
    /// during a change and check with the one named (see `doudi_deliver::sign`).
    pub key_id: String,
    /// Deliveries per recipient per minute (also the burst); beyond it, one digest.
    pub quota_per_minute: u32,
    /// Most notices in one digest (the rest go in the next).
    pub max_digest_items: usize,
    /// Retry delays: full jitter below min(cap, base · 2^(attempt-1)).
    pub backoff_base_ms: u64,
    pub backoff_cap_ms: u64,
    /// Attempts per notice before it is marked failed (still listed in the inbox and the log).
    pub max_attempts: u32,
    /// Per request.
    pub timeout_ms: u64,
    /// How often `doudi deliver` looks for due notices when idle.
    pub poll_interval_ms: u64,
    /// Pending notices read per pass.
    pub batch_size: usize,
    /// Recipients served at once.
    pub concurrency: usize,
    /// The web service, for the link to each warning in the payload.
    pub web_base_url: String,
    /// Replaced by `locality.time_zone`; still read, with a warning.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub time_zone: Option<String>,
}

impl Default for DeliverConfig {
    fn default() -> Self {
        DeliverConfig {
            secret: Secret::default(),
            key_id: "1".into(),
            quota_per_minute: 30,
            max_digest_items: 500,
            backoff_base_ms: 1000,
            backoff_cap_ms: 300_000,
            max_attempts: 15,
            timeout_ms: 10_000,
            poll_interval_ms: 1000,
            batch_size: 5000,
            concurrency: 8,
            web_base_url: "http://localhost:8080".into(),
            time_zone: None,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServeConfig {
    /// Address to listen on (`--listen` overrides it).
    pub listen: String,
    /// Where people reach the service; cookies are marked Secure when it is https://.
    pub public_url: String,
    /// Largest request body accepted, in bytes.
    pub max_body_bytes: usize,
    /// Failed authentications one client address may make per minute (also the burst); beyond
    /// it the service answers 429.
    pub auth_failures_per_minute: u32,
    /// Most warnings on one page of `GET /api/warnings`.
    pub max_page_size: i64,
    /// Largest batch a feeder may push (`POST /api/feeds/{source}`), in bytes (larger: 413).
    pub push_max_bytes: usize,
    /// Batches one feeder token may push per minute (beyond it: 429).
    pub push_batches_per_minute: u32,
    /// Where pushed batches go: `folder` (appended to `feeds.dir`, read by `doudi run --feeds`)
    /// or `kafka` (produced to the source's topic of `[kafka]`, acks=all, read by
    /// `doudi run --brokers`).
    pub push_to: PushTo,
    /// Feed profiles (shipped names or paths) a feeder may push a department's own export in,
    /// with `POST /api/feeds/SOURCE?profile=NAME`.
    pub push_profiles: Vec<String>,
    /// Replaced by `locality.time_zone`; still read, with a warning.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub time_zone: Option<String>,
    /// Seconds to let requests in flight finish after SIGTERM or Ctrl-C.
    pub shutdown_grace_seconds: u64,
    /// Addresses (`10.0.0.5`) or networks (`10.0.0.0/8`) of the reverse proxies in front of the
    /// service, which terminate TLS and whose `X-Forwarded-For` is believed. With an https
    /// `public_url`, `serve` needs these or its own TLS (`tls_cert`, `tls_key`).
    pub trusted_proxies: Vec<String>,
    /// The service's own TLS: a PEM certificate chain and its key (PKCS#8, RSA or SEC1); both or
    /// neither. Without them it speaks plain HTTP (behind a TLS-terminating proxy).
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
}

/// Where `doudi serve` puts pushed batches (`serve.push_to`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PushTo {
    /// Appended to the feeds folder (`feeds.dir`), fsynced.
    #[default]
    Folder,
    /// Produced to the source's Kafka topic, acknowledged by all in-sync replicas.
    Kafka,
}

impl Default for ServeConfig {
    fn default() -> Self {
        ServeConfig {
            listen: "127.0.0.1:8080".into(),
            public_url: "http://localhost:8080".into(),
            max_body_bytes: 65536,
            auth_failures_per_minute: 10,
            max_page_size: 500,
            push_max_bytes: 8 * 1024 * 1024,
            push_batches_per_minute: 600,
            push_to: PushTo::Folder,
            push_profiles: Vec::new(),
            time_zone: None,
            shutdown_grace_seconds: 10,
            trusted_proxies: Vec::new(),
            tls_cert: None,
            tls_key: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_need_no_file() {
        let c = Config::load(None).unwrap();
        assert_eq!(c.store.url, "sqlite://doudi.db");
        assert_eq!(c.limits.max_event_bytes, 65536);
    }

    #[test]
    fn file_values_override_defaults_and_unknown_keys_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("doudi.toml");
        std::fs::write(&p, "[limits]\nbatch_size = 50\n").unwrap();
        assert_eq!(Config::load(Some(&p)).unwrap().limits.batch_size, 50);
        std::fs::write(&p, "[limits]\nbatch_sise = 50\n").unwrap();
        let e = Config::load(Some(&p)).unwrap_err().to_string();
        assert!(e.contains("batch_sise"), "{e}");
        std::fs::write(&p, "[limits]\nbatch_size = 0\n").unwrap();
        let e = Config::load(Some(&p)).unwrap_err().to_string();
        assert!(e.contains("batch_size"), "{e}");
        let e = Config::load(Some(&dir.path().join("missing.toml")))
            .unwrap_err()
            .to_string();
        assert!(e.contains("does not exist"), "{e}");
    }

    #[test]
    fn the_identity_index_bound_is_read_and_a_bad_one_is_refused_with_its_key() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("doudi.toml");
        std::fs::write(
            &p,
            format!(
                "[memory]\nidentity_members = 5000\nidentity_dir = \"{}\"\n",
                dir.path().display()
            ),
        )
        .unwrap();
        let ix = Config::load(Some(&p)).unwrap().memory.identity_index();
        assert_eq!(ix.members_in_memory, 5000);
        assert_eq!(ix.dir.as_deref(), Some(dir.path()));
        let defaults = Config::default().memory.identity_index();
        assert_eq!(defaults.dir, None, "beside the database unless given");
        std::fs::write(&p, "[memory]\nidentity_members = -1\n").unwrap();
        let e = Config::load(Some(&p)).unwrap_err().to_string();
        assert!(e.contains("identity_members"), "{e}");
        std::fs::write(&p, "[memory]\nidentity_dir = \"/no/such/dir\"\n").unwrap();
        let e = Config::load(Some(&p)).unwrap_err().to_string();
        assert!(
            e.contains("memory.identity_dir") && e.contains("/no/such/dir"),
            "{e}"
        );
    }

    #[test]
    fn one_time_zone_the_old_keys_read_with_a_warning_and_refused_when_they_disagree() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("doudi.toml");
        std::fs::write(&p, "[locality]\ntime_zone = \"Asia/Urumqi\"\n").unwrap();
        assert_eq!(
            Config::load(Some(&p)).unwrap().locality.zone().unwrap(),
            chrono_tz::Asia::Urumqi
        );
        // The old keys alone: read, each with a warning naming the new key.
        let mut c = Config::default();
        c.serve.time_zone = Some("Asia/Urumqi".into());
        c.deliver.time_zone = Some("Asia/Urumqi".into());
        let warnings = c.one_time_zone(false).unwrap();
        assert_eq!(warnings.len(), 2, "{warnings:?}");
        assert!(
            warnings
                .iter()
                .all(|w| w.contains("locality.time_zone") && w.contains("[locality]")),
            "{warnings:?}"
        );
        assert_eq!(c.locality.time_zone, "Asia/Urumqi");
        assert_eq!((c.serve.time_zone, c.deliver.time_zone), (None, None));
        std::fs::write(&p, "[serve]\ntime_zone = \"Asia/Urumqi\"\n").unwrap();
        assert_eq!(
            Config::load(Some(&p)).unwrap().locality.time_zone,
            "Asia/Urumqi"
        );
        // Two zones: refused, naming both keys.
        for (text, [first, second]) in [
            (
                "[serve]\ntime_zone = \"Asia/Urumqi\"\n[deliver]\ntime_zone = \"Asia/Shanghai\"\n",
                ["deliver.time_zone", "serve.time_zone"],
            ),
            (
                "[locality]\ntime_zone = \"Asia/Shanghai\"\n[serve]\ntime_zone = \"Asia/Urumqi\"\n",
                ["locality.time_zone", "serve.time_zone"],
            ),
        ] {
            std::fs::write(&p, text).unwrap();
            let e = Config::load(Some(&p)).unwrap_err().to_string();
            assert!(e.contains(first) && e.contains(second), "{e}");
        }
        // Agreeing: accepted.
        std::fs::write(
            &p,
            "[locality]\ntime_zone = \"Asia/Shanghai\"\n[deliver]\ntime_zone = \"Asia/Shanghai\"\n",
        )
        .unwrap();
        assert_eq!(Config::load(Some(&p)).unwrap(), Config::default());
        std::fs::write(&p, "[locality]\ntime_zone = \"Mars/Olympus\"\n").unwrap();
        let e = Config::load(Some(&p)).unwrap_err().to_string();
        assert!(e.contains("locality.time_zone"), "{e}");
    }

    #[test]
    fn the_delivery_secret_is_never_printed() {
        let mut c = Config::default();
        c.deliver.secret = Secret("s3cr3t-value".into());
        assert!(!format!("{c:?}").contains("s3cr3t-value"));
        let printed = toml::to_string_pretty(&c).unwrap();
        assert!(
            !printed.contains("s3cr3t-value") && !printed.contains("secret"),
            "{printed}"
        );
        assert!(printed.contains("quota_per_minute"), "{printed}");
    }

    #[test]
    fn the_example_configuration_holds_every_default() {
        let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/doudi.example.toml");
        let c = Config::load(Some(&p)).unwrap();
        assert_eq!(
            c,
            Config::default(),
            "deploy/doudi.example.toml is out of step with the defaults"
        );
    }

    /// An environment of these variables only.
    fn env(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<std::ffi::OsString> {
        let vars: Vec<(String, String)> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |name| vars.iter().find(|(k, _)| k == name).map(|(_, v)| v.into())
    }

    #[test]
    fn a_secret_comes_from_its_variable_or_the_file_its_file_variable_names() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("key");
        std::fs::write(&file, "from-the-file\n").unwrap();
        let path = file.display().to_string();
        let get = |vars: &[(&str, &str)]| secret_from("DELIVER__SECRET", &env(vars));
        assert_eq!(get(&[]).unwrap(), None);
        assert_eq!(
            get(&[("DOUDI_DELIVER__SECRET", "inline")]).unwrap(),
            Some(Secret("inline".into()))
        );
        assert_eq!(
            get(&[("DOUDI_DELIVER__SECRET_FILE", &path)]).unwrap(),
            Some(Secret("from-the-file".into())),
            "one trailing line break dropped"
        );
        let e = get(&[
            ("DOUDI_DELIVER__SECRET", "inline"),
            ("DOUDI_DELIVER__SECRET_FILE", &path),
        ])
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("both DOUDI_DELIVER__SECRET and DOUDI_DELIVER__SECRET_FILE"),
            "{e}"
        );
        std::fs::write(&file, "\n").unwrap();
        let e = get(&[("DOUDI_DELIVER__SECRET_FILE", &path)])
            .unwrap_err()
            .to_string();
        assert!(e.contains("is empty"), "{e}");
        let e = get(&[("DOUDI_DELIVER__SECRET_FILE", "/nonexistent/key")])
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("DOUDI_DELIVER__SECRET_FILE") && e.contains("/nonexistent/key"),
            "{e}"
        );
    }

    #[test]
    fn every_secret_setting_follows_the_file_convention_and_is_never_printed() {
        let dir = tempfile::tempdir().unwrap();
        let mut vars = Vec::new();
        for (n, (name, _)) in SECRETS.iter().enumerate() {
            let file = dir.path().join(format!("s{n}"));
            std::fs::write(&file, format!("secret-number-{n}\n")).unwrap();
            vars.push((format!("DOUDI_{name}_FILE"), file.display().to_string()));
            assert!(is_secret_variable(name) && is_secret_variable(&format!("{name}_FILE")));
        }
        let vars: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let mut c = Config::default();
        c.store.url = "postgres://doudi:inline-pw@db/doudi".into();
        apply_secrets(&mut c, env(&vars)).unwrap();
        assert_eq!(c.deliver.secret.expose(), "secret-number-0");
        assert_eq!(c.store.password.expose(), "secret-number-1");
        let made = c.kafka.client();
        assert_eq!(made.get("sasl.password"), Some("secret-number-2"));
        assert_eq!(made.get("ssl.key.password"), Some("secret-number-3"));
        assert_eq!(made.get("ssl.keystore.password"), Some("secret-number-4"));
        assert_eq!(c.audit.checkpoint_key.expose(), "secret-number-5");
        let printed = c.printable().unwrap();
        let debug = format!("{c:?}");
        for n in 0..SECRETS.len() {
            let secret = format!("secret-number-{n}");
            assert!(
                !printed.contains(&secret) && !debug.contains(&secret),
                "{n}"
            );
        }
        assert!(!printed.contains("inline-pw"), "{printed}");
        assert!(
            printed.contains("postgres://doudi:***@db/doudi"),
            "{printed}"
        );
    }
}
