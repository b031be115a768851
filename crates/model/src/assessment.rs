//! The outcome of a risk assessment as data: the warning [`Level`], each rule's [`Contribution`],
//! the [`Assessment`] and the [`ReliefSuggestion`] it carries. A leaf: the rules that produce these
//! live in `doudi-risk`; the stores, the warning lifecycle and delivery read them from here.
//!
//! Pure data with its serde form (the form stored and delivered); no scoring logic.

use std::fmt;

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

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

/// What one rule added to the score, and why, in words an officer reads.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Contribution {
    pub rule_id: String,
    pub points: i64,
    pub reason_zh: String,
    pub reason_en: String,
    /// The facts that made the rule fire.
    pub event_ids: Vec<String>,
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
