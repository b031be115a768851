//! Field comparators. Each returns a *level* (exact / close / far / missing, in the field's own
//! words); the model turns levels into weights.

use chrono::{Datelike, NaiveDate};
use doudi_model::Sex;

use crate::normalise::{NormName, Script};

/// Identity-number levels, in the order of [`crate::idnum::IdLevel`].
pub const ID_LEVELS: [&str; 6] = [
    "exact",
    "upgraded_15",
    "one_substitution",
    "adjacent_swap",
    "different",
    "missing",
];

/// Name levels (index order as in [`NAME_LEVELS`]).
pub const NAME_EXACT: u8 = 0;
pub const NAME_HOMOPHONE: u8 = 1;
pub const NAME_CLOSE: u8 = 2;
pub const NAME_FAR: u8 = 3;
pub const NAME_MISSING: u8 = 4;
pub const NAME_LEVELS: [&str; 5] = ["exact", "homophone", "close", "far", "missing"];

pub const DATE_EXACT: u8 = 0;
pub const DATE_SWAPPED: u8 = 1;
pub const DATE_CLOSE: u8 = 2;
pub const DATE_FAR: u8 = 3;
pub const DATE_MISSING: u8 = 4;
pub const DATE_LEVELS: [&str; 5] = ["exact", "day_month_swapped", "close", "far", "missing"];

pub const SEX_MISSING: u8 = 2;
pub const SEX_LEVELS: [&str; 3] = ["same", "different", "missing"];

pub const REGION_VILLAGE: u8 = 0;
pub const REGION_TOWNSHIP: u8 = 1;
pub const REGION_COUNTY: u8 = 2;
pub const REGION_OTHER: u8 = 3;
pub const REGION_MISSING: u8 = 4;
pub const REGION_LEVELS: [&str; 5] = ["village", "township", "county", "other", "missing"];

/// Jaro–Winkler similarity at or above which two name sounds count as close.
pub const CLOSE_SOUND: f64 = 0.92;

/// Compare two names by characters, then pinyin, then string distance.
pub fn compare_name(a: &NormName, b_key: &str, b_sound: &str, b_script: Script) -> u8 {
    if a.is_empty() || b_key.is_empty() {
        return NAME_MISSING;
    }
    if a.key == b_key {
        return NAME_EXACT;
    }
    if a.sound == b_sound {
        return NAME_HOMOPHONE;
    }
    if a.script == Script::Han && b_script == Script::Han {
        // Han characters (basic block, extension A) are 3 bytes each in UTF-8
        let (la, lb) = (a.key.len() / 3, b_key.len() / 3);
        // one character added, dropped or changed in a name of three or more
        if la.min(lb) >= 3 && strsim::levenshtein(&a.key, b_key) <= 1 {
            return NAME_CLOSE;
        }
    }
    if strsim::jaro_winkler(&a.sound, b_sound) >= CLOSE_SOUND {
        return NAME_CLOSE;
    }
    NAME_FAR
}

/// The date with day and month exchanged, where that is a real, different date.
pub fn swap_day_month(d: NaiveDate) -> Option<NaiveDate> {
    if d.day() == d.month() || d.day() > 12 {
        return None;
    }
    NaiveDate::from_ymd_opt(d.year(), d.day(), d.month())
}

fn digits8(d: NaiveDate) -> [u8; 8] {
    let s = format!(
        "{:04}{:02}{:02}",
        d.year().rem_euclid(10000),
        d.month(),
        d.day()
    );
    let mut out = [0u8; 8];
    out.copy_from_slice(&s.as_bytes()[..8]);
    out
}

/// Compare birth dates: exact, day and month exchanged, close (one digit of YYYYMMDD differs, or
/// within 3 days), far.
pub fn compare_date(a: Option<NaiveDate>, b: Option<NaiveDate>) -> u8 {
    let (Some(a), Some(b)) = (a, b) else {
        return DATE_MISSING;
    };
    if a == b {
        return DATE_EXACT;
    }
    if swap_day_month(a) == Some(b) {
        return DATE_SWAPPED;
    }
    if (a - b).num_days().abs() <= 3 {
        return DATE_CLOSE;
    }
    let (x, y) = (digits8(a), digits8(b));
    if x.iter().zip(y.iter()).filter(|(p, q)| p != q).count() == 1 {
        return DATE_CLOSE;
    }
    DATE_FAR
}

pub fn compare_sex(a: Option<Sex>, b: Option<Sex>) -> u8 {
    match (a, b) {
        (Some(a), Some(b)) if a == b => 0,
        (Some(_), Some(_)) => 1,
        _ => 2,
    }
}

/// Compare region codes (digits only; 6, 9 or 12 long) by the deepest level both have.
pub fn compare_region(a: &[u8], b: &[u8]) -> u8 {
    if a.len() < 6 || b.len() < 6 {
        return REGION_MISSING;
    }
    if a[..6] != b[..6] {
        return REGION_OTHER;
    }
    if a.len() < 9 || b.len() < 9 || a[..9] != b[..9] {
        return REGION_COUNTY;
    }
    if a.len() < 12 || b.len() < 12 || a[..12] != b[..12] {
        return REGION_TOWNSHIP;
    }
    REGION_VILLAGE
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::normalise::normalise_name;

    fn name(a: &str, b: &str) -> &'static str {
        let x = normalise_name(a);
        let y = normalise_name(b);
        NAME_LEVELS[compare_name(&x, &y.key, &y.sound, y.script) as usize]
    }

    fn date(s: &str) -> Option<NaiveDate> {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").ok()
    }

    #[test]
    fn name_levels() {
        assert_eq!(name("张伟", "張偉"), "exact");
        assert_eq!(name("张伟", "张玮"), "homophone");
        assert_eq!(name("欧阳娜娜", "欧阳娜"), "close");
        assert_eq!(name("Hans Müller", "Hans Muler"), "close");
        assert_eq!(name("张伟", "李强"), "far");
        assert_eq!(name("张伟", "张强"), "far");
        assert_eq!(name("", "张伟"), "missing");
    }

    #[test]
    fn date_levels() {
        let l = |a: &str, b: &str| DATE_LEVELS[compare_date(date(a), date(b)) as usize];
        assert_eq!(l("1960-03-05", "1960-03-05"), "exact");
        assert_eq!(l("1960-03-05", "1960-05-03"), "day_month_swapped");
        assert_eq!(l("1960-03-05", "1960-03-07"), "close");
        assert_eq!(l("1960-03-05", "1966-03-05"), "close");
        assert_eq!(l("1960-03-05", "1971-08-21"), "far");
        assert_eq!(
            DATE_LEVELS[compare_date(None, date("1960-03-05")) as usize],
            "missing"
        );
        assert_eq!(swap_day_month(date("1960-03-03").unwrap_or_default()), None);
        assert_eq!(swap_day_month(date("1960-03-13").unwrap_or_default()), None);
    }

    #[test]
    fn sex_and_region_levels() {
        assert_eq!(compare_sex(Some(Sex::Male), Some(Sex::Male)), 0);
        assert_eq!(compare_sex(Some(Sex::Male), Some(Sex::Female)), 1);
        assert_eq!(compare_sex(None, Some(Sex::Female)), 2);
        let r =
            |a: &str, b: &str| REGION_LEVELS[compare_region(a.as_bytes(), b.as_bytes()) as usize];
        assert_eq!(r("341502001001", "341502001001"), "village");
        assert_eq!(r("341502001002", "341502001001"), "township");
        assert_eq!(r("341502002001", "341502001001"), "county");
        assert_eq!(r("341502", "341502001001"), "county");
        assert_eq!(r("341503001001", "341502001001"), "other");
        assert_eq!(r("", "341502001001"), "missing");
    }
}
