//! The generic evaluation over small hand-made CSV files (`tests/data/`).

use std::path::{Path, PathBuf};

use doudi_linkage::eval::{run_eval, EvalError};

fn data(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join("data")
        .join(name)
}

#[test]
fn linking_two_files_finds_every_findable_pair_and_nothing_else() {
    let r = run_eval(
        &data("spec.toml"),
        &data("left.csv"),
        Some(&data("right.csv")),
        &data("truth.csv"),
    )
    .unwrap();
    println!("{r}");
    assert_eq!(r.mode, "link");
    assert_eq!((r.left_records, r.right_records, r.truth_pairs), (8, 8, 7));
    // L7–R7 is a "true" pair that shares nothing: blocking never proposes it.
    assert_eq!(r.truth_pairs_in_candidates, 6);
    assert_eq!(r.true_positives, 6);
    assert_eq!(r.false_positives, 0);
    assert_eq!(r.false_negatives, 1);
    assert_eq!(r.precision, Some(1.0));
    assert!((r.recall.unwrap() - 6.0 / 7.0).abs() < 1e-12);
    assert!((r.f1 - 12.0 / 13.0).abs() < 1e-12);
    assert!(r.candidate_pairs >= 7);
    let json = serde_json::to_value(&r).unwrap();
    assert_eq!(json["true_positives"], 6);
    let text = r.to_string();
    assert!(text.contains("precision 1.0000") && text.contains("recall 0.8571"));
}

#[test]
fn deduplicating_one_file_finds_its_duplicates() {
    let r = run_eval(
        &data("spec.toml"),
        &data("people.csv"),
        None,
        &data("people_truth.csv"),
    )
    .unwrap();
    println!("{r}");
    assert_eq!(r.mode, "dedup");
    assert_eq!(r.truth_pairs, 2);
    assert_eq!(r.true_positives, 2);
    assert_eq!(r.false_positives, 0);
    assert_eq!((r.precision, r.recall), (Some(1.0), Some(1.0)));
}

#[test]
fn training_in_eval_is_deterministic() {
    let run = || {
        run_eval(
            &data("spec.toml"),
            &data("left.csv"),
            Some(&data("right.csv")),
            &data("truth.csv"),
        )
        .unwrap()
        .model
    };
    assert_eq!(run(), run());
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

#[test]
fn errors_name_the_file_line_and_column() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let spec = data("spec.toml");
    let truth = data("truth.csv");

    // an unknown comparator type in the spec
    let bad_spec = write(
        d,
        "bad.toml",
        "id = \"rec_id\"\n\n[[field]]\ncolumn = \"name\"\ntype = \"soundex\"\n",
    );
    let e = run_eval(&bad_spec, &data("left.csv"), None, &truth).unwrap_err();
    let EvalError::Spec { line, column, .. } = &e else {
        panic!("{e}")
    };
    assert_eq!((*line, *column), (5, 8), "{e}");
    assert!(e.to_string().contains("bad.toml"), "{e}");

    // a date that is not a date, on the third line, in column birth
    let bad_csv = write(
        d,
        "left.csv",
        "rec_id,id_no,name,birth,address\nA,,王秀英,1949-12-31,x\nB,,张伟,1958-13-07,y\n",
    );
    let e = run_eval(&spec, &bad_csv, None, &truth).unwrap_err();
    let EvalError::Csv {
        file, line, column, ..
    } = &e
    else {
        panic!("{e}")
    };
    assert_eq!(
        (file.as_path(), *line, column.as_str()),
        (bad_csv.as_path(), 3, "birth")
    );
    let text = e.to_string();
    assert!(
        text.contains("left.csv") && text.contains("line 3"),
        "{text}"
    );
    assert!(
        !text.contains("1958-13-07"),
        "cell values stay out of errors: {text}"
    );

    // a row with a missing field
    let ragged = write(
        d,
        "ragged.csv",
        "rec_id,id_no,name,birth,address\nA,,王秀英,1949-12-31\n",
    );
    let e = run_eval(&spec, &ragged, None, &truth).unwrap_err();
    assert!(matches!(&e, EvalError::Csv { line: 2, .. }), "{e}");

    // a column the spec names but the header lacks
    let no_col = write(
        d,
        "nocol.csv",
        "rec_id,id_no,name,birth\nA,,王秀英,1949-12-31\n",
    );
    let e = run_eval(&spec, &no_col, None, &truth).unwrap_err();
    let EvalError::Csv { line, column, .. } = &e else {
        panic!("{e}")
    };
    assert_eq!((*line, column.as_str()), (1, "address"));

    // a truth pair naming an unknown record
    let bad_truth = write(d, "truth.csv", "left_id,right_id\nL1,R1\nL1,R99\n");
    let e = run_eval(
        &spec,
        &data("left.csv"),
        Some(&data("right.csv")),
        &bad_truth,
    )
    .unwrap_err();
    let EvalError::Csv { line, column, .. } = &e else {
        panic!("{e}")
    };
    assert_eq!((*line, column.as_str()), (3, "right_id"));

    // a file that is not there
    let e = run_eval(&spec, &d.join("none.csv"), None, &truth).unwrap_err();
    assert!(matches!(e, EvalError::Io { .. }), "{e}");
}
