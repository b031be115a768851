//! The pages for township officers, supervisors and auditors: server-rendered HTML from
//! compile-time templates ([`maud`]: every value is escaped), no JavaScript, usable on a phone.
//! Sign in by pasting an API token: it opens a session whose own token becomes an HttpOnly,
//! SameSite=Strict cookie; signing out ends the session, not the API token. Forms post with a
//! form token derived from the session ([`crate::auth::form_token`]) and are refused without it.
//!
//! Pages: the inbox (warnings as cards, overdue first, filters by level and state), a warning
//! (who, where, why, by when, and the forms to act), a household (members, address, category and
//! benefit, a plain-words timeline, its warnings and findings, the visit form), the review queue
//! (the linker's evidence and the decide buttons), dead letters (with replay for administrators),
//! a region's overview, and the auditor's trace as a timeline (its JSON one link away). Times are
//! in the locality's zone (`locality.time_zone`), to the minute.

use std::collections::{BTreeMap, HashMap};

use axum::extract::{FromRequestParts, Path, Query, Request, State};
use axum::http::header::{LOCATION, ORIGIN, SET_COOKIE};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Form, Json};
use chrono::{DateTime, NaiveDate, Utc};
use doudi_app::mask::View;
use doudi_model::{Level, WarningStatus};
use doudi_store::{HistoryEntry, TraceEntry, WarningView};
use doudi_warnings::lifecycle::{Move, MoveError};
use maud::{html, Markup};
use serde::Deserialize;
use serde_json::Value;

use crate::auth::{self, SESSION_COOKIE};
use crate::error::ApiError;
use crate::html::{self, due, error_page, html_response, layout, when, Clock, Lang};
use crate::locale::{self, yuan};
use crate::principal::{Principal, Role, Signed};
use crate::AppState;

/// The query of any page.
#[derive(Debug, Default, Deserialize)]
pub struct LangQuery {
    pub lang: Option<String>,
    /// A message after a form (`done=acknowledged`, …).
    pub done: Option<String>,
    /// Set when the sign-in expired.
    pub expired: Option<String>,
    /// Inbox filter: `red`, `orange`, `yellow`.
    pub level: Option<String>,
    /// Inbox filter: `open`, `acknowledged`, `visited`, `resolved`, `active` (default), `all`.
    pub state: Option<String>,
    /// `json`: the trace as JSON (the API's body) instead of the page.
    pub format: Option<String>,
}

/// The language and clock of one page.
struct Ctx {
    lang: Lang,
    set_lang: bool,
    clock: Clock,
}

fn ctx(state: &AppState, headers: &HeaderMap, q: &LangQuery) -> Ctx {
    let (lang, set_lang) = Lang::pick(q.lang.as_deref(), headers);
    Ctx {
        lang,
        set_lang,
        clock: Clock::new(state.config().time_zone, Utc::now(), lang),
    }
}

/// What a form's post starts from: the state, the signed-in person, the request's headers (for
/// the origin check) and the language of the answer.
pub struct Posted {
    state: AppState,
    who: Principal,
    headers: HeaderMap,
    lang: Lang,
}

impl FromRequestParts<AppState> for Posted {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Posted, Response> {
        let Signed { state, who } = Signed::from_request_parts(parts, state).await?;
        let (lang, _) = Lang::pick(None, &parts.headers);
        Ok(Posted {
            state,
            who,
            headers: parts.headers.clone(),
            lang,
        })
    }
}

impl Posted {
    /// Refuse a form sent from another site or without this session's form token.
    fn check(&self, csrf: &str) -> Result<(), ApiError> {
        check_form(&self.state, &self.headers, &self.who, csrf)
    }

    /// The error page at `path` in the answer's language.
    fn fail(&self, path: &str, e: &ApiError) -> Response {
        error_page(self.lang, Some(&self.who), path, e)
    }
}

/// What a page starts from: what a post does (its language as the page's query picks it), the
/// query, and the page's language and clock (one extractor instead of the same five parameters
/// in each page). A page with a path takes the path first, then this: the path is read before
/// the query, as before.
pub struct Page {
    base: Posted,
    q: LangQuery,
    c: Ctx,
}

/// A page's answer: the page, or the error page already made (so that a handler can `?`).
type PageResult = Result<Response, Failed>;

/// The error page of a page that could not be made (boxed: a response is large).
pub struct Failed(Box<Response>);

impl IntoResponse for Failed {
    fn into_response(self) -> Response {
        *self.0
    }
}

impl Page {
    /// `r`'s value, or the error page at `path` in the page's language.
    fn or_fail<T, E: Into<ApiError>>(&self, path: &str, r: Result<T, E>) -> Result<T, Failed> {
        r.map_err(|e| Failed(Box::new(self.base.fail(path, &e.into()))))
    }

    /// The page `body` under `title`, at `path`.
    fn ok(&self, title: &str, path: &str, body: Markup) -> PageResult {
        Ok(ok_page(&self.c, title, Some(&self.base.who), path, body))
    }
}

impl FromRequestParts<AppState> for Page {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Page, Response> {
        let mut base = Posted::from_request_parts(parts, state).await?;
        let Query(q) = Query::<LangQuery>::from_request_parts(parts, state)
            .await
            .map_err(IntoResponse::into_response)?;
        let c = ctx(state, &parts.headers, &q);
        base.lang = c.lang;
        Ok(Page { base, q, c })
    }
}

fn see_other(to: &str) -> Response {
    let mut r = StatusCode::SEE_OTHER.into_response();
    if let Ok(v) = HeaderValue::from_str(to) {
        r.headers_mut().insert(LOCATION, v);
    }
    r
}

fn ok_page(c: &Ctx, title: &str, who: Option<&Principal>, path: &str, body: Markup) -> Response {
    html_response(
        StatusCode::OK,
        c.lang,
        c.set_lang,
        layout(c.lang, title, who, path, body),
    )
}

fn sign_in_body(lang: Lang, message: Option<&str>) -> Markup {
    html! {
        @if let Some(m) = message { p.err role="alert" { (m) } }
        form.act method="post" action="/sign-in" {
            label {
                (lang.t("访问令牌（由管理员生成后交给您）", "Access token (an administrator creates it with doudi tokens create)"))
                input name="token" type="password" autocomplete="off" required;
            }
            button type="submit" { (lang.t("登录", "Sign in")) }
        }
        p.muted { (lang.t("登录后本浏览器持有一个会话（最长 12 小时，退出即失效）；访问令牌本身不保存在浏览器中。", "Signing in gives this browser a session cookie (12 hours at most, ended when you sign out); the access token itself is not kept in the browser.")) }
    }
}

/// `GET /sign-in`.
pub async fn sign_in_form(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<LangQuery>,
) -> Response {
    let c = ctx(&state, &headers, &q);
    let lang = c.lang;
    let msg = q.expired.as_ref().map(|_| {
        lang.t(
            "令牌无效、已过期或已撤销，请重新登录。",
            "The token is unknown, expired or revoked: sign in again.",
        )
    });
    ok_page(
        &c,
        lang.t("登录", "Sign in"),
        None,
        "/sign-in",
        sign_in_body(lang, msg),
    )
}

/// The sign-in form.
#[derive(Debug, Deserialize)]
pub struct SignInForm {
    pub token: String,
}

/// Refuse a form posted from another site (the browser names the page's origin).
fn same_origin(state: &AppState, headers: &HeaderMap) -> Result<(), ApiError> {
    let Some(origin) = headers.get(ORIGIN).and_then(|v| v.to_str().ok()) else {
        return Ok(());
    };
    let host = headers
        .get(axum::http::header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let public = state.config().public_url.trim_end_matches('/');
    let ours = origin == public
        || origin
            .split_once("://")
            .is_some_and(|(_, rest)| !host.is_empty() && rest == host);
    if ours {
        Ok(())
    } else {
        Err(ApiError::Forbidden(
            "this form was sent from another site".into(),
        ))
    }
}

/// `POST /sign-in`: a valid API token opens a session (its own token in the session cookie). An
/// address over its failed-authentication limit is refused (429) before the token is looked at; a
/// form over the body limit is refused with 413.
pub async fn sign_in(State(state): State<AppState>, req: Request) -> Response {
    let (lang, _) = Lang::pick(None, req.headers());
    let ip = auth::client_ip(&req, &state.config().trusted_proxies);
    if let Err(e) = same_origin(&state, req.headers()) {
        return error_page(lang, None, "/sign-in", &e);
    }
    if let Err(e) = auth::limited(&state, ip) {
        return error_page(lang, None, "/sign-in", &e);
    }
    let form: Result<Form<SignInForm>, axum::extract::rejection::FormRejection> =
        <Form<SignInForm> as axum::extract::FromRequest<AppState>>::from_request(req, &state).await;
    let token = match form {
        Ok(Form(f)) => f.token.trim().to_string(),
        Err(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            let e = ApiError::PayloadTooLarge(format!(
                "the sign-in form is larger than the service accepts ({} bytes)",
                state.config().max_body_bytes
            ));
            return error_page(lang, None, "/sign-in", &e);
        }
        Err(e) => return error_page(lang, None, "/sign-in", &ApiError::BadRequest(e.body_text())),
    };
    match auth::open_session(&state, &token, ip).await {
        Ok((session, p)) => {
            tracing::info!(token_id = p.token_id, role = p.role.code(), "signed in");
            let secure = if state.config().public_url.starts_with("https://") {
                "; Secure"
            } else {
                ""
            };
            let mut r = see_other("/");
            match HeaderValue::from_str(&format!(
                "{SESSION_COOKIE}={session}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}{secure}",
                auth::SESSION_HOURS * 3600
            )) {
                Ok(v) => {
                    r.headers_mut().insert(SET_COOKIE, v);
                    r
                }
                Err(_) => error_page(
                    lang,
                    None,
                    "/sign-in",
                    &ApiError::Internal("the session token cannot be a cookie".into()),
                ),
            }
        }
        Err(why) => {
            auth::failed_auth(&state, ip);
            let why = crate::error::api_error(lang, &ApiError::Unauthenticated(why));
            html_response(
                StatusCode::UNAUTHORIZED,
                lang,
                false,
                layout(
                    lang,
                    lang.t("登录", "Sign in"),
                    None,
                    "/sign-in",
                    sign_in_body(lang, Some(&why)),
                ),
            )
        }
    }
}

/// A form with only the form token.
#[derive(Debug, Default, Deserialize)]
pub struct CsrfForm {
    #[serde(default)]
    pub csrf: String,
}

fn check_form(
    state: &AppState,
    headers: &HeaderMap,
    who: &Principal,
    csrf: &str,
) -> Result<(), ApiError> {
    same_origin(state, headers)?;
    if auth::same(csrf, &who.form_token) {
        Ok(())
    } else {
        Err(ApiError::Forbidden(
            "the form token is missing or wrong: reload the page and send the form again".into(),
        ))
    }
}

/// `POST /sign-out`: end the session (not the API token).
pub async fn sign_out(p: Posted, Form(f): Form<CsrfForm>) -> Response {
    if let Err(e) = p.check(&f.csrf) {
        return p.fail("/", &e);
    }
    // The session ends here (its cookie is no longer accepted, wherever a copy of it is); the API
    // token it acted for stays valid.
    if let Some(hash) = &p.who.session_hash {
        if let Err(e) = p.state.store().end_session(hash, &p.who.actor()).await {
            return p.fail("/", &ApiError::from(e));
        }
    }
    tracing::info!(token_id = p.who.token_id, "signed out");
    let mut r = see_other("/sign-in?signed_out=1");
    r.headers_mut().insert(
        SET_COOKIE,
        HeaderValue::from_static("doudi_session=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0"),
    );
    r
}

/// Region names for `codes` (a village as 东河口镇大塘村), as the pages show them; a code without a
/// name (or when the table cannot be read: logged) stands for itself.
async fn region_names(state: &AppState, codes: &[String]) -> HashMap<String, String> {
    let mut codes = codes.to_vec();
    codes.sort();
    codes.dedup();
    match state.store().region_names(&codes).await {
        Ok(names) => names,
        Err(e) => {
            tracing::warn!(error = %e, "cannot read region names: showing codes");
            HashMap::new()
        }
    }
}

/// A region by name (or by code when no name is known: then as a code).
fn region(names: &HashMap<String, String>, code: &str) -> Markup {
    match names.get(code) {
        Some(n) => html! { (n) },
        None => html! { code { (code) } },
    }
}

fn text(v: &Value, key: &str) -> String {
    v.get(key).and_then(Value::as_str).unwrap_or("").to_string()
}

/// The household's head (else its first member), from its record.
fn head(record: &Value) -> Option<&Value> {
    let members = record.get("members")?.as_array()?;
    members
        .iter()
        .find(|m| m.get("relation").and_then(Value::as_str) == Some("head"))
        .or_else(|| members.first())
}

/// The finding that weighs most: the warning's top reason, in one line.
fn top_reason(lang: Lang, summary: &doudi_model::Assessment) -> String {
    summary
        .contributions
        .iter()
        .filter(|c| c.points > 0)
        .max_by_key(|c| c.points)
        .map(|c| lang.t(&c.reason_zh, &c.reason_en).to_string())
        .unwrap_or_default()
}

/// Whether `who` is the officer the warning is assigned to (then its household's head is shown by
/// name, and the read is audited).
fn assigned_to_me(who: &Principal, w: &WarningView) -> bool {
    who.role.is_regional() && who.officer_id.is_some() && who.officer_id == w.assigned_to
}

fn level_param(q: &LangQuery) -> Option<Level> {
    q.level
        .as_deref()
        .and_then(Level::from_code)
        .filter(|l| *l != Level::None)
}

fn state_param(q: &LangQuery) -> &'static str {
    match q.state.as_deref() {
        Some("open") => "open",
        Some("acknowledged") => "acknowledged",
        Some("visited") => "visited",
        Some("resolved") => "resolved",
        Some("withdrawn") => "withdrawn",
        Some("all") => "all",
        _ => "active",
    }
}

fn state_name(lang: Lang, s: &str) -> &'static str {
    match s {
        "active" => lang.t("未办结", "active"),
        "all" => lang.t("全部", "all"),
        s => WarningStatus::from_code(s).map_or("", |s| lang.status(s)),
    }
}

/// `GET /`: the warnings of the signed-in person's region as cards — overdue first, then by level
/// and deadline — with the household head (by name for the officer it is assigned to; the read is
/// audited), the village, the category, the top reason, when the hardship happened and the time
/// left; filters by level and state.
pub async fn inbox(p: Page) -> PageResult {
    let Page { base, q, c } = &p;
    let (state, who) = (&base.state, &base.who);
    let lang = c.lang;
    let (level, st) = (level_param(q), state_param(q));
    let filter = doudi_store::WarningFilter {
        region_prefix: who.scope(),
        level,
        state: st,
        assigned_to: None,
        overdue_first_at: Some(c.clock.now),
        limit: 200,
        offset: 0,
    };
    let mut list = p.or_fail("/", state.store().warnings_page(&filter).await)?;
    let now = c.clock.now;
    let overdue = |w: &WarningView| w.status.is_active() && w.deadline < now;
    let rank = |l: Level| match l {
        Level::Red => 0,
        Level::Orange => 1,
        Level::Yellow => 2,
        Level::None => 3,
    };
    list.warnings
        .sort_by_key(|w| (!overdue(w), rank(w.level), w.deadline, w.warning_id));
    let ids: Vec<i64> = list.warnings.iter().map(|w| w.warning_id).collect();
    let times = p.or_fail("/", state.store().warning_fact_times(&ids).await)?;
    let mut codes: Vec<String> = list
        .warnings
        .iter()
        .map(|w| w.region_code.clone())
        .collect();
    codes.push(who.scope().to_string());
    let names = region_names(state, &codes).await;
    let asker = who.who();
    let mut cards = Vec::with_capacity(list.warnings.len());
    for w in &mut list.warnings {
        if assigned_to_me(who, w) {
            let audit = doudi_app::household::audit_read(
                state.store(),
                &asker,
                &w.household_id,
                "GET /",
                View::Household,
            );
            p.or_fail("/", audit.await)?;
        } else {
            doudi_app::mask::mask_json(&mut w.household);
        }
        cards.push(card(c, w, &names, times.get(&w.warning_id), None));
    }
    let filter_link = |lvl: Option<Level>, s: &str| {
        let mut url = format!("/?state={s}");
        if let Some(l) = lvl {
            url.push_str("&level=");
            url.push_str(l.code());
        }
        url
    };
    let body = html! {
        p {
            strong { (list.total) } " " (lang.t("条", "warnings")) " · " (state_name(lang, st))
            @if let Some(l) = level { " · " (html::level(lang, l)) }
            " · "
            @if who.scope().is_empty() { (lang.t("全部辖区", "all regions")) } @else { (region(&names, who.scope())) }
        }
        nav.filters aria-label=(lang.t("按等级筛选", "Filter by level")) {
            a href=(filter_link(None, st)) aria-current=[level.is_none().then_some("true")] { (lang.t("全部等级", "all levels")) }
            @for l in [Level::Red, Level::Orange, Level::Yellow] {
                a href=(filter_link(Some(l), st)) aria-current=[(level == Some(l)).then_some("true")] { (lang.level(l)) }
            }
        }
        nav.filters aria-label=(lang.t("按状态筛选", "Filter by state")) {
            @for s in ["active", "open", "acknowledged", "visited", "resolved", "withdrawn", "all"] {
                a href=(filter_link(level, s)) aria-current=[(st == s).then_some("true")] { (state_name(lang, s)) }
            }
        }
        @if cards.is_empty() {
            p.msg { (lang.t("没有符合条件的预警。", "No warnings match.")) }
        }
        @for card in cards { (card) }
        @if list.total > list.warnings.len() as i64 {
            p.muted { (lang.t("仅显示最紧急的 200 条。", "Only the 200 most urgent are shown.")) }
        }
    };
    p.ok(lang.t("待办预警", "Inbox"), "/", body)
}

/// What holds a card: a warning or a review record stands alone (`article`), a list's item is an
/// `li`, a part of a card a `div`.
#[derive(Clone, Copy)]
enum Holder {
    Article,
    Item,
    Part,
}

/// The one card of the pages: a bordered block, its left edge in the level's colour when it has
/// one. Every list of the pages is made of these (warnings, members, review records, candidates,
/// dead letters).
fn boxed(holder: Holder, level: Option<Level>, body: Markup) -> Markup {
    let class = match level {
        Some(l) => format!("card {}", l.code()),
        None => "card".to_string(),
    };
    match holder {
        Holder::Article => html! { article class=(class) { (body) } },
        Holder::Item => html! { li class=(class) { (body) } },
        Holder::Part => html! { div class=(class) { (body) } },
    }
}

/// A warning as a card: its level's colour, a heading that links to it (the level, then
/// `heading`), then `lines`.
fn warning_card(lang: Lang, w: &WarningView, heading: Markup, lines: Markup) -> Markup {
    boxed(
        Holder::Article,
        Some(w.level),
        html! {
            h3 { a href={ "/warnings/" (w.warning_id) } { (html::level(lang, w.level)) " " (heading) } }
            (lines)
        },
    )
}

/// One warning of the inbox and the region overview as a card: the household head and village,
/// category and top reason, when it happened, time left and state; and, for an escalated warning,
/// how far it was sent up and since when.
fn card(
    c: &Ctx,
    w: &WarningView,
    names: &HashMap<String, String>,
    times: Option<&doudi_store::FactTimes>,
    escalated: Option<Markup>,
) -> Markup {
    let lang = c.lang;
    let h = &w.household;
    let head_name = head(h).map(|m| text(m, "name")).unwrap_or_default();
    let reason = top_reason(lang, &w.summary);
    let heading = html! {
        (if head_name.is_empty() { lang.t("（无户主）", "(no head)").to_string() } else { head_name })
        " · " (region(names, &w.region_code))
    };
    warning_card(
        lang,
        w,
        heading,
        html! {
            p { (lang.category(&text(h, "category"))) @if !reason.is_empty() { " · " (reason) } }
            @if let Some(at) = w.occurred_at.as_ref().or(times.map(|t| &t.occurred_at)) {
                p.when {
                    (lang.t("发生于 ", "happened ")) (when(&c.clock, at))
                    @if w.late { " · " strong { (lang.t("补录（迟到记录，按补办期限）", "late record (catch-up deadline)")) } }
                }
            }
            p {
                @if !w.status.is_active() {
                    span { (lang.status(w.status)) }
                } @else {
                    (due(&c.clock, &w.deadline)) " · " (lang.status(w.status))
                }
                " · " span.muted { "#" (w.warning_id) }
            }
            @if let Some(e) = escalated { p.when { (e) } }
        },
    )
}

/// A stored document as compact JSON, as the trace shows it.
fn json_text(v: &impl serde::Serialize) -> String {
    serde_json::to_value(v)
        .map(|v| v.to_string())
        .unwrap_or_default()
}

/// Age in whole years on `on`, from a member's `birth_date`.
fn age(member: &Value, on: NaiveDate) -> Option<u32> {
    let birth = NaiveDate::parse_from_str(&text(member, "birth_date"), "%Y-%m-%d").ok()?;
    on.years_since(birth)
}

/// The members of a household, one line each: name (relation, sex, age), work capacity,
/// disability, and the ID number.
fn members(c: &Ctx, record: &Value) -> Markup {
    let lang = c.lang;
    let today = c.clock.now.with_timezone(&c.clock.tz).date_naive();
    html! {
        ul.plain {
            @for m in record.get("members").and_then(Value::as_array).into_iter().flatten() {
                (boxed(Holder::Item, None, html! {
                    strong { (text(m, "name")) }
                    " （" (lang.relation(&text(m, "relation"))) "，" (lang.sex(&text(m, "sex")))
                    @if let Some(a) = age(m, today) { "，" (a) " " (lang.t("岁", "years")) }
                    "）"
                    br;
                    (lang.work_capacity(&text(m, "work_capacity"))) " · "
                    (lang.disability(m.get("disability_grade").and_then(Value::as_u64)))
                    br;
                    span.muted { (lang.t("身份证号 ", "ID number ")) code { (text(m, "id_number")) } }
                }))
            }
        }
    }
}

/// One line of a folded history: the first entry of a run of repeats, how many, the last time.
struct Folded<'a> {
    first: &'a HistoryEntry,
    last_at: DateTime<Utc>,
    count: usize,
}

/// Fold runs of identical history lines (same action and actor, no note, not refused — the
/// pipeline's repeated updates) into one line with a count; the stored history is unchanged.
fn fold_history(history: &[HistoryEntry]) -> Vec<Folded<'_>> {
    let mut out: Vec<Folded<'_>> = Vec::new();
    for e in history {
        let plain = e.note.as_deref().unwrap_or("").is_empty() && e.refused.is_none();
        if let Some(last) = out.last_mut() {
            let f = last.first;
            let same = plain
                && f.note.as_deref().unwrap_or("").is_empty()
                && f.refused.is_none()
                && f.action == e.action
                && f.actor == e.actor;
            if same {
                last.count += 1;
                last.last_at = e.at;
                continue;
            }
        }
        out.push(Folded {
            first: e,
            last_at: e.at,
            count: 1,
        });
    }
    out
}

fn history(c: &Ctx, entries: &[HistoryEntry]) -> Markup {
    let lang = c.lang;
    html! {
        ol.tl {
            @for f in fold_history(entries) {
                li {
                    div.when { (c.clock.at(&f.first.at)) @if f.count > 1 { " – " (c.clock.at(&f.last_at)) } }
                    strong { (lang.action(&f.first.action)) }
                    @if f.count > 1 { " ×" (f.count) }
                    " · " (lang.actor(&f.first.actor)) " · " (html::level(lang, f.first.level))
                    @if let Some(n) = f.first.note.as_deref().filter(|n| !n.is_empty()) { p { (lang.history_note(&f.first.action, n)) } }
                    @if let Some(r) = &f.first.refused {
                        p.err { strong { (lang.t("已拒绝：", "refused: ")) } (refusal_text(lang, r)) }
                    }
                }
            }
        }
    }
}

/// A refusal kept in a history line (English, as the use case said it), in the page's language.
fn refusal_text(lang: Lang, r: &str) -> String {
    if lang == Lang::En {
        return r.to_string();
    }
    if r.contains("approval limit") {
        "救助金额超过乡镇审批限额：须由县级督办人员审批记录。".into()
    } else if r.contains("may not act") {
        "不是这条预警的责任干部、代班人或本辖区督办人员。".into()
    } else if r.contains("not in the officer directory") {
        "不在干部名录中。".into()
    } else if r.contains("assigned to nobody") {
        "这条预警所在辖区没有责任干部：只有督办人员可以处理。".into()
    } else {
        "未获准许。".into()
    }
}

/// `GET /warnings/{id}`: who, where, why, how urgent, what to do — and the forms to act. The
/// household's head and members are shown by name to the officer the warning is assigned to (the
/// read is audited as a read of the household's record); masked for everyone else.
pub async fn warning(Path(id): Path<String>, p: Page) -> PageResult {
    let Page { base, q, c } = &p;
    let (state, who) = (&base.state, &base.who);
    let lang = c.lang;
    let path = format!("/warnings/{id}");
    let num = id
        .parse::<i64>()
        .map_err(|_| ApiError::NotFound(format!("no warning {id:?}")));
    let num = p.or_fail("/", num)?;
    let asker = who.who();
    let read = doudi_app::warnings::show_warning(state.store(), &asker, num, "GET /warnings/{id}");
    let mut d = p.or_fail(&path, read.await)?;
    if assigned_to_me(who, &d.warning) {
        let read = doudi_app::household::household(
            state.store(),
            &asker,
            &d.warning.household_id,
            "GET /warnings/{id}",
        );
        let r = p.or_fail(&path, read.await)?;
        if !r.masked {
            d.warning.household = r.value.record;
        }
    }
    let times = state
        .store()
        .warning_fact_times(&[num])
        .await
        .unwrap_or_default();
    let names = region_names(state, std::slice::from_ref(&d.warning.region_code)).await;
    let w = &d.warning;
    let h = &w.household;
    let limit = state.config().rules.relief.township_limit;
    let head_name = head(h).map(|m| text(m, "name")).unwrap_or_default();
    let body = html! {
        @if let Some(done) = &q.done {
            p.msg role="status" {
                (lang.t("已记录：", "Recorded: "))
                (WarningStatus::from_code(done).map_or("", |s| lang.status(s)))
            }
        }
        p {
            (html::level(lang, w.level)) " " strong { (lang.status(w.status)) }
            @if w.status.is_active() { " · " (due(&c.clock, &w.deadline)) }
        }
        dl.kv {
            dt { (lang.t("户主", "Head")) } dd { (head_name) }
            dt { (lang.t("住址", "Address")) } dd { (text(h, "address")) }
            dt { (lang.t("村（社区）", "Village")) } dd { (region(&names, &w.region_code)) }
            dt { (lang.t("类别", "Category")) } dd { (lang.category(&text(h, "category"))) }
            @if let Some(at) = w.occurred_at.as_ref().or(times.get(&num).map(|t| &t.occurred_at)) {
                dt { (lang.t("发生于", "Happened")) } dd { (when(&c.clock, at)) }
            }
            @if let Some(t) = times.get(&num) {
                dt { (lang.t("收到于", "Received")) } dd { (c.clock.at(&t.received_at)) }
            }
            @if w.late {
                dt { (lang.t("补录", "Late record")) }
                dd { (lang.t("记录收到时已过去很久，期限按补办期限从收到时算起。", "received long after it happened: the deadline is a catch-up window from receipt.")) }
            }
            dt { (lang.t("期限", "Deadline")) } dd { (c.clock.at(&w.deadline)) }
            dt { (lang.t("开启于", "Opened")) } dd { (when(&c.clock, &w.opened_at)) }
            dt { (lang.t("责任干部", "Officer")) } dd { code { (w.assigned_to.as_deref().unwrap_or("—")) } }
            dt { (lang.t("评分", "Score")) } dd { (w.score) }
        }
        p { a href={ "/households/" (w.household_id) } { (lang.t("查看户档案", "The household's record")) } " · " code { (w.household_id) } }
        h2 { (lang.t("预警原因", "Why")) }
        (explanation(lang, w.level, &w.summary))
        ul.plain {
            @for k in &w.summary.contributions {
                li { strong { (format!("{:+}", k.points)) } " " (lang.t(&k.reason_zh, &k.reason_en)) }
            }
        }
        p.muted { (lang.t("规则集版本 ", "Rule set ")) code { (w.summary.rule_set_version) } }
        @if let Some(r) = &w.summary.relief {
            h2 { (lang.t("建议救助", "Suggested relief")) }
            p {
                (lang.t("临时救助 ", "Temporary relief of ")) strong { (yuan(r.amount.fen())) } (lang.t(" 元", " yuan")) " · "
                @if r.within_township_limit {
                    (lang.t("在乡镇审批限额内（可先行救助）", "within the township's approval limit (relief may be granted first)"))
                } @else {
                    (lang.t("超过乡镇限额，须县级审批", "above the township's limit: the county approves"))
                }
            }
            p { (lang.t(&r.reason_zh, &r.reason_en)) }
        }
        @if let Some(disp) = &d.disposition {
            p { strong { (lang.t("处置：", "Disposition: ")) } (lang.disposition(disp)) }
        }
        h2 { (lang.t("家庭成员", "Members")) }
        (members(c, h))
        @if who.role.is_regional() && w.status.is_active() {
            (move_forms(lang, who, num, w.status, limit))
        }
        h2 { (lang.t("处理记录", "History")) }
        (history(c, &d.history))
        @if who.role != Role::Admin {
            p { a href={ "/households/" (w.household_id) "/trace" } { (lang.t("全程追溯", "Trace")) } }
        }
    };
    p.ok(
        &format!("{} #{num}", lang.t("预警", "Warning")),
        &path,
        body,
    )
}

/// The forms that move a warning from where it stands: acknowledge, the visit, the resolution
/// (with the township's approval limit said beside the amount).
fn move_forms(
    lang: Lang,
    who: &Principal,
    num: i64,
    status: WarningStatus,
    limit: doudi_model::Money,
) -> Markup {
    let csrf = &who.form_token;
    let categories = doudi_model::Category::ALL;
    html! {
        @if status == WarningStatus::Open {
            form.act method="post" action={ "/warnings/" (num) "/acknowledge" } {
                h3 { (lang.t("签收", "Acknowledge")) }
                input type="hidden" name="csrf" value=(csrf);
                label { (lang.t("说明（可不填）", "Note (optional)")) input name="note"; }
                button type="submit" id="acknowledge" { (lang.t("签收", "Acknowledge")) }
            }
        }
        @if status != WarningStatus::Visited {
            (visit_form(lang, csrf, num))
        }
        @if status != WarningStatus::Open {
            form.act method="post" action={ "/warnings/" (num) "/resolve" } {
                h3 { (lang.t("办结", "Resolve")) }
                input type="hidden" name="csrf" value=(csrf);
                label {
                    (lang.t("处置", "Disposition"))
                    select name="disposition" {
                        option value="relief_granted" { (lang.t("给予临时救助", "relief granted")) }
                        option value="enrolled" { (lang.t("纳入低保/特困", "enrolled")) }
                        option value="referred" { (lang.t("转介其他部门（含报县级审批）", "referred (also: sent up to the county)")) }
                        option value="risk_cleared" { (lang.t("风险消除", "risk cleared")) }
                        option value="false_alarm" { (lang.t("误报", "false alarm")) }
                    }
                }
                label {
                    (lang.t("救助金额（元）", "Relief amount (yuan)"))
                    input name="amount" inputmode="decimal";
                }
                p.muted {
                    (lang.t("乡镇审批限额 ", "The township's approval limit is "))
                    (yuan(limit.fen())) (lang.t(" 元；超过限额的由县级督办人员办结，或选择「转介」报县级审批。", " yuan; above it a county supervisor records the relief, or choose \u{201c}referred\u{201d} to send it up to the county."))
                }
                label {
                    (lang.t("纳入类别", "Category enrolled"))
                    select name="category" {
                        option value="" { "—" }
                        @for k in categories { option value=(k.code()) { (lang.category(k.code())) } }
                    }
                }
                label { (lang.t("接收部门", "Department referred to")) input name="department"; }
                label { (lang.t("办结说明（必填）", "Why (required)")) textarea name="note" required {} }
                button type="submit" id="resolve" { (lang.t("办结", "Resolve")) }
            }
        }
    }
}

fn visit_form(lang: Lang, csrf: &str, num: i64) -> Markup {
    html! {
        form.act method="post" action={ "/warnings/" (num) "/visit" } {
            h3 { (lang.t("入户核查", "Home visit")) }
            input type="hidden" name="csrf" value=(csrf);
            label { (lang.t("核查情况（必填）", "What the visit found (required)")) textarea name="note" required {} }
            button type="submit" id="visit" { (lang.t("记录入户核查", "Record the visit")) }
        }
    }
}

/// A form moving a warning.
#[derive(Debug, Default, Deserialize)]
pub struct MoveForm {
    #[serde(default)]
    pub csrf: String,
    #[serde(default)]
    pub note: String,
    #[serde(default)]
    pub disposition: String,
    pub amount: Option<String>,
    pub category: Option<String>,
    pub department: Option<String>,
}

/// Why a refused move was refused, as a typed reason (the same checks as the use case, in the
/// same order, on the warning as it still stands): for the page to explain it in its language.
async fn why_refused(
    state: &AppState,
    who: &Principal,
    id: i64,
    note: &str,
    m: &Move,
) -> Option<MoveError> {
    let d = state.store().warning_detail(id).await.ok()??;
    let region = doudi_model::RegionCode::parse(&d.warning.region_code).ok()?;
    let directory = doudi_app::engine::directory(state.store()).await.ok()?;
    let limit = state.config().rules.relief.township_limit;
    let actor = who.officer_id.as_deref()?;
    doudi_warnings::lifecycle::authorise(
        &directory,
        actor,
        d.warning.assigned_to.as_deref(),
        &region,
        m,
        limit,
    )
    .and_then(|_| doudi_warnings::lifecycle::check_reason(m, note))
    .and_then(|_| doudi_warnings::lifecycle::transition(d.warning.status, m))
    .err()
}

async fn move_page(
    p: Posted,
    id: String,
    form: MoveForm,
    make: impl FnOnce(&MoveForm) -> Result<Move, ApiError>,
) -> Response {
    let Posted {
        state, who, lang, ..
    } = &p;
    let (lang, path) = (*lang, format!("/warnings/{id}"));
    let mut tried: Option<(i64, Move)> = None;
    let result = async {
        p.check(&form.csrf)?;
        let num: i64 = id
            .parse()
            .map_err(|_| ApiError::NotFound(format!("no warning {id:?}")))?;
        let m = make(&form)?;
        tried = Some((num, m.clone()));
        crate::api::make_move(state, who, num, form.note.trim(), m).await
    }
    .await;
    match result {
        Ok(moved) => see_other(&format!("/warnings/{}?done={}", moved.warning_id, moved.to)),
        Err(e) => {
            let typed = match &tried {
                Some((num, m)) => why_refused(state, who, *num, form.note.trim(), m).await,
                None => None,
            };
            match typed {
                Some(why) => refused_page(lang, who, &path, &e, &locale::move_error(lang, &why)),
                None => p.fail(&path, &e),
            }
        }
    }
}

/// A refused move explained in the page's language, with the way back to the warning.
fn refused_page(lang: Lang, who: &Principal, path: &str, e: &ApiError, why: &str) -> Response {
    let body = html! {
        p.err role="alert" { (why) }
        p { a href=(path) { (lang.t("返回预警", "Back to the warning")) } }
    };
    html_response(
        e.status(),
        lang,
        false,
        layout(lang, lang.t("无法完成", "Refused"), Some(who), path, body),
    )
}

/// `POST /warnings/{id}/acknowledge`.
pub async fn acknowledge(p: Posted, Path(id): Path<String>, Form(f): Form<MoveForm>) -> Response {
    move_page(p, id, f, |_| Ok(Move::Acknowledge)).await
}

/// `POST /warnings/{id}/visit`.
pub async fn visit(p: Posted, Path(id): Path<String>, Form(f): Form<MoveForm>) -> Response {
    move_page(p, id, f, |_| Ok(Move::Visit)).await
}

/// `POST /warnings/{id}/resolve`.
pub async fn resolve(p: Posted, Path(id): Path<String>, Form(f): Form<MoveForm>) -> Response {
    move_page(p, id, f, |f| {
        Ok(Move::Resolve(doudi_app::warnings::disposition(
            &f.disposition,
            f.amount.as_deref(),
            f.category.as_deref().filter(|c| !c.is_empty()),
            f.department.as_deref(),
        )?))
    })
    .await
}

/// `GET /households/{id}`: the household as an officer visits it — members with relation, age,
/// work capacity and disability; address (in clear for officers and supervisors of its region,
/// the read audited); category and benefit; its warnings and findings; a plain-words timeline of
/// the facts (repeats folded); and the visit form of its open warning.
pub async fn household(Path(id): Path<String>, p: Page) -> PageResult {
    let Page { base, c, .. } = &p;
    let (state, who) = (&base.state, &base.who);
    let lang = c.lang;
    let path = format!("/households/{id}");
    let asker = who.who();
    let via = "GET /households/{id}";
    let record = doudi_app::household::household(state.store(), &asker, &id, via).await;
    let record = p.or_fail(&path, record)?;
    let entries = doudi_app::household::trace(state.store(), &asker, &id, View::Trace, via).await;
    let entries = p.or_fail(&path, entries)?.value;
    let warnings = p.or_fail(&path, state.store().household_warnings(&id).await)?;
    let h = &record.value.record;
    let names = region_names(state, std::slice::from_ref(&record.value.region_code)).await;
    let benefit = h
        .get("monthly_benefit_fen")
        .and_then(Value::as_i64)
        .unwrap_or(0);
    let open = warnings.iter().find(|w| w.status.is_active());
    let body = html! {
        @if record.masked {
            p.muted { (lang.t("个人信息已遮蔽（您的角色不需要）；本次查阅已记入审计日志。", "Personal data masked (your role does not need it); this read is recorded in the audit trail.")) }
        } @else {
            p.muted { (lang.t("含个人信息：本次查阅已记入审计日志。", "Personal data shown: this read is recorded in the audit trail.")) }
        }
        dl.kv {
            dt { (lang.t("住址", "Address")) } dd { (text(h, "address")) }
            dt { (lang.t("村（社区）", "Village")) } dd { (region(&names, &record.value.region_code)) }
            @if let Some(p) = h.get("phone").and_then(Value::as_str) {
                dt { (lang.t("联系电话", "Phone")) } dd { (p) }
            }
            dt { (lang.t("类别", "Category")) } dd { (lang.category(&record.value.category)) }
            dt { (lang.t("月保障金", "Monthly benefit")) } dd { (yuan(benefit)) (lang.t(" 元", " yuan")) }
            dt { (lang.t("纳入时间", "Enrolled on")) } dd { (text(h, "enrolled_on")) }
            @if !record.value.active {
                dt { (lang.t("名册状态", "Register")) } dd { (lang.t("已移出名册", "no longer in the register")) }
            }
        }
        h2 { (lang.t("家庭成员", "Members")) }
        (members(c, h))
        h2 { (lang.t("预警", "Warnings")) }
        @if warnings.is_empty() { p.muted { (lang.t("没有预警。", "No warnings.")) } }
        @for w in &warnings {
            (warning_card(lang, w, html! { (lang.status(w.status)) " · #" (w.warning_id) }, html! {
                p { (top_reason(lang, &w.summary)) }
                p.when {
                    (lang.t("开启于 ", "opened ")) (c.clock.at(&w.opened_at))
                    @if w.status.is_active() { " · " (due(&c.clock, &w.deadline)) }
                }
            }))
        }
        @if let Some(w) = open {
            @if who.role.is_regional() && w.status != WarningStatus::Visited {
                (visit_form(lang, &who.form_token, w.warning_id))
            }
        }
        (findings(lang, &entries))
        h2 { (lang.t("事实时间线", "Timeline of facts")) }
        (facts(c, &entries))
        @if who.role != Role::Admin {
            p { a href={ "/households/" (id) "/trace" } { (lang.t("全程追溯", "Trace")) } }
        }
    };
    p.ok(
        &format!("{} {}", lang.t("户档案", "Household"), id),
        &path,
        body,
    )
}

/// The household's nightly cross-check findings.
fn findings(lang: Lang, entries: &[TraceEntry]) -> Markup {
    let list: Vec<_> = entries
        .iter()
        .filter_map(|e| match e {
            TraceEntry::Finding {
                at,
                check,
                status,
                close_note,
                ..
            } => Some((at, check, status, close_note)),
            _ => None,
        })
        .collect();
    html! {
        @if !list.is_empty() {
            h2 { (lang.t("核查发现", "Findings")) }
            ul.plain {
                @for (at, check, status, note) in list {
                    li { (at) " · " code { (check) } " · " (lang.finding_status(status))
                        @if let Some(n) = note { " · " (n) } }
                }
            }
        }
    }
}

/// The facts about a household in plain words, newest first; repeats of the same kind from the
/// same department on the same day folded ("×3").
fn facts(c: &Ctx, entries: &[TraceEntry]) -> Markup {
    let lang = c.lang;
    let mut rows: Vec<(String, &str, &str, usize)> = Vec::new();
    for e in entries.iter().rev() {
        if let TraceEntry::Event {
            at, source, kind, ..
        } = e
        {
            let day = c.clock.day(at);
            if let Some(last) = rows.last_mut() {
                if last.0 == day && last.1 == source.as_str() && last.2 == kind.as_str() {
                    last.3 += 1;
                    continue;
                }
            }
            rows.push((day, source.as_str(), kind.as_str(), 1));
        }
    }
    html! {
        @if rows.is_empty() { p.muted { (lang.t("还没有收到关于这一户的记录。", "No records about this household yet.")) } }
        ol.tl {
            @for (day, source, kind, n) in &rows {
                li {
                    div.when { (day) }
                    (lang.source(source)) (lang.t("：", ": ")) strong { (lang.kind(kind)) }
                    @if *n > 1 { " ×" (n) }
                }
            }
        }
    }
}

const LEVELS: [(&str, &str); 3] = [
    ("red", "#b71c1c"),
    ("orange", "#a84300"),
    ("yellow", "#c9a400"),
];

/// Stacked bars (one per label, levels stacked) as inline SVG that scales to the screen.
fn bar_chart(title: &str, rows: &BTreeMap<String, BTreeMap<String, i64>>) -> Markup {
    let (w, h, pad) = (720.0_f64, 220.0_f64, 30.0_f64);
    let max = rows
        .values()
        .map(|m| m.values().sum::<i64>())
        .max()
        .unwrap_or(0)
        .max(1) as f64;
    let n = rows.len().max(1) as f64;
    let bw = ((w - 2.0 * pad) / n).max(2.0);
    let mut bars = Vec::new();
    for (i, (label, levels)) in rows.iter().enumerate() {
        let x = pad + i as f64 * bw;
        let mut y = h;
        for (level, colour) in LEVELS {
            let c = levels.get(level).copied().unwrap_or(0);
            if c == 0 {
                continue;
            }
            let bh = (c as f64 / max) * (h - 20.0);
            y -= bh;
            bars.push((
                x,
                y,
                (bw - 1.0).max(1.0),
                bh,
                colour,
                format!("{label} {level}: {c}"),
            ));
        }
    }
    let step = (rows.len() / 8).max(1);
    html! {
        figure {
            svg xmlns="http://www.w3.org/2000/svg" viewBox={ "0 0 " (w) " " (h + 40.0) } role="img" aria-label=(title) {
                line x1=(pad) y1=(h) x2=(w - pad) y2=(h) stroke="#767676" {}
                text x="2" y="12" font-size="11" { (max as i64) }
                @for (x, y, bw, bh, colour, t) in &bars {
                    rect x=(format!("{x:.1}")) y=(format!("{y:.1}")) width=(format!("{bw:.1}")) height=(format!("{bh:.1}")) fill=(colour) { title { (t) } }
                }
                @for (i, label) in rows.keys().enumerate() {
                    @if rows.len() <= 16 || i % step == 0 {
                        @let x = pad + i as f64 * bw;
                        text x=(format!("{x:.1}")) y=(h + 12.0) font-size="10" transform=(format!("rotate(30 {x:.1} {})", h + 12.0)) { (label) }
                    }
                }
            }
            figcaption { (title) }
        }
    }
}

/// `GET /regions/{code}`: the county's (or township's) overview — its overdue warnings and the
/// warnings the escalation tick sent up (how far, since when) as cards (households masked),
/// warnings by level over the last 30 days, and active ones by township.
pub async fn region_page(Path(code): Path<String>, p: Page) -> PageResult {
    let Page { base, c, .. } = &p;
    let (state, who) = (&base.state, &base.who);
    let lang = c.lang;
    let path = format!("/regions/{code}");
    let counts = p.or_fail(
        &path,
        crate::api::overview_data(state, who, &code, 30).await,
    )?;
    let by_day = by_level(&counts.by_day);
    let by_town = by_level(&counts.by_township);
    // The region's overdue warnings (the region was checked above), most urgent first.
    let filter = doudi_store::WarningFilter {
        region_prefix: &code,
        level: None,
        state: "active",
        assigned_to: None,
        overdue_first_at: Some(c.clock.now),
        limit: 500,
        offset: 0,
    };
    let mut overdue: Vec<WarningView> = p
        .or_fail(&path, state.store().warnings_page(&filter).await)?
        .warnings
        .into_iter()
        .filter(|w| w.deadline < c.clock.now)
        .collect();
    overdue.sort_by_key(|w| w.deadline);
    let overdue_total = overdue.len();
    overdue.truncate(20);
    for w in &mut overdue {
        doudi_app::mask::mask_json(&mut w.household);
    }
    // The warnings the escalation tick sent up, furthest up first.
    let escalated = state.store().escalated_warnings(&code, 20).await;
    let (escalated_total, mut escalated) = p.or_fail(&path, escalated)?;
    for e in &mut escalated {
        doudi_app::mask::mask_json(&mut e.warning.household);
    }
    let mut codes: Vec<String> = by_town.keys().cloned().collect();
    codes.push(code.clone());
    codes.extend(overdue.iter().map(|w| w.region_code.clone()));
    codes.extend(escalated.iter().map(|e| e.warning.region_code.clone()));
    let names = region_names(state, &codes).await;
    let body = html! {
        h2 { (lang.t("已超期的预警", "Overdue warnings")) " (" (overdue_total) ")" }
        @if overdue.is_empty() { p.msg { (lang.t("没有超期的预警。", "No warning is overdue.")) } }
        @for w in &overdue { (card(c, w, &names, None, None)) }
        @if overdue_total > overdue.len() {
            p.muted { (lang.t("仅显示超期最久的 20 条。", "Only the 20 longest overdue are shown.")) }
        }
        h2 { (lang.t("已上报的预警", "Escalated warnings")) " (" (escalated_total) ")" }
        @if escalated.is_empty() { p.msg { (lang.t("没有上报的预警。", "No warning is escalated.")) } }
        @for e in &escalated { (card(c, &e.warning, &names, None, Some(escalation(c, e)))) }
        @if escalated_total > escalated.len() as i64 {
            p.muted { (lang.t("仅显示上报级数最高的 20 条。", "Only the 20 escalated furthest are shown.")) }
        }
        h2 { (lang.t("统计", "Counts")) }
        (bar_chart(lang.t("近30天每日新开预警（按等级）", "Warnings opened per day, last 30 days, by level"), &by_day))
        (bar_chart(lang.t("各乡镇未办结预警（按等级）", "Active warnings by township and level"), &by_town))
        table {
            thead { tr {
                th scope="col" { (lang.t("乡镇", "Township")) }
                th scope="col" { (html::level(lang, Level::Red)) }
                th scope="col" { (html::level(lang, Level::Orange)) }
                th scope="col" { (html::level(lang, Level::Yellow)) }
            } }
            tbody {
                @for (t, levels) in &by_town {
                    tr {
                        td { a href={ "/regions/" (t) } { (region(&names, t)) } }
                        td { (levels.get("red").copied().unwrap_or(0)) }
                        td { (levels.get("orange").copied().unwrap_or(0)) }
                        td { (levels.get("yellow").copied().unwrap_or(0)) }
                    }
                }
            }
        }
    };
    let title = match names.get(&code) {
        Some(n) => format!("{} {n}", lang.t("辖区概览", "Region overview")),
        None => format!("{} {code}", lang.t("辖区概览", "Region overview")),
    };
    p.ok(&title, &path, body)
}

/// Counts by key (a day, a township) and level: key → level code → count.
fn by_level(rows: &[(String, Level, i64)]) -> BTreeMap<String, BTreeMap<String, i64>> {
    let mut out: BTreeMap<String, BTreeMap<String, i64>> = BTreeMap::new();
    for (key, level, n) in rows {
        out.entry(key.clone())
            .or_default()
            .insert(level.code().to_string(), *n);
    }
    out
}

/// How far the escalation tick sent a warning up and since when ("无人签收，已逐级上报 2 级 · 自
/// 2026-03-02 16:00（3 小时前）").
fn escalation(c: &Ctx, e: &doudi_store::EscalatedWarning) -> Markup {
    let lang = c.lang;
    let why = match (e.ack_steps, e.overdue, lang) {
        (0, _, Lang::Zh) => "超期未办结，已上报督办".to_string(),
        (0, _, Lang::En) => "not resolved by its deadline: sent to the supervisor".to_string(),
        (k, false, Lang::Zh) => format!("无人签收，已逐级上报 {k} 级"),
        (k, true, Lang::Zh) => format!("无人签收，已逐级上报 {k} 级；超期未办结"),
        (1, false, Lang::En) => "not acknowledged: sent 1 step up".to_string(),
        (k, false, Lang::En) => format!("not acknowledged: sent {k} steps up"),
        (k, true, Lang::En) => {
            format!("not acknowledged: sent {k} step(s) up; not resolved by its deadline")
        }
    };
    html! {
        strong.overdue { (why) }
        @if let Some(at) = &e.since { " · " (lang.t("自 ", "since ")) (when(&c.clock, at)) }
    }
}

/// A comparison's field in words.
fn field_name(lang: Lang, f: &str) -> Markup {
    let zh = match f {
        "name" => Some(("姓名", "name")),
        "birth_date" | "dob" | "birth" => Some(("出生日期", "birth date")),
        "sex" => Some(("性别", "sex")),
        "region" | "region_code" => Some(("地区", "region")),
        "id" | "id_number" => Some(("身份证号", "ID number")),
        "address" => Some(("住址", "address")),
        "phone" => Some(("电话", "phone")),
        _ => None,
    };
    match zh {
        Some((z, e)) => html! { (lang.t(z, e)) },
        None => html! { code { (f) } },
    }
}

/// Why the linker could not decide, in words.
fn link_reason(lang: Lang, why: &str) -> Markup {
    let t = match why {
        "linked" => Some(("已匹配", "linked")),
        "runner_up_within_margin" => Some(("两个候选人得分接近", "two candidates score close")),
        "repaired_id_unconfirmed" => Some((
            "身份证号经修复，未经确认",
            "the ID number was repaired and is unconfirmed",
        )),
        "between_thresholds" => Some((
            "得分介于自动匹配与拒绝之间",
            "the score is between the thresholds",
        )),
        "below_review_threshold" => Some(("得分过低", "the score is too low")),
        "no_candidates" => Some(("没有候选人", "no candidates")),
        _ => None,
    };
    match t {
        Some((z, e)) => html! { (lang.t(z, e)) },
        None => html! { code { (why) } },
    }
}

fn id_evidence(lang: Lang, id: &doudi_model::IdEvidence) -> Markup {
    use doudi_model::IdEvidence as I;
    match id {
        I::Valid { masked } => {
            html! { (lang.t("身份证号有效 ", "valid ID number ")) code { (masked) } }
        }
        I::Upgraded { masked } => {
            html! { (lang.t("15 位旧号，已升级为 ", "legacy 15-digit number, upgraded to ")) code { (masked) } }
        }
        I::Invalid { masked, problem } => {
            html! { (lang.t("身份证号无效 ", "invalid ID number ")) code { (masked) } " " code { (problem) } }
        }
        I::Missing => html! { (lang.t("缺少身份证号", "no ID number")) },
    }
}

/// The linker's evidence: the ID number as seen, the probability, why, and each candidate's
/// comparisons with their weights (the waterfall from the prior to the total).
fn evidence(lang: Lang, e: &doudi_model::Evidence) -> Markup {
    html! {
        p {
            (id_evidence(lang, &e.id_number)) " · "
            (lang.t("匹配概率 ", "match probability ")) (format!("{:.0}%", e.match_probability * 100.0)) " · "
            (link_reason(lang, &e.reason))
        }
        @for cand in &e.candidates {
            (boxed(Holder::Part, None, html! {
                p {
                    a href={ "/households/" (cand.household_id) } { (lang.t("户 ", "household ")) code { (cand.household_id) } }
                    " · " (lang.t("成员 ", "member ")) code { (cand.member_id) }
                    " · " (lang.t("总权重 ", "total weight ")) (format!("{:.2}", cand.total))
                }
                ul.plain {
                    li.muted { (lang.t("先验 ", "prior ")) (format!("{:+.2}", e.prior)) }
                    @for k in &cand.comparisons {
                        li {
                            (field_name(lang, &k.field)) " "
                            @match lang.comparison(&k.level) { Some(t) => (t), None => code { (k.level) } }
                            " " (format!("{:+.2}", k.weight + k.tf_adjustment.unwrap_or(0.0)))
                        }
                    }
                }
            }))
        }
    }
}

/// `GET /review`: the identity review queue of the signed-in person's region, with the evidence
/// and (for officers and supervisors) the decide buttons.
pub async fn review(p: Page) -> PageResult {
    let Page { base, q, c } = &p;
    let (state, who) = (&base.state, &base.who);
    let lang = c.lang;
    let items = doudi_app::review::pending(state.store(), &who.who(), 50).await;
    let items = p.or_fail("/review", items)?;
    let doer = who.role.is_regional() && who.officer_id.is_some();
    let body = html! {
        @if let Some(done) = &q.done {
            p.msg role="status" { (lang.t("已记录复核决定：", "Decision recorded: ")) code { (done) } }
        }
        p { (items.len()) " " (lang.t("条待人工确认的记录（数据比对无法确定是谁）。", "records wait for a person to decide whom they are about.")) }
        @for item in &items {
            (boxed(Holder::Article, None, html! {
                h3 { (lang.source(&item.source)) (lang.t("：", ": ")) (lang.kind(&item.kind)) " · " code { "#" (item.seq) } }
                p.when { (lang.t("发生于 ", "happened ")) (when(&c.clock, &item.occurred_at)) " · " (lang.t("进入复核 ", "queued ")) (c.clock.at(&item.queued_at)) }
                (evidence(lang, &item.evidence))
                @if doer {
                    @for cand in &item.evidence.candidates {
                        form.inline method="post" action={ "/review/" (item.seq) "/decide" } {
                            input type="hidden" name="csrf" value=(who.form_token);
                            input type="hidden" name="link" value=(cand.member_id);
                            button type="submit" { (lang.t("是此人：", "It is ")) code { (cand.member_id) } }
                        }
                    }
                    form.inline method="post" action={ "/review/" (item.seq) "/decide" } {
                        input type="hidden" name="csrf" value=(who.form_token);
                        input type="hidden" name="reject" value="true";
                        button type="submit" { (lang.t("都不是（拒绝）", "None of them (reject)")) }
                    }
                }
            }))
        }
    };
    p.ok(lang.t("身份复核", "Review queue"), "/review", body)
}

/// A review decision from the page.
#[derive(Debug, Default, Deserialize)]
pub struct DecideForm {
    #[serde(default)]
    pub csrf: String,
    pub link: Option<String>,
    pub reject: Option<String>,
    #[serde(default)]
    pub note: String,
}

/// `POST /review/{seq}/decide`: link the record to a candidate or reject it.
pub async fn decide(p: Posted, Path(seq): Path<String>, Form(f): Form<DecideForm>) -> Response {
    let Posted { state, who, .. } = &p;
    let result = async {
        p.check(&f.csrf)?;
        let seq: i64 = seq
            .parse()
            .map_err(|_| ApiError::NotFound(format!("no review record {seq:?}")))?;
        let decision = match (f.link.clone().filter(|l| !l.is_empty()), f.reject.is_some()) {
            (Some(member_id), false) => doudi_app::review::Decision::Link { member_id },
            (None, true) => doudi_app::review::Decision::Reject,
            _ => {
                return Err(ApiError::BadRequest(
                    "choose one candidate or reject the record".into(),
                ))
            }
        };
        let by = who.officer()?.to_string();
        let settings = state.config().engine_settings();
        let note = if f.note.trim().is_empty() {
            "page"
        } else {
            f.note.trim()
        };
        doudi_app::review::decide(
            state.store(),
            &settings,
            &who.who(),
            seq,
            decision,
            &by,
            note,
        )
        .await?;
        Ok::<_, ApiError>(seq)
    }
    .await;
    match result {
        Ok(seq) => see_other(&format!("/review?done={seq}")),
        Err(e) => p.fail("/review", &e),
    }
}

/// A dead letter's reason code in words.
fn dead_reason(lang: Lang, code: &str) -> Markup {
    let t = match code {
        "too_large" => Some(("记录过大", "too large")),
        "invalid_utf8" => Some(("文字编码不对", "not valid text")),
        "too_deep" => Some(("嵌套层数过多", "nested too deep")),
        "not_json" | "not_object" => Some(("格式无法读取", "not a readable record")),
        "missing_field" => Some(("缺少必填项", "a required field is missing")),
        "unknown_source" => Some(("来源部门不明", "unknown source")),
        "unknown_kind" => Some(("记录类型不明", "unknown kind")),
        "invalid_field" => Some(("字段内容不合规", "a field is not valid")),
        "source_mismatch" => Some(("来源与数据通道不符", "source does not match the feed")),
        "row_refused" => Some(("表格行无法转换", "a spreadsheet row was refused")),
        "file_unreadable" => Some(("文件无法读取", "the file is unreadable")),
        _ => None,
    };
    match t {
        Some((z, e)) => html! { (lang.t(z, e)) " " code { (code) } },
        None => html! { code { (code) } },
    }
}

/// `GET /deadletters`: records refused at ingest (their raw bytes are not shown), and for
/// administrators the replay form.
pub async fn dead_letters(p: Page) -> PageResult {
    let Page { base, q, c } = &p;
    let (state, who) = (&base.state, &base.who);
    let lang = c.lang;
    let list = p.or_fail("/deadletters", state.store().dead_letters(200).await)?;
    let body = html! {
        @if let Some((seen, replayed, refused)) = q.done.as_deref().and_then(replay_counts) {
            p.msg role="status" {
                @match lang {
                    Lang::Zh => { "已查看 " (seen) " 条，重放 " (replayed) " 条，仍被退回 " (refused) " 条。" }
                    Lang::En => { (seen) " looked at, " (replayed) " replayed, " (refused) " still refused." }
                }
            }
        }
        p { (list.len()) " " (lang.t("条被退回的记录（无法读取或不合规，原始内容不在此显示）。", "records refused at ingest (their raw bytes are not shown).")) }
        @if who.role == Role::Admin {
            form.act method="post" action="/deadletters/replay" {
                h3 { (lang.t("修复后重放", "Replay after a fix")) }
                input type="hidden" name="csrf" value=(who.form_token);
                label { (lang.t("只重放此原因（可不填）", "Only this reason code (optional)")) input name="reason"; }
                button type="submit" id="replay" { (lang.t("重放未重放的记录", "Replay those not replayed yet")) }
            }
        }
        ul.plain {
            @for d in &list {
                (boxed(Holder::Item, None, html! {
                    strong { (lang.source(&d.source)) } " · " code { (d.stream) ":" (d.line) } " · " code { "#" (d.id) }
                    br;
                    (dead_reason(lang, &d.reason_code))
                    br;
                    span.muted {
                        (d.raw_len) (lang.t(" 字节", " bytes"))
                        @if let Some(at) = &d.replayed_at { " · " (lang.t("已重放 ", "replayed ")) (at) }
                    }
                }))
            }
        }
    };
    p.ok(lang.t("退回记录", "Dead letters"), "/deadletters", body)
}

/// A replay from the page.
#[derive(Debug, Default, Deserialize)]
pub struct ReplayForm {
    #[serde(default)]
    pub csrf: String,
    pub reason: Option<String>,
}

/// `POST /deadletters/replay`: after a fix, send the dead letters that pass now through the
/// pipeline (as `doudi deadletters replay`).
pub async fn replay(p: Posted, Form(f): Form<ReplayForm>) -> Response {
    let Posted { state, who, .. } = &p;
    let result = async {
        p.check(&f.csrf)?;
        let cfg = state.config();
        let settings = cfg.engine_settings();
        let replay = doudi_pipeline::ReplayOptions {
            ids: &[],
            reason: f.reason.as_deref().map(str::trim).filter(|r| !r.is_empty()),
            feeds: &cfg.feeds_dir,
            limits: settings.limits,
            page_size: cfg.replay_page_size,
            topic_profiles: &cfg.topic_profiles,
        };
        let report =
            doudi_app::replay::replay(state.store(), &settings, &who.who(), &replay).await?;
        Ok::<_, ApiError>(report.map_or((0, 0, 0), |r| (r.seen, r.replayed, r.still_refused.len())))
    }
    .await;
    match result {
        // Only the three counts travel in the address: the sentence is the page's own, so a
        // link cannot make the page say anything else.
        Ok((seen, replayed, refused)) => {
            see_other(&format!("/deadletters?done={seen}.{replayed}.{refused}"))
        }
        Err(e) => p.fail("/deadletters", &e),
    }
}

/// The counts of a replay as the dead-letter page's address carries them (`SEEN.REPLAYED.REFUSED`).
fn replay_counts(done: &str) -> Option<(u64, u64, u64)> {
    let mut parts = done.split('.').map(|p| p.parse::<u64>().ok());
    match (parts.next(), parts.next(), parts.next(), parts.next()) {
        (Some(Some(a)), Some(Some(b)), Some(Some(c)), None) => Some((a, b, c)),
        _ => None,
    }
}

/// `GET /households/{id}/trace`: the auditor's page — the household's story as a timeline: each
/// source record (file and line, or topic, partition and offset) with its identity decision and
/// evidence, each assessment with its rule contributions and rule-set version, each warning move
/// and who made it; the JSON with `?format=json`. In clear for auditors (the read is audited),
/// masked for officers and supervisors.
pub async fn trace(Path(id): Path<String>, p: Page) -> PageResult {
    let Page { base, q, c } = &p;
    let (state, who) = (&base.state, &base.who);
    let lang = c.lang;
    let path = format!("/households/{id}/trace");
    let via = "GET /households/{id}/trace";
    let asker = who.who();
    let read = doudi_app::household::trace(state.store(), &asker, &id, View::Trace, via);
    let read = p.or_fail(&path, read.await)?;
    let (entries, masked) = (read.value, read.masked);
    if q.format.as_deref() == Some("json") {
        let json = serde_json::json!({"household_id": id, "masked": masked, "entries": entries});
        return Ok(Json(json).into_response());
    }
    let body = html! {
        p.muted {
            (entries.len()) " " (lang.t("条记录 · ", "entries · "))
            @if masked { (lang.t("个人信息已遮蔽", "personal data masked")) }
            @else { (lang.t("含个人信息：本次查阅已记入审计日志", "personal data shown: this read is recorded in the audit trail")) }
            " · " a.noprint href={ (path) "?format=json" } { (lang.t("原始数据下载", "the same as JSON")) }
        }
        ol.tl {
            @for e in fold_trace(&entries) { (trace_entry(c, e.0, e.1)) }
        }
    };
    p.ok(
        &format!("{} {id}", lang.t("全程追溯", "Trace of household")),
        &path,
        body,
    )
}

/// The trace with runs of identical warning updates (same warning, action and actor, no note)
/// folded into their first entry and a count.
fn fold_trace(entries: &[TraceEntry]) -> Vec<(&TraceEntry, usize)> {
    let mut out: Vec<(&TraceEntry, usize)> = Vec::new();
    for e in entries {
        if let (
            Some((
                TraceEntry::Warning {
                    warning_id: a,
                    action: aa,
                    actor: ab,
                    note: an,
                    refused: ar,
                    ..
                },
                n,
            )),
            TraceEntry::Warning {
                warning_id: b,
                action: ba,
                actor: bb,
                note: bn,
                refused: br,
                ..
            },
        ) = (out.last_mut(), e)
        {
            if a == b
                && aa == ba
                && ab == bb
                && an.is_none()
                && bn.is_none()
                && ar.is_none()
                && br.is_none()
            {
                *n += 1;
                continue;
            }
        }
        out.push((e, 1));
    }
    out
}

fn trace_entry(c: &Ctx, e: &TraceEntry, n: usize) -> Markup {
    let lang = c.lang;
    match e {
        TraceEntry::Register {
            at,
            change,
            file,
            record,
        } => html! {
            li {
                div.when { (c.clock.at(at)) }
                strong { (lang.register_change(change)) } " · " (lang.t("名册文件 ", "register file ")) code { (file) }
                @if let Some(r) = record {
                    details { summary { (lang.t("登记内容", "The record")) } pre { code { (r.to_string()) } } }
                }
            }
        },
        TraceEntry::Event {
            at,
            received_at,
            seq,
            source,
            kind,
            event_id,
            stream,
            position,
            profile,
            raw,
            raw_removed_at,
            outcome,
            member_id,
            evidence: ev,
            review,
            ..
        } => html! {
            li {
                div.when { (c.clock.at(at)) " · " (lang.t("收到于 ", "received ")) (c.clock.at(received_at)) }
                strong { (lang.t("原始记录：", "Source record: ")) (lang.source(source)) " " (lang.kind(kind)) }
                " " code { "#" (seq) }
                br;
                (lang.t("来源 ", "From ")) code { (stream) } " · " (lang.t("位置 ", "position ")) code { (position) }
                " · " (lang.t("编号 ", "record id ")) code { (event_id) }
                @if let Some(p) = profile { " · " (lang.t("格式 ", "profile ")) code { (p) } }
                br;
                strong { (lang.t("身份判定：", "Identity decision: ")) (lang.outcome(outcome.code())) }
                @if let Some(m) = member_id { " → " (lang.t("成员 ", "member ")) code { (m) } }
                (evidence(lang, ev))
                @if let Some(r) = review {
                    p { (lang.t("人工复核：", "Review: ")) code { (r.to_string()) } }
                }
                @if let Some(removed) = raw_removed_at {
                    p { (lang.t("原始内容已按保存期限删除于 ", "The record as received was removed by retention on ")) (c.clock.at(removed)) }
                } @else {
                    details { summary { (lang.t("收到的原始内容", "The record as received")) } pre { code { (raw) } } }
                }
            }
        },
        TraceEntry::Assessment {
            at,
            seq,
            rule_set_version,
            score,
            level,
            assessment,
        } => html! {
            li {
                div.when { (c.clock.at(at)) }
                strong { (lang.t("风险评估：", "Assessment: ")) } (html::level(lang, *level)) " " (lang.t("评分 ", "score ")) (score)
                " · " (lang.t("规则集 ", "rule set ")) code { (rule_set_version) } " · " code { "#" (seq) }
                @if let Some(a) = assessment {
                    ul.plain {
                        @for k in &a.contributions {
                            li { strong { (format!("{:+}", k.points)) } " " (lang.t(&k.reason_zh, &k.reason_en)) " " code { (k.rule_id) } }
                        }
                    }
                }
            }
        },
        TraceEntry::Warning {
            warning_id,
            at,
            action,
            actor,
            level,
            score,
            note,
            refused,
        } => html! {
            li {
                div.when { (c.clock.at(at)) }
                strong { (lang.t("预警 ", "Warning ")) } a href={ "/warnings/" (warning_id) } { "#" (warning_id) }
                " " strong { (lang.action(action)) } @if n > 1 { " ×" (n) }
                " · " (lang.actor(actor)) " · " (html::level(lang, *level)) " " (score)
                @if let Some(t) = note.as_deref().filter(|t| !t.is_empty()) { p { (lang.history_note(action, t)) } }
                @if let Some(r) = refused { p.err { (lang.t("已拒绝：", "refused: ")) (refusal_text(lang, r)) } }
            }
        },
        TraceEntry::Finding {
            at,
            check,
            status,
            finding,
            close_note,
            ..
        } => html! {
            li {
                div.when { (at) }
                strong { (lang.t("核查发现：", "Finding: ")) } code { (check) } " · " (lang.finding_status(status))
                @if let Some(n) = close_note { " · " (n) }
                details { summary { (lang.t("内容", "Detail")) } pre { code { (json_text(finding)) } } }
            }
        },
    }
}

/// Why the warning is at its level, and "verify and close" when the risk that raised it no
/// longer counts (with the findings as they stood and what changed since).
fn explanation(lang: Lang, level: Level, summary: &doudi_model::Assessment) -> Markup {
    use doudi_warnings::explain::{explain, Ask};
    let e = explain(level, summary);
    let (why, lapsed) = match lang {
        Lang::Zh => (&e.why_zh, &e.lapsed_zh),
        Lang::En => (&e.why_en, &e.lapsed_en),
    };
    html! {
        @if e.ask == Ask::VerifyAndClose {
            p.msg { strong { (lang.t("请核实后关闭", "Verify and close")) } }
        }
        @for line in why { p { (line) } }
        @if !lapsed.is_empty() {
            h3 { (lang.t("提出预警的风险因素（已不再计入）", "Raised by (no longer counting)")) }
            ul { @for line in lapsed { li { (line) } } }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(action: &str, note: Option<&str>, minute: i64) -> HistoryEntry {
        HistoryEntry {
            at: DateTime::<Utc>::UNIX_EPOCH + chrono::TimeDelta::minutes(minute),
            action: action.into(),
            actor: "pipeline".into(),
            level: Level::Red,
            score: 80,
            source: None,
            event_id: None,
            note: note.map(str::to_string),
            refused: None,
        }
    }

    #[test]
    fn repeated_history_lines_are_folded_with_a_count_and_notes_are_kept() {
        let mut h = vec![entry("opened", None, 0)];
        h.extend((1..=11).map(|m| entry("updated", None, m)));
        h.push(entry("acknowledge", Some("已电话联系"), 20));
        h.push(entry("updated", None, 21));
        let f = fold_history(&h);
        let shape: Vec<(&str, usize)> = f
            .iter()
            .map(|f| (f.first.action.as_str(), f.count))
            .collect();
        assert_eq!(
            shape,
            [
                ("opened", 1),
                ("updated", 11),
                ("acknowledge", 1),
                ("updated", 1)
            ]
        );
        assert_eq!(f[1].last_at, h[11].at);
    }
}
