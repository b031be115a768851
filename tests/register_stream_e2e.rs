//! The register is a stream too (issue 19, item 4): a `doudi run` worker that keeps running
//! (without `--once`) follows a register import. The records of a household not yet enrolled
//! arrive and stay unmatched; `doudi import` enrols it; within seconds the worker links them,
//! assesses the household and opens its warning — and the trace shows each record first
//! unmatched, then linked after the register change. The result is compared row by row with a run
//! whose register had the household from the start.
//!
//! On SQLite always; on PostgreSQL with `DOUDI_TEST_POSTGRES_URL` (otherwise that test prints
//! `skipped: DOUDI_TEST_POSTGRES_URL not set` and passes).

mod common;
#[path = "common/kafka.rs"]
mod kafka;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{doudi, doudi_env, gen, ok};

/// Both runs link with the prior model: a model trained on each run's own register would differ
/// between them for reasons that are not this test's.
const PRIOR: (&str, &str) = ("DOUDI_LINKAGE__TRAIN_SAMPLE", "0");
use serde_json::Value;

fn json(dir: &Path, args: &[&str]) -> Value {
    serde_json::from_str(&ok(doudi(dir, args))).expect("json output")
}

/// Memory caps small enough that a worker over the generated register holds a few households'
/// records and timelines only, reading the others back from the store (`[memory]`): the results
/// must be those of a worker that holds everything.
const TINY_CAPS: [(&str, &str); 2] = [
    ("DOUDI_MEMORY__REGISTER_HOUSEHOLDS", "3"),
    ("DOUDI_MEMORY__TIMELINE_FACTS", "5"),
];

/// A worker that keeps running (over a feeds folder, `--feeds DIR`, or a broker, `--brokers
/// HOST:PORT`), following the register every second, with `env` besides.
fn worker(dir: &Path, source: &[&str], db: &str, env: &[(&str, &str)]) -> Child {
    let mut args = vec!["run"];
    args.extend_from_slice(source);
    args.extend(["--db", db]);
    common::quiet_command(dir, &args)
        .envs(env.iter().copied())
        .env("DOUDI_KAFKA__SESSION_TIMEOUT_MS", "3000")
        .env("DOUDI_KAFKA__LINGER_MS", "50")
        .env("DOUDI_REGISTER__REFRESH_SECS", "1")
        .env(PRIOR.0, PRIOR.1)
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start the worker")
}

/// Stop the worker (SIGTERM: it drains) and wait for it.
fn stop(mut w: Child) {
    let _ = Command::new("kill")
        .args(["-TERM", &w.id().to_string()])
        .status();
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if let Ok(Some(_)) = w.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = w.kill();
    let _ = w.wait();
}

/// Poll `check` every 200 ms until it returns `Some`, or fail after `timeout` saying `what`.
fn wait_for<T>(timeout: Duration, what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(t) = check() {
            return t;
        }
        assert!(
            start.elapsed() < timeout,
            "timed out after {timeout:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// An assessment as stored: source, event id, household, score, level, the assessment (packed).
type Assessment = (
    String,
    String,
    String,
    i64,
    String,
    Option<doudi_store::Stored>,
);
/// A warning as stored: household, status, level, score, the triggering event's source and id.
type Warning = (String, String, String, i64, String, String);
/// Every assessment (by event) and every warning (by household), as stored.
type Rows = (Vec<Assessment>, Vec<Warning>);

/// Every assessment, by the event (source, id), not by `seq`: the numbers depend on batch timing.
const ASSESSMENTS: &str =
    "SELECT e.source, e.event_id, a.household_id, a.score, a.level, a.assessment
     FROM assessments a JOIN events e ON e.seq = a.seq ORDER BY e.source, e.event_id";
/// Every warning, by household.
const WARNINGS: &str =
    "SELECT household_id, status, level, score, assessment_source, assessment_event_id FROM warnings
     ORDER BY household_id, warning_id";

macro_rules! rows_of {
    ($pool:expr) => {{
        let pool = &$pool;
        let assessments: Vec<Assessment> =
            sqlx::query_as(ASSESSMENTS).fetch_all(pool).await.unwrap();
        let warnings: Vec<Warning> = sqlx::query_as(WARNINGS).fetch_all(pool).await.unwrap();
        (assessments, warnings)
    }};
}

fn rows(db: &str) -> Rows {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async { common::on_pool!(db, |pool| rows_of!(pool)) })
}

/// Records with more than one earlier decision (`seq`, how many).
fn history_repeats(db: &str) -> Vec<(i64, i64)> {
    let sql = "SELECT seq, COUNT(*) FROM link_history GROUP BY seq HAVING COUNT(*) > 1";
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        if db.starts_with("postgres") {
            let pool = sqlx::PgPool::connect(db).await.unwrap();
            let r = sqlx::query_as(sql).fetch_all(&pool).await.unwrap();
            pool.close().await;
            r
        } else {
            let pool = sqlx::SqlitePool::connect(db).await.unwrap();
            let r = sqlx::query_as(sql).fetch_all(&pool).await.unwrap();
            pool.close().await;
            r
        }
    })
}

/// The household's warnings (level, status) as `warnings list` shows them.
fn warnings_of(dir: &Path, db: &str, household: &str) -> Vec<(String, String)> {
    json(
        dir,
        &[
            "warnings", "list", "--limit", "100000", "--json", "--db", db,
        ],
    )
    .as_array()
    .expect("warnings array")
    .iter()
    .filter(|w| w["household_id"] == household)
    .map(|w| {
        (
            w["level"].as_str().unwrap_or_default().to_string(),
            w["status"].as_str().unwrap_or_default().to_string(),
        )
    })
    .collect()
}

/// The trace's event entries: (outcome, earlier outcomes).
fn traced_events(dir: &Path, db: &str, household: &str) -> Vec<(String, Vec<String>)> {
    let out = doudi(dir, &["trace", household, "--json", "--db", db]);
    if !out.status.success() {
        return Vec::new();
    }
    let v: Value = serde_json::from_slice(&out.stdout).expect("trace json");
    v.as_array()
        .map(|a| a.to_vec())
        .or_else(|| v["entries"].as_array().map(|a| a.to_vec()))
        .unwrap_or_default()
        .iter()
        .filter(|e| e["entry"] == "event")
        .map(|e| {
            (
                e["outcome"].as_str().unwrap_or_default().to_string(),
                e["earlier_decisions"]
                    .as_array()
                    .map(|d| {
                        d.iter()
                            .map(|d| d["outcome"].as_str().unwrap_or_default().to_string())
                            .collect()
                    })
                    .unwrap_or_default(),
            )
        })
        .collect()
}

/// Where the streamed run's records come from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Layout {
    /// One worker over the feeds folder.
    Files,
    /// Two workers over the feeds folder and a copy of it, on one database.
    TwoWorkers,
    /// One worker over the feed topics of a broker.
    Kafka,
    /// One worker over the feeds folder holding a few households and timelines ([`TINY_CAPS`]).
    FilesTinyCaps,
}

/// Generate the data, run a reference (register complete from the start) into `reference`, and
/// the streamed case into `streamed`: the register without one warned household, a worker that
/// keeps running, then the import that enrols it.
///
/// With [`Layout::TwoWorkers`], a second worker follows the register on the same database (reading
/// a copy of the feeds under other file names: every record twice, applied once), and each waiting
/// record must be decided again by one of them only. With [`Layout::Kafka`], the worker consumes
/// the feed topics of a `doudi dev-broker` instead.
fn register_follows_a_running_worker(dir: &Path, reference: &str, streamed: &str, layout: Layout) {
    gen(dir, "150", "19", "data", &["--start", "2025-01-01"]);
    ok(doudi(
        dir,
        &["import", "data/register.jsonl", "--db", reference],
    ));
    ok(doudi_env(
        dir,
        &["run", "--feeds", "data/feeds", "--once", "--db", reference],
        &[PRIOR],
    ));
    let status = json(dir, &["status", "--json", "--db", reference]);
    let accepted = status["accepted"].as_i64().expect("accepted");
    // The household to enrol late: the one with the highest warning score in the reference.
    let warnings = json(
        dir,
        &[
            "warnings", "list", "--limit", "100000", "--json", "--db", reference,
        ],
    );
    let target = warnings
        .as_array()
        .expect("warnings")
        .iter()
        .max_by_key(|w| {
            (
                w["score"].as_i64().unwrap_or(0),
                w["household_id"].to_string(),
            )
        })
        .and_then(|w| w["household_id"].as_str())
        .expect("the reference run warns some household")
        .to_string();
    let linked_in_reference = traced_events(dir, reference, &target)
        .iter()
        .filter(|(o, _)| o == "linked")
        .count();
    assert!(linked_in_reference > 0, "{target} has linked records");

    // Another warned household, of several members, is enrolled without its last member: the
    // import adds the member (a member change of an enrolled household: it is re-derived).
    let register = std::fs::read_to_string(dir.join("data/register.jsonl")).unwrap();
    let households: BTreeMap<String, Value> = register
        .lines()
        .map(|l| {
            let v: Value = serde_json::from_str(l).unwrap();
            (v["household_id"].as_str().unwrap().to_string(), v)
        })
        .collect();
    let mut warned: Vec<(i64, String)> = warnings
        .as_array()
        .unwrap()
        .iter()
        .map(|w| {
            (
                w["score"].as_i64().unwrap_or(0),
                w["household_id"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    warned.sort();
    let grown = warned
        .iter()
        .rev()
        .map(|(_, h)| h)
        .find(|h| **h != target && households[*h]["members"].as_array().unwrap().len() >= 2)
        .expect("a warned household of several members")
        .clone();
    // The register without the target household, and with one member less in `grown`.
    let without: String = households
        .values()
        .filter(|h| h["household_id"] != target.as_str())
        .map(|h| {
            let mut h = h.clone();
            if h["household_id"] == grown.as_str() {
                h["members"].as_array_mut().unwrap().pop();
            }
            format!("{h}\n")
        })
        .collect();
    std::fs::write(dir.join("without.jsonl"), without).unwrap();
    ok(doudi(dir, &["import", "without.jsonl", "--db", streamed]));

    let broker = (layout == Layout::Kafka).then(|| {
        let broker = kafka::Broker::start(dir, 2);
        kafka::produce_all(dir, &broker.bootstrap);
        broker
    });
    let caps: &[(&str, &str)] = if layout == Layout::FilesTinyCaps {
        &TINY_CAPS
    } else {
        &[]
    };
    let mut workers = vec![match &broker {
        Some(b) => worker(dir, &["--brokers", &b.bootstrap], streamed, caps),
        None => worker(dir, &["--feeds", "data/feeds"], streamed, caps),
    }];
    if layout == Layout::TwoWorkers {
        common::copy_feeds(dir);
        workers.push(worker(dir, &["--feeds", "data/feeds_copy"], streamed, caps));
    }
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        wait_for(Duration::from_secs(120), "every record read", || {
            let s = json(dir, &["status", "--json", "--db", streamed]);
            (s["accepted"].as_i64() == Some(accepted)).then_some(())
        });
        // Not enrolled: nothing links to it, no warning.
        assert!(warnings_of(dir, streamed, &target).is_empty());
        let grown_before = rows(streamed);
        assert!(traced_events(dir, streamed, &target)
            .iter()
            .all(|(o, _)| o != "linked"));

        // Enrol it while the worker runs; within seconds its records link and it is warned.
        let started = Instant::now();
        ok(doudi(
            dir,
            &["import", "data/register.jsonl", "--db", streamed],
        ));
        let events = wait_for(Duration::from_secs(60), "the records to link", || {
            let e = traced_events(dir, streamed, &target);
            (e.iter().filter(|(o, _)| o == "linked").count() == linked_in_reference).then_some(e)
        });
        let warned = wait_for(Duration::from_secs(30), "the warning", || {
            let w = warnings_of(dir, streamed, &target);
            (!w.is_empty()).then_some(w)
        });
        println!(
            "{target}: {} records linked and warned {:?} {:.1} s after the import",
            events.len(),
            warned,
            started.elapsed().as_secs_f64()
        );
        // The member added to `grown`: its household re-derived (its assessments change).
        let grown_rows = |r: &Rows| -> Vec<(String, String, i64, String)> {
            r.0.iter()
                .filter(|a| a.2 == grown)
                .map(|a| (a.0.clone(), a.1.clone(), a.3, a.4.clone()))
                .collect()
        };
        let before = grown_rows(&grown_before);
        wait_for(
            Duration::from_secs(30),
            "the grown household re-derived",
            || (grown_rows(&rows(streamed)) != before).then_some(()),
        );
        // The trace says each was first unmatched (or sent to review), then linked.
        for (outcome, earlier) in &events {
            assert_eq!(outcome, "linked");
            assert!(
                matches!(
                    earlier.first().map(String::as_str),
                    Some("unmatched" | "review")
                ),
                "earlier decisions {earlier:?}"
            );
        }
    }));
    for w in workers {
        stop(w);
    }
    drop(broker);
    // Each record decided again once (by one worker): one earlier decision each.
    let twice = history_repeats(streamed);
    assert!(twice.is_empty(), "records decided again twice: {twice:?}");
    if let Err(e) = result {
        std::panic::resume_unwind(e);
    }

    // The same assessments and warnings as the run that had the household from the start.
    let (ref_assessments, ref_warnings) = rows(reference);
    let (got_assessments, got_warnings) = rows(streamed);
    let by_household = |a: &[Assessment]| {
        let mut m: BTreeMap<String, usize> = BTreeMap::new();
        for r in a {
            *m.entry(r.2.clone()).or_default() += 1;
        }
        m
    };
    assert_eq!(
        by_household(&got_assessments).get(&target),
        by_household(&ref_assessments).get(&target),
        "assessments of {target}"
    );
    let differing: Vec<_> = ref_assessments
        .iter()
        .zip(&got_assessments)
        .filter(|(a, b)| a != b)
        .map(|(a, b)| format!("{}/{}: {} {} / {} {}", a.0, a.1, a.3, a.4, b.3, b.4))
        .take(10)
        .collect();
    assert!(
        differing.is_empty() && ref_assessments.len() == got_assessments.len(),
        "{} vs {} assessments; first differences: {differing:?}",
        ref_assessments.len(),
        got_assessments.len()
    );
    assert_eq!(got_warnings, ref_warnings, "warnings row by row");
}

#[test]
fn a_household_enrolled_while_a_worker_runs_links_its_waiting_records_on_sqlite() {
    let (tmp, [reference, streamed]) = common::sqlite_case(["reference.db", "streamed.db"]);
    register_follows_a_running_worker(tmp.path(), &reference, &streamed, Layout::Files);
}

/// The same with a worker that holds 3 household records and 5 timeline facts: the others are
/// read from the store as of the register version its snapshot holds, before and after the import.
#[test]
fn a_worker_holding_few_households_follows_the_register_with_the_same_results() {
    let (tmp, [reference, streamed]) = common::sqlite_case(["reference.db", "streamed.db"]);
    register_follows_a_running_worker(tmp.path(), &reference, &streamed, Layout::FilesTinyCaps);
}

/// `doudi run --once` holding a few household records and timeline facts (small batches, so that
/// households come back after they were evicted) gives the same status, assessments and warnings
/// as a run that holds everything.
#[test]
fn a_run_with_tiny_memory_caps_gives_the_same_status_assessments_and_warnings() {
    let (tmp, [full, capped]) = common::sqlite_case(["full.db", "capped.db"]);
    let dir = tmp.path();
    gen(dir, "200", "23", "data", &["--start", "2025-01-01"]);
    let batches = ("DOUDI_LIMITS__BATCH_SIZE", "97");
    for (db, caps) in [(&full, &[][..]), (&capped, &TINY_CAPS[..])] {
        ok(doudi(dir, &["import", "data/register.jsonl", "--db", db]));
        let mut env = vec![PRIOR, batches];
        env.extend_from_slice(caps);
        ok(doudi_env(
            dir,
            &["run", "--feeds", "data/feeds", "--once", "--db", db],
            &env,
        ));
    }
    let status = |db: &str| json(dir, &["status", "--json", "--db", db]);
    assert_eq!(status(&capped), status(&full));
    let (full_rows, capped_rows) = (rows(&full), rows(&capped));
    assert!(!full_rows.1.is_empty(), "the run warns some household");
    assert_eq!(capped_rows.0.len(), full_rows.0.len());
    assert!(capped_rows.0 == full_rows.0, "assessments differ");
    assert_eq!(capped_rows.1, full_rows.1, "warnings row by row");
}

#[test]
fn a_household_enrolled_while_a_worker_runs_links_its_waiting_records_on_postgres() {
    let Some((tmp, [reference, streamed])) = common::postgres_case(["regstream_ref", "regstream"])
    else {
        return;
    };
    let (dir, layout) = (tmp.path(), Layout::TwoWorkers);
    register_follows_a_running_worker(dir, &reference.url, &streamed.url, layout);
}

#[test]
fn a_household_enrolled_while_a_kafka_worker_runs_links_its_waiting_records() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let reference = format!("sqlite://{}", dir.join("reference.db").display());
    let streamed = format!("sqlite://{}", dir.join("streamed.db").display());
    register_follows_a_running_worker(dir, &reference, &streamed, Layout::Kafka);
}
