//! `job_loss`: an earning member lost their job, registered as unemployed, or their social-insurance
//! contributions stopped. Per member the strongest signal counts; members add up; a bonus when,
//! right after a loss, nobody in the household was employed.

use doudi_model::{Contribution, Household};
use serde::{Deserialize, Serialize};

use crate::check::{RuleSetError, Section};
use crate::clearance::Signals;
use crate::evidence::event_ids;
use crate::policy::Standard;
use crate::rule::{relation_en, relation_of, relation_zh, Ctx, Rule, INCOME_GONE};
use crate::state::{EmploymentLoss, EmploymentLossKind, HouseholdState};

pub const ID: &str = "job_loss";

fn describe(state: &HouseholdState, l: &EmploymentLoss) -> (String, String) {
    let rel = relation_of(state, l.member_id);
    let (zh, en) = (relation_zh(rel), relation_en(rel));
    match l.kind {
        EmploymentLossKind::JobLost => match l.monthly_wage_lost {
            Some(w) => (
                format!("家庭成员（{zh}）于{}失去工作（原月工资{w}元）", l.on),
                format!(
                    "Member ({en}) lost their job on {} (monthly wage was {w} yuan)",
                    l.on
                ),
            ),
            None => (
                format!("家庭成员（{zh}）于{}失去工作", l.on),
                format!("Member ({en}) lost their job on {}", l.on),
            ),
        },
        EmploymentLossKind::UnemploymentRegistered => (
            format!("家庭成员（{zh}）于{}登记失业", l.on),
            format!("Member ({en}) registered as unemployed on {}", l.on),
        ),
        EmploymentLossKind::ContributionsStopped => {
            let n = l.months_unpaid.unwrap_or(0);
            (
                format!("家庭成员（{zh}）社保自{}起停缴已{n}个月", l.on),
                format!(
                    "Member ({en}): social-insurance contributions unpaid for {n} months since {}",
                    l.on
                ),
            )
        }
    }
}

/// The points one signal is worth (0: it does not count).
pub fn weight(p: &JobLoss, l: &EmploymentLoss) -> i64 {
    match l.kind {
        EmploymentLossKind::JobLost => p.job_lost,
        EmploymentLossKind::UnemploymentRegistered => p.unemployment_registered,
        EmploymentLossKind::ContributionsStopped => {
            if i64::from(l.months_unpaid.unwrap_or(0)) >= p.contributions_stopped_min_months {
                p.contributions_stopped
            } else {
                0
            }
        }
    }
}

/// On equal weight, the more definite signal describes the member.
fn rank(k: EmploymentLossKind) -> u8 {
    match k {
        EmploymentLossKind::JobLost => 2,
        EmploymentLossKind::UnemploymentRegistered => 1,
        EmploymentLossKind::ContributionsStopped => 0,
    }
}

/// `[rules.job_loss]`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobLoss {
    /// Contributions must have stopped for at least this many months to count.
    pub contributions_stopped_min_months: i64,
    pub contributions_stopped: i64,
    pub unemployment_registered: i64,
    pub job_lost: i64,
    /// Added once when, right after a loss, nobody in the household was employed.
    pub no_earner_left_bonus: i64,
}

impl Rule for JobLoss {
    const ID: &'static str = ID;
    const NAME: (&'static str, &'static str) = ("失业", "job loss");
    const CAUSES: &'static [&'static str] = &[INCOME_GONE];

    fn validate(&self, at: Section) -> Result<(), RuleSetError> {
        at.range(
            "contributions_stopped_min_months",
            self.contributions_stopped_min_months,
            1,
            60,
        )?;
        at.all_points(&[
            ("contributions_stopped", self.contributions_stopped),
            ("unemployment_registered", self.unemployment_registered),
            ("job_lost", self.job_lost),
            ("no_earner_left_bonus", self.no_earner_left_bonus),
        ])
    }

    fn signals(&self, _: &Household, state: &HouseholdState, _: &Standard, out: &mut Signals) {
        out.days(state.employment_losses.iter().filter(|x| weight(self, x) > 0));
    }

    fn eval(&self, cx: &Ctx) -> Option<Contribution> {
        let state = cx.state;
        let p = self;
        let weight = |l: &EmploymentLoss| weight(p, l);
        let counted: Vec<&EmploymentLoss> = cx
            .recent(&state.employment_losses)
            .filter(|l| weight(l) > 0)
            .collect();
        if counted.is_empty() {
            return None;
        }
        // Members in order of first signal; for each, the strongest signal.
        let mut members: Vec<&str> = Vec::with_capacity(2);
        for l in &counted {
            if !members.contains(&l.member_id) {
                members.push(l.member_id);
            }
        }
        let (mut points, mut zh, mut en) = (0i64, Vec::new(), Vec::new());
        for m in members {
            let strongest = counted
                .iter()
                .filter(|l| l.member_id == m)
                .max_by_key(|l| (weight(l), rank(l.kind)));
            if let Some(l) = strongest {
                points += weight(l);
                let (z, e) = describe(state, l);
                zh.push(z);
                en.push(e);
            }
        }
        let no_earner_left = counted.iter().any(|l| {
            l.kind != EmploymentLossKind::ContributionsStopped && !l.anyone_employed_after
        });
        // The income is gone when nobody was left in work and nobody left can work (急难).
        let income_gone = no_earner_left && !state.alive_members().any(|m| cx.able(m));
        if no_earner_left {
            points += p.no_earner_left_bonus;
            zh.push("家中已无就业成员".to_string());
            en.push("nobody in the household was left in work".to_string());
        }
        if income_gone {
            zh.push("家中已无有劳动能力的成员".to_string());
            en.push("nobody left in the household is able to work".to_string());
        }
        Some(
            Contribution::new(
                ID,
                points,
                zh.join("；"),
                en.join("; "),
                event_ids(&counted),
            )
            .with_cause(income_gone.then_some(INCOME_GONE)),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::testkit::*;

    #[test]
    fn job_loss_of_the_only_earner_adds_25_plus_10_with_the_strongest_signal_per_member() {
        let h = family_dibao_rural();
        let facts = timeline([("M1", "2026-02-01", contributions_stopped("2026-01", 1)), ("M1", "2026-02-02", job_lost("2026-01-31", None)), ("M1", "2026-02-05", unemployment("2026-02-05"))]);
        let c = eval_builtin(ID, &h, &facts, "2026-02-10").unwrap();
        // job lost 25 + nobody left in work 10; one month unpaid is below the 2-month minimum
        assert_eq!(c.points, 35);
        assert_eq!(c.event_ids, vec!["E2", "E3"]);
        assert_contains(&c.reason_zh, "家庭成员（户主）于2026-01-31失去工作（原月工资2000.00元）");
    }

    #[test]
    fn contributions_stopped_for_three_months_alone_add_15() {
        let h = family_dibao_rural();
        let facts = only("M1", "2026-04-01", contributions_stopped("2026-01", 3));
        let c = eval_builtin(ID, &h, &facts, "2026-04-02").unwrap();
        assert_eq!(c.points, 15);
        assert_contains(&c.reason_en, "3 months since 2026-02-01");
    }

    #[test]
    fn unemployment_registration_of_the_only_earner_adds_20_plus_10() {
        let h = family_dibao_rural();
        let facts = only("M1", "2026-02-05", unemployment("2026-02-05"));
        let c = eval_builtin(ID, &h, &facts, "2026-02-06").unwrap();
        assert_eq!(c.points, 30);
        assert_eq!(
            c.reason_en,
            "Member (head of household) registered as unemployed on 2026-02-05; nobody in the household was left in work"
        );
    }
}
