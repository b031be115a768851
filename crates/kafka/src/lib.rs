//! Kafka for doudi: the consumer-group source of the four feeds, the dead-letter and warnings
//! topics, and librdkafka's Kafka-protocol mock broker for development and tests.
//!
//! The database is the truth for offsets: each batch's effects and the next offset of every
//! partition it came from commit in one transaction (positions rows `(source, "topic/partition",
//! next offset, last offset)`); on assignment the consumer seeks to them. Offsets committed to
//! Kafka after each database commit are for monitoring only. Dead letters reach the dead-letter
//! topic before the batch that refuses them commits (at least once, with their origin in
//! headers). Notices reach the warnings topic once each (see [`publish`]).
//!
//! It never logs, labels or keys anything by name; keys are ID numbers only on the feed topics
//! (as the producers send them) and household ids on the warnings topic.

pub mod config;
pub mod dev;
mod error;
mod group;
pub mod produce;
pub mod publish;
pub mod sample;
pub mod source;
mod worker;

pub use config::{KafkaConfig, Topics};
pub use error::KafkaError;
pub use group::{Observer, RecordMeta};
pub use worker::{is_transient, run_kafka, SourceOptions};

/// Forward librdkafka's log lines to `tracing` (they carry broker addresses and states, never
/// message contents).
pub(crate) fn forward_log(level: rdkafka::config::RDKafkaLogLevel, fac: &str, message: &str) {
    use rdkafka::config::RDKafkaLogLevel as L;
    match level {
        L::Emerg | L::Alert | L::Critical | L::Error => {
            tracing::error!(target: "librdkafka", "{fac}: {message}")
        }
        L::Warning => tracing::warn!(target: "librdkafka", "{fac}: {message}"),
        L::Notice | L::Info => tracing::info!(target: "librdkafka", "{fac}: {message}"),
        L::Debug => tracing::debug!(target: "librdkafka", "{fac}: {message}"),
    }
}

/// A client context that logs through `tracing`, and says nothing of the partition ends a reader
/// of a topic's tail waits for.
pub(crate) struct Quiet;

impl rdkafka::ClientContext for Quiet {
    fn log(&self, level: rdkafka::config::RDKafkaLogLevel, fac: &str, message: &str) {
        forward_log(level, fac, message);
    }

    fn error(&self, error: rdkafka::error::KafkaError, reason: &str) {
        if matches!(error, rdkafka::error::KafkaError::PartitionEOF(_)) {
            return;
        }
        tracing::warn!(error = %error, "Kafka: {reason}");
    }
}

impl rdkafka::consumer::ConsumerContext for Quiet {}
