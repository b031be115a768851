//! The lifecycle of a warning as a state machine: open → acknowledged → visited → resolved, with a
//! disposition on resolve; and who may move it (the assigned officer, their substitute, or a
//! supervisor above the region; relief above the township's approval limit needs a supervisor).
//!
//! Pure: the store carries a move out and records it (who, when, why) — refused moves included;
//! `doudi_app::warnings::move_warning` is the one caller for both doors. The status and the
//! disposition are data of `doudi_model::warning`, re-exported here.

use doudi_model::{Money, RegionCode};
use serde::{Deserialize, Serialize};

use crate::routing::{Directory, Role};

/// Where a warning is and how it was resolved (their data types live in `doudi_model`).
pub use doudi_model::{Disposition, WarningStatus as Status};

/// A person's move on a warning.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum Move {
    Acknowledge,
    Visit,
    Resolve(Disposition),
}

impl Move {
    pub fn code(&self) -> &'static str {
        match self {
            Move::Acknowledge => "acknowledge",
            Move::Visit => "visit",
            Move::Resolve(_) => "resolve",
        }
    }
}

/// Why a move is refused. Messages say what to do instead.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MoveError {
    #[error("{actor:?} is not in the officer directory (see `doudi officers list`)")]
    UnknownActor { actor: String },
    #[error("{actor:?} may not act on this warning: it is assigned to {assignee:?} in region {region}; only the assigned officer, their substitute or a supervisor of the region may")]
    NotResponsible {
        actor: String,
        assignee: String,
        region: String,
    },
    #[error("this warning is assigned to nobody (no officer covers region {region}); only a supervisor of the region may act on it")]
    Unassigned { region: String },
    #[error("cannot {action} a warning that is {status}{hint}")]
    BadTransition {
        action: &'static str,
        status: &'static str,
        hint: &'static str,
    },
    #[error("relief of {amount} yuan is above the township's approval limit of {limit} yuan (先行救助); a supervisor of the county must record it")]
    NeedsSupervisor { amount: Money, limit: Money },
    #[error("a relief amount must be more than zero")]
    ZeroRelief,
    #[error("a move needs a reason (--note): it is kept in the warning's history")]
    NoReason,
}

impl MoveError {
    /// A refusal about who acts (recorded as a refused attempt), as opposed to a bad request.
    pub fn is_unauthorised(&self) -> bool {
        matches!(
            self,
            MoveError::UnknownActor { .. }
                | MoveError::NotResponsible { .. }
                | MoveError::Unassigned { .. }
                | MoveError::NeedsSupervisor { .. }
        )
    }
}

/// The status after `m` from `status`, or why it cannot be made.
pub fn transition(status: Status, m: &Move) -> Result<Status, MoveError> {
    let bad = |hint: &'static str| MoveError::BadTransition {
        action: m.code(),
        status: status.code(),
        hint,
    };
    match (status, m) {
        (Status::Resolved, _) => Err(bad(
            " (it is closed; a new fact about the household opens a new warning)",
        )),
        (Status::Withdrawn, _) => Err(bad(
            " (it was withdrawn: a late record showed the household was not at risk; a new fact reopens it)",
        )),
        (Status::Open, Move::Acknowledge) => Ok(Status::Acknowledged),
        (_, Move::Acknowledge) => Err(bad(" (it was acknowledged already)")),
        (Status::Open | Status::Acknowledged, Move::Visit) => Ok(Status::Visited),
        (Status::Visited, Move::Visit) => Err(bad(" (the visit is recorded already)")),
        (Status::Open, Move::Resolve(_)) => Err(bad(" (acknowledge it first)")),
        (
            Status::Acknowledged,
            Move::Resolve(Disposition::ReliefGranted { .. } | Disposition::Enrolled { .. }),
        ) => Err(bad(
            " before a visit (relief and enrolment follow a home visit: record it with `visit`)",
        )),
        (Status::Acknowledged | Status::Visited, Move::Resolve(_)) => Ok(Status::Resolved),
    }
}

/// A visit and a resolution need a reason (kept in the warning's history).
pub fn check_reason(m: &Move, note: &str) -> Result<(), MoveError> {
    match m {
        Move::Visit | Move::Resolve(_) if note.trim().is_empty() => Err(MoveError::NoReason),
        _ => Ok(()),
    }
}

/// Whether `actor` may make move `m` on a warning of `region` assigned to `assignee`.
pub fn authorise(
    directory: &Directory,
    actor: &str,
    assignee: Option<&str>,
    region: &RegionCode,
    m: &Move,
    township_limit: Money,
) -> Result<(), MoveError> {
    let Some(officer) = directory.get(actor) else {
        return Err(MoveError::UnknownActor {
            actor: actor.to_string(),
        });
    };
    let is_supervisor_here =
        officer.role == Role::Supervisor && region.as_str().starts_with(officer.region.as_str());
    match assignee {
        Some(a) if directory.may_act(actor, a, region) => {}
        Some(a) => {
            return Err(MoveError::NotResponsible {
                actor: actor.to_string(),
                assignee: a.to_string(),
                region: region.to_string(),
            })
        }
        None if is_supervisor_here => {}
        None => {
            return Err(MoveError::Unassigned {
                region: region.to_string(),
            })
        }
    }
    if let Move::Resolve(Disposition::ReliefGranted { amount }) = m {
        if amount.fen() <= 0 {
            return Err(MoveError::ZeroRelief);
        }
        if *amount > township_limit && !is_supervisor_here {
            return Err(MoveError::NeedsSupervisor {
                amount: *amount,
                limit: township_limit,
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::routing::tests::{directory_with, officer};

    fn directory() -> Directory {
        directory_with(officer("zhou", Role::Officer, "341503001"))
    }

    fn region() -> RegionCode {
        RegionCode::parse("341502001003").unwrap()
    }

    fn relief(yuan: i64) -> Move {
        Move::Resolve(Disposition::ReliefGranted {
            amount: Money::from_yuan(yuan),
        })
    }

    #[test]
    fn a_warning_goes_open_acknowledged_visited_resolved() {
        let s = transition(Status::Open, &Move::Acknowledge).unwrap();
        assert_eq!(s, Status::Acknowledged);
        let s = transition(s, &Move::Visit).unwrap();
        assert_eq!(s, Status::Visited);
        let s = transition(s, &relief(2000)).unwrap();
        assert_eq!(s, Status::Resolved);
    }

    #[test]
    fn a_visit_without_acknowledgement_acknowledges_it() {
        assert_eq!(
            transition(Status::Open, &Move::Visit).unwrap(),
            Status::Visited
        );
    }

    #[test]
    fn relief_or_enrolment_needs_a_visit_but_a_false_alarm_does_not() {
        let e = transition(Status::Acknowledged, &relief(500)).unwrap_err();
        assert!(e.to_string().contains("visit"), "{e}");
        assert_eq!(
            transition(
                Status::Acknowledged,
                &Move::Resolve(Disposition::FalseAlarm)
            )
            .unwrap(),
            Status::Resolved
        );
        let e = transition(Status::Open, &Move::Resolve(Disposition::FalseAlarm)).unwrap_err();
        assert!(e.to_string().contains("acknowledge it first"), "{e}");
    }

    #[test]
    fn a_resolved_warning_cannot_move_again() {
        for m in [Move::Acknowledge, Move::Visit, relief(1)] {
            let e = transition(Status::Resolved, &m).unwrap_err();
            assert!(e.to_string().contains("new warning"), "{e}");
        }
    }

    #[test]
    fn another_townships_officer_is_refused_and_the_refusal_is_about_authority() {
        let d = directory();
        let e = authorise(
            &d,
            "zhou",
            Some("li"),
            &region(),
            &Move::Acknowledge,
            Money::from_yuan(3000),
        )
        .unwrap_err();
        assert!(e.is_unauthorised());
        assert!(e.to_string().contains("assigned to \"li\""), "{e}");
        assert!(authorise(
            &d,
            "wang",
            Some("li"),
            &region(),
            &Move::Acknowledge,
            Money::from_yuan(3000)
        )
        .is_ok());
        assert!(matches!(
            authorise(
                &d,
                "ghost",
                Some("li"),
                &region(),
                &Move::Visit,
                Money::from_yuan(3000)
            ),
            Err(MoveError::UnknownActor { .. })
        ));
    }

    #[test]
    fn relief_above_the_township_limit_needs_a_supervisor_of_the_county() {
        let d = directory();
        let limit = Money::from_yuan(3000);
        assert!(authorise(&d, "li", Some("li"), &region(), &relief(3000), limit).is_ok());
        let e = authorise(&d, "li", Some("li"), &region(), &relief(3001), limit).unwrap_err();
        assert!(matches!(e, MoveError::NeedsSupervisor { .. }), "{e}");
        assert!(authorise(&d, "chen", Some("li"), &region(), &relief(5000), limit).is_ok());
        assert_eq!(
            authorise(&d, "li", Some("li"), &region(), &relief(0), limit),
            Err(MoveError::ZeroRelief)
        );
    }

    #[test]
    fn an_unassigned_warning_is_for_a_supervisor_only() {
        let d = directory();
        let limit = Money::from_yuan(3000);
        assert!(authorise(&d, "chen", None, &region(), &Move::Acknowledge, limit).is_ok());
        assert!(matches!(
            authorise(&d, "li", None, &region(), &Move::Acknowledge, limit),
            Err(MoveError::Unassigned { .. })
        ));
    }

    #[test]
    fn a_visit_or_a_resolution_without_a_reason_is_refused() {
        assert_eq!(check_reason(&Move::Visit, "  "), Err(MoveError::NoReason));
        assert_eq!(
            check_reason(&Move::Resolve(Disposition::FalseAlarm), ""),
            Err(MoveError::NoReason)
        );
        assert_eq!(check_reason(&Move::Acknowledge, ""), Ok(()));
        assert_eq!(check_reason(&Move::Visit, "独居，住院中"), Ok(()));
    }

    #[test]
    fn dispositions_serialise_with_their_code() {
        let v = serde_json::to_value(Disposition::Referred {
            department: "医保局".into(),
        })
        .unwrap();
        assert_eq!(v["disposition"], "referred");
        let d: Disposition =
            serde_json::from_str(r#"{"disposition":"relief_granted","amount_fen":200000}"#)
                .unwrap();
        assert_eq!(
            d,
            Disposition::ReliefGranted {
                amount: Money::from_yuan(2000)
            }
        );
    }
}
