//! The cross-check against generated snapshots: every planted finding found and nothing else,
//! bad rows reported and skipped, idempotence over three nights, resume after interruption.

use std::collections::BTreeSet;
use std::fs;
use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use chrono::{Days, NaiveDate};
use doudi_crosscheck::{
    reconcile, run, run_with, snapshot_as_of, write_report, BadRow, CheckConfig, CrosscheckError,
    Flow, NoProgress, Progress, RunOptions, StoredFinding,
};
use doudi_model::Household;
use doudi_synth::{write_dataset, GenConfig};

mod support;

use support::{keys, read_truth, Key};

struct Dataset {
    _tmp: tempfile::TempDir,
    dir: PathBuf,
    register: Vec<Household>,
    truth: BTreeSet<Key>,
    as_of: NaiveDate,
}

fn dataset(households: usize, seed: u64) -> Dataset {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().to_path_buf();
    let cfg = GenConfig {
        households,
        seed,
        months: 1,
        ..GenConfig::default()
    };
    write_dataset(&dir, &cfg, &mut |_| {}).unwrap();
    let register = fs::read_to_string(dir.join("register.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let truth = read_truth(&dir.join("truth/findings.jsonl"));
    let as_of = snapshot_as_of(&dir.join("snapshots")).unwrap().unwrap();
    Dataset {
        _tmp: tmp,
        dir,
        register,
        truth,
        as_of,
    }
}

fn assert_same(found: &BTreeSet<Key>, truth: &BTreeSet<Key>) {
    let missed: Vec<_> = truth.difference(found).take(10).collect();
    let extra: Vec<_> = found.difference(truth).take(10).collect();
    assert!(
        missed.is_empty() && extra.is_empty(),
        "missed {} (e.g. {missed:?}), extra {} (e.g. {extra:?})",
        truth.difference(found).count(),
        found.difference(truth).count()
    );
}

fn copy_dir(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for e in fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        fs::copy(e.path(), to.join(e.file_name())).unwrap();
    }
}

/// Insert `text` so that it becomes line `line` (from 1) of the file.
fn insert_line(path: &Path, line: usize, text: &str) {
    let content = fs::read_to_string(path).unwrap();
    let mut lines: Vec<&str> = content.lines().collect();
    lines.insert(line - 1, text);
    fs::write(path, lines.join("\n") + "\n").unwrap();
}

#[test]
fn every_planted_finding_is_found_and_nothing_else() {
    let d = dataset(3000, 7);
    let counts: BTreeSet<&str> = d.truth.iter().map(|k| k.0.as_str()).collect();
    assert_eq!(
        counts.len(),
        9,
        "every check has planted findings: {counts:?}"
    );
    let cfg = CheckConfig::default();
    let result = run(
        &d.register,
        &d.dir.join("snapshots"),
        &cfg,
        d.as_of,
        &NoProgress,
    )
    .unwrap();
    assert!(
        result.checks_skipped.is_empty(),
        "{:?}",
        result.checks_skipped
    );
    assert_eq!(result.bad_row_count, 0, "{:?}", result.bad_rows);
    assert_eq!(result.exit_code(), 0);
    assert_same(&keys(&result.findings), &d.truth);

    // Deterministic, and the same with tiny chunks and one thread.
    let opts = RunOptions {
        threads: Some(1),
        chunk_bytes: 64 << 10,
        ..RunOptions::default()
    };
    let again = run_with(
        &d.register,
        &d.dir.join("snapshots"),
        &cfg,
        d.as_of,
        &NoProgress,
        &opts,
    )
    .unwrap();
    assert_eq!(again.findings, result.findings);

    // Deaths carry what was overpaid since.
    let dead = result
        .findings
        .iter()
        .find(|f| f.check.code() == "deceased_still_paid")
        .unwrap();
    assert!(dead.amount_at_stake.fen() > 0);
    assert!(!dead.evidence["months_paid_after_death"]
        .as_array()
        .unwrap()
        .is_empty());
    let income = result
        .findings
        .iter()
        .find(|f| f.check.code() == "income_above_line")
        .unwrap();
    assert_eq!(income.evidence["automatic_cut"], false);

    // Report files: no unmasked ID number or full name anywhere.
    let out = d.dir.join("report");
    let files = write_report(&out, &result, None).unwrap();
    let flagged: BTreeSet<&str> = result
        .findings
        .iter()
        .map(|f| f.household_id.as_str())
        .collect();
    for p in [&files.json, &files.csv, &files.html] {
        let text = fs::read_to_string(p).unwrap();
        for h in d
            .register
            .iter()
            .filter(|h| flagged.contains(h.household_id.as_str()))
        {
            for m in &h.members {
                assert!(
                    !text.contains(m.id_number.expose()),
                    "{} leaks an ID",
                    p.display()
                );
                if m.name.chars().count() >= 3 {
                    assert!(!text.contains(&m.name), "{} leaks a name", p.display());
                }
            }
        }
    }
    let html = fs::read_to_string(&files.html).unwrap();
    assert!(html.contains("<svg") && !html.contains("<script") && !html.contains("http://"));
    let csv_rows = fs::read_to_string(&files.csv).unwrap().lines().count();
    assert_eq!(csv_rows, result.findings.len() + 1);
}

#[test]
fn bad_rows_are_reported_with_file_line_and_field_and_the_run_completes() {
    let d = dataset(1500, 11);
    let snaps = d.dir.join("bad-snapshots");
    copy_dir(&d.dir.join("snapshots"), &snaps);
    let hukou = snaps.join("hukou.csv");
    let hukou_lines = fs::read_to_string(&hukou).unwrap().lines().count();
    let late = hukou_lines - 20;
    insert_line(
        &hukou,
        late,
        "110105194912310021,张三,male,1949-12-31,341502001001",
    );
    insert_line(&hukou, 7, "only,three,fields");
    insert_line(&snaps.join("deaths.jsonl"), 2, "{not json");
    insert_line(
        &snaps.join("deaths.jsonl"),
        4,
        r#"{"record_id":"X1","id_number":"11010519491231002X","name":"王五","death_date":"2026-02-30"}"#,
    );
    let payments = fs::read_dir(&snaps)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("payments-"))
        .min()
        .unwrap();
    insert_line(
        &snaps.join(&payments),
        3,
        "P1,H00000001,341502001001,11010519491231002X,dibao,2026-12,abc",
    );
    insert_line(
        &snaps.join("vehicles.csv"),
        2,
        "皖N12345,11010519491231002X,王秀英,100,2020-01-01",
    );

    let opts = RunOptions {
        chunk_bytes: 64 << 10,
        ..RunOptions::default()
    };
    let cfg = CheckConfig::default();
    let result = run_with(&d.register, &snaps, &cfg, d.as_of, &NoProgress, &opts).unwrap();
    assert_eq!(result.bad_row_count, 6, "{:#?}", result.bad_rows);
    assert_eq!(result.exit_code(), 3);
    let at = |file: &str, line: u64| -> &BadRow {
        result
            .bad_rows
            .iter()
            .find(|b| b.file == file && b.line == line)
            .unwrap_or_else(|| panic!("no bad row at {file}:{line} in {:#?}", result.bad_rows))
    };
    // the late hukou row moved down one line when the short row was inserted above it
    assert_eq!(
        at("hukou.csv", late as u64 + 1).field.as_deref(),
        Some("id_number")
    );
    at("hukou.csv", 7);
    at("deaths.jsonl", 2);
    assert_eq!(at("deaths.jsonl", 4).field.as_deref(), Some("death_date"));
    assert_eq!(at(&payments, 3).field.as_deref(), Some("amount_fen"));
    let v = at("vehicles.csv", 2);
    assert_eq!(v.field.as_deref(), Some("vehicle_type"));
    assert!(!v.reason.contains("秀英"), "{}", v.reason);
    for b in &result.bad_rows {
        assert!(!b.reason.contains("11010519491231002X"), "{}", b.reason);
    }
    assert_eq!(result.bad_rows_by_file()["hukou.csv"], 2);
    // the bad rows changed nothing else
    assert_same(&keys(&result.findings), &d.truth);
}

fn stored(r: &doudi_crosscheck::Reconciliation) -> Vec<StoredFinding> {
    let mut v: Vec<StoredFinding> = r.new.iter().chain(&r.still_open).cloned().collect();
    v.sort_by(|a, b| a.finding.key.cmp(&b.finding.key));
    v
}

#[test]
fn three_nights_open_once_persist_without_duplicates_and_close_themselves() {
    let d = dataset(1500, 5);
    let snaps = d.dir.join("nightly");
    copy_dir(&d.dir.join("snapshots"), &snaps);
    let cfg = CheckConfig::default();

    // Night 1: everything is new.
    let n1 = d.as_of;
    let f1 = run(&d.register, &snaps, &cfg, n1, &NoProgress)
        .unwrap()
        .findings;
    let r1 = reconcile(&[], &f1, n1);
    assert_eq!(r1.new.len(), d.truth.len());
    assert!(r1.still_open.is_empty() && r1.closed.is_empty());
    let open1 = stored(&r1);

    // Re-running night 1 changes nothing.
    let again = run(&d.register, &snaps, &cfg, n1, &NoProgress)
        .unwrap()
        .findings;
    let r1b = reconcile(&open1, &again, n1);
    assert!(
        r1b.is_noop(&open1),
        "re-run of the same night must be a no-op"
    );

    // Night 2, same facts: nothing new, nothing closed, nothing duplicated.
    let n2 = n1 + Days::new(1);
    let f2 = run(&d.register, &snaps, &cfg, n2, &NoProgress)
        .unwrap()
        .findings;
    let r2 = reconcile(&open1, &f2, n2);
    assert!(r2.new.is_empty() && r2.closed.is_empty());
    assert!(r2.changed.is_empty(), "{:?}", r2.changed);
    assert_eq!(r2.still_open.len(), open1.len());
    assert!(r2
        .still_open
        .iter()
        .all(|s| s.first_seen == n1 && s.last_seen == n2));
    let open2 = stored(&r2);

    // Night 3: a death record is withdrawn and a member drops off the hukou roll.
    let dead_only: Vec<&Key> = d
        .truth
        .iter()
        .filter(|k| k.0 == "deceased_still_paid")
        .filter(|k| {
            !d.truth
                .contains(&("no_living_member".into(), k.1.clone(), None))
        })
        .collect();
    let (_, hh, member) = dead_only[0].clone();
    let member = member.unwrap();
    let id = d
        .register
        .iter()
        .find(|h| h.household_id == hh)
        .and_then(|h| h.member(&member))
        .map(|m| m.id_number.expose().to_string())
        .unwrap();
    let deaths = snaps.join("deaths.jsonl");
    let kept: Vec<String> = fs::File::open(&deaths)
        .map(std::io::BufReader::new)
        .unwrap()
        .lines()
        .map(Result::unwrap)
        .filter(|l| !l.contains(&id))
        .collect();
    fs::write(&deaths, kept.join("\n") + "\n").unwrap();

    let victim = d
        .register
        .iter()
        .find(|h| !d.truth.iter().any(|k| k.1 == h.household_id))
        .unwrap();
    let victim_id = victim.members[0].id_number.expose().to_string();
    let hukou = snaps.join("hukou.csv");
    let kept: Vec<String> = fs::read_to_string(&hukou)
        .unwrap()
        .lines()
        .filter(|l| !l.starts_with(&victim_id))
        .map(String::from)
        .collect();
    fs::write(&hukou, kept.join("\n") + "\n").unwrap();

    let n3 = n2 + Days::new(1);
    let f3 = run(&d.register, &snaps, &cfg, n3, &NoProgress)
        .unwrap()
        .findings;
    let r3 = reconcile(&open2, &f3, n3);
    assert_eq!(r3.new.len(), 1);
    assert_eq!(
        r3.new[0].finding.key,
        format!(
            "id_unknown_to_hukou:{}:{}",
            victim.household_id, victim.members[0].member_id
        )
    );
    assert_eq!(r3.new[0].first_seen, n3);
    assert_eq!(r3.closed.len(), 1);
    let closed = &r3.closed[0];
    assert_eq!(
        closed.finding.finding.key,
        format!("deceased_still_paid:{hh}:{member}")
    );
    assert_eq!(closed.closed_on, n3);
    assert!(
        closed
            .note_en
            .contains(&format!("no longer true as of {n3}")),
        "{}",
        closed.note_en
    );
    assert_eq!(r3.still_open.len(), open2.len() - 1);
    assert!(r3.still_open.iter().all(|s| s.first_seen == n1));

    // The report of night 3 shows statuses and the closed finding.
    let res3 = run(&d.register, &snaps, &cfg, n3, &NoProgress).unwrap();
    let files = write_report(&d.dir.join("report3"), &res3, Some(&r3)).unwrap();
    let json: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(files.json).unwrap()).unwrap();
    assert_eq!(json["closed"].as_array().unwrap().len(), 1);
    assert_eq!(
        json["findings"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|f| f["status"] == "new")
            .count(),
        1
    );
}

/// Stops the run once `after` files are finished.
struct StopAfter {
    after: usize,
    finished: AtomicUsize,
}

impl Progress for StopAfter {
    fn advance(&self, _file: &str, _bytes: u64, _rows: u64) -> Flow {
        if self.finished.load(Ordering::SeqCst) >= self.after {
            Flow::Stop
        } else {
            Flow::Continue
        }
    }
    fn finish_file(&self, _file: &str, _rows: u64, _resumed: bool) {
        self.finished.fetch_add(1, Ordering::SeqCst);
    }
}

#[test]
fn an_interrupted_run_resumes_from_its_checkpoints_with_the_same_result() {
    let d = dataset(1500, 9);
    let snaps = d.dir.join("snapshots");
    let work = d.dir.join("work");
    let cfg = CheckConfig::default();
    let opts = RunOptions {
        work_dir: Some(work.clone()),
        ..RunOptions::default()
    };
    let full = run(&d.register, &snaps, &cfg, d.as_of, &NoProgress).unwrap();

    let stopper = StopAfter {
        after: 4,
        finished: AtomicUsize::new(0),
    };
    let err = run_with(&d.register, &snaps, &cfg, d.as_of, &stopper, &opts).unwrap_err();
    assert!(matches!(err, CrosscheckError::Interrupted), "{err}");
    let saved = fs::read_dir(&work).unwrap().count();
    assert!(saved >= 4, "{saved} checkpoints");

    let resumed = run_with(&d.register, &snaps, &cfg, d.as_of, &NoProgress, &opts).unwrap();
    let from_checkpoint = resumed.files.iter().filter(|f| f.resumed).count();
    assert!(from_checkpoint >= 4, "{from_checkpoint} files resumed");
    assert!(from_checkpoint < resumed.files.len());
    assert_eq!(resumed.findings, full.findings);
    assert_eq!(resumed.rows_by_file(), full.rows_by_file());

    // A checkpoint is not reused for another night.
    let other_night = d.as_of + Days::new(1);
    let r = run_with(&d.register, &snaps, &cfg, other_night, &NoProgress, &opts).unwrap();
    assert!(r.files.iter().all(|f| !f.resumed));
    assert_eq!(
        doudi_crosscheck::clear_checkpoints(&work).unwrap(),
        r.files.len()
    );
}
