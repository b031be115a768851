//! The outcome of a risk assessment as data: the warning [`Level`], each rule's [`Contribution`],
//! the [`Assessment`] and the [`ReliefSuggestion`] it carries. A leaf: the rules that produce these
//! live in `doudi-risk`; the stores, the warning lifecycle and delivery read them from here.
//!
//! Pure data with its serde form (the form stored and delivered); no scoring logic.

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

use crate::money::Money;

/// How urgent a household's situation is. Ordered: `None < Yellow < Orange < Red`.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum Level {
    #[default]
    None,
    Yellow,
    Orange,
    Red,
}

impl Level {
    pub const ALL: [Level; 4] = [Level::None, Level::Yellow, Level::Orange, Level::Red];

    /// Stable code: `none`, `yellow`, `orange`, `red`.
    pub fn code(self) -> &'static str {
        match self {
            Level::None => "none",
            Level::Yellow => "yellow",
            Level::Orange => "orange",
            Level::Red => "red",
        }
    }

    /// The name an officer reads: 无 / 黄色 / 橙色 / 红色.
    pub fn name_zh(self) -> &'static str {
        match self {
            Level::None => "无",
            Level::Yellow => "黄色",
            Level::Orange => "橙色",
            Level::Red => "红色",
        }
    }

    pub fn from_code(code: &str) -> Option<Level> {
        Level::ALL.into_iter().find(|l| l.code() == code)
    }

    /// One level up (red stays red).
    pub fn step_up(self) -> Level {
        match self {
            Level::None => Level::Yellow,
            Level::Yellow => Level::Orange,
            Level::Orange | Level::Red => Level::Red,
        }
    }

    /// The default time to act (red 24 h, orange 72 h, yellow 360 h), for callers that hold a level
    /// without its assessment. The rule set's `levels.*.act_within_hours` is authoritative.
    pub fn default_act_within_hours(self) -> Option<i64> {
        match self {
            Level::None => None,
            Level::Yellow => Some(360),
            Level::Orange => Some(72),
            Level::Red => Some(24),
        }
    }
}

display_by_code!(Level);

/// How urgent what a rule found is, by policy: by what happened, never by who the household is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Urgency {
    /// Income below a line: yellow or orange by the size of the finding.
    Income,
    /// 支出型: a cost or a loss the household must absorb: yellow or orange by size.
    Expense,
    /// 急难: basic living threatened now — the main income gone with nobody able to work, the
    /// home uninhabitable, a bill beyond the household's capacity. Red, whoever the household is.
    Emergency,
}

impl Urgency {
    pub const ALL: [Urgency; 3] = [Urgency::Emergency, Urgency::Expense, Urgency::Income];

    /// Stable code: `emergency`, `expense`, `income`.
    pub fn code(self) -> &'static str {
        match self {
            Urgency::Emergency => "emergency",
            Urgency::Expense => "expense",
            Urgency::Income => "income",
        }
    }

    /// 急难 / 支出型 / 收入低于线.
    pub fn name_zh(self) -> &'static str {
        match self {
            Urgency::Emergency => "急难",
            Urgency::Expense => "支出型",
            Urgency::Income => "收入低于线",
        }
    }

    pub fn from_code(code: &str) -> Option<Urgency> {
        Urgency::ALL.into_iter().find(|u| u.code() == code)
    }
}

display_by_code!(Urgency);

/// What one rule added to the score, and why, in words an officer reads.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Contribution {
    pub rule_id: String,
    pub points: i64,
    pub reason_zh: String,
    pub reason_en: String,
    /// The facts that made the rule fire.
    pub event_ids: Vec<String>,
    /// The finding's urgency class (rule findings; `None` for the vulnerability multiplier, the
    /// watch adjustment, and in assessments stored before classes existed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub urgency: Option<Urgency>,
    /// The policy cause when it says more than the rule: `income_gone`, `home_uninhabitable`,
    /// `bill_beyond_capacity` (the causes of 急难).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cause: Option<String>,
}

impl Contribution {
    /// A finding of `rule_id`, its class still to be given.
    pub fn new(
        rule_id: &str,
        points: i64,
        reason_zh: String,
        reason_en: String,
        event_ids: Vec<String>,
    ) -> Self {
        Contribution {
            rule_id: rule_id.to_string(),
            points,
            reason_zh,
            reason_en,
            event_ids,
            urgency: None,
            cause: None,
        }
    }

    /// The same finding with a policy cause more specific than its rule.
    pub fn with_cause(mut self, cause: Option<&str>) -> Self {
        self.cause = cause.map(str::to_string);
        self
    }

    /// What the urgency table is looked up by: the cause, else the rule.
    pub fn cause_or_rule(&self) -> &str {
        self.cause.as_deref().unwrap_or(&self.rule_id)
    }
}

/// Why an assessment is at its level: the urgency class that set it, the level its findings
/// reach by their own points, and whether vulnerability raised it (by one step at most).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LevelBasis {
    /// The most urgent class among the findings that count; `None` when none counts.
    pub urgency: Option<Urgency>,
    /// The level the findings reach by their points alone, before vulnerability and class.
    pub by_findings: Level,
    /// Vulnerability raised the level one step.
    pub raised_by_vulnerability: bool,
    pub reason_zh: String,
    pub reason_en: String,
}

/// Where a household's risk stands at the day of an assessment.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RiskStatus {
    /// Never at risk: no risk signal, income never below the line.
    NoRisk,
    /// A risk is open: its findings count.
    Open,
    /// 风险消除 with evidence: income back at or above the line (and stable), someone able to work.
    Cleared,
    /// The signals aged out: stable long enough with no new signal, but no evidence of recovery
    /// beyond time (nobody verified it).
    Expired,
    /// Stable, but nobody can work: never cleared, stays watched.
    Watched,
}

impl RiskStatus {
    pub fn code(self) -> &'static str {
        match self {
            RiskStatus::NoRisk => "no_risk",
            RiskStatus::Open => "open",
            RiskStatus::Cleared => "cleared",
            RiskStatus::Expired => "expired",
            RiskStatus::Watched => "watched",
        }
    }
}

/// A finding that counted in the household's last risk episode and no longer does, with what
/// changed since.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lapsed {
    /// The finding as it stood (its reasons and events).
    pub finding: Contribution,
    /// What changed since: "the disaster is now more than 6 months old", "income back at or above
    /// the line since …".
    pub change_zh: String,
    pub change_en: String,
}

/// The household's risk at the day of the assessment, and what no longer counts.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RiskState {
    pub status: RiskStatus,
    /// The day the last episode was cleared or expired (status cleared or expired), or ended
    /// before the open one began.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lapsed_on: Option<NaiveDate>,
    /// The findings of the last episode that no longer count.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub lapsed: Vec<Lapsed>,
}

/// The outcome of assessing one household under one rule set.
///
/// The contributions' points add up to `score` exactly (the vulnerability multiplier appears as
/// its own contribution, `rule_id = "vulnerability"`), so an auditor can replay the sum.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Assessment {
    pub rule_set_version: String,
    pub household_id: String,
    pub score: i64,
    pub level: Level,
    pub contributions: Vec<Contribution>,
    pub relief: Option<ReliefSuggestion>,
    /// Hours within which an officer should act (from the level); `None` at level none.
    pub act_within_hours: Option<i64>,
    /// Reviews to open: 低保渐退 after an income rise, an asset check, a benefit stop on death.
    /// Never a cut by themselves.
    pub review_needed: Vec<String>,
    /// Why the assessment is at its level (absent in assessments stored before it existed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub basis: Option<LevelBasis>,
    /// Where the household's risk stands, with the findings that no longer count.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub risk: Option<RiskState>,
}

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
    /// Enrolment to consider beside the one-off relief, one line each, `[code] 中文 / English`:
    /// `single_person` (单人户: enrol a severely ill or disabled member alone), `dibao`, `tekun`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub enrolment: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_are_ordered_and_named() {
        assert!(Level::None < Level::Yellow);
        assert!(Level::Yellow < Level::Orange);
        assert!(Level::Orange < Level::Red);
        assert_eq!(Level::Red.name_zh(), "红色");
        assert_eq!(serde_json::to_string(&Level::Orange).unwrap(), "\"orange\"");
        for l in Level::ALL {
            assert_eq!(Level::from_code(l.code()), Some(l));
        }
    }
}
