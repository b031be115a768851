//! `doudi tokens`: API tokens of the HTTP service — create (printed once, stored as its SHA-256),
//! list, revoke.

use std::process::ExitCode;

use clap::{Subcommand, ValueEnum};
use doudi_model::RegionCode;
use doudi_store::{NewToken, StoreError};

use super::{open_store, refusal};
use crate::lang::{lang, t, Lang};
use crate::Config;

/// What a token may do.
#[derive(Clone, Copy, Debug, ValueEnum)]
#[value(rename_all = "snake_case")]
pub enum RoleArg {
    /// A township officer: their region prefix only; acts on their warnings (needs --officer).
    Officer,
    /// A county supervisor: their county prefix; acts on its warnings, sets silences (needs --officer).
    Supervisor,
    /// Reads everything, changes nothing; sees personal data only on a household's trace (audited).
    Auditor,
    /// Runs the service: reads everything masked, replays dead letters.
    Admin,
    /// A department's program pushing one source's feed (`POST /api/feeds/SOURCE`; needs
    /// --source); reads nothing.
    Feeder,
}

impl RoleArg {
    fn role(self) -> doudi_service::Role {
        match self {
            RoleArg::Officer => doudi_service::Role::Officer,
            RoleArg::Supervisor => doudi_service::Role::Supervisor,
            RoleArg::Auditor => doudi_service::Role::Auditor,
            RoleArg::Admin => doudi_service::Role::Admin,
            RoleArg::Feeder => doudi_service::Role::Feeder,
        }
    }
}

#[derive(Debug, Subcommand)]
pub enum TokensCommand {
    /// Create a token and print it once (only its SHA-256 is stored: it cannot be shown again).
    #[command(after_help = "\
Examples:
  doudi tokens create --role officer --region 341502001 --officer o-341502001 --expires-in 90
  doudi tokens create --role supervisor --region 341502 --officer s-341502 --expires-in 90
  doudi tokens create --role auditor --region 34 --label \"provincial audit 2026\" --expires-in 30
  doudi tokens create --role admin --region 34
  doudi tokens create --role feeder --source health_insurance --region 34 --label \"医保 exchange\" --expires-in 365

An officer's or supervisor's token sees its region prefix only and acts as the officer named (who must be in the directory, with that role, covering that region). An auditor's or an admin's token sees every region; --region records the office it was issued to. A feeder's token pushes events of its one --source (POST /api/feeds/SOURCE) and reads nothing. Every create and revoke is in the audit trail.")]
    Create {
        #[arg(long, value_enum)]
        role: RoleArg,
        /// Region-code prefix (county, township or village code).
        #[arg(long, value_name = "CODE")]
        region: String,
        /// The officer the token acts as (officer and supervisor roles).
        #[arg(long, value_name = "ID")]
        officer: Option<String>,
        /// The one source a feeder token pushes (health_insurance, employment, housing,
        /// civil_registry); feeder role only.
        #[arg(long, value_name = "SOURCE")]
        source: Option<String>,
        /// Days until it expires, 1 to 3660 (default: never).
        #[arg(long, value_name = "DAYS", value_parser = clap::value_parser!(u32).range(1..=3660))]
        expires_in: Option<u32>,
        /// A note for `tokens list` (whose, what for).
        #[arg(long, default_value = "")]
        label: String,
        /// Print as JSON.
        #[arg(long)]
        json: bool,
    },
    /// List tokens (never the tokens themselves): role, region, officer, expiry, revocation.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Revoke a token at once (it is kept, marked revoked).
    Revoke {
        /// The token's id (`doudi tokens list`).
        id: i64,
    },
}

pub async fn run(config: &Config, cmd: TokensCommand) -> anyhow::Result<ExitCode> {
    let store = open_store(config).await?;
    let code = match cmd {
        TokensCommand::Create {
            role,
            region,
            officer,
            source,
            expires_in,
            label,
            json,
        } => {
            let role = role.role();
            let feed_source = match (role, source.as_deref()) {
                (doudi_service::Role::Feeder, Some(s)) => match doudi_model::Source::from_code(s) {
                    Some(s) => Some(s.code()),
                    None => {
                        return refusal(tr!(
                            "--source：未知的数据来源 {s:?}（可选：health_insurance 医保、employment 人社、housing 住建、civil_registry 民政户籍）",
                            "--source: unknown source {s:?} (known: health_insurance, employment, housing, civil_registry)"
                        ));
                    }
                },
                (doudi_service::Role::Feeder, None) => {
                    return refusal(tr!(
                        "数据推送令牌只推送一个来源：请给出 --source SOURCE",
                        "a feeder token pushes one source: give --source SOURCE"
                    ));
                }
                (_, Some(_)) => {
                    return refusal(tr!(
                        "--source 只用于数据推送令牌",
                        "--source is for feeder tokens only"
                    ));
                }
                (_, None) => None,
            };
            if feed_source.is_some() && officer.is_some() {
                return refusal(tr!(
                    "数据推送令牌不代表任何干部：请去掉 --officer",
                    "a feeder token acts for no officer: drop --officer"
                ));
            }
            let region = match RegionCode::parse(&region) {
                Ok(r) => r.as_str().to_string(),
                Err(_)
                    if !role.is_regional()
                        && !region.is_empty()
                        && region.len() <= 12
                        && region.bytes().all(|b| b.is_ascii_digit()) =>
                {
                    region
                }
                Err(e) => {
                    return refusal(tr!("--region：{e}", "--region: {e}"));
                }
            };
            if role.is_regional() {
                let Some(id) = officer.as_deref() else {
                    let (code, name) = (role.code(), lang().role(role));
                    return refusal(tr!(
                        "{name}令牌代表一名干部：请给出 --officer ID（见 `doudi officers list`）",
                        "a {code} token acts as an officer: give --officer ID (see `doudi officers list`)"
                    ));
                };
                let directory = doudi_app::engine::directory(&store).await?;
                let Some(o) = directory.get(id) else {
                    return refusal(tr!(
                        "干部 {id:?} 不在干部名录中（见 `doudi officers list`）",
                        "officer {id:?} is not in the directory (see `doudi officers list`)"
                    ));
                };
                if o.role.code() != role.code() {
                    let (is, wanted) = (o.role.code(), role.code());
                    let (is_zh, wanted_zh) = (role_words(is), lang().role(role));
                    return refusal(tr!(
                        "干部 {id:?} 在名录中是{is_zh}，不是{wanted_zh}",
                        "officer {id:?} is a {is} in the directory, not a {wanted}"
                    ));
                }
                if !region.starts_with(o.region.as_str()) {
                    let covers = o.region.as_str();
                    return refusal(tr!(
                        "干部 {id:?} 负责区划 {covers}；令牌的区划 {region} 必须在其范围内",
                        "officer {id:?} covers region {covers}; the token's region {region} must lie inside it"
                    ));
                }
            }
            let expires_at = expires_in.map(|d| {
                doudi_store::ts(&(chrono::Utc::now() + chrono::TimeDelta::days(i64::from(d))))
            });
            let (token, hash) = doudi_service::new_token();
            let id = store
                .create_token(&NewToken {
                    token_hash: &hash,
                    role: role.code(),
                    region_code: &region,
                    officer_id: officer.as_deref(),
                    label: &label,
                    created_by: &super::reader(),
                    expires_at: expires_at.clone(),
                    feed_source,
                })
                .await?;
            if json {
                println!(
                    "{}",
                    serde_json::json!({"token_id": id, "token": token, "role": role.code(),
                        "region_code": region, "officer_id": officer, "expires_at": expires_at,
                        "feed_source": feed_source})
                );
            } else {
                let acting = officer
                    .as_deref()
                    .map(|o| tr!("，代表 {o}", ", acting as {o}"))
                    .unwrap_or_default();
                let expires = expires_at.as_deref().unwrap_or(t("永不", "never"));
                match lang() {
                    Lang::Zh => println!(
                        "令牌 #{id}（{region} 的{}{acting}，到期：{expires}）：",
                        lang().role(role)
                    ),
                    Lang::En => println!(
                        "token #{id} ({} of {region}{acting}), expires {expires}:",
                        role.code()
                    ),
                }
                println!("{token}");
                say!(
                    "令牌只显示这一次：数据库只保存它的 SHA-256",
                    "it is shown this once: only its SHA-256 is stored"
                );
            }
            ExitCode::SUCCESS
        }
        TokensCommand::List { json } => {
            let list = store.tokens().await?;
            let now = doudi_store::ts(&chrono::Utc::now());
            let empty = || {
                tr!(
                    "没有令牌（创建一个：doudi tokens create --help）",
                    "no tokens (create one: doudi tokens create --help)"
                )
            };
            crate::output::print_list(json, &list, empty, |t| {
                let state = match (&t.revoked_at, &t.expires_at) {
                    (Some(at), _) => tr!("已于 {at} 撤销", "revoked {at}"),
                    (None, Some(e)) if *e <= now => tr!("已于 {e} 过期", "expired {e}"),
                    (None, Some(e)) => tr!("有效期至 {e}", "valid until {e}"),
                    (None, None) => tr!("有效，永不过期", "valid, never expires"),
                };
                let (id, region, role) = (t.token_id, &t.region_code, role_words(&t.role));
                let who = t
                    .officer_id
                    .as_deref()
                    .or(t.feed_source.as_deref())
                    .unwrap_or("-");
                let (at, by) = (&t.created_at, &t.created_by);
                let label = if t.label.is_empty() {
                    String::new()
                } else {
                    format!("  ({})", t.label)
                };
                say!(
                    "#{id:<4} {role} {region:<12} {who:<14} {state}  {by} 创建于 {at}{label}",
                    "#{id:<4} {role:<10} {region:<12} {who:<14} {state}  created {at} by {by}{label}"
                );
            })?;
            ExitCode::SUCCESS
        }
        TokensCommand::Revoke { id } => match store.revoke_token(id, &super::reader()).await {
            Ok(()) => {
                say!("令牌 #{id} 已撤销", "token #{id} revoked");
                ExitCode::SUCCESS
            }
            Err(StoreError::Conflict(m)) => refusal(m)?,
            Err(e) => return Err(e.into()),
        },
    };
    store.close().await;
    Ok(code)
}

/// A role given as its code, in words (the code itself in English or when unknown).
fn role_words(code: &str) -> &str {
    match doudi_service::Role::from_code(code) {
        Some(r) if lang() == Lang::Zh => lang().role(r),
        _ => code,
    }
}
