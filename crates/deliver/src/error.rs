/// What stopped a delivery pass (a failed send is not an error: it is retried and logged).
#[derive(Debug, thiserror::Error)]
pub enum DeliverError {
    #[error("delivery refuses to start without a signing secret (set DOUDI_DELIVER__SECRET)")]
    NoSecret,
    #[error("invalid delivery setting: {0}")]
    Setting(String),
    #[error("cannot build the HTTP client: {0}")]
    Client(String),
    #[error(transparent)]
    Store(#[from] doudi_store::StoreError),
    #[error("stored officer {officer:?} is unreadable: {message}")]
    Officer { officer: String, message: String },
}
