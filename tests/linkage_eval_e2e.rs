//! End-to-end: `doudi linkage eval` links two CSV files described by a spec and scores the result
//! against truth pairs; bad input is refused naming the file, line and column.

mod common;

use common::{doudi, gen, ok};
use std::path::{Path, PathBuf};
use std::process::Output;

use serde_json::Value;

fn data() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("crates/linkage/tests/data")
}

/// `doudi linkage eval` in `dir` of `spec.toml` and `truth.csv` there, the `left` CSV file linked
/// to the `right` one (none: within itself), with `--json` when asked.
fn linkage_eval(dir: &Path, left: &str, right: Option<&str>, json: bool) -> Output {
    let mut args = vec!["linkage", "eval", "--spec", "spec.toml", "--left", left];
    if let Some(right) = right {
        args.extend(["--right", right]);
    }
    args.extend(["--truth", "truth.csv"]);
    if json {
        args.push("--json");
    }
    doudi(dir, &args)
}

/// The JSON report of [`linkage_eval`] of `left` and `right`, after asserting it succeeded.
fn eval_report(dir: &Path, left: &str, right: &str) -> Value {
    let out = linkage_eval(dir, left, Some(right), true);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn linkage_eval_reports_precision_recall_and_pair_counts_for_two_files() {
    let d = data();
    let r = eval_report(&d, "left.csv", "right.csv");
    assert_eq!(r["mode"], "link");
    assert_eq!(r["truth_pairs"], 7);
    let tp = r["true_positives"].as_u64().unwrap();
    let fp = r["false_positives"].as_u64().unwrap();
    let fn_ = r["false_negatives"].as_u64().unwrap();
    assert_eq!(tp + fn_, 7);
    let precision = r["precision"].as_f64().unwrap();
    assert!((precision - tp as f64 / (tp + fp).max(1) as f64).abs() < 1e-9);
    assert!(r["recall"].as_f64().unwrap() >= 6.0 / 7.0, "{r}");
    assert!(r["candidate_pairs"].as_u64().unwrap() >= tp);

    let text = linkage_eval(&d, "left.csv", Some("right.csv"), false);
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(text.to_lowercase().contains("precision"), "{text}");
}

#[test]
fn a_bad_csv_row_is_refused_naming_the_file_line_and_column() {
    let tmp = tempfile::tempdir().unwrap();
    let d = data();
    for f in ["spec.toml", "right.csv", "truth.csv"] {
        std::fs::copy(d.join(f), tmp.path().join(f)).unwrap();
    }
    let left = std::fs::read_to_string(d.join("left.csv")).unwrap();
    let mut lines: Vec<&str> = left.lines().collect();
    lines.insert(3, "L99,341502194912310210,王秀英,not-a-date,somewhere");
    std::fs::write(tmp.path().join("left.csv"), lines.join("\n") + "\n").unwrap();
    let out = linkage_eval(tmp.path(), "left.csv", Some("right.csv"), false);
    assert_eq!(out.status.code(), Some(2));
    let e = String::from_utf8_lossy(&out.stderr);
    assert!(
        e.contains("left.csv") && e.contains("line 4") && e.contains("birth"),
        "{e}"
    );
    assert!(
        !e.contains("341502194912310210"),
        "no cell value repeated: {e}"
    );

    std::fs::write(
        tmp.path().join("spec.toml"),
        "id = \"rec_id\"\n[[field]]\ncolumn = \"nope\"\ntype = \"date\"\n",
    )
    .unwrap();
    let out = linkage_eval(tmp.path(), "right.csv", None, false);
    assert_eq!(out.status.code(), Some(2));
    let e = String::from_utf8_lossy(&out.stderr);
    assert!(e.contains("nope"), "{e}");
}

#[test]
fn linkage_eval_on_generated_feeds_at_default_noise_meets_the_precision_and_recall_aims() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    gen(dir, "1500", "3", "data", &["--eval-csv"]);
    let eval = dir.join("data/eval");
    let r = eval_report(&eval, "records.csv", "register.csv");
    eprintln!(
        "generated set: precision {} recall {} f1 {} over {} true pairs, {} candidate pairs",
        r["precision"], r["recall"], r["f1"], r["truth_pairs"], r["candidate_pairs"]
    );
    assert!(r["truth_pairs"].as_u64().unwrap() > 3000);
    assert!(r["precision"].as_f64().unwrap() >= 0.999, "{r}");
    assert!(r["recall"].as_f64().unwrap() >= 0.99, "{r}");
}

/// Records without ID numbers, names and birth dates in parts: name parts, birth date parts, sex
/// and region carry the decision, and EM must not learn "same family name" as the match class.
#[test]
fn linkage_eval_without_id_numbers_links_on_name_and_birth_date_parts() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    gen(
        dir,
        "1500",
        "3",
        "data",
        &["--eval-csv", "--eval-without-id"],
    );
    let eval = dir.join("data/eval");
    let records = std::fs::read_to_string(eval.join("records.csv")).unwrap();
    let header = records.lines().next().unwrap();
    assert_eq!(
        header,
        "rec_id,family,given,birth_year,birth_month,birth_day,sex,region"
    );
    // no ID number anywhere in the records: no 17-digit run
    assert!(!records
        .split(|c: char| !c.is_ascii_digit())
        .any(|run| run.len() >= 15));
    let r = eval_report(&eval, "records.csv", "register.csv");
    eprintln!(
        "without ID numbers: precision {} recall {} f1 {} over {} true pairs, {} candidate pairs, model {}",
        r["precision"], r["recall"], r["f1"], r["truth_pairs"], r["candidate_pairs"], r["model"]["method"]
    );
    assert!(r["truth_pairs"].as_u64().unwrap() > 3000);
    assert!(r["f1"].as_f64().unwrap() >= 0.95, "{r}");
    // the match class agrees on every field more often than the non-match class, on names and
    // birth dates by far
    for f in r["model"]["fields"].as_array().unwrap() {
        let exact = &f["levels"][0];
        let (m, u) = (exact["m"].as_f64().unwrap(), exact["u"].as_f64().unwrap());
        let by = if ["family", "given", "birth"].contains(&f["field"].as_str().unwrap()) {
            10.0
        } else {
            1.0
        };
        assert!(m > by * u, "{f}");
    }
}

/// A valid GB 11643 number from a region, a birth date (YYYYMMDD) and a sequence number.
fn id_number(region: &str, birth: &str, seq: u32) -> String {
    common::id_number(&format!("{region}{birth}{seq:03}"))
}

fn member_json(hh: &str, name: &str, birth: &str, seq: u32, village: &str) -> Value {
    let iso = format!("{}-{}-{}", &birth[..4], &birth[4..6], &birth[6..]);
    serde_json::json!({
        "household_id": hh, "region_code": village, "address": "x", "category": "dibao",
        "area": "rural", "enrolled_on": "2023-05-01",
        "members": [{"member_id": format!("{hh}-1"), "id_number": id_number(&village[..6], birth, seq),
            "name": name, "sex": if seq % 2 == 1 { "male" } else { "female" }, "birth_date": iso,
            "relation": "head", "work_capacity": "none"}]
    })
}

fn event_json(
    n: usize,
    id: Option<&str>,
    name: &str,
    birth: &str,
    sex: &str,
    village: &str,
) -> Value {
    let iso = format!("{}-{}-{}", &birth[..4], &birth[4..6], &birth[6..]);
    serde_json::json!({
        "event_id": format!("YB-{n}"), "source": "health_insurance", "kind": "serious_illness_diagnosed",
        "occurred_at": "2026-02-12T10:05:00+08:00",
        "subject": {"id_number": id, "name": name, "birth_date": iso, "sex": sex, "region_code": village},
        "data": {"diagnosis": "C34.9", "description": "肺恶性肿瘤", "diagnosed_on": "2026-02-12"}
    })
}

/// A feed built to mislead EM (hundreds of records without ID numbers about a common name, none of
/// them about a register member) gives a degenerate model: `linkage train` refuses it (exit 3), the
/// model trained before on a good feed stays active, and `linkage show` says so.
#[test]
fn a_feed_built_to_mislead_em_does_not_replace_the_active_model() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let db = format!("sqlite://{}", dir.join("doudi.db").display());
    let given = [
        "秀英", "桂兰", "建国", "志强", "淑珍", "海燕", "国华", "明", "丽", "军", "玉梅", "德胜",
    ];
    let family = ["陈", "李", "张", "刘", "杨", "黄", "赵", "周", "吴", "徐"];
    let villages = ["341502001001", "341502001002", "341502001003"];
    let mut register = String::new();
    let mut people = Vec::new();
    for i in 0..120u32 {
        let name = format!(
            "{}{}",
            family[i as usize % family.len()],
            given[(i as usize / family.len()) % given.len()]
        );
        let birth = format!("19{:02}{:02}{:02}", 40 + i % 50, 1 + i % 12, 1 + i % 28);
        let village = villages[i as usize % villages.len()];
        register.push_str(&format!(
            "{}\n",
            member_json(&format!("H{i:03}"), &name, &birth, 11 + i, village)
        ));
        people.push((name, birth, 11 + i, village));
    }
    // sixty people called 王伟 in one township
    for i in 0..60u32 {
        let birth = format!(
            "19{:02}{:02}{:02}",
            50 + i % 40,
            1 + i % 12,
            1 + (i * 7) % 28
        );
        let village = villages[i as usize % villages.len()];
        register.push_str(&format!(
            "{}\n",
            member_json(&format!("W{i:03}"), "王伟", &birth, 301 + 2 * i, village)
        ));
    }
    std::fs::write(dir.join("register.jsonl"), register).unwrap();
    ok(doudi(dir, &["import", "register.jsonl", "--db", &db]));

    // a good feed: records about the register's people, with their ID numbers
    let good = dir.join("good/health_insurance");
    std::fs::create_dir_all(&good).unwrap();
    let mut lines = String::new();
    for (n, (name, birth, seq, village)) in people.iter().enumerate() {
        let id = id_number(&village[..6], birth, *seq);
        let sex = if seq % 2 == 1 { "male" } else { "female" };
        lines.push_str(&format!(
            "{}\n",
            event_json(n, Some(&id), name, birth, sex, village)
        ));
    }
    std::fs::write(good.join("2026-02.jsonl"), lines).unwrap();
    let trained = ok(doudi(
        dir,
        &["linkage", "train", "--feeds", "good", "--db", &db],
    ));
    assert!(trained.contains("now the active model"), "{trained}");
    let version = trained
        .split_whitespace()
        .find(|w| w.starts_with("fs-"))
        .unwrap()
        .to_string();

    // the misleading feed: 400 records of 王伟 without ID numbers, born when no 王伟 was
    let bad = dir.join("bad/health_insurance");
    std::fs::create_dir_all(&bad).unwrap();
    let mut lines = String::new();
    for n in 0..400usize {
        let birth = format!("20{:02}{:02}{:02}", n % 20, 1 + n % 12, 1 + n % 28);
        let village = villages[n % villages.len()];
        lines.push_str(&format!(
            "{}\n",
            event_json(1000 + n, None, "王伟", &birth, "male", village)
        ));
    }
    std::fs::write(bad.join("2026-03.jsonl"), lines).unwrap();
    let out = doudi(dir, &["linkage", "train", "--feeds", "bad", "--db", &db]);
    let err = String::from_utf8_lossy(&out.stderr);
    if out.status.code() != Some(3) {
        let shown = doudi(dir, &["linkage", "show", "--db", &db]);
        panic!(
            "the misleading feed's model was not refused: {err}\n{}",
            String::from_utf8_lossy(&shown.stdout)
        );
    }
    assert!(
        err.contains("degenerate") && err.contains("NOT activated"),
        "{err}"
    );
    assert!(err.contains(&version), "the kept model is named: {err}");
    assert!(!err.contains("王伟"), "no name in messages: {err}");

    let shown = ok(doudi(dir, &["linkage", "show", "--db", &db]));
    assert!(
        shown.contains(&format!("active identity model {version}")),
        "{shown}"
    );
    assert!(shown.contains("last training refused"), "{shown}");
    let json: Value =
        serde_json::from_str(&ok(doudi(dir, &["linkage", "show", "--json", "--db", &db]))).unwrap();
    assert_eq!(json["version"], version.as_str());
    assert_eq!(json["active"], true);
    assert!(json["last_refusal"]["reason"].as_str().is_some(), "{json}");
}
