//! One batch = one transaction: the effects of a batch of records and the positions they came from.

use std::collections::HashMap;

use doudi_model::Fact;
use sha2::{Digest, Sha256};
use sqlx::{QueryBuilder, Row};

use crate::error::{corrupt, Ctx};
use crate::{now, on, ts, Conn, Db, Pool, StoreError, Tx};

/// Rows per multi-row INSERT (well under SQLite's 32,766 bound parameters).
pub(crate) const CHUNK: usize = 500;

/// The first key of PostgreSQL's two-key advisory locks that serialise the audit chain (see
/// [`crate::audit`]); household locks use the one-key space, which never overlaps it.
pub(crate) const LOCK_AUDIT: i32 = 0x646f_7564; // "doud"

/// The advisory-lock key of a household on PostgreSQL: the first 8 bytes of SHA-256 of its id,
/// the same in every worker and every release.
pub fn household_lock_key(household_id: &str) -> i64 {
    let d = Sha256::digest(household_id.as_bytes());
    let mut k = [0u8; 8];
    k.copy_from_slice(&d[..8]);
    i64::from_be_bytes(k)
}

/// An accepted event, raw and normalised.
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
}

/// The identity decision for one event.
#[derive(Clone, Debug)]
pub struct LinkRow {
    /// The event's `seq`, as [`BatchTx::insert_events`] returned it.
    pub event_seq: i64,
    pub source: String,
    pub event_id: String,
    pub outcome: &'static str,
    pub household_id: Option<String>,
    pub member_id: Option<String>,
    pub evidence: String,
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
    pub source: String,
    pub event_id: String,
    pub household_id: String,
    pub rule_set_version: String,
    pub score: i64,
    pub level: String,
    /// The whole result as JSON; `None` for a quiet assessment (score 0, no contribution, no
    /// relief, no review), which the other columns then describe completely.
    pub assessment: Option<String>,
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
    pub level: String,
    pub score: i64,
    pub deadline: chrono::DateTime<chrono::Utc>,
}

/// A warning to open.
#[derive(Clone, Debug)]
pub struct NewWarning {
    pub household_id: String,
    pub region_code: String,
    pub level: String,
    pub score: i64,
    pub deadline: chrono::DateTime<chrono::Utc>,
    pub source: String,
    pub event_id: String,
    pub summary: String,
    /// The officer responsible (routing by region); `None` if no officer covers the region.
    pub assigned_to: Option<String>,
}

/// A change to an open warning.
#[derive(Clone, Debug)]
pub struct WarningUpdate {
    pub warning_id: i64,
    pub level: String,
    pub score: i64,
    pub raised: bool,
    pub deadline: chrono::DateTime<chrono::Utc>,
    pub source: String,
    pub event_id: String,
    pub summary: String,
}

/// A batch transaction. Dropping it without [`BatchTx::commit`] rolls everything back.
///
/// Warning changes ([`BatchTx::open_warning`], [`BatchTx::update_warning`]) are kept in memory and
/// written as a few multi-row statements before the next warning read and at commit, so a batch
/// costs a handful of statements however many warnings it touches.
pub struct BatchTx {
    tx: Tx,
    at: String,
    warnings: PendingWarnings,
    /// The timeline version first read in this transaction, less this transaction's own appends
    /// at that time (see [`BatchTx::timeline_version`]).
    version_base: Option<i64>,
    /// Facts this transaction appended.
    own_facts: i64,
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
    /// Every change, in order: (warning id, action, level, score, source, event id).
    history: Vec<(i64, &'static str, String, i64, String, String)>,
}

impl PendingWarnings {
    fn is_empty(&self) -> bool {
        self.history.is_empty()
    }
}

/// The value [`BatchTx::timeline_version`] returns when other writers' appends interleaved with
/// this transaction's: no store ever has it, so whatever is stamped with it is never trusted.
pub const TIMELINE_VERSION_UNKNOWN: i64 = -1;

impl BatchTx {
    pub(crate) async fn begin(pool: &Pool) -> Result<BatchTx, StoreError> {
        let tx = match pool {
            Db::Sqlite(p) => Db::Sqlite(
                p.begin_with("BEGIN IMMEDIATE")
                    .await
                    .ctx("starting a batch transaction")?,
            ),
            // Read committed: households are serialised by advisory locks
            // ([`BatchTx::lock_households`]), counters by their rows' locks, the audit chain by its
            // own advisory lock.
            Db::Postgres(p) => Db::Postgres(p.begin().await.ctx("starting a batch transaction")?),
        };
        Ok(BatchTx {
            tx,
            at: now(),
            warnings: PendingWarnings::default(),
            version_base: None,
            own_facts: 0,
        })
    }

    /// Serialise this transaction with every other that touches these households, until it
    /// ends. On PostgreSQL: one transaction-scoped advisory lock per household
    /// ([`household_lock_key`]), taken in key order so that two batches never wait for each other
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
                .fetch_one(&mut *c)
                .await
                .ctx("reading the timeline version")?
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
                .fetch_all(&mut **tx)
                .await
                .ctx("drawing event sequence numbers")?;
                seqs.sort_unstable();
                // One statement; a key another transaction is inserting waits for it, then is
                // left. Rows go in key order (then batch order: the first of a repeated key is
                // the one kept), so two workers inserting overlapping batches (a late batch after
                // a Kafka rebalance) wait for each other in one direction only, never in a cycle.
                let returned = sqlx::query(
                    "INSERT INTO events (seq, source, event_id, kind, occurred_at, received_at, stream, position, raw, normalised)
                     SELECT u.seq, u.source, u.event_id, u.kind, u.occurred_at, $5, u.stream, u.position, u.raw, u.normalised
                     FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[], $6::text[], $7::bigint[], $8::bytea[], $9::text[], $10::bigint[])
                          AS u(source, event_id, kind, occurred_at, stream, position, raw, normalised, seq)
                     ORDER BY u.source, u.event_id, u.seq
                     ON CONFLICT (source, event_id) DO NOTHING
                     RETURNING seq",
                )
                .bind(rows.iter().map(|r| r.source.as_str()).collect::<Vec<_>>())
                .bind(rows.iter().map(|r| r.event_id.as_str()).collect::<Vec<_>>())
                .bind(rows.iter().map(|r| r.kind.as_str()).collect::<Vec<_>>())
                .bind(rows.iter().map(|r| ts(&r.occurred_at)).collect::<Vec<_>>())
                .bind(&self.at)
                .bind(rows.iter().map(|r| r.stream.as_str()).collect::<Vec<_>>())
                .bind(rows.iter().map(|r| r.position as i64).collect::<Vec<_>>())
                .bind(rows.iter().map(|r| r.raw.as_slice()).collect::<Vec<_>>())
                .bind(rows.iter().map(|r| r.normalised.as_str()).collect::<Vec<_>>())
                .bind(&seqs)
                .fetch_all(&mut **tx)
                .await
                .ctx("inserting events")?;
                // Row `i` was offered `seqs[i]`: the numbers returned say which rows were new
                // (reading back only numbers, not every new key).
                let mut new = HashMap::with_capacity(returned.len());
                for r in returned {
                    let seq: i64 = r.get(0);
                    let i = seqs.binary_search(&seq).map_err(|_| StoreError::Corrupt {
                        context: "inserting events",
                        message: format!(
                            "the database returned seq {seq}, not one drawn for this batch"
                        ),
                    })?;
                    new.insert((rows[i].source.clone(), rows[i].event_id.clone()), seq);
                }
                return Ok(new);
            }
        };
        // The batch holds the write lock, so every row above the current highest `seq` is one
        // this call inserted. Usually all are new: then the keys need not be read back.
        let before: i64 = sqlx::query_scalar("SELECT COALESCE(MAX(seq), 0) FROM events")
            .fetch_one(&mut **tx)
            .await
            .ctx("reading the last event sequence")?;
        let mut inserted = 0u64;
        for chunk in rows.chunks(CHUNK) {
            let mut qb: QueryBuilder<sqlx::Sqlite> = QueryBuilder::new(
                "INSERT INTO events (source, event_id, kind, occurred_at, received_at, stream, position, raw, normalised) ",
            );
            qb.push_values(chunk, |mut b, r| {
                b.push_bind(&r.source)
                    .push_bind(&r.event_id)
                    .push_bind(&r.kind)
                    .push_bind(ts(&r.occurred_at))
                    .push_bind(&self.at)
                    .push_bind(&r.stream)
                    .push_bind(r.position as i64)
                    .push_bind(&r.raw)
                    .push_bind(&r.normalised);
            });
            qb.push(" ON CONFLICT (source, event_id) DO NOTHING");
            inserted += qb
                .build()
                .execute(&mut **tx)
                .await
                .ctx("inserting events")?
                .rows_affected();
        }
        if inserted == rows.len() as u64 {
            // All new: SQLite gave them `before + 1`, `before + 2`, … in the order inserted
            // (one above the largest), unless the largest now says otherwise.
            let last: i64 = sqlx::query_scalar("SELECT COALESCE(MAX(seq), 0) FROM events")
                .fetch_one(&mut **tx)
                .await
                .ctx("reading the last event sequence")?;
            if last == before + inserted as i64 {
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
            .fetch_all(&mut **tx)
            .await
            .ctx("reading which events were new")?;
        for row in returned {
            new.insert(
                (row.get::<String, _>(1), row.get::<String, _>(2)),
                row.get::<i64, _>(0),
            );
        }
        Ok(new)
    }

    pub async fn insert_links(&mut self, rows: &[LinkRow]) -> Result<(), StoreError> {
        if rows.is_empty() {
            return Ok(());
        }
        match &mut self.tx {
            Db::Sqlite(tx) => {
                for chunk in rows.chunks(CHUNK) {
                    let mut qb: QueryBuilder<sqlx::Sqlite> = QueryBuilder::new(
                        "INSERT INTO link_decisions (seq, source, event_id, outcome, household_id, member_id, evidence, decided_at) ",
                    );
                    qb.push_values(chunk, |mut b, r| {
                        b.push_bind(r.event_seq)
                            .push_bind(&r.source)
                            .push_bind(&r.event_id)
                            .push_bind(r.outcome)
                            .push_bind(&r.household_id)
                            .push_bind(&r.member_id)
                            .push_bind(&r.evidence)
                            .push_bind(&self.at);
                    });
                    qb.build()
                        .execute(&mut **tx)
                        .await
                        .ctx("inserting link decisions")?;
                }
            }
            Db::Postgres(tx) => {
                sqlx::query(
                    "INSERT INTO link_decisions (seq, source, event_id, outcome, household_id, member_id, evidence, decided_at)
                     SELECT u.*, $7 FROM UNNEST($1::bigint[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $8::text[])
                          AS u(seq, source, event_id, outcome, household_id, member_id, evidence)",
                )
                .bind(rows.iter().map(|r| r.event_seq).collect::<Vec<_>>())
                .bind(rows.iter().map(|r| r.source.as_str()).collect::<Vec<_>>())
                .bind(rows.iter().map(|r| r.event_id.as_str()).collect::<Vec<_>>())
                .bind(rows.iter().map(|r| r.outcome).collect::<Vec<_>>())
                .bind(rows.iter().map(|r| r.household_id.as_deref()).collect::<Vec<_>>())
                .bind(rows.iter().map(|r| r.member_id.as_deref()).collect::<Vec<_>>())
                .bind(&self.at)
                .bind(rows.iter().map(|r| r.evidence.as_str()).collect::<Vec<_>>())
                .execute(&mut **tx)
                .await
                .ctx("inserting link decisions")?;
            }
        }
        Ok(())
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
        match &mut self.tx {
            Db::Sqlite(tx) => {
                for chunk in rows.chunks(CHUNK) {
                    let mut qb: QueryBuilder<sqlx::Sqlite> =
                        QueryBuilder::new("INSERT INTO timeline (seq, household_id, member_id) ");
                    qb.push_values(chunk, |mut b, r| {
                        b.push_bind(r.event_seq)
                            .push_bind(&r.fact.household_id)
                            .push_bind(&r.fact.member_id);
                    });
                    qb.build()
                        .execute(&mut **tx)
                        .await
                        .ctx("appending timeline facts")?;
                }
            }
            Db::Postgres(tx) => {
                sqlx::query(
                    "INSERT INTO timeline (seq, household_id, member_id)
                     SELECT * FROM UNNEST($1::bigint[], $2::text[], $3::text[])",
                )
                .bind(rows.iter().map(|r| r.event_seq).collect::<Vec<_>>())
                .bind(
                    rows.iter()
                        .map(|r| r.fact.household_id.as_str())
                        .collect::<Vec<_>>(),
                )
                .bind(
                    rows.iter()
                        .map(|r| r.fact.member_id.as_str())
                        .collect::<Vec<_>>(),
                )
                .execute(&mut **tx)
                .await
                .ctx("appending timeline facts")?;
            }
        }
        // On PostgreSQL the counter's row lock, held to commit, orders this transaction's bump
        // after every other's (see `timeline_version`).
        on!(self.tx.conn(), c => {
            sqlx::query("UPDATE counters SET value = value + $1 WHERE name = 'timeline_changes'")
                .bind(rows.len() as i64)
                .execute(&mut *c)
                .await
                .ctx("counting timeline changes")?;
        });
        self.own_facts += rows.len() as i64;
        Ok(())
    }

    pub async fn insert_assessments(&mut self, rows: &[AssessmentRow]) -> Result<(), StoreError> {
        if rows.is_empty() {
            return Ok(());
        }
        match &mut self.tx {
            Db::Sqlite(tx) => {
                for chunk in rows.chunks(CHUNK) {
                    let mut qb: QueryBuilder<sqlx::Sqlite> = QueryBuilder::new(
                        "INSERT INTO assessments (seq, source, event_id, household_id, rule_set_version, score, level, assessment, assessed_at) ",
                    );
                    qb.push_values(chunk, |mut b, r| {
                        b.push_bind(r.event_seq)
                            .push_bind(&r.source)
                            .push_bind(&r.event_id)
                            .push_bind(&r.household_id)
                            .push_bind(&r.rule_set_version)
                            .push_bind(r.score)
                            .push_bind(&r.level)
                            .push_bind(&r.assessment)
                            .push_bind(&self.at);
                    });
                    qb.build()
                        .execute(&mut **tx)
                        .await
                        .ctx("inserting assessments")?;
                }
            }
            Db::Postgres(tx) => {
                sqlx::query(
                    "INSERT INTO assessments (seq, source, event_id, household_id, rule_set_version, score, level, assessment, assessed_at)
                     SELECT u.*, $9 FROM UNNEST($1::bigint[], $2::text[], $3::text[], $4::text[], $5::text[], $6::bigint[], $7::text[], $8::text[])
                          AS u(seq, source, event_id, household_id, rule_set_version, score, level, assessment)",
                )
                .bind(rows.iter().map(|r| r.event_seq).collect::<Vec<_>>())
                .bind(rows.iter().map(|r| r.source.as_str()).collect::<Vec<_>>())
                .bind(rows.iter().map(|r| r.event_id.as_str()).collect::<Vec<_>>())
                .bind(rows.iter().map(|r| r.household_id.as_str()).collect::<Vec<_>>())
                .bind(rows.iter().map(|r| r.rule_set_version.as_str()).collect::<Vec<_>>())
                .bind(rows.iter().map(|r| r.score).collect::<Vec<_>>())
                .bind(rows.iter().map(|r| r.level.as_str()).collect::<Vec<_>>())
                .bind(rows.iter().map(|r| r.assessment.as_deref()).collect::<Vec<_>>())
                .bind(&self.at)
                .execute(&mut **tx)
                .await
                .ctx("inserting assessments")?;
            }
        }
        Ok(())
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
            "SELECT warning_id, household_id, level, score, deadline FROM warnings WHERE status <> 'resolved' AND household_id",
            "",
            household_ids,
            "reading open warnings",
        )
        .await?;
        for (warning_id, household_id, level, score, deadline) in rows {
            let deadline = chrono::DateTime::parse_from_rfc3339(&deadline)
                .map_err(|e| corrupt("warning deadline", e))?
                .with_timezone(&chrono::Utc);
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

    /// Open a warning; returns its id. (Written with the batch's other warning changes.)
    pub async fn open_warning(&mut self, w: &NewWarning) -> Result<i64, StoreError> {
        let id = match (&mut self.tx, self.warnings.next_id) {
            (Db::Sqlite(_), Some(id)) => id,
            // What AUTOINCREMENT would hand out: above every id ever used.
            (Db::Sqlite(tx), None) => sqlx::query_scalar(
                "SELECT MAX(COALESCE((SELECT seq FROM sqlite_sequence WHERE name = 'warnings'), 0),
                            COALESCE((SELECT MAX(warning_id) FROM warnings), 0)) + 1",
            )
            .fetch_one(&mut **tx)
            .await
            .ctx("reading the next warning id")?,
            // Other workers open warnings too: each id from the table's own sequence.
            (Db::Postgres(tx), _) => sqlx::query_scalar(
                "SELECT nextval(pg_get_serial_sequence('warnings', 'warning_id'))",
            )
            .fetch_one(&mut **tx)
            .await
            .ctx("reading the next warning id")?,
        };
        self.warnings.next_id = Some(id + 1);
        let p = &mut self.warnings;
        p.at.insert(id, Ok(p.opened.len()));
        p.opened.push((id, w.clone()));
        p.history.push((
            id,
            "opened",
            w.level.clone(),
            w.score,
            w.source.clone(),
            w.event_id.clone(),
        ));
        Ok(id)
    }

    /// Update an open warning with a newer assessment. (Written with the batch's other warning
    /// changes.)
    pub async fn update_warning(&mut self, u: &WarningUpdate) -> Result<(), StoreError> {
        let p = &mut self.warnings;
        match p.at.get(&u.warning_id).copied() {
            Some(Ok(i)) => {
                let w = &mut p.opened[i].1;
                w.level = u.level.clone();
                w.score = u.score;
                w.deadline = u.deadline;
                w.source = u.source.clone();
                w.event_id = u.event_id.clone();
                w.summary = u.summary.clone();
            }
            Some(Err(i)) => p.updated[i] = u.clone(),
            None => {
                p.at.insert(u.warning_id, Err(p.updated.len()));
                p.updated.push(u.clone());
            }
        }
        let action = if u.raised { "raised" } else { "updated" };
        p.history.push((
            u.warning_id,
            action,
            u.level.clone(),
            u.score,
            u.source.clone(),
            u.event_id.clone(),
        ));
        Ok(())
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
                "INSERT INTO warnings (warning_id, household_id, region_code, status, level, score, deadline, assessment_source, assessment_event_id, summary, opened_at, updated_at, assigned_to) ",
            );
            qb.push_values(chunk, |mut b, (id, w)| {
                b.push_bind(*id)
                    .push_bind(&w.household_id)
                    .push_bind(&w.region_code)
                    .push_bind("open")
                    .push_bind(&w.level)
                    .push_bind(w.score)
                    .push_bind(ts(&w.deadline))
                    .push_bind(&w.source)
                    .push_bind(&w.event_id)
                    .push_bind(&w.summary)
                    .push_bind(at)
                    .push_bind(at)
                    .push_bind(&w.assigned_to);
            });
            qb.build()
                .execute(&mut *c)
                .await
                .ctx("opening warnings")?;
        }
        for chunk in p.updated.chunks(CHUNK) {
            let mut qb: QueryBuilder<DB> = QueryBuilder::new(
                "UPDATE warnings SET level = v.column2, score = v.column3, deadline = v.column4, assessment_source = v.column5, assessment_event_id = v.column6, summary = v.column7, updated_at = ",
            );
            qb.push_bind(at);
            qb.push(" FROM (");
            qb.push_values(chunk, |mut b, u| {
                b.push_bind(u.warning_id)
                    .push_bind(&u.level)
                    .push_bind(u.score)
                    .push_bind(ts(&u.deadline))
                    .push_bind(&u.source)
                    .push_bind(&u.event_id)
                    .push_bind(&u.summary);
            });
            qb.push(") AS v WHERE warnings.warning_id = v.column1");
            qb.build()
                .execute(&mut *c)
                .await
                .ctx("updating warnings")?;
        }
        for chunk in p.history.chunks(CHUNK) {
            let mut qb: QueryBuilder<DB> = QueryBuilder::new(
                "INSERT INTO warning_history (warning_id, action, level, score, actor, source, event_id, at) ",
            );
            qb.push_values(
                chunk,
                |mut b, (id, action, level, score, source, event_id)| {
                    b.push_bind(*id)
                        .push_bind(*action)
                        .push_bind(level)
                        .push_bind(*score)
                        .push_bind("pipeline")
                        .push_bind(source)
                        .push_bind(event_id)
                        .push_bind(at);
                },
            );
            qb.build()
                .execute(&mut *c)
                .await
                .ctx("recording warning history")?;
        }
        // Notices to the officer responsible (the inbox and the delivery outbox), unless a silence
        // covers the household or region; in the same transaction as the change they announce.
        let notify: Vec<(i64, &str)> = p
            .history
            .iter()
            .filter(|h| h.1 == "opened" || h.1 == "raised")
            .map(|h| (h.0, h.1))
            .collect();
        for chunk in notify.chunks(CHUNK) {
            let mut qb: QueryBuilder<DB> = QueryBuilder::new(
                "INSERT INTO notices (warning_id, kind, recipient, due_at, created_at, note)
                 SELECT w.warning_id, v.column2, w.assigned_to, ",
            );
            qb.push_bind(at);
            qb.push(", ");
            qb.push_bind(at);
            qb.push(", '' FROM (");
            qb.push_values(chunk, |mut b, (id, kind)| {
                b.push_bind(*id).push_bind(*kind);
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
                .execute(&mut *c)
                .await
                .ctx("recording notices")?;
            let mut qb: QueryBuilder<DB> =
                QueryBuilder::new("UPDATE warnings SET last_notice_at = ");
            qb.push_bind(at);
            qb.push(" WHERE warning_id IN (");
            let mut sep = qb.separated(", ");
            for (id, _) in chunk {
                sep.push_bind(*id);
            }
            qb.push(")");
            qb.build()
                .execute(&mut *c)
                .await
                .ctx("recording notice times")?;
        }
        });
        // Ids handed out stay valid for the rest of the batch.
        self.warnings.next_id = p.next_id;
        Ok(())
    }

    pub async fn insert_dead_letters(&mut self, rows: &[DeadLetterRow]) -> Result<(), StoreError> {
        if rows.is_empty() {
            return Ok(());
        }
        match &mut self.tx {
            Db::Sqlite(tx) => {
                for chunk in rows.chunks(CHUNK) {
                    let mut qb: QueryBuilder<sqlx::Sqlite> = QueryBuilder::new(
                        "INSERT INTO dead_letters (source, stream, line, byte_offset, event_id, reason_code, reason, raw, raw_len, received_at) ",
                    );
                    qb.push_values(chunk, |mut b, r| {
                        b.push_bind(&r.source)
                            .push_bind(&r.stream)
                            .push_bind(r.line as i64)
                            .push_bind(r.byte_offset as i64)
                            .push_bind(&r.event_id)
                            .push_bind(&r.reason_code)
                            .push_bind(&r.reason)
                            .push_bind(&r.raw)
                            .push_bind(r.raw_len as i64)
                            .push_bind(&self.at);
                    });
                    qb.build()
                        .execute(&mut **tx)
                        .await
                        .ctx("inserting dead letters")?;
                }
            }
            Db::Postgres(tx) => {
                sqlx::query(
                    "INSERT INTO dead_letters (source, stream, line, byte_offset, event_id, reason_code, reason, raw, raw_len, received_at)
                     SELECT u.*, $10 FROM UNNEST($1::text[], $2::text[], $3::bigint[], $4::bigint[], $5::text[], $6::text[], $7::text[], $8::bytea[], $9::bigint[])
                          AS u(source, stream, line, byte_offset, event_id, reason_code, reason, raw, raw_len)",
                )
                .bind(rows.iter().map(|r| r.source.as_str()).collect::<Vec<_>>())
                .bind(rows.iter().map(|r| r.stream.as_str()).collect::<Vec<_>>())
                .bind(rows.iter().map(|r| r.line as i64).collect::<Vec<_>>())
                .bind(rows.iter().map(|r| r.byte_offset as i64).collect::<Vec<_>>())
                .bind(rows.iter().map(|r| r.event_id.as_deref()).collect::<Vec<_>>())
                .bind(rows.iter().map(|r| r.reason_code.as_str()).collect::<Vec<_>>())
                .bind(rows.iter().map(|r| r.reason.as_str()).collect::<Vec<_>>())
                .bind(rows.iter().map(|r| r.raw.as_slice()).collect::<Vec<_>>())
                .bind(rows.iter().map(|r| r.raw_len as i64).collect::<Vec<_>>())
                .bind(&self.at)
                .execute(&mut **tx)
                .await
                .ctx("inserting dead letters")?;
            }
        }
        Ok(())
    }

    /// Store where streams have been read up to. Monotonic: a position never moves back (a
    /// worker that lost a Kafka partition may still commit a late batch of it; its events are
    /// refused as duplicates and its older position is ignored).
    pub async fn set_positions(&mut self, rows: &[PositionRow]) -> Result<(), StoreError> {
        // One row per stream (the furthest), as PostgreSQL updates a row once per statement.
        let mut furthest: std::collections::BTreeMap<(&str, &str), (i64, i64)> = Default::default();
        for r in rows {
            let p = (r.byte_offset as i64, r.line as i64);
            let e = furthest.entry((&r.source, &r.stream)).or_insert(p);
            *e = (*e).max(p);
        }
        if furthest.is_empty() {
            return Ok(());
        }
        const UPSERT: &str = " ON CONFLICT (source, stream) DO UPDATE SET byte_offset = excluded.byte_offset, line = excluded.line, updated_at = excluded.updated_at
             WHERE excluded.byte_offset > positions.byte_offset
                OR (excluded.byte_offset = positions.byte_offset AND excluded.line > positions.line)";
        let rows: Vec<_> = furthest.into_iter().collect();
        match &mut self.tx {
            Db::Sqlite(tx) => {
                for chunk in rows.chunks(CHUNK) {
                    let mut qb: QueryBuilder<sqlx::Sqlite> = QueryBuilder::new(
                        "INSERT INTO positions (source, stream, byte_offset, line, updated_at) ",
                    );
                    qb.push_values(chunk, |mut b, ((source, stream), (offset, line))| {
                        b.push_bind(*source)
                            .push_bind(*stream)
                            .push_bind(*offset)
                            .push_bind(*line)
                            .push_bind(&self.at);
                    });
                    qb.push(UPSERT);
                    qb.build()
                        .execute(&mut **tx)
                        .await
                        .ctx("storing source positions")?;
                }
            }
            Db::Postgres(tx) => {
                let sql = format!(
                    "INSERT INTO positions (source, stream, byte_offset, line, updated_at)
                     SELECT u.*, $5 FROM UNNEST($1::text[], $2::text[], $3::bigint[], $4::bigint[])
                          AS u(source, stream, byte_offset, line){UPSERT}"
                );
                sqlx::query(&sql)
                    .bind(rows.iter().map(|r| r.0 .0).collect::<Vec<_>>())
                    .bind(rows.iter().map(|r| r.0 .1).collect::<Vec<_>>())
                    .bind(rows.iter().map(|r| r.1 .0).collect::<Vec<_>>())
                    .bind(rows.iter().map(|r| r.1 .1).collect::<Vec<_>>())
                    .bind(&self.at)
                    .execute(&mut **tx)
                    .await
                    .ctx("storing source positions")?;
            }
        }
        Ok(())
    }

    /// Add to the records-read and duplicates counters.
    pub async fn add_counters(&mut self, received: u64, duplicates: u64) -> Result<(), StoreError> {
        if received == 0 && duplicates == 0 {
            return Ok(());
        }
        if let Db::Postgres(c) = &mut self.tx {
            // The lock order (crate docs): the timeline counter's row before these. A batch that
            // appended facts holds it already; one without facts takes it here, not later in
            // `audit` while holding these rows (two workers would then wait for each other).
            sqlx::query("SELECT value FROM counters WHERE name = 'timeline_changes' FOR UPDATE")
                .execute(&mut **c)
                .await
                .ctx("waiting for the timeline counter")?;
        }
        on!(self.tx.conn(), c => {
            sqlx::query(
                "UPDATE counters SET value = value + CASE name WHEN 'received' THEN $1 ELSE $2 END
                 WHERE name IN ('received', 'duplicates')",
            )
            .bind(received as i64)
            .bind(duplicates as i64)
            .execute(&mut *c)
            .await
            .ctx("updating counters")?;
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
        for chunk in ids.chunks(CHUNK) {
            on!(self.tx.conn(), c => {
                let mut qb: QueryBuilder<DB> =
                    QueryBuilder::new("UPDATE dead_letters SET replayed_at = ");
                qb.push_bind(&self.at);
                qb.push(" WHERE id IN (");
                let mut sep = qb.separated(", ");
                for id in chunk {
                    sep.push_bind(*id);
                }
                qb.push(")");
                qb.build()
                    .execute(&mut *c)
                    .await
                    .ctx("marking dead letters replayed")?;
            });
        }
        Ok(())
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

/// See [`BatchTx::lock_households`].
pub(crate) async fn lock_households(conn: Conn<'_>, ids: &[String]) -> Result<(), StoreError> {
    let Db::Postgres(c) = conn else {
        return Ok(());
    };
    if ids.is_empty() {
        return Ok(());
    }
    let mut keys: Vec<i64> = ids.iter().map(|id| household_lock_key(id)).collect();
    keys.sort_unstable();
    keys.dedup();
    // One statement: the set-returning scan yields the keys in array order, and each lock is
    // taken as its row is produced.
    sqlx::query("SELECT pg_advisory_xact_lock(k) FROM unnest($1::bigint[]) AS k")
        .bind(&keys)
        .execute(&mut *c)
        .await
        .ctx("locking households")?;
    Ok(())
}

/// The rows of `select` (a statement ending in `… household_id`) for these households, each chunk
/// followed by `tail` (an `ORDER BY`): on PostgreSQL one statement with an array, on SQLite lists of
/// bound values, [`CHUNK`] at a time.
async fn rows_for_households<T>(
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
        Db::Postgres(c) => sqlx::query_as(&format!("{select} = ANY($1::text[]) {tail}"))
            .bind(household_ids)
            .fetch_all(&mut *c)
            .await
            .ctx(context),
        Db::Sqlite(c) => {
            let mut out = Vec::new();
            for chunk in household_ids.chunks(CHUNK) {
                let mut qb: QueryBuilder<sqlx::Sqlite> =
                    QueryBuilder::new(format!("{select} IN ("));
                let mut sep = qb.separated(", ");
                for id in chunk {
                    sep.push_bind(id);
                }
                qb.push(") ");
                qb.push(tail);
                out.extend(qb.build_query_as().fetch_all(&mut *c).await.ctx(context)?);
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
    let limits = doudi_model::ParseLimits::STORED;
    let mut out: HashMap<String, Vec<Fact>> = HashMap::new();
    let rows: Vec<(String, String, String)> = rows_for_households(
        conn,
        "SELECT t.household_id, t.member_id, e.normalised FROM timeline t JOIN events e ON e.seq = t.seq WHERE t.household_id",
        "ORDER BY t.seq",
        household_ids,
        "reading household timelines",
    )
    .await?;
    for (household_id, member_id, text) in rows {
        let event = doudi_model::parse_event(text.as_bytes(), &limits)
            .map_err(|e| corrupt("timeline event", e))?;
        out.entry(household_id.clone()).or_default().push(Fact {
            event_id: event.event_id,
            source: event.source,
            household_id,
            member_id,
            occurred_at: event.occurred_at,
            payload: event.payload,
        });
    }
    Ok(out)
}
