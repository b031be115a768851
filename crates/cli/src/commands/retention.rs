//! `doudi retention`: remove the raw payloads (records as the departments sent them) received
//! more than `store.raw_retention_days` ago. The normalised events, identity decisions,
//! assessments and warnings stay; the trace says when each raw record was removed.

use std::process::ExitCode;

use clap::Args;

use super::{open_store, reader};
use crate::Config;

#[derive(Debug, Args)]
#[command(after_help = "\
Raw payloads are kept for store.raw_retention_days (DOUDI_STORE__RAW_RETENTION_DAYS; unset: kept for good). Run it nightly from cron. Each removal is marked with its time, which `doudi trace` shows in the record's place, and recorded in the audit trail. Dead letters keep their raw bytes (a replay needs them).

Example: DOUDI_STORE__RAW_RETENTION_DAYS=180 doudi retention")]
pub struct RetentionArgs {
    /// Remove those received more than DAYS days ago (instead of store.raw_retention_days).
    #[arg(long, value_name = "DAYS")]
    pub days: Option<u32>,
}

pub async fn run(config: &Config, args: RetentionArgs) -> anyhow::Result<ExitCode> {
    let Some(days) = args.days.or(config.store.raw_retention_days) else {
        return super::refusal(tr!(
            "未设置原始记录保存期限（store.raw_retention_days 或 --days）",
            "no retention age is set (store.raw_retention_days or --days)"
        ));
    };
    let before = chrono::Utc::now() - chrono::Duration::days(i64::from(days));
    let store = open_store(config).await?;
    let removed = store.remove_raw_before(before, &reader()).await;
    store.close().await;
    let removed = removed?;
    let before = crate::lang::when(&before);
    say!(
        "已删除 {removed} 条 {before} 之前收到的原始记录",
        "removed the raw payloads of {removed} events received before {before}"
    );
    Ok(ExitCode::SUCCESS)
}
