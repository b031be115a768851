//! The doudi pipeline: read feeds, ingest (parse, validate, normalise), link each record to a
//! register member, assess the household, open or update its warning — and commit each batch's
//! effects together with the source positions it came from, in one transaction.
//!
//! Reading and parsing run on a blocking thread; applying runs on the async side; a bounded
//! channel between them makes a slow database slow the reading instead of growing memory.
//! Bad records go to dead letters with the reason and their position; nothing is dropped.
//! Logs never carry personal data.

pub mod apply;
mod cache;
pub mod driver;
pub mod files;
mod held;
mod ingest;
pub mod register;
mod replay;
mod review;
pub mod versions;

use std::path::PathBuf;

pub use apply::{
    apply_batch, apply_replayed, rederive_households, stage_batch, BatchOutcome, Engine,
    StagedBatch,
};
pub use cache::{MemoryCaps, TimelineCacheStats};
pub use ingest::{ingest_raw_row, ingest_record, ingest_row, Ingested};
pub use register::{
    follow_register, refresh_register, relink_waiting, Register, RegisterRefresh, RelinkReport,
};
pub use replay::{replay_dead_letters, ReplayOptions, ReplayReport, StillRefused};
pub use review::{decide_review, ReviewApplied};

/// What can stop a run.
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} is neither a source folder (known: {known}) nor a folder of a department's exports with its feed profile (profile.toml) beside them; rename it, move it, or add its profile.toml")]
    UnknownSourceFolder { path: PathBuf, known: String },
    #[error("unexpected {path}: {hint}")]
    UnexpectedFeedEntry { path: PathBuf, hint: &'static str },
    #[error("{path} is shorter ({now} bytes) than the position already read ({stored} bytes): feed files must only grow; restore it or move it aside")]
    FileShrank {
        path: PathBuf,
        stored: u64,
        now: u64,
    },
    #[error(transparent)]
    Store(#[from] doudi_store::StoreError),
    #[error(transparent)]
    Profile(#[from] doudi_feeds::ProfileError),
    #[error("{path}: its profile.toml is for source {found:?}, but the folder is named for {folder:?}; rename the folder or fix the profile's source")]
    ProfileSourceMismatch {
        path: PathBuf,
        folder: String,
        found: String,
    },
    #[error("feed file {stream}: {invalid} of the last {window} records are invalid (over feeds.max_invalid_ratio = {ratio}); the export looks broken, so the run stops instead of dead-lettering it whole. Fix the file (or raise the limit), then run again: it resumes after the last committed batch, before line {line}")]
    BrokenFeed {
        stream: String,
        line: u64,
        invalid: usize,
        window: usize,
        ratio: f64,
    },
    #[error("the reader thread stopped unexpectedly")]
    ReaderGone,
    /// An activation (a rule set or model) committed after the batch was staged with the versions
    /// as of activation `seen`: the batch is rolled back and applied again with them.
    #[error("a rule set or identity model was activated meanwhile (activation {now}, the batch had {seen}); apply it again")]
    VersionsChanged { seen: i64, now: i64 },
    /// Told to stop while the database was away: the batch was not applied (read again).
    #[error("stopped while waiting for the database; the batch in hand was not applied")]
    Stopped,
}

mod run;
pub use driver::InvalidGuard;
pub use run::{run_files, Progress, RunOptions, RunReport};
