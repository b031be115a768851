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

mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use doudi_risk::RuleSet;
use doudi_warnings::routing::{Channels, Directory};

#[cfg(all(target_os = "linux", not(target_env = "musl")))]
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() {
    support::main(bench);
}

async fn bench(benching: bool) {
    let households = support::env(
        "DOUDI_BENCH_HOUSEHOLDS",
        if benching { 20_000 } else { 500 },
    ) as usize;
    let clients = support::env("DOUDI_BENCH_CLIENTS", 8) as usize;
    let seconds = support::env("DOUDI_BENCH_SECONDS", if benching { 10 } else { 1 });
    let page = support::env("DOUDI_BENCH_PAGE", 50);

    let dir = tempfile::tempdir().expect("temp dir");
    let cfg = support::config(households, 5, 6, 0.2);
    doudi_synth::write_dataset(dir.path(), &cfg, &mut |_| {}).expect("generate");
    let url = support::sqlite(dir.path(), "bench.db");
    let register = doudi_synth::generate_register(&cfg);
    let store = support::store(&url, &register).await;
    // One officer per township, so that warnings are routed as in production.
    let townships = support::townships(register.iter().map(|h| h.region_code.as_str()));
    let officers = support::township_officers(&store, &townships, Channels::default()).await;
    let engine = Arc::new(
        support::engine(&store)
            .await
            .with_directory(Directory::new(officers).expect("directory")),
    );
    let opts = support::run_options(dir.path().join("feeds"));
    support::run_once(&store, engine, &opts).await;
    let status = store.status().await.expect("status");
    let mut tokens = Vec::new();
    for t in &townships {
        let officer = format!("o-{t}");
        let token = support::token(&store, "officer", t, Some(&officer), None).await;
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
    let served = support::serve(state).await;
    let base = served.base.clone();

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
        support::percentile(&all, 0.50).as_secs_f64() * 1000.0,
        support::percentile(&all, 0.99).as_secs_f64() * 1000.0,
        all.last().copied().unwrap_or_default().as_secs_f64() * 1000.0,
    );
    served.stop().await;
    store.close().await;
}
