//! Nightly cross-check runs and their findings: at most one open finding per key; a finding that
//! is no longer true is closed with a note, never deleted.

use serde::Serialize;
use sqlx::QueryBuilder;

use crate::bulk::CHUNK;
use crate::db::{begin, on, Col, Db, Fetch, Run};
use crate::error::{Ctx, StoreError};
use crate::open::Store;
use crate::time::now;

/// A finding as the store keeps it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct FindingRow {
    /// Stable across nights: the check and its subject.
    pub key: String,
    pub check_code: String,
    pub household_id: String,
    pub member_id: Option<String>,
    pub region_code: String,
    pub category: String,
    pub amount_fen: i64,
    /// The finding itself (JSON: evidence, summaries), as the latest night saw it.
    pub finding: String,
    /// The night it was first found (`YYYY-MM-DD`).
    pub first_seen: String,
    /// The last night it was still true.
    pub last_seen: String,
    /// Deadline for the eligibility review (RFC 3339).
    pub deadline: String,
    /// The officer responsible (routing by region), if any covers it.
    pub assigned_to: Option<String>,
}

/// A stored finding (open or closed).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct StoredFinding {
    pub finding_id: i64,
    pub status: String,
    pub closed_on: Option<String>,
    pub close_note: Option<String>,
    #[serde(flatten)]
    pub row: FindingRow,
}

/// One night's run, as recorded.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct CrosscheckRunRow {
    pub night: String,
    pub snapshots: String,
    pub started_at: String,
    pub rows_read: i64,
    pub bad_rows: i64,
}

/// What a night changed: findings opened, still open (refreshed), closed. A finding still open
/// is in one of `refreshed` (its row written again), `seen_again` (only its `last_seen` moves to
/// the night) or `unchanged` (nothing to write: a re-run of the same night, or a check that did
/// not run); the night's count of findings still open is the three together.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct NightChanges {
    pub opened: Vec<FindingRow>,
    pub refreshed: Vec<FindingRow>,
    /// Keys of open findings found again whose row is the same but for `last_seen`.
    pub seen_again: Vec<String>,
    /// Open findings found again (or left open) whose row does not change at all.
    pub unchanged: usize,
    /// (key, note)
    pub closed: Vec<(String, String)>,
}

fn stored(r: &impl Col) -> StoredFinding {
    StoredFinding {
        finding_id: r.col(0),
        status: r.col(1),
        closed_on: r.col(2),
        close_note: r.col(3),
        row: FindingRow {
            key: r.col(4),
            check_code: r.col(5),
            household_id: r.col(6),
            member_id: r.col(7),
            region_code: r.col(8),
            category: r.col(9),
            amount_fen: r.col(10),
            finding: r.col(11),
            first_seen: r.col(12),
            last_seen: r.col(13),
            deadline: r.col(14),
            assigned_to: r.col(15),
        },
    }
}

const FINDING_COLUMNS: &str =
    "SELECT finding_id, status, closed_on, close_note, key, check_code, household_id, member_id,
        region_code, category, amount_fen, finding, first_seen, last_seen, deadline, assigned_to FROM findings";

impl Store {
    /// The latest night a cross-check was recorded for (`YYYY-MM-DD`).
    pub async fn last_crosscheck_night(&self) -> Result<Option<String>, StoreError> {
        on!(self.pool(), pool => {
            sqlx::query_scalar("SELECT MAX(night) FROM crosscheck_runs")
                .one(pool, "reading the last cross-check night")
                .await
        })
    }

    /// Every open finding, by key.
    pub async fn open_findings(&self) -> Result<Vec<StoredFinding>, StoreError> {
        self.findings_where(
            "WHERE status = 'open' ORDER BY key",
            "reading open findings",
        )
        .await
    }

    /// Every finding, open and closed, in the order they were opened.
    pub async fn all_findings(&self) -> Result<Vec<StoredFinding>, StoreError> {
        self.findings_where("ORDER BY finding_id", "reading findings")
            .await
    }

    /// The findings `tail` (a filter and an order) selects.
    async fn findings_where(
        &self,
        tail: &str,
        context: &'static str,
    ) -> Result<Vec<StoredFinding>, StoreError> {
        let sql = format!("{FINDING_COLUMNS} {tail}");
        on!(self.pool(), pool => {
            Ok(sqlx::query(&sql).all(pool, context).await?.iter().map(stored).collect())
        })
    }

    /// Record one night's run and its changes in one transaction; returns the run id. A key
    /// opened while an open finding has it already is refused (the caller reconciles first).
    pub async fn record_crosscheck(
        &self,
        run: &CrosscheckRunRow,
        changes: &NightChanges,
    ) -> Result<i64, StoreError> {
        on!(self.pool(), pool => {
            let mut tx = begin(pool, "starting to record a cross-check").await?;
            let last: Option<String> = sqlx::query_scalar("SELECT MAX(night) FROM crosscheck_runs")
                .one(&mut *tx, "reading the last cross-check night")
                .await?;
            if let Some(last) = last.filter(|l| run.night.as_str() < l.as_str()) {
                return Err(StoreError::Conflict(format!(
                    "night {} is older than the last night checked ({last}): replaying it would close findings found since; check a night from {last} on",
                    run.night
                )));
            }
            let still_open = changes.refreshed.len() + changes.seen_again.len() + changes.unchanged;
            let run_id: i64 = sqlx::query_scalar(
                "INSERT INTO crosscheck_runs (night, snapshots, started_at, finished_at, rows_read, bad_rows, opened, still_open, closed)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING run_id",
            )
            .bind(&run.night)
            .bind(&run.snapshots)
            .bind(&run.started_at)
            .bind(now())
            .bind(run.rows_read)
            .bind(run.bad_rows)
            .bind(changes.opened.len() as i64)
            .bind(still_open as i64)
            .bind(changes.closed.len() as i64)
            .one(&mut *tx, "recording a cross-check run")
            .await?;
            for chunk in changes.opened.chunks(CHUNK / 2) {
                let mut qb: QueryBuilder<DB> = QueryBuilder::new(
                    "INSERT INTO findings (key, check_code, household_id, member_id, region_code, category, status,
                     amount_fen, finding, first_seen, last_seen, deadline, assigned_to, opened_run) ",
                );
                qb.push_values(chunk, |mut b, f| {
                    b.push_bind(&f.key)
                        .push_bind(&f.check_code)
                        .push_bind(&f.household_id)
                        .push_bind(&f.member_id)
                        .push_bind(&f.region_code)
                        .push_bind(&f.category)
                        .push_bind("open")
                        .push_bind(f.amount_fen)
                        .push_bind(&f.finding)
                        .push_bind(&f.first_seen)
                        .push_bind(&f.last_seen)
                        .push_bind(&f.deadline)
                        .push_bind(&f.assigned_to)
                        .push_bind(run_id);
                });
                qb.build().run(&mut *tx, "opening findings").await?;
            }
            // Refreshed and closed findings in bulk: one statement per chunk of keys.
            for chunk in changes.refreshed.chunks(CHUNK / 2) {
                let mut qb: QueryBuilder<DB> = QueryBuilder::new(
                    "WITH v (key, last_seen, amount_fen, finding, assigned_to) AS (",
                );
                qb.push_values(chunk, |mut b, f| {
                    b.push_bind(&f.key)
                        .push_bind(&f.last_seen)
                        .push_bind(f.amount_fen)
                        .push_bind(&f.finding)
                        .push_bind(&f.assigned_to);
                });
                qb.push(
                    ") UPDATE findings SET last_seen = v.last_seen, amount_fen = v.amount_fen, finding = v.finding,
                     assigned_to = COALESCE(v.assigned_to, findings.assigned_to)
                     FROM v WHERE findings.key = v.key AND findings.status = 'open'",
                );
                qb.build().run(&mut *tx, "refreshing findings").await?;
            }
            // Found again, the same but for the night: only `last_seen` is written.
            for chunk in changes.seen_again.chunks(CHUNK) {
                let mut qb: QueryBuilder<DB> = QueryBuilder::new("UPDATE findings SET last_seen = ");
                qb.push_bind(&run.night);
                qb.push(" WHERE status = 'open' AND key IN (");
                let mut keys = qb.separated(", ");
                for key in chunk {
                    keys.push_bind(key);
                }
                qb.push(")");
                qb.build().run(&mut *tx, "marking findings seen again").await?;
            }
            for chunk in changes.closed.chunks(CHUNK / 2) {
                let mut qb: QueryBuilder<DB> = QueryBuilder::new("WITH v (key, note) AS (");
                qb.push_values(chunk, |mut b, (key, note)| {
                    b.push_bind(key).push_bind(note);
                });
                qb.push(") UPDATE findings SET status = 'closed', closed_on = ");
                qb.push_bind(&run.night);
                qb.push(", close_note = v.note, closed_run = ");
                qb.push_bind(run_id);
                qb.push(" FROM v WHERE findings.key = v.key AND findings.status = 'open'");
                qb.build().run(&mut *tx, "closing findings").await?;
            }
            crate::audit::append(
                Db::from(&mut *tx),
                "doudi",
                "crosscheck_night",
                &format!("night:{}", run.night),
                &serde_json::json!({"run_id": run_id, "rows_read": run.rows_read, "bad_rows": run.bad_rows,
                    "opened": changes.opened.iter().map(|f| &f.key).collect::<Vec<_>>(),
                    "refreshed": still_open,
                    "closed": changes.closed.iter().map(|c| &c.0).collect::<Vec<_>>()}),
            )
            .await?;
            tx.commit().await.ctx("committing a cross-check run")?;
            Ok(run_id)
        })
    }
}
