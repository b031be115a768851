//! `catastrophic_bill`: one bill whose out-of-pocket reaches a share of the household's yearly
//! capacity to pay (its yearly income, but at least the yearly 低保 standard for every member).

use doudi_model::{Contribution, Household, Money};
use serde::{Deserialize, Serialize};

use crate::check::{RuleSetError, Section};
use crate::clearance::Signals;
use crate::evidence::event_ids;
use crate::policy::Standard;
use crate::rule::{percent, Ctx, Rule, BILL_BEYOND_CAPACITY};
use crate::state::HouseholdState;

pub const ID: &str = "catastrophic_bill";

/// The household's yearly capacity to pay used by this rule.
pub fn capacity(state: &HouseholdState, standard: &Standard) -> Money {
    let income = state.monthly_income_now.times(12);
    let floor = standard
        .dibao_monthly
        .times(12)
        .times(i64::from(state.size_now().max(1)));
    income.max(floor)
}

/// `[rules.catastrophic_bill]`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CatastrophicBill {
    /// One bill's out-of-pocket at or above this share (‰) of the household's yearly capacity to pay.
    pub share_of_capacity_permille: i64,
    pub points: i64,
    /// One bill at or above this share (‰) of the capacity is beyond it: 急难 (the cause
    /// `bill_beyond_capacity`).
    pub beyond_capacity_permille: i64,
}

impl CatastrophicBill {
    /// The out-of-pocket amount from which one bill is catastrophic.
    pub fn threshold(&self, state: &HouseholdState, standard: &Standard) -> Money {
        capacity(state, standard).scale(self.share_of_capacity_permille, 1000)
    }
}

impl Rule for CatastrophicBill {
    const ID: &'static str = ID;
    const NAME: (&'static str, &'static str) = ("大额医疗账单", "catastrophic bill");
    const CAUSES: &'static [&'static str] = &[BILL_BEYOND_CAPACITY];

    fn validate(&self, at: Section) -> Result<(), RuleSetError> {
        at.share(
            "share_of_capacity_permille",
            self.share_of_capacity_permille,
        )?;
        at.points("points", self.points)?;
        at.share("beyond_capacity_permille", self.beyond_capacity_permille)?;
        if self.beyond_capacity_permille < self.share_of_capacity_permille {
            return at.invalid(
                "beyond_capacity_permille",
                "must not be below rules.catastrophic_bill.share_of_capacity_permille",
            );
        }
        Ok(())
    }

    fn signals(
        &self,
        _: &Household,
        state: &HouseholdState,
        standard: &Standard,
        out: &mut Signals,
    ) {
        let threshold = self.threshold(state, standard);
        for x in &state.settlements {
            if x.out_of_pocket > Money::ZERO && x.out_of_pocket >= threshold {
                out.day(x.settled_on);
            }
        }
    }

    fn eval(&self, cx: &Ctx) -> Option<Contribution> {
        let state = cx.state;
        let p = self;
        let cap = capacity(state, &cx.standard);
        let threshold = cap.scale(p.share_of_capacity_permille, 1000);
        let bills: Vec<_> = cx
            .recent(&state.settlements)
            .filter(|s| s.out_of_pocket > Money::ZERO && s.out_of_pocket >= threshold)
            .collect();
        let worst = bills.iter().max_by_key(|s| s.out_of_pocket)?;
        let share = worst.out_of_pocket.ratio_permille(cap).unwrap_or(0);
        let more = bills.len() - 1;
        let (more_zh, more_en) = if more > 0 {
            (
                format!("（另有{more}笔类似账单）"),
                format!(" ({more} more such bills)"),
            )
        } else {
            (String::new(), String::new())
        };
        let (settled, paid, pct) = (worst.settled_on, worst.out_of_pocket, percent(share));
        let zh = format!("{settled}一次就医自付{paid}元，达到家庭年支付能力{cap}元的{pct}%{more_zh}");
        let en = format!(
            "A single bill settled on {settled} left {paid} yuan to pay out of pocket, {pct}% of the household's yearly capacity to pay ({cap} yuan){more_en}"
        );
        let ids = event_ids(&bills);
        let beyond = share >= p.beyond_capacity_permille;
        Some(
            Contribution::new(ID, p.points, zh, en, ids)
                .with_cause(beyond.then_some(BILL_BEYOND_CAPACITY)),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::testkit::*;
    use doudi_model::Category;

    #[test]
    fn one_bill_of_40_percent_of_yearly_capacity_to_pay_adds_35() {
        let h = family_dibao_rural(); // 2,500 a month → 30,000 a year; 40 % = 12,000
        let eval = |oop: i64| {
            let facts = only("M2", "2026-02-10", inpatient(oop, "2026-02-10"));
            eval_builtin(ID, &h, &facts, "2026-03-01")
        };
        assert_eq!(eval(1_199_999), None);
        let c = eval(1_200_000).unwrap();
        assert_eq!(c.points, 35);
        assert_contains(&c.reason_zh, "12000.00元");
        // no income: capacity is the yearly 低保 standard (732 × 12 = 8,784; 40 % = 3,513.60)
        let lone = single_elderly(Category::Tekun);
        let facts = only("M1", "2026-02-10", inpatient(351_360, "2026-02-10"));
        assert!(eval_builtin(ID, &lone, &facts, "2026-03-01").is_some());
    }
}
