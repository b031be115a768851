//! Service benchmark: `GET /api/warnings` (the officer's list, one page of 50, most urgent first)
//! against the whole application (`doudi_service::app`, token check, region limit, JSON errors
//! and metrics layers) served in this process on loopback, over a store of generated data run
//! through the pipeline (SQLite, the embedded default).
//!
//! Several clients (reqwest, keep-alive) each ask as the officer of one township, in a loop, for a
//! while; printed: requests per second, latency p50 / p99 / max, and any non-200 answer.
//!
//! ```sh
//! cargo bench --bench service
//! DOUDI_BENCH_HOUSEHOLDS=50000 DOUDI_BENCH_CLIENTS=16 DOUDI_BENCH_SECONDS=20 cargo bench --bench service
//! DOUDI_BENCH_PAGE=10 cargo bench --bench service      # warnings per page (default 50)
//! ```
//! A benchmark, not a test: nothing here asserts a speed.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::NaiveDate;
use doudi_pipeline::{run_files, Engine, RunOptions};
use doudi_risk::RuleSet;
use doudi_store::{NewToken, OfficerRow, Store};
use doudi_synth::{GenConfig, Noise};
use doudi_warnings::routing::{Channels, Directory, Officer, Role};

#[cfg(all(target_os = "linux", not(target_env = "musl")))]
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() {
    let benching = std::env::args().any(|a| a == "--bench");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    runtime.block_on(bench(benching));
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

async fn bench(benching: bool) {
    let households = env(
        "DOUDI_BENCH_HOUSEHOLDS",
        if benching { 20_000 } else { 500 },
    ) as usize;
    let clients = env("DOUDI_BENCH_CLIENTS", 8) as usize;
    let seconds = env("DOUDI_BENCH_SECONDS", if benching { 10 } else { 1 });
    let page = env("DOUDI_BENCH_PAGE", 50);

    let dir = tempfile::tempdir().expect("temp dir");
    let cfg = GenConfig {
        households,
        seed: 5,
        start: NaiveDate::from_ymd_opt(2025, 11, 1).expect("date"),
        months: 6,
        hardship_share: 0.2,
        noise: Noise::default(),
    };
    doudi_synth::write_dataset(dir.path(), &cfg, &mut |_| {}).expect("generate");
    let url = format!("sqlite://{}", dir.path().join("bench.db").display());
    let store = Store::open(&url).await.expect("open store");
    let register = doudi_synth::generate_register(&cfg);
    store
        .import_register(&register, "register.jsonl", true)
        .await
        .expect("import");
    // One officer per township, so that warnings are routed as in production.
    let mut townships: Vec<String> = register
        .iter()
        .map(|h| h.region_code.as_str()[..9].to_string())
        .collect();
    townships.sort();
    townships.dedup();
    let officers: Vec<Officer> = townships
        .iter()
        .map(|t| Officer {
            officer_id: format!("o-{t}"),
            name: "officer".into(),
            role: Role::Officer,
            region: doudi_model::RegionCode::parse(t).expect("township"),
            channels: Channels::default(),
            substitute: None,
            on_duty: true,
        })
        .collect();
    let rows: Vec<OfficerRow> = officers
        .iter()
        .map(|o| OfficerRow {
            officer_id: o.officer_id.clone(),
            role: "officer".into(),
            region_code: o.region.as_str().into(),
            record: serde_json::to_string(o).expect("officer"),
        })
        .collect();
    store.import_officers(&rows).await.expect("officers");
    let engine = Arc::new(
        Engine::new(
            RuleSet::builtin(),
            doudi_model::ParseLimits::default(),
            store.load_register().await.expect("load register"),
        )
        .with_directory(Directory::new(officers).expect("directory")),
    );
    let opts = RunOptions {
        feeds_dir: dir.path().join("feeds"),
        batch_size: 10_000,
        channel_batches: 2,
        once: true,
        poll_interval: Duration::from_secs(1),
        invalid: Default::default(),
    };
    run_files(
        &store,
        engine,
        &opts,
        &(),
        doudi_pipeline::driver::CancellationToken::new(),
    )
    .await
    .expect("run");
    let status = store.status().await.expect("status");
    let mut tokens = Vec::new();
    for t in &townships {
        let (token, hash) = doudi_service::new_token();
        store
            .create_token(&NewToken {
                token_hash: &hash,
                role: "officer",
                region_code: t,
                officer_id: Some(&format!("o-{t}")),
                label: "bench",
                created_by: "bench",
                expires_at: None,
                feed_source: None,
            })
            .await
            .expect("token");
        tokens.push(token);
    }
    println!(
        "{households} households, {} warnings ({} active) in {} townships; {clients} clients for {seconds} s",
        status.warnings_total,
        status.warnings_open.values().sum::<i64>(),
        townships.len()
    );

    let state = doudi_service::AppState::new(
        store.clone(),
        doudi_service::ServiceConfig::with_rules(RuleSet::builtin()),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(doudi_service::serve(
        listener,
        doudi_service::app(state),
        async {
            let _ = stopped.await;
        },
    ));

    let until = Instant::now() + Duration::from_secs(seconds);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..clients {
        let token = tokens[c % tokens.len()].clone();
        let url = format!("{base}/api/warnings?limit={page}");
        tasks.push(tokio::spawn(async move {
            let http = reqwest::Client::builder()
                .pool_max_idle_per_host(1)
                .build()
                .expect("client");
            let mut latencies = Vec::new();
            let mut failures = 0u64;
            let mut rows = 0usize;
            while Instant::now() < until {
                let t0 = Instant::now();
                match http
                    .get(&url)
                    .header("authorization", format!("Bearer {token}"))
                    .send()
                    .await
                {
                    Ok(r) if r.status().is_success() => match r.bytes().await {
                        Ok(b) => {
                            rows = rows.max(b.len());
                            latencies.push(t0.elapsed());
                        }
                        Err(_) => failures += 1,
                    },
                    _ => failures += 1,
                }
            }
            (latencies, failures, rows)
        }));
    }
    let mut all = Vec::new();
    let mut failures = 0;
    let mut largest = 0;
    for t in tasks {
        let (l, f, r) = t.await.expect("client task");
        all.extend(l);
        failures += f;
        largest = largest.max(r);
    }
    let elapsed = started.elapsed().as_secs_f64();
    all.sort();
    println!(
        "GET /api/warnings?limit={page}: {} requests in {elapsed:.1} s = {:.0} requests/s; p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms; {failures} failed; largest answer {largest} bytes",
        all.len(),
        all.len() as f64 / elapsed,
        percentile(&all, 0.50).as_secs_f64() * 1000.0,
        percentile(&all, 0.99).as_secs_f64() * 1000.0,
        all.last().copied().unwrap_or_default().as_secs_f64() * 1000.0,
    );
    let _ = stop.send(());
    let _ = server.await;
    store.close().await;
}
