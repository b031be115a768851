//! End-to-end: `doudi linkage eval` links two CSV files described by a spec and scores the result
//! against truth pairs; bad input is refused naming the file, line and column.

mod common;

use common::doudi;
use std::path::{Path, PathBuf};

use serde_json::Value;

fn data() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("crates/linkage/tests/data")
}

#[test]
fn linkage_eval_reports_precision_recall_and_pair_counts_for_two_files() {
    let d = data();
    let out = doudi(
        &d,
        &[
            "linkage",
            "eval",
            "--spec",
            "spec.toml",
            "--left",
            "left.csv",
            "--right",
            "right.csv",
            "--truth",
            "truth.csv",
            "--json",
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r: Value = serde_json::from_slice(&out.stdout).unwrap();
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

    let text = doudi(
        &d,
        &[
            "linkage",
            "eval",
            "--spec",
            "spec.toml",
            "--left",
            "left.csv",
            "--right",
            "right.csv",
            "--truth",
            "truth.csv",
        ],
    );
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
    let out = doudi(
        tmp.path(),
        &[
            "linkage",
            "eval",
            "--spec",
            "spec.toml",
            "--left",
            "left.csv",
            "--right",
            "right.csv",
            "--truth",
            "truth.csv",
        ],
    );
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
    let out = doudi(
        tmp.path(),
        &[
            "linkage",
            "eval",
            "--spec",
            "spec.toml",
            "--left",
            "right.csv",
            "--truth",
            "truth.csv",
        ],
    );
    assert_eq!(out.status.code(), Some(2));
    let e = String::from_utf8_lossy(&out.stderr);
    assert!(e.contains("nope"), "{e}");
}

#[test]
fn linkage_eval_on_generated_feeds_at_default_noise_meets_the_precision_and_recall_aims() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let out = doudi(
        dir,
        &[
            "gen",
            "--households",
            "1500",
            "--seed",
            "3",
            "--out",
            "data",
            "--eval-csv",
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let eval = dir.join("data/eval");
    let out = doudi(
        &eval,
        &[
            "linkage",
            "eval",
            "--spec",
            "spec.toml",
            "--left",
            "records.csv",
            "--right",
            "register.csv",
            "--truth",
            "truth.csv",
            "--json",
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r: Value = serde_json::from_slice(&out.stdout).unwrap();
    eprintln!(
        "generated set: precision {} recall {} f1 {} over {} true pairs, {} candidate pairs",
        r["precision"], r["recall"], r["f1"], r["truth_pairs"], r["candidate_pairs"]
    );
    assert!(r["truth_pairs"].as_u64().unwrap() > 3000);
    assert!(r["precision"].as_f64().unwrap() >= 0.999, "{r}");
    assert!(r["recall"].as_f64().unwrap() >= 0.99, "{r}");
}
