//! Read-side queries of the officers' pages: when the facts that raised warnings happened, and a
//! household's warnings (open and closed), newest first.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use sqlx::QueryBuilder;

use crate::codec::Typed;
use crate::db::on;
use crate::error::{Ctx, StoreError};
use crate::open::Store;
use crate::queries::WarningView;

/// When the fact behind a warning happened and when the store received it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FactTimes {
    /// When it happened (the record's `occurred_at`).
    pub occurred_at: DateTime<Utc>,
    /// When the store received the record.
    pub received_at: DateTime<Utc>,
}

impl Store {
    /// For each of `warning_ids` (missing ones are left out), when the fact that last set it (its
    /// triggering fact) happened and was received.
    pub async fn warning_fact_times(
        &self,
        warning_ids: &[i64],
    ) -> Result<HashMap<i64, FactTimes>, StoreError> {
        let mut out = HashMap::new();
        if warning_ids.is_empty() {
            return Ok(out);
        }
        on!(self.pool(), pool => {
        for chunk in warning_ids.chunks(500) {
            let mut qb: QueryBuilder<DB> = QueryBuilder::new(
                "SELECT w.warning_id, e.occurred_at, e.received_at FROM warnings w
                 JOIN events e ON e.source = w.assessment_source AND e.event_id = w.assessment_event_id
                 WHERE w.warning_id IN (",
            );
            let mut list = qb.separated(", ");
            for id in chunk {
                list.push_bind(*id);
            }
            qb.push(")");
            let rows = qb
                .build()
                .fetch_all(pool)
                .await
                .ctx("reading when the facts behind warnings happened")?;
            for r in &rows {
                out.insert(
                    crate::db::Col::col::<i64>(r, 0),
                    FactTimes {
                        occurred_at: r.time(1, "events.occurred_at")?,
                        received_at: r.time(2, "events.received_at")?,
                    },
                );
            }
        }
        Ok(out)
        })
    }

    /// A household's warnings, open and closed, newest first (the household's record as stored:
    /// mask it before showing it).
    pub async fn household_warnings(
        &self,
        household_id: &str,
    ) -> Result<Vec<WarningView>, StoreError> {
        on!(self.pool(), pool => {
        let rows = sqlx::query(
            "SELECT w.warning_id, w.household_id, w.region_code, w.status, w.level, w.score, w.deadline, w.opened_at, w.summary, h.record, w.assigned_to, w.occurred_at, w.late
             FROM warnings w JOIN households h ON h.household_id = w.household_id
             WHERE w.household_id = $1 ORDER BY w.warning_id DESC",
        )
        .bind(household_id)
        .fetch_all(pool)
        .await
        .ctx("listing a household's warnings")?;
        rows.iter().map(|r| crate::queries::warning_view(r, 11)).collect()
        })
    }
}
