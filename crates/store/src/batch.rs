//! One batch = one transaction: the effects of a batch of records and the positions they came from.

use std::collections::{HashMap, HashSet};

use doudi_model::Fact;
use sqlx::{QueryBuilder, Row, Sqlite, SqlitePool, Transaction};

use crate::error::{corrupt, Ctx};
use crate::{now, ts, StoreError};

/// Rows per multi-row INSERT (well under SQLite's 32,766 bound parameters).
pub(crate) const CHUNK: usize = 500;

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
    pub fact: Fact,
}

/// One assessment (the JSON is the whole explainable result).
#[derive(Clone, Debug)]
pub struct AssessmentRow {
    pub source: String,
    pub event_id: String,
    pub household_id: String,
    pub rule_set_version: String,
    pub score: i64,
    pub level: String,
    pub assessment: String,
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
pub struct BatchTx {
    tx: Transaction<'static, Sqlite>,
    at: String,
}

impl BatchTx {
    pub(crate) async fn begin(pool: &SqlitePool) -> Result<BatchTx, StoreError> {
        let tx = pool.begin().await.ctx("starting a batch transaction")?;
        Ok(BatchTx { tx, at: now() })
    }

    /// Insert events; returns the keys `(source, event_id)` that were new. Events already stored
    /// (a redelivery, or the same event in another file) are left as they are.
    pub async fn insert_events(
        &mut self,
        rows: &[EventRow],
    ) -> Result<HashSet<(String, String)>, StoreError> {
        let mut new = HashSet::with_capacity(rows.len());
        for chunk in rows.chunks(CHUNK) {
            let mut qb: QueryBuilder<Sqlite> = QueryBuilder::new(
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
            qb.push(" ON CONFLICT (source, event_id) DO NOTHING RETURNING source, event_id");
            let returned = qb
                .build()
                .fetch_all(&mut *self.tx)
                .await
                .ctx("inserting events")?;
            for row in returned {
                new.insert((row.get::<String, _>(0), row.get::<String, _>(1)));
            }
        }
        Ok(new)
    }

    pub async fn insert_links(&mut self, rows: &[LinkRow]) -> Result<(), StoreError> {
        for chunk in rows.chunks(CHUNK) {
            let mut qb: QueryBuilder<Sqlite> = QueryBuilder::new(
                "INSERT INTO link_decisions (source, event_id, outcome, household_id, member_id, evidence, decided_at) ",
            );
            qb.push_values(chunk, |mut b, r| {
                b.push_bind(&r.source)
                    .push_bind(&r.event_id)
                    .push_bind(r.outcome)
                    .push_bind(&r.household_id)
                    .push_bind(&r.member_id)
                    .push_bind(&r.evidence)
                    .push_bind(&self.at);
            });
            qb.build()
                .execute(&mut *self.tx)
                .await
                .ctx("inserting link decisions")?;
        }
        Ok(())
    }

    /// The timelines of these households (facts in the order they were applied).
    pub async fn facts_for(
        &mut self,
        household_ids: &[String],
    ) -> Result<HashMap<String, Vec<Fact>>, StoreError> {
        let mut out: HashMap<String, Vec<Fact>> = HashMap::new();
        for chunk in household_ids.chunks(CHUNK) {
            let mut qb: QueryBuilder<Sqlite> = QueryBuilder::new(
                "SELECT household_id, fact FROM timeline WHERE household_id IN (",
            );
            let mut sep = qb.separated(", ");
            for id in chunk {
                sep.push_bind(id);
            }
            qb.push(") ORDER BY seq");
            let rows = qb
                .build()
                .fetch_all(&mut *self.tx)
                .await
                .ctx("reading household timelines")?;
            for row in rows {
                let hh: String = row.get(0);
                let text: String = row.get(1);
                let fact: Fact =
                    serde_json::from_str(&text).map_err(|e| corrupt("timeline fact", e))?;
                out.entry(hh).or_default().push(fact);
            }
        }
        Ok(out)
    }

    pub async fn insert_facts(&mut self, rows: &[FactRow]) -> Result<(), StoreError> {
        for chunk in rows.chunks(CHUNK) {
            let mut qb: QueryBuilder<Sqlite> = QueryBuilder::new(
                "INSERT INTO timeline (household_id, member_id, source, event_id, kind, occurred_at, fact) ",
            );
            let mut err = None;
            qb.push_values(chunk, |mut b, r| {
                let f = &r.fact;
                let json = serde_json::to_string(f).unwrap_or_else(|e| {
                    err = Some(e.to_string());
                    String::new()
                });
                b.push_bind(f.household_id.clone())
                    .push_bind(f.member_id.clone())
                    .push_bind(f.source.code())
                    .push_bind(f.event_id.clone())
                    .push_bind(f.payload.kind())
                    .push_bind(ts(&f.occurred_at))
                    .push_bind(json);
            });
            if let Some(e) = err {
                return Err(corrupt("serialising a fact", e));
            }
            qb.build()
                .execute(&mut *self.tx)
                .await
                .ctx("appending timeline facts")?;
        }
        Ok(())
    }

    pub async fn insert_assessments(&mut self, rows: &[AssessmentRow]) -> Result<(), StoreError> {
        for chunk in rows.chunks(CHUNK) {
            let mut qb: QueryBuilder<Sqlite> = QueryBuilder::new(
                "INSERT INTO assessments (source, event_id, household_id, rule_set_version, score, level, assessment, assessed_at) ",
            );
            qb.push_values(chunk, |mut b, r| {
                b.push_bind(&r.source)
                    .push_bind(&r.event_id)
                    .push_bind(&r.household_id)
                    .push_bind(&r.rule_set_version)
                    .push_bind(r.score)
                    .push_bind(&r.level)
                    .push_bind(&r.assessment)
                    .push_bind(&self.at);
            });
            qb.build()
                .execute(&mut *self.tx)
                .await
                .ctx("inserting assessments")?;
        }
        Ok(())
    }

    /// The open warning of each of these households, if any.
    pub async fn open_warnings(
        &mut self,
        household_ids: &[String],
    ) -> Result<HashMap<String, OpenWarningRow>, StoreError> {
        let mut out = HashMap::new();
        for chunk in household_ids.chunks(CHUNK) {
            let mut qb: QueryBuilder<Sqlite> = QueryBuilder::new(
                "SELECT warning_id, household_id, level, score, deadline FROM warnings WHERE status = 'open' AND household_id IN (",
            );
            let mut sep = qb.separated(", ");
            for id in chunk {
                sep.push_bind(id);
            }
            qb.push(")");
            let rows = qb
                .build()
                .fetch_all(&mut *self.tx)
                .await
                .ctx("reading open warnings")?;
            for row in rows {
                let deadline: String = row.get(4);
                let deadline = chrono::DateTime::parse_from_rfc3339(&deadline)
                    .map_err(|e| corrupt("warning deadline", e))?
                    .with_timezone(&chrono::Utc);
                let w = OpenWarningRow {
                    warning_id: row.get(0),
                    household_id: row.get(1),
                    level: row.get(2),
                    score: row.get(3),
                    deadline,
                };
                out.insert(w.household_id.clone(), w);
            }
        }
        Ok(out)
    }

    /// Open a warning; returns its id.
    pub async fn open_warning(&mut self, w: &NewWarning) -> Result<i64, StoreError> {
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO warnings (household_id, region_code, status, level, score, deadline, assessment_source, assessment_event_id, summary, opened_at, updated_at)
             VALUES (?, ?, 'open', ?, ?, ?, ?, ?, ?, ?, ?) RETURNING warning_id",
        )
        .bind(&w.household_id)
        .bind(&w.region_code)
        .bind(&w.level)
        .bind(w.score)
        .bind(ts(&w.deadline))
        .bind(&w.source)
        .bind(&w.event_id)
        .bind(&w.summary)
        .bind(&self.at)
        .bind(&self.at)
        .fetch_one(&mut *self.tx)
        .await
        .ctx("opening a warning")?;
        self.history(id, "opened", &w.level, w.score, &w.source, &w.event_id)
            .await?;
        Ok(id)
    }

    /// Update an open warning with a newer assessment.
    pub async fn update_warning(&mut self, u: &WarningUpdate) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE warnings SET level = ?, score = ?, deadline = ?, assessment_source = ?, assessment_event_id = ?, summary = ?, updated_at = ?
             WHERE warning_id = ?",
        )
        .bind(&u.level)
        .bind(u.score)
        .bind(ts(&u.deadline))
        .bind(&u.source)
        .bind(&u.event_id)
        .bind(&u.summary)
        .bind(&self.at)
        .bind(u.warning_id)
        .execute(&mut *self.tx)
        .await
        .ctx("updating a warning")?;
        let action = if u.raised { "raised" } else { "updated" };
        self.history(
            u.warning_id,
            action,
            &u.level,
            u.score,
            &u.source,
            &u.event_id,
        )
        .await
    }

    async fn history(
        &mut self,
        warning_id: i64,
        action: &str,
        level: &str,
        score: i64,
        source: &str,
        event_id: &str,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO warning_history (warning_id, action, level, score, actor, source, event_id, at) VALUES (?, ?, ?, ?, 'pipeline', ?, ?, ?)",
        )
        .bind(warning_id)
        .bind(action)
        .bind(level)
        .bind(score)
        .bind(source)
        .bind(event_id)
        .bind(&self.at)
        .execute(&mut *self.tx)
        .await
        .ctx("recording warning history")?;
        Ok(())
    }

    pub async fn insert_dead_letters(&mut self, rows: &[DeadLetterRow]) -> Result<(), StoreError> {
        for chunk in rows.chunks(CHUNK) {
            let mut qb: QueryBuilder<Sqlite> = QueryBuilder::new(
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
                .execute(&mut *self.tx)
                .await
                .ctx("inserting dead letters")?;
        }
        Ok(())
    }

    pub async fn set_positions(&mut self, rows: &[PositionRow]) -> Result<(), StoreError> {
        for r in rows {
            sqlx::query(
                "INSERT INTO positions (source, stream, byte_offset, line, updated_at) VALUES (?, ?, ?, ?, ?)
                 ON CONFLICT (source, stream) DO UPDATE SET byte_offset = excluded.byte_offset, line = excluded.line, updated_at = excluded.updated_at",
            )
            .bind(&r.source)
            .bind(&r.stream)
            .bind(r.byte_offset as i64)
            .bind(r.line as i64)
            .bind(&self.at)
            .execute(&mut *self.tx)
            .await
            .ctx("storing source positions")?;
        }
        Ok(())
    }

    /// Add to the records-read and duplicates counters.
    pub async fn add_counters(&mut self, received: u64, duplicates: u64) -> Result<(), StoreError> {
        for (name, n) in [("received", received), ("duplicates", duplicates)] {
            if n > 0 {
                sqlx::query("UPDATE counters SET value = value + ? WHERE name = ?")
                    .bind(n as i64)
                    .bind(name)
                    .execute(&mut *self.tx)
                    .await
                    .ctx("updating counters")?;
            }
        }
        Ok(())
    }

    pub async fn commit(self) -> Result<(), StoreError> {
        self.tx.commit().await.ctx("committing a batch")
    }
}
