//! What the checks count as disqualifying, and the income lines. Every number is configurable:
//! localities differ. Money is written in yuan (`50000` or `"961.50"`), never as a float.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use doudi_model::money::yuan;
use doudi_model::{Area, Category, Money, RegionCode};

use crate::snapshot::{CompanyRole, PropertyUse, VehicleType};

/// The whole configuration of a cross-check run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CheckConfig {
    pub vehicle: VehicleRule,
    pub property: PropertyRule,
    pub company: CompanyRule,
    pub income: IncomeRule,
    /// Days an officer has to complete an eligibility review (核查) from the night of the run.
    pub deadline_days: u32,
    /// How many bad rows are kept with their file, line and reason (all are counted).
    pub max_bad_rows_listed: usize,
}

impl Default for CheckConfig {
    fn default() -> Self {
        CheckConfig {
            vehicle: VehicleRule::default(),
            property: PropertyRule::default(),
            company: CompanyRule::default(),
            income: IncomeRule::default(),
            deadline_days: 15,
            max_bad_rows_listed: 1000,
        }
    }
}

/// Which registered vehicles disqualify a household.
///
/// A vehicle disqualifies when its type is in `always_disqualifying_types`, or when its type is
/// not in `exempt_types` and its assessed value is above `max_value` (a vehicle without a value
/// is judged by type only).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct VehicleRule {
    #[serde(with = "yuan")]
    pub max_value: Money,
    /// Working vehicles that never disqualify (farm machinery, motorcycles, tricycles).
    pub exempt_types: Vec<VehicleType>,
    /// Types that disqualify whatever their value (for localities that rule "any private car").
    pub always_disqualifying_types: Vec<VehicleType>,
}

impl Default for VehicleRule {
    fn default() -> Self {
        VehicleRule {
            max_value: Money::from_yuan(50_000),
            exempt_types: vec![
                VehicleType::Agricultural,
                VehicleType::Motorcycle,
                VehicleType::Tricycle,
            ],
            always_disqualifying_types: Vec::new(),
        }
    }
}

impl VehicleRule {
    pub fn disqualifies(&self, t: VehicleType, value: Option<Money>) -> bool {
        if self.always_disqualifying_types.contains(&t) {
            return true;
        }
        if self.exempt_types.contains(&t) {
            return false;
        }
        value.is_some_and(|v| v > self.max_value)
    }
}

/// Which registered properties disqualify a household.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PropertyRule {
    /// Residential properties (counted once per certificate across the household) allowed.
    pub max_homes: u32,
    /// Whether any shop, office or industrial property disqualifies.
    pub non_residential_disqualifies: bool,
}

impl Default for PropertyRule {
    fn default() -> Self {
        PropertyRule {
            max_homes: 1,
            non_residential_disqualifies: true,
        }
    }
}

impl PropertyRule {
    pub fn counts_as_home(&self, u: PropertyUse) -> bool {
        u == PropertyUse::Residential
    }

    /// Whether a property is disqualifying by itself (whatever the number of homes).
    pub fn disqualifies_alone(&self, u: PropertyUse) -> bool {
        self.non_residential_disqualifies && !matches!(u, PropertyUse::Residential)
    }
}

/// Which company registrations disqualify a household. Only companies in business
/// (`status = active`) count.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CompanyRule {
    /// Being the legal representative (法定代表人) of an active company disqualifies.
    pub legal_representative_disqualifies: bool,
    /// Any role in an active company with registered capital above this disqualifies.
    #[serde(with = "yuan")]
    pub max_registered_capital: Money,
}

impl Default for CompanyRule {
    fn default() -> Self {
        CompanyRule {
            legal_representative_disqualifies: true,
            max_registered_capital: Money::from_yuan(100_000),
        }
    }
}

impl CompanyRule {
    pub fn disqualifies(&self, role: CompanyRole, capital: Money) -> bool {
        (self.legal_representative_disqualifies && role == CompanyRole::LegalRepresentative)
            || capital > self.max_registered_capital
    }
}

/// The 渐退 review: per-capita wage income above the line for `months` months in a row.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct IncomeRule {
    /// Consecutive months above the line (the months just before the night's month) that open a
    /// review.
    pub months: u32,
    /// Months the payment continues after the review opens (低保渐退), before any exit.
    pub grace_months: u32,
    /// Categories whose payment is income-tested.
    pub categories: Vec<Category>,
    pub line: IncomeLine,
}

impl Default for IncomeRule {
    fn default() -> Self {
        IncomeRule {
            months: 3,
            grace_months: 6,
            categories: vec![Category::Dibao, Category::Tekun],
            line: IncomeLine::default(),
        }
    }
}

/// Monthly per-capita income line: urban and rural defaults, and overrides by region-code prefix
/// (the longest matching prefix wins).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct IncomeLine {
    #[serde(with = "yuan")]
    pub urban: Money,
    #[serde(with = "yuan")]
    pub rural: Money,
    pub by_region: BTreeMap<String, RegionLine>,
}

/// The line in one region (a county, township or village code as prefix).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegionLine {
    #[serde(with = "yuan")]
    pub urban: Money,
    #[serde(with = "yuan")]
    pub rural: Money,
}

impl Default for IncomeLine {
    fn default() -> Self {
        IncomeLine {
            urban: Money::from_yuan(961),
            rural: Money::from_yuan(732),
            by_region: BTreeMap::new(),
        }
    }
}

impl IncomeLine {
    pub fn for_household(&self, region: &RegionCode, area: Area) -> Money {
        let best = self
            .by_region
            .iter()
            .filter(|(prefix, _)| region.within_prefix(prefix))
            .max_by_key(|(prefix, _)| prefix.len())
            .map(|(_, l)| (l.urban, l.rural));
        let (urban, rural) = best.unwrap_or((self.urban, self.rural));
        match area {
            Area::Urban => urban,
            Area::Rural => rural,
        }
    }
}

impl CheckConfig {
    /// Refuse configurations no run can use.
    pub fn validate(&self) -> Result<(), String> {
        if !(1..=24).contains(&self.income.months) {
            return Err(format!(
                "income.months must be 1 to 24, got {}",
                self.income.months
            ));
        }
        if self.income.grace_months > 36 {
            return Err(format!(
                "income.grace_months must be at most 36, got {}",
                self.income.grace_months
            ));
        }
        if self.deadline_days == 0 || self.deadline_days > 365 {
            return Err(format!(
                "deadline_days must be 1 to 365, got {}",
                self.deadline_days
            ));
        }
        for prefix in self.income.line.by_region.keys() {
            if RegionCode::parse(prefix).is_err() {
                return Err(format!(
                    "income.line.by_region key {prefix:?} is not a 6, 9 or 12 digit region code"
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_round_trip_and_unknown_fields_are_refused() {
        let cfg = CheckConfig::default();
        let text = serde_json::to_string(&cfg).unwrap();
        let back: CheckConfig = serde_json::from_str(&text).unwrap();
        assert_eq!(back, cfg);
        let err = serde_json::from_str::<CheckConfig>(r#"{"vehicle":{"max_valu":1}}"#)
            .unwrap_err()
            .to_string();
        assert!(err.contains("max_valu"), "{err}");
    }

    #[test]
    fn longest_region_prefix_sets_the_line() {
        let mut line = IncomeLine::default();
        line.by_region.insert(
            "341502".into(),
            RegionLine {
                urban: Money::from_yuan(800),
                rural: Money::from_yuan(700),
            },
        );
        line.by_region.insert(
            "341502001".into(),
            RegionLine {
                urban: Money::from_yuan(900),
                rural: Money::from_yuan(650),
            },
        );
        let v = RegionCode::parse("341502001003").unwrap();
        assert_eq!(line.for_household(&v, Area::Rural), Money::from_yuan(650));
        let w = RegionCode::parse("341502002003").unwrap();
        assert_eq!(line.for_household(&w, Area::Urban), Money::from_yuan(800));
        let x = RegionCode::parse("341503002003").unwrap();
        assert_eq!(line.for_household(&x, Area::Urban), Money::from_yuan(961));
    }

    #[test]
    fn vehicle_rule_exempts_working_vehicles() {
        let r = VehicleRule::default();
        assert!(!r.disqualifies(VehicleType::Agricultural, Some(Money::from_yuan(200_000))));
        assert!(r.disqualifies(VehicleType::PassengerCar, Some(Money::from_yuan(50_001))));
        assert!(!r.disqualifies(VehicleType::PassengerCar, Some(Money::from_yuan(50_000))));
        assert!(!r.disqualifies(VehicleType::PassengerCar, None));
    }
}
