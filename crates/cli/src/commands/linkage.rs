//! `doudi linkage`: the identity model — train it, show it, explain a decision, and evaluate the
//! engine on any pair of CSV files.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Subcommand;
use doudi_linkage::{LinkDecision, Model, Outcome};

use super::open_store;
use crate::lang::t;
use crate::Config;

#[derive(Debug, Subcommand)]
pub enum LinkageCommand {
    /// Train the identity model by EM on a sample of the feeds (no labels needed) and make it the
    /// one the pipeline links with, unless it is degenerate (exit 3: the last good model stays).
    #[command(after_help = "\
The model (m and u probabilities per field and comparison level, the prior, term-frequency settings) is estimated from the register and a sample of feed records (linkage.train_sample, evenly over the sources). `doudi run` does this itself on its first run; run it again after the register or the feeds change a lot. Decisions already made keep the model version they were made with.")]
    Train {
        /// Feeds folder to sample (overrides feeds.dir).
        #[arg(long, value_name = "DIR", conflicts_with = "brokers")]
        feeds: Option<PathBuf>,
        /// Sample the feed topics of these Kafka brokers instead (up to --per-partition records
        /// of every partition from its beginning; the workers' positions are untouched).
        #[arg(long, value_name = "HOST:PORT,…")]
        brokers: Option<String>,
        /// With --brokers: records read per partition.
        #[arg(long, default_value_t = 5000)]
        per_partition: usize,
        /// With --brokers: keep running and train again every DURATION (e.g. 7d, 12h, 30m), the
        /// first time at once: a scheduled retraining for a Kafka deployment without a CronJob.
        /// A refused (degenerate) model or an unreachable broker is reported and the next period
        /// tried; the last good model stays active meanwhile. Stops on SIGTERM / Ctrl-C.
        #[arg(long, value_name = "DURATION", requires = "brokers", value_parser = parse_every)]
        every: Option<std::time::Duration>,
        /// Records to sample (overrides linkage.train_sample).
        #[arg(long)]
        sample: Option<usize>,
    },
    /// Show the active model: each field's levels with m, u and weight; with --activations, the
    /// models activated, when, by whom and from which stream positions.
    Show {
        #[arg(long)]
        json: bool,
        #[arg(long)]
        activations: bool,
    },
    /// Explain the identity decision of a stored event: each field's level and weight, the total,
    /// the thresholds, the decision.
    Explain {
        /// The event's number (`#` in `doudi review list`).
        seq: i64,
        #[arg(long)]
        json: bool,
    },
    /// Measure the engine on your own files: train, link (or deduplicate), score against truth.
    #[command(after_help = "\
Example:
  doudi linkage eval --spec people.toml --left a.csv --right b.csv --truth pairs.csv

The spec (TOML) names the id column and, per compared column, a comparator type:
  id = \"rec_id\"
  [[field]]
  column = \"given_name\"
  type = \"given_name\"   # identity_number | person_name | given_name | family_name | date | text | code | number
Without --right the left file is deduplicated. The truth file is CSV with a header row and two columns: the ids of a true pair. Errors name the file, line and column. See the README for the whole format.")]
    Eval {
        #[arg(long, value_name = "SPEC.toml")]
        spec: PathBuf,
        #[arg(long, value_name = "A.csv")]
        left: PathBuf,
        #[arg(long, value_name = "B.csv")]
        right: Option<PathBuf>,
        #[arg(long, value_name = "PAIRS.csv")]
        truth: PathBuf,
        #[arg(long)]
        json: bool,
    },
}

pub async fn run(config: &Config, cmd: LinkageCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        LinkageCommand::Train {
            feeds,
            brokers,
            per_partition,
            sample,
            every,
        } => {
            if let Some(brokers) = brokers {
                if let Some(every) = every {
                    return train_from_kafka_every(config, &brokers, per_partition, every).await;
                }
                return train_from_kafka(config, &brokers, per_partition).await;
            }
            let feeds = feeds.unwrap_or_else(|| config.feeds.dir.clone());
            if !feeds.is_dir() {
                let dir = feeds.display();
                anyhow::bail!(tr!(
                    "数据目录 {dir} 不存在（请用 --feeds DIR 指定）",
                    "feeds folder {dir} does not exist (pass --feeds DIR)"
                ));
            }
            let mut config = config.clone();
            if let Some(n) = sample {
                config.linkage.train_sample = n;
            }
            let store = open_store(&config).await?;
            let register = super::load_register(&store).await?;
            let engine = doudi_pipeline::Engine::new(
                config.rule_set()?,
                config.limits.parse_limits(),
                register,
            );
            let settings = super::engine_settings(&config)?;
            let activation =
                doudi_app::engine::train_and_store(&store, &settings, &engine, &feeds).await?;
            store.close().await;
            Ok(report_activation(&activation, &feeds.display().to_string()))
        }
        LinkageCommand::Show {
            json,
            activations: true,
        } => super::rules::show(config, doudi_store::ActivationKind::Model, json).await,
        LinkageCommand::Show { json, .. } => {
            let store = open_store(config).await?;
            let stored = store.active_linkage_model().await?;
            let refused = store.last_audit_record("linkage_model_refused").await?;
            let activated = store.last_audit_record("linkage_model_activated").await?;
            store.close().await;
            // a refusal after the last activation: the active model is the one kept
            let refusal = refused
                .filter(|r| activated.as_ref().is_none_or(|a| a.seq < r.seq))
                .map(|r| {
                    let detail: serde_json::Value =
                        serde_json::from_str(&r.detail).unwrap_or_default();
                    (
                        r.at,
                        detail["reason"]
                            .as_str()
                            .unwrap_or("degenerate")
                            .to_string(),
                    )
                });
            let (model, trained) = match stored {
                Some(m) => (
                    serde_json::from_str::<Model>(&m.model).context(t(
                        "保存的身份匹配模型无法读取",
                        "the stored model is unreadable",
                    ))?,
                    {
                        let (n, at) = (m.trained_on, &m.trained_at);
                        tr!("用 {n} 条记录训练于 {at}", "trained on {n} records at {at}")
                    },
                ),
                None => (
                    Model::prior(),
                    tr!("先验模型（尚未训练）", "the prior (no model trained yet)"),
                ),
            };
            let usable = doudi_linkage::check_model(&model);
            if json {
                let mut v = serde_json::to_value(&model)?;
                v["active"] = serde_json::json!(usable.is_ok());
                v["check"] = serde_json::json!(usable.as_ref().err().map(ToString::to_string));
                v["last_refusal"] = serde_json::json!(refusal
                    .as_ref()
                    .map(|(at, reason)| serde_json::json!({"at": at, "reason": reason})));
                println!("{}", serde_json::to_string_pretty(&v)?);
            } else {
                match &usable {
                    Ok(()) => say!(
                        "当前身份匹配模型 {version}（{method}），{trained}",
                        "active identity model {version} ({method}), {trained}",
                        version = model.version,
                        method = model.method
                    ),
                    Err(e) => say!(
                        "保存的身份匹配模型 {version}（{method}），{trained}，未启用：{e}；数据比对使用先验模型",
                        "stored identity model {version} ({method}), {trained}, is NOT used: {e}; the pipeline links with the prior",
                        version = model.version,
                        method = model.method
                    ),
                }
                if let Some((at, reason)) = &refusal {
                    say!(
                        "上次训练于 {at} 被拒绝：{reason}；上面的模型仍然有效",
                        "last training refused at {at}: {reason}; the model above stays active"
                    );
                }
                let lambda = model.lambda;
                say!(
                    "记录属于名册成员的先验比例：{lambda:.3}",
                    "prior share of records about a register member: {lambda:.3}"
                );
                for f in &model.fields {
                    println!("{}:", f.field);
                    for l in &f.levels {
                        let (level, m, u) = (&l.level, l.m, l.u);
                        let weight = (m.max(1e-12) / u.max(1e-12)).log2();
                        say!(
                            "  {level:<18} m {m:<10.6} u {u:<12.3e} 权重 {weight:+7.2} 比特",
                            "  {level:<18} m {m:<10.6} u {u:<12.3e} weight {weight:+7.2} bits"
                        );
                    }
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        LinkageCommand::Explain { seq, json } => {
            let store = open_store(config).await?;
            let stored = store.link_decision(seq).await?;
            store.close().await;
            let Some(row) = stored else {
                return super::refusal(tr!(
                    "记录 #{seq} 没有身份判定",
                    "event #{seq} has no identity decision"
                ));
            };
            if json {
                println!("{}", serde_json::to_string_pretty(&row)?);
            } else {
                print!(
                    "{}",
                    explain(
                        config,
                        row.outcome,
                        row.household_id,
                        row.member_id,
                        row.evidence
                    )
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        LinkageCommand::Eval {
            spec,
            left,
            right,
            truth,
            json,
        } => {
            let report = tokio::task::spawn_blocking(move || {
                doudi_linkage::eval::run_eval(&spec, &left, right.as_deref(), &truth)
            })
            .await
            .context(t("评估线程中止", "the evaluation thread stopped"))?;
            match report {
                Ok(r) if json => println!("{}", serde_json::to_string_pretty(&r)?),
                Ok(r) => print!("{r}"),
                Err(e) => return super::refusal(e.to_string()),
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// A period: a whole number followed by `d`, `h`, `m` or `s` (e.g. `7d`), at least a minute.
fn parse_every(s: &str) -> Result<std::time::Duration, String> {
    let s = s.trim();
    let unit = s.chars().last().ok_or("an empty period")?;
    let secs_per = match unit {
        'd' => 86_400,
        'h' => 3_600,
        'm' => 60,
        's' => 1,
        _ => return Err("a period ends in d, h, m or s (e.g. 7d)".into()),
    };
    let n: u64 = s[..s.len() - 1]
        .trim()
        .parse()
        .map_err(|_| "a period is a whole number followed by d, h, m or s (e.g. 7d)".to_string())?;
    let secs = n.checked_mul(secs_per).ok_or("the period is too long")?;
    if secs < 60 {
        return Err("the period is at least a minute (1m)".into());
    }
    Ok(std::time::Duration::from_secs(secs))
}

/// `linkage train --brokers --every D`: train at once, then every `every`, until stopped. A
/// failed or refused training is reported and does not stop the schedule.
async fn train_from_kafka_every(
    config: &Config,
    brokers: &str,
    per_partition: usize,
    every: std::time::Duration,
) -> anyhow::Result<ExitCode> {
    let stop = super::shutdown_signal();
    tokio::pin!(stop);
    loop {
        let started = chrono::Utc::now();
        match train_from_kafka(config, brokers, per_partition).await {
            Ok(code) if code == ExitCode::SUCCESS => {}
            Ok(_) => eprintln!("the last good model stays active until the next training"),
            Err(e) => eprintln!(
                "error: the training started at {} failed: {e:#}",
                started.format("%Y-%m-%dT%H:%M:%SZ")
            ),
        }
        let next = chrono::Utc::now()
            + chrono::Duration::from_std(every).unwrap_or(chrono::Duration::days(7));
        println!("next training at {}", next.format("%Y-%m-%dT%H:%M:%SZ"));
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = &mut stop => {
                println!("stopped; no training under way");
                return Ok(ExitCode::SUCCESS);
            }
        }
    }
}

/// `linkage train --brokers`: train on a sample of the feed topics, with the same guard.
async fn train_from_kafka(
    config: &Config,
    brokers: &str,
    per_partition: usize,
) -> anyhow::Result<ExitCode> {
    let kafka = config.kafka_at(brokers);
    let limits = config.limits.parse_limits();
    let sample = tokio::task::spawn_blocking(move || {
        doudi_kafka::sample::sample_subjects(
            &kafka,
            per_partition,
            &limits,
            std::time::Duration::from_secs(120),
        )
    })
    .await
    .context(t("抽样线程中止", "the sampling thread stopped"))?
    .context(t("无法从数据主题抽样", "cannot sample the feed topics"))?;
    let (read, partitions, invalid) = (sample.read, sample.partitions, sample.invalid);
    let incomplete = match sample.incomplete {
        0 => String::new(),
        n => tr!(
            "；{n} 个分区未能按时读完样本",
            "; {n} partitions not read to the end of the sample in time"
        ),
    };
    say!(
        "从 {partitions} 个分区抽取 {read} 条记录（无效 {invalid} 条）{incomplete}",
        "sampled {read} records from {partitions} partitions ({invalid} not valid){incomplete}"
    );
    let store = open_store(config).await?;
    let register = super::load_register(&store).await?;
    let engine =
        doudi_pipeline::Engine::new(config.rule_set()?, config.limits.parse_limits(), register);
    let settings = super::engine_settings(config)?;
    let activation = doudi_app::engine::train_on(
        &store,
        &settings,
        &engine,
        &sample.subjects,
        "the Kafka topics",
    )
    .await?;
    store.close().await;
    Ok(report_activation(
        &activation,
        t("数据主题", "the feed topics"),
    ))
}

/// Print what became of a trained model; exit 3 when it was refused.
fn report_activation(activation: &doudi_app::engine::Activation, from: &str) -> ExitCode {
    use doudi_app::engine::Activation;
    match activation {
        Activation::Activated(model, row) => {
            let (version, method, id) = (&model.version, &model.method, row.id);
            say!(
                "已训练身份匹配模型 {version}（{method}），现为当前模型（启用记录 {id}，运行中的工作进程在下一批之前采用）",
                "trained identity model {version} ({method}); it is now the active model (activation {id}, adopted by running workers before their next batch)"
            );
            super::rules::print_positions(row);
            ExitCode::SUCCESS
        }
        Activation::Refused { reason, kept } => {
            complain!(
                "训练出的身份匹配模型退化，未启用：{reason}",
                "the trained identity model is degenerate and was NOT activated: {reason}"
            );
            let kept = kept.as_deref().unwrap_or(t("先验模型", "the prior"));
            eprintln!(
                "{}",
                tr!(
                    "当前模型仍为 {kept}（请检查样本：没有身份证号、只是姓名相同而其他信息很少的记录会误导 EM）",
                    "the active model stays {kept} (check the sample: records without ID numbers that share names but little else can mislead EM)"
                )
            );
            ExitCode::from(3)
        }
        Activation::NoRecords => {
            say!(
                "{from} 中没有有效记录：无法训练",
                "no valid records in {from}: nothing to train on"
            );
            ExitCode::SUCCESS
        }
    }
}

/// A stored decision, for a person to read.
pub fn explain(
    config: &Config,
    outcome: Outcome,
    household_id: Option<String>,
    member_id: Option<String>,
    evidence: doudi_model::Evidence,
) -> String {
    doudi_linkage::explain(
        &LinkDecision {
            outcome,
            household_id,
            member_id,
            evidence,
        },
        &config.linkage.thresholds,
    )
}

#[cfg(test)]
mod tests {
    use super::parse_every;
    use std::time::Duration;

    #[test]
    fn a_training_period_is_a_number_and_a_unit_of_at_least_a_minute() {
        assert_eq!(parse_every("7d"), Ok(Duration::from_secs(7 * 86_400)));
        assert_eq!(parse_every("12h"), Ok(Duration::from_secs(12 * 3_600)));
        assert_eq!(parse_every("30m"), Ok(Duration::from_secs(1_800)));
        assert_eq!(parse_every("90s"), Ok(Duration::from_secs(90)));
        for bad in [
            "",
            "7",
            "d",
            "7w",
            "-1d",
            "1.5d",
            "30s",
            "0m",
            "99999999999999999d",
        ] {
            assert!(parse_every(bad).is_err(), "{bad:?} accepted");
        }
    }
}
