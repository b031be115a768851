//! A Kafka worker killed (SIGKILL) at several random moments while consuming 100,000 events, and
//! restarted each time, ends with the same counts, warnings and assessments as an uninterrupted
//! run into a fresh store: the database holds the offsets, committed with each batch's effects.
//! On SQLite always; on PostgreSQL too when DOUDI_TEST_POSTGRES_URL is set.

mod common;
#[path = "common/kafka.rs"]
mod kafka;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use kafka::*;

/// Households and months giving about 100,000 feed events (the hot crates are optimised in test
/// builds too: see the workspace's `[profile.dev.package]`).
const HOUSEHOLDS: &str = "10800";
const MONTHS: &str = "36";
const AT_LEAST: u64 = 100_000;

/// Batches small enough that a kill lands mid-stream many times over.
const BATCH: (&str, &str) = ("DOUDI_LIMITS__BATCH_SIZE", "2000");

/// What must be equal between runs: per household, its warnings (status, level, score) and its
/// final assessment (score, level); and how many assessments were made.
type Outcome = (
    BTreeMap<String, Vec<(String, String, i64)>>,
    BTreeMap<String, (i64, String)>,
    i64,
);

/// The same queries on either backend's pool.
macro_rules! outcome_of {
    ($pool:expr) => {{
    use sqlx::Row;
    let pool = &$pool;
    let mut warnings: BTreeMap<String, Vec<(String, String, i64)>> = BTreeMap::new();
    for r in sqlx::query(
        "SELECT household_id, status, level, score FROM warnings ORDER BY household_id, warning_id",
    )
    .fetch_all(pool)
    .await
    .unwrap()
    {
        warnings
            .entry(r.get(0))
            .or_default()
            .push((r.get(1), r.get(2), r.get(3)));
    }
    let mut last = BTreeMap::new();
    for r in sqlx::query(
        "SELECT a.household_id, a.score, a.level FROM assessments a
             JOIN (SELECT MAX(seq) AS seq FROM assessments GROUP BY household_id) m ON m.seq = a.seq",
    )
    .fetch_all(pool)
    .await
    .unwrap()
    {
        last.insert(r.get::<String, _>(0), (r.get::<i64, _>(1), r.get::<String, _>(2)));
    }
    let n: i64 = sqlx::query("SELECT COUNT(*) FROM assessments")
        .fetch_one(pool)
        .await
        .unwrap()
        .get(0);
    (warnings, last, n)
    }};
}

async fn outcome(db: &str) -> Outcome {
    common::on_pool!(db, |pool| outcome_of!(pool))
}

/// Households whose value differs between the uninterrupted and the killed run, described.
fn differences<V: PartialEq + std::fmt::Debug>(
    a: &BTreeMap<String, V>,
    b: &BTreeMap<String, V>,
) -> Vec<String> {
    let mut keys: Vec<&String> = a.keys().chain(b.keys()).collect();
    keys.sort();
    keys.dedup();
    keys.into_iter()
        .filter(|h| a.get(*h) != b.get(*h))
        .map(|h| format!("{h}: {:?} uninterrupted, {:?} killed", a.get(h), b.get(h)))
        .collect()
}

fn crash_run(dir: &Path, broker: &Broker, reference: &str, killed: &str, total: u64) {
    // Reference: one uninterrupted run.
    let mut w = worker(
        dir,
        &broker.bootstrap,
        reference,
        &[("DOUDI_KAFKA__GROUP_ID", "reference"), BATCH],
    );
    let expected = wait_received(dir, reference, total, Duration::from_secs(600));
    terminate(&w);
    assert!(w.wait().unwrap().success(), "{}", logs(dir));
    assert_eq!(expected["received"], total, "{}", logs(dir));

    // Killed at least five times at random moments, restarted each time.
    let env = [("DOUDI_KAFKA__GROUP_ID", "killed"), BATCH];
    let mut seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos() as u64
        | 1;
    let mut random = move |below: u64| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed % below
    };
    let mut kills = 0;
    let mut seen = Vec::new();
    while kills < 5 {
        let mut w = worker(dir, &broker.bootstrap, killed, &env);
        let before = status(dir, killed)["received"].as_u64().unwrap();
        // Wait for fresh progress, then kill at a random moment of the following batches.
        let start = Instant::now();
        while status(dir, killed)["received"].as_u64().unwrap() == before
            && start.elapsed() < Duration::from_secs(60)
        {
            std::thread::sleep(Duration::from_millis(50));
        }
        std::thread::sleep(Duration::from_millis(random(1000)));
        w.kill().unwrap(); // SIGKILL: no chance to drain or commit
        w.wait().unwrap();
        kills += 1;
        let now = status(dir, killed)["received"].as_u64().unwrap();
        seen.push(now);
        assert!(
            now < total,
            "killed too late to prove anything: {seen:?} of {total}"
        );
    }
    let mut w = worker(dir, &broker.bootstrap, killed, &env);
    let got = wait_received(dir, killed, total, Duration::from_secs(600));
    terminate(&w);
    assert!(w.wait().unwrap().success(), "{}", logs(dir));
    assert!(seen.windows(2).all(|w| w[0] <= w[1]), "{seen:?}");
    assert_eq!(got["duplicates"], 0, "nothing applied twice ({seen:?})");
    // The worker applies records in event-time order across its partitions, and resumes that
    // order from the offsets it committed: the killed run is the uninterrupted one.
    assert_eq!(got, expected, "same counts after {kills} kills at {seen:?}");

    let rt = tokio::runtime::Runtime::new().unwrap();
    let (a, b) = rt.block_on(async { (outcome(reference).await, outcome(killed).await) });
    assert_eq!(a.2, b.2, "as many assessments");
    assert!(!a.0.is_empty(), "the feeds raise warnings");
    let differ = |what: &str, x: Vec<String>| {
        assert!(
            x.is_empty(),
            "{} households differ in their {what} (first ten: {:?}); kills at {seen:?}\n{}",
            x.len(),
            &x[..x.len().min(10)],
            logs(dir)
        )
    };
    differ("final assessment", differences(&a.1, &b.1));
    differ("warnings", differences(&a.0, &b.0));
    // No warning twice: at most one per household and triggering event.
    for (household, ws) in &b.0 {
        let open = ws.iter().filter(|w| w.0 == "open").count();
        assert!(open <= 1, "{household} has {open} open warnings");
    }
}

/// A year of `seed` generated, imported into `reference` and `killed`, and published; then
/// [`crash_run`].
fn killed_at_random(dir: &Path, seed: &str, reference: &str, killed: &str) {
    common::gen(
        dir,
        HOUSEHOLDS,
        seed,
        "data",
        &["--months", MONTHS, "--start", "2024-01-01"],
    );
    let total = gen_and_import(dir, HOUSEHOLDS, seed, reference);
    import(dir, killed);
    assert!(total >= AT_LEAST, "at least {AT_LEAST} events: {total}");
    // Partitions small enough for the mock broker, which keeps about 5 MB of each.
    let broker = Broker::start(dir, 16);
    produce_all(dir, &broker.bootstrap);
    crash_run(dir, &broker, reference, killed, total);
}

#[test]
fn a_worker_killed_at_random_moments_ends_as_an_uninterrupted_run_on_sqlite() {
    let (tmp, [reference, killed]) = common::sqlite_case(["ref.db", "killed.db"]);
    killed_at_random(tmp.path(), "11", &reference, &killed);
}

#[test]
fn a_worker_killed_at_random_moments_ends_as_an_uninterrupted_run_on_postgres() {
    let Some((tmp, [reference, killed])) =
        common::postgres_case(["kafka_crash_ref", "kafka_crash_killed"])
    else {
        return;
    };
    killed_at_random(tmp.path(), "12", &reference, &killed);
}
