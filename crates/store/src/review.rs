//! The identity review queue (events the linker could not decide alone), a person's decisions on
//! them, and the linkage models the pipeline links with.

use chrono::{DateTime, Utc};
use doudi_model::{Evidence, LinkOutcome};
use serde::Serialize;

use crate::activations::{insert_activation, ActivationKind, ActivationRow};
use crate::batch::BatchTx;
use crate::codec::{decode_code, ser_time, Typed};
use crate::db::{begin, on, Col, Conn, Db, Fetch, Run};
use crate::error::{Ctx, StoreError};
use crate::locks::lock_timeline_counter;
use crate::open::Store;
use crate::pack::{unpack_stored, Stored};
use crate::time::now;

/// An event waiting in (or taken out of) the review queue.
#[derive(Clone, Debug, Serialize)]
pub struct ReviewItem {
    /// The event's `seq`: what `doudi review decide` takes.
    pub seq: i64,
    pub source: String,
    pub event_id: String,
    pub kind: String,
    #[serde(serialize_with = "ser_time")]
    pub occurred_at: DateTime<Utc>,
    /// When the linker sent it to review.
    #[serde(serialize_with = "ser_time")]
    pub queued_at: DateTime<Utc>,
    /// The linker's evidence: candidates, comparisons, weights.
    pub evidence: Evidence,
    /// A person's decision, once made.
    pub decision: Option<ReviewDecisionView>,
}

/// A person's decision on a review item.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct ReviewDecisionView {
    pub decision: String,
    pub household_id: Option<String>,
    pub member_id: Option<String>,
    pub decided_by: String,
    #[serde(serialize_with = "ser_time")]
    pub decided_at: DateTime<Utc>,
    pub note: String,
}

/// What a person decided.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ReviewChoice {
    /// The record is about this member of this household.
    Link {
        household_id: String,
        member_id: String,
    },
    /// The record is about nobody in the register (or cannot be told).
    Reject,
}

/// The identity decision stored for an event.
#[derive(Clone, Debug, Serialize)]
pub struct LinkDecisionView {
    pub seq: i64,
    pub source: String,
    pub event_id: String,
    pub outcome: LinkOutcome,
    pub household_id: Option<String>,
    pub member_id: Option<String>,
    pub evidence: Evidence,
    #[serde(serialize_with = "ser_time")]
    pub decided_at: DateTime<Utc>,
}

/// A stored linkage model.
#[derive(Clone, Debug, PartialEq, Eq, sqlx::FromRow)]
pub struct StoredModel {
    pub version: String,
    pub model: String,
    pub trained_on: i64,
    pub trained_at: String,
}

const REVIEW_COLUMNS: &str =
    "SELECT l.seq, e.source, e.event_id, e.kind, e.occurred_at, COALESCE(l.decided_at, e.received_at), l.evidence,
        r.decision, r.household_id, r.member_id, r.decided_by, r.decided_at, r.note
     FROM link_decisions l JOIN events e ON e.seq = l.seq
     LEFT JOIN review_decisions r ON r.seq = l.seq";

fn review_item(r: &impl Col) -> Result<ReviewItem, StoreError> {
    let decision: Option<String> = r.col(7);
    Ok(ReviewItem {
        seq: r.col(0),
        source: r.col(1),
        event_id: r.col(2),
        kind: r.col(3),
        occurred_at: r.time(4, "events.occurred_at")?,
        queued_at: r.time(5, "link_decisions.decided_at")?,
        evidence: r.json(6, "link_decisions.evidence")?,
        decision: decision
            .map(|decision| review_decision(r, decision, 8))
            .transpose()?,
    })
}

/// A decision from a row whose columns from `at` are `household_id, member_id, decided_by,
/// decided_at, note` of `review_decisions`.
fn review_decision(
    r: &impl Col,
    decision: String,
    at: usize,
) -> Result<ReviewDecisionView, StoreError> {
    Ok(ReviewDecisionView {
        decision,
        household_id: r.col(at),
        member_id: r.col(at + 1),
        decided_by: r.col(at + 2),
        decided_at: r.time(at + 3, "review_decisions.decided_at")?,
        note: r.col(at + 4),
    })
}

impl Store {
    /// Events waiting for a person's decision, oldest first, at most `limit`.
    pub async fn pending_reviews(&self, limit: i64) -> Result<Vec<ReviewItem>, StoreError> {
        on!(self.pool(), pool => {
            let sql = format!(
                "{REVIEW_COLUMNS} WHERE l.outcome = 'review' AND r.seq IS NULL ORDER BY l.seq LIMIT $1"
            );
            sqlx::query(&sql)
                .bind(limit)
                .all(pool, "listing the review queue")
                .await?
                .into_iter()
                .map(|r| review_item(&r))
                .collect()
        })
    }

    /// How many events wait for review.
    pub async fn pending_review_count(&self) -> Result<i64, StoreError> {
        on!(self.pool(), pool => {
            sqlx::query_scalar(
                "SELECT COUNT(*) FROM link_decisions l WHERE l.outcome = 'review'
                 AND NOT EXISTS (SELECT 1 FROM review_decisions r WHERE r.seq = l.seq)",
            )
            .one(pool, "counting the review queue")
            .await
        })
    }

    /// One event that went to review (decided or not); `None` if no such review item.
    pub async fn review_item(&self, seq: i64) -> Result<Option<ReviewItem>, StoreError> {
        on!(self.pool(), pool => {
            let sql = format!("{REVIEW_COLUMNS} WHERE l.seq = $1 AND l.outcome = 'review'");
            sqlx::query(&sql)
                .bind(seq)
                .optional(pool, "reading a review item")
                .await?
                .map(|r| review_item(&r))
                .transpose()
        })
    }

    /// The identity decision of the event at `seq`, if it has one.
    pub async fn link_decision(&self, seq: i64) -> Result<Option<LinkDecisionView>, StoreError> {
        on!(self.pool(), pool => {
            sqlx::query(
                "SELECT l.seq, e.source, e.event_id, l.outcome, l.household_id, l.member_id, l.evidence,
                        COALESCE(l.decided_at, e.received_at)
                 FROM link_decisions l JOIN events e ON e.seq = l.seq WHERE l.seq = $1",
            )
            .bind(seq)
            .optional(pool, "reading an identity decision")
            .await?
            .map(|r| {
                Ok(LinkDecisionView {
                    seq: r.col(0),
                    source: r.col(1),
                    event_id: r.col(2),
                    outcome: r.code(3, "link_decisions.outcome")?,
                    household_id: r.col(4),
                    member_id: r.col(5),
                    evidence: r.json(6, "link_decisions.evidence")?,
                    decided_at: r.time(7, "link_decisions.decided_at")?,
                })
            })
            .transpose()
        })
    }

    /// Every decided review: the event (normalised JSON), the decision, the member chosen and the
    /// linker's evidence (its candidates) — labelled pairs for training the identity model.
    pub async fn decided_reviews(
        &self,
    ) -> Result<Vec<(String, ReviewDecisionView, Evidence)>, StoreError> {
        on!(self.pool(), pool => {
            sqlx::query(
                "SELECT e.normalised, r.decision, r.household_id, r.member_id, r.decided_by, r.decided_at, r.note, l.evidence
                 FROM review_decisions r JOIN events e ON e.seq = r.seq JOIN link_decisions l ON l.seq = r.seq
                 ORDER BY r.seq",
            )
            .all(pool, "reading decided reviews")
            .await?
            .into_iter()
            .map(|r| {
                Ok((
                    r.unpacked(0, "events.normalised")?,
                    review_decision(&r, r.col(1), 2)?,
                    r.json(7, "link_decisions.evidence")?,
                ))
            })
            .collect()
        })
    }

    /// The active linkage model, if one was stored.
    pub async fn active_linkage_model(&self) -> Result<Option<StoredModel>, StoreError> {
        on!(self.pool(), pool => {
            sqlx::query_as(
                "SELECT version, model, trained_on, trained_at FROM linkage_models WHERE active = 1",
            )
            .optional(pool, "reading the active linkage model")
            .await
        })
    }

    /// Store a linkage model and make it the active one (a model already stored under the same
    /// version is kept as it was and made active), with its activation at the streams' committed
    /// positions (see [`Store::activate`]), in one transaction.
    pub async fn activate_linkage_model(
        &self,
        version: &str,
        model: &str,
        trained_on: i64,
        who: &str,
    ) -> Result<ActivationRow, StoreError> {
        on!(self.pool(), pool => {
            let mut tx = begin(pool, "starting to store a linkage model").await?;
            // One activation at a time on PostgreSQL (two workers starting on a new database
            // both store the default model): without it, each finds no active model to
            // deactivate and the second insert breaks `linkage_models_one_active`. The timeline
            // counter's row is the lock the audit append below takes first anyway (crate docs).
            lock_timeline_counter(Db::from(&mut *tx), "waiting to store a linkage model").await?;
            sqlx::query("UPDATE linkage_models SET active = 0 WHERE active = 1")
                .run(&mut *tx, "deactivating the previous linkage model")
                .await?;
            sqlx::query(
                "INSERT INTO linkage_models (version, model, trained_on, trained_at, active) VALUES ($1, $2, $3, $4, 1)
                 ON CONFLICT(version) DO UPDATE SET active = 1",
            )
            .bind(version)
            .bind(model)
            .bind(trained_on)
            .bind(now())
            .run(&mut *tx, "storing a linkage model")
            .await?;
            crate::audit::append(
                Db::from(&mut *tx),
                who,
                "linkage_model_activated",
                &format!("model:{version}"),
                &serde_json::json!({"trained_on": trained_on}),
            )
            .await?;
            let (activation, _) = insert_activation(
                Db::from(&mut *tx),
                ActivationKind::Model,
                version,
                version,
                who,
                false,
            )
            .await?;
            tx.commit().await.ctx("committing a linkage model")?;
            Ok(activation)
        })
    }
}

/// See [`Store::member_household`].
async fn member_household(conn: Conn<'_>, member_id: &str) -> Result<Option<String>, StoreError> {
    on!(conn, c => {
        sqlx::query_scalar("SELECT household_id FROM members WHERE member_id = $1 AND active = 1")
            .bind(member_id)
            .optional(&mut *c, "looking up a register member")
            .await
    })
}

impl Store {
    /// The household of an active register member; `None` if there is no such active member.
    pub async fn member_household(&self, member_id: &str) -> Result<Option<String>, StoreError> {
        on!(self.pool(), p => {
            let mut conn = p.acquire().await.ctx("looking up a register member")?;
            member_household(Db::from(&mut *conn), member_id).await
        })
    }
}

impl BatchTx {
    /// Record a person's decision on a review item. Fails with [`StoreError::Conflict`] if the
    /// event is not in the review queue or was decided already.
    pub async fn record_review(
        &mut self,
        seq: i64,
        choice: &ReviewChoice,
        decided_by: &str,
        note: &str,
    ) -> Result<(), StoreError> {
        on!(self.conn(), c => {
            let state: Option<(String, Option<i64>)> = sqlx::query_as(
                "SELECT l.outcome, r.seq FROM link_decisions l LEFT JOIN review_decisions r ON r.seq = l.seq WHERE l.seq = $1",
            )
            .bind(seq)
            .optional(&mut *c, "reading a review item")
            .await?;
            match state {
                None => {
                    return Err(StoreError::Conflict(format!(
                        "event #{seq} has no identity decision (see `doudi review list`)"
                    )))
                }
                Some((outcome, _)) if decode_code::<LinkOutcome>(&outcome, "link_decisions.outcome")? != LinkOutcome::Review => {
                    return Err(StoreError::Conflict(format!(
                        "event #{seq} was {outcome} by the linker, not sent to review"
                    )))
                }
                Some((_, Some(_))) => {
                    return Err(StoreError::Conflict(format!(
                        "event #{seq} was decided already (see `doudi review show {seq}`)"
                    )))
                }
                Some(_) => {}
            }
            let (decision, household, member) = match choice {
                ReviewChoice::Link {
                    household_id,
                    member_id,
                } => (
                    "link",
                    Some(household_id.as_str()),
                    Some(member_id.as_str()),
                ),
                ReviewChoice::Reject => ("reject", None, None),
            };
            sqlx::query(
                "INSERT INTO review_decisions (seq, decision, household_id, member_id, decided_by, decided_at, note)
                 VALUES ($1, $2, $3, $4, $5, $6, $7)",
            )
            .bind(seq)
            .bind(decision)
            .bind(household)
            .bind(member)
            .bind(decided_by)
            .bind(now())
            .bind(note)
            .run(&mut *c, "recording a review decision")
            .await?;
            crate::audit::append(
                Db::from(&mut *c),
                decided_by,
                "review_decided",
                &format!("event:{seq}"),
                &serde_json::json!({"decision": decision, "household_id": household, "member_id": member, "note": crate::audit::text_digest(note)}),
            )
            .await?;
            Ok(())
        })
    }

    /// The household of an active register member; `None` if there is no such active member.
    pub async fn member_household(
        &mut self,
        member_id: &str,
    ) -> Result<Option<String>, StoreError> {
        member_household(self.conn(), member_id).await
    }

    /// The normalised event stored at `seq`.
    pub async fn event_at(&mut self, seq: i64) -> Result<Option<String>, StoreError> {
        on!(self.conn(), c => {
            let stored: Option<Stored> = sqlx::query_scalar("SELECT normalised FROM events WHERE seq = $1")
                .bind(seq)
                .optional(&mut *c, "reading an event")
                .await?;
            stored.map(|t| unpack_stored(&t.0, "events.normalised").map(std::borrow::Cow::into_owned))
                .transpose()
        })
    }
}
