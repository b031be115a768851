//! The doudi store: everything the pipeline decides, kept through sqlx in SQLite (the embedded
//! default, `sqlite://PATH`) or PostgreSQL (production and scale-out, `postgres://…`), with
//! migrations that run on open (`migrations/sqlite`, `migrations/postgres`: the same tables and
//! numbering; integers BIGINT, blobs BYTEA, timestamps TEXT in the same RFC 3339 format).
//!
//! The store is a thin shell: it knows tables and transactions, not rules. The pipeline opens one
//! [`BatchTx`] per batch and writes the batch's effects (events, link decisions, timeline facts,
//! assessments, warnings, dead letters) and the source positions it came from in that one
//! transaction, so a crash at any instant leaves either all of a batch or none of it.
//! It never logs personal data.
//!
//! ## SQLite
//! Every transaction that writes starts with `BEGIN IMMEDIATE`: it takes the write lock first
//! (waiting up to the busy timeout), so a person's command never fails because the pipeline
//! committed between its read and its write (SQLite's BUSY_SNAPSHOT in WAL mode). One writer at a
//! time, so everything below holds trivially.
//!
//! ## PostgreSQL
//! Several workers share one database; transactions are `BEGIN` (read committed).
//! - **Households are serialised** by [`BatchTx::lock_households`]: one transaction-scoped
//!   advisory lock per household (`pg_advisory_xact_lock` on [`household_lock_key`], the first 8
//!   bytes of SHA-256 of the id), taken in key order in one statement so two batches never wait
//!   in a cycle, held until commit. The pipeline takes them right after it knows the batch's
//!   households and before it reads their timelines, open warnings or the timeline version.
//!   Different households proceed in parallel. (The order of a household's facts in the timeline
//!   is the events' `seq`, drawn before the locks, in batch order; the rows are inserted in
//!   `(source, event_id)` order so that overlapping inserts never deadlock. Within one worker
//!   `seq` follows commit order; across workers it follows the order batches were staged. The
//!   risk engine orders facts by time and event id itself, so arrival order does not change a
//!   score.)
//! - **The timeline version** ([`BatchTx::timeline_version`]) is a counter row bumped in the same
//!   transaction as the appends; its row lock orders bumps. A second read in a transaction
//!   returns [`TIMELINE_VERSION_UNKNOWN`] when another worker appended meanwhile, so timelines
//!   cached in memory are trusted only while no one else changed any.
//! - **Bulk writes** are one `INSERT … SELECT FROM UNNEST($1::…[], …)` per table per batch
//!   (events with `ON CONFLICT DO NOTHING RETURNING seq`, links, facts, assessments, dead
//!   letters, positions): arrays, not rows of parameters.
//! - **Positions are monotonic** on both backends (`ON CONFLICT … DO UPDATE … WHERE` the new
//!   position is further): a worker that lost a Kafka partition and commits a late batch cannot
//!   move a position back, and its events are refused by the events table's unique key
//!   `(source, event_id)` — the guard that makes a repeat change nothing.
//! - **The audit chain is strictly sequential**: appending takes a transaction-scoped advisory
//!   lock (two-key space, never overlapping household keys) before reading the chain's head.
//! - **One lock order** everywhere, so no two transactions wait for each other in a cycle:
//!   households (in key order) → the `timeline_changes` counter row → the `received` /
//!   `duplicates` rows → the audit chain. Appending to the audit chain therefore takes the
//!   timeline counter's row first; a writer holds all of these until it commits, so the write
//!   phases of batches (from their first timeline append to commit) and audited commands run one
//!   at a time, while reading, linking and assessing run in parallel.
//! - Warning ids come from the table's identity sequence; SQLite-only operations
//!   ([`Store::checkpoint`]) do nothing.
//! - Dead letters have no unique key: a bad record read by two workers at once (during a
//!   rebalance) is kept twice; replaying both applies its event once.
//! - Create the database with the C collation (the default `C.UTF-8` of Debian clusters will
//!   do), so text order is byte order as in SQLite.
//!
//! ## Writing a query once for both backends
//! The pool, a transaction and a connection are a `Db` value (`Db::Sqlite(…)` or
//! `Db::Postgres(…)`). `on!(value, x => body)` expands `body` once per backend, with `x` the inner
//! pool / transaction / connection and `DB` the backend type; rows decode the same way in both
//! (`r.get(i)`, or `r.col(i)` through `Col` in a helper written once). To port a SQLite-style
//! method mechanically:
//! 1. use `$1, $2, …` placeholders (SQLite accepts them) and portable SQL (`ON CONFLICT`,
//!    `RETURNING`, `COALESCE`, `CASE`); bind integers as `i64`, never `bool`;
//! 2. wrap the method body in `crate::on!(self.pool(), pool => { … })` and use `pool` where
//!    `self.pool()` was; a transaction is `pool.begin_with(<DB as crate::Dialect>::BEGIN)`; pass
//!    a transaction to a helper as `crate::Db::from(&mut *tx)` (a `Conn`);
//! 3. `QueryBuilder<DB>` for dynamic SQL; where SQL genuinely differs, choose the text with
//!    `if <DB as crate::Dialect>::POSTGRES { … } else { … }`, or match on the `Db` and write
//!    both arms (bulk writes: `UNNEST` arrays on PostgreSQL);
//! 4. add the table to `migrations/postgres` under the same number as in `migrations/sqlite`.
//!
//! rustfmt leaves the bodies inside `on!(…)` as they are: keep them formatted by hand. Every
//! method is covered by `tests/conformance.rs`, run against both backends.

mod audit;
mod batch;
mod connect;
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
use sqlx::{
    PgConnection, PgPool, Postgres, Row, Sqlite, SqliteConnection, SqlitePool, Transaction,
};

use crate::error::Ctx;

pub use audit::{record_hash, AuditCheck, AuditRecord, GENESIS};
pub use batch::{
    household_lock_key, AssessmentRow, BatchTx, DeadLetterRow, EventRow, FactRow, LinkRow,
    NewWarning, OpenWarningRow, PositionRow, WarningUpdate, TIMELINE_VERSION_UNKNOWN,
};
pub use connect::pg_options;
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

static SQLITE_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");
static POSTGRES_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

/// A position in one source stream: the byte offset after the last committed record and its line.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Position {
    pub byte_offset: u64,
    pub line: u64,
}

/// One thing per backend: a pool, a transaction, a connection. `on!` opens it.
#[derive(Clone, Debug)]
pub(crate) enum Db<S, P> {
    Sqlite(S),
    Postgres(P),
}

/// The connection pool of either backend.
pub(crate) type Pool = Db<SqlitePool, PgPool>;
/// A write transaction of either backend (see [`Store::write_tx`]).
pub(crate) type Tx = Db<Transaction<'static, Sqlite>, Transaction<'static, Postgres>>;
/// A connection of either backend (borrowed from a transaction or a pool).
pub(crate) type Conn<'a> = Db<&'a mut SqliteConnection, &'a mut PgConnection>;

/// Write a query body once and run it on whichever backend `$value` holds: `on!(value, x => body)`
/// expands `body` once per backend with `x` bound to the inner pool / transaction / connection and
/// `DB` a type alias for the backend (`sqlx::Sqlite` or `sqlx::Postgres`), for `QueryBuilder::<DB>`
/// and [`Dialect`]. Each expansion is type-checked against its backend, so a query written once
/// must be portable SQL (`$1` placeholders, `ON CONFLICT`, `RETURNING`, `COALESCE`); where the SQL
/// genuinely differs, match on the [`Db`] value instead and write both arms.
macro_rules! on {
    ($value:expr, $x:ident => $body:expr) => {
        match $value {
            $crate::Db::Sqlite($x) => {
                #[allow(dead_code, clippy::upper_case_acronyms)]
                type DB = ::sqlx::Sqlite;
                $body
            }
            $crate::Db::Postgres($x) => {
                #[allow(dead_code, clippy::upper_case_acronyms)]
                type DB = ::sqlx::Postgres;
                $body
            }
        }
    };
}
pub(crate) use on;

/// What a query body expanded by [`on!`] may need to know of its backend.
pub(crate) trait Dialect {
    /// PostgreSQL (else SQLite).
    const POSTGRES: bool;
    /// How a transaction that writes begins (`pool.begin_with(<DB as Dialect>::BEGIN)`):
    /// `BEGIN IMMEDIATE` on SQLite (the write lock first, see above), `BEGIN` (read committed) on
    /// PostgreSQL.
    const BEGIN: &'static str;
}

impl Dialect for Sqlite {
    const POSTGRES: bool = false;
    const BEGIN: &'static str = "BEGIN IMMEDIATE";
}

impl Dialect for Postgres {
    const POSTGRES: bool = true;
    const BEGIN: &'static str = "BEGIN";
}

/// Decode a column the same way on either backend's row: lets row-mapping helpers be written once
/// (`fn view(r: &impl Col) -> View`).
pub(crate) trait Col {
    fn col<T>(&self, i: usize) -> T
    where
        T: for<'r> sqlx::Decode<'r, Sqlite>
            + sqlx::Type<Sqlite>
            + for<'r> sqlx::Decode<'r, Postgres>
            + sqlx::Type<Postgres>;
}

impl Col for sqlx::sqlite::SqliteRow {
    fn col<T>(&self, i: usize) -> T
    where
        T: for<'r> sqlx::Decode<'r, Sqlite>
            + sqlx::Type<Sqlite>
            + for<'r> sqlx::Decode<'r, Postgres>
            + sqlx::Type<Postgres>,
    {
        self.get(i)
    }
}

impl Col for sqlx::postgres::PgRow {
    fn col<T>(&self, i: usize) -> T
    where
        T: for<'r> sqlx::Decode<'r, Sqlite>
            + sqlx::Type<Sqlite>
            + for<'r> sqlx::Decode<'r, Postgres>
            + sqlx::Type<Postgres>,
    {
        self.get(i)
    }
}

impl Tx {
    /// The transaction's connection.
    pub(crate) fn conn(&mut self) -> Conn<'_> {
        match self {
            Db::Sqlite(tx) => Db::Sqlite(&mut **tx),
            Db::Postgres(tx) => Db::Postgres(&mut **tx),
        }
    }

    pub(crate) async fn commit(self, context: &'static str) -> Result<(), StoreError> {
        on!(self, tx => tx.commit().await.ctx(context))
    }
}

/// Connections per pool on PostgreSQL (a worker's batches, people's commands, reads).
const PG_MAX_CONNECTIONS: u32 = 8;

/// The store (a pool of connections to one database).
#[derive(Clone, Debug)]
pub struct Store {
    pool: Pool,
}

impl Store {
    /// Open the database at `url` and run migrations: `sqlite://PATH` (the file is created if
    /// missing) or `postgres://…` / `postgresql://…` (the database must exist).
    pub async fn open(url: &str) -> Result<Store, StoreError> {
        let pool = if url.starts_with("sqlite:") {
            Db::Sqlite(Self::open_sqlite(url).await?)
        } else if connect::is_postgres(url) {
            Db::Postgres(connect::pg_pool(url, None).await?)
        } else {
            return Err(StoreError::UnsupportedUrl(redact_url(url)));
        };
        let store = Store { pool };
        store.migrate().await?;
        Ok(store)
    }

    async fn open_sqlite(url: &str) -> Result<SqlitePool, StoreError> {
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
        SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(options)
            .await
            .map_err(|e| StoreError::Open {
                url: url.to_string(),
                source: e,
            })
    }

    /// `sqlite` or `postgres`.
    pub fn backend(&self) -> &'static str {
        match self.pool {
            Db::Sqlite(_) => "sqlite",
            Db::Postgres(_) => "postgres",
        }
    }

    /// Run the migrations that have not run yet (also done by [`Store::open`]).
    pub async fn migrate(&self) -> Result<(), StoreError> {
        match &self.pool {
            Db::Sqlite(p) => SQLITE_MIGRATIONS.run(p).await,
            Db::Postgres(p) => POSTGRES_MIGRATIONS.run(p).await,
        }
        .map_err(StoreError::Migrate)
    }

    /// Start a batch transaction.
    pub async fn begin(&self) -> Result<BatchTx, StoreError> {
        BatchTx::begin(&self.pool).await
    }

    /// Start a transaction that writes: `BEGIN IMMEDIATE` on SQLite (the write lock first, see
    /// above), `BEGIN` (read committed) on PostgreSQL.
    pub(crate) async fn write_tx(&self, context: &'static str) -> Result<Tx, StoreError> {
        Ok(match &self.pool {
            Db::Sqlite(p) => Db::Sqlite(p.begin_with("BEGIN IMMEDIATE").await.ctx(context)?),
            Db::Postgres(p) => Db::Postgres(p.begin().await.ctx(context)?),
        })
    }

    /// Copy committed pages from the write-ahead log into the database file without blocking the
    /// writer (SQLite's PASSIVE checkpoint). Run from a task beside a long write, it moves the
    /// copying (and its fsync) off the writer's connection. Returns (log frames, frames copied).
    /// On PostgreSQL the server checkpoints by itself: nothing to do, `(0, 0)`.
    pub async fn checkpoint(&self) -> Result<(i64, i64), StoreError> {
        match &self.pool {
            Db::Sqlite(p) => {
                let row = sqlx::query("PRAGMA wal_checkpoint(PASSIVE)")
                    .fetch_one(p)
                    .await
                    .ctx("checkpointing the write-ahead log")?;
                Ok((row.get(1), row.get(2)))
            }
            Db::Postgres(_) => Ok((0, 0)),
        }
    }

    pub(crate) fn pool(&self) -> &Pool {
        &self.pool
    }

    /// Close the pool (on SQLite, flushing the WAL).
    pub async fn close(&self) {
        on!(&self.pool, p => p.close().await)
    }
}

/// The URL without its password (for errors, logs and what a command prints).
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let userinfo = &url[scheme + 3..at];
            match userinfo.find(':') {
                Some(colon) => format!(
                    "{}{}:***{}",
                    &url[..scheme + 3],
                    &userinfo[..colon],
                    &url[at..]
                ),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
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

impl<'a> From<&'a mut SqliteConnection> for Conn<'a> {
    fn from(c: &'a mut SqliteConnection) -> Self {
        Db::Sqlite(c)
    }
}

impl<'a> From<&'a mut PgConnection> for Conn<'a> {
    fn from(c: &'a mut PgConnection) -> Self {
        Db::Postgres(c)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_url_is_shown_without_its_password() {
        assert_eq!(
            redact_url("postgres://doudi:s3cret@db:5432/doudi"),
            "postgres://doudi:***@db:5432/doudi"
        );
        assert_eq!(
            redact_url("postgres://postgres@127.0.0.1/test"),
            "postgres://postgres@127.0.0.1/test"
        );
        assert_eq!(redact_url("sqlite://doudi.db"), "sqlite://doudi.db");
    }

    #[test]
    fn household_lock_keys_are_stable_and_distinct() {
        // The same in every worker and release: a changed key would let two versions of the
        // worker decide on one household at once during a rolling upgrade.
        assert_eq!(household_lock_key("H1"), household_lock_key("H1"));
        assert_ne!(household_lock_key("H1"), household_lock_key("H2"));
        use sha2::Digest;
        let d = sha2::Sha256::digest(b"H00000049");
        assert_eq!(household_lock_key("H00000049").to_be_bytes(), d[..8]);
    }
}
