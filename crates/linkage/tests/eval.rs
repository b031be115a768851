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

/// People without ID numbers, names and birth dates in parts, one passport number typed with an
/// error, one birth date that is not a date: a spec combines the parts, reads the passport as a
/// generic identifier, and takes the bad date as missing (counted).
#[test]
fn fields_from_several_columns_identifiers_and_invalid_values_as_missing() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let spec = write(
        d,
        "spec.toml",
        r#"id = "id"
[[field]]
name = "name"
columns = ["family", "given"]
type = "person_name"
[[field]]
name = "birth"
columns = ["y", "m", "d"]
type = "date"
invalid = "missing"
[[field]]
column = "passport"
type = "identifier"
"#,
    );
    let left = write(
        d,
        "a.csv",
        "id,family,given,y,m,d,passport\n\
         A1,王,秀英,1949,12,31,E1234567\n\
         A2,张,伟,1958,3,7,G7654321\n\
         A3,李,秀兰,1962,4,99,K5550001\n\
         A4,陈,建国,1970,1,1,\n",
    );
    let right = write(
        d,
        "b.csv",
        "id,family,given,y,m,d,passport\n\
         B1,王,秀英,1949,12,31,e 123-4567\n\
         B2,張,偉,1958,03,07,G7654312\n\
         B3,李,秀兰,1962,04,15,K5550001\n\
         B4,赵,强,1988,8,8,P0000009\n",
    );
    let truth = write(d, "t.csv", "a,b\nA1,B1\nA2,B2\nA3,B3\n");
    let r = run_eval(&spec, &left, Some(&right), &truth).unwrap();
    println!("{r}");
    // the date 1962-04-99 is no date: taken as missing and counted, not an error
    assert_eq!(r.invalid_values.get("birth"), Some(&1));
    assert!(r.to_string().contains("1 values not valid"), "{r}");
    let fields: Vec<&str> = r.model.fields.iter().map(|f| f.field.as_str()).collect();
    assert_eq!(fields, ["name", "birth", "passport"]);
    let passport = &r.model.fields[2];
    let levels: Vec<&str> = passport.levels.iter().map(|l| l.level.as_str()).collect();
    assert_eq!(
        levels,
        ["exact", "one_edit", "two_edits", "different", "missing"]
    );
    // the passports are found by their own blocking key (case, spaces and dashes folded; a swap
    // of two digits is one edit) and every true pair is a candidate
    assert_eq!(r.truth_pairs_in_candidates, 3);
    assert_eq!(r.true_positives, 3, "{r}");
    assert_eq!(r.false_positives, 0, "{r}");
}

#[test]
fn inputs_with_no_records_a_nan_threshold_and_a_zero_block_size_are_errors() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let empty = write(d, "empty.csv", "rec_id,id_no,name,birth,address\n");
    let truth = write(d, "truth.csv", "a,b\n");
    let e = run_eval(&data("spec.toml"), &empty, None, &truth).unwrap_err();
    assert!(matches!(e, EvalError::Empty { .. }), "{e}");
    assert!(e.to_string().contains("empty.csv") && e.to_string().contains("no records"));

    for (text, needle) in [
        ("threshold = nan\n", "threshold"),
        ("max_block = 0\n", "max_block"),
    ] {
        let spec = write(
            d,
            "s.toml",
            &format!(
                "id = \"rec_id\"\n{text}[[field]]\ncolumn = \"name\"\ntype = \"person_name\"\n"
            ),
        );
        let e = run_eval(&spec, &data("left.csv"), None, &truth).unwrap_err();
        let EvalError::Spec { line, .. } = &e else {
            panic!("{e}")
        };
        assert_eq!(*line, 2, "{e}");
        assert!(e.to_string().contains(needle), "{e}");
    }
}

#[test]
fn precision_is_undefined_when_nothing_is_predicted() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // a threshold no pair reaches
    let spec = std::fs::read_to_string(data("spec.toml"))
        .unwrap()
        .replace("threshold = 0.0", "threshold = 1000.0");
    let spec = write(d, "spec.toml", &spec);
    let r = run_eval(
        &spec,
        &data("left.csv"),
        Some(&data("right.csv")),
        &data("truth.csv"),
    )
    .unwrap();
    assert_eq!(r.predicted_pairs, 0);
    assert_eq!(r.precision, None);
    assert_eq!(r.recall, Some(0.0));
    assert_eq!(r.f1, 0.0);
    let json = serde_json::to_value(&r).unwrap();
    assert!(json["precision"].is_null(), "{json}");
    assert!(r.to_string().contains("precision undefined"), "{r}");
}

/// A blocking key shared by more records than `max_block` is split by the other keys, so the
/// true pair is still found; with no other key to split by, the block is cut and the report says
/// how many records were left with candidates uncompared.
#[test]
fn large_blocks_are_split_by_other_keys_and_cuts_are_reported() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let mut right = String::from("id,name,birth\n");
    for i in 0..30 {
        right.push_str(&format!("R{i},王伟,19{:02}-01-{:02}\n", 40 + i, 1 + i % 28));
    }
    let right = write(d, "r.csv", &right);
    let left = write(d, "l.csv", "id,name,birth\nL1,王伟,1965-01-26\n");
    let truth = write(d, "t.csv", "a,b\nL1,R25\n");
    let spec = write(
        d,
        "s.toml",
        "id = \"id\"\nmax_block = 5\niterations = 0\n[[field]]\ncolumn = \"name\"\ntype = \"person_name\"\n[[field]]\ncolumn = \"birth\"\ntype = \"date\"\n",
    );
    let r = run_eval(&spec, &left, Some(&right), &truth).unwrap();
    println!("{r}");
    assert_eq!(r.sub_blocked_keys, 1);
    assert_eq!(r.records_with_cut_blocks, 0);
    assert_eq!(r.truth_pairs_in_candidates, 1);
    assert!(r.candidate_pairs <= 5, "{r}");

    let name_only = write(
        d,
        "n.toml",
        "id = \"id\"\nmax_block = 5\niterations = 0\n[[field]]\ncolumn = \"name\"\ntype = \"person_name\"\n",
    );
    let r = run_eval(&name_only, &left, Some(&right), &truth).unwrap();
    assert_eq!(r.records_with_cut_blocks, 1);
    assert_eq!(r.candidate_pairs, 5);
    assert!(r
        .to_string()
        .contains("1 records left with some candidates uncompared"));
}
