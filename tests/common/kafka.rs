//! Kafka helpers for the end-to-end tests (included with `#[path]` by the Kafka test files only): a `doudi dev-broker` process with its fault commands,
//! `doudi run --brokers` workers, and a reader of a topic's messages with their headers.

// Each Kafka test file uses some of these.
#![allow(dead_code)]

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use rdkafka::ClientConfig;
use serde_json::Value;

use crate::common::{doudi, gen, ok};

pub const FEEDS: [&str; 4] = [
    "health_insurance",
    "employment",
    "housing",
    "civil_registry",
];

/// A `doudi dev-broker` process (killed when dropped).
pub struct Broker {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
    pub bootstrap: String,
}

impl Broker {
    pub fn start(dir: &Path, partitions: u32) -> Broker {
        Broker::start_cluster(dir, 1, partitions)
    }

    /// A cluster of `brokers` brokers (`slow TOPIC PARTITION MS` needs two or more).
    pub fn start_cluster(dir: &Path, brokers: u32, partitions: u32) -> Broker {
        let mut child = Command::new(env!("CARGO_BIN_EXE_doudi"))
            .current_dir(dir)
            .args([
                "dev-broker",
                "--brokers",
                &brokers.to_string(),
                "--partitions",
                &partitions.to_string(),
            ])
            .env("DOUDI_LOG", "error")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start dev-broker");
        let stdin = child.stdin.take().unwrap();
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let mut first = String::new();
        stdout.read_line(&mut first).unwrap();
        let bootstrap = first
            .trim()
            .strip_prefix("bootstrap=")
            .unwrap_or_else(|| panic!("dev-broker said {first:?}"))
            .to_string();
        Broker {
            child,
            stdin,
            stdout,
            bootstrap,
        }
    }

    /// Send a fault command; its answer.
    pub fn command(&mut self, line: &str) -> String {
        writeln!(self.stdin, "{line}").unwrap();
        self.stdin.flush().unwrap();
        let mut answer = String::new();
        self.stdout.read_line(&mut answer).unwrap();
        answer.trim().to_string()
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Generate a data set with officers, import it into `db`; returns the feeds' line count.
pub fn gen_and_import(dir: &Path, households: &str, seed: &str, db: &str) -> u64 {
    if !dir.join("data/register.jsonl").exists() {
        gen(dir, households, seed, "data", &["--start", "2025-01-01"]);
    }
    import(dir, db);
    feed_files(dir)
        .iter()
        .map(|(_, f)| {
            std::fs::read(f)
                .unwrap()
                .split(|b| *b == b'\n')
                .filter(|l| !l.is_empty())
                .count() as u64
        })
        .sum()
}

/// Import the generated register and officers into `db`.
pub fn import(dir: &Path, db: &str) {
    crate::common::import_generated(dir, "data/", db);
}

/// `(topic, file)` of every generated feed file.
pub fn feed_files(dir: &Path) -> Vec<(String, PathBuf)> {
    let mut out = Vec::new();
    for topic in FEEDS {
        let folder = dir.join("data/feeds").join(topic);
        let Ok(entries) = std::fs::read_dir(&folder) else {
            continue;
        };
        let mut files: Vec<PathBuf> = entries.map(|e| e.unwrap().path()).collect();
        files.sort();
        for f in files {
            out.push((topic.to_string(), f));
        }
    }
    out
}

/// Publish every generated feed file to its topic.
pub fn produce_all(dir: &Path, bootstrap: &str) {
    produce_part(dir, bootstrap, |_, _| true);
}

/// Publish the first (`0`) or second (`1`) half of each topic's feed files (by month).
pub fn produce_half(dir: &Path, bootstrap: &str, half: usize) {
    produce_part(dir, bootstrap, |i, n| (i * 2 >= n) == (half == 1));
}

/// Publish the feed files `keep(index, count)` selects within each topic.
pub fn produce_part(dir: &Path, bootstrap: &str, keep: impl Fn(usize, usize) -> bool) {
    let files = feed_files(dir);
    for topic in FEEDS {
        let all: Vec<String> = files
            .iter()
            .filter(|(t, _)| t == topic)
            .map(|(_, f)| f.display().to_string())
            .collect();
        let mine: Vec<String> = all
            .iter()
            .enumerate()
            .filter(|(i, _)| keep(*i, all.len()))
            .map(|(_, f)| f.clone())
            .collect();
        if mine.is_empty() {
            continue;
        }
        let mine: Vec<&str> = mine.iter().map(String::as_str).collect();
        produce(dir, bootstrap, topic, &mine);
    }
}

/// `doudi produce` of `files` to `topic`; its standard output, after asserting it succeeded.
pub fn produce(dir: &Path, bootstrap: &str, topic: &str, files: &[&str]) -> String {
    let mut args = vec!["produce", "--brokers", bootstrap, "--topic", topic];
    args.extend_from_slice(files);
    ok(doudi(dir, &args))
}

/// A child process killed when dropped (a failed assertion leaves no worker behind).
pub struct Guard(pub Option<Child>);

impl Guard {
    /// Wait for it to exit and collect its output.
    pub fn output(mut self) -> std::process::Output {
        self.0.take().unwrap().wait_with_output().unwrap()
    }
}

impl std::ops::Deref for Guard {
    type Target = Child;
    fn deref(&self) -> &Child {
        self.0.as_ref().unwrap()
    }
}

impl std::ops::DerefMut for Guard {
    fn deref_mut(&mut self) -> &mut Child {
        self.0.as_mut().unwrap()
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        if let Some(c) = self.0.as_mut() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Stop the workers (SIGTERM: each drains), asserting that each exited cleanly.
pub fn stop_workers(dir: &Path, workers: Vec<Guard>) {
    for w in &workers {
        terminate(w);
    }
    for w in workers {
        let out = w.output();
        assert!(
            out.status.success(),
            "a worker did not stop cleanly: {}\n{}",
            out.status,
            logs(dir)
        );
    }
}

/// A fresh database on the PostgreSQL test server (DOUDI_TEST_POSTGRES_URL), dropped when the
/// test ends. Derefs to its URL.
pub fn fresh_database(base: &str, what: &str) -> crate::common::PgDatabase {
    crate::common::PgDatabase::create(base, &format!("kafka_{what}"))
}

/// A `doudi run --brokers` worker.
pub fn worker(dir: &Path, bootstrap: &str, db: &str, env: &[(&str, &str)]) -> Guard {
    let log = dir.join(format!("worker-{}.log", crate::common::now_nanos()));
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_doudi"));
    cmd.current_dir(dir)
        .args(["run", "--brokers", bootstrap, "--json", "--db", db])
        .env_remove("DOUDI_CONFIG")
        .env_remove("DOUDI_DB")
        .env("DOUDI_LOG", "warn")
        .env("DOUDI_KAFKA__SESSION_TIMEOUT_MS", "3000")
        .env("DOUDI_KAFKA__LINGER_MS", "50")
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(log).unwrap());
    for (k, v) in env {
        cmd.env(k, v);
    }
    Guard(Some(cmd.spawn().expect("start worker")))
}

/// A loopback address nothing listens on (for a worker's `--metrics-addr`).
pub fn free_addr() -> String {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    format!("127.0.0.1:{port}")
}

/// The text of `GET /metrics` at `addr`.
pub fn scrape_metrics(addr: &str) -> String {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut body = String::new();
    s.read_to_string(&mut body).unwrap();
    body
}

/// Send SIGTERM to a process.
pub fn terminate(child: &Child) {
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

pub fn status(dir: &Path, db: &str) -> Value {
    serde_json::from_str(&ok(doudi(dir, &["status", "--json", "--db", db]))).expect("status json")
}

/// Wait until `status.received` reaches `total` (or `within` passes); returns the last status.
pub fn wait_received(dir: &Path, db: &str, total: u64, within: Duration) -> Value {
    let start = Instant::now();
    loop {
        let s = status(dir, db);
        if s["received"].as_u64().unwrap() >= total || start.elapsed() > within {
            return s;
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// The worker's logs, for failure messages.
pub fn logs(dir: &Path) -> String {
    let mut out = String::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.file_name()
            .unwrap()
            .to_string_lossy()
            .starts_with("worker-")
        {
            out.push_str(&format!("--- {}\n", p.display()));
            out.push_str(&std::fs::read_to_string(&p).unwrap_or_default());
        }
    }
    out
}

/// A message read back from a topic.
#[derive(Debug, Clone)]
pub struct Read {
    pub key: Option<Vec<u8>>,
    pub payload: Vec<u8>,
    pub headers: HashMap<String, String>,
}

/// Every message of `topic` (all partitions), read from the beginning to the current end.
pub fn read_topic(bootstrap: &str, topic: &str) -> Vec<Read> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", "doudi-tests-reader")
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "true")
        .create()
        .unwrap();
    let meta = consumer
        .fetch_metadata(Some(topic), Duration::from_secs(10))
        .unwrap();
    let mut tpl = TopicPartitionList::new();
    let mut remaining = 0;
    for t in meta.topics() {
        for p in t.partitions() {
            let (low, high) = consumer
                .fetch_watermarks(topic, p.id(), Duration::from_secs(10))
                .unwrap();
            if high > low {
                tpl.add_partition_offset(topic, p.id(), Offset::Beginning)
                    .unwrap();
                remaining += 1;
            }
        }
    }
    let mut out = Vec::new();
    if remaining == 0 {
        return out;
    }
    consumer.assign(&tpl).unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while remaining > 0 && Instant::now() < deadline {
        match consumer.poll(Duration::from_millis(200)) {
            None => {}
            Some(Err(rdkafka::error::KafkaError::PartitionEOF(_))) => remaining -= 1,
            Some(Err(e)) => panic!("reading {topic}: {e}"),
            Some(Ok(m)) => {
                let headers = m
                    .headers()
                    .map(|h| {
                        h.iter()
                            .map(|h| {
                                (
                                    h.key.to_string(),
                                    String::from_utf8_lossy(h.value.unwrap_or_default())
                                        .into_owned(),
                                )
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                out.push(Read {
                    key: m.key().map(<[u8]>::to_vec),
                    payload: m.payload().unwrap_or_default().to_vec(),
                    headers,
                });
            }
        }
    }
    assert_eq!(remaining, 0, "could not read {topic} to its end");
    out
}
