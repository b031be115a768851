//! Kafka load benchmark, in one process against librdkafka's mock broker:
//! - the raw librdkafka consume rate of the feed topics on this machine (the ceiling);
//! - end-to-end events/s through one worker (`run_kafka`) into SQLite, and into PostgreSQL when
//!   DOUDI_TEST_POSTGRES_URL is set (a fresh database is created);
//! - latency from produce to warning committed (p50/p99) with events produced at a fixed rate.
//!
//! ```sh
//! cargo bench --bench kafka                                   # 20,000 households
//! DOUDI_BENCH_HOUSEHOLDS=5000 DOUDI_BENCH_RATE=5000 cargo bench --bench kafka
//! ```
//! A benchmark, not a test: nothing here asserts a speed.

use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::NaiveDate;
use doudi_kafka::dev::DevBroker;
use doudi_kafka::{KafkaConfig, Observer, RecordMeta, SourceOptions};
use doudi_pipeline::{Engine, RunReport};
use doudi_risk::RuleSet;
use doudi_store::Store;
use doudi_synth::{GenConfig, Noise};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use rdkafka::ClientConfig;

#[cfg(all(target_os = "linux", not(target_env = "musl")))]
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() {
    let benching = std::env::args().any(|a| a == "--bench");
    let households: usize = std::env::var("DOUDI_BENCH_HOUSEHOLDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(if benching { 20_000 } else { 200 });
    let rate: u64 = std::env::var("DOUDI_BENCH_RATE")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5000);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    let mut cfg = KafkaConfig::default();
    let broker = DevBroker::start(&cfg, 1, 8).expect("mock broker");
    cfg.brokers = broker.bootstrap();
    runtime.block_on(bench(households, rate, cfg, &broker, benching));
    drop(broker);
}

struct Row(String, String, String);

async fn bench(households: usize, rate: u64, cfg: KafkaConfig, broker: &DevBroker, benching: bool) {
    let dir = tempfile::tempdir().expect("temp dir");
    let gen = GenConfig {
        households,
        seed: 1,
        start: NaiveDate::from_ymd_opt(2025, 11, 1).expect("date"),
        months: 12,
        hardship_share: 0.05,
        noise: Noise::default(),
    };
    let summary = doudi_synth::write_dataset(dir.path(), &gen, &mut |_| {}).expect("generate");
    let events: u64 = summary.events.values().sum::<usize>() as u64;
    let register = doudi_synth::generate_register(&gen);
    let mut rows = Vec::new();

    // Publish the feeds.
    let t = Instant::now();
    for (topic, source) in cfg.topics.all() {
        let folder = dir.path().join("feeds").join(source.code());
        let mut files: Vec<_> = std::fs::read_dir(&folder)
            .map(|d| d.filter_map(Result::ok).map(|e| e.path()).collect())
            .unwrap_or_default();
        files.sort();
        for f in files {
            doudi_kafka::produce::produce_file(&cfg, topic, &f, &|_| {})
                .await
                .expect("produce");
        }
    }
    rows.push(rate_row("produce (doudi produce)", events, t.elapsed()));

    // The ceiling: librdkafka consuming the same topics, doing nothing with the records.
    let t = Instant::now();
    let raw = raw_consume(&cfg, events);
    rows.push(rate_row("raw librdkafka consume", raw, t.elapsed()));

    // End to end into SQLite.
    let url = format!("sqlite://{}", dir.path().join("bench.db").display());
    let (n, took) = end_to_end(&cfg, &url, &register, events, "bench-sqlite").await;
    rows.push(rate_row("end to end → SQLite", n, took));

    if let Ok(base) = std::env::var("DOUDI_TEST_POSTGRES_URL") {
        match fresh_pg(&base).await {
            Ok(url) => {
                let (n, took) = end_to_end(&cfg, &url, &register, events, "bench-pg").await;
                rows.push(rate_row("end to end → PostgreSQL", n, took));
                if let Err(e) = drop_pg(&base).await {
                    eprintln!("the benchmark's PostgreSQL database was not dropped: {e}");
                }
            }
            Err(e) => eprintln!("PostgreSQL skipped: {e}"),
        }
    } else {
        eprintln!("PostgreSQL skipped: set DOUDI_TEST_POSTGRES_URL");
    }

    // Latency at a fixed rate into SQLite.
    let url = format!("sqlite://{}", dir.path().join("latency.db").display());
    let seconds = if benching { 20 } else { 2 };
    let (p50, p99, n) = latency(&cfg, broker, &url, &register, dir.path(), rate, seconds).await;
    rows.push(Row(
        format!("produce → committed at {rate}/s (SQLite)"),
        format!("p50 {p50} ms"),
        format!("p99 {p99} ms ({n} events)"),
    ));

    println!();
    println!("{:<44} {:>16} {:>24}", "kafka benchmark", "", "");
    for Row(a, b, c) in rows {
        println!("{a:<44} {b:>16} {c:>24}");
    }
}

fn rate_row(what: &str, n: u64, took: Duration) -> Row {
    Row(
        what.to_string(),
        format!("{:.0} events/s", n as f64 / took.as_secs_f64().max(1e-9)),
        format!("{n} in {:.2} s", took.as_secs_f64()),
    )
}

fn raw_consume(cfg: &KafkaConfig, events: u64) -> u64 {
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
    while n < events && Instant::now() < deadline {
        if let Some(Ok(m)) = consumer.poll(Duration::from_millis(100)) {
            use rdkafka::Message;
            std::hint::black_box(m.payload());
            n += 1;
        }
    }
    n
}

struct StopAt {
    target: u64,
    stop: Arc<AtomicBool>,
}

impl Observer for StopAt {
    fn committed(&self, _records: &[RecordMeta], report: &RunReport) {
        if report.received >= self.target {
            self.stop.store(true, Ordering::Relaxed);
        }
    }
}

async fn open(url: &str, register: &[doudi_model::Household]) -> (Store, Arc<Engine>) {
    let store = Store::open(url).await.expect("open store");
    store
        .import_register(register, "register.jsonl", true)
        .await
        .expect("import");
    let engine = Arc::new(Engine::new(
        RuleSet::builtin(),
        doudi_model::ParseLimits::default(),
        store.load_register().await.expect("load register"),
    ));
    (store, engine)
}

async fn end_to_end(
    cfg: &KafkaConfig,
    url: &str,
    register: &[doudi_model::Household],
    events: u64,
    group: &str,
) -> (u64, Duration) {
    let (store, engine) = open(url, register).await;
    let mut cfg = cfg.clone();
    cfg.group_id = group.to_string();
    let stop = Arc::new(AtomicBool::new(false));
    let observer = Arc::new(StopAt {
        target: events,
        stop: stop.clone(),
    });
    let opts = SourceOptions {
        batch_size: 10_000,
        channel_batches: 2,
    };
    let t = Instant::now();
    let report = doudi_kafka::run_kafka(&store, engine, &cfg, &opts, observer, stop)
        .await
        .expect("run");
    let took = t.elapsed();
    store.close().await;
    (report.received, took)
}

/// Produce the feeds' events at `rate` per second for `seconds` to fresh topics and measure, for
/// each, the time from its produce timestamp to its batch's commit.
async fn latency(
    cfg: &KafkaConfig,
    broker: &DevBroker,
    url: &str,
    register: &[doudi_model::Household],
    dir: &Path,
    rate: u64,
    seconds: u64,
) -> (u64, u64, usize) {
    let (store, engine) = open(url, register).await;
    // Fresh topics, so the worker starts at the first timed event.
    let mut cfg = cfg.clone();
    cfg.group_id = "bench-latency".into();
    for (t, name) in [
        (&mut cfg.topics.health_insurance, "lat_health_insurance"),
        (&mut cfg.topics.employment, "lat_employment"),
        (&mut cfg.topics.housing, "lat_housing"),
        (&mut cfg.topics.civil_registry, "lat_civil_registry"),
    ] {
        *t = name.to_string();
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
    let stop = Arc::new(AtomicBool::new(false));
    let latencies = Arc::new(Mutex::new(Vec::with_capacity(total as usize)));
    struct Lat {
        all: Arc<Mutex<Vec<u64>>>,
        done: AtomicU64,
        target: u64,
        stop: Arc<AtomicBool>,
    }
    impl Observer for Lat {
        fn committed(&self, records: &[RecordMeta], _r: &RunReport) {
            let now = chrono::Utc::now().timestamp_millis();
            let mut all = self.all.lock().unwrap_or_else(|e| e.into_inner());
            for r in records {
                if let Some(ts) = r.timestamp_ms {
                    all.push(now.saturating_sub(ts).max(0) as u64);
                }
            }
            let n = self.done.fetch_add(records.len() as u64, Ordering::Relaxed);
            if n + records.len() as u64 >= self.target {
                self.stop.store(true, Ordering::Relaxed);
            }
        }
    }
    let observer = Arc::new(Lat {
        all: latencies.clone(),
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
    let timed = &lines[warm_up..];
    for (i, (topic, line)) in timed.iter().take(total as usize).enumerate() {
        let due = start + Duration::from_micros(i as u64 * 1_000_000 / rate);
        let now = Instant::now();
        if due > now {
            tokio::time::sleep(due - now).await;
        }
        send(topic, line);
    }
    let _ = producer.flush(Duration::from_secs(30));
    let _ = worker.await;
    store.close().await;
    let mut all = latencies.lock().unwrap_or_else(|e| e.into_inner()).clone();
    all.sort_unstable();
    let pick = |q: f64| {
        all.get(((all.len() as f64 * q) as usize).min(all.len().saturating_sub(1)))
            .copied()
            .unwrap_or(0)
    };
    (pick(0.5), pick(0.99), all.len())
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
