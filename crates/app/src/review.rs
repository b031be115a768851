//! A person's decision on a record the linker sent to review: link it to a member (it then goes
//! on through the pipeline at once: timeline, assessment, warning) or reject it. A regional role
//! decides the records with a candidate household in its region and links only to one of those
//! candidates; the operator on the server may link to any active member of the register.

use doudi_model::Evidence;
use doudi_pipeline::ReviewApplied;
use doudi_store::{ReviewChoice, ReviewItem, Store};

use crate::engine::{assessor_for, EngineSettings};
use crate::error::AppError;
use crate::who::Who;

/// A candidate of a review item: household, member, and the household's region.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Candidate {
    pub household_id: String,
    pub member_id: String,
    pub region: String,
}

/// The candidates of `evidence` whose household is in the register, with its region.
pub async fn candidates(store: &Store, evidence: &Evidence) -> Result<Vec<Candidate>, AppError> {
    let mut out = Vec::new();
    for (hh, m) in evidence.candidate_members() {
        if let Some(region) = store.household_region(hh).await? {
            out.push(Candidate {
                household_id: hh.to_string(),
                member_id: m.to_string(),
                region,
            });
        }
    }
    Ok(out)
}

/// Whether `who` may see (and decide) `item`: a regional role only an item with a candidate
/// household in its region.
pub async fn visible(store: &Store, who: &Who, item: &ReviewItem) -> Result<bool, AppError> {
    if !who.role.is_regional() {
        return Ok(true);
    }
    Ok(candidates(store, &item.evidence)
        .await?
        .iter()
        .any(|c| who.sees(&c.region)))
}

/// The review queue as `who` sees it, oldest first, at most `limit`: a regional role reads
/// further into the queue and keeps its own (the queue is small: a person empties it).
pub async fn pending(store: &Store, who: &Who, limit: i64) -> Result<Vec<ReviewItem>, AppError> {
    let fetch = if who.role.is_regional() {
        limit.saturating_mul(20).min(10_000)
    } else {
        limit
    };
    let mut out = Vec::new();
    for item in store.pending_reviews(fetch).await? {
        if out.len() as i64 >= limit {
            break;
        }
        if visible(store, who, &item).await? {
            out.push(item);
        }
    }
    Ok(out)
}

/// What a person decided: link to a member, or reject.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    Link { member_id: String },
    Reject,
}

/// Record `decision` on review item `seq` by `by` (with `note`), and apply a link through the
/// pipeline with an engine over the member's household alone.
pub async fn decide(
    store: &Store,
    settings: &EngineSettings,
    who: &Who,
    seq: i64,
    decision: Decision,
    by: &str,
    note: &str,
) -> Result<ReviewApplied, AppError> {
    if who.role.is_regional() {
        // Only an item with a candidate in the asker's region, linked to one of its candidates.
        let Some(item) = store.review_item(seq).await? else {
            return Err(AppError::NotFound(format!(
                "record #{seq} is not in the review queue"
            )));
        };
        let candidates = candidates(store, &item.evidence).await?;
        if !candidates.iter().any(|c| who.sees(&c.region)) {
            // Outside the asker's region: the answer for a record that is not there.
            return Err(AppError::NotFound(format!(
                "record #{seq} is not in the review queue"
            )));
        }
        if let Decision::Link { member_id } = &decision {
            let Some(c) = candidates.iter().find(|c| &c.member_id == member_id) else {
                return Err(AppError::BadRequest(format!(
                    "member {member_id} is not among record #{seq}'s candidates (see GET /api/review)"
                )));
            };
            who.require_region(
                &c.region,
                &format!("member {member_id} is not among record #{seq}'s candidates in this token's region"),
            )?;
        }
    }
    let (choice, household) = match decision {
        Decision::Reject => (ReviewChoice::Reject, None),
        Decision::Link { member_id } => {
            // The member's household as the register has it now (the decision reads it so).
            let household = store.member_household(&member_id).await?;
            (
                ReviewChoice::Link {
                    household_id: String::new(),
                    member_id,
                },
                household,
            )
        }
    };
    let households: Vec<String> = household.into_iter().collect();
    let engine = assessor_for(store, settings, &households).await?;
    let done = doudi_pipeline::decide_review(store, &engine, seq, choice, by, note).await?;
    tracing::info!(seq, decision = done.decision, "review decided");
    Ok(done)
}
