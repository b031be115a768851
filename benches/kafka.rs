//! Kafka load benchmark, in one process against librdkafka's mock broker:
//! - the raw librdkafka consume rate of the feed topics on this machine (the ceiling);
//! - end-to-end events/s through one worker (`run_kafka`) into SQLite, and into PostgreSQL when
//!   DOUDI_TEST_POSTGRES_URL is set (a fresh database is created), timed from the worker's
//!   partition assignment to its last commit (the group join before it is the broker's
//!   `group.initial.rebalance.delay.ms`, 3 s, not the worker's speed), with the time each stage
//!   of the applier took (from the worker's own metrics);
//! - latency from produce to warning committed (p50/p99) with events produced at a fixed rate,
//!   into SQLite and (with DOUDI_TEST_POSTGRES_URL) PostgreSQL, and the batches that held records
//!   longest.
//!
//! ```sh
//! cargo bench --bench kafka                                   # 20,000 households
//! DOUDI_BENCH_HOUSEHOLDS=5000 DOUDI_BENCH_RATE=5000 cargo bench --bench kafka
//! DOUDI_BENCH_ONLY=latency cargo bench --bench kafka          # or =throughput
//! DOUDI_BENCH_DUMP=1 RUST_LOG=doudi_kafka=debug cargo bench --bench kafka   # every batch, the
//!                         # producer's backlog, which partition held the event-time merge back
//! ```
//! A benchmark, not a test: nothing here asserts a speed. The mock broker keeps at most 5 MB per
//! partition and drops older records beyond that: above ≈ 28,000 households the health-insurance
//! partitions overflow before the worker reads them, and the run waits for records that are gone.

mod support;

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use doudi_kafka::dev::DevBroker;
use doudi_kafka::{KafkaConfig, Observer, RecordMeta, SourceOptions};
use doudi_pipeline::RunReport;
use doudi_store::Store;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use rdkafka::ClientConfig;

#[cfg(all(target_os = "linux", not(target_env = "musl")))]
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() {
    // RUST_LOG=doudi_kafka=debug shows the worker's logs (which partition held the merge back).
    if std::env::var_os("RUST_LOG").is_some() {
        tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_writer(std::io::stderr)
            .init();
    }
    let benching = std::env::args().any(|a| a == "--bench");
    let households: usize = std::env::var("DOUDI_BENCH_HOUSEHOLDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(if benching { 20_000 } else { 200 });
    if households > 28_000 {
        eprintln!(
            "warning: {households} households may not fit the mock broker (5 MB per partition): \
             the run would wait for the records it dropped"
        );
    }
    let rate: u64 = std::env::var("DOUDI_BENCH_RATE")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5000);
    let runtime = support::runtime();
    let mut cfg = KafkaConfig::default();
    let mut broker = DevBroker::start(&cfg, 1, 8).expect("mock broker");
    cfg.brokers = broker.bootstrap();
    runtime.block_on(bench(households, rate, cfg, &mut broker, benching));
    drop(broker);
}

struct Row(String, String, String);

async fn bench(
    households: usize,
    rate: u64,
    cfg: KafkaConfig,
    broker: &mut DevBroker,
    benching: bool,
) {
    let dir = tempfile::tempdir().expect("temp dir");
    let gen = support::config(households, 1, 12, 0.05);
    let summary = doudi_synth::write_dataset(dir.path(), &gen, &mut |_| {}).expect("generate");
    let events: u64 = summary.events.values().sum::<usize>() as u64;
    let register = doudi_synth::generate_register(&gen);
    let mut rows = Vec::new();

    // DOUDI_BENCH_ONLY=latency (or =throughput) runs only that part.
    let only = std::env::var("DOUDI_BENCH_ONLY").unwrap_or_default();
    if only != "latency" {
        throughput(&cfg, dir.path(), &register, events, &mut rows).await;
    }

    // Latency at a fixed rate into SQLite, and into PostgreSQL when it is there.
    if only != "throughput" {
        let seconds = if benching { 20 } else { 2 };
        let url = support::sqlite(dir.path(), "latency.db");
        let pace = (rate, seconds);
        rows.push(latency(&cfg, broker, &url, &register, dir.path(), pace, "SQLite").await);
        if let Ok(base) = std::env::var("DOUDI_TEST_POSTGRES_URL") {
            match fresh_pg(&base).await {
                Ok(url) => {
                    let db = "PostgreSQL";
                    rows.push(latency(&cfg, broker, &url, &register, dir.path(), pace, db).await);
                    if let Err(e) = drop_pg(&base).await {
                        eprintln!("the benchmark's PostgreSQL database was not dropped: {e}");
                    }
                }
                Err(e) => eprintln!("PostgreSQL skipped: {e}"),
            }
        }
    }

    println!();
    println!("{:<44} {:>16} {:>24}", "kafka benchmark", "", "");
    for Row(a, b, c) in rows {
        println!("{a:<44} {b:>16} {c:>24}");
    }
}

/// Publish the feeds, consume them raw (the ceiling), then run one worker over them into SQLite
/// and, with DOUDI_TEST_POSTGRES_URL, into PostgreSQL.
async fn throughput(
    cfg: &KafkaConfig,
    dir: &Path,
    register: &[doudi_model::Household],
    events: u64,
    rows: &mut Vec<Row>,
) {
    // Publish the feeds.
    let t = Instant::now();
    for (topic, source) in cfg.topics.all() {
        let folder = dir.join("feeds").join(source.code());
        let mut files: Vec<_> = std::fs::read_dir(&folder)
            .map(|d| d.filter_map(Result::ok).map(|e| e.path()).collect())
            .unwrap_or_default();
        files.sort();
        for f in files {
            doudi_kafka::produce::produce_file(cfg, topic, &f, &|_| {})
                .await
                .expect("produce");
        }
    }
    rows.push(rate_row("produce (doudi produce)", events, t.elapsed()));

    // The ceiling: librdkafka consuming the same topics, doing nothing with the records.
    let (raw, took) = raw_consume(cfg, events);
    rows.push(rate_row("raw librdkafka consume", raw, took));

    // End to end into SQLite.
    let url = format!("sqlite://{}", dir.join("bench.db").display());
    let (n, took) = end_to_end(cfg, &url, register, events, "bench-sqlite").await;
    rows.push(rate_row("end to end → SQLite", n, took));

    if let Ok(base) = std::env::var("DOUDI_TEST_POSTGRES_URL") {
        match fresh_pg(&base).await {
            Ok(url) => {
                let (n, took) = end_to_end(cfg, &url, register, events, "bench-pg").await;
                rows.push(rate_row("end to end → PostgreSQL", n, took));
                if let Err(e) = drop_pg(&base).await {
                    eprintln!("the benchmark's PostgreSQL database was not dropped: {e}");
                }
            }
            Err(e) => eprintln!("PostgreSQL skipped: {e}"),
        }
        // Two workers of one group on one database, as deploy/ runs them.
        match fresh_pg(&base).await {
            Ok(url) => {
                let (n, took) =
                    end_to_end_workers(cfg, &url, register, events, "bench-pg-2", 2).await;
                rows.push(rate_row("end to end → PostgreSQL, 2 workers", n, took));
                if let Err(e) = drop_pg(&base).await {
                    eprintln!("the benchmark's PostgreSQL database was not dropped: {e}");
                }
            }
            Err(e) => eprintln!("PostgreSQL skipped: {e}"),
        }
    } else {
        eprintln!("PostgreSQL skipped: set DOUDI_TEST_POSTGRES_URL");
    }
}

fn rate_row(what: &str, n: u64, took: Duration) -> Row {
    Row(
        what.to_string(),
        format!("{:.0} events/s", n as f64 / took.as_secs_f64().max(1e-9)),
        format!("{n} in {:.2} s", took.as_secs_f64()),
    )
}

/// Records consumed, and the time from the first record to the last (the group join before the
/// first is left out, as for the worker).
fn raw_consume(cfg: &KafkaConfig, events: u64) -> (u64, Duration) {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &cfg.brokers)
        .set("group.id", "bench-raw")
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .create()
        .expect("consumer");
    let topics: Vec<&str> = cfg.topics.all().iter().map(|(t, _)| *t).collect();
    consumer.subscribe(&topics).expect("subscribe");
    let mut n = 0u64;
    let deadline = Instant::now() + Duration::from_secs(300);
    let mut first = None;
    while n < events && Instant::now() < deadline {
        if let Some(Ok(m)) = consumer.poll(Duration::from_millis(100)) {
            use rdkafka::Message;
            first.get_or_insert_with(Instant::now);
            std::hint::black_box(m.payload());
            n += 1;
        }
    }
    (n, first.map_or(Duration::ZERO, |f| f.elapsed()))
}

async fn end_to_end(
    cfg: &KafkaConfig,
    url: &str,
    register: &[doudi_model::Household],
    events: u64,
    group: &str,
) -> (u64, Duration) {
    let (store, engine) = support::open(url, register).await;
    let mut cfg = cfg.clone();
    cfg.group_id = group.to_string();
    let stop = doudi_pipeline::driver::CancellationToken::new();
    let all = StopAll::new(events, &stop, 1);
    let opts = SourceOptions {
        batch_size: 10_000,
        channel_batches: 2,
    };
    let before = stage_sums();
    let t = Instant::now();
    let observer = Arc::new(WorkerOf(all.clone(), 0));
    let report = doudi_kafka::run_kafka(&store, engine, &cfg, &opts, observer, stop)
        .await
        .expect("run");
    let whole = t.elapsed();
    let took = all.took().unwrap_or(whole);
    store.close().await;
    // Where the applier's time went (the worker's own stage histograms, as on /metrics).
    let after = stage_sums();
    let mut parts = Vec::new();
    for (stage, (sum, count)) in &after {
        let (s0, c0) = before.get(stage).copied().unwrap_or((0.0, 0.0));
        parts.push(format!("{stage} {:.2} s", sum - s0));
        if stage == "batch" {
            parts.push(format!("{} batches", count - c0));
        }
    }
    eprintln!(
        "{group}: {} records, {:.2} s from assignment to the last commit ({:.2} s with the group join and shutdown); stages: {}",
        report.received,
        took.as_secs_f64(),
        whole.as_secs_f64(),
        parts.join(", ")
    );
    (report.received, took)
}

/// Counts every worker's committed records and stops them all once together they reach `target`,
/// noting when partitions were first assigned and when the last record committed: the rate is
/// taken between the two (the group join before it, up to the broker's
/// `group.initial.rebalance.delay.ms` of 3 s, is not the workers' speed; a real broker holds a new
/// group's first join the same way).
struct StopAll {
    target: u64,
    stop: doudi_pipeline::driver::CancellationToken,
    received: Mutex<Vec<u64>>,
    assigned_at: Mutex<Option<Instant>>,
    done_at: Mutex<Option<Instant>>,
}

impl StopAll {
    fn new(
        target: u64,
        stop: &doudi_pipeline::driver::CancellationToken,
        workers: usize,
    ) -> Arc<StopAll> {
        Arc::new(StopAll {
            target,
            stop: stop.clone(),
            received: Mutex::new(vec![0; workers]),
            assigned_at: Mutex::new(None),
            done_at: Mutex::new(None),
        })
    }

    /// From the first assignment to the commit that made the records all in, once both happened.
    fn took(&self) -> Option<Duration> {
        let at = |m: &Mutex<Option<Instant>>| *m.lock().unwrap_or_else(|e| e.into_inner());
        Some(at(&self.done_at)?.saturating_duration_since(at(&self.assigned_at)?))
    }
}

/// One worker's view of [`StopAll`].
struct WorkerOf(Arc<StopAll>, usize);

impl Observer for WorkerOf {
    fn assigned(&self, _partitions: usize) {
        let mut at = self.0.assigned_at.lock().unwrap_or_else(|e| e.into_inner());
        at.get_or_insert_with(Instant::now);
    }

    fn committed(&self, _records: &[RecordMeta], report: &RunReport) {
        let total: u64 = {
            let mut r = self.0.received.lock().unwrap_or_else(|e| e.into_inner());
            r[self.1] = report.received;
            r.iter().sum()
        };
        if total >= self.0.target {
            let mut at = self.0.done_at.lock().unwrap_or_else(|e| e.into_inner());
            at.get_or_insert_with(Instant::now);
            self.0.stop.cancel();
        }
    }
}

/// `workers` workers of one group into one database, each on a thread of its own with its own
/// runtime, store connection pool and engine (as separate processes have them): the time from
/// the first assignment to the commit that made the records all in.
async fn end_to_end_workers(
    cfg: &KafkaConfig,
    url: &str,
    register: &[doudi_model::Household],
    events: u64,
    group: &str,
    workers: usize,
) -> (u64, Duration) {
    let (first, _) = support::open(url, register).await;
    first.close().await;
    let mut cfg = cfg.clone();
    cfg.group_id = group.to_string();
    let stop = doudi_pipeline::driver::CancellationToken::new();
    let all = StopAll::new(events, &stop, workers);
    let opts = SourceOptions {
        batch_size: 10_000,
        channel_batches: 2,
    };
    let t = Instant::now();
    let received: u64 = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..workers)
            .map(|i| {
                let (cfg, opts, stop, all) = (&cfg, &opts, stop.clone(), all.clone());
                scope.spawn(move || {
                    let runtime = tokio::runtime::Builder::new_multi_thread()
                        .worker_threads(2)
                        .enable_all()
                        .build()
                        .expect("tokio runtime");
                    runtime.block_on(async move {
                        let store = Store::open(url).await.expect("open store");
                        let engine = Arc::new(support::engine(&store).await);
                        let observer = Arc::new(WorkerOf(all, i));
                        let report =
                            doudi_kafka::run_kafka(&store, engine, cfg, opts, observer, stop)
                                .await
                                .expect("run");
                        store.close().await;
                        report.received
                    })
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("worker thread"))
            .sum()
    });
    let whole = t.elapsed();
    let took = all.took().unwrap_or(whole);
    eprintln!(
        "{group}: {workers} workers, {received} records, {:.2} s from the first assignment to the last commit ({:.2} s with the group join and shutdown)",
        took.as_secs_f64(),
        whole.as_secs_f64()
    );
    (received, took)
}

/// Each pipeline stage's total seconds and observation count so far, from the metrics registry.
fn stage_sums() -> std::collections::BTreeMap<String, (f64, f64)> {
    let mut out = std::collections::BTreeMap::new();
    for line in doudi_telemetry::render().lines() {
        let Some((name, value)) = line.rsplit_once(' ') else {
            continue;
        };
        let Ok(value) = value.parse::<f64>() else {
            continue;
        };
        for (suffix, sum) in [
            ("stage_seconds_sum{stage=\"", true),
            ("stage_seconds_count{stage=\"", false),
        ] {
            if let Some(i) = name.find(suffix) {
                let stage = name[i + suffix.len()..].trim_end_matches("\"}").to_string();
                let e: &mut (f64, f64) = out.entry(stage).or_default();
                if sum {
                    e.0 = value;
                } else {
                    e.1 = value;
                }
            }
        }
    }
    out
}

/// Produce the feeds' events at `rate` per second for `seconds` to fresh topics and measure, for
/// each, the time from its produce timestamp to its batch's commit.
async fn latency(
    cfg: &KafkaConfig,
    broker: &mut DevBroker,
    url: &str,
    register: &[doudi_model::Household],
    dir: &Path,
    (rate, seconds): (u64, u64),
    db: &str,
) -> Row {
    let tag = db.to_ascii_lowercase();
    let (store, engine) = support::open(url, register).await;
    // Fresh topics, so the worker starts at the first timed event.
    let mut cfg = cfg.clone();
    cfg.group_id = format!("bench-latency-{tag}");
    for (t, name) in [
        (&mut cfg.topics.health_insurance, "health_insurance"),
        (&mut cfg.topics.employment, "employment"),
        (&mut cfg.topics.housing, "housing"),
        (&mut cfg.topics.civil_registry, "civil_registry"),
    ] {
        let name = format!("lat_{tag}_{name}");
        *t = name.clone();
        broker
            .command(&format!("create {name} 8"))
            .expect("create topic");
    }
    let lines: Vec<(String, Vec<u8>)> = cfg
        .topics
        .all()
        .iter()
        .flat_map(|(topic, source)| {
            let folder = dir.join("feeds").join(source.code());
            let mut files: Vec<_> = std::fs::read_dir(&folder)
                .map(|d| d.filter_map(Result::ok).map(|e| e.path()).collect())
                .unwrap_or_default();
            files.sort();
            files
                .into_iter()
                .flat_map(|f| {
                    std::fs::read(f)
                        .unwrap_or_default()
                        .split(|b| *b == b'\n')
                        .filter(|l| !l.is_empty())
                        .map(<[u8]>::to_vec)
                        .collect::<Vec<_>>()
                })
                .map(|l| (topic.to_string(), l))
                .collect::<Vec<_>>()
        })
        .collect();
    let warm_up = 100.min(lines.len() / 10);
    let total = (rate * seconds).min((lines.len() - warm_up) as u64);
    let stop = doudi_pipeline::driver::CancellationToken::new();
    let latencies = Arc::new(Mutex::new(Vec::with_capacity(total as usize)));
    struct Lat {
        all: Arc<Mutex<Vec<u64>>>,
        /// Per committed batch: (ms since the epoch at commit, records, oldest record's latency).
        batches: Mutex<Vec<(i64, usize, u64)>>,
        done: AtomicU64,
        target: u64,
        stop: doudi_pipeline::driver::CancellationToken,
    }
    impl Observer for Lat {
        fn committed(&self, records: &[RecordMeta], _r: &RunReport) {
            let now = chrono::Utc::now().timestamp_millis();
            let mut all = self.all.lock().unwrap_or_else(|e| e.into_inner());
            let mut worst = 0;
            for r in records {
                if let Some(ts) = r.timestamp_ms {
                    let l = now.saturating_sub(ts).max(0) as u64;
                    worst = worst.max(l);
                    all.push(l);
                }
            }
            let mut batches = self.batches.lock().unwrap_or_else(|e| e.into_inner());
            batches.push((now, records.len(), worst));
            let n = self.done.fetch_add(records.len() as u64, Ordering::Relaxed);
            if n + records.len() as u64 >= self.target {
                self.stop.cancel();
            }
        }
    }
    let observer = Arc::new(Lat {
        all: latencies.clone(),
        batches: Mutex::new(Vec::new()),
        done: AtomicU64::new(0),
        target: warm_up as u64 + total,
        stop: stop.clone(),
    });
    let opts = SourceOptions {
        batch_size: 10_000,
        channel_batches: 2,
    };
    let worker = {
        let cfg = cfg.clone();
        let store = store.clone();
        let observer = observer.clone();
        tokio::spawn(async move {
            doudi_kafka::run_kafka(&store, engine, &cfg, &opts, observer, stop).await
        })
    };
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", &cfg.brokers)
        .set("linger.ms", "1")
        .create()
        .expect("producer");
    let send = |topic: &str, line: &[u8]| {
        let key = doudi_kafka::produce::person_key(line);
        let mut record = FutureRecord::<str, [u8]>::to(topic).payload(line);
        if let Some(k) = key.as_deref() {
            record = record.key(k);
        }
        let _ = producer.send_result(record);
        producer.poll(Duration::ZERO);
    };
    // The clock starts once the worker has joined its group and committed a first batch (the mock
    // broker holds a new group's first join for 3 s, which is not what is measured here): a
    // warm-up of 100 records, not counted.
    for (topic, line) in &lines[..warm_up] {
        send(topic, line);
    }
    let joined = Instant::now();
    while observer.done.load(Ordering::Relaxed) < warm_up as u64
        && joined.elapsed() < Duration::from_secs(60)
    {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    latencies.lock().unwrap_or_else(|e| e.into_inner()).clear();
    let start = Instant::now();
    let start_ms = chrono::Utc::now().timestamp_millis();
    let dump = std::env::var("DOUDI_BENCH_DUMP").is_ok();
    let timed = &lines[warm_up..];
    for (i, (topic, line)) in timed.iter().take(total as usize).enumerate() {
        let due = start + Duration::from_micros(i as u64 * 1_000_000 / rate);
        let now = Instant::now();
        if due > now {
            tokio::time::sleep(due - now).await;
        }
        send(topic, line);
        if dump && i % 500 == 0 {
            eprintln!(
                "PRODUCER +{} ms: {i} sent, {} not yet acknowledged by the broker",
                start.elapsed().as_millis(),
                producer.in_flight_count()
            );
        }
    }
    let _ = producer.flush(Duration::from_secs(30));
    let _ = worker.await;
    store.close().await;
    let mut all = latencies.lock().unwrap_or_else(|e| e.into_inner()).clone();
    all.sort_unstable();
    // The batches that held records longest: when (since the timed start), how many, how long
    // (the warm-up's, committed before the start, left out).
    let mut batches = observer
        .batches
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    batches.retain(|(at, _, _)| *at >= start_ms);
    let count = batches.len();
    if dump {
        for (at, n, l) in &batches {
            eprintln!("DUMP +{} {n} {l}", at - start_ms);
        }
    }
    batches.sort_by_key(|b| std::cmp::Reverse(b.2));
    let worst: Vec<String> = batches
        .iter()
        .take(5)
        .map(|(at, n, l)| format!("{n} records at +{} ms held {l} ms", at - start_ms))
        .collect();
    eprintln!("latency: {count} batches; slowest: {}", worst.join("; "));
    let pick = |q: f64| {
        all.get(((all.len() as f64 * q) as usize).min(all.len().saturating_sub(1)))
            .copied()
            .unwrap_or(0)
    };
    Row(
        format!("produce → committed at {rate}/s ({db})"),
        format!("p50 {} ms", pick(0.5)),
        format!("p99 {} ms ({} events)", pick(0.99), all.len()),
    )
}

fn bench_db_name() -> String {
    format!("doudi_bench_kafka_{}", std::process::id())
}

/// Drop the database `fresh_pg` made (and the connections left to it).
async fn drop_pg(base: &str) -> Result<(), String> {
    let pool = sqlx::PgPool::connect(base)
        .await
        .map_err(|e| e.to_string())?;
    sqlx::query(&format!(
        "DROP DATABASE IF EXISTS {} WITH (FORCE)",
        bench_db_name()
    ))
    .execute(&pool)
    .await
    .map_err(|e| e.to_string())?;
    pool.close().await;
    Ok(())
}

async fn fresh_pg(base: &str) -> Result<String, String> {
    let name = bench_db_name();
    let pool = sqlx::PgPool::connect(base)
        .await
        .map_err(|e| e.to_string())?;
    sqlx::query(&format!("DROP DATABASE IF EXISTS {name}"))
        .execute(&pool)
        .await
        .map_err(|e| e.to_string())?;
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&pool)
        .await
        .map_err(|e| e.to_string())?;
    pool.close().await;
    let (root, _) = base.rsplit_once('/').ok_or("URL without a database")?;
    Ok(format!("{root}/{name}"))
}
