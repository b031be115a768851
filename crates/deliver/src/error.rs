/// What stopped a delivery pass (a failed send is not an error: it is retried and logged).
#[derive(Debug, thiserror::Error)]
pub enum DeliverError {
    /// Webhooks are signed: with officers reached by one, delivery needs the key (robots do not).
    #[error("delivery refuses to start without a signing secret while officers are reached by a webhook ({0}): set DOUDI_DELIVER__SECRET_FILE to a file holding it, or DOUDI_DELIVER__SECRET (shared with the receivers, who verify X-Doudi-Signature with it)")]
    NoSecret(String),
    #[error("invalid delivery setting: {0}")]
    Setting(String),
    #[error("cannot build the HTTP client: {0}")]
    Client(String),
    #[error(transparent)]
    Store(#[from] doudi_store::StoreError),
    #[error("stored officer {officer:?} is unreadable: {message}")]
    Officer { officer: String, message: String },
}
