//! Everything the store holds about one household, in order: what an auditor needs to answer
//! "why was this household flagged on that day?" without the database.

use serde::Serialize;
use sqlx::Row;

use crate::db::{on, Dialect};
use crate::error::{corrupt, Ctx, StoreError};
use crate::open::Store;

/// One entry of a household's trace.
#[derive(Clone, Debug, Serialize)]
#[serde(tag = "entry", rename_all = "snake_case")]
pub enum TraceEntry {
    /// A version of the register record (import).
    Register {
        at: String,
        change: String,
        file: String,
        record: Option<serde_json::Value>,
    },
    /// A source record about the household, with where it came from and its identity decision.
    Event {
        seq: i64,
        at: String,
        received_at: String,
        source: String,
        event_id: String,
        kind: String,
        stream: String,
        position: i64,
        /// The record as received (lossy UTF-8).
        raw: String,
        outcome: String,
        member_id: Option<String>,
        evidence: serde_json::Value,
        /// A person's review decision, when the linker could not decide.
        review: Option<serde_json::Value>,
    },
    /// An assessment after a fact.
    Assessment {
        seq: i64,
        at: String,
        rule_set_version: String,
        score: i64,
        level: String,
        assessment: Option<serde_json::Value>,
    },
    /// A change to a warning, by the pipeline or a person.
    Warning {
        warning_id: i64,
        at: String,
        action: String,
        actor: String,
        level: String,
        score: i64,
        note: Option<String>,
        refused: Option<String>,
    },
    /// A nightly cross-check finding.
    Finding {
        key: String,
        at: String,
        status: String,
        check: String,
        finding: serde_json::Value,
        close_note: Option<String>,
    },
}

impl TraceEntry {
    fn at(&self) -> &str {
        match self {
            TraceEntry::Register { at, .. }
            | TraceEntry::Event { at, .. }
            | TraceEntry::Assessment { at, .. }
            | TraceEntry::Warning { at, .. }
            | TraceEntry::Finding { at, .. } => at,
        }
    }
}

fn json(text: Option<String>, what: &'static str) -> Result<Option<serde_json::Value>, StoreError> {
    text.map(|t| serde_json::from_str(&t).map_err(|e| corrupt(what, e)))
        .transpose()
}

impl Store {
    /// The household's trace, oldest first (register versions, events with their identity
    /// decisions, assessments, warning changes, findings). Empty if the store knows nothing of it.
    pub async fn trace(&self, household_id: &str) -> Result<Vec<TraceEntry>, StoreError> {
        on!(self.pool(), pool => {
            let mut out = Vec::new();
            for r in sqlx::query(
                "SELECT i.imported_at, h.change, i.file, h.after FROM register_history h
                 JOIN register_imports i ON i.import_id = h.import_id WHERE h.household_id = $1 ORDER BY h.id",
            )
            .bind(household_id)
            .fetch_all(pool)
            .await
            .ctx("tracing register history")?
            {
                out.push(TraceEntry::Register {
                    at: r.get(0),
                    change: r.get(1),
                    file: r.get(2),
                    record: json(r.get(3), "register history")?,
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
                          'decided_by', rd.decided_by, 'decided_at', rd.decided_at, 'note', rd.note) AS TEXT) END
                 FROM timeline t JOIN events e ON e.seq = t.seq JOIN link_decisions l ON l.seq = t.seq
                 LEFT JOIN review_decisions rd ON rd.seq = t.seq
                 WHERE t.household_id = $1 ORDER BY t.seq"
            );
            for r in sqlx::query(&sql)
            .bind(household_id)
            .fetch_all(pool)
            .await
            .ctx("tracing events")?
            {
                let raw: Vec<u8> = r.get(8);
                out.push(TraceEntry::Event {
                    seq: r.get(0),
                    at: r.get(1),
                    received_at: r.get(2),
                    source: r.get(3),
                    event_id: r.get(4),
                    kind: r.get(5),
                    stream: r.get(6),
                    position: r.get(7),
                    raw: String::from_utf8_lossy(&raw).into_owned(),
                    outcome: r.get(9),
                    member_id: r.get(10),
                    evidence: json(r.get(11), "link evidence")?.unwrap_or_default(),
                    review: json(r.get(12), "review decision")?,
                });
            }
            for r in sqlx::query(
                "SELECT a.seq, e.occurred_at, a.rule_set_version, a.score, a.level, a.assessment
                 FROM assessments a JOIN events e ON e.seq = a.seq WHERE a.household_id = $1 ORDER BY a.seq",
            )
            .bind(household_id)
            .fetch_all(pool)
            .await
            .ctx("tracing assessments")?
            {
                out.push(TraceEntry::Assessment {
                    seq: r.get(0),
                    at: r.get(1),
                    rule_set_version: r.get(2),
                    score: r.get(3),
                    level: r.get(4),
                    assessment: json(r.get(5), "assessment")?,
                });
            }
            for r in sqlx::query(
                "SELECT h.warning_id, h.at, h.action, h.actor, h.level, h.score, h.note, h.refused
                 FROM warning_history h JOIN warnings w ON w.warning_id = h.warning_id
                 WHERE w.household_id = $1 ORDER BY h.id",
            )
            .bind(household_id)
            .fetch_all(pool)
            .await
            .ctx("tracing warnings")?
            {
                out.push(TraceEntry::Warning {
                    warning_id: r.get(0),
                    at: r.get(1),
                    action: r.get(2),
                    actor: r.get(3),
                    level: r.get(4),
                    score: r.get(5),
                    note: r.get(6),
                    refused: r.get(7),
                });
            }
            for r in sqlx::query(
                "SELECT key, first_seen, status, check_code, finding, close_note FROM findings
                 WHERE household_id = $1 ORDER BY finding_id",
            )
            .bind(household_id)
            .fetch_all(pool)
            .await
            .ctx("tracing findings")?
            {
                out.push(TraceEntry::Finding {
                    key: r.get(0),
                    at: r.get(1),
                    status: r.get(2),
                    check: r.get(3),
                    finding: json(r.get(4), "finding")?.unwrap_or_default(),
                    close_note: r.get(5),
                });
            }
            // Stable: entries of the same moment keep the order above (register, event, assessment,
            // warning, finding).
            out.sort_by(|a, b| a.at().cmp(b.at()));
            Ok(out)
        })
    }
}
