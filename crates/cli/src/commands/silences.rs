//! `doudi silences`: hold back notices for a household or a region, for a stated reason and time.

use std::process::ExitCode;

use chrono::{DateTime, FixedOffset, TimeDelta, Utc};
use clap::Subcommand;
use doudi_model::RegionCode;

use super::open_store;
use crate::Config;

#[derive(Debug, Subcommand)]
pub enum SilencesCommand {
    /// Silence notices (new warnings', escalations, reminders) for a household or a region, for a
    /// time window: notices that fall due meanwhile are not sent; when it ends, escalations and
    /// reminders resume. Warnings are still opened, updated and counted. Only a supervisor of the
    /// region may set one.
    #[command(after_help = "\
Examples:
  doudi silences add --region 341502001 --hours 48 --reason \"flood response: the township works on site\" --by s-341502
  doudi silences add --household H00001804 --until 2026-12-01T00:00:00+08:00 --reason \"in hospital, family informed\" --by o-341502001")]
    Add {
        #[arg(long, conflicts_with = "region", required_unless_present = "region")]
        household: Option<String>,
        /// A region code (county, township or village): every household inside it.
        #[arg(long)]
        region: Option<String>,
        /// Why (recorded).
        #[arg(long)]
        reason: String,
        /// Who sets it (recorded).
        #[arg(long, env = "DOUDI_USER", value_name = "NAME")]
        by: String,
        /// Start (RFC 3339); default now.
        #[arg(long, value_name = "TIME")]
        from: Option<DateTime<FixedOffset>>,
        /// End (RFC 3339).
        #[arg(
            long,
            value_name = "TIME",
            conflicts_with = "hours",
            required_unless_present = "hours"
        )]
        until: Option<DateTime<FixedOffset>>,
        /// Or: length in hours.
        #[arg(long)]
        hours: Option<u32>,
    },
    /// List silences, newest first.
    List {
        #[arg(long)]
        json: bool,
    },
}

fn stamp(t: DateTime<Utc>) -> String {
    doudi_store::ts(&t)
}

pub async fn run(config: &Config, cmd: SilencesCommand) -> anyhow::Result<ExitCode> {
    let store = open_store(config).await?;
    let code = match cmd {
        SilencesCommand::Add {
            household,
            region,
            reason,
            by,
            from,
            until,
            hours,
        } => {
            let (scope, target) = match (household, region) {
                (Some(h), _) => ("household", h),
                (None, Some(r)) => match RegionCode::parse(&r) {
                    Ok(code) => ("region", code.as_str().to_string()),
                    Err(e) => {
                        eprintln!("error: {e}");
                        return Ok(ExitCode::from(2));
                    }
                },
                (None, None) => unreachable_args()?,
            };
            // Only a supervisor whose region contains the silenced one may set it.
            let region = match scope {
                "region" => Some(target.clone()),
                _ => store.household_region(&target).await?,
            };
            let Some(region) = region else {
                eprintln!("error: household {target} is not in the register");
                return Ok(ExitCode::from(2));
            };
            let directory = doudi_app::engine::directory(&store).await?;
            let allowed = directory.get(&by).is_some_and(|o| {
                o.role == doudi_warnings::routing::Role::Supervisor
                    && region.starts_with(o.region.as_str())
            });
            if !allowed {
                let why = format!(
                    "{by:?} may not silence {scope} {target}: only a supervisor whose region contains {region} may (see `doudi officers list`)"
                );
                store
                    .audit(
                        &by,
                        "silence_refused",
                        &format!("{scope}:{target}"),
                        &serde_json::json!({"refused": why}),
                    )
                    .await?;
                eprintln!("error: {why}");
                return Ok(ExitCode::from(2));
            }
            if reason.trim().is_empty() {
                eprintln!("error: a silence needs a reason (--reason)");
                return Ok(ExitCode::from(2));
            }
            let start = from.map_or_else(Utc::now, |t| t.with_timezone(&Utc));
            let end = match (until, hours) {
                (Some(t), _) => t.with_timezone(&Utc),
                (None, Some(h)) => start + TimeDelta::hours(i64::from(h)),
                (None, None) => unreachable_args()?,
            };
            if end <= start {
                eprintln!("error: the silence ends ({end}) before it starts ({start})");
                return Ok(ExitCode::from(2));
            }
            let id = store
                .add_silence(scope, &target, &reason, &stamp(start), &stamp(end), &by)
                .await?;
            println!(
                "silence #{id}: {scope} {target} from {} until {}",
                stamp(start),
                stamp(end)
            );
            ExitCode::SUCCESS
        }
        SilencesCommand::List { json } => {
            let list = store.silences().await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&list)?);
            } else if list.is_empty() {
                println!("no silences");
            } else {
                for s in &list {
                    println!(
                        "#{:<4} {:<9} {:<14} {} → {}  by {}: {}",
                        s.silence_id,
                        s.scope,
                        s.target,
                        s.starts_at,
                        s.ends_at,
                        s.created_by,
                        s.reason
                    );
                }
            }
            ExitCode::SUCCESS
        }
    };
    store.close().await;
    Ok(code)
}

/// clap enforces the required arguments; this only guards against a change in their declaration.
fn unreachable_args<T>() -> anyhow::Result<T> {
    anyhow::bail!("give --household or --region, and --until or --hours")
}
