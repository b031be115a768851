use std::process::ExitCode;

use clap::Args;
use doudi_model::Level;

use super::open_store;
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
    println!(
        "database        {}",
        doudi_store::redact_url(&config.store.url)
    );
    println!(
        "register        {} households, {} members",
        s.households, s.members
    );
    println!("events received {}", s.received);
    println!("  new           {}", s.accepted);
    println!("  duplicates    {}", s.duplicates);
    println!("  dead letters  {}", s.dead_letters);
    println!(
        "identity        {} linked, {} review, {} unmatched",
        s.linked, s.review, s.unmatched
    );
    println!(
        "applied         {} facts, {} assessments",
        s.applied, s.assessments
    );
    let open: i64 = s.warnings_open.values().sum();
    let by_level: Vec<String> = [Level::Red, Level::Orange, Level::Yellow]
        .iter()
        .map(|l| format!("{l} {}", s.warnings_open.get(l).copied().unwrap_or(0)))
        .collect();
    println!(
        "warnings open   {open} ({}); {} ever opened",
        by_level.join(", "),
        s.warnings_total
    );
    Ok(ExitCode::SUCCESS)
}
