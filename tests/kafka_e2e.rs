//! End-to-end tests of the Kafka worker against a real broker process (`doudi dev-broker`):
//! poison records, a broken upstream, two workers sharing a group, broker faults, and the
//! warnings topic.

mod common;
#[path = "common/kafka.rs"]
mod kafka;

use std::time::Duration;

use common::{doudi, ok, sqlite_url};
use kafka::*;
use serde_json::Value;

/// A test's folder holding a data set of `households` from `seed`, imported into its SQLite store
/// (`doudi.db`), and a broker of `partitions` partitions a topic: the folder, the store's URL,
/// the feeds' line count and the broker.
fn setup(
    households: &str,
    seed: &str,
    partitions: u32,
) -> (tempfile::TempDir, String, u64, Broker) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let db = sqlite_url(dir, "doudi.db");
    let total = gen_and_import(dir, households, seed, &db);
    let broker = Broker::start(dir, partitions);
    (tmp, db, total, broker)
}

#[test]
fn poison_records_reach_the_dead_letter_topic_with_their_origin_and_never_stall_a_partition() {
    // One partition, so the poison sits in the middle of the records that follow it.
    let (tmp, db, good, broker) = setup("200", "7", 1);
    let dir = tmp.path();
    let register = std::fs::read_to_string(dir.join("data/register.jsonl")).unwrap();
    let h: Value = serde_json::from_str(register.lines().next().unwrap()).unwrap();
    let m = &h["members"][0];
    let valid = |id: &str| {
        serde_json::json!({
            "event_id": id, "source": "health_insurance", "kind": "serious_illness_diagnosed",
            "occurred_at": "2025-06-01T10:00:00+08:00",
            "subject": {"id_number": m["id_number"], "name": m["name"], "birth_date": m["birth_date"],
                "sex": m["sex"], "region_code": h["region_code"]},
            "data": {"diagnosis": "C34.9", "diagnosed_on": "2025-06-01"}
        })
        .to_string()
    };
    let oversized = valid("P-BIG").replace("C34.9", &"C".repeat(100_000));
    let wrong_schema = valid("P-KIND").replace("serious_illness_diagnosed", "lottery_win");
    let poison: Vec<(String, &str)> = vec![
        ("this is not json".into(), "not_json"),
        (oversized, "too_large"),
        (wrong_schema, "unknown_kind"),
        ("[1,2,3]".into(), "not_object"),
    ];
    let mut file = String::new();
    for (i, (line, _)) in poison.iter().enumerate() {
        file.push_str(line);
        file.push('\n');
        file.push_str(&valid(&format!("P-OK-{i}")));
        file.push('\n');
    }
    std::fs::write(dir.join("poison.jsonl"), &file).unwrap();
    kafka::produce(
        dir,
        &broker.bootstrap,
        "health_insurance",
        &["poison.jsonl"],
    );
    produce_all(dir, &broker.bootstrap);
    let total = good + 2 * poison.len() as u64;

    let addr = free_addr();
    let mut w = worker(
        dir,
        &broker.bootstrap,
        &db,
        &[("DOUDI_METRICS_ADDR", addr.as_str())],
    );
    let s = wait_received(dir, &db, total, Duration::from_secs(120));
    // Lag comes with librdkafka's statistics, every two seconds.
    let lag = "doudi_consumer_lag{topic=\"health_insurance\",partition=\"0\"} 0";
    let mut metrics = scrape_metrics(&addr);
    for _ in 0..50 {
        if metrics.contains(lag) {
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
        metrics = scrape_metrics(&addr);
    }
    terminate(&w);
    assert!(w.wait().unwrap().success(), "{}", logs(dir));
    assert_eq!(s["received"], total, "{}", logs(dir));
    assert_eq!(s["dead_letters"], poison.len() as u64);

    // The worker's metrics: what it consumed, its lag, its stages, what it refused and warned,
    // with codes as label values and nothing personal.
    for needle in [
        "doudi_events_consumed_total{source=\"health_insurance\"}",
        lag,
        "doudi_stage_seconds_count{stage=\"batch\"}",
        "doudi_stage_seconds_count{stage=\"commit\"}",
        "doudi_dead_letters_total{source=\"health_insurance\",reason=\"not_json\"} 1",
        "doudi_dead_letters_total{source=\"health_insurance\",reason=\"too_large\"} 1",
        "doudi_warnings_total{level=",
    ] {
        assert!(metrics.contains(needle), "no {needle} in\n{metrics}");
    }
    for household in register.lines() {
        let h: Value = serde_json::from_str(household).unwrap();
        for m in h["members"].as_array().unwrap() {
            for field in ["id_number", "name"] {
                let value = m[field].as_str().unwrap();
                assert!(
                    !metrics.contains(value),
                    "a member's {field} in the metrics"
                );
            }
        }
    }
    assert_eq!(
        s["accepted"],
        good + poison.len() as u64,
        "every good record behind the poison is applied"
    );

    let dlq = read_topic(&broker.bootstrap, "dead_letters");
    assert_eq!(dlq.len(), poison.len(), "each poison record once");
    for (i, (line, code)) in poison.iter().enumerate() {
        // The poison file went first into partition 0: record i is at offset 2i.
        let d = dlq
            .iter()
            .find(|d| d.headers["doudi.offset"] == (2 * i).to_string())
            .unwrap_or_else(|| panic!("no dead letter for offset {}", 2 * i));
        assert_eq!(d.headers["doudi.topic"], "health_insurance");
        assert_eq!(d.headers["doudi.partition"], "0");
        assert_eq!(d.headers["doudi.reason"], *code);
        assert_eq!(d.headers["doudi.original_length"], line.len().to_string());
        if *code != "too_large" {
            assert_eq!(d.payload, line.as_bytes());
        } else {
            assert!(d.payload.len() < line.len(), "an oversized record is cut");
        }
    }
    let list: Value = serde_json::from_str(&ok(doudi(
        dir,
        &["deadletters", "list", "--json", "--db", &db],
    )))
    .unwrap();
    let list = list.as_array().unwrap();
    assert_eq!(list.len(), poison.len());
    assert!(list.iter().all(|d| d["stream"] == "health_insurance/0"));
}

#[test]
fn a_partition_of_nearly_only_invalid_records_stops_the_worker_with_a_clear_error() {
    let (tmp, db, _, broker) = setup("20", "3", 1);
    let dir = tmp.path();
    let mut file = String::new();
    for i in 0..1500 {
        file.push_str(&format!("garbage line {i}\n"));
    }
    std::fs::write(dir.join("broken.jsonl"), &file).unwrap();
    kafka::produce(dir, &broker.bootstrap, "housing", &["broken.jsonl"]);
    let w = worker(
        dir,
        &broker.bootstrap,
        &db,
        &[("DOUDI_LIMITS__BATCH_SIZE", "100")],
    );
    let out = w.output();
    assert!(!out.status.success(), "the worker must stop on its own");
    let log = logs(dir);
    assert!(
        log.contains("housing/0") && log.contains("upstream feed looks broken"),
        "{log}"
    );
    // It stopped within the first window: not the whole feed went to dead letters.
    let s = status(dir, &db);
    assert!(s["dead_letters"].as_u64().unwrap() < 1000, "{s}");
}

#[test]
fn a_worker_stopped_mid_stream_hands_its_partitions_over_and_nothing_is_lost_or_applied_twice() {
    let tmp = tempfile::tempdir().unwrap();
    hand_over(tmp.path(), &sqlite_url(tmp.path(), "doudi.db"));
}

#[test]
fn two_workers_on_postgres_hand_partitions_over_and_nothing_is_lost_or_applied_twice() {
    let Some(base) = common::postgres_url() else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    hand_over(tmp.path(), &fresh_database(&base, "hand_over"));
}

fn hand_over(dir: &std::path::Path, db: &str) {
    let db = db.to_string();
    let total = gen_and_import(dir, "1500", "13", &db);
    let broker = Broker::start(dir, 6);
    // The first half of the stream now, the second after the first worker has stopped.
    produce_half(dir, &broker.bootstrap, 0);
    let env = [("DOUDI_LIMITS__BATCH_SIZE", "50")];

    let a = worker(dir, &broker.bootstrap, &db, &env);
    let first = wait_received(dir, &db, 1, Duration::from_secs(60));
    assert!(first["received"].as_u64().unwrap() > 0, "{}", logs(dir));
    // A second worker joins: the group rebalances while the first has batches in flight.
    let b = worker(dir, &broker.bootstrap, &db, &env);
    std::thread::sleep(Duration::from_secs(5));
    terminate(&a);
    let a_out = a.output();
    assert!(a_out.status.success(), "{}", logs(dir));
    let a_report: Value = serde_json::from_slice(&a_out.stdout).unwrap();
    let stopped_at = status(dir, &db)["received"].as_u64().unwrap();
    assert!(
        stopped_at < total,
        "stopped mid-stream: {stopped_at} of {total}"
    );

    // The rest of the stream lands in every partition: the second worker must own them all.
    produce_half(dir, &broker.bootstrap, 1);
    let s = wait_received(dir, &db, total, Duration::from_secs(180));
    terminate(&b);
    let b_out = b.output();
    assert!(b_out.status.success(), "{}", logs(dir));
    let b_report: Value = serde_json::from_slice(&b_out.stdout).unwrap();
    assert_eq!(s["received"], total, "nothing lost: {}", logs(dir));
    assert_eq!(s["duplicates"], 0, "nothing applied twice");
    assert_eq!(s["accepted"], total);
    assert_eq!(
        a_report["received"].as_u64().unwrap() + b_report["received"].as_u64().unwrap(),
        total,
        "every record was read by exactly one worker"
    );
    assert!(a_report["received"].as_u64().unwrap() > 0);
    assert!(b_report["received"].as_u64().unwrap() > 0);
}

#[test]
fn the_worker_waits_through_broker_faults_and_resumes_losing_nothing() {
    let (tmp, db, total, mut broker) = setup("1500", "17", 4);
    let dir = tmp.path();
    produce_half(dir, &broker.bootstrap, 0);
    let mut w = worker(
        dir,
        &broker.bootstrap,
        &db,
        &[("DOUDI_LIMITS__BATCH_SIZE", "50")],
    );
    // Requests failing while it consumes: fetches, offset commits, heartbeats.
    assert!(broker
        .command("errors Fetch 5 NOT_LEADER_FOR_PARTITION")
        .starts_with("ok"));
    assert!(broker
        .command("errors OffsetCommit 3 REQUEST_TIMED_OUT")
        .starts_with("ok"));
    assert!(broker
        .command("errors Heartbeat 2 TRANSPORT")
        .starts_with("ok"));
    let s = wait_received(dir, &db, 1, Duration::from_secs(60));
    assert!(s["received"].as_u64().unwrap() > 0, "{}", logs(dir));

    // The broker down: the worker waits (does not exit) and consumes nothing.
    assert_eq!(broker.command("down 1"), "ok broker 1 down");
    std::thread::sleep(Duration::from_millis(1500));
    let during = status(dir, &db)["received"].as_u64().unwrap();
    std::thread::sleep(Duration::from_secs(3));
    assert!(
        w.try_wait().unwrap().is_none(),
        "the worker must wait, not exit"
    );
    assert_eq!(
        status(dir, &db)["received"].as_u64().unwrap(),
        during,
        "nothing is consumed while the broker is down"
    );
    assert!(during < total, "the fault lands mid-stream");
    assert_eq!(broker.command("up 1"), "ok broker 1 up");

    // Back up, slow and failing fetches again, and the rest of the stream.
    assert!(broker.command("rtt 1 30").starts_with("ok"));
    assert!(broker
        .command("errors Fetch 5 REQUEST_TIMED_OUT")
        .starts_with("ok"));
    produce_half(dir, &broker.bootstrap, 1);
    let s = wait_received(dir, &db, total, Duration::from_secs(180));
    terminate(&w);
    assert!(w.wait().unwrap().success(), "{}", logs(dir));
    assert_eq!(s["received"], total, "{}", logs(dir));
    assert_eq!(s["duplicates"], 0);
    assert_eq!(s["accepted"], total);
}

#[test]
fn notices_reach_the_warnings_topic_once_each_even_after_a_crash_between_send_and_record() {
    let (tmp, db, total, broker) = setup("300", "5", 3);
    let dir = tmp.path();
    produce_all(dir, &broker.bootstrap);
    let mut w = worker(dir, &broker.bootstrap, &db, &[]);
    wait_received(dir, &db, total, Duration::from_secs(120));
    terminate(&w);
    assert!(w.wait().unwrap().success(), "{}", logs(dir));

    let publish = || -> Value {
        serde_json::from_str(&ok(doudi(
            dir,
            &[
                "deliver",
                "--brokers",
                &broker.bootstrap,
                "--once",
                "--json",
                "--db",
                &db,
            ],
        )))
        .unwrap()
    };
    let first = publish();
    let notices = first["kafka"]["published"].as_u64().unwrap();
    assert!(notices > 0, "hardship scenarios raise warnings: {first}");
    let topic = read_topic(&broker.bootstrap, "warnings");
    assert_eq!(topic.len() as u64, notices);

    // Nothing new: nothing published.
    assert_eq!(publish()["kafka"]["published"], 0);

    // A crash after sending, before recording: forget the records; the restart finds them on the
    // topic instead of sending them again.
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let pool = sqlx::SqlitePool::connect(&db).await.unwrap();
        sqlx::query("UPDATE notices SET kafka_published_at = NULL, kafka_partition = NULL, kafka_offset = NULL WHERE notice_id % 2 = 0")
            .execute(&pool)
            .await
            .unwrap();
        pool.close().await;
    });
    let again = publish();
    assert_eq!(again["kafka"]["published"], 0, "{again}");
    assert!(again["kafka"]["recovered"].as_u64().unwrap() > 0, "{again}");
    let topic = read_topic(&broker.bootstrap, "warnings");
    assert_eq!(topic.len() as u64, notices, "no notice repeated");

    let mut ids: Vec<i64> = topic
        .iter()
        .map(|m| m.headers["doudi.notice_id"].parse().unwrap())
        .collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len() as u64, notices);
    let register = std::fs::read_to_string(dir.join("data/register.jsonl")).unwrap();
    for m in &topic {
        let item: Value = serde_json::from_slice(&m.payload).unwrap();
        let household = item["household"]["household_id"].as_str().unwrap();
        assert_eq!(
            m.key.as_deref(),
            Some(household.as_bytes()),
            "keyed by household"
        );
        for member in item["members"].as_array().unwrap() {
            let id = member["id_number"].as_str().unwrap();
            assert!(id.contains('*'), "ID numbers are masked: {id}");
            assert!(!register.contains(&format!("\"{id}\"")));
        }
    }
}

/// `linkage train --brokers`: a Kafka-only deployment trains the identity model on a sample of
/// the feed topics (from each partition's beginning), guarded like training on files.
#[test]
fn the_identity_model_trains_on_a_sample_of_the_feed_topics() {
    let (tmp, db, _, broker) = setup("200", "7", 2);
    let dir = tmp.path();
    produce_all(dir, &broker.bootstrap);
    let out = ok(doudi(
        dir,
        &[
            "linkage",
            "train",
            "--brokers",
            &broker.bootstrap,
            "--per-partition",
            "100",
            "--db",
            &db,
        ],
    ));
    // four topics of two partitions, at most 100 records each
    let read: u64 = out
        .split_whitespace()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{out}"));
    assert!(read > 100 && read <= 800, "{out}");
    // records are keyed by person, so a partition may be empty: every topic has some
    let partitions: usize = out
        .split("from ")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{out}"));
    assert!((4..=8).contains(&partitions), "{out}");
    assert!(out.contains("now the active model"), "{out}");
    let shown: Value =
        serde_json::from_str(&ok(doudi(dir, &["linkage", "show", "--json", "--db", &db]))).unwrap();
    assert!(
        shown["method"].as_str().unwrap().starts_with("em:"),
        "{shown}"
    );
    assert_eq!(shown["active"], true);
}
