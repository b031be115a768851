//! `serious_illness`: a serious or chronic disease (大病/慢病) was diagnosed.

use doudi_model::Household;

use super::{relation_en, relation_of, relation_zh, Ctx};
use crate::assess::Contribution;
use crate::ruleset::RuleSet;
use crate::state::HouseholdState;

pub const ID: &str = "serious_illness";

pub fn evaluate(
    rules: &RuleSet,
    household: &Household,
    state: &HouseholdState,
) -> Option<Contribution> {
    eval(&Ctx::new(rules, household, state))
}

pub fn eval(cx: &Ctx) -> Option<Contribution> {
    let (rules, state) = (cx.rules, cx.state);
    let recent: Vec<_> = state
        .serious_illnesses
        .iter()
        .filter(|i| cx.counts(i.diagnosed_on))
        .collect();
    if recent.is_empty() {
        return None;
    }
    let zh: Vec<String> = recent
        .iter()
        .map(|i| {
            format!(
                "家庭成员（{}）于{}确诊重大疾病或慢性病",
                relation_zh(relation_of(state, i.member_id)),
                i.diagnosed_on
            )
        })
        .collect();
    let en: Vec<String> = recent
        .iter()
        .map(|i| {
            format!(
                "Member ({}) was diagnosed with a serious or chronic disease on {}",
                relation_en(relation_of(state, i.member_id)),
                i.diagnosed_on
            )
        })
        .collect();
    Some(Contribution {
        rule_id: ID.to_string(),
        points: rules.rules.serious_illness.points,
        reason_zh: zh.join("；"),
        reason_en: en.join("; "),
        event_ids: recent.iter().map(|i| i.event_id.to_string()).collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::derive_state;
    use crate::testkit::*;

    #[test]
    fn serious_illness_diagnosis_adds_45_with_its_date() {
        let rules = RuleSet::builtin();
        let h = family_dibao_rural();
        let facts = [fact(
            "E1",
            "M2",
            "2026-03-05",
            diagnosis("C34.9", "2026-03-05"),
        )];
        let c = evaluate(&rules, &h, &derive_state(&h, &facts, at("2026-03-06"))).unwrap();
        assert_eq!(c.points, 45);
        assert_eq!(
            c.reason_zh,
            "家庭成员（配偶）于2026-03-05确诊重大疾病或慢性病"
        );
        assert_eq!(c.event_ids, vec!["E1"]);
        // half a year later it is no longer a fresh signal
        assert_eq!(
            evaluate(&rules, &h, &derive_state(&h, &facts, at("2026-10-01"))),
            None
        );
    }
}
