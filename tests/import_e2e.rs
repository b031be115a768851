//! `doudi import` of the register a chunk at a time (`memory.import_households`): the same
//! register as an import in one piece, and a problem anywhere, even after many chunks were
//! written, still imports nothing.

mod common;

use std::path::Path;

use common::{doudi_env, gen, ok, refused, sqlite_url};
use serde_json::Value;
use sqlx::Row;

/// Households a chunk in these tests (the default is thousands).
const SMALL_CHUNK: [(&str, &str); 2] = [
    ("DOUDI_MEMORY__IMPORT_HOUSEHOLDS", "3"),
    ("DOUDI_LOG", "doudi_cli=debug"),
];

/// `doudi import FILE` into `db` with `env`.
fn import(dir: &Path, file: &str, db: &str, env: &[(&str, &str)]) -> std::process::Output {
    doudi_env(dir, &["import", file, "--db", db], env)
}

/// How many chunks the import wrote (its debug log).
fn chunks_written(out: &std::process::Output) -> usize {
    String::from_utf8_lossy(&out.stderr)
        .matches("register chunk written")
        .count()
}

/// What the register holds, in order: households (id, digest, active), members (id, household,
/// active), changes (version, household, change), history (household, change), imports, version.
async fn register_tables(db: &str) -> Vec<String> {
    let pool = sqlx::SqlitePool::connect(db).await.unwrap();
    let mut out = Vec::new();
    for sql in [
        "SELECT household_id || ' ' || digest || ' ' || active FROM households ORDER BY household_id",
        "SELECT member_id || ' ' || household_id || ' ' || active FROM members ORDER BY member_id",
        "SELECT version || ' ' || household_id || ' ' || change FROM register_changes ORDER BY household_id, version",
        "SELECT import_id || ' ' || household_id || ' ' || change FROM register_history ORDER BY household_id, import_id",
        "SELECT import_id || ' ' || added || ' ' || changed || ' ' || removed || ' ' || unchanged FROM register_imports ORDER BY import_id",
        "SELECT 'version ' || version FROM register_version",
    ] {
        for row in sqlx::query(sql).fetch_all(&pool).await.unwrap() {
            out.push(row.get::<String, _>(0));
        }
    }
    pool.close().await;
    out
}

/// The generated register's lines, as JSON.
fn register_lines(dir: &Path) -> Vec<Value> {
    std::fs::read_to_string(dir.join("data/register.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn write_lines(path: &Path, lines: &[Value]) {
    let text: Vec<String> = lines.iter().map(Value::to_string).collect();
    std::fs::write(path, text.join("\n") + "\n").unwrap();
}

/// The second file: the first household removed, every other one's address changed, a new one.
fn second_register(lines: &[Value]) -> Vec<Value> {
    let mut second: Vec<Value> = lines[1..].to_vec();
    for (i, h) in second.iter_mut().enumerate() {
        h["address"] = Value::from(format!("新地址 {i} 号"));
    }
    let mut added = lines[0].clone();
    added["household_id"] = Value::from("H-NEW-1");
    for m in added["members"].as_array_mut().unwrap() {
        let id = format!("{}-new", m["member_id"].as_str().unwrap());
        m["member_id"] = Value::from(id);
    }
    second.push(added);
    second
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_register_imported_a_few_households_at_a_time_is_the_one_imported_whole() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    gen(dir, "40", "5", "data", &["--start", "2025-01-01"]);
    let lines = register_lines(dir);
    assert_eq!(lines.len(), 40);
    write_lines(&dir.join("second.jsonl"), &second_register(&lines));
    let (whole, chunked) = (sqlite_url(dir, "whole.db"), sqlite_url(dir, "chunked.db"));

    let first_whole = ok(import(dir, "data/register.jsonl", &whole, &[]));
    let out = import(dir, "data/register.jsonl", &chunked, &SMALL_CHUNK);
    assert_eq!(chunks_written(&out), 14, "40 households 3 at a time");
    assert_eq!(ok(out), first_whole);
    assert!(
        first_whole.contains("imported 40 households"),
        "{first_whole}"
    );

    let second_whole = ok(import(dir, "second.jsonl", &whole, &[]));
    let out = import(dir, "second.jsonl", &chunked, &SMALL_CHUNK);
    assert_eq!(chunks_written(&out), 14);
    let second_chunked = ok(out);
    assert!(
        second_chunked.contains("1 added, 39 changed, 0 restored, 1 removed, 0 unchanged"),
        "{second_chunked}"
    );
    assert_eq!(
        second_chunked.replace("chunked", "whole"),
        second_whole.replace("chunked", "whole")
    );
    // The removed household comes back: restored, and the others unchanged.
    let out = import(dir, "data/register.jsonl", &chunked, &SMALL_CHUNK);
    let third = ok(out);
    assert!(
        third.contains("0 added, 39 changed, 1 restored, 1 removed, 0 unchanged"),
        "{third}"
    );
    ok(import(dir, "data/register.jsonl", &whole, &[]));
    assert_eq!(
        register_tables(&chunked).await,
        register_tables(&whole).await
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_problem_on_the_last_line_imports_nothing_though_chunks_before_it_were_written() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    gen(dir, "40", "6", "data", &["--start", "2025-01-01"]);
    let db = sqlite_url(dir, "doudi.db");
    ok(import(dir, "data/register.jsonl", &db, &[]));
    let before = register_tables(&db).await;
    let lines = register_lines(dir);
    let mut second = second_register(&lines);

    // A household listed twice, on the last line: every chunk before it was written, then
    // rolled back.
    let mut twice = second[5].clone();
    twice["address"] = Value::from("又一个地址");
    second.push(twice);
    let last = second.len();
    write_lines(&dir.join("bad.jsonl"), &second);
    let out = import(dir, "bad.jsonl", &db, &SMALL_CHUNK);
    assert_eq!(
        chunks_written(&out),
        40 / 3,
        "the chunks before the last line"
    );
    let err = refused(out);
    let id = second[5]["household_id"].as_str().unwrap();
    assert!(
        err.contains(&format!(
            "bad.jsonl:line {last}: household {id} appears twice in the file"
        )),
        "{err}"
    );
    assert!(
        err.contains("has 1 problem(s); nothing was imported"),
        "{err}"
    );
    assert_eq!(register_tables(&db).await, before);

    // A member of another household on the last line, and a broken line in the middle: both
    // listed, with their line numbers.
    second.pop();
    let mut stray = lines[7].clone();
    stray["household_id"] = Value::from("H-STRAY");
    let member = stray["members"][0]["member_id"]
        .as_str()
        .unwrap()
        .to_string();
    stray["members"] = Value::from(vec![stray["members"][0].clone()]);
    second.push(stray);
    let mut text: Vec<String> = second.iter().map(Value::to_string).collect();
    text[20] = "{\"household_id\": 5}".into();
    std::fs::write(dir.join("bad.jsonl"), text.join("\n")).unwrap();
    let out = import(dir, "bad.jsonl", &db, &SMALL_CHUNK);
    assert_eq!(chunks_written(&out), 20 / 3);
    let err = refused(out);
    assert!(err.contains("has 2 problem(s)"), "{err}");
    assert!(err.contains("bad.jsonl:line 21: "), "{err}");
    assert!(
        err.contains(&format!(
            "bad.jsonl:line {}: member {member} also appears in another household of the file",
            text.len()
        )),
        "{err}"
    );
    assert_eq!(register_tables(&db).await, before);

    // A problem in the first chunk: the database is never written (nor created).
    let fresh = sqlite_url(dir, "fresh.db");
    let out = import(dir, "bad.jsonl", &fresh, &[]);
    assert_eq!(chunks_written(&out), 0);
    refused(out);
    assert!(!dir.join("fresh.db").exists());
}
