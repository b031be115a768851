//! Read-side queries: status counts, warnings, dead letters.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use doudi_model::{Assessment, Level, LinkOutcome, WarningStatus};
use serde::Serialize;
use sqlx::Row;

use crate::bulk::CHUNK;
use crate::codec::{ser_maybe_time, ser_time, Typed};
use crate::db::{on, push_list, Col, Db, Fetch};
use crate::error::{Ctx, StoreError};
use crate::open::Store;

/// Counts over everything the store holds.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Status {
    /// Records read from all sources (accepted + duplicates + dead letters).
    pub received: i64,
    /// New events stored.
    pub accepted: i64,
    /// Events whose `(source, event_id)` had been seen before: no effect.
    pub duplicates: i64,
    pub dead_letters: i64,
    pub linked: i64,
    pub review: i64,
    pub unmatched: i64,
    /// Facts applied to household timelines.
    pub applied: i64,
    pub assessments: i64,
    /// Active (not yet resolved) warnings by level.
    pub warnings_open: BTreeMap<Level, i64>,
    pub warnings_total: i64,
    pub households: i64,
    pub members: i64,
}

/// A warning as a list shows it.
#[derive(Clone, Debug, Serialize)]
pub struct WarningView {
    pub warning_id: i64,
    pub household_id: String,
    pub region_code: String,
    pub status: WarningStatus,
    pub level: Level,
    pub score: i64,
    #[serde(serialize_with = "ser_time")]
    pub deadline: DateTime<Utc>,
    #[serde(serialize_with = "ser_time")]
    pub opened_at: DateTime<Utc>,
    /// The latest assessment.
    pub summary: Assessment,
    /// The household record, as JSON.
    pub household: serde_json::Value,
    /// The officer responsible, if any covers the region.
    pub assigned_to: Option<String>,
    /// When the hardship happened: the event time of the fact that set the warning's level
    /// (`None` for a warning opened before this was kept).
    #[serde(serialize_with = "ser_maybe_time")]
    pub occurred_at: Option<DateTime<Utc>>,
    /// The fact that set the level was received long after it happened (a catch-up case, 补录):
    /// its deadline is a catch-up window from receipt (see the README, "Late records").
    pub late: bool,
}

/// A dead letter as a list shows it (raw shown as lossy UTF-8, at most 200 characters).
#[derive(Clone, Debug, Serialize)]
pub struct DeadLetterView {
    pub id: i64,
    pub source: String,
    pub stream: String,
    pub line: i64,
    pub reason_code: String,
    pub reason: String,
    pub raw_len: i64,
    pub raw_preview: String,
    /// When it was replayed into the pipeline after a fix, if it was.
    pub replayed_at: Option<String>,
}

/// A warning from a row whose first eleven columns are `warning_id, household_id, region_code,
/// status, level, score, deadline, opened_at, summary, record (of the household), assigned_to`,
/// and whose columns `extra` and `extra + 1` are `occurred_at, late`.
pub(crate) fn warning_view(r: &impl Col, extra: usize) -> Result<WarningView, StoreError> {
    Ok(WarningView {
        warning_id: r.col(0),
        household_id: r.col(1),
        region_code: r.col(2),
        status: r.code(3, "warnings.status")?,
        level: r.code(4, "warnings.level")?,
        score: r.col(5),
        deadline: r.time(6, "warnings.deadline")?,
        opened_at: r.time(7, "warnings.opened_at")?,
        summary: r.json(8, "warnings.summary")?,
        household: r.json(9, "households.record")?,
        assigned_to: r.col(10),
        occurred_at: r.maybe_time(extra, "warnings.occurred_at")?,
        late: r.col::<i64>(extra + 1) != 0,
    })
}

impl Store {
    pub async fn status(&self) -> Result<Status, StoreError> {
        on!(self.pool(), pool => {
            let scalar = |sql: &'static str| async move {
                sqlx::query_scalar::<_, i64>(sql)
                    .one(pool, "counting for status")
                    .await
            };
            let mut s = Status {
                received: scalar("SELECT value FROM counters WHERE name = 'received'").await?,
                duplicates: scalar("SELECT value FROM counters WHERE name = 'duplicates'").await?,
                accepted: scalar("SELECT COUNT(*) FROM events").await?,
                dead_letters: scalar("SELECT COUNT(*) FROM dead_letters").await?,
                applied: scalar("SELECT COUNT(*) FROM timeline").await?,
                assessments: scalar("SELECT COUNT(*) FROM assessments").await?,
                warnings_total: scalar("SELECT COUNT(*) FROM warnings").await?,
                households: scalar("SELECT COUNT(*) FROM households WHERE active = 1").await?,
                members: scalar("SELECT COUNT(*) FROM members WHERE active = 1").await?,
                ..Status::default()
            };
            for row in sqlx::query("SELECT outcome, COUNT(*) FROM link_decisions GROUP BY outcome")
                .all(pool, "counting link decisions")
                .await?
            {
                let n: i64 = row.get(1);
                match row.code(0, "link_decisions.outcome")? {
                    LinkOutcome::Linked => s.linked = n,
                    LinkOutcome::Review => s.review = n,
                    LinkOutcome::Unmatched => s.unmatched = n,
                }
            }
            for row in sqlx::query(
                "SELECT level, COUNT(*) FROM warnings WHERE status NOT IN ('resolved', 'withdrawn') GROUP BY level",
            )
            .all(pool, "counting warnings")
            .await?
            {
                s.warnings_open.insert(row.code(0, "warnings.level")?, row.get(1));
            }
            Ok(s)
        })
    }

    /// Active (not yet resolved) warnings, most urgent first (level, then score), at most `limit`; only those assigned
    /// to `officer` when given.
    pub async fn open_warnings(
        &self,
        limit: i64,
        officer: Option<&str>,
    ) -> Result<Vec<WarningView>, StoreError> {
        Ok(on!(self.pool(), p => sqlx::query(
            "SELECT w.warning_id, w.household_id, w.region_code, w.status, w.level, w.score, w.deadline, w.opened_at, w.summary, h.record, w.assigned_to, w.occurred_at, w.late
             FROM warnings w JOIN households h ON h.household_id = w.household_id
             WHERE w.status NOT IN ('resolved', 'withdrawn') AND ($1 IS NULL OR w.assigned_to = $1)
             ORDER BY CASE w.level WHEN 'red' THEN 0 WHEN 'orange' THEN 1 WHEN 'yellow' THEN 2 ELSE 3 END, w.score DESC, w.warning_id
             LIMIT $2",
        )
        .bind(officer)
        .bind(limit)
        .all(p, "listing warnings")
        .await?
        .iter()
        .map(|r| warning_view(r, 11))
        .collect::<Result<_, _>>()?))
    }

    /// Dead letters, oldest first, at most `limit`.
    pub async fn dead_letters(&self, limit: i64) -> Result<Vec<DeadLetterView>, StoreError> {
        Ok(on!(self.pool(), p => sqlx::query(
            "SELECT id, source, stream, line, reason_code, reason, raw_len, raw, replayed_at FROM dead_letters ORDER BY id LIMIT $1",
        )
        .bind(limit)
        .all(p, "listing dead letters")
        .await?
            .into_iter()
            .map(|r| {
                let raw: Vec<u8> = r.get(7);
                DeadLetterView {
                    id: r.get(0),
                    source: r.get(1),
                    stream: r.get(2),
                    line: r.get(3),
                    reason_code: r.get(4),
                    reason: r.get(5),
                    raw_len: r.get(6),
                    raw_preview: String::from_utf8_lossy(&raw).chars().take(200).collect(),
                    replayed_at: r.get(8),
                }
            })
            .collect()))
    }

    /// Timelines of the households after `after` (in household id order; `""` to start), at most
    /// `limit` households a page: a caller walks every timeline page by page in bounded memory.
    pub async fn timelines_after(
        &self,
        after: &str,
        limit: i64,
    ) -> Result<Vec<(String, Vec<doudi_model::Fact>)>, StoreError> {
        let (ids, mut facts) = on!(self.pool(), p => {
            let mut conn = p.acquire().await.ctx("reading household timelines")?;
            let ids: Vec<String> = sqlx::query_scalar(
                "SELECT DISTINCT household_id FROM timeline WHERE household_id > $1 ORDER BY household_id LIMIT $2",
            )
            .bind(after)
            .bind(limit)
            .all(&mut *conn, "listing households with timelines")
            .await?;
            let facts = crate::batch::facts_for(Db::from(&mut *conn), &ids).await?;
            (ids, facts)
        });
        Ok(ids
            .into_iter()
            .map(|id| {
                let f = facts.remove(&id).unwrap_or_default();
                (id, f)
            })
            .collect())
    }

    /// Dead letters not replayed yet with an id above `after`, oldest first, at most `limit`:
    /// all, or those with these ids, or this reason (a caller pages through them).
    pub async fn dead_letters_to_replay(
        &self,
        ids: &[i64],
        reason_code: Option<&str>,
        after: i64,
        limit: i64,
    ) -> Result<Vec<DeadLetterRecord>, StoreError> {
        on!(self.pool(), p => {
        let mut qb: sqlx::QueryBuilder<DB> = sqlx::QueryBuilder::new(
            "SELECT id, source, stream, line, byte_offset, reason_code, raw, raw_len FROM dead_letters
             WHERE replayed_at IS NULL AND id > ",
        );
        qb.push_bind(after);
        if let Some(code) = reason_code {
            qb.push(" AND reason_code = ");
            qb.push_bind(code);
        }
        if !ids.is_empty() {
            qb.push(" AND id IN ");
            push_list(&mut qb, ids.iter().take(CHUNK).copied());
        }
        qb.push(" ORDER BY id LIMIT ");
        qb.push_bind(limit);
        qb.build_query_as()
            .all(p, "reading dead letters to replay")
            .await
        })
    }
}

/// A dead letter with its bytes, for replay.
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct DeadLetterRecord {
    pub id: i64,
    pub source: String,
    pub stream: String,
    pub line: i64,
    pub byte_offset: i64,
    pub reason_code: String,
    /// At most the size limit in force when it was refused.
    pub raw: Vec<u8>,
    /// The record's full length.
    pub raw_len: i64,
}
