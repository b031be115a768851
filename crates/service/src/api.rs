//! The JSON API under `/api/…` (see `schemas/openapi.json`) and the probes.

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use doudi_app::household::{household, trace};
use doudi_app::mask::{mask_phone, mask_warning, View};
use doudi_app::review::Decision;
use doudi_app::silences::{add_silence as add_silence_for, NewSilence, Scope};
use doudi_app::warnings::{move_warning, show_warning as read_warning, MoveRequest};
use doudi_model::Level;
use doudi_store::WarningFilter;
use doudi_warnings::lifecycle::Move;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::contract::{Checked, MaybeChecked};
use crate::error::ApiError;
use crate::principal::{Principal, Signed};
use crate::AppState;

type ApiResult = Result<Response, ApiError>;

fn ok(v: impl serde::Serialize) -> ApiResult {
    Ok(Json(v).into_response())
}

/// `GET /healthz`: the process is up.
pub async fn healthz() -> Response {
    Json(json!({"status": "ok"})).into_response()
}

/// `GET /readyz`: the database answers.
pub async fn readyz(State(state): State<AppState>) -> ApiResult {
    state
        .store()
        .ping()
        .await
        .map_err(|e| ApiError::Unavailable(e.to_string()))?;
    ok(json!({"status": "ready"}))
}

/// Anything else.
pub async fn not_found() -> ApiError {
    ApiError::NotFound("no such route (the API is described in schemas/openapi.json)".into())
}

/// Query of `GET /api/warnings`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    /// `red`, `orange`, `yellow`.
    pub level: Option<String>,
    /// `open`, `acknowledged`, `visited`, `resolved`, `active` (default) or `all`.
    pub state: Option<String>,
    /// A region-code prefix inside the token's region.
    pub region: Option<String>,
    /// Only warnings assigned to this officer.
    pub officer: Option<String>,
    pub limit: Option<i64>,
    pub offset: Option<i64>,
}

/// The checked filter of a warning list, limited to what `who` may see.
pub fn warning_filter<'a>(
    state: &AppState,
    who: &'a Principal,
    q: &'a ListQuery,
) -> Result<WarningFilter<'a>, ApiError> {
    let level = match q.level.as_deref() {
        None => None,
        Some(l) => match Level::from_code(l) {
            Some(level) if level != Level::None => Some(level),
            _ => {
                return Err(ApiError::BadRequest(format!(
                    "level must be red, orange or yellow (got {l:?})"
                )))
            }
        },
    };
    let st = q.state.as_deref().unwrap_or("active");
    if ![
        "open",
        "acknowledged",
        "visited",
        "resolved",
        "active",
        "all",
    ]
    .contains(&st)
    {
        return Err(ApiError::BadRequest(format!(
            "state must be open, acknowledged, visited, resolved, active or all (got {st:?})"
        )));
    }
    let region = match q.region.as_deref() {
        None => who.scope(),
        Some(r) => {
            if r.is_empty() || r.len() > 12 || !r.bytes().all(|b| b.is_ascii_digit()) {
                return Err(ApiError::BadRequest(format!(
                    "region must be a region-code prefix of 1 to 12 digits (got {r:?})"
                )));
            }
            // Outside the caller's region is as if it did not exist (404), as for every
            // resource: the answer says nothing about the region asked for.
            if !r.starts_with(who.scope()) {
                return Err(ApiError::NotFound(format!(
                    "no region {r} within this token's region {}",
                    who.region
                )));
            }
            r
        }
    };
    let max = state.config().max_page_size;
    let limit = q.limit.unwrap_or(50);
    if !(1..=max).contains(&limit) {
        return Err(ApiError::BadRequest(format!(
            "limit must be 1 to {max} (got {limit})"
        )));
    }
    let offset = q.offset.unwrap_or(0);
    if offset < 0 {
        return Err(ApiError::BadRequest(format!(
            "offset must not be negative (got {offset})"
        )));
    }
    Ok(WarningFilter {
        region_prefix: region,
        level,
        state: st,
        assigned_to: match q.officer.as_deref() {
            Some(o) => Some(text(o, "officer")?).filter(|o| !o.is_empty()),
            None => None,
        },
        // The API keeps its documented order: level, then deadline.
        overdue_first_at: None,
        limit,
        offset,
    })
}

/// `GET /api/warnings`: warnings in the token's region, most urgent first, a page at a time.
pub async fn list_warnings(Signed { state, who }: Signed, Query(q): Query<ListQuery>) -> ApiResult {
    let filter = warning_filter(&state, &who, &q)?;
    let mut page = state.store().warnings_page(&filter).await?;
    page.warnings.iter_mut().for_each(mask_warning);
    ok(page)
}

/// A text parameter (`what`): never U+0000, which PostgreSQL cannot store or compare (the
/// document's pattern `^[^\x00]*$`).
fn text<'a>(value: &'a str, what: &str) -> Result<&'a str, ApiError> {
    if value.contains('\0') {
        return Err(ApiError::BadRequest(format!(
            "{what} must not contain U+0000"
        )));
    }
    Ok(value)
}

fn warning_id(id: &str) -> Result<i64, ApiError> {
    id.parse::<i64>()
        .map_err(|_| ApiError::BadRequest(format!("warning id must be a number (got {id:?})")))
}

/// `GET /api/warnings/{id}`: one warning with reasons, suggested relief and history (members
/// masked); the read is audited.
pub async fn show_warning(Signed { state, who }: Signed, Path(id): Path<String>) -> ApiResult {
    let id = warning_id(&id)?;
    ok(read_warning(state.store(), &who.who(), id, "GET /api/warnings/{id}").await?)
}

/// Body of a move.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MoveBody {
    #[serde(default)]
    pub note: String,
}

/// Body of a resolution.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResolveBody {
    /// `relief_granted`, `enrolled`, `referred`, `risk_cleared`, `false_alarm`.
    pub disposition: String,
    /// Relief in yuan (`relief_granted`), e.g. `"2000"` or `"1500.50"`.
    pub amount: Option<String>,
    /// `dibao`, `tekun`, … (`enrolled`).
    pub category: Option<String>,
    /// The department referred to (`referred`).
    pub department: Option<String>,
    #[serde(default)]
    pub note: String,
}

/// Carry out `m` on warning `id` for the officer the token acts for (the same checks as
/// `doudi warnings ack|visit|resolve`).
pub async fn make_move(
    state: &AppState,
    who: &Principal,
    id: i64,
    note: &str,
    m: Move,
) -> Result<doudi_app::warnings::Moved, ApiError> {
    let req = MoveRequest {
        warning_id: id,
        officer: who.officer()?,
        note,
        m,
    };
    let limit = state.config().rules.relief.township_limit;
    Ok(move_warning(state.store(), &who.who(), limit, &req).await?)
}

/// [`make_move`] on the warning a path names (`{id}`: refused unless a number).
async fn move_at(
    state: &AppState,
    who: &Principal,
    id: &str,
    note: &str,
    m: Move,
) -> Result<doudi_app::warnings::Moved, ApiError> {
    make_move(state, who, warning_id(id)?, note, m).await
}

/// `POST /api/warnings/{id}/acknowledge`.
pub async fn acknowledge(
    Signed { state, who }: Signed,
    Path(id): Path<String>,
    MaybeChecked(body): MaybeChecked<MoveBody>,
) -> ApiResult {
    let note = body.map(|b| b.note).unwrap_or_default();
    ok(move_at(&state, &who, &id, &note, Move::Acknowledge).await?)
}

/// `POST /api/warnings/{id}/visit` (a note saying what the visit found is required).
pub async fn visit(
    Signed { state, who }: Signed,
    Path(id): Path<String>,
    Checked(body): Checked<MoveBody>,
) -> ApiResult {
    ok(move_at(&state, &who, &id, &body.note, Move::Visit).await?)
}

/// `POST /api/warnings/{id}/resolve`.
pub async fn resolve(
    Signed { state, who }: Signed,
    Path(id): Path<String>,
    Checked(body): Checked<ResolveBody>,
) -> ApiResult {
    // The id is checked first, as for the other moves.
    let id = warning_id(&id)?;
    let d = doudi_app::warnings::disposition(
        &body.disposition,
        body.amount.as_deref(),
        body.category.as_deref(),
        body.department.as_deref(),
    )?;
    ok(make_move(&state, &who, id, &body.note, Move::Resolve(d)).await?)
}

/// `GET /api/households/{id}`: the register record — in clear for the region's officers and
/// supervisors (they visit it), masked for auditors and admins; audited either way.
pub async fn show_household(Signed { state, who }: Signed, Path(id): Path<String>) -> ApiResult {
    let id = text(&id, "the household id")?;
    let read = household(state.store(), &who.who(), id, "GET /api/households/{id}").await?;
    ok(json!({"household": read.value, "masked": read.masked}))
}

/// A household's entries in `view`, read (and audited) as `GET /api/households/{id}/{route}`.
async fn entries(
    state: &AppState,
    who: &Principal,
    id: &str,
    view: View,
    route: &str,
) -> Result<doudi_app::household::Read<Vec<doudi_store::TraceEntry>>, ApiError> {
    text(id, "the household id")?;
    let via = format!("GET /api/households/{{id}}/{route}");
    Ok(trace(state.store(), &who.who(), id, view, &via).await?)
}

/// `GET /api/households/{id}/timeline`: the events applied to the household and the assessment
/// after each, oldest first (masked; audited).
pub async fn household_timeline(
    Signed { state, who }: Signed,
    Path(id): Path<String>,
) -> ApiResult {
    let read = entries(&state, &who, &id, View::Timeline, "timeline").await?;
    ok(json!({"household_id": id, "masked": true, "entries": read.value}))
}

/// `GET /api/households/{id}/trace`: everything about the household in order — in clear for
/// auditors, masked for officers and supervisors; audited either way.
pub async fn household_trace(Signed { state, who }: Signed, Path(id): Path<String>) -> ApiResult {
    let read = entries(&state, &who, &id, View::Trace, "trace").await?;
    ok(json!({"household_id": id, "masked": read.masked, "entries": read.value}))
}

/// Query of lists with a limit.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitQuery {
    pub limit: Option<i64>,
}

fn limit(state: &AppState, q: &LimitQuery) -> Result<i64, ApiError> {
    let max = state.config().max_page_size;
    let l = q.limit.unwrap_or(50);
    if !(1..=max).contains(&l) {
        return Err(ApiError::BadRequest(format!(
            "limit must be 1 to {max} (got {l})"
        )));
    }
    Ok(l)
}

/// `GET /api/review`: records waiting for a person's identity decision; regional roles see those
/// with a candidate household in their region. The evidence holds no personal data in clear.
pub async fn list_review(Signed { state, who }: Signed, Query(q): Query<LimitQuery>) -> ApiResult {
    let limit = limit(&state, &q)?;
    let items = doudi_app::review::pending(state.store(), &who.who(), limit).await?;
    // The queue's whole length only for roles that see all of it.
    let total = if who.role.is_regional() {
        None
    } else {
        Some(state.store().pending_review_count().await?)
    };
    ok(json!({"total_pending": total, "items": items}))
}

/// Body of a review decision: `{"link": MEMBER}` or `{"reject": true}`, and why.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DecideBody {
    pub link: Option<String>,
    #[serde(default)]
    pub reject: bool,
    #[serde(default)]
    pub note: String,
}

/// `POST /api/review/{seq}/decide`: link the record to one of its candidates (a member of a
/// household in the token's region) or reject it; a link goes on through the pipeline.
pub async fn decide_review(
    Signed { state, who }: Signed,
    Path(seq): Path<String>,
    Checked(body): Checked<DecideBody>,
) -> ApiResult {
    let seq: i64 = seq
        .parse()
        .map_err(|_| ApiError::BadRequest(format!("review seq must be a number (got {seq:?})")))?;
    let decision = match (body.link, body.reject) {
        (Some(_), true) | (None, false) => {
            return Err(ApiError::BadRequest(
                "give either \"link\": MEMBER or \"reject\": true".into(),
            ))
        }
        (Some(member_id), false) => Decision::Link { member_id },
        (None, true) => Decision::Reject,
    };
    let by = who.officer_id.clone().ok_or_else(|| {
        ApiError::Forbidden(format!("token #{} acts for no officer", who.token_id))
    })?;
    let settings = state.config().engine_settings();
    let done = doudi_app::review::decide(
        state.store(),
        &settings,
        &who.who(),
        seq,
        decision,
        &by,
        &body.note,
    )
    .await?;
    ok(done)
}

/// `GET /api/deadletters`: records refused at ingest (their raw bytes are not shown: they may hold
/// personal data; `doudi deadletters list --json` on the server shows them).
pub async fn list_dead_letters(
    State(state): State<AppState>,
    Query(q): Query<LimitQuery>,
) -> ApiResult {
    let limit = limit(&state, &q)?;
    let list: Vec<Value> = state
        .store()
        .dead_letters(limit)
        .await?
        .into_iter()
        .map(|d| {
            json!({"id": d.id, "source": d.source, "stream": d.stream, "line": d.line,
                "reason_code": d.reason_code, "raw_len": d.raw_len, "replayed_at": d.replayed_at})
        })
        .collect();
    ok(json!({"dead_letters": list}))
}

/// Body of a replay: which dead letters (none given: all not yet replayed).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReplayBody {
    #[serde(default)]
    pub ids: Vec<i64>,
    pub reason: Option<String>,
}

/// `POST /api/deadletters/replay`: after a fix, send the dead letters that pass now through the
/// pipeline (as `doudi deadletters replay`).
pub async fn replay_dead_letters(
    Signed { state, who }: Signed,
    Checked(body): Checked<ReplayBody>,
) -> ApiResult {
    let cfg = state.config();
    let settings = cfg.engine_settings();
    let replay = doudi_pipeline::ReplayOptions {
        ids: &body.ids,
        reason: body.reason.as_deref().filter(|r| !r.is_empty()),
        feeds: &cfg.feeds_dir,
        limits: settings.limits,
        page_size: cfg.replay_page_size,
        topic_profiles: &cfg.topic_profiles,
    };
    match doudi_app::replay::replay(state.store(), &settings, &who.who(), &replay).await? {
        Some(report) => ok(report),
        None => ok(json!({"seen": 0, "replayed": 0, "still_refused": [], "outcome": null})),
    }
}

/// `GET /api/officers`: the directory (phone numbers masked); regional roles see the officers of
/// their region and those above it.
pub async fn list_officers(Signed { state, who }: Signed) -> ApiResult {
    let directory = doudi_app::engine::directory(state.store()).await?;
    let mut list: Vec<_> = directory
        .officers()
        .filter(|o| {
            let r = o.region.as_str();
            !who.role.is_regional() || r.starts_with(&who.region) || who.region.starts_with(r)
        })
        .cloned()
        .map(|mut o| {
            o.channels.phone = o.channels.phone.as_deref().map(mask_phone);
            o
        })
        .collect();
    list.sort_by(|a, b| {
        a.region
            .cmp(&b.region)
            .then(a.officer_id.cmp(&b.officer_id))
    });
    ok(json!({"officers": list}))
}

/// `GET /api/silences`: silences touching the token's region.
pub async fn list_silences(Signed { state, who }: Signed) -> ApiResult {
    let mut out = Vec::new();
    for s in state.store().silences().await? {
        let visible = if !who.role.is_regional() {
            true
        } else if s.scope == "region" {
            s.target.starts_with(&who.region) || who.region.starts_with(&s.target)
        } else {
            state
                .store()
                .household_region(&s.target)
                .await?
                .is_some_and(|r| who.sees(&r))
        };
        if visible {
            out.push(s);
        }
    }
    ok(json!({"silences": out}))
}

/// Body of a new silence.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SilenceBody {
    pub household: Option<String>,
    pub region: Option<String>,
    pub reason: String,
    /// RFC 3339; default now.
    pub from: Option<String>,
    /// RFC 3339 end, or `hours`.
    pub until: Option<String>,
    pub hours: Option<u32>,
}

/// A time a client sent: RFC 3339, and in the years 0001 to 9999 once in UTC.
fn time(text: &str, what: &str) -> Result<chrono::DateTime<chrono::Utc>, ApiError> {
    let t = chrono::DateTime::parse_from_rfc3339(text).map_err(|e| {
        ApiError::BadRequest(format!("{what} {text:?} is not an RFC 3339 time: {e}"))
    })?;
    Ok(doudi_app::silences::client_time(&t, what)?)
}

/// `POST /api/silences`: hold back notices for a household or region (a supervisor whose region
/// contains it, as `doudi silences add`), for at most a year; times in the years 0001 to 9999.
pub async fn add_silence(
    Signed { state, who }: Signed,
    Checked(b): Checked<SilenceBody>,
) -> ApiResult {
    let scope = match (b.household, b.region) {
        (Some(h), None) => Scope::Household(h),
        (None, Some(r)) => Scope::Region(r),
        _ => {
            return Err(ApiError::BadRequest(
                "give either \"household\" or \"region\"".into(),
            ))
        }
    };
    let by = who.officer_id.clone().ok_or_else(|| {
        ApiError::Forbidden(format!("token #{} acts for no officer", who.token_id))
    })?;
    let start = match &b.from {
        Some(t) => time(t, "from")?,
        None => chrono::Utc::now(),
    };
    let end = match (&b.until, b.hours) {
        (Some(t), None) => time(t, "until")?,
        (None, Some(h)) => doudi_app::silences::end_after_hours(start, h)?,
        _ => {
            return Err(ApiError::BadRequest(
                "give either \"until\" (RFC 3339) or \"hours\"".into(),
            ))
        }
    };
    let silence = NewSilence {
        scope,
        reason: b.reason,
        start,
        end,
    };
    let done = add_silence_for(state.store(), &who.who(), &by, &silence).await?;
    Ok((StatusCode::CREATED, Json(done)).into_response())
}

/// Query of a region overview.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OverviewQuery {
    /// Days back (default 30, at most 366).
    pub days: Option<i64>,
}

/// The overview's data: warnings opened per day and level, active ones per township and level.
pub async fn overview_data(
    state: &AppState,
    who: &Principal,
    code: &str,
    days: i64,
) -> Result<doudi_store::RegionCounts, ApiError> {
    if code.is_empty() || code.len() > 12 || !code.bytes().all(|b| b.is_ascii_digit()) {
        return Err(ApiError::BadRequest(format!(
            "region must be a region code of up to 12 digits (got {code:?})"
        )));
    }
    who.require_region(
        code,
        &format!("no region {code} among this token's regions"),
    )?;
    if !(1..=366).contains(&days) {
        return Err(ApiError::BadRequest(format!(
            "days must be 1 to 366 (got {days})"
        )));
    }
    let since = chrono::Utc::now() - chrono::TimeDelta::days(days);
    Ok(state
        .store()
        .region_counts(code, &doudi_store::ts(&since))
        .await?)
}

/// `GET /api/regions/{code}/overview`.
pub async fn region_overview(
    Signed { state, who }: Signed,
    Path(code): Path<String>,
    Query(q): Query<OverviewQuery>,
) -> ApiResult {
    let days = q.days.unwrap_or(30);
    let counts = overview_data(&state, &who, &code, days).await?;
    ok(
        json!({"region": code, "days": days, "by_day": counts.by_day.iter().map(|(d, l, n)| json!({"day": d, "level": l, "count": n})).collect::<Vec<_>>(),
        "by_township": counts.by_township.iter().map(|(t, l, n)| json!({"township": t, "level": l, "count": n})).collect::<Vec<_>>()}),
    )
}
