//! End to end on PostgreSQL: the same generated data through `doudi import` + `doudi run` on a
//! fresh PostgreSQL database and on SQLite gives the same `status`, and `audit verify` passes.
//! Needs `DOUDI_TEST_POSTGRES_URL` (e.g. `postgres://postgres@127.0.0.1:5432/test`); without it
//! the test prints `skipped: DOUDI_TEST_POSTGRES_URL not set` and passes.

mod common;

use common::{doudi, ok, PgDatabase};
use std::path::Path;

use serde_json::Value;

fn json(dir: &Path, args: &[&str]) -> Value {
    serde_json::from_str(&ok(doudi(dir, args))).expect("json output")
}

/// Import and run the generated data into `db`; returns (status, warnings list, audit check).
fn import_and_run(dir: &Path, db: &str) -> (Value, Value, Value) {
    ok(doudi(dir, &["import", "data/register.jsonl", "--db", db]));
    ok(doudi(
        dir,
        &["run", "--feeds", "data/feeds", "--once", "--db", db],
    ));
    // A second run changes nothing (positions and event ids).
    ok(doudi(
        dir,
        &["run", "--feeds", "data/feeds", "--once", "--db", db],
    ));
    (
        json(dir, &["status", "--json", "--db", db]),
        json(
            dir,
            &[
                "warnings", "list", "--limit", "100000", "--json", "--db", db,
            ],
        ),
        json(dir, &["audit", "verify", "--json", "--db", db]),
    )
}

#[test]
fn a_run_on_postgres_gives_the_same_status_as_on_sqlite_and_a_sound_audit_chain() {
    let Ok(server) = std::env::var("DOUDI_TEST_POSTGRES_URL") else {
        println!("skipped: DOUDI_TEST_POSTGRES_URL not set");
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    ok(doudi(
        dir,
        &[
            "gen",
            "--households",
            "300",
            "--seed",
            "11",
            "--out",
            "data",
            "--start",
            "2025-01-01",
        ],
    ));
    let sqlite = format!("sqlite://{}", dir.join("doudi.db").display());
    let (lite_status, lite_warnings, lite_audit) = import_and_run(dir, &sqlite);

    let pg = PgDatabase::create(&server, "e2e");
    let (pg_status, pg_warnings, pg_audit) = import_and_run(dir, &pg.url);

    assert!(
        lite_status["accepted"].as_i64().unwrap_or(0) > 0,
        "the data set produced events: {lite_status}"
    );
    assert_eq!(pg_status, lite_status, "status on PostgreSQL and on SQLite");
    let levels = |w: &Value| -> Vec<(String, String, i64)> {
        let mut v: Vec<_> = w
            .as_array()
            .expect("warnings array")
            .iter()
            .map(|w| {
                (
                    w["household_id"].as_str().unwrap_or_default().to_string(),
                    w["level"].as_str().unwrap_or_default().to_string(),
                    w["score"].as_i64().unwrap_or_default(),
                )
            })
            .collect();
        v.sort();
        v
    };
    assert_eq!(levels(&pg_warnings), levels(&lite_warnings));
    assert_eq!(pg_audit["first_broken"], Value::Null, "{pg_audit}");
    assert_eq!(lite_audit["first_broken"], Value::Null, "{lite_audit}");
    assert_eq!(pg_audit["records"], lite_audit["records"]);

    // Two workers at once on one database, reading the same events: every event is applied once
    // (the other's copy is a duplicate), and the outcome is the single run's. The second reads
    // copies under other file names, so its positions are its own and it reads every record
    // whether or not the first has finished (with the same files, a worker that starts after the
    // other's last commit has nothing left to read).
    let shared = PgDatabase::create(&server, "e2e");
    ok(doudi(
        dir,
        &["import", "data/register.jsonl", "--db", &shared.url],
    ));
    for source in std::fs::read_dir(dir.join("data/feeds")).unwrap() {
        let source = source.unwrap().path();
        let copy = dir
            .join("data/feeds_copy")
            .join(source.file_name().unwrap());
        std::fs::create_dir_all(&copy).unwrap();
        for file in std::fs::read_dir(&source).unwrap() {
            let file = file.unwrap().path();
            let name = file.file_name().unwrap().to_string_lossy().into_owned();
            std::fs::copy(&file, copy.join(format!("copy-{name}"))).unwrap();
        }
    }
    let workers: Vec<_> = ["data/feeds", "data/feeds_copy"]
        .into_iter()
        .map(|feeds| {
            let dir = dir.to_path_buf();
            let url = shared.url.clone();
            std::thread::spawn(move || {
                ok(doudi(
                    &dir,
                    &["run", "--feeds", feeds, "--once", "--db", &url],
                ))
            })
        })
        .collect();
    for w in workers {
        w.join().expect("worker");
    }
    let mut both = json(dir, &["status", "--json", "--db", &shared.url]);
    let received = both["received"].as_i64().unwrap_or(0);
    let duplicates = both["duplicates"].as_i64().unwrap_or(0);
    let accepted = lite_status["accepted"].as_i64().unwrap_or(0);
    // (A clean data set: a dead letter read by both would be kept twice.)
    assert_eq!(lite_status["dead_letters"], 0);
    assert_eq!((received, duplicates), (2 * accepted, accepted), "{both}");
    both["received"] = lite_status["received"].clone();
    both["duplicates"] = lite_status["duplicates"].clone();
    assert_eq!(both, lite_status);
    let both_warnings = json(
        dir,
        &[
            "warnings",
            "list",
            "--limit",
            "100000",
            "--json",
            "--db",
            &shared.url,
        ],
    );
    assert_eq!(levels(&both_warnings), levels(&lite_warnings));
    let audit = json(dir, &["audit", "verify", "--json", "--db", &shared.url]);
    assert_eq!(audit["first_broken"], Value::Null, "{audit}");
}
