//! Read-side queries of the officers' pages: when the facts that raised warnings happened, a
//! household's warnings (open and closed), newest first, and a region's escalated warnings with
//! how far up they went and since when.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use sqlx::QueryBuilder;

use crate::codec::Typed;
use crate::db::{on, push_list, Fetch};
use crate::error::StoreError;
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

/// An active warning the escalation tick sent up: how far and since when.
#[derive(Clone, Debug)]
pub struct EscalatedWarning {
    /// The warning (the household's record as stored: mask it before showing it).
    pub warning: WarningView,
    /// Steps up the chain for want of acknowledgement: 1 the supervisor of the region, 2 the one
    /// above, … (0: not escalated for acknowledgement).
    pub ack_steps: i64,
    /// Sent up to the supervisor for being unresolved at its deadline.
    pub overdue: bool,
    /// When it was last sent up (its latest escalation or overdue notice); `None` when the chain
    /// had nobody to send it to.
    pub since: Option<DateTime<Utc>>,
}

impl Store {
    /// The active warnings of the region `region_prefix` that the escalation tick sent up (for
    /// want of acknowledgement or for being unresolved at their deadline), furthest up first, then
    /// the earliest deadline: at most `limit` of them, and how many there are in all.
    pub async fn escalated_warnings(
        &self,
        region_prefix: &str,
        limit: i64,
    ) -> Result<(i64, Vec<EscalatedWarning>), StoreError> {
        const WHERE: &str = "w.status NOT IN ('resolved', 'withdrawn') AND (w.ack_steps > 0 OR w.resolve_escalated <> 0)";
        on!(self.pool(), pool => {
        let region = crate::web::in_region(<DB as crate::db::Dialect>::POSTGRES, "w.region_code");
        let total: i64 = sqlx::query_scalar(&format!(
            "SELECT COUNT(*) FROM warnings w WHERE {region} AND {WHERE}"
        ))
        .bind(region_prefix)
        .one(pool, "counting escalated warnings")
        .await?;
        let rows = sqlx::query(&format!(
            "SELECT w.warning_id, w.household_id, w.region_code, w.status, w.level, w.score, w.deadline, w.opened_at, w.summary, h.record, w.assigned_to, w.occurred_at, w.late,
                    w.ack_steps, w.resolve_escalated,
                    (SELECT MAX(n.due_at) FROM notices n WHERE n.warning_id = w.warning_id AND n.kind IN ('escalated', 'overdue'))
             FROM warnings w JOIN households h ON h.household_id = w.household_id
             WHERE {region} AND {WHERE}
             ORDER BY w.ack_steps DESC, w.resolve_escalated DESC, w.deadline, w.warning_id
             LIMIT $2"
        ))
        .bind(region_prefix)
        .bind(limit)
        .all(pool, "listing escalated warnings")
        .await?;
        let list = rows
            .iter()
            .map(|r| {
                Ok(EscalatedWarning {
                    warning: crate::queries::warning_view(r, 11)?,
                    ack_steps: crate::db::Col::col::<i64>(r, 13),
                    overdue: crate::db::Col::col::<i64>(r, 14) != 0,
                    since: r.maybe_time(15, "notices.due_at")?,
                })
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        Ok((total, list))
        })
    }

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
                 WHERE w.warning_id IN ",
            );
            push_list(&mut qb, chunk.iter().copied());
            let rows = qb
                .build()
                .all(pool, "reading when the facts behind warnings happened")
                .await?;
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
        .all(pool, "listing a household's warnings")
        .await?;
        rows.iter().map(|r| crate::queries::warning_view(r, 11)).collect()
        })
    }
}
