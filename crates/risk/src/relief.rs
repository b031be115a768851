//! The temporary-relief (临时救助) suggestion: the local 低保 standard × months by level, more for
//! an emergency, capped; within the township's approval limit or not.

use doudi_model::{Category, Money};

pub use doudi_model::assessment::ReliefSuggestion;

use doudi_model::{Contribution, Urgency};

use crate::level::Level;
use crate::rule::Ctx;
use crate::ruleset::RuleSet;

pub const KIND_EMERGENCY: &str = "emergency";
pub const KIND_EXPENSE: &str = "expense";
pub const APPROVER_TOWNSHIP: &str = "township";
pub const APPROVER_COUNTY: &str = "county";

/// The suggestion for a level and the contributions that led to it; `None` at level none or
/// when the level suggests no months.
pub fn suggest_relief(
    rules: &RuleSet,
    cx: &Ctx,
    level: Level,
    contributions: &[Contribution],
) -> Option<ReliefSuggestion> {
    let lp = rules.levels.params(level)?;
    let r = &rules.relief;
    let fired = |ids: &[String]| contributions.iter().any(|c| ids.contains(&c.rule_id));
    // 急难型 when a death or a disaster caused it, illness at red, or any 急难 finding.
    let emergency = fired(&r.emergency_rules)
        || (level == Level::Red && fired(&r.emergency_if_red_rules))
        || contributions
            .iter()
            .any(|c| c.urgency == Some(Urgency::Emergency));
    let extra = if emergency {
        r.emergency_extra_months
    } else {
        0
    };
    let months = (lp.relief_months + extra).clamp(0, r.max_months);
    if months == 0 {
        return None;
    }
    let standard = cx.standard.dibao_monthly;
    let amount = standard.times(months);
    let within = amount <= r.township_limit;
    let limit = r.township_limit;
    let (kind, kind_zh, kind_en) = if emergency {
        (KIND_EMERGENCY, "急难型", "emergency")
    } else {
        (KIND_EXPENSE, "支出型", "expense-driven")
    };
    let (extra_zh, extra_en) = if extra > 0 && months > lp.relief_months {
        (
            format!("，急难型加{extra}个月"),
            format!(
                ", {extra} more month{} for an emergency",
                if extra == 1 { "" } else { "s" }
            ),
        )
    } else {
        (String::new(), String::new())
    };
    let (who_zh, who_en) = if within {
        (
            format!("在镇街审批限额{limit}元以内，可由镇街先行救助"),
            format!("within the township's approval limit of {limit} yuan: the township may grant it first"),
        )
    } else {
        (
            format!("超过镇街审批限额{limit}元，报县级审批"),
            format!("above the township's approval limit of {limit} yuan: the county approves"),
        )
    };
    Some(ReliefSuggestion {
        amount,
        months,
        kind: kind.to_string(),
        within_township_limit: within,
        approver: if within {
            APPROVER_TOWNSHIP
        } else {
            APPROVER_COUNTY
        }
        .to_string(),
        reason_zh: format!(
            "建议{kind_zh}临时救助{amount}元（当地低保标准{standard}元/月×{months}个月，{}预警{extra_zh}）；{who_zh}",
            level.name_zh()
        ),
        reason_en: format!(
            "Suggest {kind_en} temporary relief of {amount} yuan (local 低保 standard {standard} yuan a month × {months} month{} for {} {} warning{extra_en}); {who_en}",
            if months == 1 { "" } else { "s" },
            if level == Level::Orange { "an" } else { "a" },
            level.code()
        ),
        enrolment: enrolment(cx, contributions),
    })
}

/// Enrolment an officer should consider: 单人户 for a severely ill or disabled member of a
/// household not on 低保/特困, 低保 when income after deductions is below the standard now, 特困
/// when nobody can work and there is no income.
fn enrolment(cx: &Ctx, contributions: &[Contribution]) -> Vec<String> {
    let (household, state) = (cx.household, cx.state);
    let mut out = Vec::new();
    let supported = matches!(household.category, Category::Dibao | Category::Tekun);
    if supported {
        return out;
    }
    let fired = |id: &str| contributions.iter().any(|c| c.rule_id == id);
    let dibao = cx.standard.dibao_monthly;
    let pc = cx.deductions.per_capita(state.parts_now(), cx.pupils);
    let nobody_able = !state.alive_members().any(|m| cx.able(m));
    if nobody_able && state.monthly_income_now == Money::ZERO {
        out.push(format!(
            "[tekun] 家中无有劳动能力的成员且无收入：考虑纳入特困供养（标准{}元/月） / Nobody can work and there is no income: consider extreme-poverty support (特困, {} yuan a month)",
            cx.standard.tekun_monthly, cx.standard.tekun_monthly
        ));
    } else if pc < dibao {
        out.push(format!(
            "[dibao] 扣除刚性支出和就业成本后人均月收入{pc}元，低于低保标准{dibao}元：考虑纳入低保 / Per-capita income after deductions is {pc} yuan, below the 低保 standard of {dibao} yuan: consider 低保 enrolment"
        ));
    } else if fired(crate::rules::serious_illness::ID) || fired(crate::rules::severe_disability::ID)
    {
        out.push(
            "[single_person] 家庭成员患重病或重度残疾：可考虑将其单独纳入低保（单人户） / A member is seriously ill or severely disabled: consider enrolling them alone in 低保 (单人户)"
                .to_string(),
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ruleset::RuleSet;
    use crate::state::derive_state;
    use crate::testkit::*;
    use doudi_model::{Area, Household};

    /// The first enrolment suggested starts with `start`; all of them in the failure.
    #[track_caller]
    fn assert_enrolment(r: &ReliefSuggestion, start: &str) {
        assert!(r.enrolment[0].starts_with(start), "{:?}", r.enrolment);
    }

    /// The relief suggested for `h` with no facts on 2026-03-01, at `level`, for `findings`.
    fn suggest(
        rules: &RuleSet,
        h: &Household,
        level: Level,
        findings: &[Contribution],
    ) -> ReliefSuggestion {
        let s = derive_state(h, &[], at("2026-03-01"));
        suggest_relief(rules, &rules.context(h, &s), level, findings).unwrap()
    }

    fn contribution(rule_id: &str) -> Contribution {
        Contribution::new(rule_id, 50, String::new(), String::new(), vec![])
    }

    #[test]
    fn relief_months_by_level_and_cause_with_approver() {
        let rules = RuleSet::builtin();
        let h = family_dibao_rural();
        let s = derive_state(&h, &[], at("2026-03-01"));
        let job = [contribution("job_loss")];
        let illness = [contribution("serious_illness")];
        let death = [contribution("death")];
        assert_eq!(
            suggest_relief(&rules, &rules.context(&h, &s), Level::None, &job),
            None
        );
        let y = suggest(&rules, &h, Level::Yellow, &job);
        assert_eq!((y.months, y.amount), (1, Money::from_yuan(732)));
        assert_eq!(y.kind, "expense");
        let o = suggest(&rules, &h, Level::Orange, &illness);
        assert_eq!((o.months, o.kind.as_str()), (2, "expense"));
        let r = suggest(&rules, &h, Level::Red, &illness);
        assert_eq!((r.months, r.kind.as_str()), (4, "emergency"));
        let d = suggest(&rules, &h, Level::Yellow, &death);
        assert_eq!((d.months, d.kind.as_str()), (2, "emergency"));
        assert_eq!(d.approver, "township");
        assert_contains(&d.reason_zh, "急难型");
    }

    #[test]
    fn enrolment_is_suggested_single_person_dibao_or_tekun_by_situation() {
        let rules = RuleSet::builtin();
        let illness = [contribution("serious_illness")];
        // an edge household still above the line with a seriously ill member: 单人户
        let mut h = family(doudi_model::Category::DibaoEdge);
        h.members[0].monthly_income = Money::from_yuan(2800);
        let r = suggest(&rules, &h, Level::Orange, &illness);
        assert_eq!(r.enrolment.len(), 1);
        assert_enrolment(&r, "[single_person]");
        // below the 低保 line after deductions: 低保 ((2,000 × 0.8 + 400) / 3 = 666.66 < 732)
        let h = family(doudi_model::Category::DibaoEdge);
        let r = suggest(&rules, &h, Level::Orange, &illness);
        assert_enrolment(&r, "[dibao] 扣除刚性支出和就业成本后人均月收入666.66元");
        // nobody can work, no income: 特困
        let h = single_elderly(doudi_model::Category::EdgeProne);
        let r = suggest(&rules, &h, Level::Yellow, &illness);
        assert_enrolment(&r, "[tekun]");
        // already on 低保: nothing to suggest
        let h = family_dibao_rural();
        let r = suggest(&rules, &h, Level::Yellow, &illness);
        assert!(r.enrolment.is_empty());
    }

    #[test]
    fn above_township_limit_goes_to_county() {
        let rules = RuleSet::builtin();
        let mut h = family_dibao_rural();
        h.area = Area::Urban;
        // urban 961 × 4 = 3,844 > 3,000
        let r = suggest(&rules, &h, Level::Red, &[contribution("death")]);
        assert_eq!(r.amount, Money::from_yuan(3844));
        assert!(!r.within_township_limit);
        assert_eq!(r.approver, "county");
        assert_contains(&r.reason_en, "the county approves");
        // never above the cap
        let mut big = rules.clone();
        big.levels.red.relief_months = 6;
        let r = suggest(&big, &h, Level::Red, &[contribution("death")]);
        assert_eq!(r.months, 6);
    }
}
