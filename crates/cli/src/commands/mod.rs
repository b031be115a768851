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
pub mod regions;
pub mod retention;
pub mod review;
pub mod rules;
pub mod run;
pub mod serve;
pub mod silences;
pub mod status;
pub mod tokens;
pub mod trace;
pub mod warnings;

use std::process::ExitCode;

use anyhow::Context;
use doudi_app::{AppError, EngineSettings, Who};
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
    let options = doudi_store::OpenOptions {
        write_cache_mib: config.memory.sqlite_write_cache_mib,
    };
    Store::open_with(&config.store.url, password, options)
        .await
        .with_context(|| {
            let db = doudi_store::redact_url(&config.store.url);
            tr!("无法使用数据库 {db}", "cannot use the database {db}")
        })
}

/// The stored register, which must not be empty (training and cross-checks need it).
pub async fn load_register(store: &Store) -> anyhow::Result<Vec<doudi_model::Household>> {
    let register = store.load_register().await.context(crate::lang::t(
        "无法加载低保名册",
        "cannot load the register",
    ))?;
    if register.is_empty() {
        anyhow::bail!(tr!(
            "低保名册为空：请先导入（doudi import FILE）",
            "the register is empty: import it first (doudi import FILE)"
        ));
    }
    Ok(register)
}

/// What the engine is made with, from the configuration.
/// The raw-row Kafka topics of `[kafka.profiles]` with their profiles (loaded and checked now),
/// for a dead-letter replay to map their refused rows again.
pub fn topic_profiles(
    config: &Config,
) -> anyhow::Result<Vec<(String, std::sync::Arc<doudi_feeds::Profile>)>> {
    if config.kafka.profiles.is_empty() {
        return Ok(Vec::new());
    }
    let mut kafka = config.kafka.clone();
    kafka.load_profiles().map_err(anyhow::Error::msg)?;
    Ok(kafka
        .loaded_profiles
        .0
        .iter()
        .map(|p| (p.topic.clone(), std::sync::Arc::clone(&p.profile)))
        .collect())
}

pub fn engine_settings(config: &Config) -> anyhow::Result<EngineSettings> {
    Ok(EngineSettings {
        rules: config.rule_set()?,
        rules_toml: config.rule_set_text()?,
        limits: config.limits.parse_limits(),
        thresholds: config.linkage.thresholds.clone(),
        train_sample: config.linkage.train_sample,
        train_iterations: config.linkage.train_iterations,
        label_strength: config.linkage.label_strength,
        deadlines: config.warnings.deadline_policy(),
        memory: config.memory.caps(),
        identity_index: config.memory.identity_index(),
    })
}

/// The pipeline's engine over the stored register, with the configured rule set, the officer
/// directory and the active identity model (see `doudi_app::engine::load_engine`: with no model
/// stored yet and `feeds` given, one is trained first).
pub async fn load_engine(
    config: &Config,
    store: &Store,
    feeds: Option<&std::path::Path>,
) -> anyhow::Result<doudi_pipeline::Engine> {
    let settings = engine_settings(config)?;
    Ok(doudi_app::engine::load_engine(store, &settings, feeds).await?)
}

/// Who is using the command line, for the audit trail of reads of personal data: `DOUDI_USER`,
/// else the login name.
pub fn reader() -> String {
    std::env::var("DOUDI_USER")
        .or_else(|_| std::env::var("USER"))
        .map(|u| format!("cli:{u}"))
        .unwrap_or_else(|_| "cli:unknown".to_string())
}

/// The command line as the use cases see it: the operator on the server (an administrator:
/// personal data masked, every read audited under [`reader`]).
pub fn asker() -> Who {
    Who::operator(reader())
}

/// A refusal the command line finds itself: `错误：…` / `error: …` on stderr, exit 2.
pub fn refusal(text: String) -> anyhow::Result<ExitCode> {
    eprintln!("{}{text}", crate::lang::error_lead());
    Ok(ExitCode::from(2))
}

/// A use case's refusal as the command line says it (`error: …`, exit 2); a failure stays an
/// error (exit 1).
pub fn refused(e: AppError) -> anyhow::Result<ExitCode> {
    if e.is_refusal() {
        match crate::lang::lang() {
            crate::lang::Lang::En => eprintln!("error: {e}"),
            crate::lang::Lang::Zh => {
                // The use case's own words stay as the detail after a lead in Chinese.
                let lead = match &e {
                    AppError::NotFound(_) => "没有找到",
                    AppError::Forbidden(_) => "无权执行",
                    AppError::Conflict(_) => "情况已有变化，未执行",
                    _ => "请求不能执行",
                };
                eprintln!("错误：{lead}：{e}");
            }
        }
        Ok(ExitCode::from(2))
    } else {
        Err(e.into())
    }
}
