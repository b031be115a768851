//! Issue 23, the audit trail's tail: deleting the last audit records and lowering the
//! `audit_records` counter passes `doudi audit verify` (the chain's anchor lives in the same
//! database), but not `doudi audit verify --checkpoint FILE` with a checkpoint signed by
//! `doudi audit checkpoint` under a key kept outside the database. On SQLite, and on PostgreSQL
//! when `DOUDI_TEST_POSTGRES_URL` is set (otherwise the PostgreSQL half prints a `skipped:` line).

mod common;

use std::path::Path;

use common::{doudi_env, exits, ok, refused, PgDatabase};
use serde_json::Value;

/// Run raw SQL on the database (to tamper with it).
fn tamper(db: &str, sql: &str) {
    let (db, sql) = (db.to_string(), sql.to_string());
    common::on_own_thread(move || async move {
        if db.starts_with("sqlite:") {
            let pool = sqlx::SqlitePool::connect(&db).await.expect("sqlite");
            sqlx::raw_sql(&sql).execute(&pool).await.expect("sql");
            pool.close().await;
        } else {
            let pool = sqlx::PgPool::connect(&db).await.expect("postgres");
            sqlx::raw_sql(&sql).execute(&pool).await.expect("sql");
            pool.close().await;
        }
    });
}

fn the_tail_cut_is_caught_with_a_checkpoint(dir: &Path, db: &str) {
    let key = dir.join("checkpoint.key");
    std::fs::write(&key, "a key kept away from the database\n").expect("key");
    let key = key.to_str().expect("UTF-8 path");
    let with_key = [("DOUDI_AUDIT__CHECKPOINT_KEY_FILE", key)];
    // Some audited actions: tokens created (and one revoked).
    for region in ["341502001", "341502002", "341503001", "341503002"] {
        ok(doudi_env(
            dir,
            &[
                "tokens", "create", "--role", "auditor", "--region", region, "--db", db,
            ],
            &[],
        ));
    }
    ok(doudi_env(dir, &["tokens", "revoke", "1", "--db", db], &[]));
    // Without the key: refused before the database is read, saying where the key goes.
    let out = doudi_env(dir, &["audit", "checkpoint", "--db", db], &[]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("DOUDI_AUDIT__CHECKPOINT_KEY_FILE"), "{err}");
    // The checkpoint: the head's number and hash, signed.
    let line = ok(doudi_env(
        dir,
        &["audit", "checkpoint", "--db", db],
        &with_key,
    ));
    let cp: Value = serde_json::from_str(line.trim()).expect("one line of JSON");
    let seq = cp["seq"].as_i64().expect("seq");
    assert!(seq >= 5, "{cp}");
    assert_eq!(cp["hash"].as_str().map(str::len), Some(64), "{cp}");
    assert_eq!(cp["mac"].as_str().map(str::len), Some(64), "{cp}");
    assert!(
        !line.contains("a key kept away"),
        "the key is never printed"
    );
    let file = dir.join("checkpoint.json");
    std::fs::write(&file, &line).expect("checkpoint file");
    let file = file.to_str().expect("UTF-8 path");
    let verify = |env: &[(&str, &str)]| {
        doudi_env(
            dir,
            &["audit", "verify", "--checkpoint", file, "--db", db],
            env,
        )
    };
    let out = ok(verify(&with_key));
    assert!(out.contains("reaches the checkpoint"), "{out}");
    // More records after the checkpoint: still fine.
    ok(doudi_env(
        dir,
        &[
            "tokens", "create", "--role", "admin", "--region", "34", "--db", db,
        ],
        &[],
    ));
    ok(verify(&with_key));
    // Cut the tail (the two last records up to the checkpoint and everything after it) and lower
    // the counter: the chain alone is fooled …
    let keep = seq - 2;
    tamper(
        db,
        &format!(
            "DELETE FROM audit_log WHERE seq > {keep}; UPDATE counters SET value = {keep} WHERE name = 'audit_records';"
        ),
    );
    let plain = ok(doudi_env(dir, &["audit", "verify", "--db", db], &[]));
    assert!(plain.contains("intact"), "{plain}");
    // … the checkpoint is not.
    let out = verify(&with_key);
    let stdout = exits(out, 3);
    assert!(
        stdout.contains(&format!("the trail ends at record #{keep}"))
            && stdout.contains(&format!("saw record #{seq}"))
            && stdout.contains("deleted from the end"),
        "{stdout}"
    );
    let json = exits(
        doudi_env(
            dir,
            &[
                "audit",
                "verify",
                "--json",
                "--checkpoint",
                file,
                "--db",
                db,
            ],
            &with_key,
        ),
        3,
    );
    let v: Value = serde_json::from_str(&json).expect("json");
    assert!(v["first_broken"][1]
        .as_str()
        .is_some_and(|m| m.contains("deleted from the end")));
    // A checkpoint edited to hide the cut (a lower number) fails its signature.
    let mut edited = cp.clone();
    edited["seq"] = keep.into();
    std::fs::write(dir.join("edited.json"), edited.to_string()).expect("edited");
    let out = doudi_env(
        dir,
        &[
            "audit",
            "verify",
            "--checkpoint",
            dir.join("edited.json").to_str().expect("path"),
            "--db",
            db,
        ],
        &with_key,
    );
    assert_eq!(out.status.code(), Some(3));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("signature"), "{err}");
    // And another key cannot check (or forge) it.
    let other = dir.join("other.key");
    std::fs::write(&other, "another key").expect("key");
    let out = verify(&[(
        "DOUDI_AUDIT__CHECKPOINT_KEY_FILE",
        other.to_str().expect("path"),
    )]);
    assert_eq!(out.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&out.stderr).contains("signature"));
}

#[test]
fn a_cut_audit_tail_is_caught_with_a_checkpoint_on_sqlite() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let db = format!("sqlite://{}", tmp.path().join("doudi.db").display());
    the_tail_cut_is_caught_with_a_checkpoint(tmp.path(), &db);
}

#[test]
fn a_cut_audit_tail_is_caught_with_a_checkpoint_on_postgres() {
    let Some(server) = common::postgres_url() else {
        return;
    };
    let tmp = tempfile::tempdir().expect("temp dir");
    let pg = PgDatabase::create(&server, "checkpoint");
    the_tail_cut_is_caught_with_a_checkpoint(tmp.path(), &pg.url);
}

#[test]
fn the_command_line_bounds_a_silence_too() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let dir = tmp.path();
    let db = format!("sqlite://{}", dir.join("doudi.db").display());
    for (flag, value) in [
        ("--hours", "4294967295"),
        ("--hours", "8785"),
        ("--until", "9999-12-31T23:00:00-08:00"),
    ] {
        let err = refused(doudi_env(
            dir,
            &[
                "silences",
                "add",
                "--region",
                "341502001",
                flag,
                value,
                "--reason",
                "x",
                "--by",
                "chen",
                "--db",
                &db,
            ],
            &[],
        ));
        assert!(
            err.contains("at most a year") || err.contains("0001 to 9999"),
            "{flag} {value}: {err}"
        );
    }
}

#[test]
fn a_token_expiry_is_bounded_not_a_panic() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let dir = tmp.path();
    let db = format!("sqlite://{}", dir.join("doudi.db").display());
    let err = refused(doudi_env(
        dir,
        &[
            "tokens",
            "create",
            "--role",
            "auditor",
            "--region",
            "34",
            "--expires-in",
            "4294967295",
            "--db",
            &db,
        ],
        &[],
    ));
    assert!(
        err.contains("--expires-in") && err.contains("1..=3660"),
        "{err}"
    );
}
