//! Why a use case did not do what was asked. Each door maps it to what it answers: the command
//! line to an exit code (2 for a refusal, 1 for a failure), the service to an HTTP status.

use doudi_pipeline::PipelineError;
use doudi_store::StoreError;

/// Why a use case stopped. Messages say what to do instead; they never carry personal data.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// Nothing of that name (404).
    #[error("{0}")]
    NotFound(String),
    /// The asker may not (403); an unauthorised warning move is recorded as a refused attempt.
    #[error("{0}")]
    Forbidden(String),
    /// The request is not one that can be carried out as given (400).
    #[error("{0}")]
    BadRequest(String),
    /// The request does not fit the state it would change (409): moved meanwhile, decided already.
    #[error("{0}")]
    Conflict(String),
    /// What is stored cannot be used (an unreadable officer record or model).
    #[error("{0}")]
    Unusable(String),
    #[error(transparent)]
    Store(StoreError),
    #[error(transparent)]
    Pipeline(PipelineError),
}

impl From<StoreError> for AppError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Conflict(m) => AppError::Conflict(m),
            other => AppError::Store(other),
        }
    }
}

impl From<PipelineError> for AppError {
    fn from(e: PipelineError) -> Self {
        match e {
            PipelineError::Store(s) => s.into(),
            other => AppError::Pipeline(other),
        }
    }
}

impl AppError {
    /// A refusal the asker can act on (not found, forbidden, bad request, conflict), as opposed to
    /// a failure of the system.
    pub fn is_refusal(&self) -> bool {
        matches!(
            self,
            AppError::NotFound(_)
                | AppError::Forbidden(_)
                | AppError::BadRequest(_)
                | AppError::Conflict(_)
        )
    }
}
