use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Subcommand;

#[derive(Debug, Subcommand)]
pub enum RulesCommand {
    /// Validate a rule-set file and print its version (exit 2 when invalid).
    Check {
        /// The rule-set TOML file, e.g. rules/default.toml.
        file: PathBuf,
    },
}

pub fn run(cmd: RulesCommand) -> anyhow::Result<ExitCode> {
    match cmd {
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
