/// What can stop a Kafka worker, producer or publisher.
#[derive(Debug, thiserror::Error)]
pub enum KafkaError {
    #[error("Kafka client error while {context}: {source}")]
    Client {
        context: &'static str,
        #[source]
        source: rdkafka::error::KafkaError,
    },
    #[error("topic {topic:?} is not one of the configured feed topics")]
    UnknownTopic { topic: String },
    #[error(
        "partition {topic}/{partition}: {invalid} of the last {window} records are invalid (over \
         kafka.max_invalid_ratio = {ratio}); the upstream feed looks broken, so the worker stops \
         instead of dead-lettering it whole. Fix the producer (or raise the limit), then restart: \
         the partition resumes at offset {resume_at}"
    )]
    BrokenUpstream {
        topic: String,
        partition: i32,
        invalid: usize,
        window: usize,
        ratio: f64,
        resume_at: i64,
    },
    #[error("cannot read {path}: {source}")]
    Io {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Pipeline(#[from] doudi_pipeline::PipelineError),
    #[error(transparent)]
    Store(#[from] doudi_store::StoreError),
    #[error("the consumer thread stopped unexpectedly")]
    ReaderGone,
    #[error("{0}")]
    Config(String),
    #[error("{0}")]
    Publish(String),
}

impl KafkaError {
    pub(crate) fn client(context: &'static str) -> impl FnOnce(rdkafka::error::KafkaError) -> Self {
        move |source| KafkaError::Client { context, source }
    }
}
