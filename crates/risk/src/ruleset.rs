//! The versioned rule set: local standards, rule weights, level thresholds, relief and review
//! parameters. Loaded from TOML (see `rules/default.toml`) and validated so that a bad file is
//! refused with the key that is wrong, never half-applied.

use doudi_model::{Area, Category, Money, RegionCode};
use serde::{Deserialize, Serialize};

use crate::level::Level;
use crate::state::IncomeParts;

/// Why a rules file was refused. `key` is the dotted path of the offending entry
/// (e.g. `levels.orange.min_score`), so the person editing the file knows where to look.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RuleSetError {
    /// The file is not TOML, or an entry is missing, unknown or of the wrong type.
    #[error("rules file: `{key}`: {message}")]
    Parse { key: String, message: String },
    /// The file parsed but a value is out of range or inconsistent with another.
    #[error("rules file: `{key}`: {message}")]
    Invalid { key: String, message: String },
}

impl RuleSetError {
    /// The dotted key the error is about.
    pub fn key(&self) -> &str {
        match self {
            RuleSetError::Parse { key, .. } | RuleSetError::Invalid { key, .. } => key,
        }
    }

    /// What is wrong, without the key.
    pub fn message(&self) -> &str {
        match self {
            RuleSetError::Parse { message, .. } | RuleSetError::Invalid { message, .. } => message,
        }
    }

    /// The rule the error is about, when it is in a rule's own section (`rules.<id>.…`).
    pub fn rule(&self) -> Option<&str> {
        let rest = self.key().strip_prefix("rules.")?;
        let id = rest.split(['.', '[']).next()?;
        crate::rules::RULE_IDS.iter().copied().find(|r| *r == id)
    }
}

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

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeathParams {
    /// A member died who was not earning.
    pub any_member: i64,
    /// The member who died was earning.
    pub earner: i64,
    /// The member who died could work, and nobody left in the household can.
    pub nobody_left_able_to_work: i64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PointsParams {
    pub points: i64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MedicalBurdenParams {
    /// Lower tier: trailing-12-month out-of-pocket above this share (‰) of per-capita disposable income.
    pub above_half_permille: i64,
    pub above_half_points: i64,
    /// Upper tier.
    pub above_full_permille: i64,
    pub above_full_points: i64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CatastrophicBillParams {
    /// One bill's out-of-pocket at or above this share (‰) of the household's yearly capacity to pay.
    pub share_of_capacity_permille: i64,
    pub points: i64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobLossParams {
    /// Contributions must have stopped for at least this many months to count.
    pub contributions_stopped_min_months: i64,
    pub contributions_stopped: i64,
    pub unemployment_registered: i64,
    pub job_lost: i64,
    /// Added once when, right after a loss, nobody in the household was employed.
    pub no_earner_left_bonus: i64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SevereDisabilityParams {
    /// Certificates of this grade or more severe (smaller number) count.
    pub max_grade: i64,
    pub points: i64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DangerousHouseParams {
    pub grade_c: i64,
    pub grade_d: i64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DisasterParams {
    pub damaged: i64,
    pub uninhabitable: i64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IncomeParams {
    /// Per-capita income was at or above the 低保边缘 line at registration and fell below it.
    pub below_edge: i64,
    /// Per-capita income was at or above the 低保 standard at registration and fell below it.
    pub below_dibao: i64,
    /// A fall across a line counts only when it is at least this share (‰) of the income at
    /// registration (a dip of a few yuan across the line is not a risk signal).
    pub min_drop_permille: i64,
    /// Per-capita income fell by at least this share (‰) of the income at registration, whatever
    /// the lines ...
    pub sharp_drop_permille: i64,
    /// ... for these points (when no line was crossed).
    pub sharp_drop: i64,
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

/// Parameters of each rule, by rule id.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleParams {
    pub death: DeathParams,
    pub serious_illness: PointsParams,
    pub medical_burden: MedicalBurdenParams,
    pub catastrophic_bill: CatastrophicBillParams,
    pub job_loss: JobLossParams,
    pub severe_disability: SevereDisabilityParams,
    pub dangerous_house: DangerousHouseParams,
    pub disaster_damage: DisasterParams,
    pub forced_relocation: PointsParams,
    pub income_below_line: IncomeParams,
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
        match RuleSet::from_toml_str(BUILTIN) {
            Ok(rules) => rules,
            Err(e) => panic!("the built-in rules/default.toml is invalid: {e}"),
        }
    }

    /// The standard for a household in `region` and `area`: the region entry with the longest
    /// matching prefix, else the default entry.
    pub fn standard_for(&self, region: &RegionCode, area: Area) -> Standard {
        self.standards
            .regions
            .iter()
            .filter(|r| region.within_prefix(&r.prefix))
            .max_by_key(|r| r.prefix.len())
            .map(|r| match area {
                Area::Urban => r.urban,
                Area::Rural => r.rural,
            })
            .unwrap_or_else(|| self.standards.default.get(area))
    }

    /// Check ranges and orderings serde cannot express.
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

        let g = &self.general;
        range("general.working_age_min", g.working_age_min, 0, 120)?;
        range("general.working_age_max", g.working_age_max, 0, 120)?;
        if g.working_age_max < g.working_age_min {
            return invalid(
                "general.working_age_max",
                "must not be below general.working_age_min",
            );
        }
        range("general.elderly_age", g.elderly_age, 1, 120)?;
        range("general.child_age_below", g.child_age_below, 1, 30)?;

        check_standard("standards.default.urban", &self.standards.default.urban)?;
        check_standard("standards.default.rural", &self.standards.default.rural)?;
        for (i, r) in self.standards.regions.iter().enumerate() {
            let key = format!("standards.regions[{i}]");
            let p = &r.prefix;
            if p.is_empty() || p.len() > 12 || !p.bytes().all(|b| b.is_ascii_digit()) {
                return invalid(
                    &format!("{key}.prefix"),
                    &format!("{p:?} must be 1 to 12 digits of a region code"),
                );
            }
            if self.standards.regions[..i].iter().any(|o| o.prefix == *p) {
                return invalid(
                    &format!("{key}.prefix"),
                    &format!("prefix {p} appears twice"),
                );
            }
            check_standard(&format!("{key}.urban"), &r.urban)?;
            check_standard(&format!("{key}.rural"), &r.rural)?;
        }

        let r = &self.rules;
        points("rules.death.any_member", r.death.any_member)?;
        points("rules.death.earner", r.death.earner)?;
        points(
            "rules.death.nobody_left_able_to_work",
            r.death.nobody_left_able_to_work,
        )?;
        if r.death.earner < r.death.any_member {
            return invalid(
                "rules.death.earner",
                "must not be less than rules.death.any_member (an earner's death weighs more)",
            );
        }
        if r.death.nobody_left_able_to_work < r.death.earner {
            return invalid(
                "rules.death.nobody_left_able_to_work",
                "must not be less than rules.death.earner (it weighs most)",
            );
        }
        points("rules.serious_illness.points", r.serious_illness.points)?;
        let m = &r.medical_burden;
        range(
            "rules.medical_burden.above_half_permille",
            m.above_half_permille,
            1,
            100_000,
        )?;
        range(
            "rules.medical_burden.above_full_permille",
            m.above_full_permille,
            1,
            100_000,
        )?;
        if m.above_full_permille <= m.above_half_permille {
            return invalid(
                "rules.medical_burden.above_full_permille",
                "must be above rules.medical_burden.above_half_permille",
            );
        }
        points(
            "rules.medical_burden.above_half_points",
            m.above_half_points,
        )?;
        points(
            "rules.medical_burden.above_full_points",
            m.above_full_points,
        )?;
        range(
            "rules.catastrophic_bill.share_of_capacity_permille",
            r.catastrophic_bill.share_of_capacity_permille,
            1,
            100_000,
        )?;
        points("rules.catastrophic_bill.points", r.catastrophic_bill.points)?;
        let j = &r.job_loss;
        range(
            "rules.job_loss.contributions_stopped_min_months",
            j.contributions_stopped_min_months,
            1,
            60,
        )?;
        points(
            "rules.job_loss.contributions_stopped",
            j.contributions_stopped,
        )?;
        points(
            "rules.job_loss.unemployment_registered",
            j.unemployment_registered,
        )?;
        points("rules.job_loss.job_lost", j.job_lost)?;
        points(
            "rules.job_loss.no_earner_left_bonus",
            j.no_earner_left_bonus,
        )?;
        range(
            "rules.severe_disability.max_grade",
            r.severe_disability.max_grade,
            1,
            4,
        )?;
        points("rules.severe_disability.points", r.severe_disability.points)?;
        points("rules.dangerous_house.grade_c", r.dangerous_house.grade_c)?;
        points("rules.dangerous_house.grade_d", r.dangerous_house.grade_d)?;
        points("rules.disaster_damage.damaged", r.disaster_damage.damaged)?;
        points(
            "rules.disaster_damage.uninhabitable",
            r.disaster_damage.uninhabitable,
        )?;
        points("rules.forced_relocation.points", r.forced_relocation.points)?;
        points(
            "rules.income_below_line.below_edge",
            r.income_below_line.below_edge,
        )?;
        points(
            "rules.income_below_line.below_dibao",
            r.income_below_line.below_dibao,
        )?;

        range(
            "rules.income_below_line.min_drop_permille",
            r.income_below_line.min_drop_permille,
            0,
            1000,
        )?;
        range(
            "rules.income_below_line.sharp_drop_permille",
            r.income_below_line.sharp_drop_permille,
            1,
            1000,
        )?;
        points(
            "rules.income_below_line.sharp_drop",
            r.income_below_line.sharp_drop,
        )?;

        let d = &self.deductions;
        range(
            "deductions.employment_cost_permille",
            d.employment_cost_permille,
            0,
            1000,
        )?;
        range(
            "deductions.medical_floor_permille",
            d.medical_floor_permille,
            0,
            1000,
        )?;
        if d.schooling_monthly_per_pupil.is_negative() {
            return invalid(
                "deductions.schooling_monthly_per_pupil",
                "must not be negative",
            );
        }
        range("deductions.school_age_min", d.school_age_min, 0, 30)?;
        range("deductions.school_age_below", d.school_age_below, 0, 30)?;
        if d.school_age_below < d.school_age_min {
            return invalid(
                "deductions.school_age_below",
                "must not be below deductions.school_age_min",
            );
        }

        let vu = &self.vulnerability;
        for (name, p) in vu.category_permille.entries() {
            range(
                &format!("vulnerability.category_permille.{name}"),
                p,
                100,
                5000,
            )?;
        }
        range(
            "vulnerability.elderly_alone_permille",
            vu.elderly_alone_permille,
            0,
            3000,
        )?;
        range(
            "vulnerability.children_present_permille",
            vu.children_present_permille,
            0,
            3000,
        )?;
        range(
            "vulnerability.nobody_able_to_work_permille",
            vu.nobody_able_to_work_permille,
            0,
            3000,
        )?;

        let rel = &self.relief;
        range("relief.max_months", rel.max_months, 1, 24)?;
        range(
            "relief.emergency_extra_months",
            rel.emergency_extra_months,
            0,
            12,
        )?;
        if rel.township_limit.fen() <= 0 {
            return invalid("relief.township_limit", "must be more than zero");
        }
        for (key, list) in [
            ("relief.emergency_rules", &rel.emergency_rules),
            ("relief.emergency_if_red_rules", &rel.emergency_if_red_rules),
        ] {
            for (i, id) in list.iter().enumerate() {
                if !crate::rules::RULE_IDS.contains(&id.as_str()) {
                    return invalid(
                        &format!("{key}[{i}]"),
                        &format!(
                            "unknown rule id {id:?} (known: {})",
                            crate::rules::RULE_IDS.join(", ")
                        ),
                    );
                }
            }
        }

        let l = &self.levels;
        for (name, p) in [
            ("yellow", &l.yellow),
            ("orange", &l.orange),
            ("red", &l.red),
        ] {
            range(
                &format!("levels.{name}.min_score"),
                p.min_score,
                1,
                1_000_000,
            )?;
            range(
                &format!("levels.{name}.act_within_hours"),
                p.act_within_hours,
                1,
                24 * 366,
            )?;
            range(
                &format!("levels.{name}.relief_months"),
                p.relief_months,
                0,
                rel.max_months,
            )?;
        }
        if l.orange.min_score <= l.yellow.min_score {
            return invalid(
                "levels.orange.min_score",
                &format!(
                    "{} must be above levels.yellow.min_score ({}): thresholds go yellow < orange < red",
                    l.orange.min_score, l.yellow.min_score
                ),
            );
        }
        if l.red.min_score <= l.orange.min_score {
            return invalid(
                "levels.red.min_score",
                &format!(
                    "{} must be above levels.orange.min_score ({}): thresholds go yellow < orange < red",
                    l.red.min_score, l.orange.min_score
                ),
            );
        }
        if l.orange.act_within_hours > l.yellow.act_within_hours {
            return invalid(
                "levels.orange.act_within_hours",
                "must not be longer than levels.yellow.act_within_hours",
            );
        }
        if l.red.act_within_hours > l.orange.act_within_hours {
            return invalid(
                "levels.red.act_within_hours",
                "must not be longer than levels.orange.act_within_hours",
            );
        }

        range(
            "review.dibao_grace_months",
            self.review.dibao_grace_months,
            1,
            36,
        )?;
        range(
            "review.risk_clear_stable_months",
            self.review.risk_clear_stable_months,
            1,
            36,
        )?;
        points("review.watch_points", self.review.watch_points)?;
        if self.review.watch_points < l.yellow.min_score {
            return invalid(
                "review.watch_points",
                &format!(
                    "{} is below levels.yellow.min_score ({}): a household that is never cleared must stay watched",
                    self.review.watch_points, l.yellow.min_score
                ),
            );
        }
        Ok(())
    }
}

fn invalid<T>(key: &str, message: &str) -> Result<T, RuleSetError> {
    Err(RuleSetError::Invalid {
        key: key.to_string(),
        message: message.to_string(),
    })
}

fn range(key: &str, value: i64, min: i64, max: i64) -> Result<(), RuleSetError> {
    if value < min || value > max {
        invalid(key, &format!("{value} is out of range {min}..={max}"))
    } else {
        Ok(())
    }
}

/// Rule points must be sane: 0 (rule switched off) to 1000.
fn points(key: &str, value: i64) -> Result<(), RuleSetError> {
    range(key, value, 0, 1000)
}

fn check_standard(key: &str, s: &Standard) -> Result<(), RuleSetError> {
    for (field, m) in [
        ("dibao_monthly", s.dibao_monthly),
        ("tekun_monthly", s.tekun_monthly),
        (
            "per_capita_disposable_yearly",
            s.per_capita_disposable_yearly,
        ),
    ] {
        if m.fen() <= 0 {
            return invalid(&format!("{key}.{field}"), "must be more than zero");
        }
    }
    range(
        &format!("{key}.edge_factor_permille"),
        s.edge_factor_permille,
        1000,
        5000,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

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
        assert_eq!(
            r.standard_for(&v("999901001001"), Area::Rural)
                .dibao_monthly,
            Money::from_yuan(700)
        );
        assert_eq!(
            r.standard_for(&v("999901002001"), Area::Rural)
                .dibao_monthly,
            Money::from_yuan(650)
        );
        assert_eq!(
            r.standard_for(&v("110105001001"), Area::Urban)
                .dibao_monthly,
            Money::from_yuan(961)
        );
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
