//! End to end on PostgreSQL: the same generated data through `doudi import` + `doudi run` on a
//! fresh PostgreSQL database and on SQLite gives the same `status`, and `audit verify` passes.
//! Needs `DOUDI_TEST_POSTGRES_URL` (e.g. `postgres://postgres@127.0.0.1:5432/test`); without it
//! the test prints `skipped: DOUDI_TEST_POSTGRES_URL not set` and passes.

mod common;

use common::{doudi, ok};
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

/// A new database on the test server, dropped when this is dropped.
struct PgDatabase {
    server: String,
    name: String,
    url: String,
}

impl PgDatabase {
    fn create(server: &str) -> PgDatabase {
        let name = format!(
            "doudi_e2e_{}_{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.subsec_nanos())
                .unwrap_or(0)
        );
        admin(server, &format!("CREATE DATABASE {name}"));
        let base = server.rsplit_once('/').map(|(b, _)| b).unwrap_or(server);
        PgDatabase {
            server: server.to_string(),
            url: format!("{base}/{name}"),
            name,
        }
    }
}

impl Drop for PgDatabase {
    fn drop(&mut self) {
        admin(
            &self.server,
            &format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name),
        );
    }
}

fn admin(server: &str, sql: &str) {
    let server = server.to_string();
    let sql = sql.to_string();
    // Its own runtime, on its own thread (also usable from Drop).
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(async {
            use sqlx::Connection;
            let mut c = sqlx::PgConnection::connect(&server)
                .await
                .expect("connect to DOUDI_TEST_POSTGRES_URL");
            sqlx::raw_sql(&sql)
                .execute(&mut c)
                .await
                .expect("admin sql");
            let _ = c.close().await;
        })
    })
    .join()
    .expect("admin thread");
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

    let pg = PgDatabase::create(&server);
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
}
