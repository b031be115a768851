//! The doudi store: everything the pipeline decides, kept in SQLite (the embedded default) through
//! sqlx, with migrations that run on open.
//!
//! The store is a thin shell: it knows tables and transactions, not rules. The pipeline opens one
//! [`BatchTx`] per batch and writes the batch's effects (events, link decisions, timeline facts,
//! assessments, warnings, dead letters) and the source positions it came from in that one
//! transaction, so a crash at any instant leaves either all of a batch or none of it.
//! Every transaction that writes starts with `BEGIN IMMEDIATE`: it takes the write lock first
//! (waiting up to the busy timeout), so a person's command never fails because the pipeline
//! committed between its read and its write (SQLite's BUSY_SNAPSHOT in WAL mode).
//! It never logs personal data.

mod audit;
mod batch;
mod delivery;
mod error;
mod findings;
mod lifecycle;
mod notices;
mod officers;
mod queries;
mod register;
mod review;
mod tokens;
mod trace;
mod web;

use std::str::FromStr;
use std::time::Duration;

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Row, SqlitePool};

use crate::error::Ctx;

pub use audit::{record_hash, AuditCheck, AuditRecord, GENESIS};
pub use batch::{
    AssessmentRow, BatchTx, DeadLetterRow, EventRow, FactRow, LinkRow, NewWarning, OpenWarningRow,
    PositionRow, WarningUpdate,
};
pub use delivery::{
    AttemptOutcome, DeliveryAttempt, DeliveryLogRow, NoticeDelivery, PendingNotice,
};
pub use error::StoreError;
pub use findings::{CrosscheckRunRow, FindingRow, NightChanges, StoredFinding};
pub use lifecycle::{HistoryEntry, WarningDetail, WarningMove};
pub use notices::{EscalationUpdate, NoticeRow, NoticeView, SilenceRow, WarningClockRow};
pub use officers::{OfficerImport, OfficerRow};
pub use queries::{DeadLetterRecord, DeadLetterView, Status, WarningView};
pub use register::ImportReport;
pub use review::{LinkDecisionView, ReviewChoice, ReviewDecisionView, ReviewItem, StoredModel};
pub use tokens::{NewToken, TokenRow};
pub use trace::TraceEntry;
pub use web::{HouseholdRecord, RegionCounts, WarningFilter, WarningPage};

/// Database page size (set when the file is created).
const PAGE_SIZE: u32 = 8192;

static MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");

/// A position in one source stream: the byte offset after the last committed record and its line.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Position {
    pub byte_offset: u64,
    pub line: u64,
}

/// The store (a pool of connections to one database).
#[derive(Clone, Debug)]
pub struct Store {
    pool: SqlitePool,
}

impl Store {
    /// Open (creating if missing) the database at `url` (`sqlite://PATH`) and run migrations.
    pub async fn open(url: &str) -> Result<Store, StoreError> {
        if !url.starts_with("sqlite:") {
            return Err(StoreError::UnsupportedUrl(url.to_string()));
        }
        let options = SqliteConnectOptions::from_str(url)
            .map_err(|e| StoreError::BadUrl {
                url: url.to_string(),
                message: e.to_string(),
            })?
            .create_if_missing(true)
            .page_size(PAGE_SIZE)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(Duration::from_secs(30))
            .foreign_keys(true)
            .pragma("cache_size", "-65536")
            .pragma("temp_store", "memory")
            .pragma("wal_autocheckpoint", "32768");
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(options)
            .await
            .map_err(|e| StoreError::Open {
                url: url.to_string(),
                source: e,
            })?;
        let store = Store { pool };
        store.migrate().await?;
        Ok(store)
    }

    /// Run the migrations that have not run yet (also done by [`Store::open`]).
    pub async fn migrate(&self) -> Result<(), StoreError> {
        MIGRATIONS
            .run(&self.pool)
            .await
            .map_err(StoreError::Migrate)
    }

    /// Start a batch transaction.
    pub async fn begin(&self) -> Result<BatchTx, StoreError> {
        BatchTx::begin(&self.pool).await
    }

    /// Copy committed pages from the write-ahead log into the database file without blocking the
    /// writer (SQLite's PASSIVE checkpoint). Run from a task beside a long write, it moves the
    /// copying (and its fsync) off the writer's connection. Returns (log frames, frames copied).
    pub async fn checkpoint(&self) -> Result<(i64, i64), StoreError> {
        let row = sqlx::query("PRAGMA wal_checkpoint(PASSIVE)")
            .fetch_one(&self.pool)
            .await
            .ctx("checkpointing the write-ahead log")?;
        Ok((row.get(1), row.get(2)))
    }

    pub(crate) fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    /// Close the pool, flushing the WAL.
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

/// Timestamps are stored as RFC 3339 in UTC with a `Z` and six decimals, so that text order is
/// time order. Whatever writes a time the store compares (a `--now`, a silence's end) uses this.
pub fn ts<Tz: chrono::TimeZone>(t: &chrono::DateTime<Tz>) -> String {
    t.with_timezone(&chrono::Utc)
        .format("%Y-%m-%dT%H:%M:%S%.6fZ")
        .to_string()
}

pub(crate) fn now() -> String {
    ts(&chrono::Utc::now())
}
