//! What the API and the pages both do, over the store and the lifecycle rules: read a warning
//! (audited), move it (authorised as on the command line), read a household, its timeline or its
//! trace (masked by role, audited).

use doudi_model::RegionCode;
use doudi_store::{StoreError, WarningDetail, WarningMove};
use doudi_warnings::lifecycle::{authorise, check_reason, transition, Move};
use doudi_warnings::routing::{Directory, Officer};

use crate::auth::{Principal, Role};
use crate::error::ApiError;
use crate::mask::{mask_json, mask_trace_entry};
use crate::AppState;

/// The stored officer directory.
pub async fn directory(state: &AppState) -> Result<Directory, ApiError> {
    let rows = state.store().load_officers().await?;
    let officers = rows
        .iter()
        .map(|r| {
            serde_json::from_str::<Officer>(&r.record).map_err(|e| {
                ApiError::Internal(format!(
                    "stored officer {} is unreadable: {e}",
                    r.officer_id
                ))
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    Directory::new(officers).map_err(|e| {
        ApiError::Internal(format!(
            "the stored officer directory is inconsistent ({e}); import it again"
        ))
    })
}

/// Record that `who` read household `household_id`'s personal data, through `via`.
pub async fn audit_read(
    state: &AppState,
    who: &Principal,
    household_id: &str,
    via: &str,
    masked: bool,
) -> Result<(), ApiError> {
    state
        .store()
        .audit(
            &who.actor(),
            "read_personal_data",
            &format!("household:{household_id}"),
            &serde_json::json!({"via": via, "masked": masked, "role": who.role.code(), "token_id": who.token_id}),
        )
        .await?;
    Ok(())
}

/// One warning with its history, members masked; the read is audited.
pub async fn warning(
    state: &AppState,
    who: &Principal,
    id: i64,
    via: &str,
) -> Result<WarningDetail, ApiError> {
    let Some(mut d) = state.store().warning_detail(id).await? else {
        return Err(ApiError::NotFound(format!("no warning #{id}")));
    };
    who.require_region(&d.warning.region_code, &format!("warning #{id}"))?;
    audit_read(state, who, &d.warning.household_id, via, true).await?;
    mask_json(&mut d.warning.household);
    Ok(d)
}

/// What a move did.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Moved {
    pub warning_id: i64,
    pub from: &'static str,
    pub to: &'static str,
    pub by: String,
}

/// Check a person's move (who may, from which status, with a reason) and record it — or record
/// the refusal, as `doudi warnings ack|visit|resolve` does.
pub async fn move_warning(
    state: &AppState,
    who: &Principal,
    id: i64,
    note: &str,
    m: Move,
) -> Result<Moved, ApiError> {
    let store = state.store();
    let Some(detail) = store.warning_detail(id).await? else {
        return Err(ApiError::NotFound(format!("no warning #{id}")));
    };
    let w = &detail.warning;
    who.require_region(&w.region_code, &format!("warning #{id}"))?;
    let Some(actor) = who.officer_id.clone() else {
        return Err(ApiError::Forbidden(format!(
            "token #{} acts for no officer: create one with `doudi tokens create --officer ID`",
            who.token_id
        )));
    };
    let status = w.status;
    let region = RegionCode::parse(&w.region_code)
        .map_err(|e| ApiError::Internal(format!("warning #{id} has a bad region code: {e}")))?;
    let directory = directory(state).await?;
    let limit = state.config().rules.relief.township_limit;
    if let Err(e) = authorise(
        &directory,
        &actor,
        w.assigned_to.as_deref(),
        &region,
        &m,
        limit,
    ) {
        if e.is_unauthorised() {
            store
                .record_refused_move(id, m.code(), &actor, note, &e.to_string())
                .await?;
            tracing::warn!(
                warning_id = id,
                action = m.code(),
                "refused a warning move: not authorised"
            );
            return Err(ApiError::Forbidden(e.to_string()));
        }
        return Err(ApiError::BadRequest(e.to_string()));
    }
    check_reason(&m, note).map_err(|e| ApiError::BadRequest(e.to_string()))?;
    let to =
        transition(status, &m).map_err(|e| ApiError::Conflict(format!("warning #{id}: {e}")))?;
    let disposition = match &m {
        Move::Resolve(d) => Some(d),
        _ => None,
    };
    match store
        .move_warning(&WarningMove {
            warning_id: id,
            from: status,
            to,
            action: m.code(),
            actor: &actor,
            note,
            disposition,
        })
        .await
    {
        Ok(()) => {
            tracing::info!(
                warning_id = id,
                from = status.code(),
                to = to.code(),
                "warning moved"
            );
            Ok(Moved {
                warning_id: id,
                from: status.code(),
                to: to.code(),
                by: actor,
            })
        }
        Err(StoreError::Conflict(msg)) => Err(ApiError::Conflict(msg)),
        Err(e) => Err(e.into()),
    }
}

/// Whether `who` sees personal data of a household in clear on `page`.
pub fn in_clear(who: &Principal, page: Page) -> bool {
    match page {
        // Officers and supervisors visit the household: they need who lives there and where.
        Page::Household => who.role.is_regional(),
        // Auditors replay why a household was flagged: the records as received.
        Page::Trace => who.role == Role::Auditor,
        Page::Timeline => false,
    }
}

/// Pages that show a household's personal data.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Page {
    Household,
    Timeline,
    Trace,
}

/// A household's trace (or its timeline: events and assessments), masked unless the role needs
/// it in clear; the read is audited either way.
pub async fn trace(
    state: &AppState,
    who: &Principal,
    household_id: &str,
    page: Page,
    via: &str,
) -> Result<Vec<doudi_store::TraceEntry>, ApiError> {
    let Some(region) = state.store().household_region(household_id).await? else {
        return Err(ApiError::NotFound(format!(
            "household {household_id} is not in the register"
        )));
    };
    who.require_region(&region, &format!("household {household_id}"))?;
    let mut entries = state.store().trace(household_id).await?;
    if page == Page::Timeline {
        entries.retain(|e| {
            matches!(
                e,
                doudi_store::TraceEntry::Event { .. } | doudi_store::TraceEntry::Assessment { .. }
            )
        });
    }
    let clear = in_clear(who, page);
    audit_read(state, who, household_id, via, !clear).await?;
    if !clear {
        entries.iter_mut().for_each(mask_trace_entry);
    }
    Ok(entries)
}

/// The regions of the households an identity review item's candidates belong to.
pub async fn review_regions(
    state: &AppState,
    evidence: &doudi_model::Evidence,
) -> Result<Vec<(String, String, String)>, ApiError> {
    let mut out = Vec::new();
    for (hh, m) in evidence.candidate_members() {
        if let Some(region) = state.store().household_region(hh).await? {
            out.push((hh.to_string(), m.to_string(), region));
        }
    }
    Ok(out)
}
