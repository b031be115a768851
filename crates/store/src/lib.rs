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
//!   letters, positions): arrays, not rows of parameters. Each table is described once (its
//!   columns and their types) and both backends' statements are made from the description.
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
//! ## Inside
//! - `open`: the [`Store`] handle (opening either backend, migrations, transactions);
//! - `connect`: PostgreSQL's connection options ([`pg_options`]): TLS with libpq's parameters, a
//!   password given apart from the URL;
//! - `db`: the plumbing every query runs on: `Db` (a pool, transaction or connection of either
//!   backend) and `on!(value, x => body)`, which writes a query body once for both (its module
//!   docs say how to write one);
//! - `bulk`: bulk writes as table descriptions, both backends' statements made from them;
//! - `codec`: the one encode/decode of what crosses the store as text: levels, warning statuses
//!   and link outcomes by their codes, times as `DateTime<Utc>`, assessments, evidence and
//!   dispositions as typed documents ([`Json`]); a stored value that does not decode is
//!   [`StoreError::Corrupt`] naming its table and column, never a default;
//! - `pack`: the per-event documents (normalised events, assessments, link evidence) and the
//!   register's history of records deflated against a preset
//!   dictionary of their kind, as text in the same columns; either form reads;
//! - `locks`: PostgreSQL's locks, in the one order above; `time`: how times are stored;
//! - `batch`: the pipeline's [`BatchTx`]; the other modules, one area each (audit, lifecycle,
//!   review, notices, delivery, register, officers, regions, tokens, findings, queries, web, trace,
//!   activations, retention).
//!
//! Every method is covered by `tests/conformance.rs`, run against both backends.

mod activations;
mod audit;
mod batch;
mod bulk;
mod codec;
mod connect;
mod db;
mod delivery;
mod error;
mod findings;
mod lifecycle;
mod locks;
mod notices;
mod officers;
mod open;
mod pack;
mod pages;
mod pushed;
mod queries;
mod regions;
mod register;
mod register_stamp;
mod retention;
mod review;
mod sessions;
#[cfg(test)]
mod testing;
mod time;
mod tokens;
mod trace;
mod web;

pub use activations::{ActivationKind, ActivationRow};
pub use audit::{record_hash, AuditCheck, AuditRecord, Checkpoint, CHECKPOINT_FORMAT, GENESIS};
pub use batch::{
    transition_key, AssessmentRow, BatchTx, CurrentWarningRow, DeadLetterRow, EpisodeMark,
    EventRow, FactRow, LinkRow, NewWarning, OpenWarningRow, Position, PositionRow, TimelineEntry,
    WarningChange, WarningUpdate, TIMELINE_VERSION_UNKNOWN,
};
pub use codec::{Code, Document, Json, Unreadable};
pub use connect::pg_options;
pub use delivery::{
    AttemptOutcome, DeliveryAttempt, DeliveryLogRow, NoticeDelivery, PendingNotice,
};
pub use error::StoreError;
pub use findings::{CrosscheckRunRow, FindingRow, NightChanges, StoredFinding};
pub use lifecycle::{HistoryEntry, WarningDetail, WarningMove};
pub use locks::household_lock_key;
pub use notices::{EscalationUpdate, NoticeRow, NoticeView, SilenceRow, WarningClockRow};
pub use officers::{OfficerImport, OfficerRow};
pub use open::{redact_url, OpenOptions, Store, DEFAULT_WRITE_CACHE_MIB};
pub use pack::{
    decode_household_record, pack_event, pack_event_deflate, unpack_document, Packed, Stored,
};
pub use pages::{EscalatedWarning, FactTimes};
pub use queries::{DeadLetterRecord, DeadLetterView, Status, WarningView};
pub use regions::{display_name, RegionImport, RegionName};
pub use register::{ImportReport, RegisterChange, RegisterImport, WaitingLink};
pub use review::{LinkDecisionView, ReviewChoice, ReviewDecisionView, ReviewItem, StoredModel};
pub use sessions::SessionRow;
pub use time::{is_canonical, ts};
pub use tokens::{NewToken, TokenRow};
pub use trace::{EarlierDecision, TraceEntry};
pub use web::{HouseholdRecord, RegionCounts, WarningFilter, WarningPage};
