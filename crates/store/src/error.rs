/// What went wrong in the store, with what it was doing.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("unsupported database URL {0:?}: use sqlite://PATH or postgres://USER@HOST/DATABASE")]
    UnsupportedUrl(String),
    #[error("bad database URL {url:?}: {message}")]
    BadUrl { url: String, message: String },
    #[error("cannot open database {url:?}: {source}")]
    Open {
        url: String,
        #[source]
        source: sqlx::Error,
    },
    #[error("database migration failed: {0}")]
    Migrate(#[source] sqlx::migrate::MigrateError),
    #[error("database error while {context}: {source}")]
    Db {
        context: &'static str,
        #[source]
        source: sqlx::Error,
    },
    /// The request does not fit what is stored (already decided, not found, …); the message says
    /// what to do.
    #[error("{0}")]
    Conflict(String),
    #[error("stored data is corrupt ({context}): {message}")]
    Corrupt {
        context: &'static str,
        message: String,
    },
}

pub(crate) trait Ctx<T> {
    fn ctx(self, context: &'static str) -> Result<T, StoreError>;
}

impl<T> Ctx<T> for Result<T, sqlx::Error> {
    fn ctx(self, context: &'static str) -> Result<T, StoreError> {
        self.map_err(|source| StoreError::Db { context, source })
    }
}

pub(crate) fn corrupt(context: &'static str, e: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt {
        context,
        message: e.to_string(),
    }
}
