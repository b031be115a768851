//! What no longer counts, and why. When a household's risk episode is cleared or has aged out —
//! or ended before the open one began — its findings are evaluated again as they stood (counting
//! only that episode's signals) and each is given what changed since: "income back at or above
//! the line since …" (风险消除 with evidence), "the disaster is now more than 6 months old" (the
//! signal expired, nobody verified it). A warning they raised is then shown with its original
//! reasons and "verify and close", never as an empty red. All of it in event time: the day of
//! the assessment is the household's latest fact.

use chrono::Months;
use doudi_model::{Lapsed, RiskState, RiskStatus};

use crate::clearance::ClearanceStatus;
use crate::rule::{Ctx, Lapse};
use crate::ruleset::RuleSet;
use crate::urgency::classify;

/// Where the household's risk stands under `rules`, with the findings that no longer count.
pub fn risk_state(rules: &RuleSet, cx: &Ctx) -> RiskState {
    let c = &cx.clearance;
    let status = match c.status {
        ClearanceStatus::NoRisk => RiskStatus::NoRisk,
        ClearanceStatus::Open => RiskStatus::Open,
        ClearanceStatus::Watched => RiskStatus::Watched,
        ClearanceStatus::Cleared => match c.previous.and_then(|e| e.income_back_on) {
            Some(_) => RiskStatus::Cleared,
            None => RiskStatus::Expired,
        },
    };
    let Some(episode) = c.previous else {
        return RiskState {
            status,
            lapsed_on: None,
            lapsed: Vec::new(),
        };
    };
    let months = rules.review.risk_clear_stable_months;
    let lapsed_on = episode
        .end
        .checked_add_months(Months::new(u32::try_from(months).unwrap_or(6)));
    let then = cx.with_clearance(c.within(episode));
    let mut findings = rules.rules.evaluate(&then);
    classify(&rules.urgency, &mut findings);
    let lapse = Lapse {
        episode,
        stable_months: months,
        line: c.line,
    };
    let lapsed = findings
        .into_iter()
        .map(|finding| {
            let (change_zh, change_en) = rules
                .rules
                .change(&finding.rule_id, &lapse, cx.state)
                .unwrap_or_else(|| lapse.aged(("风险因素", "risk signal")));
            Lapsed {
                finding,
                change_zh,
                change_en,
            }
        })
        .collect();
    RiskState {
        status,
        lapsed_on,
        lapsed,
    }
}

#[cfg(test)]
mod tests {
    use crate::assess::assess;
    use crate::ruleset::RuleSet;
    use crate::state::derive_state;
    use crate::testkit::*;
    use doudi_model::{Assessment, Category, Fact, Household, Level, RiskStatus, Urgency};

    fn run(h: &Household, facts: &[Fact], day: &str) -> Assessment {
        assess(&RuleSet::builtin(), h, &derive_state(h, facts, at(day)))
    }

    #[test]
    fn a_disaster_long_past_is_expired_with_its_original_reasons_and_what_changed() {
        let h = family(Category::Dibao);
        let facts = ruined_then_moved();
        // while the home is ruined: red (急难)
        assert_eq!(run(&h, &facts[..1], "2025-12-11").level, Level::Red);
        // eight months on, nothing new: the signal no longer counts; nobody verified anything
        let a = run(&h, &facts, "2026-08-01");
        assert_eq!(a.level, Level::None, "{a:#?}");
        assert!(a.contributions.is_empty());
        let risk = a.risk.as_ref().expect("risk");
        assert_eq!(risk.status, RiskStatus::Expired);
        assert_eq!(risk.lapsed_on, Some(date("2026-07-05")));
        assert_eq!(risk.lapsed.len(), 1, "{risk:#?}");
        let l = &risk.lapsed[0];
        assert_eq!(l.finding.rule_id, "disaster_damage");
        assert_eq!(l.finding.event_ids, vec!["E1"]);
        assert_eq!(l.finding.points, 60);
        assert_eq!(l.finding.urgency, Some(Urgency::Expense));
        assert_starts(&l.finding.reason_zh, "2025-12-10遭受洪涝灾害");
        assert_eq!(
            l.change_en,
            "the disaster is now more than 6 months old, with no new risk signal since 2026-01-05; the household moved on 2026-01-05"
        );
        assert_eq!(
            l.change_zh,
            "灾害已超过6个月，2026-01-05以来无新的风险因素；已于2026-01-05搬迁"
        );
    }

    #[test]
    fn income_back_above_the_line_is_cleared_with_its_evidence() {
        let h = family(Category::DibaoEdge);
        let facts = timeline([
            ("M1", "2025-06-01", job_lost("2025-05-31", Some(200_000))),
            ("M1", "2025-08-01", job_started("2025-08-01", 250_000)),
        ]);
        let a = run(&h, &facts, "2026-03-01");
        assert_eq!(a.level, Level::None, "{a:#?}");
        let risk = a.risk.as_ref().expect("risk");
        assert_eq!(risk.status, RiskStatus::Cleared, "{risk:#?}");
        let income = risk
            .lapsed
            .iter()
            .find(|l| l.finding.rule_id == "income_below_line")
            .expect("the fall in income, as it stood");
        assert_starts(
            &income.change_en,
            "per-capita income after deductions back at or above",
        );
        assert_contains(&income.change_en, "since 2025-08-01");
        let job = risk
            .lapsed
            .iter()
            .find(|l| l.finding.rule_id == "job_loss")
            .expect("job");
        assert!(job
            .change_en
            .starts_with("the job loss is now more than 6 months old"));
    }

    #[test]
    fn a_household_never_at_risk_says_so_and_an_open_risk_has_nothing_lapsed() {
        let h = family(Category::Dibao);
        let quiet = run(&h, &[], "2026-03-01");
        let risk = quiet.risk.as_ref().expect("risk");
        assert_eq!((risk.status, risk.lapsed.len()), (RiskStatus::NoRisk, 0));
        let open = run(
            &h,
            &only("M2", "2026-03-01", diagnosis("C50.9", "2026-03-01")),
            "2026-03-02",
        );
        let risk = open.risk.as_ref().expect("risk");
        assert_eq!((risk.status, risk.lapsed.len()), (RiskStatus::Open, 0));
    }

    #[test]
    fn a_new_episode_keeps_the_previous_ones_findings_as_lapsed() {
        let h = family(Category::Dibao);
        let facts = timeline([
            ("M1", "2025-01-10", disaster(8_000_000, false, "2025-01-10")),
            ("M2", "2026-03-01", diagnosis("C50.9", "2026-03-01")),
        ]);
        let a = run(&h, &facts, "2026-03-02");
        assert!(a
            .contributions
            .iter()
            .any(|c| c.rule_id == "serious_illness"));
        let risk = a.risk.as_ref().expect("risk");
        assert_eq!(risk.status, RiskStatus::Open);
        assert_eq!(risk.lapsed.len(), 1);
        assert_eq!(risk.lapsed[0].finding.rule_id, "disaster_damage");
        assert_eq!(risk.lapsed_on, Some(date("2025-07-10")));
    }
}
