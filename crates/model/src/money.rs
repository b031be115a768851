//! Exact money: an integer number of fen (0.01 CNY). Never a binary float.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A non-negative or signed amount of money in fen (1 yuan = 100 fen).
///
/// Serialised as an integer number of fen. Deserialising rejects negative amounts, since every
/// amount that crosses a boundary (a bill, a wage, a loss) is non-negative; arithmetic inside the
/// program may go below zero (a deficit) and uses the signed value.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Money(i64);

/// What was wrong with an amount written as text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MoneyError {
    #[error("amount {0:?} is not a number of yuan like \"961\" or \"961.50\"")]
    NotANumber(String),
    #[error("amount {0:?} has more than two decimal places (fen is the smallest unit)")]
    TooPrecise(String),
    #[error("amount {0:?} is negative; amounts must be zero or more")]
    Negative(String),
    #[error("amount {0:?} is too large")]
    TooLarge(String),
}

impl Money {
    pub const ZERO: Money = Money(0);

    pub const fn from_fen(fen: i64) -> Self {
        Money(fen)
    }

    pub const fn from_yuan(yuan: i64) -> Self {
        Money(yuan * 100)
    }

    pub const fn fen(self) -> i64 {
        self.0
    }

    pub fn is_negative(self) -> bool {
        self.0 < 0
    }

    pub fn saturating_add(self, other: Money) -> Money {
        Money(self.0.saturating_add(other.0))
    }

    pub fn saturating_sub(self, other: Money) -> Money {
        Money(self.0.saturating_sub(other.0))
    }

    /// Multiply by a whole number (months, people).
    pub fn times(self, n: i64) -> Money {
        Money(self.0.saturating_mul(n))
    }

    /// Divide by a whole number, rounding toward zero. Division by zero gives zero.
    pub fn per(self, n: i64) -> Money {
        if n == 0 {
            Money(0)
        } else {
            Money(self.0 / n)
        }
    }

    /// Multiply by a rational `num / den` (e.g. 3/2 for 1.5×), rounding toward zero.
    pub fn scale(self, num: i64, den: i64) -> Money {
        if den == 0 {
            return Money(0);
        }
        Money(((self.0 as i128 * num as i128) / den as i128) as i64)
    }

    /// Permille (‰) of this amount, e.g. `ratio_permille(income)` for "bill is 1,250‰ of income".
    pub fn ratio_permille(self, of: Money) -> Option<i64> {
        if of.0 <= 0 {
            None
        } else {
            Some(((self.0 as i128 * 1000) / of.0 as i128) as i64)
        }
    }

    /// Parse "961", "961.5" or "961.50" yuan (as in configuration files).
    pub fn parse_yuan(s: &str) -> Result<Money, MoneyError> {
        let t = s.trim();
        if t.starts_with('-') {
            return Err(MoneyError::Negative(s.to_string()));
        }
        let (whole, frac) = match t.split_once('.') {
            Some((w, f)) => (w, f),
            None => (t, ""),
        };
        if whole.is_empty() || !whole.bytes().all(|b| b.is_ascii_digit()) {
            return Err(MoneyError::NotANumber(s.to_string()));
        }
        if !frac.bytes().all(|b| b.is_ascii_digit()) || (t.contains('.') && frac.is_empty()) {
            return Err(MoneyError::NotANumber(s.to_string()));
        }
        if frac.len() > 2 {
            return Err(MoneyError::TooPrecise(s.to_string()));
        }
        let whole: i64 = whole
            .parse()
            .map_err(|_| MoneyError::TooLarge(s.to_string()))?;
        let mut fen: i64 = 0;
        for (i, b) in frac.bytes().enumerate() {
            let d = (b - b'0') as i64;
            fen += if i == 0 { d * 10 } else { d };
        }
        whole
            .checked_mul(100)
            .and_then(|w| w.checked_add(fen))
            .map(Money)
            .ok_or_else(|| MoneyError::TooLarge(s.to_string()))
    }
}

impl fmt::Display for Money {
    /// `1234.56` (yuan with two decimals).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sign = if self.0 < 0 { "-" } else { "" };
        let abs = self.0.unsigned_abs();
        write!(f, "{sign}{}.{:02}", abs / 100, abs % 100)
    }
}

impl FromStr for Money {
    type Err = MoneyError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Money::parse_yuan(s)
    }
}

impl std::ops::Add for Money {
    type Output = Money;
    fn add(self, rhs: Money) -> Money {
        self.saturating_add(rhs)
    }
}

impl std::ops::Sub for Money {
    type Output = Money;
    fn sub(self, rhs: Money) -> Money {
        self.saturating_sub(rhs)
    }
}

impl std::ops::AddAssign for Money {
    fn add_assign(&mut self, rhs: Money) {
        *self = self.saturating_add(rhs);
    }
}

impl std::iter::Sum for Money {
    fn sum<I: Iterator<Item = Money>>(iter: I) -> Money {
        iter.fold(Money::ZERO, |a, b| a + b)
    }
}

impl Serialize for Money {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_i64(self.0)
    }
}

impl<'de> Deserialize<'de> for Money {
    /// An integer number of fen, zero or more.
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = Money;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an amount as a whole number of fen, zero or more")
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Money, E> {
                i64::try_from(v)
                    .map(Money)
                    .map_err(|_| E::custom(format!("amount {v} fen is too large")))
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Money, E> {
                if v < 0 {
                    Err(E::custom(format!(
                        "amount {v} fen is negative; amounts must be zero or more"
                    )))
                } else {
                    Ok(Money(v))
                }
            }
            fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Money, E> {
                Err(E::custom(format!(
                    "amount {v} is not a whole number of fen (write 123.45 yuan as 12345)"
                )))
            }
        }
        d.deserialize_any(V)
    }
}

/// Serde helper for configuration: money written as yuan, either a string `"961.50"` or an integer
/// `961`. Floats are refused, so that no binary rounding can creep in.
pub mod yuan {
    use super::Money;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(m: &Money, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&m.to_string())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Money, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Yuan {
            Int(i64),
            Text(String),
        }
        match Yuan::deserialize(d)
            .map_err(|_| serde::de::Error::custom("expected yuan as \"961.50\" or 961"))?
        {
            Yuan::Int(v) if v >= 0 => Ok(Money::from_yuan(v)),
            Yuan::Int(v) => Err(serde::de::Error::custom(format!(
                "amount {v} yuan is negative"
            ))),
            Yuan::Text(t) => Money::parse_yuan(&t).map_err(serde::de::Error::custom),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_yuan_strings_exactly() {
        assert_eq!(Money::parse_yuan("961").unwrap(), Money::from_fen(96100));
        assert_eq!(Money::parse_yuan("961.5").unwrap(), Money::from_fen(96150));
        assert_eq!(Money::parse_yuan("0.07").unwrap(), Money::from_fen(7));
        type Why = fn(&MoneyError) -> bool;
        let refused: [(&str, Why); 4] = [
            ("1.234", |e| matches!(e, MoneyError::TooPrecise(_))),
            ("-3", |e| matches!(e, MoneyError::Negative(_))),
            ("abc", |e| matches!(e, MoneyError::NotANumber(_))),
            ("3.", |e| matches!(e, MoneyError::NotANumber(_))),
        ];
        for (text, why) in refused {
            assert!(Money::parse_yuan(text).is_err_and(|e| why(&e)), "{text}");
        }
    }

    #[test]
    fn displays_two_decimals() {
        assert_eq!(Money::from_fen(123456).to_string(), "1234.56");
        assert_eq!(Money::from_fen(-5).to_string(), "-0.05");
    }

    #[test]
    fn json_rejects_negative_and_fractional_fen() {
        assert_eq!(
            serde_json::from_str::<Money>("1200").unwrap(),
            Money::from_fen(1200)
        );
        let neg = serde_json::from_str::<Money>("-1").unwrap_err().to_string();
        assert!(neg.contains("negative"), "{neg}");
        let frac = serde_json::from_str::<Money>("12.5")
            .unwrap_err()
            .to_string();
        assert!(frac.contains("whole number of fen"), "{frac}");
    }

    #[test]
    fn scale_and_ratio() {
        assert_eq!(Money::from_yuan(641).scale(3, 2), Money::from_fen(96150));
        assert_eq!(
            Money::from_yuan(50).ratio_permille(Money::from_yuan(100)),
            Some(500)
        );
        assert_eq!(Money::from_yuan(50).ratio_permille(Money::ZERO), None);
    }
}
