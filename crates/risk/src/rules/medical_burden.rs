//! `medical_burden`: the household's out-of-pocket medical spend over the trailing 12 months,
//! against last year's per-capita disposable income of the local standard. Households that left
//! poverty (脱贫不稳定户, 边缘易致贫户) are measured at 50 % of it, others at 100 % (DOMAIN.md: one
//! county's 医保 rule); twice the household's threshold weighs more. A region may set its own
//! shares (`[[rules.medical_burden.regions]]`, the longest prefix wins).

use doudi_model::{Category, Contribution, Household, Money, RegionCode};
use serde::{Deserialize, Serialize};

use crate::check::{RuleSetError, Section};
use crate::clearance::Signals;
use crate::policy::{check_regions, regional, Regional, Standard};
use crate::rule::{percent, Ctx, Rule};
use crate::state::HouseholdState;

pub const ID: &str = "medical_burden";

/// `[rules.medical_burden]`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MedicalBurden {
    /// The categories of households that left poverty.
    pub left_poverty: Vec<Category>,
    /// Their threshold: this share (‰) of per-capita disposable income ...
    pub left_poverty_permille: i64,
    /// ... and everyone else's.
    pub others_permille: i64,
    /// Points at the household's threshold ...
    pub points: i64,
    /// ... and at twice it.
    pub double_points: i64,
    /// Regions that measure with other shares.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub regions: Vec<MedicalBurdenRegion>,
}

/// `[[rules.medical_burden.regions]]`: the shares of a region.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MedicalBurdenRegion {
    pub prefix: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    pub left_poverty_permille: i64,
    pub others_permille: i64,
}

impl Regional for MedicalBurdenRegion {
    fn prefix(&self) -> &str {
        &self.prefix
    }
}

impl MedicalBurden {
    /// The household's threshold (‰ of per-capita disposable income) in `region`.
    pub fn threshold_permille(&self, category: Category, region: &RegionCode) -> i64 {
        let (left, others) = match regional(&self.regions, region) {
            Some(r) => (r.left_poverty_permille, r.others_permille),
            None => (self.left_poverty_permille, self.others_permille),
        };
        if self.left_poverty.contains(&category) {
            left
        } else {
            others
        }
    }
}

impl Rule for MedicalBurden {
    const ID: &'static str = ID;
    const NAME: (&'static str, &'static str) = ("医疗费用负担", "medical burden");

    fn validate(&self, at: Section) -> Result<(), RuleSetError> {
        at.share("left_poverty_permille", self.left_poverty_permille)?;
        at.share("others_permille", self.others_permille)?;
        at.points("points", self.points)?;
        at.points("double_points", self.double_points)?;
        if self.double_points < self.points {
            return at.invalid(
                "double_points",
                "must not be less than rules.medical_burden.points (twice the burden weighs more)",
            );
        }
        check_regions(&at.key("regions"), &self.regions, |at, r| {
            at.share("left_poverty_permille", r.left_poverty_permille)?;
            at.share("others_permille", r.others_permille)
        })
    }

    fn signals(
        &self,
        household: &Household,
        state: &HouseholdState,
        standard: &Standard,
        out: &mut Signals,
    ) {
        // A heavy medical year: the household's threshold reached.
        if state.settlements.is_empty() {
            return;
        }
        let permille = self.threshold_permille(household.category, state.region_code);
        let heavy = standard.per_capita_disposable_yearly.scale(permille, 1000);
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
        let income = cx.standard.per_capita_disposable_yearly;
        // Bills of the last 12 months whose risk is not cleared.
        let oop: Money = state
            .settlements_12m()
            .filter(|s| cx.counts(s.settled_on))
            .map(|s| s.out_of_pocket)
            .sum();
        let ratio = oop.ratio_permille(income)?;
        let threshold = self.threshold_permille(cx.household.category, state.region_code);
        let (points, tier) = if ratio >= threshold.saturating_mul(2) {
            (self.double_points, threshold.saturating_mul(2))
        } else if ratio >= threshold {
            (self.points, threshold)
        } else {
            return None;
        };
        Some(Contribution::new(
            ID,
            points,
            format!(
                "近12个月自付医疗费用合计{oop}元，达到上年人均可支配收入{income}元的{}%（超过{}%）",
                percent(ratio),
                percent(tier)
            ),
            format!(
                "Out-of-pocket medical spending over the last 12 months totals {oop} yuan, {}% of last year's per-capita disposable income of {income} yuan (above {}%)",
                percent(ratio),
                percent(tier)
            ),
            state
                .settlements_12m()
                .filter(|s| s.out_of_pocket.fen() > 0 && cx.counts(s.settled_on))
                .map(|s| s.event_id.to_string())
                .collect(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ruleset::RuleSet;
    use doudi_model::Household;

    use crate::testkit::*;

    /// The contribution for `oop_fen` out of pocket in two bills in February 2026 (and an old
    /// bill of 2025, not counted), for `h` under `rules`.
    fn burden(rules: &RuleSet, h: &Household, oop_fen: i64) -> Option<Contribution> {
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
        eval_rule(rules, ID, h, &facts, "2026-03-01")
    }

    #[test]
    fn out_of_pocket_above_half_of_disposable_income_adds_30_and_above_all_of_it_55() {
        let rules = RuleSet::builtin();
        // left poverty (边缘易致贫户): measured at 50 %; rural: 18,000 a year
        let h = family(Category::EdgeProne);
        let eval = |oop_fen: i64| burden(&rules, &h, oop_fen);
        assert_eq!(eval(899_999), None);
        let half = eval(900_000).unwrap();
        assert_eq!(half.points, 30);
        assert_eq!(half.event_ids, vec!["E1", "E2"]);
        assert_contains(&half.reason_zh, "9000.00元");
        assert_eq!(eval(1_800_000).map(|c| c.points), Some(55));
    }

    #[test]
    fn households_that_did_not_leave_poverty_are_measured_at_all_of_disposable_income() {
        let rules = RuleSet::builtin();
        let h = family_dibao_rural();
        let eval = |oop_fen: i64| burden(&rules, &h, oop_fen).map(|c| c.points);
        assert_eq!(eval(900_000), None);
        assert_eq!(eval(1_799_999), None);
        assert_eq!(eval(1_800_000), Some(30));
        assert_eq!(eval(3_600_000), Some(55));
        // unstable (脱贫不稳定户) left poverty too
        let u = family(Category::Unstable);
        assert_eq!(burden(&rules, &u, 900_000).map(|c| c.points), Some(30));
    }

    #[test]
    fn a_region_may_measure_with_its_own_shares() {
        let mut rules = RuleSet::builtin();
        rules.rules.medical_burden.regions = vec![MedicalBurdenRegion {
            prefix: "4415".into(),
            name: String::new(),
            left_poverty_permille: 300,
            others_permille: 600,
        }];
        assert_eq!(rules.validate(), Ok(()));
        // the test households live in 441521…: 30 % and 60 % of 18,000 (the default, rural)
        let dibao = family_dibao_rural();
        let edge = family(Category::EdgeProne);
        assert_eq!(burden(&rules, &edge, 539_999), None);
        assert_eq!(burden(&rules, &edge, 540_000).map(|c| c.points), Some(30));
        assert_eq!(burden(&rules, &dibao, 540_000), None);
        assert_eq!(
            burden(&rules, &dibao, 1_080_000).map(|c| c.points),
            Some(30)
        );
        rules.rules.medical_burden.regions[0].prefix = "44a".into();
        let e = rules.validate().unwrap_err();
        assert_eq!(e.key(), "rules.medical_burden.regions[0].prefix", "{e}");
        assert_eq!(e.rule(), Some("medical_burden"));
    }
}
