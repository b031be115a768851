//! `severe_disability`: a member was certified with a severe disability (grade 1–2 by default),
//! new or worse than the grade held before.

use doudi_model::{Contribution, Household};
use serde::{Deserialize, Serialize};

use crate::check::{RuleSetError, Section};
use crate::clearance::Signals;
use crate::evidence::event_ids;
use crate::policy::Standard;
use crate::rule::{member_reasons, Ctx, Rule};
use crate::state::HouseholdState;

pub const ID: &str = "severe_disability";

fn grade_zh(g: u8) -> &'static str {
    match g {
        1 => "一级",
        2 => "二级",
        3 => "三级",
        _ => "四级",
    }
}

/// `[rules.severe_disability]`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SevereDisability {
    /// Certificates of this grade or more severe (smaller number) count.
    pub max_grade: i64,
    pub points: i64,
}

impl SevereDisability {
    /// A certificate of this grade counts, replacing `previous` (a new or worse disability).
    fn counts(&self, grade: u8, previous: Option<u8>) -> bool {
        i64::from(grade) <= self.max_grade && previous.is_none_or(|p| p > grade)
    }
}

impl Rule for SevereDisability {
    const ID: &'static str = ID;
    const NAME: (&'static str, &'static str) = ("重度残疾", "severe disability");

    fn validate(&self, at: Section) -> Result<(), RuleSetError> {
        at.range("max_grade", self.max_grade, 1, 4)?;
        at.points("points", self.points)
    }

    fn signals(&self, _: &Household, state: &HouseholdState, _: &Standard, out: &mut Signals) {
        for x in &state.disabilities {
            if self.counts(x.grade, x.previous_grade) {
                out.day(x.certified_on);
            }
        }
    }

    fn eval(&self, cx: &Ctx) -> Option<Contribution> {
        let state = cx.state;
        let p = self;
        let new: Vec<_> = cx
            .recent(&state.disabilities)
            .filter(|d| p.counts(d.grade, d.previous_grade))
            .collect();
        let (zh, en) = member_reasons(state, &new, |d| d.member_id, |d, rel_zh, rel_en| {
            let (on, grade) = (d.certified_on, d.grade);
            (
                format!("家庭成员（{rel_zh}）于{on}被评定为{}残疾（重度）", grade_zh(grade)),
                format!("Member ({rel_en}) was certified with a grade {grade} (severe) disability on {on}"),
            )
        })?;
        Some(Contribution::new(ID, p.points, zh, en, event_ids(&new)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use doudi_model::Household;

    use crate::testkit::*;

    #[test]
    fn new_grade_1_or_2_disability_adds_40_and_a_milder_or_repeated_grade_nothing() {
        let mut h = family_dibao_rural();
        let eval = |h: &Household, grade: u8| {
            let facts = only("M2", "2026-03-01", disability(grade, "2026-03-01"));
            eval_builtin(ID, h, &facts, "2026-03-02")
        };
        let c = eval(&h, 1).unwrap();
        assert_eq!(c.points, 40);
        assert_contains(&c.reason_zh, "一级残疾");
        assert_eq!(eval(&h, 3), None);
        // already grade 2 on the register: a second grade-2 certificate is not new
        h.members[1].disability_grade = Some(2);
        assert_eq!(eval(&h, 2), None);
        assert!(eval(&h, 1).is_some());
    }
}
