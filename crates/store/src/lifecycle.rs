//! People's moves on warnings (acknowledge, visit, resolve) and the refused attempts, each recorded
//! in the warning's history with who, when and why.

use chrono::{DateTime, Utc};
use doudi_model::{Disposition, Level, WarningStatus};
use serde::Serialize;

use crate::codec::{ser_maybe_time, ser_time, Json, Typed};
use crate::db::{begin, on, Col, Db, Fetch, Run};
use crate::error::{Ctx, StoreError};
use crate::locks::lock_households;
use crate::open::Store;
use crate::queries::WarningView;
use crate::time::now;

/// One entry of a warning's history.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct HistoryEntry {
    #[serde(serialize_with = "ser_time")]
    pub at: DateTime<Utc>,
    pub action: String,
    pub actor: String,
    pub level: Level,
    pub score: i64,
    /// The event that caused a pipeline change.
    pub source: Option<String>,
    pub event_id: Option<String>,
    pub note: Option<String>,
    /// Set when the attempt was refused: why.
    pub refused: Option<String>,
}

/// A warning with its lifecycle and history.
#[derive(Clone, Debug, Serialize)]
pub struct WarningDetail {
    #[serde(flatten)]
    pub warning: WarningView,
    #[serde(serialize_with = "ser_maybe_time")]
    pub acknowledged_at: Option<DateTime<Utc>>,
    #[serde(serialize_with = "ser_maybe_time")]
    pub visited_at: Option<DateTime<Utc>>,
    #[serde(serialize_with = "ser_maybe_time")]
    pub resolved_at: Option<DateTime<Utc>>,
    /// Once resolved.
    pub disposition: Option<Disposition>,
    pub history: Vec<HistoryEntry>,
}

/// A move to record.
#[derive(Clone, Debug)]
pub struct WarningMove<'a> {
    pub warning_id: i64,
    /// The status the move was decided from: if the warning moved meanwhile, the move is refused.
    pub from: WarningStatus,
    pub to: WarningStatus,
    /// The move's code (`acknowledge`, `visit`, `resolve`).
    pub action: &'a str,
    pub actor: &'a str,
    pub note: &'a str,
    /// Resolve only.
    pub disposition: Option<&'a Disposition>,
}

impl Store {
    /// One warning (any status) with its history, oldest entry first.
    pub async fn warning_detail(
        &self,
        warning_id: i64,
    ) -> Result<Option<WarningDetail>, StoreError> {
        on!(self.pool(), pool => {
            let Some(r) = sqlx::query(
                "SELECT w.warning_id, w.household_id, w.region_code, w.status, w.level, w.score, w.deadline, w.opened_at,
                        w.summary, h.record, w.assigned_to, w.acknowledged_at, w.visited_at, w.resolved_at, w.disposition,
                        w.occurred_at, w.late
                 FROM warnings w JOIN households h ON h.household_id = w.household_id WHERE w.warning_id = $1",
            )
            .bind(warning_id)
            .optional(pool, "reading a warning")
            .await?
            else {
                return Ok(None);
            };
            let history = sqlx::query(
                "SELECT at, action, actor, level, score, source, event_id, note, refused FROM warning_history
                 WHERE warning_id = $1 ORDER BY id",
            )
            .bind(warning_id)
            .all(pool, "reading a warning's history")
            .await?
            .iter()
            .map(|h| {
                Ok(HistoryEntry {
                    at: h.time(0, "warning_history.at")?,
                    action: h.col(1),
                    actor: h.col(2),
                    level: h.code(3, "warning_history.level")?,
                    score: h.col(4),
                    source: h.col(5),
                    event_id: h.col(6),
                    note: h.col(7),
                    refused: h.col(8),
                })
            })
            .collect::<Result<_, StoreError>>()?;
            Ok(Some(WarningDetail {
                warning: crate::queries::warning_view(&r, 15)?,
                acknowledged_at: r.maybe_time(11, "warnings.acknowledged_at")?,
                visited_at: r.maybe_time(12, "warnings.visited_at")?,
                resolved_at: r.maybe_time(13, "warnings.resolved_at")?,
                disposition: r.maybe_json(14, "warnings.disposition")?,
                history,
            }))
        })
    }

    /// Carry out a person's move, with its history entry, in one transaction. Refused with
    /// [`StoreError::Conflict`] if the warning is no longer in `from` (someone moved it meanwhile).
    pub async fn move_warning(&self, m: &WarningMove<'_>) -> Result<(), StoreError> {
        on!(self.pool(), pool => {
            let mut tx = begin(pool, "starting a warning move").await?;
            // On PostgreSQL, wait for any batch deciding on the warning's household (as batches
            // wait for each other), so a person's move and the pipeline's update of the same
            // warning never interleave.
            if let Some(household_id) = sqlx::query_scalar::<_, String>(
                "SELECT household_id FROM warnings WHERE warning_id = $1",
            )
            .bind(m.warning_id)
            .optional(&mut *tx, "reading a warning")
            .await?
            {
                lock_households(Db::from(&mut *tx), &[household_id]).await?;
            }
            let at = now();
            let stamp = match m.to {
                WarningStatus::Acknowledged => "acknowledged_at",
                WarningStatus::Visited => "visited_at",
                WarningStatus::Resolved => "resolved_at",
                WarningStatus::Open | WarningStatus::Withdrawn => {
                    return Err(StoreError::Conflict(format!(
                        "warning #{} cannot be moved back to {} by a person",
                        m.warning_id, m.to
                    )))
                }
            };
            let disposition = m.disposition.map(Json::encode);
            // A visit also acknowledges a warning nobody acknowledged.
            // (A column is set once: PostgreSQL refuses two assignments to one column.)
            let stamp = if stamp == "acknowledged_at" {
                "acknowledged_at = COALESCE(acknowledged_at, $2, $3)".to_string()
            } else {
                format!("{stamp} = $2, acknowledged_at = COALESCE(acknowledged_at, $3)")
            };
            // A resolve cuts the household's episode (issue 19): the next one folds only the
            // facts above the highest timeline seq the household has now.
            let cut = if m.to == WarningStatus::Resolved {
                ", cut_seq = (SELECT COALESCE(MAX(t.seq), 0) FROM timeline t WHERE t.household_id = warnings.household_id)"
            } else {
                ""
            };
            let sql = format!(
                "UPDATE warnings SET status = $1, {stamp}{cut},
                     disposition = COALESCE($4, disposition), updated_at = $5
                 WHERE warning_id = $6 AND status = $7"
            );
            let done = sqlx::query(&sql)
                .bind(m.to.code())
                .bind(&at)
                .bind(&at)
                .bind(disposition.as_ref().map(Json::as_str))
                .bind(&at)
                .bind(m.warning_id)
                .bind(m.from.code())
                .run(&mut *tx, "moving a warning")
                .await?;
            if done.rows_affected() != 1 {
                return Err(StoreError::Conflict(format!(
                    "warning #{} is no longer {}: someone moved it meanwhile (see `doudi warnings show {}`)",
                    m.warning_id, m.from, m.warning_id
                )));
            }
            sqlx::query(
                "INSERT INTO warning_history (warning_id, action, level, score, actor, at, note)
                 SELECT warning_id, $1, level, score, $2, $3, $4 FROM warnings WHERE warning_id = $5",
            )
            .bind(m.action)
            .bind(m.actor)
            .bind(&at)
            .bind(m.note)
            .bind(m.warning_id)
            .run(&mut *tx, "recording a warning move")
            .await?;
            crate::audit::append(
                Db::from(&mut *tx),
                m.actor,
                &format!("warning_{}", m.action),
                &format!("warning:{}", m.warning_id),
                &serde_json::json!({"from": m.from, "to": m.to, "note": crate::audit::text_digest(m.note), "disposition": disposition.as_ref().map(Json::as_str)}),
            )
            .await?;
            tx.commit().await.ctx("committing a warning move")
        })
    }

    /// Record an attempt that was refused (who tried what, and why it was refused).
    pub async fn record_refused_move(
        &self,
        warning_id: i64,
        action: &str,
        actor: &str,
        note: &str,
        refused: &str,
    ) -> Result<(), StoreError> {
        on!(self.pool(), pool => {
            let mut tx = begin(pool, "starting to record a refusal").await?;
            sqlx::query(
                "INSERT INTO warning_history (warning_id, action, level, score, actor, at, note, refused)
                 SELECT warning_id, $1, level, score, $2, $3, $4, $5 FROM warnings WHERE warning_id = $6",
            )
            .bind(action)
            .bind(actor)
            .bind(now())
            .bind(note)
            .bind(refused)
            .bind(warning_id)
            .run(&mut *tx, "recording a refused warning move")
            .await?;
            crate::audit::append(
                Db::from(&mut *tx),
                actor,
                &format!("warning_{action}_refused"),
                &format!("warning:{warning_id}"),
                &serde_json::json!({"note": crate::audit::text_digest(note), "refused": refused}),
            )
            .await?;
            tx.commit().await.ctx("committing a refusal")
        })
    }
}
