//! `monitoring_line`: the rural monitoring income line (防返贫监测线). A rural household of a
//! monitored category (脱贫不稳定户, 边缘易致贫户, 突发严重困难户 by default) whose per-capita income
//! over the previous 12 months (after the rule set's deductions, as a yearly figure) has fallen
//! below the province's line, from at or above it at registration. The window runs back from the
//! day of the assessment (event time); a province may set its own line
//! (`[[rules.monitoring_line.regions]]`, the longest prefix wins).

use chrono::{Months, NaiveDate};
use doudi_model::{Area, Category, Contribution, Money, RegionCode};
use serde::{Deserialize, Serialize};

use crate::check::{RuleSetError, Section};
use crate::policy::{check_regions, regional, Regional};
use crate::rule::{Ctx, Lapse, Rule};
use crate::state::{HouseholdState, IncomePoint};

pub const ID: &str = "monitoring_line";

/// `[rules.monitoring_line]`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MonitoringLine {
    /// The categories monitored against the line (rural households only).
    pub categories: Vec<Category>,
    /// The line: per-capita income per year.
    #[serde(with = "doudi_model::money::yuan")]
    pub line_yearly: Money,
    /// The window income is measured over, in months back from the day of the assessment.
    pub window_months: i64,
    pub points: i64,
    /// Provinces (or smaller regions) with their own line.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub regions: Vec<MonitoringLineRegion>,
}

/// `[[rules.monitoring_line.regions]]`: the line of a region.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MonitoringLineRegion {
    pub prefix: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    #[serde(with = "doudi_model::money::yuan")]
    pub line_yearly: Money,
}

impl Regional for MonitoringLineRegion {
    fn prefix(&self) -> &str {
        &self.prefix
    }
}

impl MonitoringLine {
    /// The line in `region`.
    pub fn line_for(&self, region: &RegionCode) -> Money {
        regional(&self.regions, region).map_or(self.line_yearly, |r| r.line_yearly)
    }
}

fn months_before(d: NaiveDate, months: i64) -> NaiveDate {
    let m = u32::try_from(months).unwrap_or(12);
    d.checked_sub_months(Months::new(m))
        .unwrap_or(NaiveDate::MIN)
}

impl Rule for MonitoringLine {
    const ID: &'static str = ID;
    const NAME: (&'static str, &'static str) =
        ("收入低于防返贫监测线", "income below the monitoring line");

    fn validate(&self, at: Section) -> Result<(), RuleSetError> {
        if self.line_yearly.fen() <= 0 {
            return at.invalid("line_yearly", "must be more than zero");
        }
        at.range("window_months", self.window_months, 1, 36)?;
        at.points("points", self.points)?;
        check_regions(&at.key("regions"), &self.regions, |at, r| {
            if r.line_yearly.fen() <= 0 {
                return at.invalid("line_yearly", "must be more than zero");
            }
            Ok(())
        })
    }

    fn change(&self, lapse: &Lapse, _: &HouseholdState) -> (String, String) {
        lapse.income_back(Self::NAME)
    }

    fn eval(&self, cx: &Ctx) -> Option<Contribution> {
        let (household, state) = (cx.household, cx.state);
        if household.area != Area::Rural
            || !self.categories.contains(&household.category)
            || state.size_now() == 0
        {
            return None;
        }
        let line = self.line_for(state.region_code);
        let d = cx.deductions;
        let monthly = |p: &IncomePoint| d.per_capita_for_risk(p.parts(), cx.pupils);
        let registered = d
            .per_capita_for_risk(state.parts_at_registration(), cx.pupils)
            .times(12);
        if registered < line {
            return None;
        }
        let as_of = state.as_of_date();
        let start = months_before(as_of, self.window_months);
        // Time-weighted over the window; the points in effect during it.
        let points: Vec<&IncomePoint> = state
            .income_history
            .iter()
            .filter(|p| p.on <= as_of)
            .collect();
        let mut level = registered.per(12);
        let (mut from, mut total) = (start, 0i128);
        let mut in_effect = Vec::new();
        for (i, p) in points.iter().enumerate() {
            if p.on > from {
                total += i128::from(level.fen()) * i128::from((p.on - from).num_days());
                from = p.on;
            }
            level = monthly(p);
            let next_after_start = points.get(i + 1).is_none_or(|n| n.on > start);
            if next_after_start && cx.counts(p.on) && level.times(12) < line {
                in_effect.push(*p);
            }
        }
        total += i128::from(level.fen()) * i128::from((as_of - from).num_days());
        let days = i128::from((as_of - start).num_days().max(1));
        let yearly = Money::from_fen(
            (total * 12 / days).clamp(i128::from(i64::MIN), i128::from(i64::MAX)) as i64,
        );
        if yearly >= line || in_effect.is_empty() {
            return None;
        }
        let months = self.window_months;
        Some(Contribution::new(
            ID,
            self.points,
            format!(
                "近{months}个月家庭人均收入（扣除刚性支出和就业成本后）折合每年{yearly}元，低于防返贫监测线{line}元（登记时每年{registered}元）"
            ),
            format!(
                "Per-capita income over the last {months} months (after deductions) comes to {yearly} yuan a year, below the monitoring line (防返贫监测线) of {line} yuan ({registered} yuan a year at registration)"
            ),
            in_effect.iter().map(|p| p.event_id.to_string()).collect(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ruleset::RuleSet;
    use crate::state::derive_state;
    use crate::testkit::*;
    use doudi_model::{Fact, Household};

    fn evaluate(r: &RuleSet, h: &Household, facts: &[Fact], day: &str) -> Option<Contribution> {
        eval_rule(r, ID, h, facts, day)
    }

    /// Rural, the head earning 3,000 a month, the spouse farming 1,000, a pupil: 1,100 a person a
    /// month after deductions (13,200 a year), 300 after the head loses the job on 2026-02-01.
    fn earning(category: Category) -> (Household, Vec<Fact>) {
        let mut h = family(category);
        h.members[0].monthly_income = Money::from_yuan(3000);
        h.members[1].monthly_income = Money::from_yuan(1000);
        let facts = only("M1", "2026-02-01", job_lost("2026-01-31", Some(300_000))).to_vec();
        (h, facts)
    }

    #[test]
    fn income_over_the_previous_twelve_months_below_the_line_is_a_finding() {
        let rules = RuleSet::builtin();
        let (h, facts) = earning(Category::EdgeProne);
        // a month after the loss the year's income is still above 8,800
        assert_eq!(evaluate(&rules, &h, &facts, "2026-03-01"), None);
        // eight months after: about 4 × 1,100 + 8 × 300 = 6,800
        let c = evaluate(&rules, &h, &facts, "2026-10-01").expect("below the line");
        assert_eq!(c.points, 30);
        assert_eq!(c.event_ids, vec!["E1"]);
        assert_contains(&c.reason_zh, "低于防返贫监测线8800.00元");
        assert_contains(&c.reason_zh, "登记时每年13200.00元");
        assert!(c
            .reason_en
            .starts_with("Per-capita income over the last 12 months"));
    }

    #[test]
    fn only_rural_households_of_the_monitored_categories_are_measured() {
        let rules = RuleSet::builtin();
        for category in [Category::Unstable, Category::Sudden] {
            let (h, facts) = earning(category);
            assert!(
                evaluate(&rules, &h, &facts, "2026-10-01").is_some(),
                "{category:?}"
            );
        }
        for category in [Category::Dibao, Category::Tekun, Category::DibaoEdge] {
            let (h, facts) = earning(category);
            assert_eq!(
                evaluate(&rules, &h, &facts, "2026-10-01"),
                None,
                "{category:?}"
            );
        }
        let (mut h, facts) = earning(Category::EdgeProne);
        h.area = Area::Urban;
        assert_eq!(evaluate(&rules, &h, &facts, "2026-10-01"), None);
    }

    #[test]
    fn the_window_and_the_line_are_the_rule_sets_and_the_regions() {
        let (h, facts) = earning(Category::EdgeProne);
        // six months back from 2026-05-01: 3 × 1,100 + 3 × 300 = 8,400 a year
        let mut rules = RuleSet::builtin();
        assert_eq!(evaluate(&rules, &h, &facts, "2026-05-01"), None);
        rules.rules.monitoring_line.window_months = 6;
        assert!(evaluate(&rules, &h, &facts, "2026-05-01").is_some());
        // a province with a line of 6,000 (the households live in 441521…)
        let mut rules = RuleSet::builtin();
        rules.rules.monitoring_line.regions = vec![MonitoringLineRegion {
            prefix: "44".into(),
            name: String::new(),
            line_yearly: Money::from_yuan(6000),
        }];
        assert_eq!(rules.validate(), Ok(()));
        assert_eq!(evaluate(&rules, &h, &facts, "2026-10-01"), None);
        assert!(evaluate(&rules, &h, &facts, "2027-01-15").is_some());
        rules.rules.monitoring_line.window_months = 0;
        let e = rules.validate().unwrap_err();
        assert_eq!(e.key(), "rules.monitoring_line.window_months");
    }

    #[test]
    fn below_the_line_it_is_an_income_finding_of_yellow() {
        let rules = RuleSet::builtin();
        let (h, facts) = earning(Category::EdgeProne);
        let s = derive_state(&h, &facts, at("2026-10-01"));
        let a = crate::assess::assess(&rules, &h, &s);
        let c = a
            .contributions
            .iter()
            .find(|c| c.rule_id == ID)
            .expect("monitoring line");
        assert_eq!(c.urgency, Some(doudi_model::Urgency::Income));
    }
}
