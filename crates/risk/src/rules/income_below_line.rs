//! `income_below_line`: per-capita monthly income was at or above a line at registration and fell
//! below it (a death, a birth, a job loss, a wage cut). Uses the lowest per-capita income of the
//! recent window, so a later rise does not abruptly lower the score (it opens a review instead).

use doudi_model::Household;

use super::is_recent;
use crate::assess::Contribution;
use crate::ruleset::RuleSet;
use crate::state::HouseholdState;

pub const ID: &str = "income_below_line";

pub fn evaluate(
    rules: &RuleSet,
    household: &Household,
    state: &HouseholdState,
) -> Option<Contribution> {
    if state.size_now() == 0 {
        return None;
    }
    let p = &rules.rules.income_below_line;
    let std = rules.standard_for(&state.region_code, household.area);
    let dibao = std.dibao_monthly;
    let edge = std.edge_line_monthly();
    let baseline = state.per_capita_at_registration;
    let recent: Vec<_> = state
        .income_history
        .iter()
        .filter(|pt| is_recent(rules, state, pt.on))
        .collect();
    let lowest = recent.iter().min_by_key(|pt| pt.per_capita)?;
    let (points, line, zh_line, en_line) = if baseline >= dibao && lowest.per_capita < dibao {
        (
            p.below_dibao,
            dibao,
            "当地低保标准",
            "the local 低保 standard",
        )
    } else if baseline >= edge && lowest.per_capita < edge {
        (
            p.below_edge,
            edge,
            "低保边缘线",
            "the 低保边缘 (near-poverty) line",
        )
    } else {
        return None;
    };
    let below: Vec<String> = recent
        .iter()
        .filter(|pt| pt.per_capita < line)
        .map(|pt| pt.event_id.clone())
        .collect();
    let now = if state.per_capita_now != lowest.per_capita {
        (
            format!("，目前为{}元", state.per_capita_now),
            format!("; it is {} yuan now", state.per_capita_now),
        )
    } else {
        (String::new(), String::new())
    };
    Some(Contribution {
        rule_id: ID.to_string(),
        points,
        reason_zh: format!(
            "家庭人均月收入由登记时的{baseline}元降至{}元（{}，{}人），低于{zh_line}{line}元{}",
            lowest.per_capita, lowest.on, lowest.household_size, now.0
        ),
        reason_en: format!(
            "Per-capita monthly income fell from {baseline} yuan at registration to {} yuan ({}, {} people), below {en_line} of {line} yuan{}",
            lowest.per_capita, lowest.on, lowest.household_size, now.1
        ),
        event_ids: below,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::derive_state;
    use crate::testkit::*;
    use doudi_model::{Category, Money};

    #[test]
    fn falling_below_the_dibao_line_counts_and_a_rise_does_not_undo_it() {
        let rules = RuleSet::builtin();
        let h = family(Category::EdgeProne); // 2,500 / 3 = 833.33 ≥ 732
        let lost = [fact("E1", "M1", "2026-02-01", job_lost("2026-01-31", None))];
        let c = evaluate(&rules, &h, &derive_state(&h, &lost, at("2026-02-02"))).unwrap();
        assert_eq!(c.points, 25);
        assert_eq!(c.event_ids, vec!["E1"]);
        assert!(
            c.reason_zh.starts_with("家庭人均月收入由登记时的833.33元降至166.66元（2026-01-31，3人），低于当地低保标准732.00元"),
            "{}",
            c.reason_zh
        );
        let mut both = lost.to_vec();
        both.push(fact(
            "E2",
            "M1",
            "2026-03-01",
            job_started("2026-03-01", 200_000),
        ));
        let c2 = evaluate(&rules, &h, &derive_state(&h, &both, at("2026-03-02"))).unwrap();
        assert_eq!(c2.points, 25);
        assert!(
            c2.reason_en.contains("it is 833.33 yuan now"),
            "{}",
            c2.reason_en
        );
    }

    #[test]
    fn a_birth_can_push_below_the_edge_line() {
        let rules = RuleSet::builtin();
        // 3,300 / 3 = 1,100 ≥ edge 1,098; a birth makes it 825: below the edge, above 低保
        let mut h = family(Category::EdgeProne);
        h.members[0].monthly_income = Money::from_yuan(2800);
        let facts = [fact("E1", "M2", "2026-03-01", birth("2026-03-01"))];
        let c = evaluate(&rules, &h, &derive_state(&h, &facts, at("2026-03-02"))).unwrap();
        assert_eq!(c.points, 15);
        // already below the line at registration (a 低保 household): not a fall
        let mut poor = family(Category::Dibao);
        poor.members[0].monthly_income = Money::from_yuan(1000);
        let facts = [fact("E1", "M1", "2026-02-01", job_lost("2026-01-31", None))];
        assert_eq!(
            evaluate(
                &rules,
                &poor,
                &derive_state(&poor, &facts, at("2026-02-02"))
            ),
            None
        );
    }
}
