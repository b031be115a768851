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
                    eprintln!("{}: invalid: {e}", file.display());
                    Ok(ExitCode::from(2))
                }
            }
        }
    }
}
