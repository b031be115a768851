//! `severe_disability`: a member was certified with a severe disability (grade 1–2 by default),
//! new or worse than the grade held before.

use doudi_model::Household;

use super::{relation_en, relation_of, relation_zh, Ctx};
use crate::assess::Contribution;
use crate::ruleset::RuleSet;
use crate::state::HouseholdState;

pub const ID: &str = "severe_disability";

fn grade_zh(g: u8) -> &'static str {
    match g {
        1 => "一级",
        2 => "二级",
        3 => "三级",
        _ => "四级",
    }
}

pub fn evaluate(
    rules: &RuleSet,
    household: &Household,
    state: &HouseholdState,
) -> Option<Contribution> {
    eval(&Ctx::new(rules, household, state))
}

pub fn eval(cx: &Ctx) -> Option<Contribution> {
    let (rules, state) = (cx.rules, cx.state);
    let p = &rules.rules.severe_disability;
    let new: Vec<_> = state
        .disabilities
        .iter()
        .filter(|d| cx.counts(d.certified_on))
        .filter(|d| i64::from(d.grade) <= p.max_grade)
        .filter(|d| d.previous_grade.is_none_or(|prev| prev > d.grade))
        .collect();
    if new.is_empty() {
        return None;
    }
    let zh: Vec<String> = new
        .iter()
        .map(|d| {
            format!(
                "家庭成员（{}）于{}被评定为{}残疾（重度）",
                relation_zh(relation_of(state, d.member_id)),
                d.certified_on,
                grade_zh(d.grade)
            )
        })
        .collect();
    let en: Vec<String> = new
        .iter()
        .map(|d| {
            format!(
                "Member ({}) was certified with a grade {} (severe) disability on {}",
                relation_en(relation_of(state, d.member_id)),
                d.grade,
                d.certified_on
            )
        })
        .collect();
    Some(Contribution {
        rule_id: ID.to_string(),
        points: p.points,
        reason_zh: zh.join("；"),
        reason_en: en.join("; "),
        event_ids: new.iter().map(|d| d.event_id.to_string()).collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::derive_state;
    use crate::testkit::*;

    #[test]
    fn new_grade_1_or_2_disability_adds_40_and_a_milder_or_repeated_grade_nothing() {
        let rules = RuleSet::builtin();
        let mut h = family_dibao_rural();
        let eval = |h: &Household, grade: u8| {
            let facts = [fact(
                "E1",
                "M2",
                "2026-03-01",
                disability(grade, "2026-03-01"),
            )];
            evaluate(&rules, h, &derive_state(h, &facts, at("2026-03-02")))
        };
        let c = eval(&h, 1).unwrap();
        assert_eq!(c.points, 40);
        assert!(c.reason_zh.contains("一级残疾"), "{}", c.reason_zh);
        assert_eq!(eval(&h, 3), None);
        // already grade 2 on the register: a second grade-2 certificate is not new
        h.members[1].disability_grade = Some(2);
        assert_eq!(eval(&h, 2), None);
        assert!(eval(&h, 1).is_some());
    }
}
