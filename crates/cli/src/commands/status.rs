use std::process::ExitCode;

use clap::Args;
use doudi_model::Level;

use super::open_store;
use crate::lang::t;
use crate::output;
use crate::Config;

#[derive(Debug, Args)]
pub struct StatusArgs {
    /// Print as JSON (for scripts and monitoring).
    #[arg(long)]
    pub json: bool,
}

pub async fn run(config: &Config, args: StatusArgs) -> anyhow::Result<ExitCode> {
    let store = open_store(config).await?;
    let s = store.status().await?;
    store.close().await;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&s)?);
        return Ok(ExitCode::SUCCESS);
    }
    let db = doudi_store::redact_url(&config.store.url);
    let open: i64 = s.warnings_open.values().sum();
    let by_level: Vec<String> = [Level::Red, Level::Orange, Level::Yellow]
        .iter()
        .map(|l| {
            let n = s.warnings_open.get(l).copied().unwrap_or(0);
            format!("{} {n}", crate::lang::level(*l))
        })
        .collect();
    let by_level = by_level.join(crate::lang::t("，", ", "));
    let total = s.warnings_total;
    let rows = [
        (t("数据库", "database"), db),
        (
            t("低保名册", "register"),
            tr!(
                "{} 户，{} 人",
                "{} households, {} members",
                s.households,
                s.members
            ),
        ),
        (
            t("收到记录", "events received"),
            tr!("{} 条", "{}", s.received),
        ),
        (t("  新记录", "  new"), s.accepted.to_string()),
        (t("  重复", "  duplicates"), s.duplicates.to_string()),
        (t("  死信", "  dead letters"), s.dead_letters.to_string()),
        (
            t("身份匹配", "identity"),
            tr!(
                "已确认 {}，待人工确认 {}，未匹配 {}",
                "{} linked, {} review, {} unmatched",
                s.linked,
                s.review,
                s.unmatched
            ),
        ),
        (
            t("已处理", "applied"),
            tr!(
                "{} 条事实，{} 次评估",
                "{} facts, {} assessments",
                s.applied,
                s.assessments
            ),
        ),
        (
            t("未办结预警", "warnings open"),
            tr!(
                "{open} 条（{by_level}）；累计开启 {total} 条",
                "{open} ({by_level}); {total} ever opened"
            ),
        ),
    ];
    let width = match crate::lang::lang() {
        crate::lang::Lang::Zh => 12,
        crate::lang::Lang::En => 16,
    };
    for (label, value) in rows {
        println!("{}{value}", output::pad(label, width));
    }
    Ok(ExitCode::SUCCESS)
}
