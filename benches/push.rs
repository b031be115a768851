//! Push benchmark: `POST /api/feeds/civil_registry` (the HTTP push of a feed) against the whole
//! application (`doudi_service::app`: token check, body limit, JSON errors, metrics layers) served
//! in this process on loopback, over an empty SQLite store and a temporary feeds folder. Each
//! batch is validated line by line, looked up for duplicates and appended with fsync before the
//! answer.
//!
//! Two runs: as fast as `DOUDI_BENCH_CLIENTS` clients can push (events/s), then paced at
//! `DOUDI_BENCH_RATE` events/s (default 5,000) in batches of `DOUDI_BENCH_BATCH` (default 100);
//! printed: events per second, batch latency p50 / p99 / max, and any non-200 answer.
//!
//! With `DOUDI_BENCH_PUSH_TO=kafka` the batches go to the `civil_registry` topic of librdkafka's
//! mock broker in this process instead (`serve.push_to = "kafka"`: an idempotent producer with
//! acks=all, the answer after every acknowledgement).
//!
//! ```sh
//! cargo bench --bench push
//! DOUDI_BENCH_SECONDS=20 DOUDI_BENCH_BATCH=500 cargo bench --bench push
//! DOUDI_BENCH_PUSH_TO=kafka cargo bench --bench push
//! ```
//! A benchmark, not a test: nothing here asserts a speed.

mod support;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use doudi_store::Store;

fn main() {
    support::main(bench);
}

/// A batch of `n` death envelopes with fresh ids.
fn batch(next: &AtomicU64, n: u64) -> String {
    let mut s = String::with_capacity(n as usize * 260);
    for _ in 0..n {
        let i = next.fetch_add(1, Ordering::Relaxed);
        s.push_str(&format!(
            r#"{{"event_id":"bench-{i}","source":"civil_registry","kind":"death","occurred_at":"2026-03-01T08:00:00+08:00","subject":{{"id_number":"34150219490127004X","name":"陈桂兰"}},"data":{{"died_on":"2026-02-28"}}}}"#
        ));
        s.push('\n');
    }
    s
}

#[derive(Default)]
struct Outcome {
    events: u64,
    latencies: Vec<Duration>,
    errors: Vec<String>,
    elapsed: Duration,
}

fn report(label: &str, o: &mut Outcome) {
    o.latencies.sort_unstable();
    println!(
        "push {label}: {} events in {:.1?}: {:.0} events/s; batch latency p50 {:.1?} p99 {:.1?} max {:.1?}; {} errors{}",
        o.events,
        o.elapsed,
        o.events as f64 / o.elapsed.as_secs_f64(),
        support::percentile(&o.latencies, 0.5),
        support::percentile(&o.latencies, 0.99),
        o.latencies.last().copied().unwrap_or_default(),
        o.errors.len(),
        o.errors
            .first()
            .map(|e| format!(" (first: {e})"))
            .unwrap_or_default()
    );
}

async fn bench(benching: bool) {
    let seconds = support::env("DOUDI_BENCH_SECONDS", if benching { 10 } else { 1 });
    let clients = support::env("DOUDI_BENCH_CLIENTS", 4);
    let size = support::env("DOUDI_BENCH_BATCH", 100).max(1);
    let rate = support::env("DOUDI_BENCH_RATE", 5_000).max(1);
    let dir = tempfile::tempdir().expect("temp dir");
    let store = Store::open(&support::sqlite(dir.path(), "doudi.db"))
        .await
        .expect("store");
    let token = support::token(&store, "feeder", "34", None, Some("civil_registry")).await;
    let mut config = doudi_service::ServiceConfig::with_rules(doudi_risk::RuleSet::builtin());
    config.feeds_dir = dir.path().join("feeds");
    config.push_batches_per_minute = u32::MAX;
    // Kafka mode: the mock broker lives as long as the bench.
    let _broker = if std::env::var("DOUDI_BENCH_PUSH_TO").as_deref() == Ok("kafka") {
        let mut kafka = doudi_kafka::KafkaConfig::default();
        let broker = doudi_kafka::dev::DevBroker::start(&kafka, 1, 8).expect("mock broker");
        kafka.brokers = broker.bootstrap();
        let producer = doudi_kafka::produce::PushProducer::new(&kafka).expect("producer");
        // Kafka mode's sink: the one `doudi serve` wires.
        config.push_sink = Some(Arc::new(doudi_cli::KafkaPush(producer)));
        println!("push to: Kafka (mock broker, 8 partitions, acks=all)");
        Some(broker)
    } else {
        println!("push to: the feeds folder (fsync)");
        None
    };
    let served = support::serve(doudi_service::AppState::new(store.clone(), config)).await;
    let url = format!("{}/api/feeds/civil_registry", served.base);
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .expect("client");
    let next = Arc::new(AtomicU64::new(0));

    let send = move |body: String| {
        let (http, url, token) = (http.clone(), url.clone(), token.clone());
        async move {
            let t = Instant::now();
            let r = http
                .post(url)
                .bearer_auth(token)
                .header("content-type", "application/x-ndjson")
                .body(body)
                .send()
                .await;
            let took = t.elapsed();
            match r {
                Ok(r) if r.status() == 200 => Ok(took),
                Ok(r) => Err(format!(
                    "{} {}",
                    r.status(),
                    r.text().await.unwrap_or_default()
                )),
                Err(e) => Err(e.to_string()),
            }
        }
    };

    // As fast as the clients go.
    let until = Instant::now() + Duration::from_secs(seconds);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..clients {
        let (send, next) = (send.clone(), next.clone());
        tasks.push(tokio::spawn(async move {
            let mut o = Outcome::default();
            while Instant::now() < until {
                match send(batch(&next, size)).await {
                    Ok(t) => {
                        o.events += size;
                        o.latencies.push(t);
                    }
                    Err(e) => o.errors.push(e),
                }
            }
            o
        }));
    }
    let mut all = Outcome::default();
    for t in tasks {
        let o = t.await.expect("client");
        all.events += o.events;
        all.latencies.extend(o.latencies);
        all.errors.extend(o.errors);
    }
    all.elapsed = started.elapsed();
    report(
        &format!("flat out ({clients} clients, batches of {size})"),
        &mut all,
    );

    // Paced: one batch every size/rate seconds, each on its own task (so a slow answer does not
    // slow the offered rate).
    let interval = Duration::from_secs_f64(size as f64 / rate as f64);
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let until = Instant::now() + Duration::from_secs(seconds);
    let started = Instant::now();
    let mut tasks = Vec::new();
    while Instant::now() < until {
        ticker.tick().await;
        let body = batch(&next, size);
        tasks.push(tokio::spawn(send.clone()(body)));
    }
    let mut paced = Outcome::default();
    for t in tasks {
        match t.await.expect("push") {
            Ok(took) => {
                paced.events += size;
                paced.latencies.push(took);
            }
            Err(e) => paced.errors.push(e),
        }
    }
    paced.elapsed = started.elapsed();
    report(
        &format!("paced at {rate} events/s (batches of {size})"),
        &mut paced,
    );

    served.stop().await;
    store.close().await;
}
