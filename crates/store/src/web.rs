//! Read-side queries of the HTTP service that the command line does not need: warnings filtered by
//! region, level and state with paging, one household's record, counts for a region's overview,
//! and a readiness probe.
//!
//! Portable SQL (`$n` placeholders, `substr`, `||`, integers as i64) but for the region prefix,
//! which is a range of codes (see [`in_region`]).

use crate::codec::Typed;
use crate::db::{on, Col, Dialect, Fetch};
use crate::error::StoreError;
use crate::open::Store;
use crate::queries::WarningView;
use doudi_model::Level;
use serde::Serialize;

/// Which warnings to list.
#[derive(Clone, Debug, Default)]
pub struct WarningFilter<'a> {
    /// Region-code prefix (`""`: every region).
    pub region_prefix: &'a str,
    /// `red`, `orange`, `yellow`; `None`: any.
    pub level: Option<Level>,
    /// `open`, `acknowledged`, `visited`, `resolved`; `active` (not resolved) or `all`.
    pub state: &'a str,
    /// Only those assigned to this officer.
    pub assigned_to: Option<&'a str>,
    /// Those overdue at this time (active, deadline passed) first, before the level order: so
    /// that a page's limit never hides an overdue warning behind fresher reds.
    pub overdue_first_at: Option<chrono::DateTime<chrono::Utc>>,
    pub limit: i64,
    pub offset: i64,
}

/// A page of warnings and how many match in all.
#[derive(Clone, Debug, Serialize)]
pub struct WarningPage {
    pub total: i64,
    pub limit: i64,
    pub offset: i64,
    pub warnings: Vec<WarningView>,
}

/// A household of the register as stored.
#[derive(Clone, Debug, Serialize)]
pub struct HouseholdRecord {
    pub household_id: String,
    pub region_code: String,
    pub category: String,
    /// Still in the register (a household removed by a later import is kept, inactive).
    pub active: bool,
    pub updated_at: String,
    /// The record as imported (JSON).
    pub record: serde_json::Value,
}

/// Warnings of a region counted by day opened and level, and active ones by township and level.
#[derive(Clone, Debug, Default, Serialize)]
pub struct RegionCounts {
    /// (day `YYYY-MM-DD`, level, warnings opened that day).
    pub by_day: Vec<(String, Level, i64)>,
    /// (township code, level, active warnings).
    pub by_township: Vec<(String, Level, i64)>,
}

/// Rows of (key, level, count), as [`RegionCounts`] holds them.
fn level_counts(rows: &[impl Col]) -> Result<Vec<(String, Level, i64)>, StoreError> {
    rows.iter()
        .map(|r| Ok((r.col(0), r.code(1, "warnings.level")?, r.col(2))))
        .collect()
}

/// `column` starts with the region prefix `$1`, as a range of codes so that an index on the column
/// serves it (codes are digits; ':' sorts right after '9'). On PostgreSQL the comparison is made in
/// the "C" collation: under a language collation (en_US, ICU) punctuation is ignored at first and
/// '341502001' < '341502:' is false.
pub(crate) fn in_region(postgres: bool, column: &str) -> String {
    if postgres {
        format!("{column} COLLATE \"C\" >= $1 AND {column} COLLATE \"C\" < $1 || ':'")
    } else {
        format!("{column} >= $1 AND {column} < $1 || ':'")
    }
}

fn where_filter(postgres: bool) -> String {
    format!(
        "WHERE {} {FILTER_REST}",
        in_region(postgres, "w.region_code")
    )
}

const FILTER_REST: &str = "AND ($2 = '' OR w.level = $2)
       AND ($3 = 'all' OR ($3 = 'active' AND w.status NOT IN ('resolved', 'withdrawn')) OR w.status = $3)
       AND ($4 = '' OR w.assigned_to = $4)";

impl Store {
    /// Warnings matching `f`, most urgent first (the overdue ones if `overdue_first_at` says so,
    /// then level, then the nearest deadline), one page.
    pub async fn warnings_page(&self, f: &WarningFilter<'_>) -> Result<WarningPage, StoreError> {
        let level = f.level.map_or("", Level::code);
        let assigned = f.assigned_to.unwrap_or("");
        on!(self.pool(), pool => {
        let total: i64 =
            sqlx::query_scalar(&format!("SELECT COUNT(*) FROM warnings w {}", where_filter(<DB as Dialect>::POSTGRES)))
                .bind(f.region_prefix)
                .bind(level)
                .bind(f.state)
                .bind(assigned)
                .one(pool, "counting warnings")
                .await?;
        let rows = sqlx::query(&format!(
            "SELECT w.warning_id, w.household_id, w.region_code, w.status, w.level, w.score, w.deadline, w.opened_at, w.summary, h.record, w.assigned_to, w.occurred_at, w.late
             FROM warnings w JOIN households h ON h.household_id = w.household_id
             {}
             ORDER BY CASE WHEN $7 <> '' AND w.status NOT IN ('resolved', 'withdrawn') AND w.deadline < $7 THEN 0 ELSE 1 END,
                      CASE w.level WHEN 'red' THEN 0 WHEN 'orange' THEN 1 WHEN 'yellow' THEN 2 ELSE 3 END, w.deadline, w.warning_id
             LIMIT $5 OFFSET $6",
            where_filter(<DB as Dialect>::POSTGRES)
        ))
        .bind(f.region_prefix)
        .bind(level)
        .bind(f.state)
        .bind(assigned)
        .bind(f.limit)
        .bind(f.offset)
        .bind(f.overdue_first_at.as_ref().map(crate::ts).unwrap_or_default())
        .all(pool, "listing warnings")
        .await?;
        Ok(WarningPage {
            total,
            limit: f.limit,
            offset: f.offset,
            warnings: rows.iter().map(|r| crate::queries::warning_view(r, 11)).collect::<Result<_, _>>()?,
        })
        })
    }

    /// One household of the register (active or not); `None` if the register never held it.
    pub async fn household(
        &self,
        household_id: &str,
    ) -> Result<Option<HouseholdRecord>, StoreError> {
        on!(self.pool(), pool => {
        let Some(r) = sqlx::query(
            "SELECT household_id, region_code, category, active, updated_at, record FROM households WHERE household_id = $1",
        )
        .bind(household_id)
        .optional(pool, "reading a household")
        .await?
        else {
            return Ok(None);
        };
        let record: crate::pack::Stored = r.col(5);
        Ok(Some(HouseholdRecord {
            household_id: r.col(0),
            region_code: r.col(1),
            category: r.col(2),
            active: r.col::<i64>(3) != 0,
            updated_at: r.col(4),
            record: crate::codec::decode_stored(&record.0, "households.record")?,
        }))
        })
    }

    /// The region of a warning, and the household it is about; `None` if there is no such warning.
    pub async fn warning_region(
        &self,
        warning_id: i64,
    ) -> Result<Option<(String, String)>, StoreError> {
        on!(self.pool(), pool => Ok(
            sqlx::query("SELECT region_code, household_id FROM warnings WHERE warning_id = $1")
                .bind(warning_id)
                .optional(pool, "reading a warning's region")
                .await?
                .map(|r| (r.col(0), r.col(1))),
        ))
    }

    /// Counts for a region's overview: warnings opened per day and level since `since` (stored
    /// timestamp format), and active warnings per township and level.
    pub async fn region_counts(
        &self,
        region_prefix: &str,
        since: &str,
    ) -> Result<RegionCounts, StoreError> {
        on!(self.pool(), pool => {
        let region = in_region(<DB as Dialect>::POSTGRES, "region_code");
        let by_day = sqlx::query(&format!(
            "SELECT substr(opened_at, 1, 10), level, COUNT(*) FROM warnings
             WHERE {region} AND opened_at >= $2 GROUP BY 1, 2 ORDER BY 1, 2"
        ))
        .bind(region_prefix)
        .bind(since)
        .all(pool, "counting warnings by day")
        .await?;
        let by_township = sqlx::query(&format!(
            "SELECT substr(region_code, 1, 9), level, COUNT(*) FROM warnings
             WHERE {region} AND status NOT IN ('resolved', 'withdrawn') GROUP BY 1, 2 ORDER BY 1, 2"
        ))
        .bind(region_prefix)
        .all(pool, "counting warnings by township")
        .await?;
        Ok(RegionCounts {
            by_day: level_counts(&by_day)?,
            by_township: level_counts(&by_township)?,
        })
        })
    }

    /// Whether the database answers (a trivial query).
    pub async fn ping(&self) -> Result<(), StoreError> {
        on!(self.pool(), pool => {
            sqlx::query_scalar::<_, i64>("SELECT CAST(1 AS BIGINT)")
                .one(pool, "checking the database answers")
                .await?;
            Ok(())
        })
    }
}
