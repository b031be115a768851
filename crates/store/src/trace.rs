//! Everything the store holds about one household, in order: what an auditor needs to answer
//! "why was this household flagged on that day?" without the database.

use chrono::{DateTime, Utc};
use doudi_model::{Assessment, Evidence, Level, LinkOutcome};
use serde::Serialize;
use sqlx::Row;

use crate::codec::{ser_maybe_time, ser_time, Typed};
use crate::db::{on, Dialect, Fetch};
use crate::error::StoreError;
use crate::open::Store;
use crate::time::ts;

/// One entry of a household's trace.
#[derive(Clone, Debug, Serialize)]
#[serde(tag = "entry", rename_all = "snake_case")]
pub enum TraceEntry {
    /// A version of the register record (import).
    Register {
        #[serde(serialize_with = "ser_time")]
        at: DateTime<Utc>,
        change: String,
        file: String,
        record: Option<serde_json::Value>,
    },
    /// A source record about the household, with where it came from and its identity decision.
    Event {
        seq: i64,
        #[serde(serialize_with = "ser_time")]
        at: DateTime<Utc>,
        #[serde(serialize_with = "ser_time")]
        received_at: DateTime<Utc>,
        source: String,
        event_id: String,
        kind: String,
        stream: String,
        position: i64,
        /// The feed profile that made it from a department's export (`name@version`).
        #[serde(skip_serializing_if = "Option::is_none")]
        profile: Option<String>,
        /// The record as received (lossy UTF-8); empty once removed by retention.
        raw: String,
        /// When retention removed the raw record (`store.raw_retention_days`).
        #[serde(
            skip_serializing_if = "Option::is_none",
            serialize_with = "ser_maybe_time"
        )]
        raw_removed_at: Option<DateTime<Utc>>,
        outcome: LinkOutcome,
        member_id: Option<String>,
        evidence: Evidence,
        /// A person's review decision, when the linker could not decide.
        review: Option<serde_json::Value>,
        /// The linker's earlier decisions on this record, oldest first, when it decided again
        /// after a register change (a record first unmatched, linked once its household was
        /// enrolled).
        #[serde(skip_serializing_if = "Vec::is_empty")]
        earlier_decisions: Vec<EarlierDecision>,
    },
    /// An assessment after a fact.
    Assessment {
        seq: i64,
        #[serde(serialize_with = "ser_time")]
        at: DateTime<Utc>,
        rule_set_version: String,
        score: i64,
        level: Level,
        assessment: Option<Assessment>,
    },
    /// A change to a warning, by the pipeline or a person.
    Warning {
        warning_id: i64,
        #[serde(serialize_with = "ser_time")]
        at: DateTime<Utc>,
        action: String,
        actor: String,
        level: Level,
        score: i64,
        note: Option<String>,
        refused: Option<String>,
    },
    /// A nightly cross-check finding.
    Finding {
        key: String,
        /// The day it was first seen (`YYYY-MM-DD`).
        at: String,
        status: String,
        check: String,
        finding: serde_json::Value,
        close_note: Option<String>,
    },
}

/// An identity decision replaced by a later one (see [`TraceEntry::Event`]).
#[derive(Clone, Debug, Serialize)]
pub struct EarlierDecision {
    pub outcome: LinkOutcome,
    pub decided_at: String,
    /// The register version it was made with, and the one that replaced it.
    pub register_version: i64,
    pub superseded_at: String,
    pub superseded_by_register_version: i64,
    pub evidence: Evidence,
}

impl TraceEntry {
    /// When, as the store writes it (text order is time order; a finding's day sorts before the
    /// times of that day).
    fn at(&self) -> String {
        match self {
            TraceEntry::Register { at, .. }
            | TraceEntry::Event { at, .. }
            | TraceEntry::Assessment { at, .. }
            | TraceEntry::Warning { at, .. } => ts(at),
            TraceEntry::Finding { at, .. } => at.clone(),
        }
    }
}

// The parts of a trace read by household id (`$1`), besides its events.

const REGISTER_HISTORY: &str =
    "SELECT i.imported_at, h.change, i.file, h.after FROM register_history h
     JOIN register_imports i ON i.import_id = h.import_id WHERE h.household_id = $1 ORDER BY h.id";

const EARLIER_DECISIONS: &str =
    "SELECT h.seq, h.outcome, h.decided_at, h.register_version, h.superseded_at,
            h.superseded_by_register_version, h.evidence
     FROM link_history h JOIN timeline t ON t.seq = h.seq
     WHERE t.household_id = $1 ORDER BY h.id";

/// Through the household's timeline (every assessment is of one of its facts: the same `seq`):
/// assessments have no index by household (migration 0018).
const ASSESSMENTS: &str =
    "SELECT a.seq, e.occurred_at, a.rule_set_version, a.score, a.level, a.assessment
     FROM timeline t JOIN assessments a ON a.seq = t.seq JOIN events e ON e.seq = a.seq
     WHERE t.household_id = $1 AND a.household_id = $1 ORDER BY a.seq";

const WARNING_HISTORY: &str =
    "SELECT h.warning_id, h.at, h.action, h.actor, h.level, h.score, h.note, h.refused
     FROM warning_history h JOIN warnings w ON w.warning_id = h.warning_id
     WHERE w.household_id = $1 ORDER BY h.id";

const FINDINGS: &str =
    "SELECT key, first_seen, status, check_code, finding, close_note FROM findings
     WHERE household_id = $1 ORDER BY finding_id";

impl Store {
    /// The household's trace, oldest first (register versions, events with their identity
    /// decisions, assessments, warning changes, findings). Empty if the store knows nothing of it.
    pub async fn trace(&self, household_id: &str) -> Result<Vec<TraceEntry>, StoreError> {
        on!(self.pool(), pool => {
            /// The rows of one part of the trace: `sql` for the household (`$1`).
            async fn part(
                pool: &sqlx::Pool<DB>,
                sql: &str,
                household_id: &str,
                context: &'static str,
            ) -> Result<Vec<<DB as sqlx::Database>::Row>, StoreError> {
                sqlx::query(sql).bind(household_id).all(pool, context).await
            }
            let mut out = Vec::new();
            for r in part(pool, REGISTER_HISTORY, household_id, "tracing register history").await? {
                out.push(TraceEntry::Register {
                    at: r.time(0, "register_imports.imported_at")?,
                    change: r.get(1),
                    file: r.get(2),
                    record: r.maybe_json(3, "register_history.after")?,
                });
            }
            // Events linked to the household (by the linker or by a person), and events sent to review
            // with the household among the candidates are found through the timeline and reviews.
            let json_object = if <DB as Dialect>::POSTGRES {
                "json_build_object"
            } else {
                "json_object"
            };
            let sql = format!(
                "SELECT e.seq, e.occurred_at, e.received_at, e.source, e.event_id, e.kind, e.stream, e.position, e.raw,
                        l.outcome, t.member_id, l.evidence,
                        CASE WHEN rd.seq IS NULL THEN NULL ELSE CAST({json_object}('decision', rd.decision, 'member_id', rd.member_id,
                          'decided_by', rd.decided_by, 'decided_at', rd.decided_at, 'note', rd.note) AS TEXT) END,
                        e.profile, e.normalised, e.raw_removed_at
                 FROM timeline t JOIN events e ON e.seq = t.seq JOIN link_decisions l ON l.seq = t.seq
                 LEFT JOIN review_decisions rd ON rd.seq = t.seq
                 WHERE t.household_id = $1 ORDER BY t.seq"
            );
            let mut earlier: std::collections::HashMap<i64, Vec<EarlierDecision>> =
                std::collections::HashMap::new();
            let context = "tracing earlier identity decisions";
            for r in part(pool, EARLIER_DECISIONS, household_id, context).await? {
                earlier.entry(r.get(0)).or_default().push(EarlierDecision {
                    outcome: r.code(1, "link_history.outcome")?,
                    decided_at: r.get(2),
                    register_version: r.get(3),
                    superseded_at: r.get(4),
                    superseded_by_register_version: r.get(5),
                    evidence: r.json(6, "link_history.evidence")?,
                });
            }
            for r in part(pool, &sql, household_id, "tracing events").await? {
                let seq: i64 = r.get(0);
                // Empty: removed by retention (and marked so), or else the department sent the
                // normalised JSON itself (stored once).
                let raw: Vec<u8> = r.get(8);
                let raw_removed_at = r.maybe_time(15, "events.raw_removed_at")?;
                let raw = if raw.is_empty() && raw_removed_at.is_none() {
                    r.unpacked(14, "events.normalised")?
                } else {
                    String::from_utf8_lossy(&raw).into_owned()
                };
                out.push(TraceEntry::Event {
                    seq,
                    at: r.time(1, "events.occurred_at")?,
                    received_at: r.time(2, "events.received_at")?,
                    source: r.get(3),
                    event_id: r.get(4),
                    kind: r.get(5),
                    stream: r.get(6),
                    position: r.get(7),
                    profile: r.get(13),
                    raw,
                    raw_removed_at,
                    outcome: r.code(9, "link_decisions.outcome")?,
                    member_id: r.get(10),
                    evidence: r.json(11, "link_decisions.evidence")?,
                    review: r.maybe_json(12, "review_decisions")?,
                    earlier_decisions: earlier.remove(&seq).unwrap_or_default(),
                });
            }
            for r in part(pool, ASSESSMENTS, household_id, "tracing assessments").await? {
                out.push(TraceEntry::Assessment {
                    seq: r.get(0),
                    at: r.time(1, "events.occurred_at")?,
                    rule_set_version: r.get(2),
                    score: r.get(3),
                    level: r.code(4, "assessments.level")?,
                    assessment: r.maybe_json(5, "assessments.assessment")?,
                });
            }
            for r in part(pool, WARNING_HISTORY, household_id, "tracing warnings").await? {
                out.push(TraceEntry::Warning {
                    warning_id: r.get(0),
                    at: r.time(1, "warning_history.at")?,
                    action: r.get(2),
                    actor: r.get(3),
                    level: r.code(4, "warning_history.level")?,
                    score: r.get(5),
                    note: r.get(6),
                    refused: r.get(7),
                });
            }
            for r in part(pool, FINDINGS, household_id, "tracing findings").await? {
                out.push(TraceEntry::Finding {
                    key: r.get(0),
                    at: r.get(1),
                    status: r.get(2),
                    check: r.get(3),
                    finding: r.json(4, "findings.finding")?,
                    close_note: r.get(5),
                });
            }
            // Stable: entries of the same moment keep the order above (register, event, assessment,
            // warning, finding).
            out.sort_by_cached_key(TraceEntry::at);
            Ok(out)
        })
    }
}
