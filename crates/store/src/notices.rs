//! Notices to people (the officer inbox and the delivery outbox), the escalation state of warnings,
//! and silences.

use chrono::{DateTime, Utc};
use doudi_model::{Level, WarningStatus};
use serde::Serialize;
use sqlx::Row;

use crate::codec::{ser_maybe_time, ser_time, Typed};
use crate::db::{begin, on, Conn, Db, Fetch, Run};
use crate::error::{Ctx, StoreError};
use crate::open::Store;
use crate::time::{now, ts};

/// What escalation needs of an active warning.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct WarningClockRow {
    pub warning_id: i64,
    pub household_id: String,
    pub region_code: String,
    pub status: WarningStatus,
    pub level: Level,
    #[serde(serialize_with = "ser_time")]
    pub opened_at: DateTime<Utc>,
    #[serde(serialize_with = "ser_time")]
    pub deadline: DateTime<Utc>,
    pub assigned_to: Option<String>,
    pub ack_steps: i64,
    pub resolve_escalated: bool,
    #[serde(serialize_with = "ser_maybe_time")]
    pub last_notice_at: Option<DateTime<Utc>>,
    /// The end of the latest silence covering the warning's household or region at the time asked.
    #[serde(serialize_with = "ser_maybe_time")]
    pub silenced_until: Option<DateTime<Utc>>,
}

/// A notice to record.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct NoticeRow {
    pub warning_id: i64,
    pub kind: String,
    pub recipient: String,
    #[serde(serialize_with = "ser_time")]
    pub due_at: DateTime<Utc>,
    pub note: String,
}

/// One warning's escalation step, decided from the state it expects to find.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EscalationUpdate {
    pub warning_id: i64,
    pub expected_status: WarningStatus,
    pub expected_ack_steps: i64,
    pub expected_resolve_escalated: bool,
    pub ack_steps: i64,
    pub resolve_escalated: bool,
    pub last_notice_at: DateTime<Utc>,
    pub notices: Vec<NoticeRow>,
}

/// A notice as the inbox shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct NoticeView {
    pub notice_id: i64,
    pub warning_id: i64,
    pub kind: String,
    pub recipient: String,
    #[serde(serialize_with = "ser_time")]
    pub due_at: DateTime<Utc>,
    #[serde(serialize_with = "ser_time")]
    pub created_at: DateTime<Utc>,
    pub note: String,
    pub level: Level,
    pub household_id: String,
    #[serde(serialize_with = "ser_time")]
    pub deadline: DateTime<Utc>,
}

/// A silence.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct SilenceRow {
    pub silence_id: i64,
    pub scope: String,
    pub target: String,
    pub reason: String,
    pub starts_at: String,
    pub ends_at: String,
    pub created_by: String,
    pub created_at: String,
}

/// A silence covering the household or region of warning `w` at time `?1`.
const SILENCE_OF: &str =
    "(SELECT MAX(s.ends_at) FROM silences s WHERE s.starts_at <= $1 AND s.ends_at > $1
      AND ((s.scope = 'household' AND s.target = w.household_id)
        OR (s.scope = 'region' AND substr(w.region_code, 1, length(s.target)) = s.target)))";

impl Store {
    /// Active (not resolved) warnings with their escalation state, as of `at` for silences.
    pub async fn warning_clocks(
        &self,
        at: DateTime<Utc>,
    ) -> Result<Vec<WarningClockRow>, StoreError> {
        on!(self.pool(), pool => {
            let sql = format!(
                "SELECT w.warning_id, w.household_id, w.region_code, w.status, w.level, w.opened_at, w.deadline,
                        w.assigned_to, w.ack_steps, w.resolve_escalated, w.last_notice_at, {SILENCE_OF}
                 FROM warnings w WHERE w.status NOT IN ('resolved', 'withdrawn') ORDER BY w.warning_id"
            );
            sqlx::query(&sql)
                .bind(ts(&at))
                .all(pool, "reading warning clocks")
                .await?
                .iter()
                .map(|r| {
                    Ok(WarningClockRow {
                        warning_id: r.get(0),
                        household_id: r.get(1),
                        region_code: r.get(2),
                        status: r.code(3, "warnings.status")?,
                        level: r.code(4, "warnings.level")?,
                        opened_at: r.time(5, "warnings.opened_at")?,
                        deadline: r.time(6, "warnings.deadline")?,
                        assigned_to: r.get(7),
                        ack_steps: r.get(8),
                        resolve_escalated: r.get::<i64, _>(9) != 0,
                        last_notice_at: r.maybe_time(10, "warnings.last_notice_at")?,
                        silenced_until: r.maybe_time(11, "silences.ends_at")?,
                    })
                })
                .collect()
        })
    }

    /// Record escalation steps: each update moves one warning from the escalation state it was
    /// decided on to a new one, with its notices and a history entry per notice. All in one
    /// transaction, and each as a compare-and-set: an update whose warning moved meanwhile (an
    /// acknowledgement, another tick) is skipped with its notices, so nothing escalates twice or
    /// after an acknowledgement. Returns the notices recorded.
    pub async fn record_escalations(
        &self,
        updates: &[EscalationUpdate],
    ) -> Result<Vec<NoticeRow>, StoreError> {
        on!(self.pool(), pool => {
            let mut tx = begin(pool, "starting to record escalations").await?;
            let at = now();
            let mut recorded = Vec::new();
            for u in updates {
                let moved = sqlx::query(
                    "UPDATE warnings SET ack_steps = $1, resolve_escalated = $2, last_notice_at = $3
                     WHERE warning_id = $4 AND status = $5 AND ack_steps = $6 AND resolve_escalated = $7",
                )
                .bind(u.ack_steps)
                .bind(i64::from(u.resolve_escalated))
                .bind(ts(&u.last_notice_at))
                .bind(u.warning_id)
                .bind(u.expected_status.code())
                .bind(u.expected_ack_steps)
                .bind(i64::from(u.expected_resolve_escalated))
                .run(&mut *tx, "recording escalation state")
                .await?;
                if moved.rows_affected() != 1 {
                    continue;
                }
                for n in &u.notices {
                    insert_notice(Db::from(&mut *tx), n, &at).await?;
                    recorded.push(n.clone());
                }
            }
            if !recorded.is_empty() {
                crate::audit::append(
                    Db::from(&mut *tx),
                    "doudi",
                    "notices",
                    "warnings",
                    &serde_json::json!({"notices": recorded.iter().map(|n| serde_json::json!({"warning_id": n.warning_id, "kind": n.kind, "recipient": n.recipient})).collect::<Vec<_>>()}),
                )
                .await?;
            }
            tx.commit().await.ctx("committing escalations")?;
            Ok(recorded)
        })
    }

    /// Record notices as they are (a message to officers outside the escalation schedule), with a
    /// history entry each, in one transaction.
    pub async fn add_notices(&self, notices: &[NoticeRow]) -> Result<(), StoreError> {
        on!(self.pool(), pool => {
            let mut tx = begin(pool, "starting to record notices").await?;
            let at = now();
            for n in notices {
                insert_notice(Db::from(&mut *tx), n, &at).await?;
            }
            tx.commit().await.ctx("committing notices")
        })
    }

    /// An officer's inbox: notices addressed to them, newest first.
    pub async fn inbox(&self, officer: &str, limit: i64) -> Result<Vec<NoticeView>, StoreError> {
        on!(self.pool(), pool => {
            sqlx::query(
                "SELECT n.notice_id, n.warning_id, n.kind, n.recipient, n.due_at, n.created_at, n.note,
                        w.level, w.household_id, w.deadline
                 FROM notices n JOIN warnings w ON w.warning_id = n.warning_id
                 WHERE n.recipient = $1 ORDER BY n.notice_id DESC LIMIT $2",
            )
            .bind(officer)
            .bind(limit)
            .all(pool, "reading an inbox")
            .await?
            .iter()
            .map(|r| {
                Ok(NoticeView {
                    notice_id: r.get(0),
                    warning_id: r.get(1),
                    kind: r.get(2),
                    recipient: r.get(3),
                    due_at: r.time(4, "notices.due_at")?,
                    created_at: r.time(5, "notices.created_at")?,
                    note: r.get(6),
                    level: r.code(7, "warnings.level")?,
                    household_id: r.get(8),
                    deadline: r.time(9, "warnings.deadline")?,
                })
            })
            .collect()
        })
    }

    /// Add a silence; returns its id.
    pub async fn add_silence(
        &self,
        scope: &str,
        target: &str,
        reason: &str,
        starts_at: &str,
        ends_at: &str,
        created_by: &str,
    ) -> Result<i64, StoreError> {
        // Silences are compared as text (`starts_at <= $1 AND ends_at > $1`): that is time order
        // only for times written as the store writes them (four-digit year, UTC, six decimals).
        for (t, what) in [(starts_at, "start"), (ends_at, "end")] {
            if !crate::time::is_canonical(t) {
                return Err(StoreError::Conflict(format!(
                    "a silence's {what} {t:?} is not a time as the store writes it (RFC 3339 in UTC with a four-digit year, e.g. 2026-03-01T00:00:00.000000Z)"
                )));
            }
        }
        on!(self.pool(), pool => {
            let mut tx = begin(pool, "starting to add a silence").await?;
            let id: i64 = sqlx::query_scalar(
                "INSERT INTO silences (scope, target, reason, starts_at, ends_at, created_by, created_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING silence_id",
            )
            .bind(scope)
            .bind(target)
            .bind(reason)
            .bind(starts_at)
            .bind(ends_at)
            .bind(created_by)
            .bind(now())
            .one(&mut *tx, "adding a silence")
            .await?;
            crate::audit::append(
                Db::from(&mut *tx),
                created_by,
                "silence_added",
                &format!("{scope}:{target}"),
                &serde_json::json!({"silence_id": id, "reason": crate::audit::text_digest(reason), "starts_at": starts_at, "ends_at": ends_at}),
            )
            .await?;
            tx.commit().await.ctx("committing a silence")?;
            Ok(id)
        })
    }

    /// The region code of a household of the register (active or not).
    pub async fn household_region(&self, household_id: &str) -> Result<Option<String>, StoreError> {
        on!(self.pool(), pool => {
            sqlx::query_scalar("SELECT region_code FROM households WHERE household_id = $1")
                .bind(household_id)
                .optional(pool, "reading a household's region")
                .await
        })
    }

    /// Every silence, newest first.
    pub async fn silences(&self) -> Result<Vec<SilenceRow>, StoreError> {
        on!(self.pool(), pool => {
            sqlx::query_as(
                "SELECT silence_id, scope, target, reason, starts_at, ends_at, created_by, created_at
                 FROM silences ORDER BY silence_id DESC",
            )
            .all(pool, "listing silences")
            .await
        })
    }
}

/// A notice and its history entry.
async fn insert_notice(conn: Conn<'_>, n: &NoticeRow, at: &str) -> Result<(), StoreError> {
    on!(conn, conn => {
        sqlx::query(
            "INSERT INTO notices (warning_id, kind, recipient, due_at, created_at, note) VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(n.warning_id)
        .bind(&n.kind)
        .bind(&n.recipient)
        .bind(ts(&n.due_at))
        .bind(at)
        .bind(&n.note)
        .run(&mut *conn, "recording a notice")
        .await?;
        sqlx::query(
            "INSERT INTO warning_history (warning_id, action, level, score, actor, at, note)
             SELECT warning_id, $1, level, score, 'doudi', $2, $3 FROM warnings WHERE warning_id = $4",
        )
        .bind(&n.kind)
        .bind(ts(&n.due_at))
        .bind(format!("to {}: {}", n.recipient, n.note))
        .bind(n.warning_id)
        .run(&mut *conn, "recording a notice in the history")
        .await?;
    });
    Ok(())
}
