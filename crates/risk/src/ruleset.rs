//! The versioned rule set: the whole rules file (`rules/default.toml`) put together from its
//! parts — the shared tables (`policy`) and each rule's own table (`rules`) — parsed and validated
//! so that a bad file is refused with the key that is wrong, never half-applied.

use doudi_model::{Area, Household, RegionCode};
use serde::{Deserialize, Serialize};

use crate::check::invalid;
pub use crate::check::RuleSetError;
use crate::clearance::{self, Clearance, ClearingRules, Signals};
pub use crate::policy::{
    AreaStandards, CategoryPermille, Deductions, General, LevelParams, Levels, RegionStandards,
    ReliefParams, ReviewParams, Standard, Standards, UrgencyTable, Vulnerability,
};
use crate::rule::Ctx;
use crate::rules::{causes, RuleParams, RULE_IDS};
use crate::state::HouseholdState;

/// A complete, validated rule set. Every number the assessment uses is here.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleSet {
    /// Version id recorded on every assessment, e.g. `2026.11-1`.
    pub version: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
    pub general: General,
    pub standards: Standards,
    pub deductions: Deductions,
    pub rules: RuleParams,
    pub vulnerability: Vulnerability,
    pub levels: Levels,
    pub urgency: UrgencyTable,
    pub relief: ReliefParams,
    pub review: ReviewParams,
}

const BUILTIN: &str = include_str!("../../../rules/default.toml");

impl RuleSet {
    /// Parse and validate a rules file.
    pub fn from_toml_str(text: &str) -> Result<RuleSet, RuleSetError> {
        let de = toml::Deserializer::new(text);
        let rules: RuleSet = serde_path_to_error::deserialize(de).map_err(|e| {
            let path = e.path().to_string();
            let inner = e.into_inner();
            let place = inner.span().map(|s| {
                let before = &text[..s.start.min(text.len())];
                let line = before.matches('\n').count() + 1;
                let column = before.chars().rev().take_while(|c| *c != '\n').count() + 1;
                format!(" (line {line}, column {column})")
            });
            let mut message = inner.message().trim().to_string();
            if message.is_empty() {
                message = "not valid TOML here (a value, quote or bracket is missing or mistyped)"
                    .to_string();
            }
            message.push_str(&place.unwrap_or_default());
            RuleSetError::Parse {
                key: if path.is_empty() || path == "." {
                    "(top level)".to_string()
                } else {
                    path
                },
                message,
            }
        })?;
        rules.validate()?;
        Ok(rules)
    }

    /// The rule set shipped with the program (`rules/default.toml`, compiled in).
    ///
    /// The embedded file is not outside input: `builtin_rules_parse` proves it parses, so a
    /// failure here is a build defect and panics with the reason.
    pub fn builtin() -> RuleSet {
        RuleSet::builtin_parsed()
    }

    /// The text of the built-in rule set (`rules/default.toml`), as an activation stores it.
    pub fn builtin_toml() -> &'static str {
        BUILTIN
    }

    fn builtin_parsed() -> RuleSet {
        match RuleSet::from_toml_str(BUILTIN) {
            Ok(rules) => rules,
            Err(e) => panic!("the built-in rules/default.toml is invalid: {e}"),
        }
    }

    /// The standard for a household in `region` and `area`: the region entry with the longest
    /// matching prefix, else the default entry.
    pub fn standard_for(&self, region: &RegionCode, area: Area) -> Standard {
        self.standards.for_region(region, area)
    }

    /// What every rule sees when assessing `household` at `state`: the household's standard and
    /// pupils, and where it stands on clearing its risk (from every rule's signals).
    pub fn context<'s, 'a>(
        &'s self,
        household: &'s Household,
        state: &'s HouseholdState<'a>,
    ) -> Ctx<'s, 'a> {
        let standard = self.standard_for(state.region_code, household.area);
        let d = &self.deductions;
        let pupils = state.pupils(d.school_age_min, d.school_age_below);
        let mut signals = Signals::new(state.as_of_date());
        self.rules
            .signals(household, state, &standard, &mut signals);
        let clearing = ClearingRules {
            general: &self.general,
            deductions: &self.deductions,
            review: &self.review,
        };
        let clearance = clearance::compute(clearing, state, &standard, pupils, signals);
        Ctx {
            general: &self.general,
            deductions: &self.deductions,
            review: &self.review,
            household,
            state,
            standard,
            pupils,
            clearance,
        }
    }

    /// Where the household stands on clearing its risk (风险消除) under these rules: cleared, open
    /// (with the day it is stable since), or watched because nobody can work.
    pub fn clearance(&self, household: &Household, state: &HouseholdState) -> Clearance {
        self.context(household, state).clearance
    }

    /// Check ranges and orderings serde cannot express: each table checks its own entries,
    /// then the entries that must agree across tables.
    pub fn validate(&self) -> Result<(), RuleSetError> {
        let v = self.version.trim();
        if v.is_empty() {
            return invalid("version", "must not be empty (e.g. \"2026.11-1\")");
        }
        if v.len() > 64 || v.chars().any(char::is_control) || v != self.version {
            return invalid(
                "version",
                "must be at most 64 characters, without control characters or surrounding spaces",
            );
        }
        self.general.validate()?;
        self.standards.validate()?;
        self.rules.validate()?;
        self.deductions.validate()?;
        self.vulnerability.validate()?;
        self.relief.validate(RULE_IDS)?;
        self.levels.validate(self.relief.max_months)?;
        self.review.validate(self.levels.yellow.min_score)?;
        self.urgency.validate(&causes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::IncomeParts;
    use doudi_model::Money;

    #[test]
    fn builtin_rules_parse() {
        let r = RuleSet::from_toml_str(BUILTIN).expect("rules/default.toml parses");
        assert_eq!(r, RuleSet::builtin());
        assert!(!r.version.is_empty());
        assert_eq!(r.levels.red.act_within_hours, 24);
        assert_eq!(r.levels.orange.act_within_hours, 72);
        assert_eq!(r.levels.yellow.act_within_hours, 360);
        assert_eq!(r.relief.township_limit, Money::from_yuan(3000));
        let d = &r.standards.default;
        assert_eq!(d.urban.dibao_monthly, Money::from_yuan(961));
        assert_eq!(d.rural.dibao_monthly, Money::from_yuan(732));
        assert_eq!(d.urban.tekun_monthly, Money::from_yuan(1538));
        assert_eq!(d.rural.tekun_monthly, Money::from_yuan(1172));
    }

    #[test]
    fn lu_an_counties_have_their_own_urban_and_rural_standards() {
        let r = RuleSet::builtin();
        let v = |c: &str| RegionCode::parse(c).unwrap();
        let dibao = |c: &str, a: Area| r.standard_for(&v(c), a).dibao_monthly;
        assert_eq!(dibao("341502001001", Area::Urban), Money::from_yuan(800));
        assert_eq!(dibao("341502001001", Area::Rural), Money::from_yuan(730));
        assert_eq!(dibao("341503002003", Area::Urban), Money::from_yuan(790));
        assert_eq!(dibao("341503002003", Area::Rural), Money::from_yuan(720));
        assert_eq!(dibao("341522010001", Area::Urban), Money::from_yuan(760));
        assert_eq!(dibao("341522010001", Area::Rural), Money::from_yuan(700));
        // elsewhere: the default (Haifeng 2023)
        assert_eq!(dibao("441521001001", Area::Rural), Money::from_yuan(732));
        let t = r.standard_for(&v("341522010001"), Area::Rural);
        assert_eq!(t.tekun_monthly, Money::from_yuan(910));
        assert_eq!(t.edge_line_monthly(), Money::from_yuan(1050));
        assert_eq!(t.per_capita_disposable_yearly, Money::from_yuan(21144));
    }

    #[test]
    fn deductions_take_cost_of_working_medical_above_a_tenth_of_income_and_schooling() {
        let d = RuleSet::builtin().deductions;
        let parts = IncomeParts {
            household_size: 3,
            newborns: 1,
            monthly_income: Money::from_yuan(3000),
            monthly_wages: Money::from_yuan(2500),
            out_of_pocket_12m: Money::from_yuan(6000),
        };
        // cost 500; medical (6,000 − 3,600) / 12 = 200; schooling 100
        assert_eq!(
            d.amounts(parts, 1),
            (
                Money::from_yuan(500),
                Money::from_yuan(200),
                Money::from_yuan(100)
            )
        );
        assert_eq!(
            d.per_capita(parts, 1),
            Money::from_yuan(733) + Money::from_fen(33)
        );
        // for risk, the newborn is not counted: 2,200 / 2
        assert_eq!(d.per_capita_for_risk(parts, 1), Money::from_yuan(1100));
    }

    #[test]
    fn builtin_rules_roundtrip_through_toml() {
        let r = RuleSet::builtin();
        let text = toml::to_string(&r).expect("serialises");
        assert_eq!(RuleSet::from_toml_str(&text), Ok(r));
    }

    fn replace(from: &str, to: &str) -> String {
        assert!(
            BUILTIN.contains(from),
            "test pattern {from:?} not in default.toml"
        );
        BUILTIN.replacen(from, to, 1)
    }

    #[test]
    fn bad_rules_file_says_which_key() {
        // thresholds out of order
        let text = replace("min_score = 60", "min_score = 20");
        let e = RuleSet::from_toml_str(&text).unwrap_err();
        assert_eq!(e.key(), "levels.orange.min_score", "{e}");
        assert!(e.to_string().contains("levels.orange.min_score"), "{e}");

        // a missing entry
        let text = replace("below_dibao = 25", "");
        let e = RuleSet::from_toml_str(&text).unwrap_err();
        assert!(e.to_string().contains("rules.income_below_line"), "{e}");
        assert!(e.to_string().contains("below_dibao"), "{e}");

        // an unknown entry (a typo)
        let text = replace("grade_d = 40", "grade_d = 40\ngrade_e = 50");
        let e = RuleSet::from_toml_str(&text).unwrap_err();
        assert!(e.to_string().contains("grade_e"), "{e}");
        assert!(e.key().starts_with("rules.dangerous_house"), "{e}");

        // money as a float is refused
        let text = replace("township_limit = \"3000.00\"", "township_limit = 3000.5");
        let e = RuleSet::from_toml_str(&text).unwrap_err();
        assert_eq!(e.key(), "relief.township_limit", "{e}");

        // empty version
        let text = replace("version = \"", "version = \"\"\nold_version = \"");
        assert!(RuleSet::from_toml_str(&text).is_err());
        let e = RuleSet::from_toml_str("version = \"\"").unwrap_err();
        assert!(matches!(e, RuleSetError::Parse { .. }), "{e}");

        // weights not sane
        let text = replace("points = 45", "points = -5");
        let e = RuleSet::from_toml_str(&text).unwrap_err();
        assert_eq!(e.key(), "rules.serious_illness.points", "{e}");
        assert_eq!(e.rule(), Some("serious_illness"));
        assert_eq!(e.message(), "-5 is out of range 0..=1000");

        // unknown rule id in relief
        let text = replace("\"disaster_damage\"]", "\"disastre\"]");
        let e = RuleSet::from_toml_str(&text).unwrap_err();
        assert_eq!(e.key(), "relief.emergency_rules[1]", "{e}");

        // not TOML at all
        let e = RuleSet::from_toml_str("version = ").unwrap_err();
        assert!(matches!(e, RuleSetError::Parse { .. }), "{e}");
    }

    #[test]
    fn watch_below_yellow_and_bad_deductions_are_refused_with_the_key() {
        let mut r = RuleSet::builtin();
        r.review.watch_points = 20;
        let e = r.validate().unwrap_err();
        assert_eq!(e.key(), "review.watch_points");
        assert!(e.message().contains("levels.yellow.min_score (30)"), "{e}");
        let mut r = RuleSet::builtin();
        r.deductions.employment_cost_permille = 1200;
        assert_eq!(
            r.validate().unwrap_err().key(),
            "deductions.employment_cost_permille"
        );
        let text = replace("school_age_below = 18", "school_age_below = 3");
        let e = RuleSet::from_toml_str(&text).unwrap_err();
        assert_eq!(e.key(), "deductions.school_age_below", "{e}");
        assert_eq!(e.rule(), None);
    }

    #[test]
    fn empty_version_is_refused() {
        let mut r = RuleSet::builtin();
        r.version = "  ".into();
        let e = r.validate().unwrap_err();
        assert_eq!(e.key(), "version");
    }

    #[test]
    fn standard_for_takes_longest_prefix_then_default() {
        let mut r = RuleSet::builtin();
        let mut county = r.standards.default.clone();
        county.rural.dibao_monthly = Money::from_yuan(700);
        let mut town = county.clone();
        town.rural.dibao_monthly = Money::from_yuan(650);
        r.standards.regions = vec![
            RegionStandards {
                prefix: "999901".into(),
                name: String::new(),
                urban: county.urban,
                rural: county.rural,
            },
            RegionStandards {
                prefix: "999901002".into(),
                name: String::new(),
                urban: town.urban,
                rural: town.rural,
            },
        ];
        assert_eq!(r.validate(), Ok(()));
        let v = |c: &str| RegionCode::parse(c).unwrap();
        let dibao = [
            ("999901001001", Area::Rural, 700),
            ("999901002001", Area::Rural, 650),
            ("110105001001", Area::Urban, 961),
        ];
        for (code, area, yuan) in dibao {
            let standard = r.standard_for(&v(code), area);
            assert_eq!(standard.dibao_monthly, Money::from_yuan(yuan), "{code}");
        }
        assert_eq!(
            r.standard_for(&v("110105001001"), Area::Rural)
                .edge_line_monthly(),
            Money::from_yuan(1098)
        );
    }
}
#[cfg(test)]
mod syntax_tests {
    use super::*;
    #[test]
    fn syntax_error_names_line_and_problem() {
        let e = RuleSet::from_toml_str("version = \"1\"\nlevels = ").unwrap_err();
        let m = e.to_string();
        assert!(m.contains("line 2, column 10"), "{m}");
        assert!(m.contains("not valid TOML"), "{m}");
    }
}
