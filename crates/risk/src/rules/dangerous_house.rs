//! `dangerous_house`: the home was appraised dangerous (危房): grade C less, grade D more.

use doudi_model::event::HouseGrade;
use doudi_model::{Contribution, Household};
use serde::{Deserialize, Serialize};

use crate::check::{RuleSetError, Section};
use crate::clearance::Signals;
use crate::evidence::event_ids;
use crate::policy::Standard;
use crate::rule::{Ctx, Lapse, Rule};
use crate::state::HouseholdState;

pub const ID: &str = "dangerous_house";

/// `[rules.dangerous_house]`: points by appraisal grade.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DangerousHouse {
    pub grade_c: i64,
    pub grade_d: i64,
}

impl Rule for DangerousHouse {
    const ID: &'static str = ID;
    const NAME: (&'static str, &'static str) = ("危房", "dangerous house");

    fn validate(&self, at: Section) -> Result<(), RuleSetError> {
        at.all_points(&[("grade_c", self.grade_c), ("grade_d", self.grade_d)])
    }

    fn signals(&self, _: &Household, state: &HouseholdState, _: &Standard, out: &mut Signals) {
        // A dangerous home stays a risk until the household has moved.
        for x in &state.dangerous_house {
            let until = state.moved_since(x.appraised_on);
            out.span(x.appraised_on, until.unwrap_or(state.as_of_date()));
        }
    }

    fn change(&self, lapse: &Lapse, state: &HouseholdState) -> (String, String) {
        lapse.home(Self::NAME, state)
    }

    fn eval(&self, cx: &Ctx) -> Option<Contribution> {
        let state = cx.state;
        let p = self;
        let points = |g: HouseGrade| match g {
            HouseGrade::C => p.grade_c,
            HouseGrade::D => p.grade_d,
        };
        let recent: Vec<_> = cx.recent(&state.dangerous_house).collect();
        let worst = recent
            .iter()
            .max_by_key(|d| (points(d.grade), d.appraised_on))?;
        let (zh, en) = match worst.grade {
            HouseGrade::C => (
                "C级危房（局部危险）",
                "grade C dangerous house (partly dangerous)",
            ),
            HouseGrade::D => (
                "D级危房（整栋危险）",
                "grade D dangerous house (wholly dangerous)",
            ),
        };
        Some(Contribution::new(
            ID,
            points(worst.grade),
            format!("住房于{}被鉴定为{zh}", worst.appraised_on),
            format!("The home was appraised a {en} on {}", worst.appraised_on),
            event_ids(&recent),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::testkit::*;

    #[test]
    fn house_appraised_dangerous_adds_25_for_grade_c_and_40_for_grade_d() {
        let h = family_dibao_rural();
        let facts = only("M1", "2026-03-01", dangerous(HouseGrade::C, "2026-03-01"));
        let c = eval_builtin(ID, &h, &facts, "2026-03-02").unwrap();
        assert_eq!(c.points, 25);
        let mut both = facts.to_vec();
        both.push(fact(
            "E2",
            "M1",
            "2026-03-10",
            dangerous(HouseGrade::D, "2026-03-10"),
        ));
        let d = eval_builtin(ID, &h, &both, "2026-03-11").unwrap();
        assert_eq!(d.points, 40);
        assert_eq!(d.reason_zh, "住房于2026-03-10被鉴定为D级危房（整栋危险）");
        assert_eq!(d.event_ids, vec!["E1", "E2"]);
    }
}
