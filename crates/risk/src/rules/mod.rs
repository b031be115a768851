//! The rules of this version. Each is a small pure function over the rule set, the household and
//! its derived state, returning one [`Contribution`] (points with the reasons and the events that
//! caused them) or `None`. Weights and thresholds come from the rule set, never from code.

use chrono::NaiveDate;
use doudi_model::{Household, Relation, WorkCapacity};

use crate::assess::Contribution;
use crate::clearance::{self, Clearance};
use crate::ruleset::{RuleSet, Standard};
use crate::state::{HouseholdState, MemberState};

pub mod catastrophic_bill;
pub mod dangerous_house;
pub mod death;
pub mod disaster_damage;
pub mod forced_relocation;
pub mod income_below_line;
pub mod job_loss;
pub mod medical_burden;
pub mod serious_illness;
pub mod severe_disability;
pub mod watch;

/// What every rule sees: the rule set, the household, its state, and what is worked out once per
/// assessment (the local standard, the pupils, the risk-clearing position).
pub struct Ctx<'s, 'a> {
    pub rules: &'s RuleSet,
    pub household: &'s Household,
    pub state: &'s HouseholdState<'a>,
    pub standard: Standard,
    pub pupils: i64,
    pub clearance: Clearance,
}

impl<'s, 'a> Ctx<'s, 'a> {
    pub fn new(
        rules: &'s RuleSet,
        household: &'s Household,
        state: &'s HouseholdState<'a>,
    ) -> Self {
        let standard = rules.standard_for(state.region_code, household.area);
        let d = &rules.deductions;
        let pupils = state.pupils(d.school_age_min, d.school_age_below);
        let clearance = clearance::compute(rules, state, &standard, pupils);
        Ctx {
            rules,
            household,
            state,
            standard,
            pupils,
            clearance,
        }
    }

    /// Whether a signal that happened `on` still counts (its risk is not cleared).
    pub fn counts(&self, on: NaiveDate) -> bool {
        on <= self.state.as_of_date() && self.clearance.counts(on)
    }
}

/// A rule: its contribution to a household's score, if it fires.
pub type RuleFn = for<'s, 'a> fn(&Ctx<'s, 'a>) -> Option<Contribution>;

/// Every rule, in the order contributions are listed.
pub const RULES: [(&str, RuleFn); 10] = [
    (death::ID, death::eval),
    (serious_illness::ID, serious_illness::eval),
    (medical_burden::ID, medical_burden::eval),
    (catastrophic_bill::ID, catastrophic_bill::eval),
    (job_loss::ID, job_loss::eval),
    (severe_disability::ID, severe_disability::eval),
    (dangerous_house::ID, dangerous_house::eval),
    (disaster_damage::ID, disaster_damage::eval),
    (forced_relocation::ID, forced_relocation::eval),
    (income_below_line::ID, income_below_line::eval),
];

/// The ids of the rules, for validating the rule set's references to them.
pub const RULE_IDS: [&str; 10] = [
    death::ID,
    serious_illness::ID,
    medical_burden::ID,
    catastrophic_bill::ID,
    job_loss::ID,
    severe_disability::ID,
    dangerous_house::ID,
    disaster_damage::ID,
    forced_relocation::ID,
    income_below_line::ID,
];

/// The id of the vulnerability multiplier's contribution.
pub const VULNERABILITY_ID: &str = "vulnerability";

pub(crate) fn of_working_age(rules: &RuleSet, age: u32) -> bool {
    let a = i64::from(age);
    a >= rules.general.working_age_min && a <= rules.general.working_age_max
}

/// A living member able to work: some work capacity and of working age.
pub(crate) fn able(rules: &RuleSet, m: &MemberState) -> bool {
    m.alive && m.work_capacity != WorkCapacity::None && of_working_age(rules, m.age)
}

pub(crate) fn relation_zh(r: Option<Relation>) -> &'static str {
    match r {
        Some(Relation::Head) => "户主",
        Some(Relation::Spouse) => "配偶",
        Some(Relation::Child) => "子女",
        Some(Relation::Parent) => "父母",
        Some(Relation::Grandchild) => "孙子女",
        Some(Relation::Grandparent) => "祖父母",
        Some(Relation::Sibling) => "兄弟姐妹",
        Some(Relation::Other) => "其他亲属",
        None => "未在册成员",
    }
}

pub(crate) fn relation_en(r: Option<Relation>) -> &'static str {
    match r {
        Some(Relation::Head) => "head of household",
        Some(Relation::Spouse) => "spouse",
        Some(Relation::Child) => "child",
        Some(Relation::Parent) => "parent",
        Some(Relation::Grandchild) => "grandchild",
        Some(Relation::Grandparent) => "grandparent",
        Some(Relation::Sibling) => "sibling",
        Some(Relation::Other) => "other relative",
        None => "not on the register",
    }
}

/// The relation of a member of the state, `None` if unknown.
pub(crate) fn relation_of(state: &HouseholdState, member_id: &str) -> Option<Relation> {
    state.member(member_id).map(|m| m.relation)
}

/// A permille as a percentage for reasons: 500 → "50", 1250 → "125".
pub(crate) fn percent(permille: i64) -> String {
    if permille % 10 == 0 {
        format!("{}", permille / 10)
    } else {
        format!("{}.{}", permille / 10, (permille % 10).abs())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rule_ids_match_rules() {
        for (i, (id, _)) in RULES.iter().enumerate() {
            assert_eq!(RULE_IDS[i], *id);
        }
        assert_eq!(percent(500), "50");
        assert_eq!(percent(1255), "125.5");
    }
}
