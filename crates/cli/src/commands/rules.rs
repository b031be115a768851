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
                .with_context(|| format!("cannot read {}", file.display()))?;
            match doudi_risk::RuleSet::from_toml_str(&text) {
                Ok(rules) => {
                    println!("{}: valid, version {}", file.display(), rules.version);
                    Ok(ExitCode::SUCCESS)
                }
                Err(e) => {
                    // the file, the rule (when the entry belongs to one), the entry, what is wrong
                    let rule = e
                        .rule()
                        .map(|r| format!(" rule `{r}`,"))
                        .unwrap_or_default();
                    eprintln!(
                        "{}: invalid:{rule} `{}`: {}",
                        file.display(),
                        e.key(),
                        e.message()
                    );
                    Ok(ExitCode::from(2))
                }
            }
        }
    }
}
