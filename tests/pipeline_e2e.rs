//! End-to-end tests of the `doudi` binary on the embedded default (SQLite, file feeds): bad input
//! loses nothing, runs are idempotent, and a killed run resumes to the same final state.

mod common;

use common::{dead_letters, doudi, doudi_env, gen, ok, quiet_command, replay, run_once, status};
use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::Value;

/// The limit that lets the large record of the replay test through.
const LARGER_LIMIT: [(&str, &str); 1] = [("DOUDI_LIMITS__MAX_EVENT_BYTES", "262144")];

/// Generate a small clean data set in a new temporary folder and import it; returns the folder
/// and the database URL.
fn setup(households: &str, seed: &str) -> (tempfile::TempDir, String) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    gen(dir, households, seed, "data", &["--start", "2025-01-01"]);
    let db = format!("sqlite://{}", dir.join("doudi.db").display());
    ok(doudi(dir, &["import", "data/register.jsonl", "--db", &db]));
    (tmp, db)
}

fn count_lines(dir: &Path) -> u64 {
    let mut n = 0;
    for source in std::fs::read_dir(dir).unwrap() {
        for f in std::fs::read_dir(source.unwrap().path()).unwrap() {
            let text = std::fs::read(f.unwrap().path()).unwrap();
            n += text
                .split(|b| *b == b'\n')
                .filter(|l| !l.is_empty())
                .count() as u64;
        }
    }
    n
}

#[test]
fn bad_lines_land_in_dead_letters_with_reason_and_position_and_the_rest_is_processed() {
    let (tmp, db) = setup("60", "3");
    let dir = tmp.path();
    let good_lines = count_lines(&dir.join("data/feeds"));

    let valid = r#"{"event_id":"bad-base","source":"health_insurance","kind":"settlement","occurred_at":"2025-03-01T08:00:00+08:00","subject":{},"data":{"setting":"outpatient","total_cost_fen":1000,"fund_paid_fen":500,"out_of_pocket_fen":500,"settled_on":"2025-03-01"}}"#;
    let deep = format!(
        r#"{{"event_id":"deep","source":"health_insurance","kind":"settlement","occurred_at":"2025-03-01T08:00:00+08:00","data":{}{}}}"#,
        "[".repeat(200),
        "]".repeat(200)
    );
    let huge = valid.replace(
        "\"subject\":{}",
        &format!("\"subject\":{{\"name\":\"{}\"}}", "长".repeat(30_000)),
    );
    let mut bad: Vec<(Vec<u8>, &str)> = vec![
        (b"this is not json".to_vec(), "not_json"),
        (b"[1, 2, 3]".to_vec(), "not_object"),
        (
            valid.replace(r#""event_id":"bad-base","#, "").into_bytes(),
            "missing_field",
        ),
        (
            valid
                .replace(r#""source":"health_insurance""#, r#""source":"tax_bureau""#)
                .into_bytes(),
            "unknown_source",
        ),
        (
            valid
                .replace(r#""kind":"settlement""#, r#""kind":"lottery_win""#)
                .into_bytes(),
            "unknown_kind",
        ),
        (
            valid
                .replace(r#""total_cost_fen":1000"#, r#""total_cost_fen":"a lot""#)
                .into_bytes(),
            "invalid_field",
        ),
        (
            valid
                .replace(r#""out_of_pocket_fen":500"#, r#""out_of_pocket_fen":-500"#)
                .into_bytes(),
            "invalid_field",
        ),
        (
            valid
                .replace(
                    r#""settled_on":"2025-03-01""#,
                    r#""settled_on":"2025-02-30""#,
                )
                .into_bytes(),
            "invalid_field",
        ),
        (deep.into_bytes(), "too_deep"),
        (huge.into_bytes(), "too_large"),
        (
            br#"{"event_id":"misrouted","source":"civil_registry","kind":"death","occurred_at":"2025-03-01T08:00:00+08:00","data":{"died_on":"2025-02-28"}}"#
                .to_vec(),
            "source_mismatch",
        ),
    ];
    let mut utf8 = valid.as_bytes().to_vec();
    utf8.splice(20..20, [0xff, 0xfe]);
    bad.push((utf8, "invalid_utf8"));
    let mut file = Vec::new();
    for (line, _) in &bad {
        file.extend_from_slice(line);
        file.push(b'\n');
    }
    std::fs::write(dir.join("data/feeds/health_insurance/zz-bad.jsonl"), &file).unwrap();

    let out = run_once(dir, "data/feeds", &db);
    assert!(out.contains("dead letters"), "{out}");
    let s = status(dir, &db);
    assert_eq!(s["dead_letters"], bad.len() as u64);
    assert_eq!(s["received"], good_lines + bad.len() as u64);
    assert_eq!(s["accepted"], good_lines, "every good line is processed");
    assert_eq!(s["duplicates"], 0);
    assert_eq!(
        s["linked"].as_u64().unwrap()
            + s["review"].as_u64().unwrap()
            + s["unmatched"].as_u64().unwrap(),
        good_lines
    );

    let list = dead_letters(dir, &db);
    assert_eq!(list.len(), bad.len());
    for (i, (_, code)) in bad.iter().enumerate() {
        let d = list
            .iter()
            .find(|d| d["line"] == (i as u64 + 1))
            .unwrap_or_else(|| panic!("no dead letter for line {}", i + 1));
        assert_eq!(d["stream"], "health_insurance/zz-bad.jsonl");
        assert_eq!(d["reason_code"], *code, "line {}: {}", i + 1, d["reason"]);
        assert!(!d["reason"].as_str().unwrap().is_empty());
    }
    let negative = list.iter().find(|d| d["line"] == 7).unwrap();
    assert!(negative["reason"]
        .as_str()
        .unwrap()
        .contains("out_of_pocket_fen"));
    let too_large = list
        .iter()
        .find(|d| d["reason_code"] == "too_large")
        .unwrap();
    assert!(
        too_large["raw_len"].as_u64().unwrap() > 65536,
        "the full length is kept"
    );
}

#[test]
fn a_second_run_applies_nothing_and_a_copied_file_counts_only_duplicates() {
    let (tmp, db) = setup("80", "5");
    let dir = tmp.path();
    run_once(dir, "data/feeds", &db);
    let first = status(dir, &db);
    assert!(first["accepted"].as_u64().unwrap() > 0);
    assert!(
        first["warnings_total"].as_u64().unwrap() > 0,
        "hardship scenarios raise warnings"
    );

    let again: Value = serde_json::from_str(&ok(doudi(
        dir,
        &[
            "run",
            "--feeds",
            "data/feeds",
            "--once",
            "--json",
            "--db",
            &db,
        ],
    )))
    .unwrap();
    assert_eq!(
        again["received"], 0,
        "positions are stored: nothing is read twice"
    );
    assert_eq!(status(dir, &db), first);

    // The same events under a new file name: every one a duplicate, no new effect.
    let src = dir.join("data/feeds/civil_registry");
    let original = std::fs::read_dir(&src)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let lines = std::fs::read_to_string(&original).unwrap().lines().count() as u64;
    std::fs::copy(&original, src.join("zz-resent.jsonl")).unwrap();
    run_once(dir, "data/feeds", &db);
    let after = status(dir, &db);
    assert_eq!(after["duplicates"], lines);
    assert_eq!(
        after["received"],
        first["received"].as_u64().unwrap() + lines
    );
    for key in [
        "accepted",
        "applied",
        "assessments",
        "warnings_total",
        "warnings_open",
        "linked",
        "unmatched",
    ] {
        assert_eq!(after[key], first[key], "{key} changed on a resend");
    }
}

#[test]
fn killing_the_run_at_any_moment_and_restarting_gives_the_same_final_state() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    gen(dir, "1500", "11", "data", &["--start", "2025-01-01"]);
    let env = [("DOUDI_LIMITS__BATCH_SIZE", "50")];

    // Reference: one uninterrupted run.
    let reference = format!("sqlite://{}", dir.join("ref.db").display());
    ok(doudi(
        dir,
        &["import", "data/register.jsonl", "--db", &reference],
    ));
    ok(doudi_env(
        dir,
        &["run", "--feeds", "data/feeds", "--once", "--db", &reference],
        &env,
    ));
    let expected = status(dir, &reference);
    let total = expected["received"].as_u64().unwrap();
    assert!(total > 1000, "enough records to kill mid-run: {total}");

    // Killed several times mid-run, then finished.
    let killed = format!("sqlite://{}", dir.join("killed.db").display());
    let run_killed = ["run", "--feeds", "data/feeds", "--once", "--db", &killed];
    ok(doudi(
        dir,
        &["import", "data/register.jsonl", "--db", &killed],
    ));
    // Each run is killed (SIGKILL) a little after it has committed something new: at a moment
    // that falls anywhere in a batch (the jitter), never before startup is over.
    let mut kills = 0;
    let mut seen_progress = Vec::new();
    let mut last = 0u64;
    let mut jitter = 17u64;
    for _ in 0..5 {
        let mut child = quiet_command(dir, &run_killed).envs(env).spawn().unwrap();
        let start = Instant::now();
        let mut finished = false;
        loop {
            if child.try_wait().unwrap().is_some() {
                finished = true;
                break;
            }
            let received = status(dir, &killed)["received"].as_u64().unwrap();
            if received > last || start.elapsed() > Duration::from_secs(60) {
                jitter = (jitter * 7 + 13) % 97;
                std::thread::sleep(Duration::from_millis(jitter));
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        if !finished && child.try_wait().unwrap().is_none() {
            child.kill().unwrap(); // SIGKILL: no chance to clean up
            kills += 1;
        }
        child.wait().unwrap();
        let s = status(dir, &killed);
        last = s["received"].as_u64().unwrap();
        seen_progress.push(last);
        if finished || last >= total {
            break;
        }
    }
    ok(doudi_env(dir, &run_killed, &env));
    let got = status(dir, &killed);
    assert!(
        kills >= 3,
        "killed only {kills} times: {seen_progress:?} of {total}"
    );
    assert!(
        seen_progress.iter().any(|&r| r > 0 && r < total),
        "at least one kill landed mid-run: {seen_progress:?} of {total}"
    );
    assert_eq!(got, expected, "progress at kills: {seen_progress:?}");
}

#[test]
fn reimporting_the_register_applies_additions_changes_and_removals() {
    let (tmp, db) = setup("30", "9");
    let dir = tmp.path();
    let text = std::fs::read_to_string(dir.join("data/register.jsonl")).unwrap();
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    // remove the first household, change the second's address, add a copy of the third under a new id
    lines.remove(0);
    let mut changed: Value = serde_json::from_str(&lines[0]).unwrap();
    changed["address"] = Value::from("新地址 1 号");
    lines[0] = changed.to_string();
    let mut added: Value = serde_json::from_str(&lines[1]).unwrap();
    added["household_id"] = Value::from("H-NEW-1");
    for m in added["members"].as_array_mut().unwrap() {
        let id = format!("{}-new", m["member_id"].as_str().unwrap());
        m["member_id"] = Value::from(id);
    }
    lines.push(added.to_string());
    let second = dir.join("register2.jsonl");
    std::fs::write(&second, lines.join("\n")).unwrap();
    let out = ok(doudi(
        dir,
        &["import", second.to_str().unwrap(), "--db", &db],
    ));
    assert!(
        out.contains("1 added, 1 changed, 0 restored, 1 removed, 28 unchanged"),
        "{out}"
    );
    assert_eq!(status(dir, &db)["households"], 30);

    // A bad line: nothing is imported, and the line is named.
    std::fs::write(&second, format!("{}\n{{\"household_id\": 5}}\n", lines[0])).unwrap();
    let out = doudi(dir, &["import", second.to_str().unwrap(), "--db", &db]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("line 2"), "{err}");
    assert_eq!(status(dir, &db)["households"], 30);
}

#[test]
fn configuration_errors_say_which_key_and_environment_overrides_apply() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    std::fs::write(dir.join("bad.toml"), "[limits]\nmax_event_byts = 10\n").unwrap();
    let out = doudi(dir, &["--config", "bad.toml", "status"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("max_event_byts"));

    let out = doudi_env(dir, &["config"], &[("DOUDI_LIMITS__BATCH_SIZE", "123")]);
    assert!(ok(out).contains("batch_size = 123"));
    let out = doudi_env(dir, &["config"], &[("DOUDI_LIMITS__BATCH_SIZE", "0")]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("batch_size"));
}

#[test]
fn dead_letters_replayed_after_a_fix_go_through_the_pipeline_once() {
    let (tmp, db) = setup("30", "5");
    let dir = tmp.path();
    // One member of the register, a valid event about them that is too large for the default
    // limit (a long free-text description), and a line that is not JSON at all.
    let register = std::fs::read_to_string(dir.join("data/register.jsonl")).unwrap();
    let h: Value = serde_json::from_str(register.lines().next().unwrap()).unwrap();
    let m = &h["members"][0];
    let big = serde_json::json!({
        "event_id": "YB-BIG-1", "source": "health_insurance", "kind": "serious_illness_diagnosed",
        "occurred_at": "2025-06-01T10:00:00+08:00",
        "subject": {"id_number": m["id_number"], "name": m["name"], "birth_date": m["birth_date"],
            "sex": m["sex"], "region_code": h["region_code"]},
        "data": {"diagnosis": "C34.9", "description": "肺".repeat(30_000), "diagnosed_on": "2025-06-01"}
    })
    .to_string();
    assert!(big.len() > 65_536);
    let feed = dir.join("data/feeds/health_insurance/zz-extra.jsonl");
    std::fs::write(&feed, format!("{big}\nnot json at all\n")).unwrap();
    run_once(dir, "data/feeds", &db);
    let before = status(dir, &db);
    assert_eq!(before["dead_letters"], 2);

    // Without a fix nothing passes.
    let out = replay(dir, &db, &["--feeds", "data/feeds"], &[]);
    assert!(
        out.contains("replayed 0") && out.contains("2 still refused"),
        "{out}"
    );

    // The fix: a larger limit. The large record (kept only in part) is read again from its file.
    let out = replay(
        dir,
        &db,
        &["--reason", "too_large", "--feeds", "data/feeds"],
        &LARGER_LIMIT,
    );
    assert!(
        out.contains("replayed 1") && out.contains("1 new events"),
        "{out}"
    );
    let after = status(dir, &db);
    assert_eq!(
        after["accepted"].as_i64(),
        before["accepted"].as_i64().map(|n| n + 1)
    );
    assert_eq!(
        after["applied"].as_i64(),
        before["applied"].as_i64().map(|n| n + 1)
    );
    assert_eq!(
        after["received"], before["received"],
        "a replay is not a new receipt"
    );
    let list = dead_letters(dir, &db);
    let replayed: Vec<&Value> = list
        .iter()
        .filter(|d| d["replayed_at"].is_string())
        .collect();
    assert_eq!(replayed.len(), 1);
    assert_eq!(replayed[0]["reason_code"], "too_large");

    // Again: nothing left of that reason; the other one stays refused.
    let out = replay(
        dir,
        &db,
        &["--reason", "too_large", "--feeds", "data/feeds"],
        &LARGER_LIMIT,
    );
    assert!(out.contains("no dead letters to replay"), "{out}");
    assert_eq!(status(dir, &db)["accepted"], after["accepted"]);
}

#[test]
fn peoples_commands_wait_for_the_running_pipeline_instead_of_failing() {
    let (tmp, db) = setup("1500", "21");
    let dir = tmp.path();
    ok(doudi(
        dir,
        &["officers", "import", "data/officers.jsonl", "--db", &db],
    ));
    let mut run = quiet_command(
        dir,
        &["run", "--feeds", "data/feeds", "--once", "--db", &db],
    )
    .env("DOUDI_LIMITS__BATCH_SIZE", "50")
    .spawn()
    .unwrap();
    // While batches commit, people read households (each read is audited: a write) and an
    // administrator re-imports the officer directory (a write).
    let mut rounds = 0;
    while run.try_wait().unwrap().is_none() && rounds < 20 {
        ok(doudi(
            dir,
            &["officers", "import", "data/officers.jsonl", "--db", &db],
        ));
        let out = doudi(dir, &["trace", "H00000001", "--db", &db]);
        assert!(
            out.status.success() || out.status.code() == Some(2),
            "trace failed while the pipeline ran: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        rounds += 1;
    }
    assert!(run.wait().unwrap().success());
    assert!(rounds > 0, "the commands ran while the pipeline did");
    let v: Value =
        serde_json::from_str(&ok(doudi(dir, &["audit", "verify", "--json", "--db", &db]))).unwrap();
    assert!(v["first_broken"].is_null(), "{v}");
}

#[test]
fn a_feed_file_nearly_all_invalid_stops_the_run_when_the_guard_is_set_and_nothing_is_lost() {
    let (tmp, db) = setup("20", "5");
    let dir = tmp.path();
    let good_lines = count_lines(&dir.join("data/feeds"));
    // A broken export: 150 lines, none of them an event.
    let broken: String = (0..150)
        .map(|i| format!("broken export line {i}\n"))
        .collect();
    std::fs::write(dir.join("data/feeds/employment/zz-broken.jsonl"), broken).unwrap();
    let run = ["run", "--feeds", "data/feeds", "--once", "--db", &db];

    // Over half of the file's last 100 records invalid: the run stops, saying which file and
    // which setting, instead of dead-lettering the whole export.
    let out = doudi_env(
        dir,
        &run,
        &[
            ("DOUDI_FEEDS__MAX_INVALID_RATIO", "0.5"),
            ("DOUDI_FEEDS__INVALID_WINDOW", "100"),
        ],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(stderr.contains("employment/zz-broken.jsonl"), "{stderr}");
    assert!(stderr.contains("feeds.max_invalid_ratio = 0.5"), "{stderr}");
    let s = status(dir, &db);
    assert!(s["dead_letters"].as_u64().unwrap() < 100, "{s}");

    // The default guard never stops: run again, every refused line is a dead letter and every
    // good one is applied, once.
    ok(doudi(dir, &run));
    let s = status(dir, &db);
    assert_eq!(s["dead_letters"], 150);
    assert_eq!(s["accepted"], good_lines);
    assert_eq!(s["duplicates"], 0);
}
