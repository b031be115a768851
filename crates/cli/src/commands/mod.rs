pub mod audit;
pub mod backtest;
pub mod crosscheck;
pub mod deadletters;
pub mod deliver;
pub mod demo;
pub mod dev_broker;
pub mod feeds;
pub mod findings;
pub mod gen;
pub mod import;
pub mod linkage;
pub mod officers;
pub mod produce;
pub mod review;
pub mod rules;
pub mod run;
pub mod serve;
pub mod silences;
pub mod status;
pub mod tokens;
pub mod trace;
pub mod warnings;

use anyhow::Context;
use doudi_store::Store;

use crate::Config;

/// Resolves on the first SIGTERM (Unix) or Ctrl-C.
pub async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

pub async fn open_store(config: &Config) -> anyhow::Result<Store> {
    let password = config.store.password.get();
    Store::open_with_password(&config.store.url, password)
        .await
        .with_context(|| {
            format!(
                "cannot use the database {}",
                doudi_store::redact_url(&config.store.url)
            )
        })
}

/// The pipeline's engine over the stored register, with the configured rule set, the officer
/// directory and the active identity model. With no model stored yet and `feeds` given, one is
/// trained on a sample of the feeds first and stored, so that every later run (a restart too)
/// links with the same model.
pub async fn load_engine(
    config: &Config,
    store: &Store,
    feeds: Option<&std::path::Path>,
) -> anyhow::Result<doudi_pipeline::Engine> {
    let engine = engine_parts(config, store, doudi_pipeline::Engine::new).await?;
    let model = match store.active_linkage_model().await? {
        Some(m) => Some(
            serde_json::from_str::<doudi_linkage::Model>(&m.model)
                .with_context(|| format!("stored linkage model {} is unreadable", m.version))?,
        ),
        None => match feeds {
            Some(dir) if !engine.index().is_empty() => {
                linkage::train_and_store(config, store, &engine, dir).await?
            }
            _ => None,
        },
    };
    Ok(match model {
        Some(model) => {
            tracing::info!(model = %model.version, "identity model loaded");
            engine.with_model(model, config.linkage.thresholds.clone())
        }
        None => {
            tracing::info!("identity model: the prior (none trained yet)");
            engine
        }
    })
}

/// The engine for applying facts already linked (a review decision): rules, register and
/// officer directory, without building the register's identity index.
pub async fn load_assessor(
    config: &Config,
    store: &Store,
) -> anyhow::Result<doudi_pipeline::Engine> {
    engine_parts(config, store, doudi_pipeline::Engine::assess_only).await
}

/// How an engine is made from rules, limits and the register.
type BuildEngine = fn(
    doudi_risk::RuleSet,
    doudi_model::ParseLimits,
    Vec<doudi_model::Household>,
) -> doudi_pipeline::Engine;

/// Rules, register and officer directory, made into an engine by `build`.
async fn engine_parts(
    config: &Config,
    store: &Store,
    build: BuildEngine,
) -> anyhow::Result<doudi_pipeline::Engine> {
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
    Ok(build(rules, config.limits.parse_limits(), register).with_directory(directory))
}

/// Who is using the command line, for the audit trail of reads of personal data: `DOUDI_USER`,
/// else the login name.
pub fn reader() -> String {
    std::env::var("DOUDI_USER")
        .or_else(|_| std::env::var("USER"))
        .map(|u| format!("cli:{u}"))
        .unwrap_or_else(|_| "cli:unknown".to_string())
}

/// Mask a person's ID number and name (a JSON object with `id_number` and `name`) for display.
pub fn mask_person(p: &mut serde_json::Value) {
    if let Some(id) = p.get("id_number").and_then(serde_json::Value::as_str) {
        p["id_number"] = serde_json::Value::String(doudi_model::mask_id_str(id));
    }
    if let Some(name) = p.get("name").and_then(serde_json::Value::as_str) {
        p["name"] = serde_json::Value::String(doudi_model::mask_name(name));
    }
}

/// Mask every member of a household record (JSON) for display.
pub fn mask_household(h: &mut serde_json::Value) {
    if let Some(members) = h
        .get_mut("members")
        .and_then(serde_json::Value::as_array_mut)
    {
        members.iter_mut().for_each(mask_person);
    }
}
