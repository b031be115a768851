//! A link decision's vocabulary as data: what became of a record ([`LinkOutcome`]) and why
//! ([`Evidence`]: the identity number as typed, masked; the candidates with their comparisons and
//! weights). `doudi-linkage` produces them; the store keeps them and the doors read them.
//!
//! Evidence holds no personal data in clear: the ID number is masked, names are never copied.
//! Its serde form (short keys) is the form stored with every decision.

use std::borrow::Cow;

use serde::{Deserialize, Serialize};

/// What became of a record.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LinkOutcome {
    /// Linked to one member of one household.
    Linked,
    /// Needs a person to decide (clerical review queue).
    Review,
    /// No member found.
    Unmatched,
}

impl LinkOutcome {
    pub const ALL: [LinkOutcome; 3] = [
        LinkOutcome::Linked,
        LinkOutcome::Review,
        LinkOutcome::Unmatched,
    ];

    /// Stable code: `linked`, `review`, `unmatched`.
    pub fn code(self) -> &'static str {
        match self {
            LinkOutcome::Linked => "linked",
            LinkOutcome::Review => "review",
            LinkOutcome::Unmatched => "unmatched",
        }
    }

    pub fn from_code(s: &str) -> Option<LinkOutcome> {
        LinkOutcome::ALL.into_iter().find(|o| o.code() == s)
    }

    /// The name a clerk reads: 已关联 / 待人工复核 / 未匹配.
    pub fn name_zh(self) -> &'static str {
        match self {
            LinkOutcome::Linked => "已关联",
            LinkOutcome::Review => "待人工复核",
            LinkOutcome::Unmatched => "未匹配",
        }
    }
}

display_by_code!(LinkOutcome, pad);

/// How the record's identity number looked (masked: never the full number).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "status")]
pub enum IdEvidence {
    /// A valid 18-character number.
    Valid {
        masked: String,
    },
    /// A legacy 15-digit number, upgraded to 18.
    Upgraded {
        masked: String,
    },
    /// Present but not valid (the check fails, wrong length, not digits).
    Invalid {
        masked: String,
        problem: String,
    },
    Missing,
}

impl IdEvidence {
    /// In words: `valid 3424**********046X`, `invalid … (check_failed)`, `missing`.
    pub fn describe(&self) -> String {
        match self {
            IdEvidence::Valid { masked } => format!("valid {masked}"),
            IdEvidence::Upgraded { masked } => format!("legacy 15-digit, upgraded to {masked}"),
            IdEvidence::Invalid { masked, problem } => format!("invalid {masked} ({problem})"),
            IdEvidence::Missing => "missing".to_string(),
        }
    }
}

/// One field's comparison: level, weight and (for names) the term-frequency adjustment.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Comparison {
    #[serde(rename = "f")]
    pub field: Cow<'static, str>,
    #[serde(rename = "l")]
    pub level: Cow<'static, str>,
    /// The level's weight, TF adjustment excluded.
    #[serde(rename = "w")]
    pub weight: f64,
    #[serde(rename = "tf", default, skip_serializing_if = "Option::is_none")]
    pub tf_adjustment: Option<f64>,
}

/// A candidate member and its total; comparisons are kept for the best (and, on review, the
/// runner-up). Fields whose value is missing on either side are left out (they weigh 0).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CandidateEvidence {
    #[serde(rename = "hh")]
    pub household_id: String,
    #[serde(rename = "m")]
    pub member_id: String,
    #[serde(rename = "w")]
    pub total: f64,
    #[serde(rename = "cmp", default, skip_serializing_if = "Vec::is_empty")]
    pub comparisons: Vec<Comparison>,
}

/// Why the decision was made: what was compared and what was found. Holds no personal data in
/// clear (the ID number is masked; names are never copied).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Evidence {
    #[serde(rename = "model")]
    pub model_version: String,
    #[serde(rename = "id")]
    pub id_number: IdEvidence,
    /// The prior log-odds every total starts from.
    pub prior: f64,
    /// The best candidate's total weight (absent without candidates).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total: Option<f64>,
    /// Probability that the best candidate is the person (candidates compete).
    #[serde(rename = "p")]
    pub match_probability: f64,
    /// Reason code: `linked`, `runner_up_within_margin`, `repaired_id_unconfirmed`,
    /// `between_thresholds`, `below_review_threshold`, `no_candidates`.
    #[serde(rename = "why")]
    pub reason: Cow<'static, str>,
    #[serde(rename = "cands", default, skip_serializing_if = "Vec::is_empty")]
    pub candidates: Vec<CandidateEvidence>,
}

impl Evidence {
    /// The candidate households and members, best first: whom a person deciding a review may
    /// choose from.
    pub fn candidate_members(&self) -> impl Iterator<Item = (&str, &str)> {
        self.candidates
            .iter()
            .map(|c| (c.household_id.as_str(), c.member_id.as_str()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcomes_round_trip_through_their_codes() {
        for o in LinkOutcome::ALL {
            assert_eq!(LinkOutcome::from_code(o.code()), Some(o));
        }
        assert_eq!(LinkOutcome::from_code("maybe"), None);
    }

    #[test]
    fn evidence_keeps_its_short_stored_keys() {
        let e = Evidence {
            model_version: "m1".into(),
            id_number: IdEvidence::Missing,
            prior: -10.0,
            total: Some(12.5),
            match_probability: 0.99,
            reason: "linked".into(),
            candidates: vec![CandidateEvidence {
                household_id: "H1".into(),
                member_id: "H1-1".into(),
                total: 12.5,
                comparisons: vec![],
            }],
        };
        let json = serde_json::to_value(&e).unwrap();
        assert_eq!(json["cands"][0]["hh"], "H1");
        assert_eq!(json["id"]["status"], "missing");
        assert_eq!(serde_json::from_value::<Evidence>(json).unwrap(), e);
        assert_eq!(e.candidate_members().collect::<Vec<_>>(), [("H1", "H1-1")]);
    }
}
