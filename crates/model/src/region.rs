//! Region codes: the 12-digit statistical division codes (6 digits county, 3 township, 3 village).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Which tier of administration a code names.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RegionLevel {
    /// 县/区: 6 digits, e.g. `341502`.
    County,
    /// 镇/街道: 9 digits, e.g. `341502001`.
    Township,
    /// 村/社区: 12 digits, e.g. `341502001001`.
    Village,
}

/// A region code of 6 (county), 9 (township) or 12 (village) digits.
///
/// Trailing zero groups are *not* stripped: `341502000000` is a 12-digit code and is not the same as
/// `341502`. Use [`RegionCode::contains`] for "is this village inside that township".
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RegionCode(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RegionError {
    #[error("region code {0:?} must be 6 (county), 9 (township) or 12 (village) digits")]
    BadLength(String),
    #[error("region code {0:?} must contain only digits")]
    NotDigits(String),
}

impl RegionCode {
    pub fn parse(s: &str) -> Result<Self, RegionError> {
        let t = s.trim();
        if !t.bytes().all(|b| b.is_ascii_digit()) {
            return Err(RegionError::NotDigits(s.to_string()));
        }
        match t.len() {
            6 | 9 | 12 => Ok(RegionCode(t.to_string())),
            _ => Err(RegionError::BadLength(s.to_string())),
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn level(&self) -> RegionLevel {
        match self.0.len() {
            6 => RegionLevel::County,
            9 => RegionLevel::Township,
            _ => RegionLevel::Village,
        }
    }

    /// The county (first 6 digits).
    pub fn county(&self) -> RegionCode {
        RegionCode(self.0[..6].to_string())
    }

    /// The township (first 9 digits), if this code is at township level or below.
    pub fn township(&self) -> Option<RegionCode> {
        (self.0.len() >= 9).then(|| RegionCode(self.0[..9].to_string()))
    }

    /// Whether `other` lies within this region (a prefix test; a region contains itself).
    pub fn contains(&self, other: &RegionCode) -> bool {
        other.0.starts_with(&self.0)
    }

    /// Whether this region lies within `prefix` given as text (used for officers' scopes).
    pub fn within_prefix(&self, prefix: &str) -> bool {
        self.0.starts_with(prefix)
    }
}

impl fmt::Display for RegionCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for RegionCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RegionCode({})", self.0)
    }
}

impl FromStr for RegionCode {
    type Err = RegionError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        RegionCode::parse(s)
    }
}

serde_as_text!(RegionCode, RegionCode::as_str);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_and_containment() {
        let county = RegionCode::parse("341502").unwrap();
        let town = RegionCode::parse("341502001").unwrap();
        let village = RegionCode::parse("341502001001").unwrap();
        assert_eq!(county.level(), RegionLevel::County);
        assert_eq!(town.level(), RegionLevel::Township);
        assert_eq!(village.level(), RegionLevel::Village);
        assert!(county.contains(&village));
        assert!(town.contains(&village));
        assert!(!village.contains(&town));
        assert!(!RegionCode::parse("341502002").unwrap().contains(&village));
        assert_eq!(village.township(), Some(town.clone()));
        assert_eq!(village.county(), county);
        assert_eq!(county.township(), None);
    }

    #[test]
    fn rejects_bad_codes() {
        type Why = fn(&RegionError) -> bool;
        let refused: [(&str, Why); 2] = [
            ("34150", |e| matches!(e, RegionError::BadLength(_))),
            ("34150a", |e| matches!(e, RegionError::NotDigits(_))),
        ];
        for (code, why) in refused {
            assert!(RegionCode::parse(code).is_err_and(|e| why(&e)), "{code}");
        }
        assert!(serde_json::from_str::<RegionCode>("\"1234567\"").is_err());
    }
}
