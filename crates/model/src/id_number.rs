//! Resident identity numbers (公民身份号码, GB 11643-1999).
//!
//! 18 characters: 6 address code, 8 birth date (YYYYMMDD), 3 sequence (odd = male, even = female)
//! and a check character. Legacy 15-digit numbers (YYMMDD, no check) are upgraded to 18 by inserting
//! `19` before the year and computing the check.
//!
//! An ID number is personal data: `Display` and `Debug` show it masked (`110105********002X`).
//! [`IdNumber::expose`] gives the full text for storage and matching only.

use std::fmt;

use chrono::NaiveDate;

use crate::sex::Sex;

const WEIGHTS: [u32; 17] = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
const CHECK_CHARS: [u8; 11] = *b"10X98765432";

/// A valid 18-character identity number (the check character is verified on construction).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct IdNumber([u8; 18]);

/// Why a text is not a valid identity number. Messages never repeat the number itself.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdNumberError {
    #[error("an identity number has 18 characters (or 15 for a legacy number), this one has {0}")]
    BadLength(usize),
    #[error("character {position} of the identity number must be a digit")]
    NotDigit { position: usize },
    #[error("the identity number's check character is wrong (expected {expected}, found {found})")]
    BadCheck { expected: char, found: char },
    #[error("the identity number's birth date is not a real date")]
    BadBirthDate,
}

/// The check character for the first 17 digits, or `None` if they are not all digits.
pub fn check_char(first17: &[u8]) -> Option<u8> {
    if first17.len() != 17 || !first17.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let sum: u32 = first17
        .iter()
        .zip(WEIGHTS)
        .map(|(d, w)| (d - b'0') as u32 * w)
        .sum();
    Some(CHECK_CHARS[(sum % 11) as usize])
}

fn parse_birth(digits: &[u8]) -> Option<NaiveDate> {
    let s = std::str::from_utf8(digits).ok()?;
    let y: i32 = s.get(0..4)?.parse().ok()?;
    let m: u32 = s.get(4..6)?.parse().ok()?;
    let d: u32 = s.get(6..8)?.parse().ok()?;
    NaiveDate::from_ymd_opt(y, m, d)
}

impl IdNumber {
    /// Parse an 18-character number (a lower-case `x` is accepted as `X`) or upgrade a legacy
    /// 15-digit one. Surrounding whitespace is ignored.
    pub fn parse(text: &str) -> Result<IdNumber, IdNumberError> {
        let t = text.trim().as_bytes();
        match t.len() {
            18 => Self::parse18(t),
            15 => Self::upgrade15(t),
            n => Err(IdNumberError::BadLength(n)),
        }
    }

    /// Parse strictly as 18 characters; a 15-digit number is refused.
    pub fn parse18(t: &[u8]) -> Result<IdNumber, IdNumberError> {
        if t.len() != 18 {
            return Err(IdNumberError::BadLength(t.len()));
        }
        if let Some(p) = t[..17].iter().position(|b| !b.is_ascii_digit()) {
            return Err(IdNumberError::NotDigit { position: p + 1 });
        }
        let found = t[17].to_ascii_uppercase();
        if !(found.is_ascii_digit() || found == b'X') {
            return Err(IdNumberError::NotDigit { position: 18 });
        }
        let expected = check_char(&t[..17]).ok_or(IdNumberError::NotDigit { position: 1 })?;
        if expected != found {
            return Err(IdNumberError::BadCheck {
                expected: expected as char,
                found: found as char,
            });
        }
        parse_birth(&t[6..14]).ok_or(IdNumberError::BadBirthDate)?;
        let mut out = [0u8; 18];
        out[..17].copy_from_slice(&t[..17]);
        out[17] = found;
        Ok(IdNumber(out))
    }

    /// Upgrade a legacy 15-digit number: insert `19` before the two-digit year, add the check.
    pub fn upgrade15(t: &[u8]) -> Result<IdNumber, IdNumberError> {
        if t.len() != 15 {
            return Err(IdNumberError::BadLength(t.len()));
        }
        if let Some(p) = t.iter().position(|b| !b.is_ascii_digit()) {
            return Err(IdNumberError::NotDigit { position: p + 1 });
        }
        let mut out = [0u8; 18];
        out[..6].copy_from_slice(&t[..6]);
        out[6] = b'1';
        out[7] = b'9';
        out[8..17].copy_from_slice(&t[6..15]);
        parse_birth(&out[6..14]).ok_or(IdNumberError::BadBirthDate)?;
        out[17] = check_char(&out[..17]).ok_or(IdNumberError::NotDigit { position: 1 })?;
        Ok(IdNumber(out))
    }

    /// Build a valid number from its parts (used by the synthetic data generator).
    pub fn from_parts(address: &str, birth: NaiveDate, sequence: u16) -> Option<IdNumber> {
        if address.len() != 6 || sequence > 999 {
            return None;
        }
        let first17 = format!("{address}{}{sequence:03}", birth.format("%Y%m%d"));
        let check = check_char(first17.as_bytes())?;
        let mut out = [0u8; 18];
        out[..17].copy_from_slice(first17.as_bytes());
        out[17] = check;
        Some(IdNumber(out))
    }

    /// The full number. Only for storage and matching: never log it.
    pub fn expose(&self) -> &str {
        // Constructed only from ASCII digits and 'X'.
        std::str::from_utf8(&self.0).unwrap_or("")
    }

    /// The 6-digit address code (the county where the number was first issued).
    pub fn address_code(&self) -> &str {
        &self.expose()[..6]
    }

    pub fn birth_date(&self) -> NaiveDate {
        parse_birth(&self.0[6..14]).unwrap_or_default()
    }

    /// Sex from the parity of the sequence number's last digit.
    pub fn sex(&self) -> Sex {
        if (self.0[16] - b'0') % 2 == 1 {
            Sex::Male
        } else {
            Sex::Female
        }
    }

    /// The masked form: first 6 and last 4 characters, the rest as `*`.
    pub fn masked(&self) -> String {
        mask_id_str(self.expose())
    }
}

/// Mask any text that may be an ID number: keep the first 6 and last 4 characters when it is long
/// enough (≥ 14), otherwise keep only the last 2. Works on whatever was typed, valid or not.
pub fn mask_id_str(s: &str) -> String {
    let chars: Vec<char> = s.trim().chars().collect();
    let n = chars.len();
    if n >= 14 {
        let mut out: String = chars[..6].iter().collect();
        out.extend(std::iter::repeat_n('*', n - 10));
        out.extend(&chars[n - 4..]);
        out
    } else if n > 2 {
        let mut out: String = std::iter::repeat_n('*', n - 2).collect();
        out.extend(&chars[n - 2..]);
        out
    } else {
        "*".repeat(n)
    }
}

/// Mask a personal name: keep the family name (first character), star the rest (`张*`, `欧阳**`
/// shows as `欧**`).
pub fn mask_name(name: &str) -> String {
    let mut chars = name.trim().chars();
    match chars.next() {
        None => String::new(),
        Some(first) => {
            let rest = chars.count();
            let mut out = String::from(first);
            out.extend(std::iter::repeat_n('*', rest.max(1)));
            out
        }
    }
}

impl fmt::Display for IdNumber {
    /// Masked: `110105********002X`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.masked())
    }
}

impl fmt::Debug for IdNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "IdNumber({})", self.masked())
    }
}

serde_as_text!(IdNumber, IdNumber::expose);

#[cfg(test)]
mod tests {
    use super::*;

    const STANDARD_EXAMPLE: &str = "11010519491231002X";

    #[test]
    fn accepts_the_standards_own_example() {
        let id = IdNumber::parse(STANDARD_EXAMPLE).unwrap();
        assert_eq!(id.expose(), STANDARD_EXAMPLE);
        assert_eq!(
            id.birth_date(),
            NaiveDate::from_ymd_opt(1949, 12, 31).unwrap()
        );
        assert_eq!(id.sex(), Sex::Female);
        assert_eq!(id.address_code(), "110105");
        // lower-case x is the same number
        assert_eq!(IdNumber::parse("11010519491231002x").unwrap(), id);
    }

    #[test]
    fn masks_in_display_and_debug() {
        let id = IdNumber::parse(STANDARD_EXAMPLE).unwrap();
        assert_eq!(id.to_string(), "110105********002X");
        assert_eq!(format!("{id:?}"), "IdNumber(110105********002X)");
        assert_eq!(mask_id_str("123"), "*23");
        assert_eq!(mask_name("张伟"), "张*");
        assert_eq!(mask_name("欧阳娜娜"), "欧***");
    }

    #[test]
    fn upgrades_legacy_fifteen_digit_numbers() {
        // 110105 491231 002 -> 110105 19491231 002 X
        let id = IdNumber::parse("110105491231002").unwrap();
        assert_eq!(id.expose(), STANDARD_EXAMPLE);
        let id = IdNumber::parse("340524800101001").unwrap();
        assert_eq!(&id.expose()[..17], "34052419800101001");
        assert!(IdNumber::parse(id.expose()).is_ok());
        assert_eq!(
            IdNumber::parse("110105491331002"),
            Err(IdNumberError::BadBirthDate)
        );
    }

    #[test]
    fn rejects_every_single_character_corruption() {
        let good = STANDARD_EXAMPLE.as_bytes();
        let alphabet = b"0123456789X";
        let mut tried = 0;
        for pos in 0..18 {
            for &c in alphabet {
                if c == good[pos] || (pos < 17 && c == b'X') {
                    continue;
                }
                let mut bad = good.to_vec();
                bad[pos] = c;
                let text = std::str::from_utf8(&bad).unwrap();
                assert!(
                    IdNumber::parse(text).is_err(),
                    "corruption at {pos} to {} accepted",
                    c as char
                );
                tried += 1;
            }
        }
        assert_eq!(tried, 17 * 9 + 10);
    }

    #[test]
    fn rejects_every_single_digit_corruption_of_many_numbers() {
        // The mod-11 check catches every single substitution, for any valid number.
        let births = ["19491231", "19800229", "20120615", "19651001"];
        for (i, b) in births.iter().enumerate() {
            let birth = NaiveDate::parse_from_str(b, "%Y%m%d").unwrap();
            let id = IdNumber::from_parts("341502", birth, 100 + i as u16).unwrap();
            let good = id.expose().as_bytes().to_vec();
            for pos in 0..17 {
                for d in b'0'..=b'9' {
                    if d == good[pos] {
                        continue;
                    }
                    let mut bad = good.clone();
                    bad[pos] = d;
                    assert!(IdNumber::parse(std::str::from_utf8(&bad).unwrap()).is_err());
                }
            }
        }
    }

    #[test]
    fn reports_what_is_wrong_without_the_number() {
        assert_eq!(IdNumber::parse("123"), Err(IdNumberError::BadLength(3)));
        assert_eq!(
            IdNumber::parse("1101051949123100AX"),
            Err(IdNumberError::NotDigit { position: 17 })
        );
        let e = IdNumber::parse("110105194912310021").unwrap_err();
        assert_eq!(
            e,
            IdNumberError::BadCheck {
                expected: 'X',
                found: '1'
            }
        );
        assert!(!e.to_string().contains("110105"));
        // valid check but impossible date 1949-13-31
        let first17 = b"11010519491331002";
        let c = check_char(first17).unwrap();
        let mut s = String::from_utf8(first17.to_vec()).unwrap();
        s.push(c as char);
        assert_eq!(IdNumber::parse(&s), Err(IdNumberError::BadBirthDate));
    }
}
