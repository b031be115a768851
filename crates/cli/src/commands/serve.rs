//! `doudi serve`: the HTTP API, the officers' and auditors' pages, /metrics, /healthz, /readyz.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::Args;

use super::open_store;
use crate::Config;

#[derive(Debug, Args)]
#[command(after_help = "\
Examples:
  doudi tokens create --role officer --region 341502001 --officer o-341502001 --expires-in 90
  doudi serve                                   # on serve.listen (default 127.0.0.1:8080)
  doudi serve --listen 0.0.0.0:8080 --config /etc/doudi/doudi.toml
  curl -H \"Authorization: Bearer $TOKEN\" 'http://127.0.0.1:8080/api/warnings?level=red&limit=20'

In production, put a TLS-terminating reverse proxy in front (deploy/README.md: compose and a Kubernetes
ingress) and list its address in serve.trusted_proxies, or give serve its own certificate
(serve.tls_cert, serve.tls_key). With an https serve.public_url, serve refuses to start with neither.
X-Forwarded-For is believed only from the addresses in serve.trusted_proxies.

Officers sign in at http://HOST:PORT/sign-in by pasting their token (Chinese pages; English with ?lang=en):
that opens a session of its own (12 hours at most); signing out ends it, not the API token.

Protections: anything outside a token's region answers 404, as if it did not exist; a client address
over serve.auth_failures_per_minute failed authentications gets 429 for a minute, valid token or not;
bodies over serve.max_body_bytes get 413 on every route; every answer is Cache-Control: no-store;
a silence lasts at most a year. A feeder token (doudi tokens create --role feeder --source SOURCE) pushes its source's events to POST /api/feeds/SOURCE as JSON lines: the batch is accepted whole or refused whole (422 naming the lines), appended with fsync to FEEDS/SOURCE/push-DATE.jsonl for doudi run to ingest, duplicates by event id not appended again. With ?profile=NAME (a profile in serve.push_profiles) the body is the department's own export (CSV, Excel, …), kept whole in FEEDS/push-PROFILE-vVERSION/ beside its profile. With serve.push_to = \"kafka\" the events go to the source's topic instead, answered once acknowledged by all in-sync replicas (503 if not). Over serve.push_max_bytes 413, over serve.push_batches_per_minute 429. The API is described in schemas/openapi.json. /healthz (process up), /readyz (database answers) and /metrics (Prometheus) need no token. SIGTERM or Ctrl-C stops accepting and lets requests in flight finish (serve.shutdown_grace_seconds).")]
pub struct ServeArgs {
    /// Address to listen on (overrides serve.listen).
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<String>,
}

pub async fn run(config: &Config, args: ServeArgs) -> anyhow::Result<ExitCode> {
    let s = &config.serve;
    let proxies =
        doudi_service::TrustedProxies::parse(&s.trusted_proxies).map_err(anyhow::Error::msg)?;
    doudi_service::check_transport(&s.public_url, s.tls_cert.is_some(), &proxies)
        .map_err(anyhow::Error::msg)?;
    let tls = match (&s.tls_cert, &s.tls_key) {
        (Some(cert), Some(key)) => {
            Some(doudi_service::tls_config(cert, key).map_err(anyhow::Error::msg)?)
        }
        _ => None,
    };
    let store = open_store(config).await?;
    let listen = args.listen.unwrap_or_else(|| s.listen.clone());
    let mut service = doudi_service::ServiceConfig::with_rules(config.rule_set()?);
    service.public_url = s.public_url.clone();
    service.max_body_bytes = s.max_body_bytes;
    service.auth_failures_per_minute = s.auth_failures_per_minute;
    service.max_page_size = s.max_page_size;
    service.push_max_bytes = s.push_max_bytes;
    service.push_batches_per_minute = s.push_batches_per_minute;
    service.time_zone = config.locality.zone()?;
    service.parse_limits = config.limits.parse_limits();
    service.thresholds = config.linkage.thresholds.clone();
    service.feeds_dir = config.feeds.dir.clone();
    service.replay_page_size = config.limits.batch_size.max(1) as i64;
    service.trusted_proxies = proxies;
    service.push_profiles = push_profiles(&s.push_profiles)?;
    service.topic_profiles = super::topic_profiles(config)?;
    if s.push_to == crate::config::PushTo::Kafka {
        if config.kafka.brokers.is_empty() {
            anyhow::bail!(tr!(
                "serve.push_to = \"kafka\" 需要设置 kafka.brokers（推送的记录要发布到的 Kafka 地址）",
                "serve.push_to = \"kafka\" needs kafka.brokers (the brokers the pushed events are produced to)"
            ));
        }
        let producer =
            doudi_kafka::produce::PushProducer::new(&config.kafka).context(crate::lang::t(
                "serve.push_to = \"kafka\"：无法创建 Kafka 生产者",
                "serve.push_to = \"kafka\": creating the producer",
            ))?;
        tracing::info!(brokers = %config.kafka.brokers, "pushed batches go to the feed topics (acks=all)");
        service.push_sink = Some(std::sync::Arc::new(KafkaPush(producer)));
    }
    service.deadlines = config.warnings.deadline_policy();
    let listener = tokio::net::TcpListener::bind(&listen)
        .await
        .with_context(|| tr!("无法在 {listen} 上监听", "cannot listen on {listen}"))?;
    let addr = listener.local_addr()?;
    if store.tokens().await?.is_empty() {
        tracing::warn!("no API tokens yet: create one with `doudi tokens create`");
    }
    let scheme = if tls.is_some() { "https" } else { "http" };
    tracing::info!(%addr, public_url = %s.public_url, "serving on {scheme}://{addr}");
    let app = doudi_service::app(doudi_service::AppState::new(store.clone(), service));
    let (stopped_tx, stopped_rx) = tokio::sync::oneshot::channel::<()>();
    let shutdown = async move {
        shutdown_signal().await;
        tracing::info!("shutting down: finishing requests in flight");
        let _ = stopped_tx.send(());
    };
    let grace = Duration::from_secs(s.shutdown_grace_seconds);
    let server = match tls {
        Some(tls) => tokio::spawn(doudi_service::serve_tls(
            doudi_service::TlsListener::new(listener, tls)?,
            app,
            shutdown,
        )),
        None => tokio::spawn(doudi_service::serve(listener, app, shutdown)),
    };
    tokio::pin!(server);
    tokio::select! {
        done = &mut server => done.context(crate::lang::t("服务任务失败", "the server task failed"))?.context(crate::lang::t("服务已停止", "the server stopped"))?,
        _ = async {
            let _ = stopped_rx.await;
            tokio::time::sleep(grace).await;
        } => {
            tracing::warn!(grace_seconds = grace.as_secs(), "requests still in flight after the grace period: stopping anyway");
        }
    }
    store.close().await;
    tracing::info!("stopped");
    Ok(ExitCode::SUCCESS)
}

/// The pushed batches' Kafka sink (`serve.push_to = "kafka"`); public so that the push
/// benchmark's Kafka mode wires the same adapter as `doudi serve`.
#[derive(Debug)]
pub struct KafkaPush(pub doudi_kafka::produce::PushProducer);

impl doudi_service::push::PushSink for KafkaPush {
    fn publish<'a>(
        &'a self,
        source: doudi_model::Source,
        lines: Vec<Vec<u8>>,
        profile: Option<&'a str>,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<String, String>> + Send + 'a>>
    {
        Box::pin(async move {
            self.0
                .publish(source, &lines, profile)
                .await
                .map_err(|e| e.to_string())
        })
    }
}

/// `serve.push_profiles`: each a shipped profile's name or a path, read and checked now (a bad
/// one stops `serve` from starting, naming it).
fn push_profiles(specs: &[String]) -> anyhow::Result<Vec<doudi_service::push::PushProfile>> {
    let mut out: Vec<doudi_service::push::PushProfile> = Vec::new();
    for spec in specs {
        let path = std::path::Path::new(spec);
        let text = match doudi_feeds::shipped::text(spec) {
            Some(t) if !path.exists() => t.to_string(),
            _ => std::fs::read_to_string(path).with_context(|| {
                tr!(
                    "serve.push_profiles：{spec:?} 既不是内置数据格式，也不是可读的文件",
                    "serve.push_profiles: {spec:?} is neither a shipped profile nor a readable file"
                )
            })?,
        };
        let profile = doudi_feeds::Profile::parse(&text, path)
            .with_context(|| format!("serve.push_profiles: {spec}"))?;
        if out.iter().any(|p| p.profile.name == profile.name) {
            let name = &profile.name;
            anyhow::bail!(tr!(
                "serve.push_profiles 两次列出数据格式 {name:?}：推送时按名称选择数据格式",
                "serve.push_profiles names profile {name:?} twice: a push chooses it by name"
            ));
        }
        out.push(doudi_service::push::PushProfile {
            profile: std::sync::Arc::new(profile),
            text,
        });
    }
    Ok(out)
}

/// Ctrl-C, or SIGTERM (a service manager stopping the service).
async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
}
