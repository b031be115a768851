//! A person's decision on a record the linker sent to review. A record linked by hand then goes on
//! through the pipeline as if the linker had linked it: its fact joins the household's timeline,
//! the household is assessed, and its warning is opened or updated — all in one transaction with
//! the decision itself.

use doudi_model::{parse_event, Fact, Level, ParseLimits};
use doudi_store::{FactRow, ReviewChoice, Store, StoreError};
use serde::Serialize;

use std::collections::HashMap;

use crate::apply::refresh_versions;
use crate::apply::{derive_and_warn, BatchOutcome, Engine, Timeline};
use crate::versions::check_current;
use crate::PipelineError;

/// What a review decision did.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct ReviewApplied {
    pub seq: i64,
    pub decision: &'static str,
    pub household_id: Option<String>,
    pub member_id: Option<String>,
    /// The household's level after the fact (`None` for a rejection).
    pub level: Option<Level>,
    pub score: Option<i64>,
    pub warnings_opened: u64,
    pub warnings_raised: u64,
}

/// Record `choice` on review item `seq` by `decided_by`, and apply a link through the pipeline.
///
/// Refused (nothing written) if the item is not in the queue, was decided already, or the member is
/// not an active member of the register.
pub async fn decide_review(
    store: &Store,
    engine: &Engine,
    seq: i64,
    choice: ReviewChoice,
    decided_by: &str,
    note: &str,
) -> Result<ReviewApplied, PipelineError> {
    let mut tx = store.begin().await?;
    let mut applied = ReviewApplied {
        seq,
        decision: match choice {
            ReviewChoice::Link { .. } => "link",
            ReviewChoice::Reject => "reject",
        },
        ..ReviewApplied::default()
    };
    let choice = match choice {
        ReviewChoice::Link { member_id, .. } => {
            let household_id = tx.member_household(&member_id).await?.ok_or_else(|| {
                StoreError::Conflict(format!(
                    "member {member_id} is not an active member of the register (the candidates are in `doudi review show {seq}`)"
                ))
            })?;
            ReviewChoice::Link {
                household_id,
                member_id,
            }
        }
        ReviewChoice::Reject => ReviewChoice::Reject,
    };
    // The household first (before the review's audit record), as a batch takes them.
    if let ReviewChoice::Link { household_id, .. } = &choice {
        tx.lock_households(std::slice::from_ref(household_id))
            .await?;
    }
    tx.record_review(seq, &choice, decided_by, note).await?;
    if let ReviewChoice::Link {
        household_id,
        member_id,
    } = choice
    {
        let text = tx
            .event_at(seq)
            .await?
            .ok_or_else(|| StoreError::Conflict(format!("event #{seq} is not in the store")))?;
        let limits = ParseLimits::STORED;
        let event = parse_event(text.as_bytes(), &limits).map_err(|e| StoreError::Corrupt {
            context: "stored event",
            message: e.to_string(),
        })?;
        let facts = [FactRow {
            event_seq: seq,
            fact: Fact {
                event_id: event.event_id,
                source: event.source,
                household_id: household_id.clone(),
                member_id: member_id.clone(),
                occurred_at: event.occurred_at,
                payload: event.payload,
            },
        }];
        let affected = [household_id.clone()];
        // The fact joins the timeline where it happened (usually long before the facts since):
        // the household is re-derived from it on (issue 19).
        tx.insert_facts(&facts).await?;
        // Under the lock activations take (the facts' append took it): the versions are current.
        let versions = refresh_versions(&mut tx, engine).await?;
        let mut timelines: HashMap<String, Timeline> = HashMap::new();
        for (hh, entries) in tx.timeline_entries(&affected).await? {
            timelines.insert(hh, Timeline::from_entries(entries, &versions));
        }
        let mut from = HashMap::new();
        if let Some(t) = timelines.get(&household_id) {
            from.insert(household_id.clone(), t.position_of(seq));
        }
        let mut out = BatchOutcome::default();
        derive_and_warn(&mut tx, engine, &versions, &mut timelines, &from, &mut out).await?;
        check_current(&mut tx, &versions).await?;
        let assessed = timelines
            .get(&household_id)
            .and_then(|t| t.assessed_of(seq));
        applied.level = assessed.map(|a| a.0);
        applied.score = assessed.map(|a| a.1);
        applied.warnings_opened = out.warnings_opened;
        applied.warnings_raised = out.warnings_raised;
        applied.household_id = Some(household_id);
        applied.member_id = Some(member_id);
    }
    tx.commit().await?;
    Ok(applied)
}
