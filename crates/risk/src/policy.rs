//! The parts of the rule set that every rule and the assessment share: local standards, windows
//! and ages, deductions, the vulnerability multiplier, levels, relief and review parameters, each
//! with the validation of its own table. The rules' own tables are in their files (`rules/`);
//! the whole file is put together and checked in `ruleset`.

use doudi_model::{Area, Category, Money, RegionCode, Urgency};
use serde::{Deserialize, Serialize};

use crate::check::{invalid, RuleSetError, Section};
use crate::level::Level;
use crate::state::{IncomeParts, MemberState};

/// The local standards for one area (urban or rural) of one region, per person.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Standard {
    /// 低保 standard, per person per month.
    #[serde(with = "doudi_model::money::yuan")]
    pub dibao_monthly: Money,
    /// 特困 basic support standard, per person per month.
    #[serde(with = "doudi_model::money::yuan")]
    pub tekun_monthly: Money,
    /// 低保边缘 line as a multiple of the 低保 standard, in permille (1500 = 1.5×).
    pub edge_factor_permille: i64,
    /// Last year's per-capita disposable income (yearly), for the medical-burden rule.
    #[serde(with = "doudi_model::money::yuan")]
    pub per_capita_disposable_yearly: Money,
}

impl Standard {
    /// The 低保边缘 line per person per month (低保 standard × edge factor).
    pub fn edge_line_monthly(&self) -> Money {
        self.dibao_monthly.scale(self.edge_factor_permille, 1000)
    }
}

/// Urban and rural standards of one region.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AreaStandards {
    pub urban: Standard,
    pub rural: Standard,
}

impl AreaStandards {
    pub fn get(&self, area: Area) -> Standard {
        match area {
            Area::Urban => self.urban,
            Area::Rural => self.rural,
        }
    }
}

/// Standards of a region given by a code prefix (a county `341502`, a township, a city `3415`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegionStandards {
    /// Leading digits of the region code this entry covers.
    pub prefix: String,
    /// A human label (the county's name); informative only.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    pub urban: Standard,
    pub rural: Standard,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Standards {
    /// Used where no region entry matches.
    pub default: AreaStandards,
    #[serde(default)]
    pub regions: Vec<RegionStandards>,
}

/// Windows and ages shared by several rules.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct General {
    /// Youngest age counted as able to work.
    pub working_age_min: i64,
    /// Oldest age counted as able to work.
    pub working_age_max: i64,
    /// From this age a member counts as elderly.
    pub elderly_age: i64,
    /// Below this age a member counts as a child.
    pub child_age_below: i64,
}

/// What is deducted from income before it is compared with a line (刚性支出核减, 就业成本核减).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Deductions {
    /// 就业成本核减: this share (‰) of earned income (wages) is disregarded as the cost of working.
    pub employment_cost_permille: i64,
    /// 刚性支出核减: deduct the out-of-pocket medical spend of the last 12 months (per month) ...
    pub medical_out_of_pocket: bool,
    /// ... above this share (‰) of the household's yearly income (ordinary spending on health is
    /// part of living costs, not a rigid expense).
    pub medical_floor_permille: i64,
    /// 刚性支出核减: schooling costs deducted per pupil per month.
    #[serde(with = "doudi_model::money::yuan")]
    pub schooling_monthly_per_pupil: Money,
    /// Members aged `school_age_min` up to (not including) `school_age_below` count as pupils.
    pub school_age_min: i64,
    pub school_age_below: i64,
}

impl Deductions {
    /// Monthly per-capita income after deductions, never below zero.
    pub fn per_capita(&self, parts: IncomeParts, pupils: i64) -> Money {
        let (cost, medical, schooling) = self.amounts(parts, pupils);
        let net = parts
            .monthly_income
            .saturating_sub(cost)
            .saturating_sub(medical)
            .saturating_sub(schooling)
            .max(Money::ZERO);
        net.per(i64::from(parts.household_size))
    }

    /// The same, counting only the members the household had before any birth since registration:
    /// a birth is not a loss of income, so it is not a risk signal by itself.
    pub fn per_capita_for_risk(&self, parts: IncomeParts, pupils: i64) -> Money {
        let size = parts.household_size.saturating_sub(parts.newborns).max(1);
        self.per_capita(
            IncomeParts {
                household_size: size,
                ..parts
            },
            pupils,
        )
    }

    /// The monthly amounts deducted: (就业成本, medical, schooling), for reasons.
    pub fn amounts(&self, parts: IncomeParts, pupils: i64) -> (Money, Money, Money) {
        let cost = permille_of(parts.monthly_wages, self.employment_cost_permille);
        let medical = if self.medical_out_of_pocket && parts.out_of_pocket_12m > Money::ZERO {
            let floor = permille_of(parts.monthly_income.times(12), self.medical_floor_permille);
            parts
                .out_of_pocket_12m
                .saturating_sub(floor)
                .max(Money::ZERO)
                .per(12)
        } else {
            Money::ZERO
        };
        (
            cost,
            medical,
            self.schooling_monthly_per_pupil.times(pupils),
        )
    }
}

/// `permille` ‰ of `m`, rounding toward zero, in 64-bit arithmetic when it cannot overflow.
fn permille_of(m: Money, permille: i64) -> Money {
    match m.fen().checked_mul(permille) {
        Some(p) => Money::from_fen(p / 1000),
        None => m.scale(permille, 1000),
    }
}

/// Multiplier (‰, 1000 = ×1.0) by registered category.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CategoryPermille {
    pub dibao: i64,
    pub tekun: i64,
    pub dibao_edge: i64,
    pub expenditure: i64,
    pub unstable: i64,
    pub edge_prone: i64,
    pub sudden: i64,
}

impl CategoryPermille {
    pub fn get(&self, c: Category) -> i64 {
        match c {
            Category::Dibao => self.dibao,
            Category::Tekun => self.tekun,
            Category::DibaoEdge => self.dibao_edge,
            Category::Expenditure => self.expenditure,
            Category::Unstable => self.unstable,
            Category::EdgeProne => self.edge_prone,
            Category::Sudden => self.sudden,
        }
    }

    fn entries(&self) -> [(&'static str, i64); 7] {
        [
            ("dibao", self.dibao),
            ("tekun", self.tekun),
            ("dibao_edge", self.dibao_edge),
            ("expenditure", self.expenditure),
            ("unstable", self.unstable),
            ("edge_prone", self.edge_prone),
            ("sudden", self.sudden),
        ]
    }
}

/// How the sum of rule points is scaled by the household's vulnerability.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Vulnerability {
    pub category_permille: CategoryPermille,
    /// Added to the multiplier when one elderly member lives alone.
    pub elderly_alone_permille: i64,
    /// Added when a child lives in the household.
    pub children_present_permille: i64,
    /// Added when no living member is able to work.
    pub nobody_able_to_work_permille: i64,
}

/// One warning level: from which score, how fast to act, how many months of relief to suggest.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LevelParams {
    pub min_score: i64,
    pub act_within_hours: i64,
    pub relief_months: i64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Levels {
    pub yellow: LevelParams,
    pub orange: LevelParams,
    pub red: LevelParams,
}

impl Levels {
    /// The level a score reaches.
    pub fn level_for(&self, score: i64) -> Level {
        if score >= self.red.min_score {
            Level::Red
        } else if score >= self.orange.min_score {
            Level::Orange
        } else if score >= self.yellow.min_score {
            Level::Yellow
        } else {
            Level::None
        }
    }

    /// The narrowest band of scores that makes one level (none, yellow or orange): the most
    /// vulnerability may add without raising a level by more than one step.
    pub fn narrowest_band(&self) -> i64 {
        let yellow = self.yellow.min_score;
        let orange = self.orange.min_score - yellow;
        let red = self.red.min_score - self.orange.min_score;
        yellow.min(orange).min(red).max(0)
    }

    pub fn params(&self, level: Level) -> Option<&LevelParams> {
        match level {
            Level::None => None,
            Level::Yellow => Some(&self.yellow),
            Level::Orange => Some(&self.orange),
            Level::Red => Some(&self.red),
        }
    }
}

/// Temporary relief (临时救助) suggestion parameters.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReliefParams {
    /// The township may grant up to this amount first (先行救助); above it the county approves.
    #[serde(with = "doudi_model::money::yuan")]
    pub township_limit: Money,
    /// Extra months for emergency (急难型) relief.
    pub emergency_extra_months: i64,
    /// No suggestion exceeds this many months of the 低保 standard.
    pub max_months: i64,
    /// Rules whose firing makes the relief emergency (急难型) at any level.
    pub emergency_rules: Vec<String>,
    /// Rules whose firing makes the relief emergency when the level is red.
    pub emergency_if_red_rules: Vec<String>,
}

/// `[urgency]`: how urgent a warning is comes from what happened, never from who the household
/// is. Every cause the rules report — each rule's id, and the policy causes of 急难 — is in one
/// class.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UrgencyTable {
    /// 急难 (basic living threatened now): red, whatever the household's category.
    pub emergency: Vec<String>,
    /// 支出型 (expense-driven): yellow or orange by the size of the findings, never red.
    pub expense: Vec<String>,
    /// Income below a line: yellow or orange by size, never red.
    pub income: Vec<String>,
    /// Vulnerability raises the level by at most this many steps (0 or 1) and never makes a red.
    pub vulnerability_max_steps: i64,
}

impl UrgencyTable {
    fn classes(&self) -> [(Urgency, &'static str, &Vec<String>); 3] {
        [
            (Urgency::Emergency, "emergency", &self.emergency),
            (Urgency::Expense, "expense", &self.expense),
            (Urgency::Income, "income", &self.income),
        ]
    }

    /// The class of a cause (a rule's id or a policy cause).
    pub fn class_of(&self, cause: &str) -> Option<Urgency> {
        self.classes()
            .into_iter()
            .find(|(_, _, list)| list.iter().any(|c| c == cause))
            .map(|(u, _, _)| u)
    }

    /// `[urgency]`: each of `known` causes in exactly one class, nothing else.
    pub fn validate(&self, known: &[&str]) -> Result<(), RuleSetError> {
        let at = Section("urgency");
        let mut seen: Vec<&str> = Vec::new();
        for (_, name, list) in self.classes() {
            for (i, cause) in list.iter().enumerate() {
                let entry = format!("{name}[{i}]");
                if !known.contains(&cause.as_str()) {
                    return at.invalid(
                        &entry,
                        &format!("unknown cause {cause:?} (known: {})", known.join(", ")),
                    );
                }
                if seen.contains(&cause.as_str()) {
                    return at.invalid(
                        &entry,
                        &format!("{cause:?} is already in a class: a cause has one urgency"),
                    );
                }
                seen.push(cause);
            }
        }
        if let Some(missing) = known.iter().find(|k| !seen.contains(k)) {
            return at.invalid(
                "expense",
                &format!(
                    "{missing:?} is in no class: add it to urgency.emergency, urgency.expense or urgency.income"
                ),
            );
        }
        at.range(
            "vulnerability_max_steps",
            self.vulnerability_max_steps,
            0,
            1,
        )
    }
}

/// Reviews opened by income or asset rises (never a cut).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReviewParams {
    /// 低保渐退: months the payment continues after income rises above the standard.
    pub dibao_grace_months: i64,
    /// 风险消除: months without any risk signal, with per-capita income (after deductions) above
    /// the line, before risk is cleared. Until then the signals keep counting.
    pub risk_clear_stable_months: i64,
    /// A household nobody in which can work is never cleared: once stable that long, it stays
    /// watched with these points (not scaled by vulnerability).
    pub watch_points: i64,
}

impl Standard {
    fn validate(&self, at: Section) -> Result<(), RuleSetError> {
        for (field, m) in [
            ("dibao_monthly", self.dibao_monthly),
            ("tekun_monthly", self.tekun_monthly),
            (
                "per_capita_disposable_yearly",
                self.per_capita_disposable_yearly,
            ),
        ] {
            if m.fen() <= 0 {
                return at.invalid(field, "must be more than zero");
            }
        }
        at.range(
            "edge_factor_permille",
            self.edge_factor_permille,
            1000,
            5000,
        )
    }
}

impl Standards {
    /// The standard for a household in `region` and `area`: the region entry with the longest
    /// matching prefix, else the default entry.
    pub fn for_region(&self, region: &RegionCode, area: Area) -> Standard {
        match regional(&self.regions, region) {
            Some(r) => match area {
                Area::Urban => r.urban,
                Area::Rural => r.rural,
            },
            None => self.default.get(area),
        }
    }

    /// `[standards]`: amounts above zero, region prefixes of digits, each once.
    pub fn validate(&self) -> Result<(), RuleSetError> {
        self.default
            .urban
            .validate(Section("standards.default.urban"))?;
        self.default
            .rural
            .validate(Section("standards.default.rural"))?;
        check_regions("standards.regions", &self.regions, |at, r| {
            r.urban.validate(Section(&at.key("urban")))?;
            r.rural.validate(Section(&at.key("rural")))
        })
    }
}

/// An entry of a table given by region-code prefix (a province `34`, a city `3415`, a county
/// `341502`, a township): it applies to every region code starting with its prefix.
pub trait Regional {
    fn prefix(&self) -> &str;
}

impl Regional for RegionStandards {
    fn prefix(&self) -> &str {
        &self.prefix
    }
}

/// The entry for `region`: the longest matching prefix, if any matches.
pub fn regional<'e, T: Regional>(entries: &'e [T], region: &RegionCode) -> Option<&'e T> {
    entries
        .iter()
        .filter(|r| region.within_prefix(r.prefix()))
        .max_by_key(|r| r.prefix().len())
}

/// Check a list of region entries at `key` (`standards.regions`): each prefix 1 to 12 digits and
/// given once, and each entry's own values (`check`, under `key[i]`).
pub fn check_regions<T: Regional>(
    key: &str,
    entries: &[T],
    check: impl Fn(Section, &T) -> Result<(), RuleSetError>,
) -> Result<(), RuleSetError> {
    for (i, r) in entries.iter().enumerate() {
        let at = format!("{key}[{i}]");
        let p = r.prefix();
        if p.is_empty() || p.len() > 12 || !p.bytes().all(|b| b.is_ascii_digit()) {
            return invalid(
                &format!("{at}.prefix"),
                &format!("{p:?} must be 1 to 12 digits of a region code"),
            );
        }
        if entries[..i].iter().any(|o| o.prefix() == p) {
            return invalid(
                &format!("{at}.prefix"),
                &format!("prefix {p} appears twice"),
            );
        }
        check(Section(&at), r)?;
    }
    Ok(())
}

impl General {
    /// Of working age (`working_age_min..=working_age_max`).
    pub fn of_working_age(&self, age: u32) -> bool {
        let a = i64::from(age);
        a >= self.working_age_min && a <= self.working_age_max
    }

    /// A living member able to work: some work capacity and of working age.
    pub fn able(&self, m: &MemberState) -> bool {
        m.alive && m.work_capacity != doudi_model::WorkCapacity::None && self.of_working_age(m.age)
    }

    /// `[general]`: ages in range, the working ages in order.
    pub fn validate(&self) -> Result<(), RuleSetError> {
        let at = Section("general");
        at.ordered(
            ("working_age_min", self.working_age_min),
            ("working_age_max", self.working_age_max),
            0,
            120,
        )?;
        at.range("elderly_age", self.elderly_age, 1, 120)?;
        at.range("child_age_below", self.child_age_below, 1, 30)
    }
}

impl Deductions {
    /// `[deductions]`: shares within the whole, school ages in order.
    pub fn validate(&self) -> Result<(), RuleSetError> {
        let at = Section("deductions");
        at.range(
            "employment_cost_permille",
            self.employment_cost_permille,
            0,
            1000,
        )?;
        at.range(
            "medical_floor_permille",
            self.medical_floor_permille,
            0,
            1000,
        )?;
        if self.schooling_monthly_per_pupil.is_negative() {
            return at.invalid("schooling_monthly_per_pupil", "must not be negative");
        }
        at.ordered(
            ("school_age_min", self.school_age_min),
            ("school_age_below", self.school_age_below),
            0,
            30,
        )
    }
}

impl Vulnerability {
    /// `[vulnerability]`: multipliers from ×0.1 to ×5, additions up to +3.
    pub fn validate(&self) -> Result<(), RuleSetError> {
        let categories = Section("vulnerability.category_permille");
        for (name, p) in self.category_permille.entries() {
            categories.range(name, p, 100, 5000)?;
        }
        let at = Section("vulnerability");
        at.range(
            "elderly_alone_permille",
            self.elderly_alone_permille,
            0,
            3000,
        )?;
        at.range(
            "children_present_permille",
            self.children_present_permille,
            0,
            3000,
        )?;
        at.range(
            "nobody_able_to_work_permille",
            self.nobody_able_to_work_permille,
            0,
            3000,
        )
    }
}

impl ReliefParams {
    /// `[relief]`: months and limit in range; the rules it names are among `known_rules`.
    pub fn validate(&self, known_rules: &[&str]) -> Result<(), RuleSetError> {
        let at = Section("relief");
        at.range("max_months", self.max_months, 1, 24)?;
        at.range("emergency_extra_months", self.emergency_extra_months, 0, 12)?;
        if self.township_limit.fen() <= 0 {
            return at.invalid("township_limit", "must be more than zero");
        }
        for (entry, list) in [
            ("emergency_rules", &self.emergency_rules),
            ("emergency_if_red_rules", &self.emergency_if_red_rules),
        ] {
            for (i, id) in list.iter().enumerate() {
                if !known_rules.contains(&id.as_str()) {
                    return at.invalid(
                        &format!("{entry}[{i}]"),
                        &format!("unknown rule id {id:?} (known: {})", known_rules.join(", ")),
                    );
                }
            }
        }
        Ok(())
    }
}

impl Levels {
    /// `[levels.*]`: thresholds going yellow < orange < red, times to act shortening, relief
    /// months up to `max_relief_months`.
    pub fn validate(&self, max_relief_months: i64) -> Result<(), RuleSetError> {
        for (name, p) in [
            ("levels.yellow", &self.yellow),
            ("levels.orange", &self.orange),
            ("levels.red", &self.red),
        ] {
            let at = Section(name);
            at.range("min_score", p.min_score, 1, 1_000_000)?;
            at.range("act_within_hours", p.act_within_hours, 1, 24 * 366)?;
            at.range("relief_months", p.relief_months, 0, max_relief_months)?;
        }
        let steps = [
            ("yellow", &self.yellow, "orange", &self.orange),
            ("orange", &self.orange, "red", &self.red),
        ];
        for (below, low, above, high) in steps {
            if high.min_score <= low.min_score {
                return invalid(
                    &format!("levels.{above}.min_score"),
                    &format!(
                        "{} must be above levels.{below}.min_score ({}): thresholds go yellow < orange < red",
                        high.min_score, low.min_score
                    ),
                );
            }
        }
        if self.orange.act_within_hours > self.yellow.act_within_hours {
            return invalid(
                "levels.orange.act_within_hours",
                "must not be longer than levels.yellow.act_within_hours",
            );
        }
        if self.red.act_within_hours > self.orange.act_within_hours {
            return invalid(
                "levels.red.act_within_hours",
                "must not be longer than levels.orange.act_within_hours",
            );
        }
        Ok(())
    }
}

impl ReviewParams {
    /// `[review]`: months in range; a watched household stays at `yellow_min_score` or above.
    pub fn validate(&self, yellow_min_score: i64) -> Result<(), RuleSetError> {
        let at = Section("review");
        at.range("dibao_grace_months", self.dibao_grace_months, 1, 36)?;
        at.range(
            "risk_clear_stable_months",
            self.risk_clear_stable_months,
            1,
            36,
        )?;
        at.points("watch_points", self.watch_points)?;
        if self.watch_points < yellow_min_score {
            return at.invalid(
                "watch_points",
                &format!(
                    "{} is below levels.yellow.min_score ({yellow_min_score}): a household that is never cleared must stay watched",
                    self.watch_points
                ),
            );
        }
        Ok(())
    }
}
