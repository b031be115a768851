//! `doudi backtest`: replay every stored household timeline under another rule set and report what
//! would change, before the change is made; `--report`: how the store's warnings are spread
//! (level × top cause × category, and what drives the reds).

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;
use doudi_model::{Category, Fact, Household};
use doudi_risk::{RuleSet, Warned};

use super::open_store;
use crate::{output, Config};

/// Households read from the store per page.
const PAGE: i64 = 2_000;

#[derive(Debug, Args)]
#[command(after_help = "\
Every household with a timeline is assessed twice, as of its latest fact: under the rule set in use (rules.file, or the built-in one) and under NEW.toml. The report counts warnings gained and lost by level, the level-change matrix, and shows a few households of each kind of change with their top reasons. Nothing is written.

With --report (and no --rules), nothing is replayed: the warnings not yet resolved are spread by level × top cause (the largest finding, or the 急难 cause it reports) × the household's category, with how many reds are driven by a finding and how many by the vulnerability multiplier, and examples of each cell. Read it against the generator's scenario mix (crates/synth).

Example: doudi backtest --rules rules/2027-01.toml --examples 5
         doudi backtest --report --examples 2")]
pub struct BacktestArgs {
    /// The candidate rule set (checked first, as `doudi rules check` does).
    #[arg(long, value_name = "NEW.toml", required_unless_present = "report")]
    pub rules: Option<PathBuf>,
    /// Report how the store's warnings are spread instead (calibration).
    #[arg(long)]
    pub report: bool,
    /// Households shown per kind of change.
    #[arg(long, default_value_t = 3)]
    pub examples: usize,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
}

pub async fn run(config: &Config, args: BacktestArgs) -> anyhow::Result<ExitCode> {
    let Some(path) = args.rules.as_ref().filter(|_| !args.report) else {
        return report(config, &args).await;
    };
    let current = config.rule_set()?;
    let text =
        std::fs::read_to_string(path).with_context(|| output::cannot("读取", "read", path))?;
    let candidate = match RuleSet::from_toml_str(&text) {
        Ok(r) => r,
        Err(e) => {
            let p = path.display();
            return super::refusal(tr!("规则集 {p} 无效：{e}", "{p}: {e}"));
        }
    };
    let store = open_store(config).await?;
    let register: HashMap<String, Household> = store
        .load_register()
        .await
        .context(crate::lang::t(
            "无法加载低保名册",
            "cannot load the register",
        ))?
        .into_iter()
        .map(|h| (h.household_id.clone(), h))
        .collect();
    let bar = output::bar(
        register.len() as u64,
        crate::lang::t("重放各户记录", "replaying timelines"),
    );
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Vec<(String, Vec<Fact>)>>(4);
    let examples = args.examples;
    let replay = tokio::task::spawn_blocking(move || {
        let items = std::iter::from_fn(|| rx.blocking_recv())
            .flatten()
            .filter_map(|(id, facts)| {
                let h = register.get(&id)?.clone();
                let as_of = facts.iter().map(|f| f.occurred_at).max()?;
                Some((h, facts, as_of))
            });
        doudi_risk::backtest(&current, &candidate, items, examples)
    });
    let mut after = String::new();
    loop {
        let page = store.timelines_after(&after, PAGE).await?;
        let Some((last, _)) = page.last() else {
            break;
        };
        after = last.clone();
        bar.inc(page.len() as u64);
        if tx.send(page).await.is_err() {
            break;
        }
    }
    drop(tx);
    let report = replay.await.context(crate::lang::t(
        "回测线程中止",
        "the backtest thread stopped",
    ))?;
    bar.finish_and_clear();
    store.close().await;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", report.render_text());
    }
    Ok(ExitCode::SUCCESS)
}

/// `--report`: the spread of the warnings not yet resolved.
async fn report(config: &Config, args: &BacktestArgs) -> anyhow::Result<ExitCode> {
    let store = open_store(config).await?;
    let warnings = store
        .open_warnings(i64::MAX, None)
        .await
        .context(crate::lang::t("无法读取预警", "cannot read the warnings"))?;
    store.close().await;
    let mut rows = Vec::with_capacity(warnings.len());
    let mut unread = 0usize;
    for w in &warnings {
        let category = w
            .household
            .get("category")
            .and_then(|c| serde_json::from_value::<Category>(c.clone()).ok());
        match category {
            Some(category) => rows.push((
                w.household_id.as_str(),
                w.level,
                category,
                w.summary.clone(),
            )),
            None => unread += 1,
        }
    }
    if unread > 0 {
        eprintln!(
            "{}",
            tr!(
                "注意：有 {unread} 条预警的等级、保障类别或评估摘要无法读取，未计入",
                "warning: {unread} warnings whose level, household category or summary could not be read are left out"
            )
        );
    }
    let report = doudi_risk::calibrate(
        rows.iter().map(|(id, level, category, latest)| Warned {
            household_id: id,
            level: *level,
            category: *category,
            latest,
        }),
        args.examples,
    );
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{report}");
    }
    Ok(ExitCode::SUCCESS)
}
