//! Urgency from policy (the `[urgency]` table of the rule set): how urgent a warning is comes from
//! what happened, never from who the household is.
//!
//! - 急难 (basic living threatened now: the main income gone with nobody able to work, the home
//!   uninhabitable, a bill beyond the household's capacity) is red, whatever the household's
//!   category;
//! - 支出型 (expense-driven) and income below a line are yellow or orange by the size of their
//!   findings (`levels.*.min_score`), never red;
//! - vulnerability (category, an elderly person alone, children, nobody able to work) raises the
//!   level by at most `urgency.vulnerability_max_steps` (one) step, and never makes a red.

use doudi_model::{Contribution, Level, LevelBasis, Urgency};

use crate::policy::{Levels, UrgencyTable};
use crate::rule::{BILL_BEYOND_CAPACITY, HOME_UNINHABITABLE, INCOME_GONE};
use crate::rules::rule_name;

/// Give each finding its class: by its cause, else by its rule.
pub fn classify(table: &UrgencyTable, findings: &mut [Contribution]) {
    for f in findings {
        f.urgency = table.class_of(f.cause_or_rule());
    }
}

/// An 急难 cause in words (Chinese, English).
fn cause_words(cause: &str) -> (String, String) {
    let (zh, en) = match cause {
        INCOME_GONE => (
            "主要收入中断，家中已无有劳动能力的成员",
            "the main income is gone and nobody left can work",
        ),
        HOME_UNINHABITABLE => (
            "住房已无法居住，尚未搬迁",
            "the home cannot be lived in and the household has not moved",
        ),
        BILL_BEYOND_CAPACITY => (
            "单笔医疗账单超出家庭全年支付能力",
            "one bill is beyond the household's yearly capacity to pay",
        ),
        other => rule_name(other).unwrap_or((other, other)),
    };
    (zh.to_string(), en.to_string())
}

/// The level of an assessment and why: `findings` (classed) add up to `base` points, and with
/// vulnerability to `score`.
pub fn level_of(
    table: &UrgencyTable,
    levels: &Levels,
    findings: &[Contribution],
    base: i64,
    score: i64,
) -> (Level, LevelBasis) {
    let by_findings = levels.level_for(base);
    let urgency = findings.iter().filter_map(|f| f.urgency).max();
    if urgency == Some(Urgency::Emergency) {
        let causes: Vec<(String, String)> = findings
            .iter()
            .filter(|f| f.urgency == Some(Urgency::Emergency))
            .map(|f| cause_words(f.cause_or_rule()))
            .collect();
        let zh: Vec<&str> = causes.iter().map(|c| c.0.as_str()).collect();
        let en: Vec<&str> = causes.iter().map(|c| c.1.as_str()).collect();
        return (
            Level::Red,
            LevelBasis {
                urgency,
                by_findings,
                raised_by_vulnerability: false,
                reason_zh: format!(
                    "急难：{}，基本生活即时受到威胁：红色预警，不论家庭类别",
                    zh.join("；")
                ),
                reason_en: format!(
                    "急难 (emergency): {}; basic living is threatened now: red, whoever the household is",
                    en.join("; ")
                ),
            },
        );
    }
    let mut allowed = by_findings;
    for _ in 0..table.vulnerability_max_steps {
        allowed = allowed.step_up();
    }
    let by_score = levels.level_for(score);
    let level = by_score.min(allowed).min(Level::Orange);
    let raised = level > by_findings;
    let class = urgency.unwrap_or(Urgency::Expense);
    let (class_zh, class_en) = match class {
        Urgency::Income => ("收入低于线", "income below a line"),
        _ => ("支出型", "支出型 (expense-driven)"),
    };
    let mut zh = format!("{class_zh}：风险因素合计{base}分，");
    let mut en = format!("{class_en}: findings of {base} points, ");
    match levels.params(by_findings) {
        None => {
            zh.push_str(&format!("未达黄色线（{}分）", levels.yellow.min_score));
            en.push_str(&format!(
                "below the yellow line ({} points)",
                levels.yellow.min_score
            ));
        }
        Some(p) => {
            zh.push_str(&format!(
                "达{}线（{}分）",
                by_findings.name_zh(),
                p.min_score
            ));
            en.push_str(&format!(
                "{} by their size (from {} points)",
                by_findings.code(),
                p.min_score
            ));
        }
    }
    if raised {
        zh.push_str(&format!(
            "；家庭脆弱性使等级提高一级，为{}",
            level.name_zh()
        ));
        en.push_str(&format!(
            "; the household's vulnerability raises it one step, to {}",
            level.code()
        ));
    }
    if by_score.max(by_findings) > level {
        if level == Level::Orange {
            zh.push_str("；非急难情形最高为橙色");
            en.push_str("; without an emergency (急难) a warning is orange at most");
        } else {
            zh.push_str("；家庭脆弱性至多提高一级");
            en.push_str("; vulnerability raises a level by one step at most");
        }
    }
    (
        level,
        LevelBasis {
            urgency,
            by_findings,
            raised_by_vulnerability: raised,
            reason_zh: zh,
            reason_en: en,
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::assess::assess;
    use crate::ruleset::RuleSet;
    use crate::state::derive_state;
    use crate::testkit::*;
    use crate::VULNERABILITY_ID;
    use doudi_model::event::HouseGrade;
    use doudi_model::{Assessment, Category, Fact, Household, Relation, Sex, WorkCapacity};

    fn run(h: &Household, facts: &[Fact], day: &str) -> Assessment {
        assess(&RuleSet::builtin(), h, &derive_state(h, facts, at(day)))
    }

    /// Among the reds, the largest contribution is a finding, never the vulnerability multiplier.
    fn driven_by_findings(a: &Assessment) -> bool {
        let v = a
            .contributions
            .iter()
            .filter(|c| c.rule_id == VULNERABILITY_ID)
            .map(|c| c.points)
            .max()
            .unwrap_or(0);
        a.contributions
            .iter()
            .filter(|c| c.urgency.is_some())
            .any(|c| c.points >= v)
    }

    /// A member of a test household: sex, birth date, capacity to work, employed, monthly income
    /// in yuan.
    type Person<'a> = (Sex, &'a str, WorkCapacity, bool, i64);

    /// A rural household of two: the head (M1) and one more member (M2).
    fn rural_two(category: Category, head: Person, relation: Relation, other: Person) -> Household {
        let m = |id, relation, (sex, birth, capacity, employed, yuan): Person| {
            member(id, relation, sex, birth, capacity, employed, yuan)
        };
        household(
            category,
            doudi_model::Area::Rural,
            vec![m("M1", Relation::Head, head), m("M2", relation, other)],
        )
    }

    /// Two adults of 63 and 62 (over working age), the head still employed.
    fn older_couple(category: Category) -> Household {
        let husband = (Sex::Male, "1963-01-02", WorkCapacity::Full, true, 2500);
        let wife = (Sex::Female, "1964-02-03", WorkCapacity::Partial, false, 0);
        rural_two(category, husband, Relation::Spouse, wife)
    }

    /// A single mother of 35, farming, and her child of 8.
    fn single_mother(category: Category) -> Household {
        let mother = (Sex::Female, "1991-04-05", WorkCapacity::Full, false, 900);
        let child = (Sex::Male, "2018-06-07", WorkCapacity::None, false, 0);
        rural_two(category, mother, Relation::Child, child)
    }

    fn assert_emergency(a: &Assessment, cause: &str, what: &str) {
        assert_eq!(a.level, Level::Red, "{what}: {a:#?}");
        assert_eq!(a.act_within_hours, Some(24), "{what}");
        let basis = a.basis.as_ref().expect("basis");
        assert_eq!(basis.urgency, Some(Urgency::Emergency), "{what}");
        assert!(
            a.contributions
                .iter()
                .any(|c| c.cause.as_deref() == Some(cause)),
            "{what}: {a:#?}"
        );
        assert!(driven_by_findings(a), "{what}: {a:#?}");
        assert_eq!(
            a.relief.as_ref().map(|r| r.kind.as_str()),
            Some("emergency"),
            "{what}"
        );
    }

    #[test]
    fn each_emergency_cause_is_red_whatever_the_households_category() {
        for category in Category::ALL {
            // the main income gone, nobody left able to work: the earner dies ...
            let mut h = family(category);
            h.members[1].work_capacity = WorkCapacity::None;
            let a = run(
                &h,
                &only("M1", "2026-03-02", death("2026-03-02")),
                "2026-03-03",
            );
            assert_emergency(&a, "income_gone", &format!("{category:?} earner died"));
            // ... or the only earner, past working age, loses the job
            let h = older_couple(category);
            let a = run(
                &h,
                &only("M1", "2026-02-01", job_lost("2026-01-31", Some(250_000))),
                "2026-02-02",
            );
            assert_emergency(&a, "income_gone", &format!("{category:?} job lost"));
            // the home uninhabitable: a flood on a two-earner household ...
            let mut h = family(category);
            h.members[1].employed = true;
            let flood = only("M1", "2026-07-01", disaster(8_000_000, true, "2026-07-01"));
            let a = run(&h, &flood, "2026-07-02");
            assert_emergency(&a, "home_uninhabitable", &format!("{category:?} flood"));
            // ... and a single mother's house destroyed
            let a = run(&single_mother(category), &flood, "2026-07-02");
            assert_emergency(
                &a,
                "home_uninhabitable",
                &format!("{category:?} single mother"),
            );
            // a bill beyond the household's capacity to pay in a year
            let h = family(category);
            let bill = only("M2", "2026-01-20", inpatient(3_000_000, "2026-01-20"));
            let a = run(&h, &bill, "2026-01-21");
            assert_emergency(&a, "bill_beyond_capacity", &format!("{category:?} bill"));
        }
    }

    #[test]
    fn a_household_that_moved_out_of_its_ruined_home_is_no_longer_an_emergency() {
        let h = family(Category::Dibao);
        let facts = timeline([
            ("M1", "2026-07-01", disaster(8_000_000, true, "2026-07-01")),
            ("M1", "2026-07-20", relocated(false, "2026-07-20")),
        ]);
        let a = run(&h, &facts, "2026-07-21");
        // 60 for the ruined home: orange by its size, no longer 急难
        assert_eq!(a.level, Level::Orange, "{a:#?}");
        assert!(a.contributions.iter().all(|c| c.cause.is_none()));
    }

    #[test]
    fn vulnerability_raises_one_step_at_most_and_never_makes_a_red() {
        let cases: [(&str, Vec<Fact>); 5] = [
            (
                "non-earner death",
                only("M3", "2026-03-02", death("2026-03-02")).to_vec(),
            ),
            (
                "illness",
                only("M2", "2026-03-01", diagnosis("C50.9", "2026-03-01")).to_vec(),
            ),
            (
                "dangerous house",
                only("M1", "2026-03-01", dangerous(HouseGrade::D, "2026-03-01")).to_vec(),
            ),
            (
                "illness with a heavy year",
                timeline([
                    ("M2", "2026-01-05", diagnosis("C50.9", "2026-01-05")),
                    ("M2", "2026-01-20", inpatient(1_100_000, "2026-01-20")),
                    ("M2", "2026-02-20", inpatient(1_100_000, "2026-02-20")),
                    ("M2", "2026-02-25", inpatient(1_100_000, "2026-02-25")),
                    ("M2", "2026-02-28", inpatient(1_100_000, "2026-02-28")),
                ]),
            ),
            (
                "job loss",
                timeline([
                    ("M1", "2026-02-01", job_lost("2026-01-31", Some(200_000))),
                    ("M1", "2026-02-10", unemployment("2026-02-10")),
                ]),
            ),
        ];
        for category in Category::ALL {
            for h in [family(category), single_elderly(category)] {
                for (what, facts) in &cases {
                    // (an old person alone losing a job: nobody left can work, 急难)
                    let alone = h.members.len() == 1;
                    if facts
                        .iter()
                        .any(|f| h.members.iter().all(|m| m.member_id != f.member_id))
                        || (alone && *what == "job loss")
                    {
                        continue;
                    }
                    let a = run(&h, facts, "2026-03-03");
                    let basis = a.basis.as_ref().expect("basis");
                    assert_ne!(basis.urgency, Some(Urgency::Emergency), "{what}: {a:#?}");
                    assert!(
                        a.level <= basis.by_findings.step_up(),
                        "{category:?} {what}: {a:#?}"
                    );
                    assert!(a.level >= basis.by_findings.min(Level::Orange), "{what}");
                    assert!(a.level <= Level::Orange, "{category:?} {what}: {a:#?}");
                    assert_eq!(basis.raised_by_vulnerability, a.level > basis.by_findings);
                }
            }
        }
        // 特困, alone, nobody able to work (×2.0): a serious illness (yellow by itself) is
        // orange, not red
        let h = single_elderly(Category::Tekun);
        let a = run(
            &h,
            &only("M1", "2026-03-01", diagnosis("C34.9", "2026-03-01")),
            "2026-03-02",
        );
        assert_eq!((a.level, a.score), (Level::Orange, 75), "{a:#?}");
        assert!(a.basis.as_ref().is_some_and(|b| b.raised_by_vulnerability
            && b.reason_en
                .contains("vulnerability raises it one step, to orange")));
    }

    #[test]
    fn findings_below_yellow_are_raised_one_step_by_vulnerability() {
        // a grade C dangerous house (25) in a 低保 household with a child (×1.4 → 35): yellow
        let h = family(Category::Dibao);
        let c = only("M1", "2026-03-01", dangerous(HouseGrade::C, "2026-03-01"));
        let a = run(&h, &c, "2026-03-02");
        let basis = a.basis.as_ref().expect("basis");
        assert_eq!(
            (basis.by_findings, a.level, a.score),
            (Level::None, Level::Yellow, 35)
        );
        assert!(basis.raised_by_vulnerability);
        assert_contains(
            &basis.reason_zh,
            "未达黄色线（30分）；家庭脆弱性使等级提高一级，为黄色",
        );
    }
}
