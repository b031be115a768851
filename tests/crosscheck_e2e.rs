//! End-to-end: `doudi crosscheck` over generated snapshots finds exactly the planted findings,
//! routes them to officers, is idempotent over nights, closes findings no longer true with a note,
//! reports bad rows with file and line, and exits with a code a cron job can act on.

mod common;

use common::{doudi, exits, gen};
use std::collections::BTreeSet;
use std::path::Path;

use serde_json::Value;

fn night(dir: &Path, db: &str, snapshots: &str, code: i32) -> Value {
    serde_json::from_str(&exits(
        doudi(
            dir,
            &[
                "crosscheck",
                "--snapshots",
                snapshots,
                "--out",
                "report",
                "--json",
                "--db",
                db,
            ],
        ),
        code,
    ))
    .expect("summary json")
}

type Key = (String, String, Option<String>);

fn open_findings(dir: &Path, db: &str) -> Vec<Value> {
    let v: Value = serde_json::from_str(&exits(
        doudi(
            dir,
            &[
                "findings", "list", "--limit", "100000", "--json", "--db", db,
            ],
        ),
        0,
    ))
    .unwrap();
    v.as_array().unwrap().clone()
}

fn keys(findings: &[Value]) -> BTreeSet<Key> {
    findings
        .iter()
        .map(|f| {
            (
                f["check_code"].as_str().unwrap().to_string(),
                f["household_id"].as_str().unwrap().to_string(),
                f["member_id"].as_str().map(str::to_string),
            )
        })
        .collect()
}

#[test]
fn nights_find_exactly_the_planted_findings_once_and_close_only_what_clean_data_shows_gone() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let db = format!("sqlite://{}", dir.join("doudi.db").display());
    // Fixed dates (by default the feeds end this month): the snapshots describe the night of
    // 2026-11-01, which the later nights below are set against.
    gen(dir, "1500", "7", "data", &["--start", "2025-11-01"]);
    common::import_generated(dir, "data/", &db);

    // Night 1: exactly the planted findings, each routed to an officer.
    let s = night(dir, &db, "data/snapshots", 0);
    // Without --work-dir the night keeps its checkpoints beside the snapshots (as --help says),
    // one per snapshot file, so that an interrupted night resumes.
    let work = dir.join("data/snapshots/.doudi-work");
    let checkpoints = std::fs::read_dir(&work)
        .unwrap_or_else(|e| panic!("{}: {e}", work.display()))
        .filter_map(Result::ok)
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .ends_with(".checkpoint.json")
        })
        .count();
    assert!(
        checkpoints >= 7,
        "one checkpoint per snapshot file in {}, found {checkpoints}",
        work.display()
    );
    let truth: BTreeSet<Key> = common::read_jsonl(&dir.join("data/truth/findings.jsonl"))
        .iter()
        .map(|v| {
            (
                v["check"].as_str().unwrap().to_string(),
                v["household_id"].as_str().unwrap().to_string(),
                v["member_id"].as_str().map(str::to_string),
            )
        })
        .collect();
    assert!(truth.len() > 50, "the generator planted findings");
    let open = open_findings(dir, &db);
    assert_eq!(keys(&open), truth);
    assert_eq!(s["new"], truth.len());
    assert!(open.iter().all(|f| f["assigned_to"].is_string()));
    assert!(open.iter().all(|f| f["category"] == "eligibility_review"));
    for f in ["report.html", "findings.json", "findings.csv"] {
        assert!(dir.join("report").join(f).is_file(), "{f} written");
    }
    let html = std::fs::read_to_string(dir.join("report/report.html")).unwrap();
    let register = std::fs::read_to_string(dir.join("data/register.jsonl")).unwrap();
    let first: Value = serde_json::from_str(register.lines().next().unwrap()).unwrap();
    let id = first["members"][0]["id_number"].as_str().unwrap();
    assert!(!html.contains(id), "no full ID number in the report");

    // The register was read from the database and kept beside it for the next nights, readable
    // by its owner only.
    let register_file = dir.join("doudi.db-crosscheck-register");
    let meta = std::fs::metadata(&register_file).expect("the register file is kept");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(meta.permissions().mode() & 0o077, 0, "owner only");
    }
    assert!(meta.len() > 1000);

    // Night 2, same snapshots: nothing new, nothing closed, no duplicate; the register read from
    // the file.
    let (s, log) = night_logged(dir, &db);
    assert!(
        log.contains("register read from the register file"),
        "{log}"
    );
    assert_eq!(
        (s["new"].as_u64(), s["closed"].as_u64()),
        (Some(0), Some(0))
    );
    assert_eq!(s["still_open"], truth.len());
    let again = open_findings(dir, &db);
    assert_eq!(again.len(), truth.len());
    assert_eq!(
        again, open,
        "a re-run of the night changes no stored finding"
    );
    let report_before = std::fs::read(dir.join("report/findings.csv")).unwrap();

    // A damaged register file is never used: the night reads the database (same findings, same
    // report) and writes the file again; a file of another register neither.
    let mut bytes = std::fs::read(&register_file).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x01;
    std::fs::write(&register_file, &bytes).unwrap();
    let (s, log) = night_logged(dir, &db);
    assert!(log.contains("register file not used"), "{log}");
    assert!(log.contains("damaged"), "{log}");
    assert_eq!(
        (s["new"].as_u64(), s["closed"].as_u64()),
        (Some(0), Some(0))
    );
    assert_eq!(s["still_open"], truth.len());
    assert_eq!(
        std::fs::read(dir.join("report/findings.csv")).unwrap(),
        report_before
    );
    let (_, log) = night_logged(dir, &db);
    assert!(
        log.contains("register read from the register file"),
        "rewritten: {log}"
    );
    std::fs::write(&register_file, b"not a register file").unwrap();
    let (s, log) = night_logged(dir, &db);
    assert!(log.contains("register file not used"), "{log}");
    assert_eq!(s["still_open"], truth.len());
    // --no-register-file reads the database and leaves the file alone.
    let out = common::doudi_env(
        dir,
        &[
            "crosscheck",
            "--snapshots",
            "data/snapshots",
            "--json",
            "--no-register-file",
            "--db",
            &db,
        ],
        &[("DOUDI_LOG", "info")],
    );
    assert_eq!(out.status.code(), Some(0));
    assert!(!String::from_utf8_lossy(&out.stderr).contains("register file"));

    // Night 3: the death registry no longer lists one planted death (it was a wrong record), but
    // one of its rows is broken: the finding is not closed on partial data; the bad row is named;
    // exit 3.
    let deaths_path = dir.join("data/snapshots/deaths.jsonl");
    let deaths = std::fs::read_to_string(&deaths_path).unwrap();
    let planted = open
        .iter()
        .find(|f| f["check_code"] == "deceased_still_paid")
        .unwrap();
    let member = planted["member_id"].as_str().unwrap();
    let register_line = register.lines().find(|l| l.contains(member)).unwrap();
    let household: Value = serde_json::from_str(register_line).unwrap();
    let id_number = household["members"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["member_id"] == member)
        .unwrap()["id_number"]
        .as_str()
        .unwrap()
        .to_string();
    let kept: String = deaths
        .lines()
        .filter(|l| !l.contains(&id_number))
        .map(|l| format!("{l}\n"))
        .collect();
    assert!(
        kept.len() < deaths.len(),
        "the planted death was in the registry"
    );
    std::fs::write(&deaths_path, format!("{kept}{{\"death_date\": 17}}\n")).unwrap();
    let s = night(dir, &db, "data/snapshots", 3);
    assert_eq!(
        s["closed"], 0,
        "a snapshot with bad rows closes nothing: {s}"
    );
    assert_eq!(s["bad_rows"], 1);
    assert!(s["not_closed_tonight"]
        .as_array()
        .unwrap()
        .iter()
        .any(|c| c == "deceased_still_paid"));
    let report: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("report/findings.json")).unwrap())
            .unwrap();
    assert!(
        report.to_string().contains("deaths.jsonl"),
        "the bad row's file is reported"
    );
    assert_eq!(open_findings(dir, &db).len(), truth.len());

    // Night 4: the bad row fixed: the finding no longer true closes with a note.
    std::fs::write(&deaths_path, &kept).unwrap();
    let s = exits_json(dir, &db, "2026-11-02");
    assert_eq!(s["closed"], 1, "{s}");
    let all: Value = serde_json::from_str(&exits(
        doudi(
            dir,
            &[
                "findings", "list", "--all", "--limit", "100000", "--json", "--db", &db,
            ],
        ),
        0,
    ))
    .unwrap();
    let closed: Vec<&Value> = all
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["status"] == "closed")
        .collect();
    assert_eq!(closed.len(), 1);
    assert_eq!(closed[0]["member_id"], member);
    assert!(closed[0]["close_note"].as_str().unwrap().len() > 5);
    let still = open_findings(dir, &db);
    assert_eq!(still.len(), truth.len() - 1);
    // Found again on a later night: last seen that night, first seen kept.
    for f in &still {
        assert_eq!(f["last_seen"], "2026-11-02", "{f}");
        let before = open.iter().find(|o| o["key"] == f["key"]).unwrap();
        assert_eq!(f["first_seen"], before["first_seen"]);
    }

    // An older night than the last one checked is refused: it would close what was found since.
    let out = doudi(
        dir,
        &[
            "crosscheck",
            "--snapshots",
            "data/snapshots",
            "--as-of",
            "2026-10-01",
            "--db",
            &db,
        ],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("older than the last night"));
    assert_eq!(open_findings(dir, &db).len(), truth.len() - 1);
}

/// A night on the generated snapshots (exit 0), its log at level info.
fn night_logged(dir: &Path, db: &str) -> (Value, String) {
    let out = common::doudi_env(
        dir,
        &[
            "crosscheck",
            "--snapshots",
            "data/snapshots",
            "--out",
            "report",
            "--json",
            "--db",
            db,
        ],
        &[("DOUDI_LOG", "info")],
    );
    let log = String::from_utf8_lossy(&out.stderr).into_owned();
    let summary = serde_json::from_str(&exits(out, 0)).expect("summary json");
    (summary, log)
}

/// A night at a given date, exit 0.
fn exits_json(dir: &Path, db: &str, as_of: &str) -> Value {
    serde_json::from_str(&exits(
        doudi(
            dir,
            &[
                "crosscheck",
                "--snapshots",
                "data/snapshots",
                "--as-of",
                as_of,
                "--json",
                "--db",
                db,
            ],
        ),
        0,
    ))
    .unwrap()
}
