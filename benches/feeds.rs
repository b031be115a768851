//! Department exports through `doudi feeds check`'s reader (profile mapping, every field parsed,
//! every event through the model's parser): rows/s for a GB18030 CSV settlement list and for a
//! full Excel sheet of 1,048,576 rows (header and 1,048,575 settlements), both written from the
//! generated year's settlements in the shipped `yibao-settlement` layout.
//!
//! ```sh
//! cargo bench --bench feeds                         # 1,048,575 data rows each
//! DOUDI_BENCH_ROWS=200000 cargo bench --bench feeds
//! ```
//! A benchmark, not a test: nothing here asserts a speed. Without `--bench` (as `cargo test
//! --benches` runs it) it reads 5,000 rows of each, to show it works.

use std::io::Write;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use chrono::NaiveDate;
use doudi_feeds::{shipped, CheckReport, Encoding, FeedReader, Format, Profile};
use doudi_model::Event;
use doudi_synth::native::{layout_for, write_xlsx, Cell, Layout, NativeFormat};
use doudi_synth::GenConfig;

#[cfg(all(target_os = "linux", not(target_env = "musl")))]
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// Excel's own limit: 1,048,576 rows a sheet, the header among them.
const SHEET_ROWS: usize = 1_048_576;

fn main() {
    let benching = std::env::args().any(|a| a == "--bench");
    let rows: usize = std::env::var("DOUDI_BENCH_ROWS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(if benching { SHEET_ROWS - 1 } else { 5_000 })
        .min(SHEET_ROWS - 1);
    let tmp = tempfile::tempdir().expect("tempdir");
    let settlements = settlements(tmp.path());
    let layout = layout_for("settlement").expect("settlement layout");
    // the i-th row: the generated settlements over and over, each with an id of its own
    let row = |i: usize| -> Vec<Cell> {
        let mut e = settlements[i % settlements.len()].clone();
        e.event_id = format!("yb-{i:09}");
        (layout.row)(&e)
    };
    println!(
        "{rows} data rows from {} generated settlements; machine: {} rustc processes running",
        settlements.len(),
        std::process::Command::new("pgrep")
            .args(["-c", "rustc"])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
            .unwrap_or_else(|_| "?".into())
    );

    // GB18030 CSV, the office's own layout
    let csv_path = tmp.path().join("settlements.csv");
    let started = Instant::now();
    write_csv(layout, rows, &row, &csv_path);
    let size = std::fs::metadata(&csv_path).map(|m| m.len()).unwrap_or(0);
    println!(
        "csv  written: {:.1} MB in {:.1} s",
        size as f64 / 1e6,
        started.elapsed().as_secs_f64()
    );
    let csv_profile = shipped::profile("yibao-settlement")
        .expect("shipped")
        .expect("loads");
    check("csv  (GB18030)", csv_profile, &csv_path, rows);

    // the same rows as one Excel sheet
    let xlsx_layout = Layout {
        format: NativeFormat::Xlsx,
        sheet: "结算清单",
        title: None,
        totals: None,
        ..*layout
    };
    let xlsx_path = tmp.path().join("settlements.xlsx");
    let started = Instant::now();
    write_xlsx(
        &xlsx_layout,
        NaiveDate::from_ymd_opt(2026, 3, 1).expect("date"),
        (0..rows).map(row),
        &xlsx_path,
    )
    .expect("write xlsx");
    let size = std::fs::metadata(&xlsx_path).map(|m| m.len()).unwrap_or(0);
    println!(
        "xlsx written: {:.1} MB in {:.1} s",
        size as f64 / 1e6,
        started.elapsed().as_secs_f64()
    );
    let mut xlsx_profile = shipped::profile("yibao-settlement")
        .expect("shipped")
        .expect("loads");
    xlsx_profile.file.format = Format::Xlsx;
    xlsx_profile.file.encoding = Encoding::Utf8;
    xlsx_profile.file.header_row = 1;
    xlsx_profile.file.sheet = Some("结算清单".into());
    check("xlsx (one sheet)", xlsx_profile, &xlsx_path, rows);
}

fn settlements(dir: &Path) -> Vec<Event> {
    let cfg = GenConfig {
        households: 2_000,
        seed: 1,
        ..GenConfig::default()
    };
    doudi_synth::write_dataset(dir, &cfg, &mut |_| {}).expect("generate");
    doudi_synth::native::envelope_events(dir)
        .expect("envelope feeds")
        .into_iter()
        .filter(|e| e.kind() == "settlement")
        .collect()
}

/// Stream rows to a GB18030 CSV with the layout's title and header rows.
fn write_csv(layout: &Layout, rows: usize, row: &dyn Fn(usize) -> Vec<Cell>, path: &Path) {
    let mut file = std::io::BufWriter::new(std::fs::File::create(path).expect("create"));
    let mut chunk = csv::WriterBuilder::new()
        .flexible(true)
        .from_writer(Vec::new());
    chunk
        .write_record(["六安市医疗保障局 医保结算清单"])
        .expect("title");
    chunk.write_record(layout.columns).expect("header");
    for i in 0..rows {
        let cells: Vec<String> = row(i)
            .into_iter()
            .map(|c| match c {
                Cell::Text(s) | Cell::Number(s) => s,
                Cell::Date(d) => d.format("%Y-%m-%d").to_string(),
                Cell::DateTime(t) => t.format("%Y-%m-%d %H:%M:%S").to_string(),
            })
            .collect();
        chunk.write_record(&cells).expect("row");
        if i % 10_000 == 9_999 || i + 1 == rows {
            let text = chunk.into_inner().expect("flush");
            let text = String::from_utf8_lossy(&text).into_owned();
            let (gb, _, _) = encoding_rs::GB18030.encode(&text);
            file.write_all(&gb).expect("write");
            chunk = csv::WriterBuilder::new()
                .flexible(true)
                .from_writer(Vec::new());
        }
    }
    file.flush().expect("flush");
}

/// What `doudi feeds check` does with a file, timed.
fn check(label: &str, profile: Profile, path: &Path, rows: usize) {
    let started = Instant::now();
    let profile = Arc::new(profile);
    let reader = FeedReader::open(Arc::clone(&profile), path).expect("open");
    let mut report = CheckReport::new(&profile, 5);
    report.check(reader, &mut |_, _| {});
    let secs = started.elapsed().as_secs_f64();
    let t = report.totals();
    assert_eq!(t.events as usize, rows, "{:?}", report.files[0].error);
    println!(
        "{label}: {} rows in {secs:.2} s = {:.0} rows/s ({} events, {} refused)",
        t.rows,
        t.rows as f64 / secs,
        t.events,
        t.refused
    );
}
