//! A warning as people handle it: read it (audited, its household masked), move it
//! (acknowledge, visit, resolve — authorised against the officer directory, a refused attempt
//! recorded), and the escalations and reminders due at a time.

use chrono::{DateTime, Utc};
use doudi_model::{Category, Disposition, Money, RegionCode, WarningStatus};
use doudi_store::{EscalationUpdate, NoticeRow, Store, WarningDetail, WarningMove};
use doudi_warnings::escalation::{due, Clock, EscalationConfig, Notice, NoticeNote};
use doudi_warnings::lifecycle::{authorise, check_reason, transition, Move};
use doudi_warnings::routing::Directory;
use serde::Serialize;

use crate::error::AppError;
use crate::household::audit_read;
use crate::mask::{mask_warning, View};
use crate::who::Who;

/// One warning with its history, its household masked; the read is audited as `via`.
pub async fn show_warning(
    store: &Store,
    who: &Who,
    id: i64,
    via: &str,
) -> Result<WarningDetail, AppError> {
    let Some(mut d) = store.warning_detail(id).await? else {
        return Err(AppError::NotFound(format!("no warning #{id}")));
    };
    who.require_region(&d.warning.region_code, &format!("no warning #{id}"))?;
    audit_read(store, who, &d.warning.household_id, via, View::Warning).await?;
    mask_warning(&mut d.warning);
    Ok(d)
}

/// What a move did.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Moved {
    pub warning_id: i64,
    pub from: WarningStatus,
    pub to: WarningStatus,
    pub by: String,
}

/// A person's move on a warning.
#[derive(Clone, Debug)]
pub struct MoveRequest<'a> {
    pub warning_id: i64,
    /// The officer making the move (checked against the directory).
    pub officer: &'a str,
    /// Why (kept in the warning's history; a visit and a resolution need one).
    pub note: &'a str,
    pub m: Move,
}

/// Check a person's move — the warning is in the asker's region, the officer may act on it (the
/// assigned officer, their substitute or a supervisor of the region; relief above the township's
/// limit needs a supervisor), a reason where one is needed, a move the status allows — and record
/// it. An unauthorised attempt is recorded as refused (who tried what, and why) and answered
/// `Forbidden`.
pub async fn move_warning(
    store: &Store,
    who: &Who,
    township_limit: Money,
    req: &MoveRequest<'_>,
) -> Result<Moved, AppError> {
    let (id, actor, note, m) = (req.warning_id, req.officer, req.note, &req.m);
    let Some(detail) = store.warning_detail(id).await? else {
        return Err(AppError::NotFound(format!("no warning #{id}")));
    };
    let w = &detail.warning;
    who.require_region(&w.region_code, &format!("no warning #{id}"))?;
    let region = RegionCode::parse(&w.region_code)
        .map_err(|e| AppError::Unusable(format!("warning #{id} has a bad region code: {e}")))?;
    let directory = crate::engine::directory(store).await?;
    if let Err(e) = authorise(
        &directory,
        actor,
        w.assigned_to.as_deref(),
        &region,
        m,
        township_limit,
    ) {
        if e.is_unauthorised() {
            store
                .record_refused_move(id, m.code(), actor, note, &e.to_string())
                .await?;
            tracing::warn!(
                warning_id = id,
                action = m.code(),
                "refused a warning move: not authorised"
            );
            return Err(AppError::Forbidden(e.to_string()));
        }
        return Err(AppError::BadRequest(e.to_string()));
    }
    check_reason(m, note).map_err(|e| AppError::BadRequest(e.to_string()))?;
    let from = w.status;
    let to = transition(from, m).map_err(|e| AppError::Conflict(format!("warning #{id}: {e}")))?;
    let disposition = match m {
        Move::Resolve(d) => Some(d),
        _ => None,
    };
    store
        .move_warning(&WarningMove {
            warning_id: id,
            from,
            to,
            action: m.code(),
            actor,
            note,
            disposition,
        })
        .await?;
    tracing::info!(
        warning_id = id,
        from = from.code(),
        to = to.code(),
        "warning moved"
    );
    Ok(Moved {
        warning_id: id,
        from,
        to,
        by: actor.to_string(),
    })
}

/// A disposition from its parts (an API body, a page form, command-line options): `code` is
/// `relief_granted` (with `amount` in yuan), `enrolled` (with `category`), `referred` (with
/// `department`), `risk_cleared` or `false_alarm`.
pub fn disposition(
    code: &str,
    amount: Option<&str>,
    category: Option<&str>,
    department: Option<&str>,
) -> Result<Disposition, AppError> {
    let need = |what: &str| AppError::BadRequest(format!("disposition {code} needs {what}"));
    Ok(match code {
        "relief_granted" => {
            let text = amount
                .filter(|a| !a.trim().is_empty())
                .ok_or_else(|| need("amount (yuan)"))?;
            let amount = Money::parse_yuan(text.trim()).map_err(|e| {
                AppError::BadRequest(format!("amount {text:?} is not an amount in yuan: {e}"))
            })?;
            Disposition::ReliefGranted { amount }
        }
        "enrolled" => {
            let text = category
                .filter(|c| !c.is_empty())
                .ok_or_else(|| need("category"))?;
            let category = Category::from_code(text).ok_or_else(|| {
                AppError::BadRequest(format!(
                    "unknown category {text:?} (dibao, tekun, dibao_edge, expenditure, unstable, edge_prone, sudden)"
                ))
            })?;
            Disposition::Enrolled { category }
        }
        "referred" => Disposition::Referred {
            department: department
                .filter(|d| !d.trim().is_empty())
                .ok_or_else(|| need("department"))?
                .trim()
                .to_string(),
        },
        "risk_cleared" => Disposition::RiskCleared,
        "false_alarm" => Disposition::FalseAlarm,
        other => {
            return Err(AppError::BadRequest(format!(
                "unknown disposition {other:?} (relief_granted, enrolled, referred, risk_cleared, false_alarm)"
            )))
        }
    })
}

/// What a tick did.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Ticked {
    /// Escalations (unacknowledged in time, or overdue) recorded.
    pub escalated: usize,
    pub reminded: usize,
    /// Warnings with notices due that a silence held back.
    pub silenced: u64,
}

/// Record the escalations and reminders due at `now`: for each active warning, the notices its
/// clock says are due (`doudi_warnings::escalation::due`), addressed along the region's chain of
/// supervisors, unless a silence covers it. Each warning's step is recorded only if nothing moved
/// it meanwhile.
pub async fn tick(
    store: &Store,
    directory: &Directory,
    cfg: &EscalationConfig,
    now: DateTime<Utc>,
) -> Result<Ticked, AppError> {
    let mut updates = Vec::new();
    let mut silenced = 0u64;
    for w in store.warning_clocks(now).await? {
        let level = w.level;
        let region = RegionCode::parse(&w.region_code).map_err(|e| {
            AppError::Unusable(format!(
                "warning #{} has a bad region code: {e}",
                w.warning_id
            ))
        })?;
        // One person per level above the assigned officer, nearest first.
        let chain: Vec<String> = directory
            .escalation_chain(&region)
            .into_iter()
            .map(|o| o.officer_id.clone())
            .filter(|id| Some(id) != w.assigned_to.as_ref())
            .collect();
        let clock = Clock {
            status: w.status,
            level,
            opened_at: w.opened_at,
            deadline: w.deadline,
            ack_steps: u32::try_from(w.ack_steps).unwrap_or(0),
            resolve_escalated: w.resolve_escalated,
            last_notice_at: w.last_notice_at.unwrap_or(w.opened_at),
        };
        let due_now = due(&clock, now, cfg, chain.len() as u32);
        if due_now.is_empty() {
            continue;
        }
        if w.silenced_until.is_some() {
            silenced += 1;
            continue;
        }
        let mut steps = clock.ack_steps;
        let mut resolve_escalated = clock.resolve_escalated;
        let mut last = clock.last_notice_at;
        let holder = |steps: u32| -> Option<String> {
            match steps {
                0 => w.assigned_to.clone(),
                k => chain.get(k as usize - 1).cloned(),
            }
        };
        let mut notices = Vec::new();
        for n in due_now {
            let (kind, recipient, at, note) = match n {
                Notice::Escalate { step, at } => {
                    steps = step;
                    (
                        "escalated",
                        holder(step),
                        at,
                        NoticeNote::NotAcknowledged {
                            hours: cfg.ack_within_hours.get(level).unwrap_or(0) * step,
                        }
                        .en(),
                    )
                }
                Notice::Overdue { at } => {
                    resolve_escalated = true;
                    (
                        "overdue",
                        chain.first().cloned(),
                        at,
                        NoticeNote::NotResolved.en(),
                    )
                }
                Notice::Remind { at } => {
                    ("reminder", holder(steps), at, NoticeNote::StillWaiting.en())
                }
            };
            last = at;
            if let Some(recipient) = recipient {
                notices.push(NoticeRow {
                    warning_id: w.warning_id,
                    kind: kind.to_string(),
                    recipient,
                    due_at: at,
                    note,
                });
            }
        }
        updates.push(EscalationUpdate {
            warning_id: w.warning_id,
            expected_status: w.status,
            expected_ack_steps: w.ack_steps,
            expected_resolve_escalated: w.resolve_escalated,
            ack_steps: i64::from(steps),
            resolve_escalated,
            last_notice_at: last,
            notices,
        });
    }
    let recorded = store.record_escalations(&updates).await?;
    let count = |kinds: &[&str]| {
        recorded
            .iter()
            .filter(|n| kinds.contains(&n.kind.as_str()))
            .count()
    };
    let ticked = Ticked {
        escalated: count(&["escalated", "overdue"]),
        reminded: count(&["reminder"]),
        silenced,
    };
    tracing::info!(
        escalated = ticked.escalated,
        reminded = ticked.reminded,
        silenced,
        "warnings ticked"
    );
    Ok(ticked)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_disposition_is_read_from_its_parts_and_says_what_is_missing() {
        assert_eq!(
            disposition("relief_granted", Some(" 1500.50 "), None, None).unwrap(),
            Disposition::ReliefGranted {
                amount: Money::from_fen(150_050)
            }
        );
        assert_eq!(
            disposition("referred", None, None, Some(" 医保局 ")).unwrap(),
            Disposition::Referred {
                department: "医保局".into()
            }
        );
        let e = disposition("enrolled", None, None, None).unwrap_err();
        assert!(e.to_string().contains("needs category"), "{e}");
        assert!(matches!(
            disposition("closed", None, None, None),
            Err(AppError::BadRequest(_))
        ));
    }
}
