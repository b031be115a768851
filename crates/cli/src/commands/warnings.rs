//! `doudi warnings`: the open warnings, most urgent first.

use std::process::ExitCode;

use clap::{Subcommand, ValueEnum};
use doudi_app::mask::mask_warning;
use doudi_app::warnings::{move_warning, show_warning, tick, MoveRequest};
use doudi_app::AppError;
use doudi_model::{Category, Money};
use doudi_warnings::lifecycle::{Disposition, Move};

use super::{asker, open_store, refused};
use crate::lang::{assignee, lang, level, status, t, Lang};
use crate::output::print_list;
use crate::Config;

/// How a warning was resolved (see `doudi warnings resolve --help`).
#[derive(Clone, Copy, Debug, ValueEnum)]
#[value(rename_all = "snake_case")]
pub enum DispositionArg {
    /// Temporary relief granted (--amount; above the township's limit a supervisor records it).
    ReliefGranted,
    /// Enrolled in 低保 / 特困 (--category).
    Enrolled,
    /// Referred to another department (--department).
    Referred,
    /// 风险消除: the risk is gone.
    RiskCleared,
    /// Nothing was wrong.
    FalseAlarm,
}

#[derive(Debug, Subcommand)]
pub enum WarningsCommand {
    /// List open warnings, most urgent first (level, then score), with the officer responsible.
    List {
        /// At most this many.
        #[arg(long, default_value_t = 50)]
        limit: i64,
        /// Only warnings assigned to this officer.
        #[arg(long, value_name = "OFFICER")]
        officer: Option<String>,
        /// Print as JSON (household records included, ID numbers masked).
        #[arg(long)]
        json: bool,
    },
    /// Escalate warnings not acknowledged in time and remind whoever holds them (run it from cron
    /// every few minutes; deadlines per level are warnings.escalation.*).
    #[command(after_help = "\
A warning nobody acknowledged within its level's time (red 2 h, orange 24 h, yellow 72 h by default) escalates to the supervisor of its region, then one step further up for each further period; one acknowledged but not resolved by its deadline escalates once to the supervisor. Whoever holds it is reminded at an interval. Notices that fall due during a silence are not sent; when it ends, escalations and reminders resume (the warning still counts). Each notice is in the recipient's inbox (`doudi warnings inbox`) and the warning's history.")]
    Tick {
        /// The time to act as of (RFC 3339), for replays and tests; default now.
        #[arg(long, value_name = "TIME")]
        now: Option<chrono::DateTime<chrono::FixedOffset>>,
    },
    /// An officer's inbox: notices addressed to them (opened, raised, escalated, reminders).
    Inbox {
        #[arg(long, value_name = "OFFICER")]
        officer: String,
        #[arg(long, default_value_t = 50)]
        limit: i64,
        #[arg(long)]
        json: bool,
    },
    /// One warning: household, reasons, suggested relief, status and its whole history.
    Show {
        id: i64,
        #[arg(long)]
        json: bool,
    },
    /// Take a warning up (the deadline to act still runs).
    Ack {
        id: i64,
        /// The officer acting (recorded; must be the assigned officer, their substitute or a
        /// supervisor of the region).
        #[arg(long, env = "DOUDI_USER", value_name = "OFFICER")]
        by: String,
        #[arg(long, default_value = "")]
        note: String,
    },
    /// Record the home visit (入户核查).
    Visit {
        id: i64,
        #[arg(long, env = "DOUDI_USER", value_name = "OFFICER")]
        by: String,
        /// What the visit found.
        #[arg(long)]
        note: String,
    },
    /// Close a warning with a disposition.
    #[command(after_help = "\
Examples:
  doudi warnings resolve 17 --by o-341502001 --disposition relief_granted --amount 2000 --note \"急难型临时救助\"
  doudi warnings resolve 18 --by o-341502001 --disposition referred --department 医保局 --note \"医疗救助\"
  doudi warnings resolve 19 --by o-341502001 --disposition false_alarm --note \"账单已报销\"
Relief and enrolment need a recorded visit first. Relief above the township's approval limit (relief.township_limit of the rule set) is recorded by a supervisor whose region contains the household's. Visits and resolutions need a --note (kept in the history).")]
    Resolve {
        id: i64,
        #[arg(long, env = "DOUDI_USER", value_name = "OFFICER")]
        by: String,
        #[arg(long, value_enum)]
        disposition: DispositionArg,
        /// Relief amount in yuan (relief_granted).
        #[arg(
            long,
            value_name = "YUAN",
            required_if_eq("disposition", "relief_granted")
        )]
        amount: Option<Money>,
        /// Category enrolled in (enrolled): dibao, tekun, …
        #[arg(long, required_if_eq("disposition", "enrolled"))]
        category: Option<String>,
        /// Department referred to (referred).
        #[arg(long, required_if_eq("disposition", "referred"))]
        department: Option<String>,
        /// Why (kept in the history).
        #[arg(long)]
        note: String,
    },
}

pub async fn run(config: &Config, cmd: WarningsCommand) -> anyhow::Result<ExitCode> {
    let store = open_store(config).await?;
    let code = match cmd {
        WarningsCommand::List {
            limit,
            officer,
            json,
        } => {
            let mut list = store.open_warnings(limit, officer.as_deref()).await?;
            list.iter_mut().for_each(mask_warning);
            let empty = || tr!("没有未办结的预警", "no open warnings");
            print_list(json, &list, empty, |w| {
                let (id, score, hh, region) =
                    (w.warning_id, w.score, &w.household_id, &w.region_code);
                let (deadline, officer) = (
                    crate::lang::due(&w.deadline),
                    assignee(w.assigned_to.as_deref()),
                );
                match lang() {
                    Lang::Zh => println!(
                        "#{id:<6} {}  分数 {score:<4} 户 {hh:<20} 区划 {region} 截止 {deadline} 责任人 {officer}",
                        level(w.level)
                    ),
                    Lang::En => println!(
                        "#{id:<6} {:<6} score {score:<4} household {hh:<20} region {region} deadline {deadline} officer {officer}",
                        w.level.code()
                    ),
                }
            })?;
            ExitCode::SUCCESS
        }
        WarningsCommand::Show { id, json } => {
            match show_warning(&store, &asker(), id, "warnings show").await {
                Ok(d) if json => {
                    println!("{}", serde_json::to_string_pretty(&d)?);
                    ExitCode::SUCCESS
                }
                Ok(d) => {
                    print_detail(&d);
                    ExitCode::SUCCESS
                }
                Err(AppError::NotFound(_)) => no_warning(id),
                Err(e) => refused(e)?,
            }
        }
        WarningsCommand::Tick { now } => {
            let now = now.map_or_else(chrono::Utc::now, |t| t.with_timezone(&chrono::Utc));
            let directory = doudi_app::engine::directory(&store).await?;
            let t = tick(&store, &directory, &config.warnings.escalation, now).await?;
            let (escalated, reminded, silenced) = (t.escalated, t.reminded, t.silenced);
            say!(
                "逐级上报 {escalated} 条，提醒 {reminded} 条，因静默暂缓 {silenced} 条",
                "escalated {escalated}, reminded {reminded}, held back by silences {silenced}"
            );
            ExitCode::SUCCESS
        }
        WarningsCommand::Inbox {
            officer,
            limit,
            json,
        } => {
            let list = store.inbox(&officer, limit).await?;
            let empty = || tr!("{officer} 没有通知", "no notices for {officer}");
            print_list(json, &list, empty, |n| {
                let (due, id, hh) = (crate::lang::when(&n.due_at), n.warning_id, &n.household_id);
                let (deadline, note) = (crate::lang::due(&n.deadline), &n.note);
                match lang() {
                    Lang::Zh => println!(
                        "{due}  {}  预警 #{id:<6} {}  户 {hh:<14} 截止 {deadline}  {note}",
                        lang().action(&n.kind),
                        level(n.level)
                    ),
                    Lang::En => println!(
                        "{due}  {:<10} warning #{id:<6} {:<6} household {hh:<14} deadline {deadline}  {note}",
                        n.kind,
                        n.level.code()
                    ),
                }
            })?;
            ExitCode::SUCCESS
        }
        WarningsCommand::Ack { id, by, note } => {
            make_move(config, &store, id, &by, &note, Move::Acknowledge).await?
        }
        WarningsCommand::Visit { id, by, note } => {
            make_move(config, &store, id, &by, &note, Move::Visit).await?
        }
        WarningsCommand::Resolve {
            id,
            by,
            disposition,
            amount,
            category,
            department,
            note,
        } => {
            let d = match disposition {
                DispositionArg::ReliefGranted => Disposition::ReliefGranted {
                    amount: amount.unwrap_or(Money::ZERO),
                },
                DispositionArg::Enrolled => {
                    let text = category.unwrap_or_default();
                    match serde_json::from_value::<Category>(serde_json::Value::String(
                        text.clone(),
                    )) {
                        Ok(category) => Disposition::Enrolled { category },
                        Err(_) => {
                            complain!(
                                "未知的保障类别 {text:?}（可选：dibao 低保、tekun 特困、dibao_edge、expenditure、unstable、edge_prone、sudden）",
                                "unknown category {text:?} (dibao, tekun, dibao_edge, expenditure, unstable, edge_prone, sudden)"
                            );
                            return Ok(ExitCode::from(2));
                        }
                    }
                }
                DispositionArg::Referred => Disposition::Referred {
                    department: department.unwrap_or_default(),
                },
                DispositionArg::RiskCleared => Disposition::RiskCleared,
                DispositionArg::FalseAlarm => Disposition::FalseAlarm,
            };
            make_move(config, &store, id, &by, &note, Move::Resolve(d)).await?
        }
    };
    store.close().await;
    Ok(code)
}

/// Check a person's move (who may, and from which status), record it — or record the refusal.
async fn make_move(
    config: &Config,
    store: &doudi_store::Store,
    id: i64,
    actor: &str,
    note: &str,
    m: Move,
) -> anyhow::Result<ExitCode> {
    let limit = config.rule_set()?.relief.township_limit;
    let req = MoveRequest {
        warning_id: id,
        officer: actor,
        note,
        m,
    };
    match move_warning(store, &asker(), limit, &req).await {
        Ok(moved) => {
            match lang() {
                Lang::Zh => println!(
                    "预警 #{id}：{} → {}（{actor}）",
                    status(moved.from),
                    status(moved.to)
                ),
                Lang::En => println!("warning #{id}: {} → {} by {actor}", moved.from, moved.to),
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(AppError::NotFound(_)) => Ok(no_warning(id)),
        Err(e) if lang() == Lang::Zh => match why_refused(config, store, &req).await {
            Some(why) => {
                eprintln!("错误：{}", crate::lang::move_error(Lang::Zh, &why));
                Ok(ExitCode::from(2))
            }
            None => refused(e),
        },
        Err(e) => refused(e),
    }
}

/// No such warning (exit 2).
fn no_warning(id: i64) -> ExitCode {
    complain!(
        "没有预警 #{id}（见 `doudi warnings list`）",
        "no warning #{id} (see `doudi warnings list`)"
    );
    ExitCode::from(2)
}

/// Why a move was refused, typed (for its words in Chinese), as the pages find it.
async fn why_refused(
    config: &Config,
    store: &doudi_store::Store,
    req: &MoveRequest<'_>,
) -> Option<doudi_warnings::lifecycle::MoveError> {
    use doudi_warnings::lifecycle::{authorise, check_reason, transition};
    let d = store.warning_detail(req.warning_id).await.ok()??;
    let region = doudi_model::RegionCode::parse(&d.warning.region_code).ok()?;
    let directory = doudi_app::engine::directory(store).await.ok()?;
    let limit = config.rule_set().ok()?.relief.township_limit;
    authorise(
        &directory,
        req.officer,
        d.warning.assigned_to.as_deref(),
        &region,
        &req.m,
        limit,
    )
    .and_then(|_| check_reason(&req.m, req.note))
    .and_then(|_| transition(d.warning.status, &req.m))
    .err()
}

fn print_detail(d: &doudi_store::WarningDetail) {
    let w = &d.warning;
    let (id, score, hh, region) = (w.warning_id, w.score, &w.household_id, &w.region_code);
    let assignee = w.assigned_to.as_deref().unwrap_or(t(
        "（无：该辖区没有责任干部）",
        "(nobody: no officer covers the region)",
    ));
    let (opened, deadline) = (
        crate::lang::when(&w.opened_at),
        crate::lang::due(&w.deadline),
    );
    match lang() {
        Lang::Zh => {
            println!(
                "预警 #{id} · {} · {} · 分数 {score} · 户 {hh} · 区划 {region}",
                status(w.status),
                level(w.level)
            );
            println!("责任人 {assignee} · 开启 {opened} · 截止 {deadline}");
        }
        Lang::En => {
            println!(
                "warning #{id} · {} · {} · score {score} · household {hh} · region {region}",
                w.status, w.level
            );
            println!("assigned to {assignee} · opened {opened} · deadline {deadline}");
        }
    }
    if let Some(at) = &w.occurred_at {
        let late = if w.late {
            t(
                " · 补录：截止时间从记录到达时起算补办期限",
                " · late record (补录): the deadline is a catch-up window from its arrival",
            )
        } else {
            ""
        };
        say!(
            "发生于 {}{late}",
            "happened {}{late}",
            crate::lang::when(at)
        );
    }
    if let Some(members) = w.household.get("members").and_then(|m| m.as_array()) {
        let list: Vec<String> = members
            .iter()
            .map(|m| {
                format!(
                    "{} {}",
                    m.get("name").and_then(|v| v.as_str()).unwrap_or(""),
                    m.get("id_number").and_then(|v| v.as_str()).unwrap_or("")
                )
            })
            .collect();
        say!("成员：{}", "members: {}", list.join(t("，", ", ")));
    }
    print_explanation(w.level, &w.summary);
    let version = &w.summary.rule_set_version;
    say!("原因（规则集 {version}）：", "why (rule set {version}):");
    for c in &w.summary.contributions {
        println!("  {:+5}  {}", c.points, c.reason_zh);
    }
    if let Some(disposition) = &d.disposition {
        match lang() {
            Lang::Zh => println!("处置：{}", lang().disposition(disposition)),
            Lang::En => println!(
                "disposition: {}",
                serde_json::to_value(disposition).unwrap_or_default()
            ),
        }
    }
    say!("处理记录：", "history:");
    for h in &d.history {
        let tail = crate::output::note_and_refusal(h.note.as_deref(), h.refused.as_deref());
        let at = crate::lang::when(&h.at);
        match lang() {
            Lang::Zh => println!(
                "  {at}  {}  处理人 {}  等级 {}{tail}",
                lang().action(&h.action),
                lang().actor(&h.actor),
                level(h.level)
            ),
            Lang::En => println!(
                "  {at}  {:<12} by {:<14} level {:<6}{tail}",
                h.action,
                h.actor,
                h.level.code()
            ),
        }
    }
}

/// Why the warning is at its level, and "verify and close" when the risk that raised it no longer
/// counts, with the findings as they stood and what changed since.
fn print_explanation(level: doudi_model::Level, summary: &doudi_model::Assessment) {
    use doudi_warnings::explain::{explain, Ask};
    let e = explain(level, summary);
    let zh = lang() == Lang::Zh;
    if e.ask == Ask::VerifyAndClose {
        say!("请核实后关闭", "ask: 请核实后关闭 / verify and close");
    }
    for (why_zh, why_en) in e.why_zh.iter().zip(&e.why_en) {
        if zh {
            println!("等级：{why_zh}");
        } else {
            println!("level: {why_zh}\n       {why_en}");
        }
    }
    if !e.lapsed_zh.is_empty() {
        say!(
            "曾因以下情况升级（现已不再计入）：",
            "raised by (no longer counting):"
        );
        for (was_zh, was_en) in e.lapsed_zh.iter().zip(&e.lapsed_en) {
            if zh {
                println!("  {was_zh}");
            } else {
                println!("  {was_zh}\n  {was_en}");
            }
        }
    }
}
