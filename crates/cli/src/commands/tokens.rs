//! `doudi tokens`: API tokens of the HTTP service — create (printed once, stored as its SHA-256),
//! list, revoke.

use std::process::ExitCode;

use clap::{Subcommand, ValueEnum};
use doudi_model::RegionCode;
use doudi_store::{NewToken, StoreError};

use super::open_store;
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
                        eprintln!("error: --source: unknown source {s:?} (known: health_insurance, employment, housing, civil_registry)");
                        return Ok(ExitCode::from(2));
                    }
                },
                (doudi_service::Role::Feeder, None) => {
                    eprintln!("error: a feeder token pushes one source: give --source SOURCE");
                    return Ok(ExitCode::from(2));
                }
                (_, Some(_)) => {
                    eprintln!("error: --source is for feeder tokens only");
                    return Ok(ExitCode::from(2));
                }
                (_, None) => None,
            };
            if feed_source.is_some() && officer.is_some() {
                eprintln!("error: a feeder token acts for no officer: drop --officer");
                return Ok(ExitCode::from(2));
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
                    eprintln!("error: --region: {e}");
                    return Ok(ExitCode::from(2));
                }
            };
            if role.is_regional() {
                let Some(id) = officer.as_deref() else {
                    eprintln!(
                        "error: a {} token acts as an officer: give --officer ID (see `doudi officers list`)",
                        role.code()
                    );
                    return Ok(ExitCode::from(2));
                };
                let directory = doudi_app::engine::directory(&store).await?;
                let Some(o) = directory.get(id) else {
                    eprintln!(
                        "error: officer {id:?} is not in the directory (see `doudi officers list`)"
                    );
                    return Ok(ExitCode::from(2));
                };
                if o.role.code() != role.code() {
                    eprintln!(
                        "error: officer {id:?} is a {} in the directory, not a {}",
                        o.role.code(),
                        role.code()
                    );
                    return Ok(ExitCode::from(2));
                }
                if !region.starts_with(o.region.as_str()) {
                    eprintln!(
                        "error: officer {id:?} covers region {}; the token's region {region} must lie inside it",
                        o.region.as_str()
                    );
                    return Ok(ExitCode::from(2));
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
                println!(
                    "token #{id} ({} of {region}{}), expires {}:",
                    role.code(),
                    officer
                        .as_deref()
                        .map(|o| format!(", acting as {o}"))
                        .unwrap_or_default(),
                    expires_at.as_deref().unwrap_or("never")
                );
                println!("{token}");
                println!("it is shown this once: only its SHA-256 is stored");
            }
            ExitCode::SUCCESS
        }
        TokensCommand::List { json } => {
            let list = store.tokens().await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&list)?);
            } else if list.is_empty() {
                println!("no tokens (create one: doudi tokens create --help)");
            } else {
                let now = doudi_store::ts(&chrono::Utc::now());
                for t in &list {
                    let state = match (&t.revoked_at, &t.expires_at) {
                        (Some(at), _) => format!("revoked {at}"),
                        (None, Some(e)) if *e <= now => format!("expired {e}"),
                        (None, Some(e)) => format!("valid until {e}"),
                        (None, None) => "valid, never expires".to_string(),
                    };
                    println!(
                        "#{:<4} {:<10} {:<12} {:<14} {}  created {} by {}{}",
                        t.token_id,
                        t.role,
                        t.region_code,
                        t.officer_id
                            .as_deref()
                            .or(t.feed_source.as_deref())
                            .unwrap_or("-"),
                        state,
                        t.created_at,
                        t.created_by,
                        if t.label.is_empty() {
                            String::new()
                        } else {
                            format!("  ({})", t.label)
                        }
                    );
                }
            }
            ExitCode::SUCCESS
        }
        TokensCommand::Revoke { id } => match store.revoke_token(id, &super::reader()).await {
            Ok(()) => {
                println!("token #{id} revoked");
                ExitCode::SUCCESS
            }
            Err(StoreError::Conflict(m)) => {
                eprintln!("error: {m}");
                ExitCode::from(2)
            }
            Err(e) => return Err(e.into()),
        },
    };
    store.close().await;
    Ok(code)
}
