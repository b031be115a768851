//! The command line's language: Chinese by default, English with `--lang en` or `DOUDI_LANG=en`.
//! Chosen once at start ([`set`]); every line for people goes through [`t`] or [`tr!`]. The
//! domain words (levels, statuses, relations, categories, dispositions, kinds, sources, actions)
//! are the pages' own, from `doudi_service::Lang`, so a warning reads the same on a phone and in a
//! terminal. Machine output (JSON, CSV, codes, metric names, config keys) never changes.

use std::sync::OnceLock;

pub use doudi_service::{move_error, yuan, Lang};

static LANG: OnceLock<Lang> = OnceLock::new();
static ZONE: OnceLock<chrono_tz::Tz> = OnceLock::new();

/// Fix the locality's time zone (`locality.time_zone`) for the rest of the process (the first
/// call wins; Asia/Shanghai until then).
pub fn set_zone(zone: chrono_tz::Tz) {
    let _ = ZONE.set(zone);
}

fn clock() -> doudi_service::Clock {
    let zone = ZONE.get().copied().unwrap_or(chrono_tz::Asia::Shanghai);
    doudi_service::Clock::new(zone, chrono::Utc::now(), lang())
}

/// A stored time for people. In Chinese: in the locality's zone, to the minute, with how long ago
/// or ahead (`2026-12-08 09:30（3 小时后）`), as the pages show it. In English: the store's own
/// UTC text (`2026-12-08T01:30:00.000000Z`), which scripts and operators' tools read.
pub fn when<Tz: chrono::TimeZone>(t: &chrono::DateTime<Tz>) -> String {
    let t = t.with_timezone(&chrono::Utc);
    match lang() {
        Lang::Zh => {
            let c = clock();
            format!("{}（{}）", c.at(&t), c.relative(&t))
        }
        Lang::En => doudi_store::ts(&t),
    }
}

/// A deadline for people: as [`when`], with the time left or overdue in Chinese
/// (`2026-12-08 09:30（3 小时后到期）`, `…（已超期 2 天）`).
pub fn due<Tz: chrono::TimeZone>(t: &chrono::DateTime<Tz>) -> String {
    let t = t.with_timezone(&chrono::Utc);
    match lang() {
        Lang::Zh => {
            let c = clock();
            format!("{}（{}）", c.at(&t), c.due(&t).0)
        }
        Lang::En => doudi_store::ts(&t),
    }
}

/// The language of `--lang` / `DOUDI_LANG` (`zh`, `zh-CN`, `en`, `en_US.UTF-8`, …); `None` for
/// anything else.
pub fn parse(s: &str) -> Option<Lang> {
    let s = s.trim().to_ascii_lowercase();
    if s.starts_with("zh") {
        Some(Lang::Zh)
    } else if s.starts_with("en") {
        Some(Lang::En)
    } else {
        None
    }
}

/// Fix the language for the rest of the process (the first call wins).
pub fn set(lang: Lang) {
    let _ = LANG.set(lang);
}

/// The language in force: as [`set`], else `DOUDI_LANG`, else Chinese (English in this crate's
/// unit tests, which check the English texts).
pub fn lang() -> Lang {
    *LANG.get_or_init(|| {
        let default = if cfg!(test) { Lang::En } else { Lang::Zh };
        std::env::var("DOUDI_LANG")
            .ok()
            .and_then(|v| parse(&v))
            .unwrap_or(default)
    })
}

/// The text in the language in force.
pub fn t(zh: &'static str, en: &'static str) -> &'static str {
    lang().t(zh, en)
}

/// `format!` in the language in force: `tr!("读取 {n} 条", "read {n}")`. Both texts take the same
/// arguments.
#[macro_export]
macro_rules! tr {
    ($zh:literal, $en:literal $(,)?) => {
        match $crate::lang::lang() {
            $crate::lang::Lang::Zh => format!($zh),
            $crate::lang::Lang::En => format!($en),
        }
    };
    ($zh:literal, $en:literal, $($arg:tt)*) => {
        match $crate::lang::lang() {
            $crate::lang::Lang::Zh => format!($zh, $($arg)*),
            $crate::lang::Lang::En => format!($en, $($arg)*),
        }
    };
}

/// `println!` of [`tr!`].
#[macro_export]
macro_rules! say {
    ($($arg:tt)*) => { println!("{}", $crate::tr!($($arg)*)) };
}

/// An `error: …` line on stderr (`错误：…` in Chinese) of [`tr!`].
#[macro_export]
macro_rules! complain {
    ($($arg:tt)*) => { eprintln!("{}{}", $crate::lang::error_lead(), $crate::tr!($($arg)*)) };
}

/// The lead of an error line: `错误：` or `error: `.
pub fn error_lead() -> &'static str {
    t("错误：", "error: ")
}

/// An error with its causes, as the binary prints it: `错误：无法使用数据库 …：cause` in Chinese,
/// `error: cannot use the database …: cause` in English.
pub fn error_chain(e: &anyhow::Error) -> String {
    let sep = t("：", ": ");
    let parts: Vec<String> = e.chain().map(|c| c.to_string()).collect();
    format!("{}{}", error_lead(), parts.join(sep))
}

/// Who is responsible, or that nobody is (`（无责任人）` / `(unassigned)`).
pub fn assignee(who: Option<&str>) -> &str {
    who.unwrap_or(t("（无责任人）", "(unassigned)"))
}

/// A level's name (`红色` / `red`); `无` / `none` for none.
pub fn level(l: doudi_model::Level) -> &'static str {
    lang().level(l)
}

/// A warning status's name (`待签收` / `open`).
pub fn status(s: doudi_model::WarningStatus) -> &'static str {
    lang().status(s)
}

/// A status given as its code, in words (the code itself when unknown).
pub fn status_code(code: &str) -> String {
    doudi_model::WarningStatus::from_code(code)
        .map(status)
        .unwrap_or(code)
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_switch_reads_locale_like_values() {
        assert_eq!(parse("zh"), Some(Lang::Zh));
        assert_eq!(parse("zh_CN.UTF-8"), Some(Lang::Zh));
        assert_eq!(parse("EN"), Some(Lang::En));
        assert_eq!(parse("en-GB"), Some(Lang::En));
        assert_eq!(parse("fr"), None);
    }

    #[test]
    fn an_error_chain_joins_its_causes() {
        let e = anyhow::anyhow!("detail").context("lead");
        let s = error_chain(&e);
        assert!(
            s.ends_with("lead: detail") || s.ends_with("lead：detail"),
            "{s}"
        );
    }
}
