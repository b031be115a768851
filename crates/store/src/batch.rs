//! One batch = one transaction: the effects of a batch of records and the positions they came from.

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};

use doudi_model::{Assessment, Evidence, Fact, Level, LinkOutcome};
use sqlx::{QueryBuilder, Row};

use crate::bulk::{
    bytes, int, maybe_text, text, update_listed, Bind, Column, OnConflict, Table, CHUNK,
};
use crate::codec::{decode_code, decode_time, Json};
use crate::db::{on, push_list, Conn, Db, Fetch, Run, Tx};
use crate::error::{corrupt, StoreError};
use crate::locks::{lock_households, lock_timeline_counter};
use crate::open::Store;
use crate::pack::{pack_event, unpack_stored, Packed, Stored};
use crate::time::{now, ts};

/// A position in one source stream: the byte offset after the last committed record and its line.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Position {
    pub byte_offset: u64,
    pub line: u64,
}

/// An accepted event, raw and normalised. When `raw` is byte for byte `normalised` (the JSON
/// envelope as doudi writes it), the bytes are stored once: `events.raw` is then empty, and every
/// reader of the raw record (the trace) takes the normalised text for it.
#[derive(Clone, Debug)]
pub struct EventRow {
    pub source: String,
    pub event_id: String,
    pub kind: String,
    pub occurred_at: chrono::DateTime<chrono::FixedOffset>,
    pub stream: String,
    pub position: u64,
    pub raw: Vec<u8>,
    pub normalised: String,
    /// `normalised` packed ([`crate::pack_event`]), when the caller packed it on its own thread;
    /// `None`: packed as the row is written.
    pub packed: Option<Packed>,
    /// The feed profile that made the event from a department's export (`name@version`);
    /// `None` for a JSON envelope.
    pub profile: Option<String>,
}

/// The identity decision for one event.
#[derive(Clone, Debug)]
pub struct LinkRow {
    /// The event's `seq`, as [`BatchTx::insert_events`] returned it.
    pub event_seq: i64,
    /// The event's source and id (not stored again: `event_seq` names the event).
    pub source: String,
    pub event_id: String,
    pub outcome: LinkOutcome,
    pub household_id: Option<String>,
    pub member_id: Option<String>,
    pub evidence: Json<Evidence>,
    /// The register version the decision was made with (see `Store::register_version`).
    pub register_version: i64,
}

/// A fact to append to a household's timeline.
#[derive(Clone, Debug)]
pub struct FactRow {
    /// The event's `seq`, as [`BatchTx::insert_events`] returned it.
    pub event_seq: i64,
    pub fact: Fact,
}

/// One assessment (the JSON is the whole explainable result).
#[derive(Clone, Debug)]
pub struct AssessmentRow {
    /// The `seq` of the event whose fact was assessed.
    pub event_seq: i64,
    /// The event's source and id (not stored again: `event_seq` names the event).
    pub source: String,
    pub event_id: String,
    pub household_id: String,
    pub rule_set_version: String,
    pub score: i64,
    pub level: Level,
    /// The whole result; `None` for a quiet assessment (score 0, no contribution, no relief, no
    /// review), which the other columns then describe completely.
    pub assessment: Option<Json<Assessment>>,
}

/// A record refused at ingest.
#[derive(Clone, Debug)]
pub struct DeadLetterRow {
    pub source: String,
    pub stream: String,
    pub line: u64,
    pub byte_offset: u64,
    pub event_id: Option<String>,
    pub reason_code: String,
    pub reason: String,
    pub raw: Vec<u8>,
    pub raw_len: u64,
}

/// Where a stream has been read up to, after this batch.
#[derive(Clone, Debug)]
pub struct PositionRow {
    pub source: String,
    pub stream: String,
    pub byte_offset: u64,
    pub line: u64,
}

/// The open warning of a household, as the pipeline needs it to decide.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OpenWarningRow {
    pub warning_id: i64,
    pub household_id: String,
    pub level: Level,
    pub score: i64,
    pub deadline: chrono::DateTime<chrono::Utc>,
}

/// What the fold of a household's episode says of its warning beyond level and score (issue 19).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EpisodeMark {
    /// The event time of the fact that set the warning's level (when the hardship happened).
    pub occurred_at: Option<chrono::DateTime<chrono::Utc>>,
    /// That fact was received long after it happened (a catch-up case).
    pub late: bool,
    /// The episode's transitions (JSON, as `doudi_warnings::fold` has them).
    pub transitions: Option<String>,
}

/// A household's current warning (any status but resolved) and what the fold compares it with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CurrentWarningRow {
    pub warning_id: i64,
    pub household_id: String,
    /// `open`, `acknowledged`, `visited` or `withdrawn`.
    pub status: String,
    pub level: Level,
    pub score: i64,
    pub deadline: chrono::DateTime<chrono::Utc>,
    /// The triggering (latest) assessment's fact.
    pub source: String,
    pub event_id: String,
    pub episode: EpisodeMark,
    /// The highest level a notice already sent (or put in the inbox) announced for this warning
    /// (`None`: nothing sent yet). Re-derived transitions at or below it are not announced again.
    pub announced: Level,
}

/// A committed fact of a household's timeline, with what is stored of its assessment.
#[derive(Clone, Debug)]
pub struct TimelineEntry {
    pub event_seq: i64,
    pub fact: Fact,
    /// When its event was received (`events.received_at`).
    pub received_at: chrono::DateTime<chrono::Utc>,
    /// Its stored assessment's level and score (`None` if it has none: its household was not in
    /// the register when it was applied).
    pub assessed: Option<(Level, i64)>,
    /// Where its event was read: the stream and the line (Kafka: offset) in it, which decide the
    /// rule-set version it is assessed with (see [`crate::ActivationRow::covers`]).
    pub stream: String,
    pub line: u64,
}

/// A line of a warning's history written by the pipeline, and the notice that announces it.
#[derive(Clone, Debug)]
pub struct WarningChange {
    pub warning_id: i64,
    /// `opened`, `raised`, `updated`, `rederived`, `reopened`, `withdrawn`.
    pub action: &'static str,
    pub level: Level,
    pub score: i64,
    pub source: String,
    pub event_id: String,
    /// Notify the officer responsible (kind = `action`), naming this transition (its key).
    pub notify: Option<String>,
}

/// A warning to open.
#[derive(Clone, Debug)]
pub struct NewWarning {
    pub household_id: String,
    pub region_code: String,
    pub level: Level,
    pub score: i64,
    pub deadline: chrono::DateTime<chrono::Utc>,
    pub source: String,
    pub event_id: String,
    /// The assessment that opened it.
    pub summary: Json<Assessment>,
    /// The officer responsible (routing by region); `None` if no officer covers the region.
    pub assigned_to: Option<String>,
    /// Event time, late mark and transitions (empty for a warning not decided by the fold).
    pub episode: EpisodeMark,
}

/// A change to an open warning.
#[derive(Clone, Debug)]
pub struct WarningUpdate {
    pub warning_id: i64,
    pub level: Level,
    pub score: i64,
    pub raised: bool,
    pub deadline: chrono::DateTime<chrono::Utc>,
    pub source: String,
    pub event_id: String,
    /// The latest assessment.
    pub summary: Json<Assessment>,
    /// Event time, late mark and transitions (left as they are when `transitions` is `None`).
    pub episode: EpisodeMark,
    /// Set the status back to `open` (a withdrawn warning whose episode opened again).
    pub reopen: bool,
}

/// Events: `seq` is drawn before the insert on PostgreSQL (see [`BatchTx::insert_events`]), given
/// by AUTOINCREMENT on SQLite; a repeated `(source, event_id)` is left as it is.
const EVENTS: Table<EventRow> = Table {
    name: "events",
    doing: "inserting events",
    columns: &[
        text!("source", r => &r.source),
        text!("event_id", r => &r.event_id),
        text!("kind", r => &r.kind),
        Column {
            name: "occurred_at",
            bind: Bind::Text(|r| Cow::Owned(ts(&r.occurred_at))),
        },
        text!("stream", r => &r.stream),
        int!("position", r => r.position as i64),
        // Stored once when the department sent the very normalised JSON (our envelope, byte for
        // byte): the raw column is then empty and read back as the normalised text.
        bytes!("raw", r => if r.raw == r.normalised.as_bytes() { &[] } else { &r.raw }),
        // Packed (see `pack`); every reader unpacks it.
        Column {
            name: "normalised",
            bind: Bind::Packed(|r| {
                Some(match &r.packed {
                    Some(p) => Cow::Borrowed(p),
                    None => Cow::Owned(pack_event(&r.normalised)),
                })
            }),
        },
        maybe_text!("profile", r => r.profile.as_deref()),
    ],
    stamp: Some("received_at"),
    on_conflict: Some(OnConflict {
        key: &["source", "event_id"],
        then: "DO NOTHING",
    }),
};

/// Not the event's source and id: the event's row (`seq`) has them (migration 0016). Not the
/// time either: `decided_at` stays NULL for the decision on an event this transaction received,
/// its `received_at` is that time (migration 0017); [`BatchTx::insert_links`] stamps the others.
const LINKS: Table<LinkRow> = Table {
    name: "link_decisions",
    doing: "inserting link decisions",
    columns: &[
        int!("seq", r => r.event_seq),
        text!("outcome", r => r.outcome.code()),
        maybe_text!("household_id", r => r.household_id.as_deref()),
        maybe_text!("member_id", r => r.member_id.as_deref()),
        Column {
            name: "evidence",
            bind: Bind::Packed(|r| r.evidence.packed().map(Cow::Borrowed)),
        },
        int!("register_version", r => r.register_version),
    ],
    stamp: None,
    on_conflict: None,
};

const TIMELINE: Table<FactRow> = Table {
    name: "timeline",
    doing: "appending timeline facts",
    columns: &[
        int!("seq", r => r.event_seq),
        text!("household_id", r => &r.fact.household_id),
        text!("member_id", r => &r.fact.member_id),
    ],
    stamp: None,
    on_conflict: None,
};

/// Not the event's source and id: the event's row (`seq`) has them (migration 0016). `assessed_at`
/// as `decided_at` in [`LINKS`] (migration 0017).
const ASSESSMENTS: Table<AssessmentRow> = Table {
    name: "assessments",
    doing: "inserting assessments",
    columns: &[
        int!("seq", r => r.event_seq),
        text!("household_id", r => &r.household_id),
        text!("rule_set_version", r => &r.rule_set_version),
        int!("score", r => r.score),
        text!("level", r => r.level.code()),
        Column {
            name: "assessment",
            bind: Bind::Packed(|r| {
                r.assessment
                    .as_ref()
                    .and_then(Json::packed)
                    .map(Cow::Borrowed)
            }),
        },
    ],
    stamp: None,
    on_conflict: None,
};

const DEAD_LETTERS: Table<DeadLetterRow> = Table {
    name: "dead_letters",
    doing: "inserting dead letters",
    columns: &[
        text!("source", r => &r.source),
        text!("stream", r => &r.stream),
        int!("line", r => r.line as i64),
        int!("byte_offset", r => r.byte_offset as i64),
        maybe_text!("event_id", r => r.event_id.as_deref()),
        text!("reason_code", r => &r.reason_code),
        text!("reason", r => &r.reason),
        bytes!("raw", r => &r.raw),
        int!("raw_len", r => r.raw_len as i64),
    ],
    stamp: Some("received_at"),
    on_conflict: None,
};

/// Positions are monotonic: a position never moves back.
const POSITIONS: Table<PositionRow> = Table {
    name: "positions",
    doing: "storing source positions",
    columns: &[
        text!("source", r => &r.source),
        text!("stream", r => &r.stream),
        int!("byte_offset", r => r.byte_offset as i64),
        int!("line", r => r.line as i64),
    ],
    stamp: Some("updated_at"),
    on_conflict: Some(OnConflict {
        key: &["source", "stream"],
        then: "DO UPDATE SET byte_offset = excluded.byte_offset, line = excluded.line, updated_at = excluded.updated_at
             WHERE excluded.byte_offset > positions.byte_offset
                OR (excluded.byte_offset = positions.byte_offset AND excluded.line > positions.line)",
    }),
};

/// A batch transaction. Dropping it without [`BatchTx::commit`] rolls everything back.
///
/// Warning changes ([`BatchTx::open_warning`], [`BatchTx::update_warning`]) are kept in memory and
/// written as a few multi-row statements before the next warning read and at commit, so a batch
/// costs a handful of statements however many warnings it touches.
pub struct BatchTx {
    tx: Tx,
    at: String,
    /// `at` as a time.
    at_time: chrono::DateTime<chrono::Utc>,
    warnings: PendingWarnings,
    /// The timeline version first read in this transaction, less this transaction's own appends
    /// at that time (see [`BatchTx::timeline_version`]).
    version_base: Option<i64>,
    /// Facts this transaction appended.
    own_facts: i64,
    /// The `seq` of every event this transaction inserted (their `received_at` is `at`).
    own_events: HashSet<i64>,
}

/// Warning changes not yet written (see [`BatchTx`]).
#[derive(Default)]
struct PendingWarnings {
    /// The next warning id to hand out, once read from the database (SQLite only; PostgreSQL
    /// takes each id from the table's sequence, as other workers open warnings too).
    next_id: Option<i64>,
    /// Warnings opened in this batch, in their latest state.
    opened: Vec<(i64, NewWarning)>,
    /// Existing warnings changed in this batch: id → latest change.
    updated: Vec<WarningUpdate>,
    /// Where each pending warning is in `opened` (`Ok`) or `updated` (`Err`).
    at: HashMap<i64, Result<usize, usize>>,
    /// Every change, in order (history lines and the notices they ask for).
    history: Vec<WarningChange>,
    /// Warnings to withdraw.
    withdrawn: Vec<i64>,
    /// Pending notices to mark superseded: (warning id, transition key; `None`: all of them).
    superseded: Vec<(i64, Option<String>)>,
}

impl PendingWarnings {
    fn is_empty(&self) -> bool {
        self.history.is_empty()
            && self.opened.is_empty()
            && self.updated.is_empty()
            && self.withdrawn.is_empty()
            && self.superseded.is_empty()
    }
}

/// A timeline row: seq, household, member, normalised event, received at, stored level and score.
type TimelineRow = (
    i64,
    String,
    String,
    Stored,
    String,
    Option<String>,
    Option<i64>,
    String,
    i64,
);

/// A warning row as [`BatchTx::current_warnings`] reads it (columns by name).
#[derive(sqlx::FromRow)]
struct WarningRow {
    warning_id: i64,
    household_id: String,
    status: String,
    level: String,
    score: i64,
    deadline: String,
    assessment_source: String,
    assessment_event_id: String,
    occurred_at: Option<String>,
    late: i64,
    transitions: Option<String>,
    cut_seq: Option<i64>,
}

/// The value [`BatchTx::timeline_version`] returns when other writers' appends interleaved with
/// this transaction's: no store ever has it, so whatever is stamped with it is never trusted.
pub const TIMELINE_VERSION_UNKNOWN: i64 = -1;

impl Store {
    /// Start a batch transaction.
    pub async fn begin(&self) -> Result<BatchTx, StoreError> {
        // On PostgreSQL read committed: households are serialised by advisory locks
        // ([`BatchTx::lock_households`]), counters by their rows' locks, the audit chain by its
        // own advisory lock.
        let tx = self.write_tx("starting a batch transaction").await?;
        let at = now();
        let at_time = decode_time(&at, "the batch's time")?;
        Ok(BatchTx {
            tx,
            at,
            at_time,
            warnings: PendingWarnings::default(),
            version_base: None,
            own_facts: 0,
            own_events: HashSet::new(),
        })
    }
}

impl BatchTx {
    /// The time this transaction stamps its rows with: the `received_at` of the events it inserts.
    pub fn stamped_at(&self) -> chrono::DateTime<chrono::Utc> {
        self.at_time
    }

    /// Count a change to timelines that appends nothing (assessments re-derived in place), so
    /// that every worker's cached timelines are read afresh (see [`BatchTx::timeline_version`]).
    pub async fn touch_timelines(&mut self) -> Result<(), StoreError> {
        on!(self.tx.conn(), c => {
            sqlx::query("UPDATE counters SET value = value + 1 WHERE name = 'timeline_changes'")
                .run(&mut *c, "counting timeline changes")
                .await?;
        });
        self.own_facts += 1;
        Ok(())
    }

    /// Serialise this transaction with every other that touches these households, until it
    /// ends. On PostgreSQL: one transaction-scoped advisory lock per household
    /// ([`crate::household_lock_key`]), taken in key order so that two batches never wait for each other
    /// in a cycle. On SQLite a no-op: `BEGIN IMMEDIATE` already serialises every writer. Take the
    /// locks before reading anything of these households (timelines, open warnings, the timeline
    /// version) that the batch will decide on.
    pub async fn lock_households(&mut self, ids: &[String]) -> Result<(), StoreError> {
        lock_households(self.tx.conn(), ids).await
    }

    /// How many facts have ever been appended to timelines. The timeline is append-only, so an
    /// unchanged value means unchanged timelines: the pipeline uses it to know whether the
    /// timelines it holds in memory are still current. (Not the highest `seq`: a fact linked by a
    /// person's review decision has an older event's `seq`.)
    ///
    /// Read it after [`BatchTx::lock_households`]. On PostgreSQL other workers append to other
    /// households meanwhile; a later read in the same transaction returns the version only if
    /// the change since the first read is this transaction's own appends, and
    /// [`TIMELINE_VERSION_UNKNOWN`] otherwise, so that timelines held as of the first read are
    /// never taken for current. (On SQLite the write lock makes that always so.)
    pub async fn timeline_version(&mut self) -> Result<i64, StoreError> {
        let v: i64 = on!(self.tx.conn(), c => {
            sqlx::query_scalar("SELECT value FROM counters WHERE name = 'timeline_changes'")
                .one(&mut *c, "reading the timeline version")
                .await?
        });
        match self.version_base {
            None => {
                self.version_base = Some(v - self.own_facts);
                Ok(v)
            }
            Some(base) if base + self.own_facts == v => Ok(v),
            Some(_) => Ok(TIMELINE_VERSION_UNKNOWN),
        }
    }

    /// Insert events; returns the keys `(source, event_id)` that were new, with the `seq` each
    /// was stored at. Events already stored (a redelivery, or the same event in another file, or
    /// on PostgreSQL the same event committed by another worker) are left as they are.
    pub async fn insert_events(
        &mut self,
        rows: &[EventRow],
    ) -> Result<HashMap<(String, String), i64>, StoreError> {
        if rows.is_empty() {
            return Ok(HashMap::new());
        }
        let tx = match &mut self.tx {
            Db::Sqlite(tx) => tx,
            Db::Postgres(tx) => {
                // `seq` follows batch order, as on SQLite: a household's timeline is read back
                // in `seq` order and must be the order its facts were applied in (a worker that
                // restarts reads what an uninterrupted one kept in memory). The numbers are drawn
                // first, in one call, and handed out in batch order. (The sequence is named once:
                // `pg_get_serial_sequence` in the select list is looked up again for every row,
                // which cost 26 ms of 30 for 10,000 numbers.)
                let mut seqs: Vec<i64> = sqlx::query_scalar(
                    "WITH s AS MATERIALIZED (SELECT pg_get_serial_sequence('events', 'seq')::regclass AS s)
                     SELECT nextval(s.s) FROM s, generate_series(1, $1)",
                )
                .bind(rows.len() as i64)
                .all(&mut **tx, "drawing event sequence numbers")
                .await?;
                seqs.sort_unstable();
                // One statement; a key another transaction is inserting waits for it, then is
                // left. Rows go in key order (then batch order: the first of a repeated key is
                // the one kept), so two workers inserting overlapping batches (a late batch after
                // a Kafka rebalance) wait for each other in one direction only, never in a cycle.
                let returned = EVENTS
                    .insert_numbered(tx, rows, &self.at, "seq", &seqs)
                    .await?;
                // Row `i` was offered `seqs[i]`: the numbers returned say which rows were new
                // (reading back only numbers, not every new key).
                let mut new = HashMap::with_capacity(returned.len());
                for seq in returned {
                    let i = seqs.binary_search(&seq).map_err(|_| StoreError::Corrupt {
                        context: "inserting events",
                        message: format!(
                            "the database returned seq {seq}, not one drawn for this batch"
                        ),
                    })?;
                    new.insert((rows[i].source.clone(), rows[i].event_id.clone()), seq);
                }
                self.own_events.extend(new.values().copied());
                return Ok(new);
            }
        };
        // The batch holds the write lock, so every row above the current highest `seq` is one
        // this call inserted. Usually all are new: then the keys need not be read back.
        let before: i64 = sqlx::query_scalar("SELECT COALESCE(MAX(seq), 0) FROM events")
            .one(&mut **tx, "reading the last event sequence")
            .await?;
        let inserted = EVENTS.insert(Db::Sqlite(&mut **tx), rows, &self.at).await?;
        if inserted == rows.len() as u64 {
            // All new: SQLite gave them `before + 1`, `before + 2`, … in the order inserted
            // (one above the largest), unless the largest now says otherwise.
            let last: i64 = sqlx::query_scalar("SELECT COALESCE(MAX(seq), 0) FROM events")
                .one(&mut **tx, "reading the last event sequence")
                .await?;
            if last == before + inserted as i64 {
                self.own_events.extend(before + 1..=last);
                return Ok(rows
                    .iter()
                    .zip(before + 1..)
                    .map(|(r, seq)| ((r.source.clone(), r.event_id.clone()), seq))
                    .collect());
            }
        }
        let mut new = HashMap::with_capacity(inserted as usize);
        let returned = sqlx::query("SELECT seq, source, event_id FROM events WHERE seq > $1")
            .bind(before)
            .all(&mut **tx, "reading which events were new")
            .await?;
        for row in returned {
            new.insert(
                (row.get::<String, _>(1), row.get::<String, _>(2)),
                row.get::<i64, _>(0),
            );
        }
        self.own_events.extend(new.values().copied());
        Ok(new)
    }

    pub async fn insert_links(&mut self, rows: &[LinkRow]) -> Result<(), StoreError> {
        LINKS.insert(self.tx.conn(), rows, &self.at).await?;
        self.stamp_older(
            "UPDATE link_decisions SET decided_at = ",
            rows.iter().map(|r| r.event_seq),
            "stamping link decisions",
        )
        .await
    }

    /// Stamp the rows just written for events this transaction did not receive (a record linked
    /// or assessed after its receipt) with this transaction's time; the others keep NULL, read
    /// as their event's `received_at`, which is this time (migration 0017).
    async fn stamp_older(
        &mut self,
        set: &str,
        seqs: impl Iterator<Item = i64>,
        context: &'static str,
    ) -> Result<(), StoreError> {
        let older: Vec<i64> = seqs.filter(|s| !self.own_events.contains(s)).collect();
        update_listed(
            self.tx.conn(),
            set,
            self.at.clone(),
            " WHERE seq IN ",
            &older,
            context,
        )
        .await
    }

    /// The timelines of these households (facts in the order they were applied).
    pub async fn facts_for(
        &mut self,
        household_ids: &[String],
    ) -> Result<HashMap<String, Vec<Fact>>, StoreError> {
        facts_for(self.tx.conn(), household_ids).await
    }

    /// Append facts to timelines (their events must be in this batch or earlier).
    pub async fn insert_facts(&mut self, rows: &[FactRow]) -> Result<(), StoreError> {
        if rows.is_empty() {
            return Ok(());
        }
        TIMELINE.insert(self.tx.conn(), rows, &self.at).await?;
        // On PostgreSQL the counter's row lock, held to commit, orders this transaction's bump
        // after every other's (see `timeline_version`).
        on!(self.tx.conn(), c => {
            sqlx::query("UPDATE counters SET value = value + $1 WHERE name = 'timeline_changes'")
                .bind(rows.len() as i64)
                .run(&mut *c, "counting timeline changes")
                .await?;
        });
        self.own_facts += rows.len() as i64;
        Ok(())
    }

    pub async fn insert_assessments(&mut self, rows: &[AssessmentRow]) -> Result<(), StoreError> {
        // In `seq` order: rows that come in household order land at random places of the
        // batch's range and split pages half full (a sixth of the table's pages was free space).
        let sorted: Vec<AssessmentRow>;
        let rows = if rows.is_sorted_by_key(|r| r.event_seq) {
            rows
        } else {
            sorted = {
                let mut v = rows.to_vec();
                v.sort_unstable_by_key(|r| r.event_seq);
                v
            };
            &sorted
        };
        ASSESSMENTS.insert(self.tx.conn(), rows, &self.at).await?;
        self.stamp_older(
            "UPDATE assessments SET assessed_at = ",
            rows.iter().map(|r| r.event_seq),
            "stamping assessments",
        )
        .await
    }

    /// Update stored assessments (re-derived after a late fact), matched by `seq`.
    pub async fn update_assessments(&mut self, rows: &[AssessmentRow]) -> Result<(), StoreError> {
        let at = &self.at;
        for chunk in rows.chunks(CHUNK) {
            on!(self.tx.conn(), c => {
                let mut qb: QueryBuilder<DB> = QueryBuilder::new(
                    "UPDATE assessments SET rule_set_version = v.column2, score = v.column3, level = v.column4, assessment = v.column5, assessed_at = ",
                );
                qb.push_bind(at);
                qb.push(" FROM (");
                qb.push_values(chunk, |mut b, r| {
                    b.push_bind(r.event_seq)
                        .push_bind(&r.rule_set_version)
                        .push_bind(r.score)
                        .push_bind(r.level.code());
                    // Bytes on SQLite, text on PostgreSQL (see `pack`).
                    let packed = r.assessment.as_ref().and_then(Json::packed);
                    if <DB as crate::db::Dialect>::POSTGRES {
                        b.push_bind(packed.map(Packed::to_text));
                    } else {
                        b.push_bind(packed.map(Packed::as_bytes));
                    }
                });
                qb.push(") AS v WHERE assessments.seq = v.column1");
                qb.build()
                    .run(&mut *c, "updating re-derived assessments")
                    .await?;
            });
        }
        Ok(())
    }

    /// The stored rule-set version and whole result (its JSON, unpacked) of these assessments, by
    /// `seq` (to compare a re-derivation with).
    pub async fn stored_assessments(
        &mut self,
        seqs: &[i64],
    ) -> Result<HashMap<i64, (String, Option<String>)>, StoreError> {
        let mut out = HashMap::with_capacity(seqs.len());
        for chunk in seqs.chunks(CHUNK) {
            on!(self.tx.conn(), c => {
                let mut qb: QueryBuilder<DB> = QueryBuilder::new(
                    "SELECT seq, rule_set_version, assessment FROM assessments WHERE seq IN ",
                );
                push_list(&mut qb, chunk.iter().copied());
                let rows: Vec<(i64, String, Option<Stored>)> = qb
                    .build_query_as()
                    .all(&mut *c, "reading stored assessments")
                    .await?;
                for (seq, version, text) in rows {
                    let text = text
                        .map(|t| unpack_stored(&t.0, "assessments.assessment").map(Cow::into_owned))
                        .transpose()?;
                    out.insert(seq, (version, text));
                }
            });
        }
        Ok(out)
    }

    /// Each household's timeline with its facts' receipt times and stored assessments, in `seq`
    /// order.
    pub async fn timeline_entries(
        &mut self,
        household_ids: &[String],
    ) -> Result<HashMap<String, Vec<TimelineEntry>>, StoreError> {
        let rows: Vec<TimelineRow> = rows_for_households(
                self.tx.conn(),
                "SELECT t.seq, t.household_id, t.member_id, e.normalised, e.received_at, a.level, a.score,
                        e.stream, e.position
                 FROM timeline t JOIN events e ON e.seq = t.seq LEFT JOIN assessments a ON a.seq = t.seq
                 WHERE t.household_id",
                "ORDER BY t.seq",
                household_ids,
                "reading household timelines",
            )
            .await?;
        let mut out: HashMap<String, Vec<TimelineEntry>> = HashMap::new();
        for (seq, household_id, member_id, text, received_at, level, score, stream, line) in rows {
            let fact = stored_fact(&text.0, household_id.clone(), member_id)?;
            let received_at = decode_time(&received_at, "events.received_at")?;
            let assessed = match (level, score) {
                (Some(l), Some(s)) => Some((decode_code(&l, "assessments.level")?, s)),
                _ => None,
            };
            out.entry(household_id).or_default().push(TimelineEntry {
                event_seq: seq,
                fact,
                received_at,
                assessed,
                stream,
                line: line.max(0) as u64,
            });
        }
        Ok(out)
    }

    /// The current warning (any status but resolved: withdrawn too) of each of these households,
    /// and the episode cut of each that has one: the highest `cut_seq` of its resolved warnings.
    pub async fn current_warnings(
        &mut self,
        household_ids: &[String],
    ) -> Result<(HashMap<String, CurrentWarningRow>, HashMap<String, i64>), StoreError> {
        self.flush_warnings().await?;
        let rows: Vec<WarningRow> = rows_for_households(
            self.tx.conn(),
            "SELECT warning_id, household_id, status, level, score, deadline, assessment_source, assessment_event_id,
                    occurred_at, late, transitions, cut_seq
             FROM warnings WHERE (status <> 'resolved' OR cut_seq IS NOT NULL) AND household_id",
            "",
            household_ids,
            "reading current warnings",
        )
        .await?;
        let ids: Vec<i64> = (rows.iter())
            .filter(|w| w.status != "resolved")
            .map(|w| w.warning_id)
            .collect();
        let announced = self.announced(&ids).await?;
        let mut current = HashMap::new();
        let mut cuts: HashMap<String, i64> = HashMap::new();
        for w in rows {
            if w.status == "resolved" {
                if let Some(c) = w.cut_seq {
                    let e = cuts.entry(w.household_id).or_insert(c);
                    *e = (*e).max(c);
                }
                continue;
            }
            let row = CurrentWarningRow {
                warning_id: w.warning_id,
                household_id: w.household_id.clone(),
                status: w.status,
                level: decode_code(&w.level, "warnings.level")?,
                score: w.score,
                deadline: decode_time(&w.deadline, "warnings.deadline")?,
                source: w.assessment_source,
                event_id: w.assessment_event_id,
                episode: EpisodeMark {
                    occurred_at: w
                        .occurred_at
                        .map(|t| decode_time(&t, "warnings.occurred_at"))
                        .transpose()?,
                    late: w.late != 0,
                    transitions: w.transitions,
                },
                announced: match announced.get(&w.warning_id) {
                    Some(3) => Level::Red,
                    Some(2) => Level::Orange,
                    Some(1) => Level::Yellow,
                    _ => Level::None,
                },
            };
            current.insert(w.household_id, row);
        }
        Ok((current, cuts))
    }

    /// The highest level the sent notices (not pending, not superseded) of each of these
    /// warnings announced: 3 red, 2 orange, 1 yellow, 0 none; warnings without one are left out.
    /// Read for a list of warnings at a time through `notices_warning` (migration 0015): a
    /// subquery per warning without that index read the whole table once per warning, a cost
    /// that grew with every notice the store holds (issue 24).
    async fn announced(&mut self, warning_ids: &[i64]) -> Result<HashMap<i64, i64>, StoreError> {
        let mut out = HashMap::new();
        for chunk in warning_ids.chunks(CHUNK) {
            on!(self.tx.conn(), c => {
                let mut qb: QueryBuilder<DB> = QueryBuilder::new(
                    "SELECT warning_id, MAX(CASE WHEN transition LIKE 'red:%' THEN CAST(3 AS BIGINT)
                                                 WHEN transition LIKE 'orange:%' THEN CAST(2 AS BIGINT)
                                                 WHEN transition LIKE 'yellow:%' THEN CAST(1 AS BIGINT)
                                                 ELSE CAST(0 AS BIGINT) END)
                     FROM notices WHERE delivery <> 'pending' AND superseded_at IS NULL
                      AND transition IS NOT NULL AND warning_id IN ",
                );
                push_list(&mut qb, chunk.iter().copied());
                qb.push(" GROUP BY warning_id");
                let rows: Vec<(i64, i64)> = qb
                    .build_query_as()
                    .all(&mut *c, "reading what sent notices announced")
                    .await?;
                out.extend(rows);
            });
        }
        Ok(out)
    }

    /// The open warning of each of these households, if any.
    pub async fn open_warnings(
        &mut self,
        household_ids: &[String],
    ) -> Result<HashMap<String, OpenWarningRow>, StoreError> {
        self.flush_warnings().await?;
        let mut out = HashMap::new();
        let rows: Vec<(i64, String, String, i64, String)> = rows_for_households(
            self.tx.conn(),
            "SELECT warning_id, household_id, level, score, deadline FROM warnings WHERE status NOT IN ('resolved', 'withdrawn') AND household_id",
            "",
            household_ids,
            "reading open warnings",
        )
        .await?;
        for (warning_id, household_id, level, score, deadline) in rows {
            let deadline = decode_time(&deadline, "warnings.deadline")?;
            let level = decode_code(&level, "warnings.level")?;
            let w = OpenWarningRow {
                warning_id,
                household_id,
                level,
                score,
                deadline,
            };
            out.insert(w.household_id.clone(), w);
        }
        Ok(out)
    }

    /// Open a warning; returns its id, with an `opened` history line and notice. (Written with
    /// the batch's other warning changes.)
    pub async fn open_warning(&mut self, w: &NewWarning) -> Result<i64, StoreError> {
        let id = self.put_new_warning(w).await?;
        self.record_warning_change(WarningChange {
            warning_id: id,
            action: "opened",
            level: w.level,
            score: w.score,
            source: w.source.clone(),
            event_id: w.event_id.clone(),
            notify: Some(transition_key(w.level, &w.source, &w.event_id)),
        });
        Ok(id)
    }

    /// Open a warning without a history line (the caller records its changes with
    /// [`BatchTx::record_warning_change`]); returns its id.
    pub async fn put_new_warning(&mut self, w: &NewWarning) -> Result<i64, StoreError> {
        let id = match (&mut self.tx, self.warnings.next_id) {
            (Db::Sqlite(_), Some(id)) => id,
            // What AUTOINCREMENT would hand out: above every id ever used.
            (Db::Sqlite(tx), None) => sqlx::query_scalar(
                "SELECT MAX(COALESCE((SELECT seq FROM sqlite_sequence WHERE name = 'warnings'), 0),
                            COALESCE((SELECT MAX(warning_id) FROM warnings), 0)) + 1",
            )
            .one(&mut **tx, "reading the next warning id")
            .await?,
            // Other workers open warnings too: each id from the table's own sequence.
            (Db::Postgres(tx), _) => {
                sqlx::query_scalar(
                    "SELECT nextval(pg_get_serial_sequence('warnings', 'warning_id'))",
                )
                .one(&mut **tx, "reading the next warning id")
                .await?
            }
        };
        self.warnings.next_id = Some(id + 1);
        let p = &mut self.warnings;
        p.at.insert(id, Ok(p.opened.len()));
        p.opened.push((id, w.clone()));
        Ok(id)
    }

    /// Update an open warning with a newer assessment, with a `raised` (and notice) or `updated`
    /// history line. (Written with the batch's other warning changes.)
    pub async fn update_warning(&mut self, u: &WarningUpdate) -> Result<(), StoreError> {
        self.put_warning_update(u);
        self.record_warning_change(WarningChange {
            warning_id: u.warning_id,
            action: if u.raised { "raised" } else { "updated" },
            level: u.level,
            score: u.score,
            source: u.source.clone(),
            event_id: u.event_id.clone(),
            notify: u
                .raised
                .then(|| transition_key(u.level, &u.source, &u.event_id)),
        });
        Ok(())
    }

    /// Change a warning (opened in this batch or before) without a history line.
    pub fn put_warning_update(&mut self, u: &WarningUpdate) {
        let p = &mut self.warnings;
        match p.at.get(&u.warning_id).copied() {
            Some(Ok(i)) => {
                let w = &mut p.opened[i].1;
                w.level = u.level;
                w.score = u.score;
                w.deadline = u.deadline;
                w.source = u.source.clone();
                w.event_id = u.event_id.clone();
                w.summary = u.summary.clone();
                if u.episode.transitions.is_some() {
                    w.episode = u.episode.clone();
                }
            }
            Some(Err(i)) => {
                let keep = p.updated[i].episode.clone();
                let reopen = p.updated[i].reopen || u.reopen;
                p.updated[i] = u.clone();
                p.updated[i].reopen = reopen;
                if u.episode.transitions.is_none() {
                    p.updated[i].episode = keep;
                }
            }
            None => {
                p.at.insert(u.warning_id, Err(p.updated.len()));
                p.updated.push(u.clone());
            }
        }
    }

    /// Record a pipeline change in the warning's history, and the notice it asks for (unless a
    /// silence covers the household or region, or nobody is assigned).
    pub fn record_warning_change(&mut self, c: WarningChange) {
        self.warnings.history.push(c);
    }

    /// Withdraw a warning the pipeline opened and no person moved, whose episode vanished after a
    /// re-derivation: status `withdrawn`, a history line, its pending notices superseded.
    pub fn withdraw_warning(&mut self, c: WarningChange) {
        self.warnings.withdrawn.push(c.warning_id);
        self.warnings.superseded.push((c.warning_id, None));
        self.warnings
            .history
            .push(WarningChange { notify: None, ..c });
    }

    /// Mark the warning's pending (not yet delivered) notices of this transition superseded.
    pub fn supersede_notices(&mut self, warning_id: i64, transition: String) {
        self.warnings
            .superseded
            .push((warning_id, Some(transition)));
    }

    /// Write the pending warning changes: new warnings, updates, history.
    async fn flush_warnings(&mut self) -> Result<(), StoreError> {
        if self.warnings.is_empty() {
            return Ok(());
        }
        let p = std::mem::take(&mut self.warnings);
        let at = &self.at;
        on!(self.tx.conn(), c => {
        for chunk in p.opened.chunks(CHUNK) {
            let mut qb: QueryBuilder<DB> = QueryBuilder::new(
                "INSERT INTO warnings (warning_id, household_id, region_code, status, level, score, deadline, assessment_source, assessment_event_id, summary, opened_at, updated_at, assigned_to, occurred_at, late, transitions) ",
            );
            qb.push_values(chunk, |mut b, (id, w)| {
                b.push_bind(*id)
                    .push_bind(&w.household_id)
                    .push_bind(&w.region_code)
                    .push_bind("open")
                    .push_bind(w.level.code())
                    .push_bind(w.score)
                    .push_bind(ts(&w.deadline))
                    .push_bind(&w.source)
                    .push_bind(&w.event_id);
                match w.summary.packed() {
                    Some(p) => <DB as crate::db::Dialect>::push_packed(&mut b, p),
                    None => {
                        b.push_bind(w.summary.as_str());
                    }
                }
                b.push_bind(at)
                    .push_bind(at)
                    .push_bind(&w.assigned_to)
                    .push_bind(w.episode.occurred_at.as_ref().map(ts))
                    .push_bind(i64::from(w.episode.late))
                    .push_bind(&w.episode.transitions);
            });
            qb.build()
                .run(&mut *c, "opening warnings")
                .await?;
        }
        for chunk in p.updated.chunks(CHUNK) {
            // Columns 8 to 10: the episode mark, changed only when the fold decided it (10: its
            // transitions, NULL otherwise); 11: 1 to reopen a withdrawn warning.
            let mut qb: QueryBuilder<DB> = QueryBuilder::new(
                "UPDATE warnings SET level = v.column2, score = v.column3, deadline = v.column4, assessment_source = v.column5, assessment_event_id = v.column6, summary = v.column7,
                 occurred_at = CASE WHEN v.column10 IS NULL THEN warnings.occurred_at ELSE v.column8 END,
                 late = CASE WHEN v.column10 IS NULL THEN warnings.late ELSE v.column9 END,
                 transitions = COALESCE(v.column10, warnings.transitions),
                 status = CASE WHEN v.column11 = 1 THEN 'open' ELSE warnings.status END,
                 updated_at = ",
            );
            qb.push_bind(at);
            // A withdrawn warning reopened starts its clocks afresh: escalation counts from now.
            qb.push(", opened_at = CASE WHEN v.column11 = 1 THEN ");
            qb.push_bind(at);
            qb.push(
                " ELSE warnings.opened_at END,
                 ack_steps = CASE WHEN v.column11 = 1 THEN 0 ELSE warnings.ack_steps END,
                 resolve_escalated = CASE WHEN v.column11 = 1 THEN 0 ELSE warnings.resolve_escalated END,
                 last_notice_at = CASE WHEN v.column11 = 1 THEN NULL ELSE warnings.last_notice_at END",
            );
            qb.push(" FROM (");
            qb.push_values(chunk, |mut b, u| {
                b.push_bind(u.warning_id)
                    .push_bind(u.level.code())
                    .push_bind(u.score)
                    .push_bind(ts(&u.deadline))
                    .push_bind(&u.source)
                    .push_bind(&u.event_id);
                match u.summary.packed() {
                    Some(p) => <DB as crate::db::Dialect>::push_packed(&mut b, p),
                    None => {
                        b.push_bind(u.summary.as_str());
                    }
                }
                b.push_bind(u.episode.occurred_at.as_ref().map(ts))
                    .push_bind(i64::from(u.episode.late))
                    .push_bind(&u.episode.transitions)
                    .push_bind(i64::from(u.reopen));
            });
            qb.push(") AS v WHERE warnings.warning_id = v.column1");
            qb.build()
                .run(&mut *c, "updating warnings")
                .await?;
        }
        update_listed(
            Db::from(&mut *c),
            "UPDATE warnings SET status = 'withdrawn', transitions = '[]', updated_at = ",
            at.clone(),
            " WHERE status = 'open' AND warning_id IN ",
            &p.withdrawn,
            "withdrawing warnings",
        )
        .await?;
        // A statement per list of (warning, transition — none: every one of the warning), not
        // per pair (the warnings found through `notices_warning`).
        for chunk in p.superseded.chunks(CHUNK) {
            let mut qb: QueryBuilder<DB> =
                QueryBuilder::new("UPDATE notices SET superseded_at = ");
            qb.push_bind(at);
            qb.push(" WHERE delivery = 'pending' AND superseded_at IS NULL AND warning_id IN ");
            push_list(&mut qb, chunk.iter().map(|(id, _)| *id));
            qb.push(" AND EXISTS (SELECT 1 FROM (");
            qb.push_values(chunk, |mut b, (id, transition)| {
                b.push_bind(*id).push_bind(transition.as_deref());
            });
            qb.push(
                ") AS v WHERE v.column1 = notices.warning_id
                   AND (v.column2 IS NULL OR v.column2 = notices.transition))",
            );
            qb.build()
                .run(&mut *c, "superseding notices")
                .await?;
        }
        for chunk in p.history.chunks(CHUNK) {
            let mut qb: QueryBuilder<DB> = QueryBuilder::new(
                "INSERT INTO warning_history (warning_id, action, level, score, actor, source, event_id, at) ",
            );
            qb.push_values(chunk, |mut b, h| {
                b.push_bind(h.warning_id)
                    .push_bind(h.action)
                    .push_bind(h.level.code())
                    .push_bind(h.score)
                    .push_bind("pipeline")
                    .push_bind(&h.source)
                    .push_bind(&h.event_id)
                    .push_bind(at);
            });
            qb.build()
                .run(&mut *c, "recording warning history")
                .await?;
        }
        // Notices to the officer responsible (the inbox and the delivery outbox), unless a silence
        // covers the household or region; in the same transaction as the change they announce.
        let notify: Vec<(i64, &str, &str)> = p
            .history
            .iter()
            .filter_map(|h| h.notify.as_deref().map(|t| (h.warning_id, h.action, t)))
            .collect();
        for chunk in notify.chunks(CHUNK) {
            let mut qb: QueryBuilder<DB> = QueryBuilder::new(
                "INSERT INTO notices (warning_id, kind, recipient, due_at, created_at, note, transition)
                 SELECT w.warning_id, v.column2, w.assigned_to, ",
            );
            qb.push_bind(at);
            qb.push(", ");
            qb.push_bind(at);
            qb.push(", '', v.column3 FROM (");
            qb.push_values(chunk, |mut b, (id, kind, transition)| {
                b.push_bind(*id).push_bind(*kind).push_bind(*transition);
            });
            qb.push(
                ") AS v JOIN warnings w ON w.warning_id = v.column1 WHERE w.assigned_to IS NOT NULL
                 AND NOT EXISTS (SELECT 1 FROM silences s WHERE s.starts_at <= ",
            );
            qb.push_bind(at);
            qb.push(" AND s.ends_at > ");
            qb.push_bind(at);
            qb.push(
                " AND ((s.scope = 'household' AND s.target = w.household_id)
                   OR (s.scope = 'region' AND substr(w.region_code, 1, length(s.target)) = s.target)))",
            );
            qb.build()
                .run(&mut *c, "recording notices")
                .await?;
            let ids: Vec<i64> = chunk.iter().map(|(id, _, _)| *id).collect();
            let (set, list) = ("UPDATE warnings SET last_notice_at = ", " WHERE warning_id IN ");
            update_listed(Db::from(&mut *c), set, at.clone(), list, &ids, "recording notice times").await?;
        }
        });
        // Ids handed out stay valid for the rest of the batch.
        self.warnings.next_id = p.next_id;
        Ok(())
    }

    pub async fn insert_dead_letters(&mut self, rows: &[DeadLetterRow]) -> Result<(), StoreError> {
        DEAD_LETTERS.insert(self.tx.conn(), rows, &self.at).await?;
        Ok(())
    }

    /// Store where streams have been read up to. Monotonic: a position never moves back (a
    /// worker that lost a Kafka partition may still commit a late batch of it; its events are
    /// refused as duplicates and its older position is ignored).
    pub async fn set_positions(&mut self, rows: &[PositionRow]) -> Result<(), StoreError> {
        // One row per stream (the furthest), as PostgreSQL updates a row once per statement.
        let mut furthest: std::collections::BTreeMap<(&str, &str), (u64, u64)> = Default::default();
        for r in rows {
            let p = (r.byte_offset, r.line);
            let e = furthest.entry((&r.source, &r.stream)).or_insert(p);
            *e = (*e).max(p);
        }
        let rows: Vec<PositionRow> = furthest
            .into_iter()
            .map(|((source, stream), (byte_offset, line))| PositionRow {
                source: source.to_string(),
                stream: stream.to_string(),
                byte_offset,
                line,
            })
            .collect();
        POSITIONS.insert(self.tx.conn(), &rows, &self.at).await?;
        Ok(())
    }

    /// Add to the records-read and duplicates counters.
    pub async fn add_counters(&mut self, received: u64, duplicates: u64) -> Result<(), StoreError> {
        if received == 0 && duplicates == 0 {
            return Ok(());
        }
        // The lock order (crate docs): the timeline counter's row before these. A batch that
        // appended facts holds it already; one without facts takes it here, not later in `audit`
        // while holding these rows (two workers would then wait for each other).
        lock_timeline_counter(self.tx.conn(), "waiting for the timeline counter").await?;
        on!(self.tx.conn(), c => {
            sqlx::query(
                "UPDATE counters SET value = value + CASE name WHEN 'received' THEN $1 ELSE $2 END
                 WHERE name IN ('received', 'duplicates')",
            )
            .bind(received as i64)
            .bind(duplicates as i64)
            .run(&mut *c, "updating counters")
            .await?;
        });
        Ok(())
    }

    /// Append an audit record in this transaction.
    pub async fn audit(
        &mut self,
        actor: &str,
        action: &str,
        subject: &str,
        detail: &serde_json::Value,
    ) -> Result<(), StoreError> {
        crate::audit::append(self.tx.conn(), actor, action, subject, detail).await
    }

    /// Mark dead letters as replayed (their records were applied in this transaction).
    pub async fn mark_replayed(&mut self, ids: &[i64]) -> Result<(), StoreError> {
        update_listed(
            self.tx.conn(),
            "UPDATE dead_letters SET replayed_at = ",
            self.at.clone(),
            " WHERE id IN ",
            ids,
            "marking dead letters replayed",
        )
        .await
    }

    /// The transaction's connection, for the store's other modules.
    pub(crate) fn conn(&mut self) -> Conn<'_> {
        self.tx.conn()
    }

    /// Write the batch's pending warning changes and commit.
    pub async fn commit(mut self) -> Result<(), StoreError> {
        self.flush_warnings().await?;
        self.tx.commit("committing a batch").await
    }
}

/// The rows of `select` (a statement ending in `… household_id`) for these households, each chunk
/// followed by `tail` (an `ORDER BY`): on PostgreSQL one statement with an array, on SQLite lists of
/// bound values, [`CHUNK`] at a time.
pub(crate) async fn rows_for_households<T>(
    conn: Conn<'_>,
    select: &str,
    tail: &str,
    household_ids: &[String],
    context: &'static str,
) -> Result<Vec<T>, StoreError>
where
    T: for<'r> sqlx::FromRow<'r, sqlx::postgres::PgRow>
        + for<'r> sqlx::FromRow<'r, sqlx::sqlite::SqliteRow>
        + Send
        + Unpin,
{
    if household_ids.is_empty() {
        return Ok(Vec::new());
    }
    match conn {
        Db::Postgres(c) => {
            sqlx::query_as(&format!("{select} = ANY($1::text[]) {tail}"))
                .bind(household_ids)
                .all(&mut *c, context)
                .await
        }
        Db::Sqlite(c) => {
            let mut out = Vec::new();
            for chunk in household_ids.chunks(CHUNK) {
                let mut qb: QueryBuilder<sqlx::Sqlite> = QueryBuilder::new(format!("{select} IN "));
                push_list(&mut qb, chunk);
                qb.push(" ");
                qb.push(tail);
                out.extend(qb.build_query_as().all(&mut *c, context).await?);
            }
            Ok(out)
        }
    }
}

/// Each household's timeline, in the order its facts were applied.
pub(crate) async fn facts_for(
    conn: Conn<'_>,
    household_ids: &[String],
) -> Result<HashMap<String, Vec<Fact>>, StoreError> {
    let mut out: HashMap<String, Vec<Fact>> = HashMap::new();
    let rows: Vec<(String, String, Stored)> = rows_for_households(
        conn,
        "SELECT t.household_id, t.member_id, e.normalised FROM timeline t JOIN events e ON e.seq = t.seq WHERE t.household_id",
        "ORDER BY t.seq",
        household_ids,
        "reading household timelines",
    )
    .await?;
    for (household_id, member_id, text) in rows {
        let fact = stored_fact(&text.0, household_id.clone(), member_id)?;
        out.entry(household_id).or_default().push(fact);
    }
    Ok(out)
}

/// A timeline fact from its stored event (normalised JSON, read under the stored-data limits).
fn stored_fact(stored: &[u8], household_id: String, member_id: String) -> Result<Fact, StoreError> {
    let text = unpack_stored(stored, "events.normalised")?;
    let event = doudi_model::parse_event(text.as_bytes(), &doudi_model::ParseLimits::STORED)
        .map_err(|e| corrupt("timeline event", e))?;
    Ok(Fact {
        event_id: event.event_id,
        source: event.source,
        household_id,
        member_id,
        occurred_at: event.occurred_at,
        payload: event.payload,
    })
}

/// The key naming a warning transition in notices (`level:source:event_id`).
pub fn transition_key(level: Level, source: &str, event_id: &str) -> String {
    format!("{}:{source}:{event_id}", level.code())
}
