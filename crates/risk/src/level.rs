//! Warning levels.

use std::fmt;

use serde::{Deserialize, Serialize};

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
