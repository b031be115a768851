pub mod backtest;
pub mod crosscheck;
pub mod deadletters;
pub mod demo;
pub mod findings;
pub mod gen;
pub mod import;
pub mod officers;
pub mod review;
pub mod rules;
pub mod run;
pub mod status;
pub mod warnings;

use anyhow::Context;
use doudi_store::Store;

use crate::Config;

pub async fn open_store(config: &Config) -> anyhow::Result<Store> {
    Store::open(&config.store.url)
        .await
        .with_context(|| format!("cannot use the database {}", config.store.url))
}

/// The pipeline's engine over the stored register, with the configured rule set.
pub async fn load_engine(config: &Config, store: &Store) -> anyhow::Result<doudi_pipeline::Engine> {
    let rules = config.rule_set()?;
    let register = store
        .load_register()
        .await
        .context("cannot load the register")?;
    if register.is_empty() {
        tracing::warn!(
            "the register is empty: every event will be unmatched (run `doudi import FILE` first)"
        );
    }
    tracing::info!(households = register.len(), rule_set = %rules.version, "register and rules loaded");
    let directory = officers::load_directory(store).await?;
    if directory.is_empty() {
        tracing::warn!(
            "no officer directory: warnings stay unassigned (run `doudi officers import FILE`)"
        );
    }
    Ok(
        doudi_pipeline::Engine::new(rules, config.limits.parse_limits(), register)
            .with_directory(directory),
    )
}
