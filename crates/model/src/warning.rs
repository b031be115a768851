//! A warning's lifecycle vocabulary as data: where a warning is ([`WarningStatus`]) and how it was
//! resolved ([`Disposition`]). The rules that move a warning live in `doudi-warnings`; the store
//! keeps these and the doors show them.

use serde::{Deserialize, Serialize};

use crate::household::Category;
use crate::money::Money;

/// Where a warning is in its lifecycle.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WarningStatus {
    /// Raised; nobody has taken it up yet.
    Open,
    /// The officer has seen it and taken it up.
    Acknowledged,
    /// The household was visited (入户核查).
    Visited,
    /// Decided, with a disposition. A later fact opens a new warning (a new episode).
    Resolved,
    /// Opened by the pipeline, moved by nobody, and no longer borne out: a late record re-derived
    /// the household and its episode vanished (issue 19). Reopened if a later fold opens it again.
    Withdrawn,
}

impl WarningStatus {
    pub const ALL: [WarningStatus; 5] = [
        WarningStatus::Open,
        WarningStatus::Acknowledged,
        WarningStatus::Visited,
        WarningStatus::Resolved,
        WarningStatus::Withdrawn,
    ];

    /// Stable code: `open`, `acknowledged`, `visited`, `resolved`, `withdrawn`.
    pub fn code(self) -> &'static str {
        match self {
            WarningStatus::Open => "open",
            WarningStatus::Acknowledged => "acknowledged",
            WarningStatus::Visited => "visited",
            WarningStatus::Resolved => "resolved",
            WarningStatus::Withdrawn => "withdrawn",
        }
    }

    pub fn from_code(s: &str) -> Option<WarningStatus> {
        WarningStatus::ALL.into_iter().find(|w| w.code() == s)
    }

    /// Still part of the household's current episode (new facts update it).
    pub fn is_active(self) -> bool {
        !matches!(self, WarningStatus::Resolved | WarningStatus::Withdrawn)
    }
}

display_by_code!(WarningStatus, pad);

/// How a warning was resolved.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "disposition", rename_all = "snake_case")]
pub enum Disposition {
    /// Temporary relief granted (临时救助). Above the township's limit a supervisor approves.
    ReliefGranted {
        #[serde(rename = "amount_fen")]
        amount: Money,
    },
    /// Enrolled in 低保 or 特困 (or another category).
    Enrolled { category: Category },
    /// Referred to another department (medical aid, housing, employment, …).
    Referred { department: String },
    /// 风险消除: the risk is gone.
    RiskCleared,
    /// Nothing was wrong (a record about someone else, a bill already covered, …).
    FalseAlarm,
}

impl Disposition {
    pub fn code(&self) -> &'static str {
        match self {
            Disposition::ReliefGranted { .. } => "relief_granted",
            Disposition::Enrolled { .. } => "enrolled",
            Disposition::Referred { .. } => "referred",
            Disposition::RiskCleared => "risk_cleared",
            Disposition::FalseAlarm => "false_alarm",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_round_trip_through_their_codes_and_serde() {
        for s in WarningStatus::ALL {
            assert_eq!(WarningStatus::from_code(s.code()), Some(s));
            assert_eq!(
                serde_json::to_string(&s).unwrap(),
                format!("\"{}\"", s.code())
            );
        }
        assert_eq!(WarningStatus::from_code("closed"), None);
    }

    #[test]
    fn a_disposition_is_tagged_with_its_code() {
        let d = Disposition::Referred {
            department: "医保局".into(),
        };
        let json = serde_json::to_value(&d).unwrap();
        assert_eq!(json["disposition"], d.code());
        assert_eq!(serde_json::from_value::<Disposition>(json).unwrap(), d);
    }
}
