//! Identity numbers as typed on a record: their form, their comparison with a register number and
//! the repaired numbers worth looking up.
//!
//! A number that fails its check, a legacy 15-digit one, or one a single substituted digit or one
//! adjacent swap away from a register number is only a *candidate* for that member: the other
//! fields decide (a one-digit typo of somebody else's number looks exactly the same).

use doudi_model::id_number::check_char;
use doudi_model::IdNumber;
use serde::{Deserialize, Serialize};

/// What the record's identity number text turned out to be. `Debug` shows the number masked.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum IdForm {
    /// A valid 18-character number.
    Valid([u8; 18]),
    /// A legacy 15-digit number, upgraded to 18 characters.
    Upgraded([u8; 18]),
    /// 18 characters (17 digits and a check character) that fail the check or the birth date.
    Invalid([u8; 18]),
    /// Anything else that was typed (wrong length, letters): not comparable.
    Unusable,
    Missing,
}

impl std::fmt::Debug for IdForm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let masked =
            |id: &[u8; 18]| doudi_model::mask_id_str(std::str::from_utf8(id).unwrap_or(""));
        match self {
            IdForm::Valid(id) => write!(f, "Valid({})", masked(id)),
            IdForm::Upgraded(id) => write!(f, "Upgraded({})", masked(id)),
            IdForm::Invalid(id) => write!(f, "Invalid({})", masked(id)),
            IdForm::Unusable => f.write_str("Unusable"),
            IdForm::Missing => f.write_str("Missing"),
        }
    }
}

/// How a record's number compares with a member's.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IdLevel {
    Exact,
    Upgraded15,
    OneSubstitution,
    AdjacentSwap,
    Different,
    Missing,
}

impl IdLevel {
    pub const ALL: [IdLevel; 6] = [
        IdLevel::Exact,
        IdLevel::Upgraded15,
        IdLevel::OneSubstitution,
        IdLevel::AdjacentSwap,
        IdLevel::Different,
        IdLevel::Missing,
    ];

    pub fn index(self) -> usize {
        self as usize
    }
}

/// Read what was typed (already trimmed, full-width digits folded, `x` → `X`).
pub fn id_form(text: Option<&str>) -> IdForm {
    let Some(t) = text.map(str::trim).filter(|t| !t.is_empty()) else {
        return IdForm::Missing;
    };
    let b = t.as_bytes();
    match IdNumber::parse(t) {
        Ok(id) => {
            let mut out = [0u8; 18];
            out.copy_from_slice(id.expose().as_bytes());
            if b.len() == 15 {
                IdForm::Upgraded(out)
            } else {
                IdForm::Valid(out)
            }
        }
        Err(_) => {
            if b.len() == 18
                && b[..17].iter().all(u8::is_ascii_digit)
                && (b[17].is_ascii_digit() || b[17].eq_ignore_ascii_case(&b'X'))
            {
                let mut out = [0u8; 18];
                out.copy_from_slice(b);
                out[17] = out[17].to_ascii_uppercase();
                IdForm::Invalid(out)
            } else {
                IdForm::Unusable
            }
        }
    }
}

/// The birth date and sex a number encodes (digits 7–14, and the parity of the 17th: odd for
/// men), for a record that typed the number but not those fields. Only a number that passed its
/// check (or an upgraded legacy one) says them reliably; `None` for another form.
pub fn encoded_birth_and_sex(
    form: &IdForm,
) -> Option<(Option<chrono::NaiveDate>, doudi_model::Sex)> {
    let (IdForm::Valid(id) | IdForm::Upgraded(id)) = form else {
        return None;
    };
    let num = |r: std::ops::Range<usize>| {
        id[r].iter().try_fold(0u32, |a, d| {
            d.is_ascii_digit().then(|| a * 10 + u32::from(d - b'0'))
        })
    };
    let birth = match (num(6..10), num(10..12), num(12..14)) {
        (Some(y), Some(m), Some(d)) => i32::try_from(y)
            .ok()
            .and_then(|y| chrono::NaiveDate::from_ymd_opt(y, m, d)),
        _ => None,
    };
    let sex = if id[16].wrapping_sub(b'0') % 2 == 1 {
        doudi_model::Sex::Male
    } else {
        doudi_model::Sex::Female
    };
    Some((birth, sex))
}

/// The first 17 digits as a number: the blocking key of an identity number.
pub fn key17(id: &[u8; 18]) -> u64 {
    id[..17].iter().fold(0u64, |acc, d| {
        acc * 10 + u64::from(d.wrapping_sub(b'0') % 10)
    })
}

/// Compare a record's number with a member's (valid) number.
pub fn compare_id(form: &IdForm, member: &[u8; 18]) -> IdLevel {
    match form {
        IdForm::Missing | IdForm::Unusable => IdLevel::Missing,
        IdForm::Valid(id) if id == member => IdLevel::Exact,
        IdForm::Upgraded(id) if id == member => IdLevel::Upgraded15,
        IdForm::Valid(_) | IdForm::Upgraded(_) => IdLevel::Different,
        IdForm::Invalid(id) => {
            let diff: Vec<usize> = (0..17).filter(|&i| id[i] != member[i]).collect();
            match diff.as_slice() {
                // Only the check character is wrong: also one substitution.
                [] | [_] => IdLevel::OneSubstitution,
                [a, b] if *b == a + 1 && id[*a] == member[*b] && id[*b] == member[*a] => {
                    IdLevel::AdjacentSwap
                }
                _ => IdLevel::Different,
            }
        }
    }
}

const WEIGHTS: [u32; 17] = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];

/// The check value (0–10) a check character stands for.
fn check_value(c: u8) -> Option<u32> {
    b"10X98765432"
        .iter()
        .position(|x| *x == c)
        .map(|p| p as u32)
}

/// Keys (first 17 digits) of every valid number one substitution or one adjacent swap away from an
/// invalid one, plus its own first 17 digits (a wrong check character). At most ~35 keys.
pub fn repair_keys(id: &[u8; 18], out: &mut Vec<u64>) {
    out.push(key17(id));
    let Some(want) = check_value(id[17]) else {
        return;
    };
    let digits: Vec<u32> = id[..17]
        .iter()
        .map(|d| u32::from(d.wrapping_sub(b'0')))
        .collect();
    let sum: u32 = digits.iter().zip(WEIGHTS).map(|(d, w)| d * w).sum();
    let base = key17(id);
    let pow10 = |i: usize| 10u64.pow(16 - i as u32);
    for i in 0..17 {
        for d in 0..10u32 {
            if d == digits[i] {
                continue;
            }
            let s = sum + 11 * 10 * 10 - digits[i] * WEIGHTS[i] + d * WEIGHTS[i];
            if s % 11 == want {
                let k = base - u64::from(digits[i]) * pow10(i) + u64::from(d) * pow10(i);
                out.push(k);
            }
        }
    }
    for i in 0..16 {
        let (a, b) = (digits[i], digits[i + 1]);
        if a == b {
            continue;
        }
        let s = sum + 11 * 100 - a * WEIGHTS[i] - b * WEIGHTS[i + 1]
            + b * WEIGHTS[i]
            + a * WEIGHTS[i + 1];
        if s % 11 == want {
            let k = base - u64::from(a) * pow10(i) - u64::from(b) * pow10(i + 1)
                + u64::from(b) * pow10(i)
                + u64::from(a) * pow10(i + 1);
            out.push(k);
        }
    }
    debug_assert!(check_char(&id[..17]).is_some());
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = "11010519491231002X";

    fn arr(s: &str) -> [u8; 18] {
        let mut a = [0u8; 18];
        a.copy_from_slice(s.as_bytes());
        a
    }

    #[test]
    fn forms_are_recognised() {
        assert_eq!(id_form(Some(GOOD)), IdForm::Valid(arr(GOOD)));
        assert_eq!(
            id_form(Some("110105491231002")),
            IdForm::Upgraded(arr(GOOD))
        );
        assert!(matches!(
            id_form(Some("110105194912310021")),
            IdForm::Invalid(_)
        ));
        assert_eq!(id_form(Some("12345")), IdForm::Unusable);
        assert_eq!(id_form(Some("  ")), IdForm::Missing);
        assert_eq!(id_form(None), IdForm::Missing);
    }

    #[test]
    fn comparison_levels_name_the_typo() {
        let m = arr(GOOD);
        let cases = [
            (GOOD, IdLevel::Exact),
            ("110105491231002", IdLevel::Upgraded15),
            // one digit replaced (position 10)
            ("11010519491731002X", IdLevel::OneSubstitution),
            // only the check character wrong
            ("110105194912310021", IdLevel::OneSubstitution),
            // adjacent digits 3 and 1 swapped (positions 12, 13)
            ("11010519491213002X", IdLevel::AdjacentSwap),
            ("11010519500101002X", IdLevel::Different),
        ];
        for (id, level) in cases {
            assert_eq!(compare_id(&id_form(Some(id)), &m), level, "{id}");
        }
        assert_eq!(compare_id(&IdForm::Missing, &m), IdLevel::Missing);
    }

    #[test]
    fn repair_keys_find_the_register_number_for_every_single_typo() {
        let good = arr(GOOD);
        let want = key17(&good);
        let mut keys = Vec::new();
        let mut tried = 0;
        for pos in 0..17 {
            for d in b'0'..=b'9' {
                if d == good[pos] {
                    continue;
                }
                let mut bad = good;
                bad[pos] = d;
                keys.clear();
                repair_keys(&bad, &mut keys);
                assert!(keys.contains(&want), "substitution at {pos}");
                assert!(keys.len() <= 40);
                tried += 1;
            }
        }
        for pos in 0..16 {
            let mut bad = good;
            bad.swap(pos, pos + 1);
            if bad == good {
                continue;
            }
            keys.clear();
            repair_keys(&bad, &mut keys);
            assert!(keys.contains(&want), "swap at {pos}");
        }
        assert_eq!(tried, 17 * 9);
    }
}
