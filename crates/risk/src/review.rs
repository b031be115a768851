//! Reviews opened by the timeline that must never lower a score or cut a benefit by themselves:
//! 低保渐退 after an income rise, an asset check after a property acquisition, a benefit
//! adjustment or stop after a death (防止超发).
//!
//! Each entry is one line: `[code] 中文 / English`, with a stable code first.

use chrono::{Months, NaiveDate};
use doudi_model::event::PropertyType;
use doudi_model::Category;

use crate::clearance::ClearanceStatus;
use crate::rule::{relation_en, relation_of, relation_zh, Ctx};
use crate::state::{HouseholdState, IncomeRise, IncomeRiseKind};

fn entry(code: &str, zh: String, en: String) -> String {
    format!("[{code}] {zh} / {en}")
}

fn what(state: &HouseholdState, r: &IncomeRise) -> (String, String) {
    let rel = relation_of(state, r.member_id);
    let (z, e) = (relation_zh(rel), relation_en(rel));
    let amount = r
        .amount
        .map(|a| a.to_string())
        .unwrap_or_else(|| "?".into());
    match r.kind {
        IncomeRiseKind::JobStarted => (
            format!("家庭成员（{z}）于{}就业，月工资{amount}元", r.on),
            format!(
                "Member ({e}) started a job on {} at {amount} yuan a month",
                r.on
            ),
        ),
        IncomeRiseKind::WageUp => (
            format!("家庭成员（{z}）月工资于{}调整为{amount}元", r.on),
            format!(
                "Member ({e})'s monthly wage rose to {amount} yuan on {}",
                r.on
            ),
        ),
        IncomeRiseKind::PropertyAcquired => {
            let (tz, te) = match r.property_type {
                Some(PropertyType::Residential) => ("住宅", "a residence"),
                Some(PropertyType::Commercial) => ("商业用房", "commercial property"),
                Some(PropertyType::Land) => ("土地", "land"),
                _ => ("财产", "property"),
            };
            let (vz, ve) = match r.amount {
                Some(v) => (format!("（价值{v}元）"), format!(" (value {v} yuan)")),
                None => (String::new(), String::new()),
            };
            (
                format!("家庭成员（{z}）于{}登记取得{tz}{vz}", r.on),
                format!("Member ({e}) registered {te}{ve} on {}", r.on),
            )
        }
    }
}

/// What the officer should know about clearing the risk (风险消除).
fn clearance_note(cx: &Ctx, out: &mut Vec<String>) {
    let c = &cx.clearance;
    let months = cx.review.risk_clear_stable_months;
    let as_of = cx.state.as_of_date();
    let line = c.line;
    match c.status {
        // Say it while it is news: within the stable period after the day it was cleared.
        ClearanceStatus::Cleared => {
            let (Some(since), Some(on)) = (c.stable_since, c.cleared_on) else {
                return;
            };
            let shown_until = on
                .checked_add_months(Months::new(u32::try_from(months).unwrap_or(6)))
                .unwrap_or(NaiveDate::MAX);
            if as_of < shown_until {
                out.push(entry(
                    "risk_cleared",
                    format!("自{since}起无新的风险因素，扣除后人均月收入稳定不低于{line}元满{months}个月，且家中有劳动能力的成员：可作风险消除（{on}）"),
                    format!("No risk signal since {since}; per-capita income after deductions has stayed at or above {line} yuan for {months} months and someone can work: the risk may be cleared ({on})"),
                ));
            }
        }
        ClearanceStatus::Open => {
            let Some(start) = c.episode_start else { return };
            // Only once the episode is older than the stable period: say why it is not cleared.
            let old = start
                .checked_add_months(Months::new(u32::try_from(months).unwrap_or(6)))
                .is_some_and(|d| as_of >= d);
            if !old {
                return;
            }
            let (zh, en) = match (c.stable_since, c.anyone_able) {
                (None, _) => (
                    format!("扣除后人均月收入仍低于{line}元"),
                    format!("per-capita income after deductions is still below {line} yuan"),
                ),
                (Some(s), true) => (
                    format!("自{s}起稳定，尚未满{months}个月"),
                    format!("stable since {s}, not yet for {months} months"),
                ),
                (Some(s), false) => (
                    format!("自{s}起稳定，但家中无有劳动能力的成员"),
                    format!("stable since {s}, but nobody in the household can work"),
                ),
            };
            out.push(entry(
                "risk_not_cleared",
                format!("风险自{start}起尚未消除：{zh}，继续监测"),
                format!("The risk open since {start} is not cleared: {en}; keep watching"),
            ));
        }
        ClearanceStatus::NoRisk | ClearanceStatus::Watched => {}
    }
}

/// The reviews the state calls for under these rules.
pub fn review_needed(cx: &Ctx) -> Vec<String> {
    let (household, state) = (cx.household, cx.state);
    let mut out: Vec<String> = Vec::new();
    let as_of = state.as_of_date();
    let grace = u32::try_from(cx.review.dibao_grace_months).unwrap_or(6);
    let grace_start = if state.income_rises.is_empty() {
        NaiveDate::MAX
    } else {
        as_of
            .checked_sub_months(Months::new(grace))
            .unwrap_or(NaiveDate::MIN)
    };
    let supported = matches!(household.category, Category::Dibao | Category::Tekun);

    // Deaths: stop or adjust the benefit (never pay a deceased person).
    if state.size_now() == 0 {
        let last = state.deaths.iter().map(|d| d.died_on).max();
        let on = last.map(|d| d.to_string()).unwrap_or_else(|| "?".into());
        out.push(entry(
            "benefit_stop_on_death",
            format!("全部家庭成员已死亡（最后一位于{on}）：停发保障金并注销档案，防止超发"),
            format!("All members have died (the last on {on}): stop the benefit and close the file, to prevent over-payment"),
        ));
    } else if supported {
        for d in state.deaths.iter().filter(|d| cx.counts(d.died_on)) {
            out.push(entry(
                "benefit_adjust_on_death",
                format!(
                    "家庭成员（{}）于{}死亡：复核并调整保障金，防止超发；在世成员的救助照常",
                    relation_zh(d.relation),
                    d.died_on
                ),
                format!(
                    "Member ({}) died on {}: review and adjust the benefit to prevent over-payment; help for the surviving members continues",
                    relation_en(d.relation),
                    d.died_on
                ),
            ));
        }
    }
    if state.size_now() == 0 {
        return out;
    }

    let std = cx.standard;
    let pc = cx.deductions.per_capita(state.parts_now(), cx.pupils);
    let nobody_able = !state.alive_members().any(|m| cx.able(m));
    let stable = cx.review.risk_clear_stable_months;
    for r in state.income_rises.iter().filter(|r| r.on >= grace_start) {
        let (wz, we) = what(state, r);
        if r.kind == IncomeRiseKind::PropertyAcquired {
            out.push(entry(
                "asset_check",
                format!("{wz}：按低保财产规定核查家庭财产，核查前不停发、不减发"),
                format!("{we}: check the household's assets against the rules; nothing is stopped or cut before the check"),
            ));
            continue;
        }
        match household.category {
            Category::Dibao if pc >= std.dibao_monthly => {
                let until = r
                    .on
                    .checked_add_months(Months::new(grace))
                    .map(|d| d.to_string())
                    .unwrap_or_else(|| "?".into());
                out.push(entry(
                    "dibao_gradual_exit",
                    format!(
                        "{wz}，家庭人均月收入{pc}元已高于低保标准{}元：启动低保渐退复核，保障金继续发放{grace}个月（至{until}），不得立即停发",
                        std.dibao_monthly
                    ),
                    format!(
                        "{we}; per-capita monthly income {pc} yuan is above the 低保 standard of {} yuan: open a 低保渐退 (gradual exit) review; the benefit continues for {grace} months (until {until}), never an instant cut",
                        std.dibao_monthly
                    ),
                ));
            }
            Category::Dibao => out.push(entry(
                "benefit_recheck",
                format!(
                    "{wz}，家庭人均月收入{pc}元仍低于低保标准{}元：复核保障金额，复核前不减发",
                    std.dibao_monthly
                ),
                format!(
                    "{we}; per-capita monthly income {pc} yuan is still below the 低保 standard of {} yuan: recheck the amount; nothing is cut before the review",
                    std.dibao_monthly
                ),
            )),
            Category::Tekun => out.push(entry(
                "tekun_recheck",
                format!("{wz}：复核特困供养条件，复核前不停发"),
                format!("{we}: recheck eligibility for extreme-poverty support; nothing is stopped before the review"),
            )),
            _ => {
                let (nz, ne) = if nobody_able {
                    (
                        "；家中无有劳动能力的成员，不作风险消除，继续监测",
                        "; nobody in the household is able to work, so risk is not cleared: keep watching",
                    )
                } else {
                    ("", "")
                };
                out.push(entry(
                    "risk_clear_review",
                    format!(
                        "{wz}：收入需稳定高于标准满{stable}个月方可风险消除，期间继续监测{nz}"
                    ),
                    format!(
                        "{we}: income must stay above the line for {stable} months before risk is cleared; keep watching until then{ne}"
                    ),
                ));
            }
        }
    }
    clearance_note(cx, &mut out);
    // Drop repeats (two rises on one day read the same), keeping the first.
    let mut i = 0;
    while i < out.len() {
        if out[..i].contains(&out[i]) {
            out.remove(i);
        } else {
            i += 1;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ruleset::RuleSet;
    use crate::state::derive_state;
    use crate::testkit::*;
    use doudi_model::Household;

    fn review_needed_for(rules: &RuleSet, h: &Household, s: &HouseholdState) -> Vec<String> {
        review_needed(&rules.context(h, s))
    }

    #[test]
    fn wage_rise_in_dibao_household_opens_gradual_exit_with_grace_months() {
        let rules = RuleSet::builtin();
        let h = family_dibao_rural();
        let facts = only("M1", "2026-02-01", wage_changed("2026-02-01", 300_000));
        let v = review_needed_for(&rules, &h, &derive_state(&h, &facts, at("2026-02-02")));
        assert_eq!(v.len(), 1, "{v:#?}");
        assert_starts(&v[0], "[dibao_gradual_exit]");
        assert_contains(&v[0], "至2026-08-01");
        // after the grace period the entry is gone
        let later = review_needed_for(&rules, &h, &derive_state(&h, &facts, at("2026-09-01")));
        assert!(later.is_empty(), "{later:#?}");
        // a wage cut is not a rise
        let cut = only("M1", "2026-02-01", wage_changed("2026-02-01", 100_000));
        assert!(
            review_needed_for(&rules, &h, &derive_state(&h, &cut, at("2026-02-02"))).is_empty()
        );
    }

    #[test]
    fn elderly_edge_household_is_never_cleared_without_work_capacity() {
        let rules = RuleSet::builtin();
        let h = single_elderly(Category::EdgeProne);
        let facts = only("M1", "2026-02-01", job_started("2026-02-01", 100_000));
        let v = review_needed_for(&rules, &h, &derive_state(&h, &facts, at("2026-02-02")));
        assert_starts(&v[0], "[risk_clear_review]");
        assert_contains(&v[0], "risk is not cleared");
    }
}
