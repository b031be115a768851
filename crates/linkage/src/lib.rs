//! Identity resolution: decide which register member a department record is about, and keep the
//! evidence for every decision.
//!
//! This version links by an exact identity number (a legacy 15-digit number is upgraded first).
//! Records whose number is missing, fails its check or is unknown are left unmatched with the reason;
//! an identity number enrolled in two households goes to review. Pure: no I/O, no logging; evidence
//! never holds a full ID number, only its masked form.

use std::collections::HashMap;

use doudi_model::{Household, IdNumber, IdNumberError, Subject};
use serde::{Deserialize, Serialize};

/// Version of the matching method, stored with every decision.
pub const MODEL_VERSION: &str = "exact-id-1";

/// What became of a record.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Linked to one member of one household.
    Linked,
    /// Needs a person to decide (clerical review queue).
    Review,
    /// No member found.
    Unmatched,
}

impl Outcome {
    pub fn code(self) -> &'static str {
        match self {
            Outcome::Linked => "linked",
            Outcome::Review => "review",
            Outcome::Unmatched => "unmatched",
        }
    }
}

/// How the subject's identity number looked.
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
    /// Present but not valid.
    Invalid {
        masked: String,
        problem: String,
    },
    Missing,
}

/// Why the decision was made: what was compared and what was found.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Evidence {
    pub model_version: String,
    pub method: String,
    pub id_number: IdEvidence,
    /// Candidate members (household id, member id).
    pub candidates: Vec<(String, String)>,
    pub note: String,
}

/// A link decision for one record.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LinkDecision {
    pub outcome: Outcome,
    pub household_id: Option<String>,
    pub member_id: Option<String>,
    pub evidence: Evidence,
}

/// The register's members by identity number.
#[derive(Clone, Debug, Default)]
pub struct RegisterIndex {
    by_id: HashMap<IdNumber, Vec<(String, String)>>,
}

impl RegisterIndex {
    pub fn build<'a>(households: impl IntoIterator<Item = &'a Household>) -> Self {
        let mut index = RegisterIndex::default();
        for h in households {
            index.insert(h);
        }
        index
    }

    pub fn insert(&mut self, household: &Household) {
        for m in &household.members {
            let entry = self.by_id.entry(m.id_number).or_default();
            let key = (household.household_id.clone(), m.member_id.clone());
            if !entry.contains(&key) {
                entry.push(key);
            }
        }
    }

    pub fn len(&self) -> usize {
        self.by_id.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_id.is_empty()
    }

    /// Decide who `subject` is.
    pub fn link(&self, subject: &Subject) -> LinkDecision {
        let unmatched = |id_number: IdEvidence, note: &str| LinkDecision {
            outcome: Outcome::Unmatched,
            household_id: None,
            member_id: None,
            evidence: Evidence {
                model_version: MODEL_VERSION.into(),
                method: "exact_id".into(),
                id_number,
                candidates: vec![],
                note: note.into(),
            },
        };
        let Some(raw) = subject.id_number.as_deref() else {
            return unmatched(IdEvidence::Missing, "the record has no identity number");
        };
        let masked = doudi_model::mask_id_str(raw);
        let id = match IdNumber::parse(raw) {
            Ok(id) => id,
            Err(e) => {
                let problem = match e {
                    IdNumberError::BadCheck { .. } => "the check character is wrong".to_string(),
                    other => other.to_string(),
                };
                return unmatched(
                    IdEvidence::Invalid { masked, problem },
                    "the identity number is not valid",
                );
            }
        };
        let id_evidence = if raw.trim().len() == 15 {
            IdEvidence::Upgraded {
                masked: id.masked(),
            }
        } else {
            IdEvidence::Valid {
                masked: id.masked(),
            }
        };
        match self.by_id.get(&id).map(Vec::as_slice) {
            None | Some([]) => unmatched(id_evidence, "no register member has this number"),
            Some([(hh, member)]) => LinkDecision {
                outcome: Outcome::Linked,
                household_id: Some(hh.clone()),
                member_id: Some(member.clone()),
                evidence: Evidence {
                    model_version: MODEL_VERSION.into(),
                    method: "exact_id".into(),
                    id_number: id_evidence,
                    candidates: vec![(hh.clone(), member.clone())],
                    note: "the identity number equals the member's".into(),
                },
            },
            Some(many) => LinkDecision {
                outcome: Outcome::Review,
                household_id: None,
                member_id: None,
                evidence: Evidence {
                    model_version: MODEL_VERSION.into(),
                    method: "exact_id".into(),
                    id_number: id_evidence,
                    candidates: many.to_vec(),
                    note: "the identity number is enrolled in more than one household".into(),
                },
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn household(id: &str, member: &str, id_number: &str) -> Household {
        serde_json::from_value(serde_json::json!({
            "household_id": id, "region_code": "341502001001", "address": "x", "category": "dibao",
            "area": "rural", "enrolled_on": "2023-05-01",
            "members": [{"member_id": member, "id_number": id_number, "name": "王秀英", "sex": "female",
                "birth_date": "1949-12-31", "relation": "head", "work_capacity": "none"}]
        }))
        .unwrap()
    }

    fn subject(id: Option<&str>) -> Subject {
        Subject {
            id_number: id.map(str::to_string),
            ..Subject::default()
        }
    }

    #[test]
    fn exact_valid_id_links_to_the_member() {
        let idx = RegisterIndex::build(&[household("H1", "M1", "11010519491231002X")]);
        let d = idx.link(&subject(Some("11010519491231002X")));
        assert_eq!(d.outcome, Outcome::Linked);
        assert_eq!(d.member_id.as_deref(), Some("M1"));
        assert_eq!(d.household_id.as_deref(), Some("H1"));
    }

    #[test]
    fn legacy_fifteen_digit_id_links_after_upgrade() {
        let idx = RegisterIndex::build(&[household("H1", "M1", "11010519491231002X")]);
        let d = idx.link(&subject(Some("110105491231002")));
        assert_eq!(d.outcome, Outcome::Linked);
        assert!(matches!(d.evidence.id_number, IdEvidence::Upgraded { .. }));
    }

    #[test]
    fn missing_invalid_or_unknown_ids_are_unmatched_with_a_reason() {
        let idx = RegisterIndex::build(&[household("H1", "M1", "11010519491231002X")]);
        assert_eq!(
            idx.link(&subject(None)).evidence.id_number,
            IdEvidence::Missing
        );
        let bad = idx.link(&subject(Some("110105194912310021")));
        assert_eq!(bad.outcome, Outcome::Unmatched);
        let IdEvidence::Invalid { masked, .. } = &bad.evidence.id_number else {
            panic!("expected invalid")
        };
        assert_eq!(masked, "110105********0021");
        let unknown = idx.link(&subject(Some("110105194912310011")));
        assert_eq!(unknown.outcome, Outcome::Unmatched);
    }

    #[test]
    fn an_id_enrolled_in_two_households_goes_to_review() {
        let idx = RegisterIndex::build(&[
            household("H1", "M1", "11010519491231002X"),
            household("H2", "M9", "11010519491231002X"),
        ]);
        let d = idx.link(&subject(Some("11010519491231002X")));
        assert_eq!(d.outcome, Outcome::Review);
        assert_eq!(d.evidence.candidates.len(), 2);
    }
}
