//! `death`: a member died. An earner's death weighs more; when the one who died could work and
//! nobody left can, it weighs most.

use doudi_model::{Contribution, Household, Money, WorkCapacity};
use serde::{Deserialize, Serialize};

use crate::check::{RuleSetError, Section};
use crate::clearance::Signals;
use crate::policy::Standard;
use crate::rule::{relation_en, relation_zh, Ctx, Rule, INCOME_GONE};
use crate::state::HouseholdState;

pub const ID: &str = "death";

/// `[rules.death]`: points for a death in the household.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Death {
    /// A member died who was not earning.
    pub any_member: i64,
    /// The member who died was earning.
    pub earner: i64,
    /// The member who died could work, and nobody left in the household can.
    pub nobody_left_able_to_work: i64,
}

impl Rule for Death {
    const ID: &'static str = ID;
    const NAME: (&'static str, &'static str) = ("死亡", "death");
    const CAUSES: &'static [&'static str] = &[INCOME_GONE];

    fn validate(&self, at: Section) -> Result<(), RuleSetError> {
        at.all_points(&[
            ("any_member", self.any_member),
            ("earner", self.earner),
            ("nobody_left_able_to_work", self.nobody_left_able_to_work),
        ])?;
        if self.earner < self.any_member {
            return at.invalid(
                "earner",
                "must not be less than rules.death.any_member (an earner's death weighs more)",
            );
        }
        if self.nobody_left_able_to_work < self.earner {
            return at.invalid(
                "nobody_left_able_to_work",
                "must not be less than rules.death.earner (it weighs most)",
            );
        }
        Ok(())
    }

    fn signals(&self, _: &Household, state: &HouseholdState, _: &Standard, out: &mut Signals) {
        out.days(&state.deaths);
    }

    fn eval(&self, cx: &Ctx) -> Option<Contribution> {
        let state = cx.state;
        let p = self;
        let nobody_able_left = !state.alive_members().any(|m| cx.able(m));
        let mut tiers = Vec::new();
        let mut income_gone = false;
        let (mut zh, mut en, mut ids) = (Vec::new(), Vec::new(), Vec::new());
        for d in cx.recent(&state.deaths) {
            let could_work = d.work_capacity.is_some_and(|c| c != WorkCapacity::None)
                && d.age.is_some_and(|a| cx.general.of_working_age(a));
            let earner = d.employed || (d.monthly_income > Money::ZERO && could_work);
            let mut r_zh = format!("家庭成员（{}）于{}死亡", relation_zh(d.relation), d.died_on);
            let mut r_en = format!("Member ({}) died on {}", relation_en(d.relation), d.died_on);
            if earner && d.main_earner {
                r_zh.push_str(&format!(
                    "，为家中主要劳动力（月收入{}元）",
                    d.monthly_income
                ));
                r_en.push_str(&format!(
                    "; they were the main earner (monthly income {} yuan)",
                    d.monthly_income
                ));
            } else if earner {
                r_zh.push_str(&format!("，有劳动收入（月收入{}元）", d.monthly_income));
                r_en.push_str(&format!(
                    "; they had earned income ({} yuan a month)",
                    d.monthly_income
                ));
            }
            let tier = if (earner || could_work) && nobody_able_left {
                r_zh.push_str("，家中已无有劳动能力的成员");
                r_en.push_str("; nobody left in the household is able to work");
                income_gone = true;
                p.nobody_left_able_to_work
            } else if earner {
                p.earner
            } else {
                p.any_member
            };
            tiers.push(tier);
            zh.push(r_zh);
            en.push(r_en);
            ids.push(d.event_id.to_string());
        }
        let top = tiers.iter().copied().max()?;
        // The gravest death counts in full; each further death adds the base weight.
        let points = top + p.any_member * (tiers.len() as i64 - 1);
        Some(
            Contribution::new(ID, points, zh.join("；"), en.join("; "), ids)
                .with_cause(income_gone.then_some(INCOME_GONE)),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use doudi_model::Household;

    use crate::testkit::*;
    use doudi_model::{Category, Relation, Sex, WorkCapacity};

    #[test]
    fn death_adds_30_for_a_member_70_for_an_earner_and_90_when_no_one_left_can_work() {
        let h = family_dibao_rural();
        let eval = |h: &Household, member: &str| {
            let facts = [fact("E1", member, "2026-03-02", death("2026-03-02"))];
            eval_builtin(ID, h, &facts, "2026-03-03")
        };
        assert_eq!(eval(&h, "M3").map(|c| c.points), Some(30));
        assert_eq!(eval(&h, "M1").map(|c| c.points), Some(70));
        // a couple where the wife cannot work: the husband's death leaves nobody able
        let mut couple = h.clone();
        couple.members[1].work_capacity = WorkCapacity::None;
        let c = eval(&couple, "M1").unwrap();
        assert_eq!(c.points, 90);
        assert_contains(&c.reason_en, "nobody left");
        // no death, no contribution
        assert_eq!(eval_builtin(ID, &h, &[], "2026-03-03"), None);
        // an elderly parent without income
        let mut with_parent = h.clone();
        with_parent.members.push(member(
            "M4",
            Relation::Parent,
            Sex::Female,
            "1945-01-01",
            WorkCapacity::None,
            false,
            0,
        ));
        with_parent.category = Category::Dibao;
        assert_eq!(eval(&with_parent, "M4").map(|c| c.points), Some(30));
    }
}
