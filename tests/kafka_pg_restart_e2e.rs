//! PostgreSQL stopped under a running Kafka worker with records still coming, then started again:
//! the worker waits, retries with backoff (counting `doudi_db_errors_total`), resumes, and loses
//! nothing.
//!
//! Only when DOUDI_TEST_POSTGRES_URL and DOUDI_TEST_PG_RESTART=1 are both set: restarting the
//! server would break any other PostgreSQL test running at the time, so this file holds this one
//! test alone (cargo runs test binaries one at a time).

mod common;
#[path = "common/kafka.rs"]
mod kafka;

use std::process::Command;
use std::time::{Duration, Instant};

use kafka::*;

#[test]
fn the_worker_rides_out_a_postgres_restart_and_loses_nothing() {
    let (Ok(base), Ok("1")) = (
        std::env::var("DOUDI_TEST_POSTGRES_URL"),
        std::env::var("DOUDI_TEST_PG_RESTART").as_deref(),
    ) else {
        eprintln!(
            "skipped: set DOUDI_TEST_POSTGRES_URL and DOUDI_TEST_PG_RESTART=1 to restart PostgreSQL under a worker"
        );
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let db = fresh_database(&base, "pg_restart");
    let total = gen_and_import(dir, "1500", "23", &db);
    let broker = Broker::start(dir, 4);
    // The first half of the feeds now; the second while the server is down, so that the worker
    // has batches to apply then however fast it read the first half.
    produce_half(dir, &broker.bootstrap, 0);
    let addr = free_addr();
    let mut w = {
        let mut c = Command::new(env!("CARGO_BIN_EXE_doudi"));
        c.current_dir(dir)
            .args([
                "run",
                "--brokers",
                &broker.bootstrap,
                "--metrics-addr",
                &addr,
                "--db",
                &db,
            ])
            .env("DOUDI_LOG", "warn")
            .env("DOUDI_LIMITS__BATCH_SIZE", "100")
            .env("DOUDI_KAFKA__SESSION_TIMEOUT_MS", "3000")
            .stdout(std::process::Stdio::null())
            .stderr(std::fs::File::create(dir.join("worker-pg.log")).unwrap());
        Guard(Some(c.spawn().unwrap()))
    };
    let s = wait_received(dir, &db, 1, Duration::from_secs(60));
    assert!(s["received"].as_u64().unwrap() > 0, "{}", logs(dir));

    let cluster = std::fs::read_dir("/etc/postgresql")
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .file_name()
        .to_string_lossy()
        .into_owned();
    let pg = |action: &str| {
        let done = Command::new("pg_ctlcluster")
            .args(["--skip-systemctl-redirect", &cluster, "main", action])
            .status()
            .unwrap();
        assert!(done.success(), "pg_ctlcluster {action} failed");
    };
    pg("stop");
    // Started again whatever happens below: the other tests need the server.
    struct StartAgain<F: Fn(&str)>(F);
    impl<F: Fn(&str)> Drop for StartAgain<F> {
        fn drop(&mut self) {
            (self.0)("start");
        }
    }
    let server = StartAgain(pg);
    produce_half(dir, &broker.bootstrap, 1);
    // The worker tries a batch against the stopped server, fails, counts it and retries.
    let down = Instant::now();
    let mut m = scrape_metrics(&addr);
    while !m.contains("doudi_db_errors_total{operation=\"batch\"}")
        && down.elapsed() < Duration::from_secs(60)
    {
        std::thread::sleep(Duration::from_millis(200));
        m = scrape_metrics(&addr);
    }
    assert!(
        m.contains("doudi_db_errors_total{operation=\"batch\"}"),
        "the failed batches are counted: {m}\n{}",
        logs(dir)
    );
    assert!(
        w.try_wait().unwrap().is_none(),
        "the worker must wait, not exit: {}",
        logs(dir)
    );
    drop(server);

    let start = Instant::now();
    let s = wait_received(dir, &db, total, Duration::from_secs(300));
    assert_eq!(s["received"], total, "{}", logs(dir));
    assert_eq!(s["duplicates"], 0);
    terminate(&w);
    assert!(w.wait().unwrap().success(), "{}", logs(dir));
    eprintln!(
        "resumed and finished {:?} after the restart",
        start.elapsed()
    );
}
