//! Hostile native exports, per format: each bad row is refused with its row, column and why
//! (never its value), each bad file stops with a message that says what to do, rows around them
//! are read, nothing is lost (every data row is an event, a refusal or a counted skip) and
//! nothing panics. A proptest pass feeds the readers damaged files of every format.

use std::path::Path;
use std::sync::Arc;

use chrono::NaiveDate;
use doudi_feeds::{shipped, FeedReader, FileError, Profile, Row, RowError, Stats};
use doudi_model::Event;
use doudi_synth::native::{layout_for, write_layout, write_xlsx, Cell, Layout};
use proptest::prelude::*;

mod common;

/// The envelope events of a small generated year (every kind present).
fn events() -> Vec<Event> {
    let tmp = common::synth_dataset(1200, 7);
    doudi_synth::native::envelope_events(tmp.path()).expect("envelope feeds")
}

fn of_kind(events: &[Event], kind: &str, n: usize) -> Vec<Event> {
    let v: Vec<Event> = events
        .iter()
        .filter(|e| e.kind() == kind)
        .take(n)
        .cloned()
        .collect();
    assert!(!v.is_empty(), "the generated year has {kind} events");
    v
}

fn profile(name: &str) -> Profile {
    shipped::profile(name).expect("shipped").expect("loads")
}

fn layout(kind: &str) -> &'static Layout {
    layout_for(kind).expect("layout")
}

fn month() -> NaiveDate {
    NaiveDate::from_ymd_opt(2026, 3, 1).expect("date")
}

/// A layout's file as bytes.
fn native_bytes(layout: &Layout, events: &[Event]) -> Vec<u8> {
    let tmp = tempfile::tempdir().expect("tempdir");
    let path = tmp.path().join(format!("f.{}", layout.extension()));
    write_layout(layout, month(), events, &path).expect("write");
    std::fs::read(path).expect("read back")
}

struct Read {
    rows: Vec<Row>,
    error: Option<FileError>,
    stats: Stats,
}

impl Read {
    fn refused(&self) -> Vec<&RowError> {
        self.rows
            .iter()
            .filter_map(|r| r.result.as_ref().err())
            .collect()
    }
    fn events(&self) -> usize {
        self.rows.iter().filter(|r| r.result.is_ok()).count()
    }
    /// Nothing lost: every data row read is an event, a refusal or a counted skip.
    fn accounted(&self) {
        let skipped: u64 = self.stats.skipped.values().sum();
        assert_eq!(
            self.stats.rows,
            self.stats.events + self.stats.refused + skipped,
            "{:?}",
            self.stats
        );
        assert_eq!(
            self.rows.len() as u64,
            self.stats.events + self.stats.refused
        );
    }
}

fn read(profile: Profile, name: &str, bytes: Vec<u8>) -> Result<Read, FileError> {
    let mut reader = FeedReader::from_bytes(Arc::new(profile), name, bytes)?;
    let mut rows = Vec::new();
    let mut error = None;
    for r in reader.by_ref() {
        match r {
            Ok(r) => rows.push(r),
            Err(e) => error = Some(e),
        }
    }
    let out = Read {
        rows,
        error,
        stats: reader.stats().clone(),
    };
    out.accounted();
    Ok(out)
}

/// A GB18030 CSV as text lines, to edit cells, and back.
fn gb_lines(bytes: &[u8]) -> Vec<String> {
    let (text, _, bad) = encoding_rs::GB18030.decode(bytes);
    assert!(!bad);
    text.lines().map(str::to_string).collect()
}
fn gb_bytes(lines: &[String]) -> Vec<u8> {
    let text = lines.join("\r\n") + "\r\n";
    encoding_rs::GB18030.encode(&text).0.into_owned()
}
fn set_cell(line: &str, col: usize, value: &str) -> String {
    let mut cells: Vec<&str> = line.split(',').collect();
    cells[col] = value;
    cells.join(",")
}

/// A refusal names the row and column, says why, and never shows the value.
fn assert_refusal(e: &RowError, row: u64, column: &str, why: &str, value: &str) {
    assert_eq!(e.row, row, "{e}");
    assert_eq!(e.column.as_deref(), Some(column), "{e}");
    assert!(e.reason.contains(why), "{e}");
    assert!(
        !e.to_string().contains(value),
        "{e} shows the value {value}"
    );
}

/// A refusal expected: the row, the column, why, and the value it must not show.
type Refusal = (u64, &'static str, &'static str, &'static str);

/// The refusals of `r`, after asserting there are `total` and that the first are as `cases` say,
/// each checked by [`assert_refusal`].
fn refusals<'a>(r: &'a Read, total: usize, cases: &[Refusal]) -> Vec<&'a RowError> {
    let refused = r.refused();
    assert_eq!(refused.len(), total, "{refused:?}");
    for (e, (row, column, why, value)) in refused.iter().zip(cases) {
        assert_refusal(e, *row, column, why, value);
    }
    refused
}

/// The settlement list's refused rows (of five; the fifth, of mixed encodings, has no column).
const SETTLEMENT_REFUSALS: [Refusal; 4] = [
    (4, "医疗费总额", "more than two decimals", "1234.567"),
    (5, "结算日期", "not a real calendar date", "20260230"),
    (
        6,
        "结算日期",
        "is empty; every settlement event needs it",
        "\u{0}",
    ),
    (7, "医疗类别", "does not list", "99,"),
];

#[test]
fn gb18030_csv_bad_rows_are_refused_with_row_column_and_why_and_the_rest_read() {
    let events = events();
    let settlements = of_kind(&events, "settlement", 12);
    let layout = layout("settlement");
    let mut lines = gb_lines(&native_bytes(layout, &settlements));
    // line 1 title, line 2 header, lines 3.. data, last line totals
    lines[3] = set_cell(&lines[3], 13, "1234.567"); // 医疗费总额: three decimals of yuan
    lines[4] = set_cell(&lines[4], 11, "20260230"); // 结算日期: 2026-02-30
    lines[5] = set_cell(&lines[5], 11, ""); // 结算日期: empty, and a settlement needs it
    lines[6] = set_cell(&lines[6], 8, "99"); // 医疗类别: a code the map does not list
    let mut bytes = gb_bytes(&lines);
    // line 8 pasted in from a UTF-8 export: mixed encodings
    let utf8_row = format!("{}\r\n", lines[7]);
    let gb_row = encoding_rs::GB18030.encode(&utf8_row).0.into_owned();
    let at = bytes
        .windows(gb_row.len())
        .position(|w| w == gb_row.as_slice())
        .expect("row bytes");
    bytes.splice(at..at + gb_row.len(), utf8_row.bytes());

    let r = read(profile("yibao-settlement"), "2026-03.csv", bytes).expect("opens");
    assert!(r.error.is_none());
    assert_eq!(r.stats.rows, 13, "twelve settlements and the totals line");
    assert_eq!(r.stats.skipped.values().sum::<u64>(), 1);
    let refused = refusals(&r, 5, &SETTLEMENT_REFUSALS);
    assert_eq!(refused[0].field.as_deref(), Some("data.total_cost_fen"));
    assert_eq!(refused[4].row, 8);
    assert!(
        refused[4].reason.contains("mixed encodings"),
        "{}",
        refused[4]
    );
    assert_eq!(r.events(), 7);
    // the refused row's cells are kept for the dead letter, and map again once fixed
    let kept = &r
        .rows
        .iter()
        .find(|x| x.position.row == 4)
        .expect("row 4")
        .raw;
    let raw = String::from_utf8(kept.clone()).expect("raw is UTF-8 JSON");
    assert!(raw.contains("\"医疗费总额\":\"1234.567\""), "{raw}");
    let fixed = raw.replace("1234.567", "1234.56");
    let again = profile("yibao-settlement").map_raw(4, fixed.as_bytes());
    assert!(matches!(again, doudi_feeds::Mapped::Event(_)), "{again:?}");
}

#[test]
fn csv_files_that_cannot_be_read_say_why() {
    let events = events();
    let settlements = of_kind(&events, "settlement", 3);
    let settlement_layout = layout("settlement");
    let lines = gb_lines(&native_bytes(settlement_layout, &settlements));

    // the header lacks a column the profile reads
    let mut renamed = lines.clone();
    renamed[1] = renamed[1].replace("医疗费总额", "总费用");
    let r = read(profile("yibao-settlement"), "f.csv", gb_bytes(&renamed)).expect("opens");
    match r.error {
        Some(FileError::MissingColumn { column, row, .. }) => {
            assert_eq!((column.as_str(), row), ("医疗费总额", 2));
        }
        other => panic!("{other:?}"),
    }
    assert!(r.rows.is_empty());

    // an unclosed quote runs to the end: one refused row, over the row-size limit
    let mut quoted = lines.clone();
    quoted[3] = set_cell(&quoted[3], 2, "\"王");
    let mut p = profile("yibao-settlement");
    p.file.max_row_bytes = 300;
    let r = read(p, "f.csv", gb_bytes(&quoted)).expect("opens");
    let refused = r.refused();
    assert_eq!(refused.len(), 1);
    assert!(
        refused[0].reason.contains("unclosed quote"),
        "{}",
        refused[0]
    );
    assert_eq!(r.stats.rows, 2, "the row before, then the runaway row");

    // more data rows than the profile allows: the rows up to the limit, then a file error
    let mut p = profile("yibao-settlement");
    p.file.max_rows = 2;
    let r = read(p, "f.csv", gb_bytes(&lines)).expect("opens");
    assert_eq!(r.stats.rows, 2);
    match r.error {
        Some(
            e @ FileError::TooManyRows {
                limit: 2,
                last_row: 4,
                ..
            },
        ) => {
            assert!(e.to_string().contains("max_rows"), "{e}");
        }
        other => panic!("{other:?}"),
    }

    // UTF-16 (Excel's "Unicode text") is refused as a whole, with what to do
    let mut utf16 = vec![0xFF, 0xFE];
    utf16.extend("a,b\r\n".encode_utf16().flat_map(u16::to_le_bytes));
    match FeedReader::from_bytes(Arc::new(profile("yibao-settlement")), "u.csv", utf16) {
        Err(FileError::Encoding { message, .. }) => assert!(message.contains("UTF-16")),
        Err(e) => panic!("{e}"),
        Ok(_) => panic!("UTF-16 opened"),
    }

    // a UTF-8 export (with a BOM) read by a GB18030 profile: the BOM decides
    let text = lines.join("\r\n");
    let mut bom = vec![0xEF, 0xBB, 0xBF];
    bom.extend(text.as_bytes());
    let r = read(profile("yibao-settlement"), "bom.csv", bom).expect("opens");
    assert_eq!((r.events(), r.refused().len()), (3, 0));

    // GB18030 bytes in a file the profile reads as UTF-8
    let marriages = of_kind(&events, "marriage", 1);
    let mut m = String::from_utf8(native_bytes(layout("marriage"), &marriages)).expect("utf-8");
    let row = m.lines().nth(1).expect("a row").to_string();
    m.push_str(&row);
    m.push('\n');
    let (gb, _, _) = encoding_rs::GB18030.encode(&m);
    let mut mixed = m.as_bytes()[..m.find('\n').expect("header") + 1].to_vec();
    mixed.extend_from_slice(&gb[gb.iter().position(|b| *b == b'\n').expect("nl") + 1..]);
    let r = read(profile("minzheng-marriage"), "m.csv", mixed).expect("opens");
    assert!(r.refused().iter().all(|e| e.reason.contains("not UTF-8")));
    assert_eq!(r.refused().len(), 2);
}

#[test]
fn xlsx_bad_cells_truncated_workbooks_and_row_limits() {
    let events = events();
    let jobs = of_kind(&events, "job_started", 4);
    let layout = layout("job_started");
    let tmp = tempfile::tempdir().expect("tempdir");
    let path = tmp.path().join("rs.xlsx");
    let mut rows: Vec<Vec<Cell>> = jobs.iter().map(|e| (layout.row)(e)).collect();
    rows[0][8] = Cell::Number("3000.125".into()); // 月工资（元）: three decimals
    rows[1][7] = Cell::Text("2026-02-30".into()); // 业务日期
    rows[2][7] = Cell::Text(String::new()); // 业务日期 empty: started_on is required
    write_xlsx(layout, month(), rows.into_iter(), &path).expect("xlsx");
    let bytes = std::fs::read(&path).expect("read");

    let r = read(profile("renshe-employment"), "rs.xlsx", bytes.clone()).expect("opens");
    assert!(r.error.is_none());
    refusals(
        &r,
        3,
        &[
            (2, "月工资(元)", "more than two decimals", "3000.125"),
            (3, "业务日期", "not a real calendar date", "2026-02-30"),
            (4, "业务日期", "is empty", "\u{0}"),
        ],
    );
    assert_eq!(r.events(), 1);
    assert_eq!(r.rows[0].position.sheet.as_deref(), Some("就业失业登记"));

    // a workbook cut short in transfer
    for cut in [bytes.len() / 2, bytes.len() - 10, 100] {
        match FeedReader::from_bytes(
            Arc::new(profile("renshe-employment")),
            "cut.xlsx",
            bytes[..cut].to_vec(),
        ) {
            Err(e @ FileError::Workbook { .. }) => {
                assert!(e.to_string().contains("export or copy it again"), "{e}")
            }
            Err(e) => panic!("{e}"),
            Ok(_) => panic!("a truncated workbook opened"),
        }
    }
    // a CSV named .xlsx
    assert!(matches!(
        FeedReader::from_bytes(
            Arc::new(profile("renshe-employment")),
            "x.xlsx",
            b"a,b\n".to_vec()
        ),
        Err(FileError::Workbook { .. })
    ));
    // the sheet the profile names is not there
    let mut p = profile("renshe-employment");
    p.file.sheet = Some("Sheet1".into());
    match FeedReader::from_bytes(Arc::new(p), "rs.xlsx", bytes.clone()) {
        Err(FileError::NoSuchSheet { found, .. }) => assert_eq!(found, "就业失业登记"),
        Err(e) => panic!("{e}"),
        Ok(_) => panic!("opened"),
    }
    // more rows than the profile allows
    let mut p = profile("renshe-employment");
    p.file.max_rows = 3;
    let r = read(p, "rs.xlsx", bytes).expect("opens");
    assert_eq!(r.stats.rows, 3);
    assert!(
        matches!(&r.error, Some(FileError::TooManyRows { limit: 3, where_, .. }) if where_.contains("就业失业登记")),
        "{:?}",
        r.error
    );
}

#[test]
fn json_lines_and_fixed_width_bad_records() {
    let events = events();
    let moves = of_kind(&events, "relocated", 3);
    let text = String::from_utf8(native_bytes(layout("relocated"), &moves)).expect("utf-8");
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    let at = lines[1].find("\"bqrq\":\"").expect("bqrq") + 8;
    lines[1].replace_range(at..at + 10, "2026-02-30");
    lines.push("{not json".into());
    lines.push("{\"ywlsh\":[1,2]}".into());
    lines.push(String::new());
    let without_date = lines[0].replace("\"bqrq\"", "\"bqrq_old\""); // bqrq missing: required
    lines.push(without_date);
    let r = read(
        profile("banqian-relocation"),
        "bq.jsonl",
        lines.join("\n").into_bytes(),
    )
    .expect("opens");
    let refused = r.refused();
    assert_eq!(r.stats.blank, 0, "blank lines are passed by, not counted");
    assert_eq!(refused.len(), 4, "{refused:?} {:?} {:?}", r.error, r.stats);
    assert_refusal(
        refused[0],
        2,
        "bqrq",
        "not a real calendar date",
        "2026-02-30",
    );
    assert!(refused
        .iter()
        .any(|e| e.reason.starts_with("is not a JSON object")));
    assert!(refused
        .iter()
        .any(|e| e.column.as_deref() == Some("ywlsh") && e.reason.contains("list or an object")));
    assert!(refused
        .iter()
        .any(|e| e.column.as_deref() == Some("bqrq") && e.reason.contains("every relocated")));

    let certs = of_kind(&events, "disability_certified", 3);
    let bytes = native_bytes(layout("disability_certified"), &certs);
    let (text, _, _) = encoding_rs::GB18030.decode(&bytes);
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    lines[0].push_str("EXTRA");
    let l1: Vec<char> = lines[1].chars().collect();
    // 发证日期 is characters 49..57
    let mut l1 = l1;
    l1.splice(49..57, "20260230".chars());
    lines[1] = l1.into_iter().collect();
    let mut out = encoding_rs::GB18030
        .encode(&(lines.join("\r\n") + "\r\n"))
        .0
        .into_owned();
    out.extend("王秀英写成了UTF-8\r\n".as_bytes());
    let r = read(profile("canlian-disability"), "cl.txt", out).expect("opens");
    let refused = r.refused();
    assert_eq!(refused.len(), 3, "{refused:?}");
    assert!(refused[0]
        .reason
        .contains("longer than the profile's widths"));
    assert_refusal(
        refused[1],
        2,
        "发证日期",
        "not a real calendar date",
        "20260230",
    );
    assert!(refused[2].reason.contains("mixed encodings"));
    assert_eq!(r.events(), 1);
}

#[test]
fn profile_mistakes_are_one_message_with_file_and_line() {
    let base = shipped::text("yibao-settlement").expect("shipped");
    let bad = |from: &str, to: &str| {
        assert!(base.contains(from), "{from}");
        Profile::parse(&base.replacen(from, to, 1), Path::new("mine.toml"))
            .expect_err("refused")
            .to_string()
    };
    let line_of = |s: &str| {
        base[..base.find(s).expect("in profile")]
            .matches('\n')
            .count()
            + 1
    };
    let unknown = bad("header_row = 2", "header_rows = 2");
    let at = format!("line {}", line_of("header_row = 2"));
    assert!(
        unknown.contains("mine.toml")
            && unknown.contains("unknown field `header_rows`")
            && unknown.contains(&at),
        "{unknown}"
    );
    let field = bad("settled_on = {", "settled_at = {");
    let at = format!("line {}", line_of("settled_on = {"));
    assert!(
        field.contains(&at) && field.contains("settlement has no field \"settled_at\""),
        "{field}"
    );
    let target = bad("\"21\" = \"inpatient\"", "\"21\" = \"inpatent\"");
    assert!(
        target.contains("not one of inpatient, outpatient"),
        "{target}"
    );
    let kind = bad("kind = \"settlement\"", "kind = \"death\"");
    assert!(
        kind.contains("not one that health_insurance sends"),
        "{kind}"
    );
    let required = bad("settled_on = {", "# settled_on = {");
    assert!(required.contains("lacks settled_on"), "{required}");
}

#[test]
fn feeds_check_reports_refusals_without_values_and_exits_1() {
    let events = events();
    let settlements = of_kind(&events, "settlement", 5);
    let mut lines = gb_lines(&native_bytes(layout("settlement"), &settlements));
    lines[3] = set_cell(&lines[3], 14, "88.888");
    let tmp = tempfile::tempdir().expect("tempdir");
    std::fs::write(tmp.path().join("2026-03.csv"), gb_bytes(&lines)).expect("write");
    let check = [
        "feeds",
        "check",
        "--profile",
        "yibao-settlement",
        "2026-03.csv",
    ];
    let out = common::doudi(tmp.path(), &check);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.contains(
            "row 4, column 基金支付总额 (data.fund_paid_fen): has more than two decimals"
        ),
        "{text}"
    );
    assert!(text.contains("events made            4"), "{text}");
    assert!(!text.contains("88.888"));
    let name = settlements[0].subject.name.clone().unwrap_or_default();
    assert!(
        name.is_empty() || !text.contains(&name),
        "a sample shows a name unmasked"
    );

    let json = common::doudi(tmp.path(), &[&check[..], &["--json"]].concat());
    let v: serde_json::Value = serde_json::from_slice(&json.stdout).expect("json report");
    assert_eq!(v["files"][0]["refusals"][0]["column"], "基金支付总额");
    assert_eq!(v["files"][0]["by_kind"]["settlement"], 4);
    assert_eq!(v["profile"]["version"], 1);

    let bad = common::doudi(
        tmp.path(),
        &["feeds", "check", "--profile", "nope.toml", "x.csv"],
    );
    assert_eq!(bad.status.code(), Some(2));
}

fn damaged(bytes: Vec<u8>, edits: &[(usize, u8)], cut: usize) -> Vec<u8> {
    let mut b = bytes;
    for (at, v) in edits {
        if !b.is_empty() {
            let i = at % b.len();
            b[i] = *v;
        }
    }
    let keep = b.len() - cut.min(b.len());
    b.truncate(keep);
    b
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    /// Damaged files of every format: no panic, every row accounted for.
    #[test]
    fn damaged_files_never_panic_and_lose_nothing(
        which in 0usize..5,
        edits in proptest::collection::vec((any::<usize>(), any::<u8>()), 0..12),
        cut in 0usize..400,
    ) {
        static CASES: std::sync::OnceLock<Vec<(&'static str, &'static str, Vec<u8>)>> =
            std::sync::OnceLock::new();
        let cases = CASES.get_or_init(|| {
            let events = events();
            let mut v = Vec::new();
            for (kind, name, file) in [
                ("settlement", "yibao-settlement", "a.csv"),
                ("job_started", "renshe-employment", "b.xlsx"),
                ("relocated", "banqian-relocation", "c.jsonl"),
                ("disability_certified", "canlian-disability", "d.txt"),
                ("property_registered", "budongchan-property", "e.csv"),
            ] {
                let evs = of_kind(&events, kind, 6);
                v.push((name, file, native_bytes(layout(kind), &evs)));
            }
            v
        });
        let (name, file, bytes) = &cases[which];
        let bytes = damaged(bytes.clone(), &edits, cut);
        if let Ok(r) = read(profile(name), file, bytes) {
            for row in r.refused() {
                prop_assert!(row.row >= 1);
            }
        }
    }
}
