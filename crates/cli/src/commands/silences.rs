//! `doudi silences`: hold back notices for a household or a region, for a stated reason and time.

use std::process::ExitCode;

use chrono::{DateTime, FixedOffset, Utc};
use clap::Subcommand;
use doudi_app::silences::{add_silence, client_time, end_after_hours, NewSilence, Scope};

use super::{asker, open_store, refused};
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
        /// Or: length in hours (1 to 8784: a silence lasts at most a year).
        #[arg(long)]
        hours: Option<u32>,
    },
    /// List silences, newest first.
    List {
        #[arg(long)]
        json: bool,
    },
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
            let scope = match (household, region) {
                (Some(h), _) => Scope::Household(h),
                (None, Some(r)) => Scope::Region(r),
                (None, None) => unreachable_args()?,
            };
            let times = (|| {
                let start = match &from {
                    Some(t) => client_time(t, "--from")?,
                    None => Utc::now(),
                };
                let end = match (&until, hours) {
                    (Some(t), _) => client_time(t, "--until")?,
                    (None, Some(h)) => end_after_hours(start, h)?,
                    (None, None) => return Ok(None),
                };
                Ok::<_, doudi_app::AppError>(Some((start, end)))
            })();
            let (start, end) = match times {
                Ok(Some(t)) => t,
                Ok(None) => unreachable_args()?,
                Err(e) => {
                    store.close().await;
                    return refused(e);
                }
            };
            let silence = NewSilence {
                scope,
                reason,
                start,
                end,
            };
            match add_silence(&store, &asker(), &by, &silence).await {
                Ok(s) => {
                    println!(
                        "silence #{}: {} {} from {} until {}",
                        s.silence_id, s.scope, s.target, s.starts_at, s.ends_at
                    );
                    ExitCode::SUCCESS
                }
                Err(e) => refused(e)?,
            }
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
