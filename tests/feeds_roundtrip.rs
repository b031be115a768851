//! The generated year written as departments export it (`doudi gen --native`: every layout,
//! format and encoding) and read back through the shipped profiles gives the events of the
//! envelope feeds: same kinds, subjects, amounts, dates and times. Event ids differ by design
//! (a department's own record id, or a hash of the columns that identify a record).

use std::collections::BTreeMap;
use std::sync::Arc;

use doudi_feeds::{shipped, FeedReader};
use doudi_model::Event;
use doudi_synth::native::LAYOUTS;

mod common;

/// Events without their ids, in a canonical order, as JSON (so that a difference prints).
fn canonical(events: impl IntoIterator<Item = Event>) -> Vec<String> {
    let mut v: Vec<String> = events
        .into_iter()
        .map(|mut e| {
            e.event_id.clear();
            e.to_json()
        })
        .collect();
    v.sort_unstable();
    v
}

#[test]
fn native_exports_read_through_the_shipped_profiles_give_the_envelope_events() {
    let tmp = common::synth_dataset(1500, 21);
    let summary = doudi_synth::native::write_native(tmp.path()).expect("write native");

    let mut native = Vec::new();
    let mut ids = std::collections::HashSet::new();
    let mut formats = BTreeMap::new();
    for layout in LAYOUTS {
        assert!(
            summary.rows.get(layout.name).copied().unwrap_or(0) > 0,
            "{}: the generated year has rows for every layout",
            layout.name
        );
        *formats.entry(format!("{:?}", layout.format)).or_insert(0) += 1;
        let profile = Arc::new(
            shipped::profile(layout.name)
                .expect("a shipped profile for every layout")
                .expect("profile loads"),
        );
        assert_eq!(profile.source, layout.source);
        let folder = tmp.path().join("native").join(layout.name);
        let mut files: Vec<_> = std::fs::read_dir(&folder)
            .expect("layout folder")
            .map(|e| e.expect("entry").path())
            .collect();
        files.sort();
        let mut rows = 0;
        for path in &files {
            let mut reader = FeedReader::open(Arc::clone(&profile), path).expect("open");
            for row in reader.by_ref() {
                let row = row.unwrap_or_else(|e| panic!("{}: {e}", path.display()));
                let event = row
                    .result
                    .unwrap_or_else(|e| panic!("{} {}: {e}", layout.name, path.display()));
                assert!(ids.insert(event.event_id.clone()), "event ids are unique");
                native.push(event);
                rows += 1;
            }
            let stats = reader.stats();
            assert_eq!(stats.refused, 0);
            // the settlement list's totals line is the only row passed over
            let skipped: u64 = stats.skipped.values().sum();
            let expected = u64::from(layout.totals.is_some());
            assert_eq!(skipped, expected, "{}: {:?}", path.display(), stats.skipped);
        }
        assert_eq!(
            rows, summary.rows[layout.name],
            "{}: every row read",
            layout.name
        );
    }
    for f in [
        "Xlsx",
        "Jsonl",
        "Fixed",
        "Csv { encoding: Gb18030, bom: false }",
        "Csv { encoding: Gbk, bom: false }",
        "Csv { encoding: Utf8, bom: true }",
        "Csv { encoding: Utf8, bom: false }",
    ] {
        assert!(
            formats.contains_key(f),
            "{f} is among the layouts: {formats:?}"
        );
    }

    let envelope = doudi_synth::native::envelope_events(tmp.path()).expect("envelope feeds");
    assert_eq!(native.len(), envelope.len());
    let (a, b) = (canonical(envelope), canonical(native));
    for (x, y) in a.iter().zip(&b) {
        assert_eq!(x, y);
    }
    assert_eq!(a, b);
}

#[test]
fn gen_native_puts_the_profile_beside_each_folder_and_feeds_check_passes_them() {
    let tmp = tempfile::tempdir().expect("tempdir");
    common::gen(
        tmp.path(),
        "400",
        "5",
        "data",
        &["--start", "2026-01-01", "--months", "3", "--native"],
    );
    for layout in ["yibao-settlement", "renshe-employment", "gongan-hukou"] {
        let dir = tmp.path().join("data/native").join(layout);
        let mut args = vec![
            "feeds".to_string(),
            "check".into(),
            "--profile".into(),
            dir.join("profile.toml").display().to_string(),
        ];
        let files = common::export_files(&dir);
        assert!(!files.is_empty(), "{layout} has files");
        args.extend(files);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let check = common::doudi(tmp.path(), &args);
        let text = String::from_utf8_lossy(&check.stdout);
        assert_eq!(check.status.code(), Some(0), "{layout}: {text}");
        assert!(text.contains("0 refused — ready"), "{text}");
    }
}
