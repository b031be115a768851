//! The pages for township officers, supervisors and auditors: server-rendered HTML, no JavaScript.
//! Sign in by pasting an API token: it opens a session whose own token becomes an HttpOnly,
//! SameSite=Strict cookie; signing out ends the session, not the API token. Forms post with a
//! form token derived from the session ([`crate::auth::form_token`]) and are refused without it.
//! Every text that comes from data is escaped ([`esc`]).

use std::collections::BTreeMap;
use std::fmt::Write;

use axum::extract::{Path, Query, Request, State};
use axum::http::header::{LOCATION, ORIGIN, SET_COOKIE};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Form};
use doudi_app::mask::View;
use doudi_model::{Level, WarningStatus};
use doudi_store::ts;
use doudi_warnings::lifecycle::Move;
use serde::Deserialize;
use serde_json::Value;

use crate::auth::{self, SESSION_COOKIE};
use crate::error::ApiError;
use crate::html::{self, error_page, esc, html_response, page, Lang};
use crate::principal::{Principal, Role};
use crate::AppState;

/// `?lang=` on any page.
#[derive(Debug, Default, Deserialize)]
pub struct LangQuery {
    pub lang: Option<String>,
    /// A message after a form (`done=acknowledged`, …).
    pub done: Option<String>,
    /// Set when the sign-in expired.
    pub expired: Option<String>,
}

fn see_other(to: &str) -> Response {
    let mut r = StatusCode::SEE_OTHER.into_response();
    if let Ok(v) = HeaderValue::from_str(to) {
        r.headers_mut().insert(LOCATION, v);
    }
    r
}

fn sign_in_body(lang: Lang, message: Option<&str>) -> String {
    format!(
        "{}<form method=\"post\" action=\"/sign-in\"><p><label>{}<br><input name=\"token\" type=\"password\" size=\"72\" autocomplete=\"off\" required></label></p><p><button type=\"submit\">{}</button></p></form><p><small>{}</small></p>",
        message.map(|m| format!("<p class=\"err\">{}</p>", esc(m))).unwrap_or_default(),
        lang.t("访问令牌（由管理员以 doudi tokens create 生成）", "Access token (an administrator creates it with doudi tokens create)"),
        lang.t("登录", "Sign in"),
        lang.t("登录后本浏览器持有一个会话 Cookie（最长 12 小时，退出即失效）；访问令牌本身不保存在浏览器中。", "Signing in gives this browser a session cookie (12 hours at most, ended when you sign out); the access token itself is not kept in the browser."),
    )
}

/// `GET /sign-in`.
pub async fn sign_in_form(headers: HeaderMap, Query(q): Query<LangQuery>) -> Response {
    let (lang, set) = Lang::pick(q.lang.as_deref(), &headers);
    let msg = q.expired.as_ref().map(|_| {
        lang.t(
            "令牌无效、已过期或已撤销，请重新登录。",
            "The token is unknown, expired or revoked: sign in again.",
        )
    });
    html_response(
        StatusCode::OK,
        lang,
        set,
        page(
            lang,
            lang.t("登录", "Sign in"),
            None,
            "/sign-in",
            &sign_in_body(lang, msg),
        ),
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
            html_response(
                StatusCode::UNAUTHORIZED,
                lang,
                false,
                page(
                    lang,
                    lang.t("登录", "Sign in"),
                    None,
                    "/sign-in",
                    &sign_in_body(lang, Some(&why)),
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
pub async fn sign_out(
    State(state): State<AppState>,
    Extension(who): Extension<Principal>,
    headers: HeaderMap,
    Form(f): Form<CsrfForm>,
) -> Response {
    let (lang, _) = Lang::pick(None, &headers);
    if let Err(e) = check_form(&state, &headers, &who, &f.csrf) {
        return error_page(lang, Some(&who), "/", &e);
    }
    // The session ends here (its cookie is no longer accepted, wherever a copy of it is); the API
    // token it acted for stays valid.
    if let Some(hash) = &who.session_hash {
        if let Err(e) = state.store().end_session(hash, &who.actor()).await {
            return error_page(lang, Some(&who), "/", &ApiError::from(e));
        }
    }
    tracing::info!(token_id = who.token_id, "signed out");
    let mut r = see_other("/sign-in?signed_out=1");
    r.headers_mut().insert(
        SET_COOKIE,
        HeaderValue::from_static("doudi_session=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0"),
    );
    r
}

fn household_line(lang: Lang, h: &Value) -> String {
    let category = h.get("category").and_then(Value::as_str).unwrap_or("");
    let members = h
        .get("members")
        .and_then(Value::as_array)
        .map_or(0, Vec::len);
    format!(
        "{} · {} {}",
        esc(&html::category(lang, category)),
        members,
        lang.t("人", "members")
    )
}

/// `GET /`: the warnings of the signed-in person's region, most urgent first, with the time left.
pub async fn inbox(
    State(state): State<AppState>,
    Extension(who): Extension<Principal>,
    headers: HeaderMap,
    Query(q): Query<LangQuery>,
) -> Response {
    let (lang, set) = Lang::pick(q.lang.as_deref(), &headers);
    let filter = doudi_store::WarningFilter {
        region_prefix: who.scope(),
        level: None,
        state: "active",
        assigned_to: None,
        limit: 200,
        offset: 0,
    };
    let list = match state.store().warnings_page(&filter).await {
        Ok(l) => l,
        Err(e) => return error_page(lang, Some(&who), "/", &e.into()),
    };
    let mut b = String::new();
    let _ = write!(
        b,
        "<p>{} {} · {}</p><table><thead><tr><th>#</th><th>{}</th><th>{}</th><th>{}</th><th>{}</th><th>{}</th><th>{}</th></tr></thead><tbody>",
        list.total,
        lang.t("条未办结预警", "active warnings"),
        esc(if who.scope().is_empty() { lang.t("全部辖区", "all regions") } else { who.scope() }),
        lang.t("等级", "Level"),
        lang.t("期限", "Deadline"),
        lang.t("户", "Household"),
        lang.t("村（社区）", "Village"),
        lang.t("状态", "Status"),
        lang.t("责任人", "Officer"),
    );
    for w in &list.warnings {
        let mut household = w.household.clone();
        doudi_app::mask::mask_json(&mut household);
        let _ = write!(
            b,
            "<tr><td><a href=\"/warnings/{id}\">#{id}</a></td><td>{}</td><td>{}<br><small>{}</small></td><td><a href=\"/warnings/{id}\">{}</a><br><small>{}</small></td><td>{}</td><td>{}</td><td>{}</td></tr>",
            html::level(lang, w.level),
            html::time_left(lang, &w.deadline),
            html::time(&w.deadline) + &happened(lang, w),
            esc(&w.household_id),
            household_line(lang, &household),
            esc(&w.region_code),
            html::status(lang, w.status),
            esc(w.assigned_to.as_deref().unwrap_or("—")),
            id = w.warning_id,
        );
    }
    b.push_str("</tbody></table>");
    if list.total > list.warnings.len() as i64 {
        let _ = write!(
            b,
            "<p><small>{}</small></p>",
            lang.t(
                "仅显示最紧急的 200 条。",
                "Only the 200 most urgent are shown."
            )
        );
    }
    html_response(
        StatusCode::OK,
        lang,
        set,
        page(lang, lang.t("待办预警", "Inbox"), Some(&who), "/", &b),
    )
}

/// A stored document as compact JSON with its keys in order, as the trace shows it.
fn json_text(v: &impl serde::Serialize) -> String {
    serde_json::to_value(v)
        .map(|v| v.to_string())
        .unwrap_or_default()
}

fn text(v: &Value, key: &str) -> String {
    v.get(key).and_then(Value::as_str).unwrap_or("").to_string()
}

/// `GET /warnings/{id}`: who, why, how urgent, what to do — and the forms to act.
pub async fn warning(
    State(state): State<AppState>,
    Extension(who): Extension<Principal>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(q): Query<LangQuery>,
) -> Response {
    let (lang, set) = Lang::pick(q.lang.as_deref(), &headers);
    let path = format!("/warnings/{id}");
    let Ok(num) = id.parse::<i64>() else {
        return error_page(
            lang,
            Some(&who),
            "/",
            &ApiError::NotFound(format!("no warning {id:?}")),
        );
    };
    let asker = who.who();
    let read = doudi_app::warnings::show_warning(state.store(), &asker, num, "GET /warnings/{id}");
    let d = match read.await.map_err(ApiError::from) {
        Ok(d) => d,
        Err(e) => return error_page(lang, Some(&who), &path, &e),
    };
    let w = &d.warning;
    let mut b = String::new();
    if let Some(done) = &q.done {
        let _ = write!(
            b,
            "<p class=\"msg\">{} → {}</p>",
            lang.t("已记录", "Recorded"),
            WarningStatus::from_code(done).map_or_else(|| esc(done), |s| html::status(lang, s))
        );
    }
    let _ = write!(
        b,
        "<p>{} · {} · {} {} · {}<br>{}: {} ({})</p>",
        html::level(lang, w.level),
        html::status(lang, w.status),
        lang.t("评分", "score"),
        w.score,
        html::time_left(lang, &w.deadline),
        lang.t("期限", "Deadline"),
        html::time(&w.deadline),
        lang.t("开启于 ", "opened ").to_string() + &html::time(&w.opened_at) + &happened(lang, w),
    );
    let h = &w.household;
    let _ = write!(
        b,
        "<h2>{}</h2><p>{} {} · {} · {} {} · {}</p><table><tr><th>{}</th><th>{}</th><th>{}</th><th>{}</th></tr>",
        lang.t("户", "Household"),
        esc(&w.household_id),
        esc(&html::category(lang, &text(h, "category"))),
        esc(&text(h, "address")),
        lang.t("区划", "region"),
        esc(&w.region_code),
        esc(w.assigned_to.as_deref().unwrap_or("—")),
        lang.t("成员", "Member"),
        lang.t("姓名", "Name"),
        lang.t("身份证号", "ID number"),
        lang.t("关系", "Relation"),
    );
    for m in h
        .get("members")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let _ = write!(
            b,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(&text(m, "member_id")),
            esc(&text(m, "name")),
            esc(&text(m, "id_number")),
            esc(&text(m, "relation")),
        );
    }
    b.push_str("</table>");
    explanation(&mut b, lang, w.level, &w.summary);
    let _ = write!(b, "<h2>{}</h2><table>", lang.t("预警原因", "Why"));
    for c in &w.summary.contributions {
        let _ = write!(
            b,
            "<tr><td>{:+}</td><td>{}</td></tr>",
            c.points,
            esc(lang.t(&c.reason_zh, &c.reason_en)),
        );
    }
    let _ = write!(
        b,
        "</table><p><small>{} {}</small></p>",
        lang.t("规则集版本", "rule set"),
        esc(&w.summary.rule_set_version)
    );
    if let Some(r) = &w.summary.relief {
        let fen = r.amount.fen();
        let within = r.within_township_limit;
        let _ = write!(
            b,
            "<h2>{}</h2><p>{} {}.{:02} {} · {}<br>{}</p>",
            lang.t("建议救助", "Suggested relief"),
            lang.t("临时救助", "temporary relief"),
            fen / 100,
            fen % 100,
            lang.t("元", "yuan"),
            if within {
                lang.t(
                    "在乡镇审批限额内（可先行救助）",
                    "within the township's approval limit (relief may be granted first)",
                )
            } else {
                lang.t(
                    "超过乡镇限额，须县级审批",
                    "above the township's limit: the county approves",
                )
            },
            esc(lang.t(&r.reason_zh, &r.reason_en)),
        );
    }
    if let Some(disp) = &d.disposition {
        let _ = write!(
            b,
            "<p>{}: <code>{}</code></p>",
            lang.t("处置", "Disposition"),
            esc(&json_text(disp))
        );
    }
    if who.role.is_regional() && w.status != WarningStatus::Resolved {
        let csrf = esc(&who.form_token);
        let note = lang.t("说明", "Note");
        if w.status == WarningStatus::Open {
            let _ = write!(
                b,
                "<form class=\"act\" method=\"post\" action=\"/warnings/{num}/acknowledge\"><input type=\"hidden\" name=\"csrf\" value=\"{csrf}\"><label>{note} <input name=\"note\"></label> <button type=\"submit\" id=\"acknowledge\">{}</button></form>",
                lang.t("签收", "Acknowledge"),
            );
        }
        if w.status != WarningStatus::Visited {
            let _ = write!(
                b,
                "<form class=\"act\" method=\"post\" action=\"/warnings/{num}/visit\"><input type=\"hidden\" name=\"csrf\" value=\"{csrf}\"><label>{}<textarea name=\"note\" required></textarea></label><button type=\"submit\" id=\"visit\">{}</button></form>",
                lang.t("入户核查情况（必填）", "What the visit found (required)"),
                lang.t("记录入户核查", "Record the visit"),
            );
        }
        if w.status != WarningStatus::Open {
            let _ = write!(
                b,
                "<form class=\"act\" method=\"post\" action=\"/warnings/{num}/resolve\"><input type=\"hidden\" name=\"csrf\" value=\"{csrf}\"><label>{} <select name=\"disposition\"><option value=\"relief_granted\">{}</option><option value=\"enrolled\">{}</option><option value=\"referred\">{}</option><option value=\"risk_cleared\">{}</option><option value=\"false_alarm\">{}</option></select></label> <label>{} <input name=\"amount\" size=\"8\"></label> <label>{} <input name=\"category\" size=\"10\"></label> <label>{} <input name=\"department\" size=\"10\"></label><label>{}<textarea name=\"note\" required></textarea></label><button type=\"submit\" id=\"resolve\">{}</button></form>",
                lang.t("处置", "Disposition"),
                lang.t("给予临时救助", "relief granted"),
                lang.t("纳入低保/特困", "enrolled"),
                lang.t("转介其他部门", "referred"),
                lang.t("风险消除", "risk cleared"),
                lang.t("误报", "false alarm"),
                lang.t("金额（元）", "amount (yuan)"),
                lang.t("类别", "category"),
                lang.t("部门", "department"),
                lang.t("办结说明（必填）", "Why (required)"),
                lang.t("办结", "Resolve"),
            );
        }
    }
    let _ = write!(
        b,
        "<h2>{}</h2><table><tr><th>{}</th><th>{}</th><th>{}</th><th>{}</th></tr>",
        lang.t("处理记录", "History"),
        lang.t("时间", "When"),
        lang.t("动作", "Action"),
        lang.t("人员", "By"),
        lang.t("说明", "Note"),
    );
    for e in &d.history {
        let _ = write!(
            b,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}{}</td></tr>",
            html::time(&e.at),
            esc(&e.action),
            esc(&e.actor),
            esc(e.note.as_deref().unwrap_or("")),
            e.refused
                .as_deref()
                .map(|r| format!(
                    " <strong>[{}: {}]</strong>",
                    lang.t("已拒绝", "refused"),
                    esc(r)
                ))
                .unwrap_or_default(),
        );
    }
    b.push_str("</table>");
    if who.role != Role::Admin {
        let _ = write!(
            b,
            "<p><a href=\"/households/{}/trace\">{}</a></p>",
            esc(&w.household_id),
            lang.t("全程追溯", "Trace")
        );
    }
    html_response(
        StatusCode::OK,
        lang,
        set,
        page(
            lang,
            &format!("{} #{num}", lang.t("预警", "Warning")),
            Some(&who),
            &path,
            &b,
        ),
    )
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

async fn move_page(
    state: AppState,
    who: Principal,
    headers: HeaderMap,
    id: String,
    form: MoveForm,
    make: impl FnOnce(&MoveForm) -> Result<Move, ApiError>,
) -> Response {
    let (lang, _) = Lang::pick(None, &headers);
    let path = format!("/warnings/{id}");
    let result = async {
        check_form(&state, &headers, &who, &form.csrf)?;
        let num: i64 = id
            .parse()
            .map_err(|_| ApiError::NotFound(format!("no warning {id:?}")))?;
        let m = make(&form)?;
        crate::api::make_move(&state, &who, num, form.note.trim(), m).await
    }
    .await;
    match result {
        Ok(moved) => see_other(&format!("/warnings/{}?done={}", moved.warning_id, moved.to)),
        Err(e) => error_page(lang, Some(&who), &path, &e),
    }
}

/// `POST /warnings/{id}/acknowledge`.
pub async fn acknowledge(
    State(state): State<AppState>,
    Extension(who): Extension<Principal>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Form(form): Form<MoveForm>,
) -> Response {
    move_page(state, who, headers, id, form, |_| Ok(Move::Acknowledge)).await
}

/// `POST /warnings/{id}/visit`.
pub async fn visit(
    State(state): State<AppState>,
    Extension(who): Extension<Principal>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Form(form): Form<MoveForm>,
) -> Response {
    move_page(state, who, headers, id, form, |_| Ok(Move::Visit)).await
}

/// `POST /warnings/{id}/resolve`.
pub async fn resolve(
    State(state): State<AppState>,
    Extension(who): Extension<Principal>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Form(form): Form<MoveForm>,
) -> Response {
    move_page(state, who, headers, id, form, |f| {
        Ok(Move::Resolve(doudi_app::warnings::disposition(
            &f.disposition,
            f.amount.as_deref(),
            f.category.as_deref(),
            f.department.as_deref(),
        )?))
    })
    .await
}

const LEVELS: [(&str, &str); 3] = [
    ("red", "#c62828"),
    ("orange", "#ef6c00"),
    ("yellow", "#f9a825"),
];

/// Stacked bars (one per label, levels stacked) as inline SVG.
fn bar_chart(title: &str, rows: &BTreeMap<String, BTreeMap<String, i64>>) -> String {
    let (w, h, pad) = (720.0_f64, 220.0_f64, 30.0_f64);
    let max = rows
        .values()
        .map(|m| m.values().sum::<i64>())
        .max()
        .unwrap_or(0)
        .max(1) as f64;
    let n = rows.len().max(1) as f64;
    let bw = ((w - 2.0 * pad) / n).max(2.0);
    let mut s = format!(
        "<figure><svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{}\" role=\"img\" aria-label=\"{}\"><line x1=\"{pad}\" y1=\"{}\" x2=\"{}\" y2=\"{}\" stroke=\"#999\"/><text x=\"2\" y=\"12\" font-size=\"11\">{}</text>",
        h + 40.0,
        esc(title),
        h,
        w - pad,
        h,
        max as i64
    );
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
            let _ = write!(
                s,
                "<rect x=\"{x:.1}\" y=\"{y:.1}\" width=\"{:.1}\" height=\"{bh:.1}\" fill=\"{colour}\"><title>{} {}: {c}</title></rect>",
                (bw - 1.0).max(1.0),
                esc(label),
                level
            );
        }
        if rows.len() <= 16 || i % (rows.len() / 8).max(1) == 0 {
            let _ = write!(
                s,
                "<text x=\"{x:.1}\" y=\"{}\" font-size=\"10\" transform=\"rotate(30 {x:.1} {})\">{}</text>",
                h + 12.0,
                h + 12.0,
                esc(label)
            );
        }
    }
    let _ = write!(s, "</svg><figcaption>{}</figcaption></figure>", esc(title));
    s
}

/// `GET /regions/{code}`: warnings by level over the last 30 days, and active ones by township.
pub async fn region(
    State(state): State<AppState>,
    Extension(who): Extension<Principal>,
    headers: HeaderMap,
    Path(code): Path<String>,
    Query(q): Query<LangQuery>,
) -> Response {
    let (lang, set) = Lang::pick(q.lang.as_deref(), &headers);
    let path = format!("/regions/{code}");
    let counts = match crate::api::overview_data(&state, &who, &code, 30).await {
        Ok(c) => c,
        Err(e) => return error_page(lang, Some(&who), &path, &e),
    };
    let mut by_day: BTreeMap<String, BTreeMap<String, i64>> = BTreeMap::new();
    for (d, l, n) in &counts.by_day {
        by_day
            .entry(d.clone())
            .or_default()
            .insert(l.code().to_string(), *n);
    }
    let mut by_town: BTreeMap<String, BTreeMap<String, i64>> = BTreeMap::new();
    for (t, l, n) in &counts.by_township {
        by_town
            .entry(t.clone())
            .or_default()
            .insert(l.code().to_string(), *n);
    }
    let mut b = String::new();
    b.push_str(&bar_chart(
        lang.t(
            "近30天每日新开预警（按等级）",
            "Warnings opened per day, last 30 days, by level",
        ),
        &by_day,
    ));
    b.push_str(&bar_chart(
        lang.t(
            "各乡镇未办结预警（按等级）",
            "Active warnings by township and level",
        ),
        &by_town,
    ));
    let _ = write!(
        b,
        "<table><tr><th>{}</th><th>{}</th><th>{}</th><th>{}</th></tr>",
        lang.t("乡镇", "Township"),
        html::level(lang, Level::Red),
        html::level(lang, Level::Orange),
        html::level(lang, Level::Yellow),
    );
    for (t, levels) in &by_town {
        let _ = write!(
            b,
            "<tr><td><a href=\"/regions/{t}\">{t}</a></td><td>{}</td><td>{}</td><td>{}</td></tr>",
            levels.get("red").copied().unwrap_or(0),
            levels.get("orange").copied().unwrap_or(0),
            levels.get("yellow").copied().unwrap_or(0),
            t = esc(t),
        );
    }
    b.push_str("</table>");
    html_response(
        StatusCode::OK,
        lang,
        set,
        page(
            lang,
            &format!("{} {code}", lang.t("辖区概览", "Region overview")),
            Some(&who),
            &path,
            &b,
        ),
    )
}

/// `GET /households/{id}/trace`: the auditor's page — every record, decision, assessment and
/// action about the household in order; in clear for auditors (the read is audited), masked for
/// officers and supervisors.
pub async fn trace(
    State(state): State<AppState>,
    Extension(who): Extension<Principal>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(q): Query<LangQuery>,
) -> Response {
    use doudi_store::TraceEntry;
    let (lang, set) = Lang::pick(q.lang.as_deref(), &headers);
    let path = format!("/households/{id}/trace");
    let via = "GET /households/{id}/trace";
    let asker = who.who();
    let read = doudi_app::household::trace(state.store(), &asker, &id, View::Trace, via);
    let (entries, masked) = match read.await.map_err(ApiError::from) {
        Ok(r) => (r.value, r.masked),
        Err(e) => return error_page(lang, Some(&who), &path, &e),
    };
    let mut b = format!(
        "<p>{} {} · {}</p><table><tr><th>{}</th><th>{}</th><th>{}</th></tr>",
        entries.len(),
        lang.t("条记录", "entries"),
        if !masked {
            lang.t(
                "含个人信息：本次查阅已记入审计日志",
                "personal data shown: this read is recorded in the audit trail",
            )
        } else {
            lang.t("个人信息已遮蔽", "personal data masked")
        },
        lang.t("时间", "When"),
        lang.t("类型", "What"),
        lang.t("详情", "Detail"),
    );
    for e in &entries {
        let (at, what, detail) = match e {
            TraceEntry::Register {
                at,
                change,
                file,
                record,
            } => (
                ts(at),
                format!("{} {change}", lang.t("登记", "register")),
                format!(
                    "{file} {}",
                    record.as_ref().map(|r| r.to_string()).unwrap_or_default()
                ),
            ),
            TraceEntry::Event {
                at,
                seq,
                source,
                kind,
                event_id,
                stream,
                position,
                profile,
                raw,
                outcome,
                member_id,
                evidence,
                review,
                ..
            } => (
                ts(at),
                format!("{} #{seq} {source} {kind}", lang.t("事件", "event")),
                format!(
                    "{event_id} ({stream}:{position}{}) → {outcome} {} · {} {}{}\n{raw}",
                    profile
                        .as_deref()
                        .map(|p| format!(", {} {p}", lang.t("格式", "profile")))
                        .unwrap_or_default(),
                    member_id.as_deref().unwrap_or(""),
                    lang.t("匹配证据", "evidence"),
                    json_text(evidence),
                    review
                        .as_ref()
                        .map(|r| format!(" · review {r}"))
                        .unwrap_or_default()
                ),
            ),
            TraceEntry::Assessment {
                at,
                seq,
                rule_set_version,
                score,
                level,
                assessment,
            } => (
                ts(at),
                format!("{} #{seq}", lang.t("评估", "assessment")),
                format!(
                    "{level} {score} ({rule_set_version}) {}",
                    assessment
                        .as_ref()
                        .map(|a| json_text(&a.contributions))
                        .unwrap_or_default()
                ),
            ),
            TraceEntry::Warning {
                at,
                warning_id,
                action,
                actor,
                level,
                note,
                refused,
                ..
            } => (
                ts(at),
                format!("{} #{warning_id} {action}", lang.t("预警", "warning")),
                format!(
                    "{actor} {level} {}{}",
                    note.as_deref().unwrap_or(""),
                    refused
                        .as_deref()
                        .map(|r| format!(" [refused: {r}]"))
                        .unwrap_or_default()
                ),
            ),
            TraceEntry::Finding {
                at,
                check,
                status,
                finding,
                close_note,
                ..
            } => (
                at.clone(),
                format!("{} {check} {status}", lang.t("核查发现", "finding")),
                format!("{finding} {}", close_note.as_deref().unwrap_or("")),
            ),
        };
        let _ = write!(
            b,
            "<tr><td>{}</td><td>{}</td><td><small>{}</small></td></tr>",
            esc(&at),
            esc(&what),
            esc(&detail)
        );
    }
    b.push_str("</table>");
    html_response(
        StatusCode::OK,
        lang,
        set,
        page(
            lang,
            &format!("{} {id}", lang.t("全程追溯", "Trace of household")),
            Some(&who),
            &path,
            &b,
        ),
    )
}

/// Why the warning is at its level, and "verify and close" when the risk that raised it no
/// longer counts (with the findings as they stood and what changed since).
fn explanation(b: &mut String, lang: Lang, level: Level, summary: &doudi_model::Assessment) {
    use doudi_warnings::explain::{explain, Ask};
    let e = explain(level, summary);
    if e.ask == Ask::VerifyAndClose {
        let _ = write!(
            b,
            "<p class=\"msg\"><strong>{}</strong></p>",
            lang.t("请核实后关闭", "Verify and close")
        );
    }
    let (why, lapsed) = match lang {
        Lang::Zh => (&e.why_zh, &e.lapsed_zh),
        Lang::En => (&e.why_en, &e.lapsed_en),
    };
    for line in why {
        let _ = write!(b, "<p>{}</p>", esc(line));
    }
    if !lapsed.is_empty() {
        let _ = write!(
            b,
            "<h2>{}</h2><ul>",
            lang.t(
                "提出预警的风险因素（已不再计入）",
                "Raised by (no longer counting)"
            )
        );
        for line in lapsed {
            let _ = write!(b, "<li>{}</li>", esc(line));
        }
        b.push_str("</ul>");
    }
}

/// When the hardship happened, and the catch-up mark of a late record (issue 19): one line.
fn happened(lang: Lang, w: &doudi_store::WarningView) -> String {
    let Some(at) = &w.occurred_at else {
        return String::new();
    };
    let mut line = format!(
        "<br><small>{}{}",
        lang.t("发生于 ", "happened "),
        html::time(at)
    );
    if w.late {
        line.push_str(lang.t(
            " · 补录（迟到记录，按补办期限）",
            " · late record (catch-up deadline)",
        ));
    }
    line.push_str("</small>");
    line
}
