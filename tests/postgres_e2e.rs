//! End to end on PostgreSQL: the same generated data through `doudi import` + `doudi run` on a
//! fresh PostgreSQL database and on SQLite gives the same `status`, and `audit verify` passes.
//! Needs `DOUDI_TEST_POSTGRES_URL` (e.g. `postgres://postgres@127.0.0.1:5432/test`); without it
//! the test prints `skipped: DOUDI_TEST_POSTGRES_URL not set` and passes.

mod common;

use common::{doudi, gen, ok, PgDatabase};
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
    let Some((tmp, [pg, shared])) = common::postgres_case(["e2e", "e2e"]) else {
        return;
    };
    let dir = tmp.path();
    gen(dir, "300", "11", "data", &["--start", "2025-01-01"]);
    let sqlite = format!("sqlite://{}", dir.join("doudi.db").display());
    let (lite_status, lite_warnings, lite_audit) = import_and_run(dir, &sqlite);

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
    ok(doudi(
        dir,
        &["import", "data/register.jsonl", "--db", &shared.url],
    ));
    common::copy_feeds(dir);
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

/// Every household's timeline (facts in the order applied, as read back by `seq`) and open
/// warning (level, score), and the store's counts.
type State = (
    Vec<(String, Vec<(String, String)>)>,
    Vec<(String, doudi_model::Level, i64)>,
    doudi_store::Status,
);

async fn state(store: &doudi_store::Store, households: &[String]) -> State {
    let mut tx = store.begin().await.expect("begin");
    let mut timelines: Vec<_> = tx
        .facts_for(households)
        .await
        .expect("timelines")
        .into_iter()
        .map(|(h, facts)| {
            let ids = facts
                .into_iter()
                .map(|f| (f.source.code().to_string(), f.event_id))
                .collect();
            (h, ids)
        })
        .collect();
    timelines.sort();
    let mut warnings: Vec<_> = tx
        .open_warnings(households)
        .await
        .expect("open warnings")
        .into_values()
        .map(|w| (w.household_id, w.level, w.score))
        .collect();
    warnings.sort();
    drop(tx);
    (timelines, warnings, store.status().await.expect("status"))
}

/// The generated feeds as ingested records, merged by event time, in batches of `size`.
fn ingested_batches(feeds: &Path, size: usize) -> Vec<Vec<doudi_pipeline::Ingested>> {
    let limits = doudi_model::ParseLimits::default();
    let mut items: Vec<_> = common::feed_records(feeds)
        .into_iter()
        .map(|record| doudi_pipeline::ingest_record(record, &limits))
        .collect();
    items.sort_by_key(|i| i.result.as_ref().ok().map(|e| e.occurred_at));
    let mut batches = Vec::new();
    let mut items = items.into_iter().peekable();
    while items.peek().is_some() {
        batches.push(items.by_ref().take(size).collect());
    }
    batches
}

/// What the Kafka worker does on PostgreSQL under a backlog: the next batch is staged (its events
/// and link decisions written on a second connection) while the batch before it finishes. The
/// result must be that of the same batches applied one after the other: every household's
/// timeline in the same order, the same open warnings, the same counts. Midway the batch before a
/// staged one "fails": both are rolled back, the failed one applied again, the other staged again
/// after it (as the worker does), and the result must still be the same. Two records are
/// redelivered in the next batch, one across that failure.
#[test]
fn batches_staged_ahead_end_as_batches_applied_one_after_the_other() {
    let Some(server) = common::postgres_url() else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let (register, _) = common::generated_year(tmp.path(), 300, 5, 0.3);
    let households: Vec<String> = register.iter().map(|h| h.household_id.clone()).collect();
    let mut batches = ingested_batches(&tmp.path().join("feeds"), 100);
    assert!(batches.len() >= 8, "{} batches", batches.len());
    let fail_at = batches.len() / 2;
    // Redeliveries: a record of one batch again at the head of the next (the same event id, as
    // a Kafka record read again after a rebalance, or the same record in a new file). The batch
    // staged ahead then inserts an event that the batch before it, not yet committed, inserted
    // too: its staging waits on that row until the batch before commits (then counts a
    // duplicate) or rolls back (then stores it, is rolled back in turn and staged again). One
    // at a plain boundary, one where the batch before fails.
    for k in [1, fail_at - 1] {
        let item = batches[k]
            .iter()
            .find(|i| i.result.is_ok())
            .expect("a valid record");
        let mut record = item.record.clone();
        record.stream = format!("{}/redelivered-{k}.jsonl", record.source.code());
        let again = doudi_pipeline::ingest_record(record, &doudi_model::ParseLimits::default());
        batches[k + 1].insert(0, again);
    }
    let in_turn = PgDatabase::create(&server, "staged_in_turn");
    let ahead = PgDatabase::create(&server, "staged_ahead");
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (expected, got) = rt.block_on(async {
        let (store, engine) = common::open_with_register(&in_turn, &register).await;
        for b in &batches {
            doudi_pipeline::apply_batch(&store, &engine, b)
                .await
                .expect("apply");
        }
        let expected = state(&store, &households).await;
        store.close().await;

        let (store, engine) = common::open_with_register(&ahead, &register).await;
        let mut staged = doudi_pipeline::stage_batch(&store, &engine, &batches[0])
            .await
            .expect("stage");
        for (i, b) in batches.iter().enumerate().skip(1) {
            if i == fail_at {
                // The batch before `b` fails instead of committing while `b` is staged (whose
                // staging waits on the event both carry): both roll back; it is applied
                // afresh, then `b` is staged again.
                let (next, ()) =
                    tokio::join!(doudi_pipeline::stage_batch(&store, &engine, b), async {
                        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
                        drop(staged);
                    });
                drop(next.expect("stage ahead"));
                doudi_pipeline::apply_batch(&store, &engine, &batches[i - 1])
                    .await
                    .expect("apply afresh");
                staged = doudi_pipeline::stage_batch(&store, &engine, b)
                    .await
                    .expect("stage again");
                continue;
            }
            let (finished, next) = tokio::join!(
                staged.finish(&engine),
                doudi_pipeline::stage_batch(&store, &engine, b)
            );
            finished.expect("finish");
            staged = next.expect("stage ahead");
        }
        staged.finish(&engine).await.expect("finish the last");
        let got = state(&store, &households).await;
        store.close().await;
        (expected, got)
    });
    assert!(expected.0.iter().map(|(_, t)| t.len()).sum::<usize>() > 500);
    assert!(!expected.1.is_empty(), "some warnings open");
    assert_eq!(
        expected.2.duplicates, 2,
        "the two redeliveries counted as duplicates"
    );
    assert_eq!(expected.2, got.2, "counts");
    assert_eq!(expected.0, got.0, "timelines");
    assert_eq!(expected.1, got.1, "open warnings");
}
