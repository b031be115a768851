//! Typing noise on event subjects, as it appears in records keyed by hand in other offices.

use chrono::{Datelike, NaiveDate};
use rand::Rng;
use rand_chacha::ChaCha8Rng;

use doudi_model::{IdNumber, RegionCode, Sex, Subject};

use crate::names;
use crate::Noise;

/// Noise labels as written in `truth/events.jsonl`.
pub const WRONG_DIGIT: &str = "wrong_digit";
pub const SWAPPED_DIGITS: &str = "swapped_digits";
pub const LEGACY_15: &str = "legacy_15";
pub const MISSING_ID: &str = "missing_id";
pub const HOMOPHONE_NAME: &str = "homophone_name";
pub const TRADITIONAL_NAME: &str = "traditional_name";
pub const SWAPPED_BIRTH_DATE: &str = "swapped_birth_date";
/// The event is about a person not in the register.
pub const OUTSIDER: &str = "outsider";

/// Every label, in the order they are listed on an event.
pub const ALL_LABELS: [&str; 8] = [
    WRONG_DIGIT,
    SWAPPED_DIGITS,
    LEGACY_15,
    MISSING_ID,
    HOMOPHONE_NAME,
    TRADITIONAL_NAME,
    SWAPPED_BIRTH_DATE,
    OUTSIDER,
];

/// One of the first 17 digits replaced by another digit: the check character no longer fits.
fn wrong_digit(rng: &mut ChaCha8Rng, id: &str) -> String {
    let mut b = id.as_bytes().to_vec();
    let pos = rng.gen_range(0..17);
    let old = b[pos].wrapping_sub(b'0');
    let mut d = rng.gen_range(0..9u8);
    if d >= old {
        d += 1;
    }
    b[pos] = b'0' + d.min(9);
    String::from_utf8(b).unwrap_or_else(|_| id.to_string())
}

/// Two adjacent, different digits among the first 17 swapped (always caught by the check, since
/// adjacent weights differ and 11 is prime). `None` if no adjacent pair differs.
fn swapped_digits(rng: &mut ChaCha8Rng, id: &str) -> Option<String> {
    let mut b = id.as_bytes().to_vec();
    let pairs: Vec<usize> = (0..16).filter(|&i| b[i] != b[i + 1]).collect();
    if pairs.is_empty() {
        return None;
    }
    let i = pairs[rng.gen_range(0..pairs.len())];
    b.swap(i, i + 1);
    String::from_utf8(b).ok()
}

/// The date with day and month exchanged, where that is a real, different date.
fn swap_day_month(d: NaiveDate) -> Option<NaiveDate> {
    if d.day() == d.month() || d.day() > 12 {
        return None;
    }
    NaiveDate::from_ymd_opt(d.year(), d.day(), d.month())
}

/// The legacy 15-digit form: century and check character dropped (born 1900–1999 only).
fn legacy_15(id: &str, birth: NaiveDate) -> Option<String> {
    if !(1900..=1999).contains(&birth.year()) || id.len() != 18 {
        return None;
    }
    Some(format!("{}{}", &id[..6], &id[8..17]))
}

/// The person as the register (or the generator) knows them.
pub(crate) struct Truth<'a> {
    pub id: &'a IdNumber,
    pub name: &'a str,
    pub birth: NaiveDate,
    pub sex: Sex,
    pub region: Option<&'a RegionCode>,
}

/// The subject as typed by the sending office, with the noise applied listed in `labels`.
pub(crate) fn subject(
    rng: &mut ChaCha8Rng,
    t: &Truth,
    noise: &Noise,
    labels: &mut Vec<&'static str>,
) -> Subject {
    let full = t.id.expose();
    let u: f64 = rng.gen();
    let t1 = noise.wrong_digit;
    let t2 = t1 + noise.swapped_digits;
    let t3 = t2 + noise.legacy_15;
    let t4 = t3 + noise.missing_id;
    let id_number = if u < t1 {
        labels.push(WRONG_DIGIT);
        Some(wrong_digit(rng, full))
    } else if u < t2 {
        match swapped_digits(rng, full) {
            Some(s) => {
                labels.push(SWAPPED_DIGITS);
                Some(s)
            }
            None => Some(full.to_string()),
        }
    } else if u < t3 {
        match legacy_15(full, t.birth) {
            Some(s) => {
                labels.push(LEGACY_15);
                Some(s)
            }
            None => Some(full.to_string()),
        }
    } else if u < t4 {
        labels.push(MISSING_ID);
        None
    } else {
        Some(full.to_string())
    };

    let mut name = t.name.to_string();
    if rng.gen::<f64>() < noise.homophone_name {
        if let Some(n) = names::homophone(rng, &name) {
            name = n;
            labels.push(HOMOPHONE_NAME);
        }
    }
    if rng.gen::<f64>() < noise.traditional_name {
        if let Some(n) = names::traditional(&name) {
            name = n;
            labels.push(TRADITIONAL_NAME);
        }
    }

    // Which fields the office filled in: usually all of them. Without an ID number, the others
    // are always there (otherwise nobody could ever find the person).
    let all = id_number.is_none() || rng.gen_bool(0.8);
    let mut has = |p: f64| all || rng.gen_bool(p);
    let with_name = has(0.97);
    let with_birth = has(0.6);
    let with_sex = has(0.6);
    let with_region = has(0.5);
    // A second uniform from the low bits of `u`: no draw, so the stream (and every other field of
    // the dataset) is the same whatever the rate.
    let u2 = (u * 1_048_576.0).fract();
    let mut birth = t.birth;
    if with_birth && u2 < noise.swapped_birth_date.clamp(0.0, 1.0) {
        if let Some(s) = swap_day_month(t.birth) {
            birth = s;
            labels.push(SWAPPED_BIRTH_DATE);
        }
    }
    Subject {
        id_number,
        name: with_name.then_some(name),
        birth_date: with_birth.then_some(birth),
        sex: with_sex.then_some(t.sex),
        region_code: if with_region { t.region.cloned() } else { None },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn corrupted_numbers_fail_the_check_and_legacy_ones_upgrade() {
        let mut rng = ChaCha8Rng::seed_from_u64(9);
        let birth = NaiveDate::from_ymd_opt(1958, 3, 7).unwrap();
        let id = IdNumber::from_parts("341502", birth, 123).unwrap();
        for _ in 0..500 {
            let w = wrong_digit(&mut rng, id.expose());
            assert_ne!(w, id.expose());
            assert!(IdNumber::parse(&w).is_err(), "{w}");
            let s = swapped_digits(&mut rng, id.expose()).unwrap();
            assert_ne!(s, id.expose());
            assert!(IdNumber::parse(&s).is_err(), "{s}");
        }
        let l = legacy_15(id.expose(), birth).unwrap();
        assert_eq!(l.len(), 15);
        assert_eq!(IdNumber::parse(&l).unwrap(), id);
        assert_eq!(swap_day_month(birth), NaiveDate::from_ymd_opt(1958, 7, 3));
        assert_eq!(
            swap_day_month(NaiveDate::from_ymd_opt(1958, 3, 17).unwrap()),
            None
        );
        let young = NaiveDate::from_ymd_opt(2003, 3, 7).unwrap();
        let id2 = IdNumber::from_parts("341502", young, 124).unwrap();
        assert_eq!(legacy_15(id2.expose(), young), None);
    }
}
