pub mod deadletters;
pub mod demo;
pub mod gen;
pub mod import;
pub mod rules;
pub mod run;
pub mod status;

use anyhow::Context;
use doudi_store::Store;

use crate::Config;

pub async fn open_store(config: &Config) -> anyhow::Result<Store> {
    Store::open(&config.store.url)
        .await
        .with_context(|| format!("cannot use the database {}", config.store.url))
}
