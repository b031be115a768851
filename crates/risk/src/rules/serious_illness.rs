//! `serious_illness`: a serious or chronic disease (大病/慢病) was diagnosed.

use doudi_model::{Contribution, Household};
use serde::{Deserialize, Serialize};

use crate::check::{RuleSetError, Section};
use crate::clearance::Signals;
use crate::evidence::event_ids;
use crate::policy::Standard;
use crate::rule::{member_reasons, Ctx, Rule};
use crate::state::HouseholdState;

pub const ID: &str = "serious_illness";

/// `[rules.serious_illness]`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SeriousIllness {
    pub points: i64,
}

impl Rule for SeriousIllness {
    const ID: &'static str = ID;
    const NAME: (&'static str, &'static str) = ("重大疾病或慢性病", "serious illness");

    fn validate(&self, at: Section) -> Result<(), RuleSetError> {
        at.points("points", self.points)
    }

    fn signals(&self, _: &Household, state: &HouseholdState, _: &Standard, out: &mut Signals) {
        out.days(&state.serious_illnesses);
    }

    fn eval(&self, cx: &Ctx) -> Option<Contribution> {
        let state = cx.state;
        let recent: Vec<_> = cx.recent(&state.serious_illnesses).collect();
        let (zh, en) = member_reasons(state, &recent, |i| i.member_id, |i, rel_zh, rel_en| {
            let on = i.diagnosed_on;
            (
                format!("家庭成员（{rel_zh}）于{on}确诊重大疾病或慢性病"),
                format!("Member ({rel_en}) was diagnosed with a serious or chronic disease on {on}"),
            )
        })?;
        Some(Contribution::new(ID, self.points, zh, en, event_ids(&recent)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::testkit::*;

    #[test]
    fn serious_illness_diagnosis_adds_45_with_its_date() {
        let h = family_dibao_rural();
        let facts = only("M2", "2026-03-05", diagnosis("C34.9", "2026-03-05"));
        let c = eval_builtin(ID, &h, &facts, "2026-03-06").unwrap();
        assert_eq!(c.points, 45);
        assert_eq!(
            c.reason_zh,
            "家庭成员（配偶）于2026-03-05确诊重大疾病或慢性病"
        );
        assert_eq!(c.event_ids, vec!["E1"]);
        // half a year later it is no longer a fresh signal
        assert_eq!(eval_builtin(ID, &h, &facts, "2026-10-01"), None);
    }
}
