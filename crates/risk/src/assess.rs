//! The assessment: rules → points → vulnerability multiplier → score → level, with a relief
//! suggestion, the time to act, and the reviews that income or asset rises open.

use doudi_model::{Household, LevelBasis};

pub use doudi_model::assessment::{Assessment, Contribution};

use crate::lapse::risk_state;
use crate::level::Level;
use crate::relief::suggest_relief;
use crate::review::review_needed;
use crate::rule::Ctx;
use crate::rules::{watch, VULNERABILITY_ID};
use crate::ruleset::RuleSet;
use crate::state::HouseholdState;
use crate::urgency::{classify, level_of};

/// Assess a household from its derived state. Pure; never panics.
pub fn assess(rules: &RuleSet, household: &Household, state: &HouseholdState) -> Assessment {
    assess_in(rules, &rules.context(household, state))
}

/// Assess with the per-assessment context already worked out.
pub(crate) fn assess_in(rules: &RuleSet, cx: &Ctx) -> Assessment {
    let (household, state) = (cx.household, cx.state);
    let review = review_needed(cx);
    let mut assessment = Assessment {
        rule_set_version: rules.version.clone(),
        household_id: household.household_id.clone(),
        score: 0,
        level: Level::None,
        contributions: Vec::new(),
        relief: None,
        act_within_hours: None,
        review_needed: review,
        basis: None,
        risk: Some(risk_state(rules, cx)),
    };
    // Nobody left alive: nothing to warn about; the review says to stop the benefit.
    if state.size_now() == 0 {
        return assessment;
    }

    let mut contributions = rules.rules.evaluate(cx);
    classify(&rules.urgency, &mut contributions);
    inhibit(state, &mut contributions, &mut assessment.review_needed);
    if contributions.is_empty() {
        return assessment;
    }
    let base: i64 = contributions.iter().map(|c| c.points).sum();
    let findings = contributions.len();
    if base > 0 {
        if let Some(v) = vulnerability(rules, household, state, base) {
            contributions.push(v);
        }
    }
    let mut score: i64 = contributions.iter().map(|c| c.points).sum::<i64>().max(0);
    // A household never cleared (nobody can work) stays watched at a fixed score.
    let watched = match watch::adjust(cx, score) {
        Some(w) => {
            score += w.points;
            let basis = LevelBasis {
                urgency: None,
                by_findings: rules.levels.level_for(base),
                raised_by_vulnerability: false,
                reason_zh: w.reason_zh.clone(),
                reason_en: w.reason_en.clone(),
            };
            contributions.push(w);
            Some(basis)
        }
        None => None,
    };
    let is_watched = watched.is_some();
    let (level, basis) = match watched {
        Some(basis) => (rules.levels.level_for(score), basis),
        None => level_of(
            &rules.urgency,
            &rules.levels,
            &contributions[..findings],
            base,
            score,
        ),
    };
    // A watched household is stable: it is visited, not paid relief again.
    if !is_watched {
        assessment.relief = suggest_relief(rules, cx, level, &contributions);
    }
    assessment.act_within_hours = rules.levels.params(level).map(|p| p.act_within_hours);
    assessment.score = score;
    assessment.level = level;
    assessment.contributions = contributions;
    assessment.basis = Some(basis);
    assessment
}

/// Inhibition (as Alertmanager inhibits an alert another explains): a fall in income that
/// deaths in the household explain — every income point below the line is a death — is not counted
/// again beside the death, whose contribution already weighs the lost earner. It stays visible as a
/// note for the officer.
fn inhibit(state: &HouseholdState, contributions: &mut Vec<Contribution>, notes: &mut Vec<String>) {
    use crate::rules::{death, income_below_line};
    if !contributions.iter().any(|c| c.rule_id == death::ID) {
        return;
    }
    let explained = |c: &Contribution| {
        c.rule_id == income_below_line::ID
            && !c.event_ids.is_empty()
            && c.event_ids
                .iter()
                .all(|e| state.deaths.iter().any(|d| d.event_id == e.as_str()))
    };
    if let Some(pos) = contributions.iter().position(explained) {
        let c = contributions.remove(pos);
        notes.push(format!(
            "[inhibited] 收入下降由家庭成员死亡所致，已计入死亡一项，不重复计分（{}） / The fall in income is explained by the death and counted there, not twice ({})",
            c.reason_zh, c.reason_en
        ));
    }
}

/// `1500` → `"1.5"`, `1000` → `"1.0"`, `1150` → `"1.15"`.
pub(crate) fn times(permille: i64) -> String {
    let sign = if permille < 0 { "-" } else { "" };
    let p = permille.abs();
    let mut frac = format!("{:03}", p % 1000);
    while frac.len() > 1 && frac.ends_with('0') {
        frac.pop();
    }
    format!("{sign}{}.{frac}", p / 1000)
}

/// The vulnerability multiplier as a contribution: `points = base × multiplier − base`.
pub fn vulnerability(
    rules: &RuleSet,
    household: &Household,
    state: &HouseholdState,
    base: i64,
) -> Option<Contribution> {
    let v = &rules.vulnerability;
    let g = &rules.general;
    let category = household.category;
    let cat = v.category_permille.get(category);
    let mut multiplier = cat;
    let mut zh = vec![format!(
        "家庭类别为{}（×{}）",
        category.name_zh(),
        times(cat)
    )];
    let mut en = vec![format!(
        "category {} {} (×{})",
        category.name_zh(),
        category.code(),
        times(cat)
    )];
    let alive: Vec<_> = state.alive_members().collect();
    if alive.len() == 1 && alive.iter().all(|m| i64::from(m.age) >= g.elderly_age) {
        multiplier += v.elderly_alone_permille;
        zh.push(format!("独居老人（+{}）", times(v.elderly_alone_permille)));
        en.push(format!(
            "an elderly person living alone (+{})",
            times(v.elderly_alone_permille)
        ));
    }
    if alive.iter().any(|m| i64::from(m.age) < g.child_age_below) {
        multiplier += v.children_present_permille;
        zh.push(format!(
            "家中有未成年人（+{}）",
            times(v.children_present_permille)
        ));
        en.push(format!(
            "children in the household (+{})",
            times(v.children_present_permille)
        ));
    }
    if !alive.iter().any(|m| rules.general.able(m)) {
        multiplier += v.nobody_able_to_work_permille;
        zh.push(format!(
            "家中无有劳动能力的成员（+{}）",
            times(v.nobody_able_to_work_permille)
        ));
        en.push(format!(
            "nobody able to work (+{})",
            times(v.nobody_able_to_work_permille)
        ));
    }
    if multiplier == 1000 {
        return None;
    }
    let total = ((i128::from(base) * i128::from(multiplier)) / 1000)
        .clamp(i128::from(i64::MIN), i128::from(i64::MAX)) as i64;
    // Vulnerability raises a level by one step at most: it adds at most the narrowest band of
    // scores (none in `[urgency]` with `vulnerability_max_steps = 0`).
    let cap = rules.levels.narrowest_band() * rules.urgency.vulnerability_max_steps;
    let points = (total - base).min(cap);
    let (capped_zh, capped_en) = if points < total - base {
        (
            format!("，加分以{cap}分为限（至多提高一级）"),
            format!("; it adds {cap} points at most (one level)"),
        )
    } else {
        (String::new(), String::new())
    };
    Some(Contribution::new(
        VULNERABILITY_ID,
        points,
        format!(
            "{}：风险分{base}×{}={total}{capped_zh}",
            zh.join("，"),
            times(multiplier)
        ),
        format!(
            "Vulnerability: {}; score {base} × {} = {total}{capped_en}",
            en.join(", "),
            times(multiplier)
        ),
        Vec::new(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::derive_state;
    use crate::testkit::*;
    use doudi_model::event::HouseGrade;
    use doudi_model::{Category, Money, Urgency, WorkCapacity};

    fn run(h: &Household, facts: &[doudi_model::Fact], day: &str) -> Assessment {
        let rules = RuleSet::builtin();
        let s = derive_state(h, facts, at(day));
        assess(&rules, h, &s)
    }

    fn sum_is_score(a: &Assessment) {
        assert_eq!(
            a.contributions.iter().map(|c| c.points).sum::<i64>(),
            a.score,
            "{a:#?}"
        );
    }

    #[test]
    fn quiet_household_has_no_warning() {
        let a = run(&family_dibao_rural(), &[], "2026-04-01");
        assert_eq!(a.level, Level::None);
        assert_eq!(a.score, 0);
        assert!(a.contributions.is_empty());
        assert_eq!(a.relief, None);
        assert_eq!(a.act_within_hours, None);
        assert!(a.review_needed.is_empty());
    }

    #[test]
    fn routine_outpatient_bill_gives_no_warning() {
        let h = family(Category::EdgeProne);
        let facts = only("M2", "2026-03-10", settlement(12_000, "2026-03-10"));
        let a = run(&h, &facts, "2026-04-01");
        assert_eq!(a.level, Level::None, "{a:#?}");
        assert_eq!(a.score, 0);
        assert_eq!(a.relief, None);
    }

    #[test]
    fn death_of_earner_with_someone_left_able_to_work_is_orange_whoever_the_household_is() {
        let h = family_dibao_rural();
        let facts = only("M1", "2026-03-02", death("2026-03-02"));
        let a = run(&h, &facts, "2026-03-03");
        // the spouse can work: not 急难; 70 is orange by its size, and orange at most
        assert_eq!(a.level, Level::Orange, "{a:#?}");
        assert_eq!(a.act_within_hours, Some(72));
        let basis = a.basis.as_ref().expect("basis");
        assert_eq!(basis.urgency, Some(Urgency::Expense));
        assert_eq!(basis.by_findings, Level::Orange);
        assert_contains(&basis.reason_zh, "非急难情形最高为橙色");
        sum_is_score(&a);
        // earner 70 (the fall in income it explains is inhibited), × (1.3 低保 + 0.1 a child) = 98
        let points: Vec<_> = a.contributions.iter().map(|c| c.points).collect();
        assert_eq!(points, vec![70, 28]);
        assert_eq!(a.score, 98);
        assert_review(&a, "[inhibited] 收入下降由家庭成员死亡所致");
        let c = &a.contributions[0];
        assert_eq!(c.rule_id, "death");
        assert_eq!(c.event_ids, vec!["E1".to_string()]);
        assert_starts(
            &c.reason_zh,
            "家庭成员（户主）于2026-03-02死亡，为家中主要劳动力",
        );
        assert_starts(
            &c.reason_en,
            "Member (head of household) died on 2026-03-02; they were the main earner",
        );
        let r = a.relief.as_ref().expect("relief suggested");
        assert_eq!(r.kind, "emergency");
        // rural 低保 732 × (2 months orange + 1 emergency) = 2,196 ≤ 3,000: the township decides
        assert_eq!(r.amount, Money::from_yuan(2196));
        assert_eq!(r.months, 3);
        assert!(r.within_township_limit);
        assert_eq!(r.approver, "township");
        // the dead member's benefit must be reviewed (no over-payment)
        assert_review(&a, "[benefit_adjust_on_death]");
    }

    #[test]
    fn death_of_non_earner_is_milder_than_earner() {
        let h = family_dibao_rural();
        let child = run(
            &h,
            &only("M3", "2026-03-02", death("2026-03-02")),
            "2026-03-03",
        );
        let head = run(
            &h,
            &only("M1", "2026-03-02", death("2026-03-02")),
            "2026-03-03",
        );
        assert!(child.score < head.score);
        assert!(child.level < head.level);
        assert_eq!(child.level, Level::Yellow, "{child:#?}");
    }

    #[test]
    fn risk_is_cleared_after_six_stable_months_and_the_officer_is_told() {
        // the child dies: income per head rises ((2,000 × 0.8 + 500) / 2 = 1,050), nobody lost work
        let h = family_dibao_rural();
        let facts = only("M3", "2025-07-01", death("2025-07-01"));
        let a = run(&h, &facts, "2025-07-02");
        assert_eq!(a.level, Level::Yellow);
        assert_eq!(a.score, 39); // 30 × 1.3
                                 // six months later, stable: cleared
        let s = derive_state(&h, &facts, at("2026-01-02"));
        let c = RuleSet::builtin().clearance(&h, &s);
        assert_eq!(c.status, crate::ClearanceStatus::Cleared);
        assert_eq!(c.cleared_on, Some(date("2026-01-01")));
        let a = run(&h, &facts, "2026-01-02");
        assert_eq!(a.level, Level::None, "{a:#?}");
        assert!(a.contributions.is_empty());
        assert!(
            a.review_needed[0].starts_with("[risk_cleared] 自2025-07-01起无新的风险因素"),
            "{:#?}",
            a.review_needed
        );
        // the day before, not yet
        assert_eq!(run(&h, &facts, "2025-12-31").level, Level::Yellow);
    }

    #[test]
    fn earner_death_with_income_still_below_the_line_is_not_cleared_after_six_months() {
        let h = family_dibao_rural();
        let facts = only("M1", "2025-07-01", death("2025-07-01"));
        let a = run(&h, &facts, "2026-04-01");
        // death of an earner 70 (income per head down 70 %, 666.66 → 200, is the death's and
        // inhibited); ×1.4 (低保, a child)
        let points = points(&a);
        assert_eq!(points, vec![("death", 70), ("vulnerability", 28)]);
        assert_eq!(a.level, Level::Orange);
        assert!(
            a.review_needed.iter().any(|r| r.starts_with(
                "[risk_not_cleared] 风险自2025-07-01起尚未消除：扣除后人均月收入仍低于666.66元"
            )),
            "{:#?}",
            a.review_needed
        );
    }

    #[test]
    fn a_fall_in_income_with_another_cause_beside_a_death_is_still_counted() {
        let mut h = family_dibao_rural();
        // The spouse earns too, and loses her job a week after the death.
        h.members[1].employed = true;
        let facts = timeline([
            ("M1", "2026-03-02", death("2026-03-02")),
            ("M2", "2026-03-10", job_lost("2026-03-10", None)),
        ]);
        let a = run(&h, &facts, "2026-03-11");
        assert!(
            a.contributions
                .iter()
                .any(|c| c.rule_id == "income_below_line"),
            "{:#?}",
            a.contributions
        );
        assert!(!a.review_needed.iter().any(|r| r.starts_with("[inhibited]")));
    }

    #[test]
    fn household_nobody_in_which_can_work_is_never_cleared_but_stays_watched_at_yellow() {
        let h = single_elderly(Category::EdgeProne);
        let facts = only("M1", "2025-06-01", disaster(800_000, false, "2025-06-01"));
        // fresh: 30 × (1.1 + 0.3 alone + 0.2 nobody able) = 48
        assert_eq!(run(&h, &facts, "2025-06-02").score, 48);
        let a = run(&h, &facts, "2026-04-01");
        let points = points(&a);
        assert_eq!(
            points,
            vec![
                ("disaster_damage", 30),
                ("vulnerability", 18),
                ("watch", -18)
            ]
        );
        assert_eq!((a.score, a.level), (30, Level::Yellow));
        assert!(a.contributions[2].reason_zh.contains("不作风险消除"));
        sum_is_score(&a);
    }

    #[test]
    fn earner_death_with_no_one_left_able_to_work_is_red() {
        let mut h = family_dibao_rural();
        h.members[1].work_capacity = WorkCapacity::None;
        let facts = only("M1", "2026-03-02", death("2026-03-02"));
        let a = run(&h, &facts, "2026-03-03");
        let points = points(&a);
        // 90 (the fall in income is the death's: inhibited); × (1.3 + 0.1 child + 0.2 nobody
        // able) = 144, vulnerability adding 30 at most (one level)
        assert_eq!(points, vec![("death", 90), ("vulnerability", 30)]);
        assert_eq!(
            (a.score, a.level, a.act_within_hours),
            (120, Level::Red, Some(24))
        );
        sum_is_score(&a);
        // 急难: the main income gone and nobody left able to work
        let death = &a.contributions[0];
        assert_eq!(death.cause.as_deref(), Some("income_gone"));
        assert_eq!(death.urgency, Some(Urgency::Emergency));
        let basis = a.basis.as_ref().expect("basis");
        assert_starts(&basis.reason_zh, "急难：主要收入中断");
    }

    #[test]
    fn vulnerability_multiplier_scales_by_category_elderly_alone_children_and_work_capacity() {
        let rules = RuleSet::builtin();
        let h = single_elderly(Category::Tekun);
        let s = derive_state(&h, &[], at("2026-03-01"));
        let v = vulnerability(&rules, &h, &s, 100).unwrap();
        // 1.5 + 0.3 + 0.2 = 2.0; it adds one level's worth (30) at most
        assert_eq!(v.points, 30);
        assert_eq!(
            v.reason_en,
            "Vulnerability: category 特困人员 tekun (×1.5), an elderly person living alone (+0.3), nobody able to work (+0.2); score 100 × 2.0 = 200; it adds 30 points at most (one level)"
        );
        let f = family(Category::EdgeProne);
        let s = derive_state(&f, &[], at("2026-03-01"));
        // 1.1 + 0.1 children
        assert_eq!(vulnerability(&rules, &f, &s, 100).unwrap().points, 20);
    }

    #[test]
    fn levels_and_deadlines_follow_the_rule_set() {
        let rules = RuleSet::builtin();
        let l = &rules.levels;
        assert_eq!(l.level_for(29), Level::None);
        assert_eq!(l.level_for(30), Level::Yellow);
        assert_eq!(l.level_for(60), Level::Orange);
        assert_eq!(l.level_for(90), Level::Red);
        assert_eq!(l.params(Level::Red).map(|p| p.act_within_hours), Some(24));
        assert_eq!(
            l.params(Level::Orange).map(|p| p.act_within_hours),
            Some(72)
        );
        assert_eq!(
            l.params(Level::Yellow).map(|p| p.act_within_hours),
            Some(360)
        );
    }

    #[test]
    fn score_only_rises_as_facts_arrive_in_an_open_episode() {
        let h = family(Category::DibaoEdge);
        let all = timeline([
            ("M1", "2026-02-01", job_lost("2026-01-31", Some(200_000))),
            ("M1", "2026-02-10", unemployment("2026-02-10")),
            ("M2", "2026-03-01", diagnosis("C50.9", "2026-03-01")),
            ("M1", "2026-04-01", job_started("2026-04-01", 300_000)),
        ]);
        let mut last = 0;
        for n in 1..=all.len() {
            let a = run(&h, &all[..n], "2026-04-02");
            assert!(a.score >= last, "{n}: {} < {last}", a.score);
            last = a.score;
        }
    }

    #[test]
    fn single_elderly_tekun_weighs_more() {
        let facts = only("M1", "2026-03-01", diagnosis("C34.9", "2026-03-01"));
        let tekun = run(&single_elderly(Category::Tekun), &facts, "2026-03-02");
        let ordinary = run(&family(Category::EdgeProne), &facts, "2026-03-02");
        assert!(tekun.score > ordinary.score, "{tekun:#?} {ordinary:#?}");
        assert!(tekun.level > ordinary.level);
        sum_is_score(&tekun);
        let v = tekun
            .contributions
            .iter()
            .find(|c| c.rule_id == "vulnerability")
            .expect("multiplier shown");
        // ×1.5 tekun + 0.3 alone + 0.2 nobody able to work = ×2.0
        assert_contains(&v.reason_zh, "×2.0");
        assert_contains(&v.reason_zh, "独居老人");
        // 45 + 30 (at most one level): orange, one step above the finding's yellow
        assert_eq!(tekun.score, 75);
        assert_eq!(tekun.level, Level::Orange);
    }

    #[test]
    fn illness_with_heavy_bills_is_orange_and_red_when_a_bill_is_beyond_the_households_capacity() {
        let h = family_dibao_rural();
        let facts = timeline([
            ("M2", "2026-01-05", diagnosis("C50.9", "2026-01-05")),
            ("M2", "2026-01-20", inpatient(1_200_000, "2026-01-20")),
            ("M2", "2026-02-20", inpatient(800_000, "2026-02-20")),
        ]);
        let a = run(&h, &facts, "2026-03-01");
        // 支出型: a bill of 40 % of the yearly capacity (30,000) is heavy, not beyond it
        assert_eq!(a.level, Level::Orange, "{a:#?}");
        sum_is_score(&a);
        let ids: Vec<_> = a.contributions.iter().map(|c| c.rule_id.as_str()).collect();
        assert!(ids.contains(&"serious_illness"));
        assert!(ids.contains(&"medical_burden"));
        assert!(ids.contains(&"catastrophic_bill"));
        assert_eq!(a.relief.as_ref().map(|r| r.kind.as_str()), Some("expense"));
        // one bill of a whole year's capacity: 急难, red
        let beyond = timeline([
            ("M2", "2026-01-05", diagnosis("C50.9", "2026-01-05")),
            ("M2", "2026-01-20", inpatient(3_000_000, "2026-01-20")),
        ]);
        let b = run(&h, &beyond, "2026-03-01");
        assert_eq!(b.level, Level::Red, "{b:#?}");
        let bill = b
            .contributions
            .iter()
            .find(|c| c.rule_id == "catastrophic_bill")
            .expect("bill");
        assert_eq!(bill.cause.as_deref(), Some("bill_beyond_capacity"));
        assert_eq!(
            b.relief.as_ref().map(|r| r.kind.as_str()),
            Some("emergency")
        );
    }

    #[test]
    fn new_job_opens_review_not_a_cut() {
        let h = family(Category::DibaoEdge);
        let lost = only("M1", "2026-02-01", job_lost("2026-01-31", None));
        let before = run(&h, &lost, "2026-02-10");
        assert!(before.level > Level::None, "{before:#?}");
        let mut both = lost.to_vec();
        both.push(fact(
            "E2",
            "M1",
            "2026-02-08",
            job_started("2026-02-08", 300_000),
        ));
        let after = run(&h, &both, "2026-02-10");
        assert!(after.score >= before.score, "{before:#?} {after:#?}");
        assert_eq!(after.level, before.level);
        assert!(
            after
                .review_needed
                .iter()
                .any(|r| r.contains("E2") || r.contains("2026-02-08")),
            "{:#?}",
            after.review_needed
        );
    }

    #[test]
    fn dibao_income_rise_opens_gradual_exit_review() {
        let h = family_dibao_rural();
        let facts = only("M2", "2026-02-08", job_started("2026-02-08", 300_000));
        let a = run(&h, &facts, "2026-02-10");
        assert_eq!(a.level, Level::None);
        let r = a
            .review_needed
            .iter()
            .find(|r| r.starts_with("[dibao_gradual_exit]"))
            .expect("gradual exit review");
        assert!(r.contains("6个月"), "{r}");
        assert!(r.contains("never an instant cut"), "{r}");
        let p = [fact(
            "E2",
            "M2",
            "2026-02-08",
            property_acquired("2026-02-08", 50_000_000),
        )];
        let a = run(&h, &p, "2026-02-10");
        assert_review(&a, "[asset_check]");
        assert_eq!(a.level, Level::None);
    }

    #[test]
    fn sole_member_death_stops_benefit_without_warning() {
        let h = single_elderly(Category::Tekun);
        let facts = only("M1", "2026-03-02", death("2026-03-02"));
        let a = run(&h, &facts, "2026-03-03");
        assert_eq!(a.level, Level::None);
        assert_eq!(a.relief, None);
        assert_review(&a, "[benefit_stop_on_death]");
    }

    #[test]
    fn job_loss_of_only_earner_in_edge_household() {
        // head earning 2,000 loses the job; per capita falls from 833.33 to 166.66, below 732
        let h = family(Category::DibaoEdge);
        let facts = only("M1", "2026-02-01", job_lost("2026-01-31", Some(200_000)));
        let a = run(&h, &facts, "2026-02-02");
        sum_is_score(&a);
        let points = points(&a);
        // job lost 25 + nobody left in work 10; income per head after deductions down 80 %
        // (666.66 → 133.33; already below 732 at registration, so a sharp drop) 15;
        // × (1.2 低保边缘 + 0.1 a child) = 65
        assert_eq!(
            points,
            vec![
                ("job_loss", 35),
                ("income_below_line", 15),
                ("vulnerability", 15)
            ]
        );
        assert_eq!((a.score, a.level), (65, Level::Orange), "{a:#?}");
        assert_eq!(a.act_within_hours, Some(72));
        assert_eq!(a.relief.as_ref().map(|r| r.kind.as_str()), Some("expense"));
    }

    #[test]
    fn uninhabitable_home_after_flood_for_elderly_tekun_is_red() {
        let h = single_elderly(Category::Tekun);
        let facts = only("M1", "2026-07-01", disaster(3_500_000, true, "2026-07-01"));
        let a = run(&h, &facts, "2026-07-02");
        assert_eq!(a.level, Level::Red);
        assert!(a.contributions[0].reason_zh.contains("35000.00元"));
        let r = a.relief.unwrap();
        assert_eq!(r.kind, "emergency");
    }

    #[test]
    fn dangerous_house_c_is_weaker_than_d() {
        let h = family_dibao_rural();
        let c = run(
            &h,
            &only("M1", "2026-03-01", dangerous(HouseGrade::C, "2026-03-01")),
            "2026-03-02",
        );
        let d = run(
            &h,
            &only("M1", "2026-03-01", dangerous(HouseGrade::D, "2026-03-01")),
            "2026-03-02",
        );
        assert!(c.score < d.score);
    }

    #[test]
    fn assessment_roundtrips_json() {
        let h = family_dibao_rural();
        let facts = only("M1", "2026-03-02", death("2026-03-02"));
        let a = run(&h, &facts, "2026-03-03");
        let j = serde_json::to_string(&a).unwrap();
        assert!(j.contains("\"level\":\"orange\""), "{j}");
        let back: Assessment = serde_json::from_str(&j).unwrap();
        assert_eq!(back, a);
        assert_eq!(a.rule_set_version, RuleSet::builtin().version);
    }

    #[test]
    fn times_formats_permille() {
        assert_eq!(times(1500), "1.5");
        assert_eq!(times(1000), "1.0");
        assert_eq!(times(1150), "1.15");
        assert_eq!(times(300), "0.3");
    }
}
