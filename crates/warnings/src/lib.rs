//! Warning lifecycle decisions: what a new assessment does to a household's warning.
//!
//! What it is for: one warning per household episode. Given the household's open warning (if any),
//! a new [`Assessment`] and the current time, [`decide`] says whether to open a warning, update the
//! open one, or do nothing, and with which level and deadline. The caller (the store/pipeline)
//! carries the decision out.
//!
//! Rules of the decision:
//! - no open warning, level none → [`Decision::Nothing`];
//! - no open warning, level above none → [`Decision::Open`], deadline = now + the level's
//!   `act_within_hours`;
//! - an open warning → [`Decision::Update`]: the level is never lowered by a new fact (only a
//!   person closes or downgrades a warning, after a visit); when the level rises, `raised` is true
//!   and the deadline tightens to the new level's, never later than the existing one.
//!
//! [`fold`] is how the pipeline decides (issue 19): the episode as a fold over the household's
//! assessments in canonical order, independent of arrival order and of the wall clock; with the
//! deadline policy for late records. [`decide`] remains for callers that decide one assessment at
//! a time.
//!
//! [`explain`] says why an open warning is at its level and whether it asks to act or to verify
//! and close (its risk no longer counts).
//!
//! [`routing`] holds the officer directory and says who is responsible for a region.
//!
//! What it must never do: any I/O, any logging (of personal data or anything else), any panic on
//! input. It is a pure function of its arguments.

pub mod escalation;
pub mod explain;
pub mod fold;
pub mod lifecycle;
pub mod routing;

use chrono::{DateTime, TimeDelta, Utc};
use doudi_risk::{Assessment, Level};
use serde::{Deserialize, Serialize};

/// The household's currently open warning, as the store holds it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OpenWarning {
    pub warning_id: i64,
    pub household_id: String,
    pub level: Level,
    pub score: i64,
    pub deadline: DateTime<Utc>,
}

/// What to do with the household's warning.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum Decision {
    /// No warning is open and none is needed.
    Nothing,
    /// Open a new warning.
    Open {
        level: Level,
        deadline: DateTime<Utc>,
    },
    /// Update the open warning (attach the new assessment). `level` is never below the existing
    /// one; `raised` says whether it went up (then `deadline` may have tightened).
    Update {
        warning_id: i64,
        level: Level,
        raised: bool,
        deadline: DateTime<Utc>,
    },
}

/// Why a decision could not be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WarningError {
    /// The open warning passed in belongs to another household than the assessment.
    #[error("open warning {warning_id} belongs to household {warning_household:?}, not to the assessed household {assessed_household:?}")]
    HouseholdMismatch {
        warning_id: i64,
        warning_household: String,
        assessed_household: String,
    },
}

/// Hours to act for a level: the assessment's own (from its rule set), else the level's default.
/// Never negative.
fn hours_for(assessment: &Assessment, level: Level) -> Option<i64> {
    let own = if assessment.level == level {
        assessment.act_within_hours
    } else {
        None
    };
    own.or_else(|| level.default_act_within_hours())
        .map(|h| h.max(0))
}

/// `now + hours`, saturating at the latest representable time.
fn deadline_after(now: DateTime<Utc>, hours: i64) -> DateTime<Utc> {
    TimeDelta::try_hours(hours)
        .and_then(|d| now.checked_add_signed(d))
        .unwrap_or(DateTime::<Utc>::MAX_UTC)
}

/// Decide, refusing an open warning of another household.
pub fn try_decide(
    existing: Option<&OpenWarning>,
    assessment: &Assessment,
    now: DateTime<Utc>,
) -> Result<Decision, WarningError> {
    if let Some(w) = existing {
        if w.household_id != assessment.household_id {
            return Err(WarningError::HouseholdMismatch {
                warning_id: w.warning_id,
                warning_household: w.household_id.clone(),
                assessed_household: assessment.household_id.clone(),
            });
        }
    }
    Ok(decide_checked(existing, assessment, now))
}

/// Decide what the assessment does to the household's warning.
///
/// An `existing` warning of another household than the assessment's is not this household's
/// warning and is ignored (as if none were open); use [`try_decide`] to be told instead.
pub fn decide(
    existing: Option<&OpenWarning>,
    assessment: &Assessment,
    now: DateTime<Utc>,
) -> Decision {
    let existing = existing.filter(|w| w.household_id == assessment.household_id);
    decide_checked(existing, assessment, now)
}

fn decide_checked(
    existing: Option<&OpenWarning>,
    assessment: &Assessment,
    now: DateTime<Utc>,
) -> Decision {
    match existing {
        None if assessment.level == Level::None => Decision::Nothing,
        None => {
            let hours = hours_for(assessment, assessment.level).unwrap_or(0);
            Decision::Open {
                level: assessment.level,
                deadline: deadline_after(now, hours),
            }
        }
        Some(w) => {
            let raised = assessment.level > w.level;
            if raised {
                let tighter = hours_for(assessment, assessment.level)
                    .map(|h| deadline_after(now, h))
                    .unwrap_or(w.deadline);
                Decision::Update {
                    warning_id: w.warning_id,
                    level: assessment.level,
                    raised: true,
                    deadline: tighter.min(w.deadline),
                }
            } else {
                Decision::Update {
                    warning_id: w.warning_id,
                    level: w.level,
                    raised: false,
                    deadline: w.deadline,
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-03-02T08:00:00Z")
            .unwrap()
            .with_timezone(&Utc)
    }

    fn assessment(level: Level, hours: Option<i64>) -> Assessment {
        Assessment {
            rule_set_version: "test-1".into(),
            household_id: "H1".into(),
            score: match level {
                Level::None => 0,
                Level::Yellow => 40,
                Level::Orange => 70,
                Level::Red => 120,
            },
            level,
            contributions: vec![],
            relief: None,
            act_within_hours: hours,
            review_needed: vec![],
            basis: None,
            risk: None,
        }
    }

    fn open(level: Level, deadline: DateTime<Utc>) -> OpenWarning {
        OpenWarning {
            warning_id: 7,
            household_id: "H1".into(),
            level,
            score: 40,
            deadline,
        }
    }

    #[test]
    fn no_warning_and_no_risk_does_nothing() {
        assert_eq!(
            decide(None, &assessment(Level::None, None), now()),
            Decision::Nothing
        );
    }

    #[test]
    fn first_risk_opens_warning_with_level_deadline() {
        let d = decide(None, &assessment(Level::Red, Some(24)), now());
        assert_eq!(
            d,
            Decision::Open {
                level: Level::Red,
                deadline: now() + TimeDelta::hours(24)
            }
        );
        let d = decide(None, &assessment(Level::Yellow, Some(360)), now());
        assert_eq!(
            d,
            Decision::Open {
                level: Level::Yellow,
                deadline: now() + TimeDelta::hours(360)
            }
        );
    }

    #[test]
    fn missing_hours_fall_back_to_level_default() {
        let d = decide(None, &assessment(Level::Orange, None), now());
        assert_eq!(
            d,
            Decision::Open {
                level: Level::Orange,
                deadline: now() + TimeDelta::hours(72)
            }
        );
    }

    /// A warning of `was` due in `due_in` hours, raised to red (24 h): the update decided.
    fn raised_to_red(was: Level, due_in: i64) -> Decision {
        let existing = open(was, now() + TimeDelta::hours(due_in));
        decide(Some(&existing), &assessment(Level::Red, Some(24)), now())
    }

    /// The update of warning 7 to red, due in `hours`.
    fn red_due_in(hours: i64) -> Decision {
        Decision::Update {
            warning_id: 7,
            level: Level::Red,
            raised: true,
            deadline: now() + TimeDelta::hours(hours),
        }
    }

    #[test]
    fn raised_level_tightens_deadline() {
        // yellow opened a day ago, due in 14 more days; now red: due in 24 hours
        assert_eq!(raised_to_red(Level::Yellow, 336), red_due_in(24));
    }

    #[test]
    fn raised_level_never_moves_deadline_later() {
        // orange due in 2 hours; now red (24 h): the earlier deadline stands
        assert_eq!(raised_to_red(Level::Orange, 2), red_due_in(2));
    }

    #[test]
    fn lower_level_never_lowers_open_warning() {
        let deadline = now() + TimeDelta::hours(10);
        let existing = open(Level::Red, deadline);
        for level in [Level::None, Level::Yellow, Level::Orange] {
            let d = decide(
                Some(&existing),
                &assessment(level, level.default_act_within_hours()),
                now(),
            );
            assert_eq!(
                d,
                Decision::Update {
                    warning_id: 7,
                    level: Level::Red,
                    raised: false,
                    deadline
                },
                "{level:?}"
            );
        }
    }

    #[test]
    fn same_level_updates_without_raising() {
        let deadline = now() + TimeDelta::hours(50);
        let existing = open(Level::Orange, deadline);
        let d = decide(Some(&existing), &assessment(Level::Orange, Some(72)), now());
        assert_eq!(
            d,
            Decision::Update {
                warning_id: 7,
                level: Level::Orange,
                raised: false,
                deadline
            }
        );
    }

    #[test]
    fn other_households_warning_is_refused_or_ignored() {
        let mut existing = open(Level::Yellow, now());
        existing.household_id = "H2".into();
        let a = assessment(Level::Red, Some(24));
        assert!(matches!(
            try_decide(Some(&existing), &a, now()),
            Err(WarningError::HouseholdMismatch { warning_id: 7, .. })
        ));
        assert!(matches!(
            decide(Some(&existing), &a, now()),
            Decision::Open { .. }
        ));
    }

    #[test]
    fn absurd_hours_do_not_panic() {
        let d = decide(None, &assessment(Level::Red, Some(i64::MAX)), now());
        assert_eq!(
            d,
            Decision::Open {
                level: Level::Red,
                deadline: DateTime::<Utc>::MAX_UTC
            }
        );
        let d = decide(None, &assessment(Level::Red, Some(-5)), now());
        assert_eq!(
            d,
            Decision::Open {
                level: Level::Red,
                deadline: now()
            }
        );
    }

    #[test]
    fn decision_serialises_with_action_tag() {
        let j = serde_json::to_string(&Decision::Nothing).unwrap();
        assert_eq!(j, r#"{"action":"nothing"}"#);
    }
}
