//! The temporary-relief (临时救助) suggestion: the local 低保 standard × months by level, more for
//! an emergency, capped; within the township's approval limit or not.

use doudi_model::{Household, Money};
use serde::{Deserialize, Serialize};

use crate::assess::Contribution;
use crate::level::Level;
use crate::ruleset::RuleSet;
use crate::state::HouseholdState;

/// What an officer may grant, and who approves it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReliefSuggestion {
    pub amount: Money,
    pub months: i64,
    /// `"emergency"` (急难型) or `"expense"` (支出型).
    pub kind: String,
    /// The amount is within the township's approval limit (先行救助 possible).
    pub within_township_limit: bool,
    /// `"township"` or `"county"`.
    pub approver: String,
    pub reason_zh: String,
    pub reason_en: String,
}

pub const KIND_EMERGENCY: &str = "emergency";
pub const KIND_EXPENSE: &str = "expense";
pub const APPROVER_TOWNSHIP: &str = "township";
pub const APPROVER_COUNTY: &str = "county";

/// The suggestion for a level and the contributions that led to it; `None` at level none or
/// when the level suggests no months.
pub fn suggest_relief(
    rules: &RuleSet,
    household: &Household,
    state: &HouseholdState,
    level: Level,
    contributions: &[Contribution],
) -> Option<ReliefSuggestion> {
    let lp = rules.levels.params(level)?;
    let r = &rules.relief;
    let fired = |ids: &[String]| contributions.iter().any(|c| ids.contains(&c.rule_id));
    let emergency =
        fired(&r.emergency_rules) || (level == Level::Red && fired(&r.emergency_if_red_rules));
    let extra = if emergency {
        r.emergency_extra_months
    } else {
        0
    };
    let months = (lp.relief_months + extra).clamp(0, r.max_months);
    if months == 0 {
        return None;
    }
    let standard = rules
        .standard_for(&state.region_code, household.area)
        .dibao_monthly;
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
            format!(", {extra} more for an emergency"),
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
            "Suggest {kind_en} temporary relief of {amount} yuan (local 低保 standard {standard} yuan a month × {months} months for a {} warning{extra_en}); {who_en}",
            level.code()
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::derive_state;
    use crate::testkit::*;
    use doudi_model::Area;

    fn contribution(rule_id: &str) -> Contribution {
        Contribution {
            rule_id: rule_id.into(),
            points: 50,
            reason_zh: String::new(),
            reason_en: String::new(),
            event_ids: vec![],
        }
    }

    #[test]
    fn relief_months_by_level_and_cause_with_approver() {
        let rules = RuleSet::builtin();
        let h = family_dibao_rural();
        let s = derive_state(&h, &[], at("2026-03-01"));
        let job = [contribution("job_loss")];
        let illness = [contribution("serious_illness")];
        let death = [contribution("death")];
        assert_eq!(suggest_relief(&rules, &h, &s, Level::None, &job), None);
        let y = suggest_relief(&rules, &h, &s, Level::Yellow, &job).unwrap();
        assert_eq!((y.months, y.amount), (1, Money::from_yuan(732)));
        assert_eq!(y.kind, "expense");
        let o = suggest_relief(&rules, &h, &s, Level::Orange, &illness).unwrap();
        assert_eq!((o.months, o.kind.as_str()), (2, "expense"));
        let r = suggest_relief(&rules, &h, &s, Level::Red, &illness).unwrap();
        assert_eq!((r.months, r.kind.as_str()), (4, "emergency"));
        let d = suggest_relief(&rules, &h, &s, Level::Yellow, &death).unwrap();
        assert_eq!((d.months, d.kind.as_str()), (2, "emergency"));
        assert_eq!(d.approver, "township");
        assert!(d.reason_zh.contains("急难型"), "{}", d.reason_zh);
    }

    #[test]
    fn above_township_limit_goes_to_county() {
        let rules = RuleSet::builtin();
        let mut h = family_dibao_rural();
        h.area = Area::Urban;
        let s = derive_state(&h, &[], at("2026-03-01"));
        // urban 961 × 4 = 3,844 > 3,000
        let r = suggest_relief(&rules, &h, &s, Level::Red, &[contribution("death")]).unwrap();
        assert_eq!(r.amount, Money::from_yuan(3844));
        assert!(!r.within_township_limit);
        assert_eq!(r.approver, "county");
        assert!(
            r.reason_en.contains("the county approves"),
            "{}",
            r.reason_en
        );
        // never above the cap
        let mut big = rules.clone();
        big.levels.red.relief_months = 6;
        let r = suggest_relief(&big, &h, &s, Level::Red, &[contribution("death")]).unwrap();
        assert_eq!(r.months, 6);
    }
}
