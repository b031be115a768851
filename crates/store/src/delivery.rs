//! Delivery of notices from the outbox (`notices`): what is pending, in notice order, with what a
//! payload needs; the outcome of each attempt and the delivery log. The store knows nothing of HTTP,
//! signatures or rate limits (that is `doudi-deliver`).

use doudi_model::{Assessment, Level, WarningStatus};
use serde::Serialize;
use sqlx::{QueryBuilder, Row};

use crate::bulk::CHUNK;
use crate::codec::{Typed, Unreadable};
use crate::db::{begin, on, push_list, Dialect, Fetch, Run};
use crate::error::{corrupt, Ctx, StoreError};
use crate::open::Store;
use crate::time::now;

/// A notice still to deliver, with its warning and household as a payload needs them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PendingNotice {
    pub notice_id: i64,
    pub warning_id: i64,
    pub kind: String,
    pub recipient: String,
    pub due_at: String,
    /// When the notice was committed (with the change it announces).
    pub created_at: String,
    pub note: String,
    /// Attempts made so far.
    pub attempts: i64,
    /// Not before this time (RFC 3339, UTC); `None`: due now.
    pub next_attempt_at: Option<String>,
    pub household_id: String,
    pub region_code: String,
    pub level: Level,
    pub score: i64,
    pub warning_status: WarningStatus,
    pub deadline: String,
    pub opened_at: String,
    /// The latest assessment, or why it cannot be read: a notice is still delivered (with its
    /// link) when its warning's stored assessment is unreadable.
    pub summary: Result<Assessment, Unreadable>,
    /// The household record (JSON); `{}` if the household is unknown.
    pub household: String,
    /// Members whose events made the rules fire (member ids), in member-id order.
    pub members_concerned: Vec<String>,
    /// When the hardship happened (the event time of the fact that set the level), if kept.
    pub occurred_at: Option<String>,
    /// That fact arrived long after it happened (a catch-up case).
    pub late: bool,
}

/// How an attempt ended, for the notices it carried.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum AttemptOutcome {
    Delivered,
    /// Try again at `next_attempt_at`.
    Retry {
        next_attempt_at: String,
    },
    /// Given up (attempts exhausted or a refusal no retry can help); the notice stays listed.
    Failed,
}

impl AttemptOutcome {
    pub fn code(&self) -> &'static str {
        match self {
            AttemptOutcome::Delivered => "delivered",
            AttemptOutcome::Retry { .. } => "retry",
            AttemptOutcome::Failed => "failed",
        }
    }
}

/// One delivery attempt to record.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct DeliveryAttempt {
    pub recipient: String,
    pub channel: String,
    pub idempotency_key: String,
    /// The notices carried, in notice order, each with the attempt number this was for it.
    pub notices: Vec<(i64, i64)>,
    pub digest: bool,
    pub at: String,
    pub http_status: Option<i64>,
    /// What went wrong (no URL, no personal data).
    pub error: Option<String>,
    pub elapsed_ms: i64,
    pub outcome: AttemptOutcome,
}

/// One row of the delivery log.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct DeliveryLogRow {
    pub delivery_id: i64,
    pub recipient: String,
    pub channel: String,
    pub idempotency_key: String,
    pub notice_ids: Vec<i64>,
    pub digest: bool,
    pub attempt: i64,
    pub at: String,
    pub http_status: Option<i64>,
    pub error: Option<String>,
    pub elapsed_ms: i64,
    pub outcome: String,
}

/// A notice's delivery state.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct NoticeDelivery {
    pub notice_id: i64,
    pub warning_id: i64,
    pub household_id: String,
    pub recipient: String,
    pub kind: String,
    /// pending, delivered, inbox_only, failed.
    pub delivery: String,
    pub attempts: i64,
    pub created_at: String,
    pub delivered_at: Option<String>,
    pub next_attempt_at: Option<String>,
    pub last_error: Option<String>,
}

impl Store {
    /// Notices still to deliver, in notice order (the order they were committed in), at most
    /// `limit`, due or not (the caller keeps a household's later notices behind one in retry).
    pub async fn pending_notices(&self, limit: i64) -> Result<Vec<PendingNotice>, StoreError> {
        // A superseded notice (its transition vanished when a late record re-derived the household,
        // issue 19) is not sent.
        self.notices_where("n.delivery = 'pending' AND n.superseded_at IS NULL", limit)
            .await
    }

    /// Notices not yet published to the Kafka warnings topic, in notice order, at most `limit`
    /// (independent of webhook delivery).
    pub async fn kafka_unpublished_notices(
        &self,
        limit: i64,
    ) -> Result<Vec<PendingNotice>, StoreError> {
        self.notices_where(
            "n.kafka_published_at IS NULL AND n.superseded_at IS NULL",
            limit,
        )
        .await
    }

    /// Record notices as published to Kafka: `(notice_id, partition, offset)` as the broker
    /// acknowledged them. A notice already marked keeps its first record. Returns how many were
    /// newly marked.
    pub async fn mark_kafka_published(
        &self,
        published: &[(i64, i32, i64)],
    ) -> Result<u64, StoreError> {
        if published.is_empty() {
            return Ok(0);
        }
        let at = now();
        on!(self.pool(), pool => {
            let mut tx = begin(pool, "starting to mark notices published").await?;
            let mut marked = 0;
            for (id, partition, offset) in published {
                marked += sqlx::query(
                    "UPDATE notices SET kafka_published_at = $1, kafka_partition = $2, kafka_offset = $3
                     WHERE notice_id = $4 AND kafka_published_at IS NULL",
                )
                .bind(&at)
                .bind(i64::from(*partition))
                .bind(offset)
                .bind(id)
                .run(&mut *tx, "marking a notice published")
                .await?
                .rows_affected();
            }
            tx.commit().await.ctx("committing published notices")?;
            Ok(marked)
        })
    }

    /// Every notice's Kafka publication: `(notice_id, partition, offset)`, `None` while
    /// unpublished, in notice order.
    pub async fn kafka_publications(&self) -> Result<Vec<(i64, Option<(i32, i64)>)>, StoreError> {
        on!(self.pool(), pool => {
            Ok(sqlx::query(
                "SELECT notice_id, kafka_partition, kafka_offset FROM notices ORDER BY notice_id",
            )
            .all(pool, "reading notice publications")
            .await?
            .into_iter()
            .map(|r| {
                let p: Option<i64> = r.get(1);
                let o: Option<i64> = r.get(2);
                let id: i64 = r.get(0);
                (id, p.zip(o).map(|(p, o)| (p as i32, o)))
            })
            .collect())
        })
    }

    /// Notices matching `filter` (over `n`, the notices), with what a payload needs.
    async fn notices_where(
        &self,
        filter: &'static str,
        limit: i64,
    ) -> Result<Vec<PendingNotice>, StoreError> {
        let sql = format!(
            "SELECT n.notice_id, n.warning_id, n.kind, n.recipient, n.due_at, n.created_at, n.note,
                    n.attempts, n.next_attempt_at, w.household_id, w.region_code, w.level, w.score,
                    w.status, w.deadline, w.opened_at, w.summary, COALESCE(h.record, '{{}}'),
                    w.occurred_at, w.late
             FROM notices n JOIN warnings w ON w.warning_id = n.warning_id
             LEFT JOIN households h ON h.household_id = w.household_id
             WHERE {filter} ORDER BY n.notice_id LIMIT $1"
        );
        on!(self.pool(), pool => {
            let rows = sqlx::query(&sql)
            .bind(limit)
            .all(pool, "reading pending notices")
            .await?;
            let mut out: Vec<PendingNotice> = rows
                .iter()
                .map(|r| Ok(PendingNotice {
                    notice_id: r.get(0),
                    warning_id: r.get(1),
                    kind: r.get(2),
                    recipient: r.get(3),
                    due_at: r.get(4),
                    created_at: r.get(5),
                    note: r.get(6),
                    attempts: r.get(7),
                    next_attempt_at: r.get(8),
                    household_id: r.get(9),
                    region_code: r.get(10),
                    level: r.code(11, "warnings.level")?,
                    score: r.get(12),
                    warning_status: r.code(13, "warnings.status")?,
                    deadline: r.get(14),
                    opened_at: r.get(15),
                    summary: r.json(16, "warnings.summary").map_err(Unreadable::from),
                    household: r.unpacked(17, "households.record")?,
                    occurred_at: r.get(18),
                    late: r.get::<i64, _>(19) != 0,
                    members_concerned: Vec::new(),
                }))
                .collect::<Result<_, StoreError>>()?;
            // Members concerned: those whose events the warning's rules name (the events its
            // assessment's contributions list; the assessment is stored packed, so they are
            // read from it here, not by JSON functions in SQL).
            let mut cache: std::collections::HashMap<i64, Vec<String>> = Default::default();
            for n in &mut out {
                if let Some(m) = cache.get(&n.warning_id) {
                    n.members_concerned = m.clone();
                    continue;
                }
                let mut event_ids: Vec<&str> = match &n.summary {
                    Ok(a) => a
                        .contributions
                        .iter()
                        .flat_map(|c| c.event_ids.iter().map(String::as_str))
                        .collect(),
                    Err(_) => Vec::new(),
                };
                event_ids.sort_unstable();
                event_ids.dedup();
                let mut members: Vec<String> = Vec::new();
                for chunk in event_ids.chunks(CHUNK) {
                    let mut qb: QueryBuilder<DB> = QueryBuilder::new(
                        "SELECT DISTINCT t.member_id FROM timeline t JOIN events e ON e.seq = t.seq
                         WHERE t.household_id = ",
                    );
                    qb.push_bind(n.household_id.as_str());
                    qb.push(" AND e.event_id IN ");
                    push_list(&mut qb, chunk.iter().copied());
                    let found: Vec<String> = qb
                        .build_query_scalar()
                        .all(pool, "reading the members a warning concerns")
                        .await?;
                    members.extend(found);
                }
                members.sort_unstable();
                members.dedup();
                cache.insert(n.warning_id, members.clone());
                n.members_concerned = members;
            }
            Ok(out)
        })
    }

    /// Mark notices as read in the inbox only: their recipient has no delivery channel.
    pub async fn mark_inbox_only(&self, notice_ids: &[i64]) -> Result<(), StoreError> {
        on!(self.pool(), pool => {
            if notice_ids.is_empty() {
                return Ok(());
            }
            let mut tx = begin(pool, "starting to mark notices").await?;
            for id in notice_ids {
                sqlx::query(
                    "UPDATE notices SET delivery = 'inbox_only' WHERE notice_id = $1 AND delivery = 'pending'",
                )
                .bind(id)
                .run(&mut *tx, "marking a notice inbox-only")
                .await?;
            }
            tx.commit().await.ctx("committing inbox-only notices")
        })
    }

    /// Record attempts and move their notices on (delivered, to retry, failed), in one transaction.
    pub async fn record_deliveries(&self, attempts: &[DeliveryAttempt]) -> Result<(), StoreError> {
        on!(self.pool(), pool => {
            if attempts.is_empty() {
                return Ok(());
            }
            let mut tx = begin(pool, "starting to record deliveries").await?;
            for a in attempts {
                let ids: Vec<i64> = a.notices.iter().map(|(id, _)| *id).collect();
                let attempt = a.notices.iter().map(|(_, n)| *n).max().unwrap_or(1);
                let ids_json = serde_json::to_string(&ids).unwrap_or_else(|_| "[]".into());
                sqlx::query(
                    "INSERT INTO deliveries (recipient, channel, idempotency_key, notice_ids, digest, attempt, at,
                                             http_status, error, elapsed_ms, outcome)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
                )
                .bind(&a.recipient)
                .bind(&a.channel)
                .bind(&a.idempotency_key)
                .bind(&ids_json)
                .bind(i64::from(a.digest))
                .bind(attempt)
                .bind(&a.at)
                .bind(a.http_status)
                .bind(&a.error)
                .bind(a.elapsed_ms)
                .bind(a.outcome.code())
                .run(&mut *tx, "logging a delivery")
                .await?;
                for (id, n) in &a.notices {
                    let q = match &a.outcome {
                        AttemptOutcome::Delivered => sqlx::query(
                            "UPDATE notices SET delivery = 'delivered', delivered_at = $1, attempts = $2,
                                    next_attempt_at = NULL, last_error = NULL
                             WHERE notice_id = $3 AND delivery = 'pending'",
                        )
                        .bind(&a.at)
                        .bind(n)
                        .bind(id),
                        AttemptOutcome::Retry { next_attempt_at } => sqlx::query(
                            "UPDATE notices SET next_attempt_at = $1, attempts = $2, last_error = $3
                             WHERE notice_id = $4 AND delivery = 'pending'",
                        )
                        .bind(next_attempt_at)
                        .bind(n)
                        .bind(a.error.as_deref().unwrap_or("refused"))
                        .bind(id),
                        AttemptOutcome::Failed => sqlx::query(
                            "UPDATE notices SET delivery = 'failed', attempts = $1, next_attempt_at = NULL,
                                    last_error = $2
                             WHERE notice_id = $3 AND delivery = 'pending'",
                        )
                        .bind(n)
                        .bind(a.error.as_deref().unwrap_or("refused"))
                        .bind(id),
                    };
                    q.run(&mut *tx, "recording a notice's delivery").await?;
                }
            }
            tx.commit().await.ctx("committing deliveries")
        })
    }

    /// The delivery log, newest first; only attempts carrying `notice_id` if given.
    pub async fn delivery_log(
        &self,
        notice_id: Option<i64>,
        limit: i64,
    ) -> Result<Vec<DeliveryLogRow>, StoreError> {
        on!(self.pool(), pool => {
            let carries = if <DB as Dialect>::POSTGRES {
                "$1::bigint IS NULL OR d.notice_ids::jsonb @> jsonb_build_array($1::bigint)"
            } else {
                "$1 IS NULL OR EXISTS (SELECT 1 FROM json_each(d.notice_ids) j WHERE j.value = $1)"
            };
            let sql = format!(
                "SELECT d.delivery_id, d.recipient, d.channel, d.idempotency_key, d.notice_ids, d.digest,
                        d.attempt, d.at, d.http_status, d.error, d.elapsed_ms, d.outcome
                 FROM deliveries d
                 WHERE {carries}
                 ORDER BY d.delivery_id DESC LIMIT $2"
            );
            let rows = sqlx::query(&sql)
            .bind(notice_id)
            .bind(limit)
            .all(pool, "reading the delivery log")
            .await?;
            rows.into_iter()
                .map(|r| {
                    let ids: String = r.get(4);
                    Ok(DeliveryLogRow {
                        delivery_id: r.get(0),
                        recipient: r.get(1),
                        channel: r.get(2),
                        idempotency_key: r.get(3),
                        notice_ids: serde_json::from_str(&ids)
                            .map_err(|e| corrupt("delivery notice ids", e))?,
                        digest: r.get::<i64, _>(5) != 0,
                        attempt: r.get(6),
                        at: r.get(7),
                        http_status: r.get(8),
                        error: r.get(9),
                        elapsed_ms: r.get(10),
                        outcome: r.get(11),
                    })
                })
                .collect()
        })
    }

    /// Every notice's delivery state, in notice order (at most `limit`, from notice `after` on).
    pub async fn notice_deliveries(
        &self,
        after: i64,
        limit: i64,
    ) -> Result<Vec<NoticeDelivery>, StoreError> {
        on!(self.pool(), pool => {
            sqlx::query_as(
                "SELECT n.notice_id, n.warning_id, w.household_id, n.recipient, n.kind, n.delivery, n.attempts,
                        n.created_at, n.delivered_at, n.next_attempt_at, n.last_error
                 FROM notices n JOIN warnings w ON w.warning_id = n.warning_id
                 WHERE n.notice_id > $1 ORDER BY n.notice_id LIMIT $2",
            )
            .bind(after)
            .bind(limit)
            .all(pool, "reading notice deliveries")
            .await
        })
    }
}
