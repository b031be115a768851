//! `medical_burden`: the household's out-of-pocket medical spend over the trailing 12 months,
//! against last year's per-capita disposable income of the local standard (50 % / 100 % tiers).

use doudi_model::{Contribution, Money};
use serde::{Deserialize, Serialize};

use crate::check::{RuleSetError, Section};
use crate::clearance::Signals;
use crate::policy::Standard;
use crate::rule::{percent, Ctx, Rule};
use crate::state::HouseholdState;

pub const ID: &str = "medical_burden";

/// `[rules.medical_burden]`: two tiers of out-of-pocket spending against income.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MedicalBurden {
    /// Lower tier: trailing-12-month out-of-pocket above this share (‰) of per-capita disposable income.
    pub above_half_permille: i64,
    pub above_half_points: i64,
    /// Upper tier.
    pub above_full_permille: i64,
    pub above_full_points: i64,
}

impl Rule for MedicalBurden {
    const ID: &'static str = ID;

    fn validate(&self, at: Section) -> Result<(), RuleSetError> {
        at.share("above_half_permille", self.above_half_permille)?;
        at.share("above_full_permille", self.above_full_permille)?;
        if self.above_full_permille <= self.above_half_permille {
            return at.invalid(
                "above_full_permille",
                "must be above rules.medical_burden.above_half_permille",
            );
        }
        at.points("above_half_points", self.above_half_points)?;
        at.points("above_full_points", self.above_full_points)
    }

    fn signals(&self, state: &HouseholdState, standard: &Standard, out: &mut Signals) {
        // A heavy medical year: the lower tier reached.
        if state.settlements.is_empty() {
            return;
        }
        let heavy = standard
            .per_capita_disposable_yearly
            .scale(self.above_half_permille, 1000);
        for p in &state.income_history {
            if p.out_of_pocket_12m > Money::ZERO && p.out_of_pocket_12m >= heavy {
                out.day(p.on);
            }
        }
    }

    fn eval(&self, cx: &Ctx) -> Option<Contribution> {
        let state = cx.state;
        if state.settlements.is_empty() {
            return None;
        }
        let p = self;
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
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ruleset::RuleSet;
    use doudi_model::Household;

    fn evaluate(r: &RuleSet, h: &Household, s: &HouseholdState) -> Option<Contribution> {
        r.rules.medical_burden.eval(&r.context(h, s))
    }
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
