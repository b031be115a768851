//! `income_below_line`: per-capita monthly income after deductions (刚性支出: medical
//! out-of-pocket and schooling; 就业成本: a share of wages) was at or above a line at registration
//! and fell below it (a death, a birth, a job loss, a wage cut, heavy medical bills), or fell
//! sharply. Uses the lowest point since the risk began (until it is cleared), so a later rise does
//! not abruptly lower the score: it opens a review instead.

use doudi_model::{Contribution, Money};
use serde::{Deserialize, Serialize};

use crate::check::{RuleSetError, Section};
use crate::rule::{percent, Ctx, Lapse, Rule};
use crate::state::{HouseholdState, IncomePoint};

pub const ID: &str = "income_below_line";

/// `[rules.income_below_line]`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IncomeBelowLine {
    /// Per-capita income was at or above the 低保边缘 line at registration and fell below it.
    pub below_edge: i64,
    /// Per-capita income was at or above the 低保 standard at registration and fell below it.
    pub below_dibao: i64,
    /// A fall across a line counts only when it is at least this share (‰) of the income at
    /// registration (a dip of a few yuan across the line is not a risk signal).
    pub min_drop_permille: i64,
    /// Per-capita income fell by at least this share (‰) of the income at registration, whatever
    /// the lines ...
    pub sharp_drop_permille: i64,
    /// ... for these points (when no line was crossed).
    pub sharp_drop: i64,
}

impl Rule for IncomeBelowLine {
    const ID: &'static str = ID;
    const NAME: (&'static str, &'static str) = ("收入下降", "fall in income");

    fn validate(&self, at: Section) -> Result<(), RuleSetError> {
        at.points("below_edge", self.below_edge)?;
        at.points("below_dibao", self.below_dibao)?;
        at.range("min_drop_permille", self.min_drop_permille, 0, 1000)?;
        at.range("sharp_drop_permille", self.sharp_drop_permille, 1, 1000)?;
        at.points("sharp_drop", self.sharp_drop)
    }

    fn change(&self, lapse: &Lapse, _: &HouseholdState) -> (String, String) {
        lapse.income_back(Self::NAME)
    }

    fn eval(&self, cx: &Ctx) -> Option<Contribution> {
        let state = cx.state;
        if state.size_now() == 0 {
            return None;
        }
        let p = self;
        let d = cx.deductions;
        let dibao = cx.standard.dibao_monthly;
        let edge = cx.standard.edge_line_monthly();
        let assessed = |pt: &IncomePoint| d.per_capita_for_risk(pt.parts(), cx.pupils);
        let baseline = d.per_capita_for_risk(state.parts_at_registration(), cx.pupils);
        let lowest = cx
            .recent(&state.income_history)
            .map(|pt| (assessed(pt), pt))
            .min_by_key(|(pc, _)| *pc)?;
        let (low, pt) = lowest;
        let drop = baseline - low;
        if drop <= Money::ZERO {
            return None;
        }
        let drop_permille = drop.ratio_permille(baseline).unwrap_or(0);
        let material = drop_permille >= p.min_drop_permille;
        // (points, line, zh, en); the heaviest that applies
        let mut best: Option<(i64, Money, &str, &str)> = None;
        let mut consider = |c: (i64, Money, &'static str, &'static str)| {
            if c.0 > 0 && best.is_none_or(|b| c.0 > b.0) {
                best = Some(c);
            }
        };
        if material && baseline >= dibao && low < dibao {
            consider((
                p.below_dibao,
                dibao,
                "当地低保标准",
                "the local 低保 standard",
            ));
        }
        if material && baseline >= edge && low < edge {
            consider((
                p.below_edge,
                edge,
                "低保边缘线",
                "the 低保边缘 (near-poverty) line",
            ));
        }
        if drop_permille >= p.sharp_drop_permille {
            consider((p.sharp_drop, Money::ZERO, "", ""));
        }
        let (points, line, zh_line, en_line) = best?;
        let (zh_why, en_why) = if line > Money::ZERO {
            (
                format!("，低于{zh_line}{line}元"),
                format!(", below {en_line} of {line} yuan"),
            )
        } else {
            (
                format!("，下降{}%", percent(drop_permille)),
                format!(", down {}%", percent(drop_permille)),
            )
        };
        let (cost, medical, school) = d.amounts(pt.parts(), cx.pupils);
        let mut zh_ded = Vec::new();
        let mut en_ded = Vec::new();
        if cost > Money::ZERO {
            zh_ded.push(format!("就业成本{cost}元"));
            en_ded.push(format!("{cost} yuan cost of working"));
        }
        if medical > Money::ZERO {
            zh_ded.push(format!("医疗自付{medical}元"));
            en_ded.push(format!("{medical} yuan medical out-of-pocket"));
        }
        if school > Money::ZERO {
            zh_ded.push(format!("就学{school}元"));
            en_ded.push(format!("{school} yuan schooling"));
        }
        let (zh_ded, en_ded) = if zh_ded.is_empty() {
            (String::new(), String::new())
        } else {
            (
                format!("（已扣除每月{}）", zh_ded.join("、")),
                format!(" (after deducting a monthly {})", en_ded.join(", ")),
            )
        };
        let now_pc = d.per_capita_for_risk(state.parts_now(), cx.pupils);
        let now = if now_pc != low {
            (
                format!("，目前为{now_pc}元"),
                format!("; it is {now_pc} yuan now"),
            )
        } else {
            (String::new(), String::new())
        };
        let event_ids = state
            .income_history
            .iter()
            .filter(|q| cx.counts(q.on) && assessed(q) < baseline)
            .filter(|q| line == Money::ZERO || assessed(q) < line)
            .map(|q| q.event_id.to_string())
            .collect();
        let zh = format!(
            "家庭人均月收入由登记时的{baseline}元降至{low}元（{}，{}人）{zh_ded}{zh_why}{}",
            pt.on, pt.household_size, now.0
        );
        let en = format!(
                "Per-capita monthly income fell from {baseline} yuan at registration to {low} yuan ({}, {} {}){en_ded}{en_why}{}",
                pt.on,
                pt.household_size,
                if pt.household_size == 1 { "person" } else { "people" },
                now.1
            );
        Some(Contribution::new(ID, points, zh, en, event_ids))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use doudi_model::Household;

    use crate::testkit::*;
    use doudi_model::{Category, Money};

    /// The test family with the head earning `wage` yuan: per capita after deductions is
    /// (wage × 0.8 + 500 − 100 for the pupil) / 3.
    fn earning(wage: i64) -> Household {
        let mut h = family(Category::EdgeProne);
        h.members[0].monthly_income = Money::from_yuan(wage);
        h
    }

    fn eval(h: &Household, facts: &[doudi_model::Fact], day: &str) -> Option<Contribution> {
        eval_builtin(ID, h, facts, day)
    }

    #[test]
    fn job_loss_pushing_income_below_the_dibao_line_adds_25_and_a_new_job_does_not_undo_it() {
        // (2,800 × 0.8 + 500 − 100) / 3 = 880 ≥ 732; without the wage: (500 − 100) / 3 = 133.33
        let h = earning(2800);
        let lost = only("M1", "2026-02-01", job_lost("2026-01-31", None));
        let c = eval(&h, &lost, "2026-02-02").unwrap();
        assert_eq!(c.points, 25);
        assert_eq!(c.event_ids, vec!["E1"]);
        assert_eq!(
            c.reason_zh,
            "家庭人均月收入由登记时的880.00元降至133.33元（2026-01-31，3人）（已扣除每月就学100.00元），低于当地低保标准732.00元"
        );
        assert_eq!(
            c.reason_en,
            "Per-capita monthly income fell from 880.00 yuan at registration to 133.33 yuan (2026-01-31, 3 people) (after deducting a monthly 100.00 yuan schooling), below the local 低保 standard of 732.00 yuan"
        );
        let mut both = lost.to_vec();
        both.push(fact(
            "E2",
            "M1",
            "2026-03-01",
            job_started("2026-03-01", 280_000),
        ));
        let c2 = eval(&h, &both, "2026-03-02").unwrap();
        assert_eq!(c2.points, 25);
        assert_ends(&c2.reason_en, "; it is 880.00 yuan now");
    }

    #[test]
    fn medical_bills_above_a_tenth_of_income_are_deducted_and_can_push_below_the_edge_line() {
        // (4,000 × 0.8 + 500 − 100) / 3 = 1,200 ≥ edge 1,098. A bill of 12,600 out of pocket,
        // less 10 % of the yearly 54,000 income, is 7,200 a year = 600 a month: 3,000 / 3 = 1,000.
        let h = earning(4000);
        let facts = only("M2", "2026-03-01", inpatient(1_260_000, "2026-03-01"));
        let c = eval(&h, &facts, "2026-03-02").unwrap();
        assert_eq!(c.points, 15);
        assert_eq!(
            c.reason_en,
            "Per-capita monthly income fell from 1200.00 yuan at registration to 1000.00 yuan (2026-03-01, 3 people) (after deducting a monthly 800.00 yuan cost of working, 600.00 yuan medical out-of-pocket, 100.00 yuan schooling), below the 低保边缘 (near-poverty) line of 1098.00 yuan"
        );
        // ordinary spending (within 10 % of income) is not deducted
        let small = only("M2", "2026-03-01", inpatient(540_000, "2026-03-01"));
        assert_eq!(eval(&h, &small, "2026-03-02"), None);
    }

    /// A sharp drop counts 15, whether it crosses no line or the household was below the line
    /// already: (monthly wage, the fact, the day after, the end of its Chinese or English reason).
    #[test]
    fn a_sharp_drop_that_crosses_no_line_adds_15() {
        type Reason = fn(&Contribution) -> &str;
        let cases: [(i64, [doudi_model::Fact; 1], &str, Reason, &str); 2] = [
            // (8,000 × 0.8 + 400) / 3 = 2,266.66 → wage cut to 4,500: (4,500 × 0.8 + 400) / 3 = 1,333.33
            (
                8000,
                only("M1", "2026-03-01", wage_changed("2026-03-01", 450_000)),
                "2026-03-02",
                |c| &c.reason_zh,
                "，下降41.1%",
            ),
            // a 低保 household at (1,000 × 0.8 + 400) / 3 = 400: losing the job is a sharp drop only
            (
                1000,
                only("M1", "2026-02-01", job_lost("2026-01-31", None)),
                "2026-02-02",
                |c| &c.reason_en,
                ", down 66.6%",
            ),
        ];
        for (wage, facts, day, reason, end) in cases {
            let c = eval(&earning(wage), &facts, day).unwrap();
            assert_eq!(c.points, 15, "{wage}");
            assert_ends(reason(&c), end);
        }
    }

    #[test]
    fn a_dip_of_less_than_a_tenth_across_the_line_does_not_count() {
        // (2,500 × 0.8 + 400) / 3 = 800 → wage 2,230: 728 (below 732, but only 9 % down)
        let h = earning(2500);
        let dip = only("M1", "2026-03-01", wage_changed("2026-03-01", 223_000));
        assert_eq!(eval(&h, &dip, "2026-03-02"), None);
        // wage 2,200: 720, 10 % down: counts
        let fall = only("M1", "2026-03-01", wage_changed("2026-03-01", 220_000));
        assert_eq!(eval(&h, &fall, "2026-03-02").map(|c| c.points), Some(25));
    }

    #[test]
    fn a_birth_is_not_a_fall_in_income() {
        let h = earning(2800);
        let facts = only("M2", "2026-03-01", birth("2026-03-01"));
        assert_eq!(eval(&h, &facts, "2026-03-02"), None);
    }

}
