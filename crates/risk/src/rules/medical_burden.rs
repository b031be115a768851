//! `medical_burden`: the household's out-of-pocket medical spend over the trailing 12 months,
//! against last year's per-capita disposable income of the local standard (50 % / 100 % tiers).

use doudi_model::{Household, Money};

use super::{percent, Ctx};
use crate::assess::Contribution;
use crate::ruleset::RuleSet;
use crate::state::HouseholdState;

pub const ID: &str = "medical_burden";

pub fn evaluate(
    rules: &RuleSet,
    household: &Household,
    state: &HouseholdState,
) -> Option<Contribution> {
    eval(&Ctx::new(rules, household, state))
}

pub fn eval(cx: &Ctx) -> Option<Contribution> {
    let (rules, state) = (cx.rules, cx.state);
    if state.settlements.is_empty() {
        return None;
    }
    let p = &rules.rules.medical_burden;
    let income = cx.standard.per_capita_disposable_yearly;
    // Bills of the last 12 months whose risk is not cleared.
    let oop: Money = state
        .settlements_12m()
        .filter(|s| cx.counts(s.settled_on))
        .map(|s| s.out_of_pocket)
        .sum();
    let ratio = oop.ratio_permille(income)?;
    let (points, tier) = if ratio >= p.above_full_permille {
        (p.above_full_points, p.above_full_permille)
    } else if ratio >= p.above_half_permille {
        (p.above_half_points, p.above_half_permille)
    } else {
        return None;
    };
    Some(Contribution {
        rule_id: ID.to_string(),
        points,
        reason_zh: format!(
            "近12个月自付医疗费用合计{oop}元，达到上年人均可支配收入{income}元的{}%（超过{}%）",
            percent(ratio),
            percent(tier)
        ),
        reason_en: format!(
            "Out-of-pocket medical spending over the last 12 months totals {oop} yuan, {}% of last year's per-capita disposable income of {income} yuan (above {}%)",
            percent(ratio),
            percent(tier)
        ),
        event_ids: state
            .settlements_12m()
            .filter(|s| s.out_of_pocket.fen() > 0 && cx.counts(s.settled_on))
            .map(|s| s.event_id.to_string())
            .collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::derive_state;
    use crate::testkit::*;

    #[test]
    fn out_of_pocket_above_half_of_disposable_income_adds_30_and_above_all_of_it_55() {
        let rules = RuleSet::builtin();
        let h = family_dibao_rural(); // rural: 18,000 a year
        let eval = |oop_fen: i64| {
            let facts = [
                fact(
                    "E1",
                    "M2",
                    "2026-01-10",
                    inpatient(oop_fen / 2, "2026-01-10"),
                ),
                fact(
                    "E2",
                    "M2",
                    "2026-02-10",
                    inpatient(oop_fen - oop_fen / 2, "2026-02-10"),
                ),
                // more than 12 months old: not counted
                fact("E0", "M2", "2025-01-10", inpatient(5_000_000, "2025-01-10")),
            ];
            evaluate(&rules, &h, &derive_state(&h, &facts, at("2026-03-01")))
        };
        assert_eq!(eval(899_999), None);
        let half = eval(900_000).unwrap();
        assert_eq!(half.points, 30);
        assert_eq!(half.event_ids, vec!["E1", "E2"]);
        assert!(half.reason_zh.contains("9000.00元"), "{}", half.reason_zh);
        assert_eq!(eval(1_800_000).map(|c| c.points), Some(55));
    }
}
