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
                    let (id, target, from, until) =
                        (s.silence_id, &s.target, &s.starts_at, &s.ends_at);
                    let scope = scope_words(s.scope);
                    say!(
                        "静默 #{id}：{scope} {target}，从 {from} 到 {until}",
                        "silence #{id}: {scope} {target} from {from} until {until}"
                    );
                    ExitCode::SUCCESS
                }
                Err(e) => refused(e)?,
            }
        }
        SilencesCommand::List { json } => {
            let list = store.silences().await?;
            let empty = || tr!("没有静默", "no silences");
            crate::output::print_list(json, &list, empty, |s| {
                let (id, target, from, until) = (s.silence_id, &s.target, &s.starts_at, &s.ends_at);
                let (by, reason, scope) = (&s.created_by, &s.reason, scope_words(&s.scope));
                say!(
                    "#{id:<4} {scope} {target:<14} {from} → {until}  {by}：{reason}",
                    "#{id:<4} {scope:<9} {target:<14} {from} → {until}  by {by}: {reason}"
                );
            })?;
            ExitCode::SUCCESS
        }
    };
    store.close().await;
    Ok(code)
}

/// clap enforces the required arguments; this only guards against a change in their declaration.
fn unreachable_args<T>() -> anyhow::Result<T> {
    anyhow::bail!(tr!(
        "请给出 --household 或 --region，以及 --until 或 --hours",
        "give --household or --region, and --until or --hours"
    ))
}

/// A silence's scope (`household`, `region`) in words.
fn scope_words(scope: &str) -> &str {
    match (crate::lang::lang(), scope) {
        (crate::lang::Lang::Zh, "household") => "户",
        (crate::lang::Lang::Zh, "region") => "区划",
        (_, other) => other,
    }
}
