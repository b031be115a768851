use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Subcommand;
use doudi_store::{ActivationKind, ActivationRow};

use super::open_store;
use crate::Config;

#[derive(Debug, Subcommand)]
pub enum RulesCommand {
    /// Validate a rule-set file and print its version (exit 2 when invalid).
    Check {
        /// The rule-set TOML file, e.g. rules/default.toml.
        file: PathBuf,
    },
    /// Validate a rule-set file, store it and make it the active one: every worker assesses the
    /// records after the streams' committed positions with it (no restart), the records before
    /// keep the version they were decided with. Prints the positions it took effect at.
    #[command(after_help = "\
The activation is taken between two batches' commits: each stream's position at that instant is stored with it, and a record is decided with the latest activation at or before its own position (a stream that appears later starts with it). Running workers adopt it before their next batch; a household re-derived later (a late fact) re-assesses each fact with the rule set of that fact's record. `doudi rules show` lists the activations.")]
    Activate {
        /// The rule-set TOML file.
        file: PathBuf,
    },
    /// List the rule-set activations: version, when, by whom, from which positions.
    Show {
        #[arg(long)]
        json: bool,
    },
}

pub async fn run(config: &Config, cmd: RulesCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        RulesCommand::Activate { file } => {
            let text = std::fs::read_to_string(&file)
                .with_context(|| format!("cannot read {}", file.display()))?;
            if let Err(e) = doudi_risk::RuleSet::from_toml_str(&text) {
                let (path, key, why) = (file.display(), e.key(), e.message());
                complain!(
                    "{path}：规则集无效：`{key}`：{why}",
                    "{path}: invalid: `{key}`: {why}"
                );
                return Ok(ExitCode::from(2));
            }
            let store = open_store(config).await?;
            let row = doudi_app::engine::activate_rules(&store, &text, &super::reader()).await?;
            store.close().await;
            let (version, id, at) = (&row.version, row.id, &row.activated_at);
            say!(
                "规则集 {version} 已启用（启用记录 {id}，{at}）",
                "rule set {version} activated (activation {id}) at {at}"
            );
            print_positions(&row);
            Ok(ExitCode::SUCCESS)
        }
        RulesCommand::Show { json } => show(config, ActivationKind::Rules, json).await,
        RulesCommand::Check { file } => {
            let text = std::fs::read_to_string(&file)
                .with_context(|| crate::output::cannot("读取", "read", &file))?;
            match doudi_risk::RuleSet::from_toml_str(&text) {
                Ok(rules) => {
                    let (name, version) = (file.display(), &rules.version);
                    say!(
                        "{name}：有效，版本 {version}",
                        "{name}: valid, version {version}"
                    );
                    Ok(ExitCode::SUCCESS)
                }
                Err(e) => {
                    // the file, the rule (when the entry belongs to one), the entry, what is wrong
                    let rule = e
                        .rule()
                        .map(|r| tr!(" 规则 `{r}`，", " rule `{r}`,"))
                        .unwrap_or_default();
                    let (name, key, what) = (file.display(), e.key(), e.message());
                    eprintln!(
                        "{}",
                        tr!(
                            "{name}：无效：{rule} `{key}`：{what}",
                            "{name}: invalid:{rule} `{key}`: {what}"
                        )
                    );
                    Ok(ExitCode::from(2))
                }
            }
        }
    }
}

/// List the activations of `kind`.
pub async fn show(config: &Config, kind: ActivationKind, json: bool) -> anyhow::Result<ExitCode> {
    let store = open_store(config).await?;
    let rows: Vec<ActivationRow> = store
        .activations()
        .await?
        .into_iter()
        .filter(|a| a.kind == kind)
        .collect();
    store.close().await;
    if json {
        println!("{}", serde_json::to_string_pretty(&rows)?);
        return Ok(ExitCode::SUCCESS);
    }
    let what = match kind {
        ActivationKind::Rules => crate::lang::t("规则集", "rules"),
        ActivationKind::Model => crate::lang::t("身份匹配模型", "model"),
    };
    if rows.is_empty() {
        say!(
            "尚未启用任何{what}（首次 `doudi run` 会启用配置中的那一个）",
            "no {what} activated yet (a first `doudi run` activates the configured one)"
        );
    }
    let last = rows.last().map(|r| r.id);
    for row in &rows {
        let (id, version, at, by) = (row.id, &row.version, &row.activated_at, &row.activated_by);
        let active = if Some(row.id) == last {
            crate::lang::t("（当前）", " (active)")
        } else {
            ""
        };
        say!(
            "启用记录 {id}：{what} {version}{active}，{at}，由 {by} 启用",
            "activation {id}: {what} {version}{active} at {at} by {by}"
        );
        print_positions(row);
    }
    Ok(ExitCode::SUCCESS)
}

/// Where an activation took effect, stream by stream.
pub fn print_positions(row: &ActivationRow) {
    if row.from.is_empty() {
        say!("  自每个数据流的开头起", "  from the start of every stream");
        return;
    }
    for (stream, line) in &row.from {
        say!(
            "  {stream}：自第 {line} 行（偏移量）起",
            "  {stream}: from line (offset) {line}"
        );
    }
    say!(
        "  此后新出现的数据流：自其开头起",
        "  any stream begun since: from its start"
    );
}
