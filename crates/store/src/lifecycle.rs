//! People's moves on warnings (acknowledge, visit, resolve) and the refused attempts, each recorded
//! in the warning's history with who, when and why.

use serde::Serialize;
use sqlx::Row;

use crate::db::{on, Db, Dialect};
use crate::error::{Ctx, StoreError};
use crate::locks::lock_households;
use crate::open::Store;
use crate::queries::WarningView;
use crate::time::now;

/// One entry of a warning's history.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct HistoryEntry {
    pub at: String,
    pub action: String,
    pub actor: String,
    pub level: String,
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
    pub acknowledged_at: Option<String>,
    pub visited_at: Option<String>,
    pub resolved_at: Option<String>,
    /// JSON, once resolved.
    pub disposition: Option<serde_json::Value>,
    pub history: Vec<HistoryEntry>,
}

/// A move to record.
#[derive(Clone, Debug)]
pub struct WarningMove<'a> {
    pub warning_id: i64,
    /// The status the move was decided from: if the warning moved meanwhile, the move is refused.
    pub from: &'a str,
    pub to: &'a str,
    pub action: &'a str,
    pub actor: &'a str,
    pub note: &'a str,
    /// JSON of the disposition (resolve only).
    pub disposition: Option<String>,
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
                        w.summary, h.record, w.assigned_to, w.acknowledged_at, w.visited_at, w.resolved_at, w.disposition
                 FROM warnings w JOIN households h ON h.household_id = w.household_id WHERE w.warning_id = $1",
            )
            .bind(warning_id)
            .fetch_optional(pool)
            .await
            .ctx("reading a warning")?
            else {
                return Ok(None);
            };
            let history = sqlx::query(
                "SELECT at, action, actor, level, score, source, event_id, note, refused FROM warning_history
                 WHERE warning_id = $1 ORDER BY id",
            )
            .bind(warning_id)
            .fetch_all(pool)
            .await
            .ctx("reading a warning's history")?
            .into_iter()
            .map(|h| HistoryEntry {
                at: h.get(0),
                action: h.get(1),
                actor: h.get(2),
                level: h.get(3),
                score: h.get(4),
                source: h.get(5),
                event_id: h.get(6),
                note: h.get(7),
                refused: h.get(8),
            })
            .collect();
            let disposition: Option<String> = r.get(14);
            Ok(Some(WarningDetail {
                warning: crate::queries::warning_view(&r),
                acknowledged_at: r.get(11),
                visited_at: r.get(12),
                resolved_at: r.get(13),
                disposition: disposition.and_then(|d| serde_json::from_str(&d).ok()),
                history,
            }))
        })
    }

    /// Carry out a person's move, with its history entry, in one transaction. Refused with
    /// [`StoreError::Conflict`] if the warning is no longer in `from` (someone moved it meanwhile).
    pub async fn move_warning(&self, m: &WarningMove<'_>) -> Result<(), StoreError> {
        on!(self.pool(), pool => {
            let mut tx = pool
                .begin_with(<DB as Dialect>::BEGIN)
                .await
                .ctx("starting a warning move")?;
            // On PostgreSQL, wait for any batch deciding on the warning's household (as batches
            // wait for each other), so a person's move and the pipeline's update of the same
            // warning never interleave.
            if let Some(household_id) = sqlx::query_scalar::<_, String>(
                "SELECT household_id FROM warnings WHERE warning_id = $1",
            )
            .bind(m.warning_id)
            .fetch_optional(&mut *tx)
            .await
            .ctx("reading a warning")?
            {
                lock_households(Db::from(&mut *tx), &[household_id]).await?;
            }
            let at = now();
            let stamp = match m.to {
                "acknowledged" => "acknowledged_at",
                "visited" => "visited_at",
                "resolved" => "resolved_at",
                other => {
                    return Err(StoreError::Conflict(format!(
                        "unknown warning status {other:?}"
                    )))
                }
            };
            // A visit also acknowledges a warning nobody acknowledged.
            // (A column is set once: PostgreSQL refuses two assignments to one column.)
            let stamp = if stamp == "acknowledged_at" {
                "acknowledged_at = COALESCE(acknowledged_at, $2, $3)".to_string()
            } else {
                format!("{stamp} = $2, acknowledged_at = COALESCE(acknowledged_at, $3)")
            };
            let sql = format!(
                "UPDATE warnings SET status = $1, {stamp},
                     disposition = COALESCE($4, disposition), updated_at = $5
                 WHERE warning_id = $6 AND status = $7"
            );
            let done = sqlx::query(&sql)
                .bind(m.to)
                .bind(&at)
                .bind(&at)
                .bind(&m.disposition)
                .bind(&at)
                .bind(m.warning_id)
                .bind(m.from)
                .execute(&mut *tx)
                .await
                .ctx("moving a warning")?;
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
            .execute(&mut *tx)
            .await
            .ctx("recording a warning move")?;
            crate::audit::append(
                Db::from(&mut *tx),
                m.actor,
                &format!("warning_{}", m.action),
                &format!("warning:{}", m.warning_id),
                &serde_json::json!({"from": m.from, "to": m.to, "note": crate::audit::text_digest(m.note), "disposition": m.disposition}),
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
            let mut tx = pool
                .begin_with(<DB as Dialect>::BEGIN)
                .await
                .ctx("starting to record a refusal")?;
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
            .execute(&mut *tx)
            .await
            .ctx("recording a refused warning move")?;
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
