//! HTML for the pages: compile-time templates ([`maud`]: every value inserted is escaped unless
//! marked otherwise), one base layout ([`layout`]: `lang`, title, viewport, the header with the
//! language switch, one `main` landmark with the page's `h1`, a small inline stylesheet —
//! mobile-first, print styles, accessible colours — and no JavaScript), error pages (an error as a
//! page or as JSON, for the guard) and small pieces (level badges, times).

use axum::extract::Request;
use axum::http::header::SET_COOKIE;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use doudi_model::Level;
use maud::{html, Markup, PreEscaped, DOCTYPE};

use crate::error::ApiError;
pub use crate::locale::{cookie, Clock, Lang, LANG_COOKIE};
use crate::principal::Principal;
use crate::Kind;

/// A page as a response: its status, the language cookie when the language was chosen, and a
/// content security policy that allows no script.
pub fn html_response(status: StatusCode, lang: Lang, set_lang: bool, body: Markup) -> Response {
    let mut r = (
        status,
        [(axum::http::header::CONTENT_TYPE, "text/html; charset=utf-8")],
        body.into_string(),
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

/// An error as a page: what went wrong in the page's language, and the way back.
pub fn error_page(lang: Lang, who: Option<&Principal>, path: &str, e: &ApiError) -> Response {
    let body = html! {
        p.err role="alert" { (crate::error::api_error(lang, e)) }
        p { a href="/" { (lang.t("返回待办预警", "Back to the inbox")) } }
    };
    html_response(
        e.status(),
        lang,
        false,
        layout(lang, lang.t("无法完成", "Refused"), who, path, body),
    )
}

/// The stylesheet of every page: mobile first (one column, nothing wider than the screen), wider
/// margins on a desktop, print styles that leave the record alone; colours of at least 4.5:1.
const STYLE: &str = "*{box-sizing:border-box}\
html{-webkit-text-size-adjust:100%}\
body{font-family:system-ui,'WenQuanYi Micro Hei','Noto Sans CJK SC',sans-serif;margin:0;color:#1a1a1a;background:#fafafa;line-height:1.5;overflow-wrap:anywhere}\
header{background:#7a1616;color:#fff;padding:.5em .8em;display:flex;flex-wrap:wrap;gap:.3em 1em;align-items:center}\
header a{color:#fff}header form{margin:0}header strong{font-size:1.1em}\
header button{background:transparent;color:#fff;border:1px solid #fff;border-radius:.3em;padding:.1em .6em;font:inherit;cursor:pointer}\
main{padding:.8em;max-width:60em;margin:0 auto}\
h1{font-size:1.35em;margin:.2em 0 .6em}h2{font-size:1.1em;margin:1.3em 0 .4em}h3{font-size:1em;margin:.2em 0}\
a{color:#0b4f9c}code{font-family:inherit}\
.card{background:#fff;border:1px solid #ccc;border-left:.45em solid #767676;border-radius:.4em;padding:.6em .8em;margin:.6em 0}\
.card.red{border-left-color:#b71c1c}.card.orange{border-left-color:#a84300}.card.yellow{border-left-color:#c9a400}\
.card p{margin:.2em 0}.card h3 a{text-decoration:none}\
.lvl{display:inline-block;padding:0 .5em;border-radius:.3em;font-weight:bold;white-space:nowrap}\
.lvl.red{background:#b71c1c;color:#fff}.lvl.orange{background:#a84300;color:#fff}.lvl.yellow{background:#f9d64a;color:#1a1a1a}.lvl.none{background:#e0e0e0;color:#1a1a1a}\
.tag{display:inline-block;padding:0 .4em;border:1px solid #767676;border-radius:.3em;font-size:.9em}\
.overdue{color:#b71c1c;font-weight:bold}.muted{color:#555}\
.msg{background:#e8f5e9;border-left:.3em solid #2e7d32;padding:.5em .7em}\
.err{background:#ffebee;border-left:.3em solid #b71c1c;padding:.5em .7em}\
dl.kv{display:grid;grid-template-columns:max-content 1fr;gap:.2em .8em;margin:.4em 0}dl.kv dt{color:#555}dl.kv dd{margin:0}\
ul.plain,ol.tl{list-style:none;padding:0;margin:.4em 0}\
ol.tl{border-left:2px solid #bbb;padding-left:.8em}ol.tl>li{margin:0 0 .8em;position:relative}\
ol.tl>li::before{content:'';position:absolute;left:-1.2em;top:.45em;width:.6em;height:.6em;border-radius:50%;background:#767676}\
.when{color:#555;font-size:.9em}\
nav.filters{margin:.4em 0}nav.filters a{display:inline-block;margin:.15em .3em .15em 0;padding:.1em .7em;border:1px solid #0b4f9c;border-radius:1em;text-decoration:none}\
nav.filters a[aria-current]{background:#0b4f9c;color:#fff}\
form.act{background:#fff;border:1px solid #bbb;border-radius:.4em;padding:.6em .8em;margin:.8em 0}\
form.act h3{margin-bottom:.4em}label{display:block;margin:.4em 0}\
input,select,textarea,button{font:inherit;max-width:100%}\
input:not([type=hidden]):not([type=radio]),select,textarea{display:block;width:100%;padding:.4em;border:1px solid #767676;border-radius:.3em}\
textarea{min-height:4.5em}\
form.act button,form.inline button{margin-top:.4em;padding:.5em 1.2em;background:#0b4f9c;color:#fff;border:0;border-radius:.3em;cursor:pointer}\
form.inline{display:inline-block;margin:.2em .4em .2em 0}\
pre{white-space:pre-wrap;overflow-wrap:anywhere;background:#f1f1f1;padding:.4em;font-size:.85em}\
figure{margin:.6em 0}svg{width:100%;height:auto;max-width:48em}\
table{border-collapse:collapse;width:100%}td,th{border-bottom:1px solid #ddd;padding:.3em .4em;text-align:left;vertical-align:top}\
@media(min-width:48em){main{padding:1.2em 1.5em}}\
@media print{header,form,nav,.noprint{display:none!important}body{background:#fff;color:#000;font-size:11pt}\
main{max-width:none;padding:0}a{color:#000;text-decoration:none}.card,ol.tl>li{break-inside:avoid}\
.lvl{background:none!important;color:#000!important;border:1px solid #000}}";

/// A whole page: head, header (who is signed in, links, language switch, sign-out), one `main`
/// with the page's `h1`, and `body`.
pub fn layout(
    lang: Lang,
    title: &str,
    who: Option<&Principal>,
    path: &str,
    body: Markup,
) -> Markup {
    let other = lang.other();
    html! {
        (DOCTYPE)
        html lang=(lang.html()) {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · " (lang.t("兜底预警", "doudi")) }
                style { (PreEscaped(STYLE)) }
            }
            body {
                header {
                    strong { (lang.t("兜底预警", "doudi")) }
                    @if let Some(p) = who {
                        nav aria-label=(lang.t("主菜单", "Main menu")) {
                            a href="/" { (lang.t("待办预警", "Inbox")) }
                            " "
                            @if p.role != crate::Role::Officer || !p.region.is_empty() {
                                a href={ "/regions/" (if p.region.is_empty() { "34" } else { &p.region }) } {
                                    (lang.t("辖区概览", "Region overview"))
                                }
                                " "
                            }
                            @if p.role != crate::Role::Admin {
                                a href="/review" { (lang.t("身份复核", "Review queue")) }
                                " "
                            }
                            @if matches!(p.role, crate::Role::Auditor | crate::Role::Admin) {
                                a href="/deadletters" { (lang.t("退回记录", "Dead letters")) }
                            }
                        }
                        span { code { (p.actor()) } " · " (lang.role(p.role)) }
                        form method="post" action="/sign-out" {
                            input type="hidden" name="csrf" value=(p.form_token);
                            button type="submit" { (lang.t("退出", "Sign out")) }
                        }
                    }
                    a href={ (path) "?lang=" (other.code()) } lang=(other.html()) hreflang=(other.html()) {
                        (lang.t("English", "中文"))
                    }
                }
                main {
                    h1 { (title) }
                    (body)
                }
            }
        }
    }
}

/// A level as a coloured badge (text and background of at least 4.5:1).
pub fn level(lang: Lang, level: Level) -> Markup {
    html! { span class={ "lvl " (level.code()) } { (lang.level(level)) } }
}

/// A time in the locality's zone to the minute, with how long ago or ahead it is.
pub fn when(clock: &Clock, t: &DateTime<Utc>) -> Markup {
    html! {
        time datetime=(t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)) {
            (clock.at(t))
        }
        " (" (clock.relative(t)) ")"
    }
}

/// Time left until a deadline ("3 小时后到期"), red when overdue.
pub fn due(clock: &Clock, deadline: &DateTime<Utc>) -> Markup {
    let (text, overdue) = clock.due(deadline);
    html! {
        @if overdue { strong.overdue { (text) } } @else { span { (text) } }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markup_in_text_is_escaped() {
        let p = layout(
            Lang::En,
            "<b>",
            None,
            "/",
            html! { p { ("<script>alert('x')</script>&\"") } },
        )
        .into_string();
        assert!(p.contains("<h1>&lt;b&gt;</h1>"), "{p}");
        assert!(p.contains("&lt;script&gt;"), "{p}");
        assert!(!p.contains("<script>"), "{p}");
    }

    #[test]
    fn the_layout_has_a_language_a_title_a_main_landmark_and_no_script() {
        let p = layout(Lang::Zh, "待办预警", None, "/", html! {}).into_string();
        for needle in [
            "<html lang=\"zh-CN\">",
            "<title>待办预警 · 兜底预警</title>",
            "<main><h1>待办预警</h1>",
            "name=\"viewport\"",
            "@media print",
        ] {
            assert!(p.contains(needle), "{needle} in {p}");
        }
        assert!(!p.contains("<script"));
    }
}
