//! Delivery benchmark: notices through the outbox (the `notices` table) to a signed webhook on
//! loopback (axum, in this process, verifying every signature), on the embedded default (SQLite).
//!
//! Setup: a synthetic register and feeds run through the pipeline to real warnings; one officer per
//! township, each with a webhook. Then two phases, with the deliverer running its loop
//! (`Deliverer::run`, as `doudi deliver` does) and a per-recipient quota high enough not to digest:
//!
//! 1. backlog — N notices committed at once, drained: notices per second;
//! 2. paced — notices committed at a steady rate (default 1,000/s, in small transactions every
//!    10 ms) for a while: the time from each notice's commit to its receipt by the webhook, p50 /
//!    p99 / max, and the throughput kept up.
//!
//! ```sh
//! cargo bench --bench delivery
//! DOUDI_BENCH_RATE=2000 DOUDI_BENCH_SECONDS=20 cargo bench --bench delivery
//! ```
//! A benchmark, not a test: nothing here asserts a speed.

mod support;

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use doudi_deliver::{Backoff, Deliverer, Settings};
use doudi_store::NoticeRow;
use doudi_warnings::routing::Channels;

#[cfg(all(target_os = "linux", not(target_env = "musl")))]
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

const SECRET: &[u8] = b"bench-secret";

fn main() {
    support::main(bench);
}

/// Receipt instants by bench sequence number (the notice's note), and signature failures.
#[derive(Default)]
struct Received {
    at: HashMap<u64, Instant>,
    requests: u64,
    bad_signatures: u64,
}

type Shared = Arc<Mutex<Received>>;

async fn receive(State(s): State<Shared>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let now = Instant::now();
    let h = |n: &str| {
        headers
            .get(n)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string()
    };
    let ok = doudi_deliver::verify(
        SECRET,
        &h("X-Doudi-Timestamp"),
        &h("X-Doudi-Signature"),
        &body,
        chrono::Utc::now().timestamp(),
        300,
    )
    .is_ok();
    let payload: Result<doudi_deliver::Payload, _> = serde_json::from_slice(&body);
    let mut r = s.lock().unwrap_or_else(|e| e.into_inner());
    r.requests += 1;
    if !ok {
        r.bad_signatures += 1;
        return StatusCode::UNAUTHORIZED;
    }
    if let Ok(p) = payload {
        for i in p.items {
            if let Some(n) = i.note.strip_prefix("bench-").and_then(|n| n.parse().ok()) {
                r.at.entry(n).or_insert(now);
            }
        }
    }
    StatusCode::OK
}

async fn bench(benching: bool) {
    let households = support::env(
        "DOUDI_BENCH_HOUSEHOLDS",
        if benching { 20_000 } else { 500 },
    ) as usize;
    let backlog = support::env("DOUDI_BENCH_BACKLOG", if benching { 20_000 } else { 200 });
    let rate = support::env("DOUDI_BENCH_RATE", 1000);
    let seconds = support::env("DOUDI_BENCH_SECONDS", if benching { 10 } else { 1 });

    // Warnings to notify about: the pipeline over a synthetic register and feeds.
    let dir = tempfile::tempdir().expect("temp dir");
    let cfg = support::config(households, 3, 6, 0.2);
    doudi_synth::write_dataset(dir.path(), &cfg, &mut |_| {}).expect("generate");
    let url = support::sqlite(dir.path(), "bench.db");
    let store = support::store(&url, &doudi_synth::generate_register(&cfg)).await;
    let engine = Arc::new(support::engine(&store).await);
    let opts = support::run_options(dir.path().join("feeds"));
    support::run_once(&store, engine, &opts).await;
    let warnings = store
        .open_warnings(1_000_000, None)
        .await
        .expect("warnings");
    assert!(!warnings.is_empty(), "the pipeline opened no warning");

    // The webhook, and one officer per township pointing at it.
    let received = Shared::default();
    let app = axum::Router::new()
        .route("/hook", axum::routing::post(receive))
        .with_state(received.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let hook = format!("http://{}/hook", listener.local_addr().expect("addr"));
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    let townships = support::townships(warnings.iter().map(|w| w.region_code.as_str()));
    let channels = Channels {
        webhook: Some(hook),
        ..Channels::default()
    };
    support::township_officers(&store, &townships, channels).await;
    println!(
        "{} warnings in {} townships ({} households); webhook on loopback",
        warnings.len(),
        townships.len(),
        households
    );

    // The deliverer, in its loop.
    let settings = Settings {
        secret: SECRET.to_vec(),
        key_id: "1".into(),
        quota_per_minute: NonZeroU32::new(1_000_000).expect("nonzero"),
        max_digest_items: 500,
        backoff: Backoff {
            base: Duration::from_millis(100),
            cap: Duration::from_secs(5),
        },
        max_attempts: 15,
        timeout: Duration::from_secs(10),
        web_base_url: "http://localhost:8080".into(),
        time_zone: "Asia/Shanghai".parse().expect("a time zone"),
        batch_size: 5000,
        concurrency: 8,
    };
    let poll = Duration::from_millis(20);
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let deliver_store = store.clone();
    let deliverer = tokio::spawn(async move {
        let mut d = Deliverer::new(settings).expect("deliverer").with_seed(1);
        d.run(&deliver_store, poll, async {
            let _ = stop_rx.await;
        })
        .await
        .expect("deliver")
    });
    // Drain the pipeline's own notices first (none: no officer was known at the run).
    let notice = |n: u64| {
        let w = &warnings[(n as usize) % warnings.len()];
        NoticeRow {
            warning_id: w.warning_id,
            kind: "reminder".into(),
            recipient: format!("o-{}", &w.region_code[..9.min(w.region_code.len())]),
            due_at: chrono::DateTime::parse_from_rfc3339("2026-01-01T00:00:00Z")
                .expect("time")
                .with_timezone(&chrono::Utc),
            note: format!("bench-{n}"),
        }
    };
    let wait_for = |upto: u64| {
        let received = received.clone();
        async move {
            loop {
                let got = received.lock().unwrap_or_else(|e| e.into_inner()).at.len() as u64;
                if got >= upto {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
    };

    // 1. Backlog.
    let rows: Vec<NoticeRow> = (0..backlog).map(notice).collect();
    let t = Instant::now();
    store.add_notices(&rows).await.expect("notices");
    wait_for(backlog).await;
    let elapsed = t.elapsed();
    println!(
        "backlog   {backlog:>7} notices  {:>7.2} s  {:>8.0} notices/s (commit of the backlog to the last receipt)",
        elapsed.as_secs_f64(),
        backlog as f64 / elapsed.as_secs_f64()
    );

    // 2. Paced.
    let per_tick = (rate / 100).max(1);
    let ticks = seconds * 100;
    let mut committed: HashMap<u64, Instant> = HashMap::new();
    let mut next = backlog;
    let start = Instant::now();
    let mut clock = tokio::time::interval(Duration::from_millis(10));
    clock.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    for _ in 0..ticks {
        clock.tick().await;
        let rows: Vec<NoticeRow> = (next..next + per_tick).map(notice).collect();
        store.add_notices(&rows).await.expect("notices");
        let at = Instant::now();
        for n in next..next + per_tick {
            committed.insert(n, at);
        }
        next += per_tick;
    }
    let produced = Instant::now();
    wait_for(next).await;
    let drained = start.elapsed();
    let _ = stop_tx.send(());
    let total = deliverer.await.expect("deliverer task");
    let (mut lat, requests, bad_signatures): (Vec<Duration>, u64, u64) = {
        let r = received.lock().unwrap_or_else(|e| e.into_inner());
        let lat = committed
            .iter()
            .filter_map(|(n, c)| r.at.get(n).map(|a| a.saturating_duration_since(*c)))
            .collect();
        (lat, r.requests, r.bad_signatures)
    };
    lat.sort();
    let pct = |p: f64| lat[((lat.len() as f64 * p).ceil() as usize).clamp(1, lat.len()) - 1];
    let n = committed.len();
    println!(
        "paced     {n:>7} notices  {:>7.2} s  {:>8.0} notices/s offered, {:.0} delivered/s; commit → receipt p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        (produced - start).as_secs_f64(),
        n as f64 / (produced - start).as_secs_f64(),
        n as f64 / drained.as_secs_f64(),
        pct(0.50).as_secs_f64() * 1000.0,
        pct(0.99).as_secs_f64() * 1000.0,
        lat.last().copied().unwrap_or_default().as_secs_f64() * 1000.0,
    );
    println!(
        "deliverer: {} delivered in {} requests ({} digests), {} retried, {} failed; receiver: {} requests, {} bad signatures",
        total.delivered, total.attempts, total.digests, total.retrying, total.failed, requests, bad_signatures
    );
    store.close().await;
}
