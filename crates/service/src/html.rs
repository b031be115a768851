//! HTML for the pages: escaping, the two languages (Chinese first, English with `?lang=en` or the
//! `doudi_lang` cookie), the page frame, error pages (an error as a page or as JSON, for the
//! guard), and small pieces (levels, statuses, times, time left).

use std::fmt::Write;

use axum::extract::Request;
use axum::http::header::{COOKIE, SET_COOKIE};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use doudi_model::{Level, WarningStatus};

use crate::error::ApiError;
use crate::principal::Principal;
use crate::Kind;

/// The value of cookie `name`, if sent.
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// A page as a response: its status, the language cookie when the language was chosen, and a
/// content security policy that allows no script.
pub fn html_response(status: StatusCode, lang: Lang, set_lang: bool, body: String) -> Response {
    let mut r = (
        status,
        [(axum::http::header::CONTENT_TYPE, "text/html; charset=utf-8")],
        body,
    )
        .into_response();
    if set_lang {
        if let Ok(v) = HeaderValue::from_str(&format!(
            "{LANG_COOKIE}={}; Path=/; SameSite=Strict; Max-Age=31536000",
            lang.code()
        )) {
            r.headers_mut().append(SET_COOKIE, v);
        }
    }
    r.headers_mut().insert(
        "content-security-policy",
        HeaderValue::from_static("default-src 'none'; style-src 'unsafe-inline'; img-src 'self'; form-action 'self'; frame-ancestors 'none'"),
    );
    r
}

/// An error as a page (pages) or as JSON (API), for the guard.
pub fn error_page_or_json(kind: Kind, req: &Request, e: ApiError) -> Response {
    match kind {
        Kind::Page => {
            let (lang, _) = Lang::pick(None, req.headers());
            error_page(lang, None, req.uri().path(), &e)
        }
        _ => e.into_response(),
    }
}

pub fn error_page(lang: Lang, who: Option<&Principal>, path: &str, e: &ApiError) -> Response {
    let body = format!(
        "<p class=\"err\">{}</p><p><a href=\"/\">{}</a></p>",
        esc(&e.to_string()),
        lang.t("返回待办预警", "Back to the inbox")
    );
    html_response(
        e.status(),
        lang,
        false,
        page(
            lang,
            &format!("{} {}", e.status().as_u16(), lang.t("无法完成", "Refused")),
            who,
            path,
            &body,
        ),
    )
}

/// Escape text for HTML content and attribute values.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// The language of a page.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lang {
    Zh,
    En,
}

/// The cookie remembering the language.
pub const LANG_COOKIE: &str = "doudi_lang";

impl Lang {
    /// From `?lang=` (wins) or the cookie; Chinese by default. Also says whether `?lang=` was
    /// given (then the cookie is set).
    pub fn pick(query_lang: Option<&str>, headers: &HeaderMap) -> (Lang, bool) {
        let parse = |s: &str| match s {
            "en" => Some(Lang::En),
            "zh" => Some(Lang::Zh),
            _ => None,
        };
        if let Some(l) = query_lang.and_then(parse) {
            return (l, true);
        }
        (
            cookie(headers, LANG_COOKIE)
                .and_then(parse)
                .unwrap_or(Lang::Zh),
            false,
        )
    }

    pub fn code(self) -> &'static str {
        match self {
            Lang::Zh => "zh",
            Lang::En => "en",
        }
    }

    /// The text in this language.
    pub fn t<'a>(self, zh: &'a str, en: &'a str) -> &'a str {
        match self {
            Lang::Zh => zh,
            Lang::En => en,
        }
    }

    fn other(self) -> Lang {
        match self {
            Lang::Zh => Lang::En,
            Lang::En => Lang::Zh,
        }
    }
}

const STYLE: &str = "body{font-family:system-ui,'Noto Sans CJK SC',sans-serif;margin:0;color:#222}\
header{background:#8b1a1a;color:#fff;padding:.6em 1em;display:flex;gap:1.2em;align-items:center;flex-wrap:wrap}\
header a{color:#fff}header form{margin:0}main{padding:1em;max-width:72em}\
table{border-collapse:collapse;width:100%}td,th{border-bottom:1px solid #ddd;padding:.35em .5em;text-align:left;vertical-align:top}\
.red{background:#c62828;color:#fff}.orange{background:#ef6c00;color:#fff}.yellow{background:#f9a825}\
.lvl{padding:.1em .5em;border-radius:.3em;font-weight:bold}.overdue{color:#c62828;font-weight:bold}\
.msg{background:#e8f5e9;padding:.5em}.err{background:#ffebee;padding:.5em}\
form.act{border:1px solid #ccc;padding:.6em;margin:.6em 0}textarea{width:100%}small{color:#666}";

/// A whole page: head, header (who is signed in, links, language switch, sign-out) and `body`.
pub fn page(lang: Lang, title: &str, who: Option<&Principal>, path: &str, body: &str) -> String {
    let mut h = String::with_capacity(body.len() + 2048);
    let _ = write!(
        h,
        "<!DOCTYPE html><html lang=\"{}\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width\"><title>{} · 兜底 doudi</title><style>{STYLE}</style></head><body><header><strong>兜底 doudi</strong>",
        if lang == Lang::Zh { "zh-CN" } else { "en" },
        esc(title)
    );
    if let Some(p) = who {
        let _ = write!(
            h,
            "<a href=\"/\">{}</a><a href=\"/regions/{}\">{}</a><span>{} · {} {}</span><form method=\"post\" action=\"/sign-out\"><input type=\"hidden\" name=\"csrf\" value=\"{}\"><button type=\"submit\">{}</button></form>",
            lang.t("待办预警", "Inbox"),
            esc(if p.region.is_empty() { "34" } else { &p.region }),
            lang.t("辖区概览", "Region overview"),
            esc(&p.actor()),
            esc(p.role.code()),
            esc(&p.region),
            esc(&p.form_token),
            lang.t("退出", "Sign out"),
        );
    }
    let other = lang.other();
    let _ = write!(
        h,
        "<a href=\"{}?lang={}\">{}</a></header><main><h1>{}</h1>{body}</main></body></html>",
        esc(path),
        other.code(),
        lang.t("English", "中文"),
        esc(title)
    );
    h
}

/// A level as a coloured label.
pub fn level(lang: Lang, level: Level) -> String {
    let name = match level {
        Level::Red => lang.t("红色", "red"),
        Level::Orange => lang.t("橙色", "orange"),
        Level::Yellow => lang.t("黄色", "yellow"),
        Level::None => "none",
    };
    format!("<span class=\"lvl {}\">{}</span>", level.code(), esc(name))
}

/// A status in words.
pub fn status(lang: Lang, status: WarningStatus) -> String {
    esc(match status {
        WarningStatus::Open => lang.t("待签收", "open"),
        WarningStatus::Acknowledged => lang.t("已签收", "acknowledged"),
        WarningStatus::Visited => lang.t("已入户核查", "visited"),
        WarningStatus::Resolved => lang.t("已办结", "resolved"),
        WarningStatus::Withdrawn => lang.t("已撤回", "withdrawn"),
    })
}

/// A time as stored (`2026-03-01T00:00:00.000000Z`), escaped.
pub fn time(t: &DateTime<Utc>) -> String {
    esc(&doudi_store::ts(t))
}

/// Time left until `deadline`, counted from now, as an officer reads it.
pub fn time_left(lang: Lang, deadline: &DateTime<Utc>) -> String {
    let left = *deadline - chrono::Utc::now();
    let minutes = left.num_minutes();
    let (h, m) = (minutes.abs() / 60, minutes.abs() % 60);
    let (days, hours) = (h / 24, h % 24);
    let span = match lang {
        Lang::Zh if days > 0 => format!("{days}天{hours}小时"),
        Lang::Zh => format!("{h}小时{m}分"),
        Lang::En if days > 0 => format!("{days} d {hours} h"),
        Lang::En => format!("{h} h {m} min"),
    };
    if minutes < 0 {
        format!(
            "<span class=\"overdue\">{}</span>",
            esc(&match lang {
                Lang::Zh => format!("已超期 {span}"),
                Lang::En => format!("overdue by {span}"),
            })
        )
    } else {
        esc(&match lang {
            Lang::Zh => format!("剩余 {span}"),
            Lang::En => format!("{span} left"),
        })
    }
}

/// A category code in words.
pub fn category(lang: Lang, code: &str) -> String {
    match doudi_model::Category::from_code(code) {
        Some(c) if lang == Lang::Zh => c.name_zh().to_string(),
        _ => code.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markup_in_text_is_escaped() {
        assert_eq!(
            esc("<script>alert('x')</script>&\""),
            "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;&amp;&quot;"
        );
        let p = page(Lang::En, "<b>", None, "/", "");
        assert!(p.contains("<h1>&lt;b&gt;</h1>"), "{p}");
    }

    #[test]
    fn the_time_left_counts_down_and_says_when_overdue() {
        let soon = chrono::Utc::now() + chrono::TimeDelta::minutes(150);
        let t = time_left(Lang::En, &soon);
        assert!(t.starts_with("2 h") && t.ends_with("left"), "{t}");
        let past = chrono::Utc::now() - chrono::TimeDelta::hours(50);
        assert!(time_left(Lang::Zh, &past).contains("已超期 2天"));
    }
}
