//! Cell text to typed values: transforms (trim, full-width to half-width, …) and exact parsers for
//! dates, months, money and numbers. Errors say what is wrong in words, never quoting the value.

use chrono::format::ParseErrorKind;
use chrono::{NaiveDate, NaiveDateTime, NaiveTime};
use doudi_model::Money;
use serde::Deserialize;

/// A change applied to a cell's text before it is mapped or parsed. Leading and trailing white
/// space (full-width spaces included) is always trimmed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Transform {
    /// Full-width letters, digits and signs (ＡＢＣ１２３，．) to their half-width forms.
    Halfwidth,
    Upper,
    Lower,
    /// Remove every space inside the text (names typed `王 秀英`).
    NoSpaces,
}

/// Full-width ASCII variants (U+FF01–U+FF5E) and the ideographic space to half-width.
pub fn halfwidth(s: &str) -> String {
    s.chars()
        .map(|c| match c {
            '\u{FF01}'..='\u{FF5E}' => char::from_u32(c as u32 - 0xFEE0).unwrap_or(c),
            '\u{3000}' => ' ',
            _ => c,
        })
        .collect()
}

/// Trim white space, including the ideographic space and a BOM left at a cell's start.
pub fn trim(s: &str) -> &str {
    s.trim_matches(|c: char| c.is_whitespace() || c == '\u{FEFF}')
}

pub fn apply(s: &str, transforms: &[Transform]) -> String {
    let mut t = trim(s).to_string();
    for tr in transforms {
        t = match tr {
            Transform::Halfwidth => halfwidth(&t),
            Transform::Upper => t.to_uppercase(),
            Transform::Lower => t.to_lowercase(),
            Transform::NoSpaces => t.chars().filter(|c| !c.is_whitespace()).collect(),
        };
    }
    t
}

pub const DEFAULT_DATE_FORMATS: &[&str] =
    &["%Y-%m-%d", "%Y/%m/%d", "%Y%m%d", "%Y.%m.%d", "%Y年%m月%d日"];
pub const DEFAULT_DATETIME_FORMATS: &[&str] = &[
    "%Y-%m-%d %H:%M:%S",
    "%Y/%m/%d %H:%M:%S",
    "%Y-%m-%dT%H:%M:%S",
    "%Y%m%d%H%M%S",
    "%Y-%m-%d %H:%M",
    "%Y/%m/%d %H:%M",
];
pub const DEFAULT_MONTH_FORMATS: &[&str] = &["%Y-%m", "%Y%m", "%Y/%m", "%Y年%m月", "%Y.%m"];

/// A date written in one of `formats` (chrono `strftime` patterns; `%m` and `%d` take one or two
/// digits, so `%Y/%m/%d` reads `2026/3/1`). A date-and-time in ISO form, as an Excel date cell is
/// read, is taken too. `2026-02-30` is refused as not a real calendar date.
pub fn parse_date(s: &str, formats: &[String]) -> Result<NaiveDate, String> {
    let out_of_range = match first_format(s, formats, NaiveDate::parse_from_str) {
        Ok(d) => return Ok(d),
        Err(out_of_range) => out_of_range,
    };
    if let Ok(dt) = NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S") {
        return Ok(dt.date());
    }
    if out_of_range || impossible_date(s) {
        Err("not a real calendar date".into())
    } else {
        Err(format!("not a date written {}", shapes(formats)))
    }
}

/// A date and time in one of `formats`; a plain date (one of `date_formats`) is taken at `time`.
pub fn parse_datetime(
    s: &str,
    formats: &[String],
    date_formats: &[String],
    time: NaiveTime,
) -> Result<NaiveDateTime, String> {
    let out_of_range = match first_format(s, formats, NaiveDateTime::parse_from_str) {
        Ok(d) => return Ok(d),
        Err(out_of_range) => out_of_range,
    };
    match parse_date(s, date_formats) {
        Ok(d) => Ok(d.and_time(time)),
        Err(e) if out_of_range || e.starts_with("not a real") => {
            Err("not a real calendar date and time".into())
        }
        Err(_) => Err(format!(
            "not a date and time written {} (or a date written {})",
            shapes(formats),
            shapes(date_formats)
        )),
    }
}

/// `s` read with the first of `formats` that `parse` takes it in; else whether one of them found
/// a value out of range (a day or month that does not exist, not a shape that does not fit).
fn first_format<T>(
    s: &str,
    formats: &[String],
    parse: impl Fn(&str, &str) -> chrono::ParseResult<T>,
) -> Result<T, bool> {
    let mut out_of_range = false;
    for f in formats {
        match parse(s, f) {
            Ok(v) => return Ok(v),
            Err(e) if e.kind() == ParseErrorKind::OutOfRange => out_of_range = true,
            Err(_) => {}
        }
    }
    Err(out_of_range)
}

/// A month (`YYYY-MM` in the event) written in one of `formats`.
pub fn parse_month(s: &str, formats: &[String]) -> Result<String, String> {
    let with_day = format!("{s}|1");
    for f in formats {
        if let Ok(d) = NaiveDate::parse_from_str(&with_day, &format!("{f}|%d")) {
            return Ok(d.format("%Y-%m").to_string());
        }
    }
    Err(format!("not a month written {}", shapes(formats)))
}

/// Digits that look like a date with an impossible day or month (`2026-02-30`, `20261301`): told
/// apart from text in another format, so that the message says which is wrong.
fn impossible_date(s: &str) -> bool {
    let digits: Vec<u32> = s
        .split(|c: char| !c.is_ascii_digit())
        .filter(|p| !p.is_empty())
        .filter_map(|p| p.parse().ok())
        .collect();
    let (y, m, d) = match digits.as_slice() {
        [y, m, d] => (*y, *m, *d),
        [ymd] if s.trim().len() == 8 => (ymd / 10_000, ymd / 100 % 100, ymd % 100),
        _ => return false,
    };
    (1000..=9999).contains(&y) && NaiveDate::from_ymd_opt(y as i32, m, d).is_none()
}

/// Formats as a clerk reads them: `%Y/%m/%d` → `YYYY/M/D`.
pub fn shapes(formats: &[String]) -> String {
    formats
        .iter()
        .map(|f| {
            f.replace("%Y", "YYYY")
                .replace("%m", "MM")
                .replace("%d", "DD")
                .replace("%H", "hh")
                .replace("%M", "mm")
                .replace("%S", "ss")
        })
        .collect::<Vec<_>>()
        .join(" or ")
}

/// How amounts are written in an export.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Unit {
    /// Yuan with at most two decimals (`1234.5`, `1,234.50`, `￥1234.50`).
    #[default]
    Yuan,
    /// Whole fen.
    Fen,
    /// 万元 (ten thousand yuan) with at most six decimals, as disaster loss tables write them.
    WanYuan,
}

/// An exact amount: no binary floating point anywhere. Thousands separators and a leading
/// currency sign are accepted; a third decimal of yuan is refused.
pub fn parse_money(s: &str, unit: Unit) -> Result<Money, String> {
    let t: String = s
        .trim_start_matches(['¥', '￥'])
        .chars()
        .filter(|c| *c != ',')
        .collect();
    let scale = match unit {
        Unit::Fen => 0,
        Unit::Yuan => 2,
        Unit::WanYuan => 6,
    };
    let (whole, frac) = t.split_once('.').unwrap_or((&t, ""));
    if t.starts_with('-') {
        return Err("is negative; amounts must be zero or more".into());
    }
    let digits = |p: &str| p.bytes().all(|b| b.is_ascii_digit());
    if whole.is_empty() || !digits(whole) || !digits(frac) || (t.contains('.') && frac.is_empty()) {
        return Err(match unit {
            Unit::Fen => "not a whole number of fen".into(),
            Unit::Yuan => "not an amount of yuan like 961 or 961.50".into(),
            Unit::WanYuan => "not an amount of 万元 like 1.25".into(),
        });
    }
    if frac.len() > scale {
        return Err(match unit {
            Unit::Fen => "not a whole number of fen".into(),
            Unit::Yuan => {
                "has more than two decimals (fen is the smallest unit); the export is wrong, or the column is not in yuan"
                    .into()
            }
            Unit::WanYuan => "has more than six decimals of 万元 (finer than a fen)".into(),
        });
    }
    let text = format!("{whole}{frac:0<scale$}");
    let text = text.trim_start_matches('0');
    let fen: i64 = if text.is_empty() {
        0
    } else {
        text.parse().map_err(|_| "is too large".to_string())?
    };
    Ok(Money::from_fen(fen))
}

/// A whole number, zero or more.
pub fn parse_integer(s: &str) -> Result<u64, String> {
    let t = s.strip_suffix(".0").unwrap_or(s);
    if t.is_empty() || !t.bytes().all(|b| b.is_ascii_digit()) {
        return Err("not a whole number".into());
    }
    t.parse().map_err(|_| "is too large".into())
}

/// Yes or no, as departments write it (是/否, Y/N, 1/0, true/false).
pub fn parse_bool(s: &str) -> Result<bool, String> {
    match s.to_lowercase().as_str() {
        "是" | "y" | "yes" | "1" | "true" | "t" | "有" => Ok(true),
        "否" | "n" | "no" | "0" | "false" | "f" | "无" => Ok(false),
        _ => Err("not yes or no (是/否, Y/N, 1/0, true/false); add a map for this column".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn owned(f: &[&str]) -> Vec<String> {
        f.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn dates_in_the_shapes_departments_write() {
        let f = owned(DEFAULT_DATE_FORMATS);
        let d = NaiveDate::from_ymd_opt(2026, 3, 1);
        for s in [
            "2026-03-01",
            "2026/3/1",
            "20260301",
            "2026.3.1",
            "2026年3月1日",
            "2026-03-01 00:00:00",
        ] {
            assert_eq!(parse_date(s, &f).ok(), d, "{s}");
        }
        assert_eq!(
            parse_date("2026-02-30", &f).unwrap_err(),
            "not a real calendar date"
        );
        assert_eq!(
            parse_date("20261301", &f).unwrap_err(),
            "not a real calendar date"
        );
        let other = parse_date("3/1/2026", &f).unwrap_err();
        assert!(
            other.starts_with("not a date written YYYY-MM-DD"),
            "{other}"
        );
        assert!(!other.contains("3/1/2026"));
    }

    #[test]
    fn months_and_datetimes() {
        let m = owned(DEFAULT_MONTH_FORMATS);
        assert_eq!(parse_month("202602", &m).as_deref(), Ok("2026-02"));
        assert_eq!(parse_month("2026年2月", &m).as_deref(), Ok("2026-02"));
        assert!(parse_month("202613", &m).is_err());
        let dt = parse_datetime(
            "2026/3/1 8:05:09",
            &owned(DEFAULT_DATETIME_FORMATS),
            &owned(DEFAULT_DATE_FORMATS),
            NaiveTime::MIN,
        );
        assert_eq!(
            dt.map(|d| d.to_string()).as_deref(),
            Ok("2026-03-01 08:05:09")
        );
        let date_only = parse_datetime(
            "20260301",
            &owned(DEFAULT_DATETIME_FORMATS),
            &owned(DEFAULT_DATE_FORMATS),
            NaiveTime::from_hms_opt(12, 0, 0).unwrap_or(NaiveTime::MIN),
        );
        assert_eq!(
            date_only.map(|d| d.to_string()).as_deref(),
            Ok("2026-03-01 12:00:00")
        );
    }

    #[test]
    fn money_is_exact_and_a_third_decimal_of_yuan_is_refused() {
        let y = |s| parse_money(s, Unit::Yuan).map(Money::fen);
        assert_eq!(y("1234.5"), Ok(123_450));
        assert_eq!(y("1,234.56"), Ok(123_456));
        assert_eq!(y("￥0.07"), Ok(7));
        assert_eq!(y("961"), Ok(96_100));
        assert_eq!(y("0"), Ok(0));
        assert!(y("12.345").unwrap_err().contains("more than two decimals"));
        assert!(y("-3").unwrap_err().contains("negative"));
        assert!(y("12.").is_err());
        assert!(y("abc").is_err());
        assert!(y("99999999999999999999").unwrap_err().contains("too large"));
        assert_eq!(
            parse_money("1.2345", Unit::WanYuan).map(Money::fen),
            Ok(1_234_500)
        );
        assert_eq!(parse_money("120", Unit::Fen).map(Money::fen), Ok(120));
        assert!(parse_money("1.5", Unit::Fen).is_err());
    }

    #[test]
    fn transforms() {
        assert_eq!(
            apply(
                "\u{3000}３４１５２３ｘ ",
                &[Transform::Halfwidth, Transform::Upper]
            ),
            "341523X"
        );
        assert_eq!(apply(" 王 秀英 ", &[Transform::NoSpaces]), "王秀英");
        assert_eq!(parse_bool("是"), Ok(true));
        assert_eq!(parse_integer("42"), Ok(42));
        assert!(parse_integer("4.5").is_err());
    }
}
