//! Streaming snapshot files: planning byte-range chunks at line boundaries, and reading one chunk
//! row by row into a [`Partial`]. A bad row becomes a [`BadRow`] and reading goes on.

use std::fs::File;
use std::io::{self, BufRead, BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use serde::{Deserialize, Serialize};

use crate::sanitize::sanitize;
use doudi_model::IdNumber;

use crate::aggregate::{Apply, Cx, Partial};
use crate::progress::{Flow, Progress};
use crate::snapshot::{all_columns, required_columns, Format, Kind, PlainCsv, SnapshotRow};
use crate::CrosscheckError;

/// Rows between two progress reports (and stop-flag checks).
const REPORT_EVERY: u64 = 8192;

/// A snapshot row that could not be used: where it is and why. Never holds the row itself.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct BadRow {
    /// File name inside the snapshot directory.
    pub file: String,
    /// Line number in the file, from 1 (the CSV header is line 1).
    pub line: u64,
    /// The field (column) at fault, when known.
    pub field: Option<String>,
    /// What was wrong, with any quoted value masked.
    pub reason: String,
}

/// A snapshot file ready to be read in chunks.
#[derive(Clone, Debug)]
pub(crate) struct FilePlan {
    pub name: String,
    pub path: PathBuf,
    pub kind: Kind,
    pub format: Format,
    pub size: u64,
    pub header: Option<csv::ByteRecord>,
    /// Lines before the data (1 for a CSV header).
    pub header_lines: u64,
    /// Byte offset of the first data line.
    pub data_start: u64,
}

/// A bad row whose line is counted from the start of its chunk.
#[derive(Clone, Debug)]
pub(crate) struct ChunkBad {
    pub line_in_chunk: u64,
    pub field: Option<String>,
    pub reason: String,
}

pub(crate) struct ChunkOut {
    pub partial: Partial,
    /// Newlines in the chunk (lines for numbering the next chunk).
    pub newlines: u64,
    pub bad: Vec<ChunkBad>,
    pub bad_count: u64,
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> CrosscheckError + '_ {
    move |source| CrosscheckError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Read the header of a CSV file and check its columns; JSONL needs nothing.
pub(crate) fn plan(
    path: &Path,
    name: &str,
    kind: Kind,
    format: Format,
) -> Result<FilePlan, CrosscheckError> {
    let size = std::fs::metadata(path).map_err(io_err(path))?.len();
    let mut plan = FilePlan {
        name: name.to_string(),
        path: path.to_path_buf(),
        kind,
        format,
        size,
        header: None,
        header_lines: 0,
        data_start: 0,
    };
    if format == Format::Jsonl {
        return Ok(plan);
    }
    let f = File::open(path).map_err(io_err(path))?;
    let mut r = BufReader::new(f);
    let mut line = Vec::new();
    let n = r.read_until(b'\n', &mut line).map_err(io_err(path))?;
    // A file without its header row would show data here: mask what could be personal.
    let bad_header = |reason: String| CrosscheckError::BadHeader {
        file: name.to_string(),
        reason: sanitize(&reason),
    };
    if n == 0 {
        return Err(bad_header(
            "the file is empty: a header row is needed".into(),
        ));
    }
    let text =
        std::str::from_utf8(&line).map_err(|_| bad_header("the header row is not UTF-8".into()))?;
    let text = text.trim_start_matches('\u{feff}').trim_end();
    let mut header = csv::ByteRecord::new();
    let columns: Vec<String> = text.split(',').map(|c| c.trim().to_string()).collect();
    for c in &columns {
        if !all_columns(kind).contains(&c.as_str()) {
            return Err(bad_header(format!(
                "unknown column {c:?} for a {kind} snapshot (columns: {})",
                all_columns(kind).join(", ")
            )));
        }
        header.push_field(c.as_bytes());
    }
    for req in required_columns(kind) {
        if !columns.iter().any(|c| c == req) {
            return Err(bad_header(format!("missing column {req:?}")));
        }
    }
    plan.header = Some(header);
    plan.header_lines = 1;
    plan.data_start = n as u64;
    Ok(plan)
}

/// Split the data of a file into byte ranges of about `target` bytes, each starting at the
/// beginning of a line.
pub(crate) fn chunks(plan: &FilePlan, target: u64) -> Result<Vec<(u64, u64)>, CrosscheckError> {
    let start = plan.data_start;
    let end = plan.size;
    if end <= start {
        return Ok(vec![(start, start)]);
    }
    let target = target.max(1 << 16);
    let mut bounds = vec![start];
    let mut f = File::open(&plan.path).map_err(io_err(&plan.path))?;
    let mut pos = start + target;
    let mut buf = vec![0u8; 1 << 16];
    while pos < end {
        // the next line starts after the first newline at or after pos - 1
        f.seek(SeekFrom::Start(pos - 1))
            .map_err(io_err(&plan.path))?;
        let mut scanned = pos - 1;
        let mut found = None;
        loop {
            let n = f.read(&mut buf).map_err(io_err(&plan.path))?;
            if n == 0 {
                break;
            }
            if let Some(i) = buf[..n].iter().position(|b| *b == b'\n') {
                found = Some(scanned + i as u64 + 1);
                break;
            }
            scanned += n as u64;
        }
        match found {
            Some(b) if b < end => {
                bounds.push(b);
                pos = b + target;
            }
            _ => break,
        }
    }
    bounds.push(end);
    Ok(bounds.windows(2).map(|w| (w[0], w[1])).collect())
}

/// Counts bytes and newlines as they are read.
struct Counting<R> {
    inner: R,
    bytes: u64,
    newlines: u64,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.bytes += n as u64;
        self.newlines += count_newlines(&buf[..n]);
        Ok(n)
    }
}

/// Newlines in `buf`, counted in blocks small enough for a byte counter (which the compiler
/// turns into wide vector compares).
fn count_newlines(buf: &[u8]) -> u64 {
    buf.chunks(255)
        .map(|block| {
            u64::from(
                block
                    .iter()
                    .fold(0u8, |n, &b| n.wrapping_add(u8::from(b == b'\n'))),
            )
        })
        .sum()
}

struct Reporter<'a> {
    file: &'a str,
    progress: &'a dyn Progress,
    stop: &'a AtomicBool,
    rows: u64,
    reported_rows: u64,
    reported_bytes: u64,
}

impl Reporter<'_> {
    /// Report progress now and then; `false` when the run must stop.
    fn tick(&mut self, bytes: u64) -> bool {
        self.rows += 1;
        if self.rows - self.reported_rows >= REPORT_EVERY {
            self.flush(bytes)
        } else {
            true
        }
    }

    fn flush(&mut self, bytes: u64) -> bool {
        let flow = self.progress.advance(
            self.file,
            bytes.saturating_sub(self.reported_bytes),
            self.rows - self.reported_rows,
        );
        self.reported_rows = self.rows;
        self.reported_bytes = bytes;
        if flow == Flow::Stop {
            self.stop.store(true, Ordering::SeqCst);
        }
        !self.stop.load(Ordering::Relaxed)
    }
}

/// Rows looked up in the register together (see [`crate::index::IdTable::get_all`]).
const LOOKUP_BATCH: usize = 256;

/// A well-formed row waiting for its lookup: a record already made (JSONL, or a CSV row read
/// through serde), or a plain CSV row kept as its cells in a reused record with its
/// [`PlainCsv::facts`], applied from them (no string of it is copied unless kept).
enum Pending<R: PlainCsv> {
    Made(R),
    /// A kept record, and its facts.
    Plain(usize, R::Facts),
}

struct Sink<'a, R: PlainCsv> {
    cx: &'a Cx<'a>,
    out: ChunkOut,
    max_bad: usize,
    /// Well-formed rows waiting for their lookup, applied in order.
    pending: Vec<Pending<R>>,
    /// Kept records holding pending plain rows (the first `kept` of them).
    kept: usize,
    ids: Vec<IdNumber>,
    found: Vec<Option<u32>>,
}

impl<R: SnapshotRow + PlainCsv + Apply> Sink<'_, R> {
    fn bad(&mut self, line: u64, field: Option<String>, reason: String) {
        self.out.bad_count += 1;
        if self.out.bad.len() < self.max_bad {
            self.out.bad.push(ChunkBad {
                line_in_chunk: line,
                field,
                reason,
            });
        }
    }

    fn full(&self) -> bool {
        self.pending.len() >= LOOKUP_BATCH
    }

    /// A record made by serde (flush when [`Sink::full`]).
    fn row(&mut self, line: u64, row: R) {
        for (field, text) in row.required_text().into_iter().flatten() {
            if text.trim().is_empty() {
                self.bad(line, Some(field.to_string()), "must not be blank".into());
                return;
            }
        }
        match IdNumber::parse(row.id_number()) {
            Ok(id) => {
                self.ids.push(id);
                self.pending.push(Pending::Made(row));
            }
            Err(e) => self.bad(line, Some("id_number".into()), e.to_string()),
        }
    }

    /// The plain row in kept record `self.kept` (flush when [`Sink::full`]): the same checks
    /// as [`Sink::row`] on the record [`PlainCsv::plain`] would make, on the cells.
    fn plain_row(&mut self, line: u64, cells: &Cells, facts: R::Facts) {
        for &(field, i) in R::REQUIRED {
            if cells.cell(i).is_none_or(|t| t.trim().is_empty()) {
                self.bad(line, Some(field.to_string()), "must not be blank".into());
                return;
            }
        }
        match IdNumber::parse(cells.cell(R::ID).unwrap_or("")) {
            Ok(id) => {
                self.ids.push(id);
                self.pending.push(Pending::Plain(self.kept, facts));
                self.kept += 1;
            }
            Err(e) => self.bad(line, Some("id_number".into()), e.to_string()),
        }
    }

    /// Look the waiting rows up and apply them, in the order they were read. A plain row whose
    /// kept record or column map is missing (which [`Sink::plain_row`] never leaves) is an
    /// error naming the file, never a row skipped in silence.
    fn flush(
        &mut self,
        file: &str,
        kept: &[csv::StringRecord],
        columns: Option<&[usize]>,
    ) -> Result<(), CrosscheckError> {
        let cx = self.cx;
        self.cx.index.by_id.get_all(&self.ids, &mut self.found);
        self.ids.clear();
        let p = &mut self.out.partial;
        for (row, member) in self.pending.drain(..).zip(self.found.iter().copied()) {
            p.rows += 1;
            if member.is_some() {
                p.matched += 1;
            }
            match (row, member) {
                (Pending::Made(row), _) => row.apply(member, cx, p),
                (Pending::Plain(..), None) => R::unmatched(cx, p),
                (Pending::Plain(k, facts), Some(m)) => {
                    let (Some(record), Some(columns)) = (kept.get(k), columns) else {
                        return Err(CrosscheckError::Internal {
                            file: file.to_string(),
                            reason: format!(
                                "plain row {k} of a lookup batch has no kept record \
                                 ({} kept) or no column map",
                                kept.len()
                            ),
                        });
                    };
                    let cells = Cells { record, columns };
                    R::apply_plain(facts, &cells, m, cx, p);
                }
            }
        }
        self.kept = 0;
        Ok(())
    }
}

/// Read the byte range `range` of `plan` as rows of `R`.
pub(crate) fn read_chunk<R: SnapshotRow + PlainCsv + Apply>(
    plan: &FilePlan,
    range: (u64, u64),
    cx: &Cx,
    progress: &dyn Progress,
    stop: &AtomicBool,
) -> Result<ChunkOut, CrosscheckError> {
    let mut f = File::open(&plan.path).map_err(io_err(&plan.path))?;
    f.seek(SeekFrom::Start(range.0))
        .map_err(io_err(&plan.path))?;
    let mut src = Counting {
        inner: f.take(range.1 - range.0),
        bytes: 0,
        newlines: 0,
    };
    let mut sink = Sink {
        cx,
        out: ChunkOut {
            partial: Partial::default(),
            newlines: 0,
            bad: Vec::new(),
            bad_count: 0,
        },
        max_bad: cx.cfg.max_bad_rows_listed,
        pending: Vec::with_capacity(LOOKUP_BATCH),
        kept: 0,
        ids: Vec::with_capacity(LOOKUP_BATCH),
        found: Vec::with_capacity(LOOKUP_BATCH),
    };
    let mut rep = Reporter {
        file: &plan.name,
        progress,
        stop,
        rows: 0,
        reported_rows: 0,
        reported_bytes: 0,
    };
    match plan.format {
        Format::Csv => {
            let header: Vec<String> = plan
                .header
                .as_ref()
                .map(|h| {
                    h.iter()
                        .map(|f| String::from_utf8_lossy(f).into_owned())
                        .collect()
                })
                .unwrap_or_default();
            let mut rdr = csv::ReaderBuilder::new()
                .has_headers(false)
                .flexible(false)
                .buffer_capacity(1 << 17)
                .from_reader(&mut src);
            let plain = plain_columns(plan.kind, &header);
            // Records holding the pending plain rows, reused batch after batch; the one past
            // them is read into.
            let mut kept: Vec<csv::StringRecord> = Vec::with_capacity(LOOKUP_BATCH + 1);
            loop {
                if sink.full() {
                    sink.flush(&plan.name, &kept, plain.as_deref())?;
                }
                if kept.len() <= sink.kept {
                    kept.push(csv::StringRecord::new());
                }
                let rec = &mut kept[sink.kept];
                match rdr.read_record(rec) {
                    Ok(false) => break,
                    Ok(true) => {
                        let rec = &*rec;
                        let line = rec.position().map(|p| p.line()).unwrap_or(0);
                        let cells = match &plain {
                            Some(columns) if rec.len() == header.len() => Some(Cells {
                                record: rec,
                                columns,
                            }),
                            _ => None,
                        };
                        if let Some((cells, facts)) =
                            cells.and_then(|c| R::facts(&c).map(|f| (c, f)))
                        {
                            sink.plain_row(line, &cells, facts);
                            if !rep.tick(rdr.position().byte()) {
                                return Err(CrosscheckError::Interrupted);
                            }
                            continue;
                        }
                        let cells = || {
                            serde::de::value::MapDeserializer::new(
                                header
                                    .iter()
                                    .map(String::as_str)
                                    .zip(rec.iter().map(cell::Cell)),
                            )
                        };
                        // Fast path untracked; on error, again with the field path tracked.
                        match R::deserialize(cells()) {
                            Ok(row) => sink.row(line, row),
                            Err(plain) => {
                                let (field, reason) =
                                    match serde_path_to_error::deserialize::<_, R>(cells()) {
                                        Err(e) => {
                                            let path = e.path().to_string();
                                            ((path != ".").then_some(path), e.into_inner())
                                        }
                                        Ok(_) => (None, plain),
                                    };
                                sink.bad(line, field, sanitize(&reason.to_string()));
                            }
                        }
                    }
                    Err(e) => {
                        let line = e.position().map(|p| p.line()).unwrap_or(0);
                        match e.kind() {
                            csv::ErrorKind::Io(_) => {
                                return Err(CrosscheckError::Io {
                                    path: plan.path.clone(),
                                    source: io::Error::other(e.to_string()),
                                })
                            }
                            csv::ErrorKind::UnequalLengths {
                                expected_len, len, ..
                            } => sink.bad(
                                line,
                                None,
                                format!("{len} fields where the header has {expected_len}"),
                            ),
                            _ => sink.bad(line, None, sanitize(&e.to_string())),
                        }
                    }
                }
                let bytes = rdr.position().byte();
                if !rep.tick(bytes) {
                    return Err(CrosscheckError::Interrupted);
                }
            }
            sink.flush(&plan.name, &kept, plain.as_deref())?;
        }
        Format::Jsonl => {
            let mut r = BufReader::with_capacity(1 << 17, &mut src);
            let mut buf = Vec::with_capacity(512);
            let mut line: u64 = 0;
            let mut bytes: u64 = 0;
            loop {
                if sink.full() {
                    sink.flush(&plan.name, &[], None)?;
                }
                buf.clear();
                let n = r.read_until(b'\n', &mut buf).map_err(io_err(&plan.path))?;
                if n == 0 {
                    break;
                }
                line += 1;
                bytes += n as u64;
                if buf.iter().all(u8::is_ascii_whitespace) {
                    continue;
                }
                match serde_json::from_slice::<R>(&buf) {
                    Ok(row) => sink.row(line, row),
                    Err(plain) => {
                        // again with the field path tracked, for the report
                        let mut de = serde_json::Deserializer::from_slice(&buf);
                        let (field, reason) =
                            match serde_path_to_error::deserialize::<_, R>(&mut de) {
                                Err(e) => {
                                    let path = e.path().to_string();
                                    ((path != ".").then_some(path), e.into_inner().to_string())
                                }
                                Ok(_) => (None, plain.to_string()),
                            };
                        sink.bad(line, field, sanitize(&reason));
                    }
                }
                if !rep.tick(bytes) {
                    return Err(CrosscheckError::Interrupted);
                }
            }
            sink.flush(&plan.name, &[], None)?;
        }
    }
    rep.flush(range.1 - range.0);
    if stop.load(Ordering::Relaxed) {
        return Err(CrosscheckError::Interrupted);
    }
    sink.out.newlines = src.newlines;
    Ok(sink.out)
}

/// Where each of `kind`'s columns ([`all_columns`] order) is in a file with `header`
/// (`usize::MAX`: not there), or `None` when the header names a column twice (serde then refuses
/// every row, and says why).
fn plain_columns(kind: Kind, header: &[String]) -> Option<Vec<usize>> {
    let mut seen = std::collections::BTreeSet::new();
    if !header.iter().all(|c| seen.insert(c.as_str())) {
        return None;
    }
    Some(
        all_columns(kind)
            .iter()
            .map(|c| header.iter().position(|h| h == c).unwrap_or(usize::MAX))
            .collect(),
    )
}

/// A CSV row's cells by column ([`all_columns`] order), read as serde reads them through
/// [`cell::Cell`] (the same values, the same refusals), with the common forms (a plain date, a
/// month, a region code) read without serde's detour through an owned string. Each method
/// gives `None` where serde must decide.
pub(crate) struct Cells<'r> {
    record: &'r csv::StringRecord,
    columns: &'r [usize],
}

impl<'r> Cells<'r> {
    /// The cell of column `i`, `None` when the file has no such column.
    pub fn cell(&self, i: usize) -> Option<&'r str> {
        self.columns.get(i).and_then(|&p| self.record.get(p))
    }

    /// A text field.
    pub fn text(&self, i: usize) -> Option<String> {
        self.cell(i).map(str::to_string)
    }

    /// Whether [`Cells::text`] gives the field.
    pub fn has(&self, i: usize) -> bool {
        self.cell(i).is_some()
    }

    /// Whether [`Cells::value`] gives the field (for types read without allocating).
    pub fn ok<T: serde::Deserialize<'r>>(&self, i: usize) -> bool {
        self.value::<T>(i).is_some()
    }

    /// Whether `parsed(i, RegionCode::parse)` gives the field.
    pub fn region_ok(&self, i: usize) -> bool {
        self.cell(i).is_some_and(region_code_ok)
    }

    /// Whether `optional(i, RegionCode::parse)` gives the field.
    pub fn optional_region_ok(&self, i: usize) -> bool {
        match self.cell(i) {
            None | Some("") => true,
            Some(s) => region_code_ok(s),
        }
    }

    /// A field of any type, as serde reads it from the cell (an absent column is `None` for an
    /// option, and for anything else left to serde).
    pub fn value<T: serde::Deserialize<'r>>(&self, i: usize) -> Option<T> {
        match self.cell(i) {
            Some(s) => T::deserialize(cell::Cell(s)).ok(),
            None => {
                T::deserialize(serde::de::value::UnitDeserializer::<serde::de::value::Error>::new())
                    .ok()
            }
        }
    }

    /// A field serde reads by parsing the cell's text with `parse`.
    pub fn parsed<T, E>(&self, i: usize, parse: fn(&str) -> Result<T, E>) -> Option<T> {
        parse(self.cell(i)?).ok()
    }

    /// An optional field read with `parse`: an empty cell or an absent column is `None`.
    pub fn optional<T, E>(&self, i: usize, parse: fn(&str) -> Result<T, E>) -> Option<Option<T>> {
        match self.cell(i) {
            None | Some("") => Some(None),
            Some(s) => parse(s).ok().map(Some),
        }
    }

    /// A date: `YYYY-MM-DD` read here, any other form as serde reads it.
    pub fn date(&self, i: usize) -> Option<chrono::NaiveDate> {
        let s = self.cell(i)?;
        let b = s.as_bytes();
        let digits = |r: std::ops::Range<usize>| {
            b[r].iter().try_fold(0u32, |n, d| {
                d.is_ascii_digit().then(|| n * 10 + u32::from(d - b'0'))
            })
        };
        if b.len() == 10 && b[4] == b'-' && b[7] == b'-' {
            if let (Some(y), Some(m), Some(d)) = (digits(0..4), digits(5..7), digits(8..10)) {
                if let Some(date) = chrono::NaiveDate::from_ymd_opt(y as i32, m, d) {
                    return Some(date);
                }
            }
        }
        self.value(i)
    }
}

/// Whether [`doudi_model::RegionCode::parse`] accepts `s`, found without allocating.
fn region_code_ok(s: &str) -> bool {
    let t = s.trim();
    t.bytes().all(|b| b.is_ascii_digit()) && matches!(t.len(), 6 | 9 | 12)
}

/// One CSV field as a serde deserializer: numbers are inferred for `deserialize_any` (amounts in
/// fen), an empty field is `None` for an option, everything else is read from the text. Keys
/// are the header's column names, so a failing field is named in the error.
mod cell {
    use serde::de::value::{Error, StrDeserializer};
    use serde::de::{IntoDeserializer, Visitor};
    use serde::forward_to_deserialize_any;

    pub(crate) struct Cell<'a>(pub &'a str);

    impl<'de> IntoDeserializer<'de, Error> for Cell<'de> {
        type Deserializer = Self;
        fn into_deserializer(self) -> Self {
            self
        }
    }

    macro_rules! parse_int {
        ($($m:ident $t:ty => $visit:ident),*) => {$(
            fn $m<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Error> {
                match self.0.trim().parse::<$t>() {
                    Ok(n) => v.$visit(n),
                    Err(_) => Err(<Error as serde::de::Error>::custom(format!(
                        "expected a whole number, found {:?}",
                        self.0
                    ))),
                }
            }
        )*};
    }

    impl<'de> serde::Deserializer<'de> for Cell<'de> {
        type Error = Error;

        fn deserialize_any<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Error> {
            let s = self.0;
            if let Ok(n) = s.parse::<u64>() {
                return v.visit_u64(n);
            }
            if let Ok(n) = s.parse::<i64>() {
                return v.visit_i64(n);
            }
            if s.contains(['.', 'e', 'E']) {
                if let Ok(f) = s.parse::<f64>() {
                    return v.visit_f64(f);
                }
            }
            v.visit_borrowed_str(s)
        }

        fn deserialize_option<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Error> {
            if self.0.is_empty() {
                v.visit_none()
            } else {
                v.visit_some(self)
            }
        }

        fn deserialize_str<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Error> {
            v.visit_borrowed_str(self.0)
        }

        fn deserialize_string<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Error> {
            v.visit_borrowed_str(self.0)
        }

        fn deserialize_enum<V: Visitor<'de>>(
            self,
            _name: &'static str,
            _variants: &'static [&'static str],
            v: V,
        ) -> Result<V::Value, Error> {
            let d: StrDeserializer<'de, Error> = self.0.into_deserializer();
            v.visit_enum(d)
        }

        parse_int!(
            deserialize_u8 u8 => visit_u8,
            deserialize_u16 u16 => visit_u16,
            deserialize_u32 u32 => visit_u32,
            deserialize_u64 u64 => visit_u64,
            deserialize_i32 i32 => visit_i32,
            deserialize_i64 i64 => visit_i64
        );

        forward_to_deserialize_any! {
            bool i8 i16 i128 u128 f32 f64 char bytes byte_buf unit unit_struct
            newtype_struct seq tuple tuple_struct map struct identifier ignored_any
        }
    }
}

#[cfg(test)]
mod tests {
    use std::fmt::Debug;

    use doudi_model::RegionCode;

    use super::*;
    use crate::snapshot::{
        CompanyRecord, DeathRecord, HukouRecord, PaymentRecord, PropertyRecord, VehicleRecord,
        WageRecord,
    };

    /// Read `row` under `header` both ways: the plain reading, when it gives a record, gives the
    /// one serde gives; it declines only what serde refuses or reads some other way.
    fn same_as_serde<R: PlainCsv + SnapshotRow + PartialEq + Debug>(
        kind: Kind,
        header: &str,
        row: &str,
    ) -> bool {
        let header: Vec<String> = header.split(',').map(str::to_string).collect();
        let mut rdr = csv::ReaderBuilder::new()
            .has_headers(false)
            .from_reader(row.as_bytes());
        let mut rec = csv::StringRecord::new();
        assert!(rdr.read_record(&mut rec).unwrap());
        let by_serde = R::deserialize(serde::de::value::MapDeserializer::new(
            header
                .iter()
                .map(String::as_str)
                .zip(rec.iter().map(cell::Cell)),
        ))
        .ok();
        let columns = plain_columns(kind, &header).unwrap();
        let cells = Cells {
            record: &rec,
            columns: &columns,
        };
        let plain = R::plain(&cells);
        // Checked without making the record: the same verdict, the same ID number and blanks.
        assert_eq!(R::facts(&cells).is_some(), plain.is_some(), "{row}");
        if let Some(p) = &plain {
            assert_eq!(plain.as_ref(), by_serde.as_ref(), "{row}");
            assert_eq!(cells.cell(R::ID), Some(p.id_number()), "{row}");
            let required: Vec<(&str, &str)> = p.required_text().into_iter().flatten().collect();
            let by_cells: Vec<(&str, &str)> = R::REQUIRED
                .iter()
                .map(|&(f, i)| (f, cells.cell(i).unwrap()))
                .collect();
            assert_eq!(required, by_cells, "{row}");
        }
        plain.is_some()
    }

    #[test]
    fn newlines_are_counted_in_any_length() {
        for n in [0usize, 1, 254, 255, 256, 1000, 70_000] {
            let buf: Vec<u8> = (0..n)
                .map(|i| if i % 3 == 0 { b'\n' } else { b'a' })
                .collect();
            let want = buf.iter().filter(|b| **b == b'\n').count() as u64;
            assert_eq!(count_newlines(&buf), want, "{n}");
        }
        assert_eq!(count_newlines(&[b'\n'; 600]), 600);
    }

    #[test]
    fn region_codes_are_checked_as_the_model_parses_them() {
        for s in [
            "341502",
            " 341502 ",
            "341502001",
            "341502001001",
            "34150",
            "3415020010",
            "34150a",
            "",
            " ",
            "３４１５０２",
            "341502\t",
        ] {
            assert_eq!(region_code_ok(s), RegionCode::parse(s).is_ok(), "{s:?}");
        }
    }

    const ID: &str = "11010519491231002X";

    #[test]
    fn a_plain_csv_row_reads_as_serde_reads_it_and_anything_else_is_left_to_serde() {
        let h = "payment_id,household_id,region_code,id_number,category,month,amount_fen";
        let pay = |row: &str| same_as_serde::<PaymentRecord>(Kind::Payments, h, row);
        assert!(pay(&format!("P1,H1,341502001001,{ID},dibao,2026-01,61000")));
        assert!(pay(&format!("P1,H1, 341502001001 ,{ID},dibao, 2026-01 ,0")));
        assert!(!pay(&format!(
            "P1,H1,341502001001,{ID},Dibao,2026-01,61000"
        )));
        assert!(!pay(&format!("P1,H1,341502001001,{ID},dibao,2026-1,61000")));
        assert!(!pay(&format!("P1,H1,341502001001,{ID},dibao,2026-01,-5")));
        assert!(!pay(&format!(
            "P1,H1,341502001001,{ID},dibao,2026-01,610.5"
        )));
        assert!(!pay(&format!("P1,H1,3415020010,{ID},dibao,2026-01,1")));

        let h = "id_number,month,employer,wage_fen";
        let wage = |row: &str| same_as_serde::<WageRecord>(Kind::Wages, h, row);
        assert!(wage(&format!("{ID},2026-01,,350000")));
        assert!(wage(&format!("{ID},2026-01,某公司,350000")));
        assert!(same_as_serde::<WageRecord>(
            Kind::Wages,
            "wage_fen,month,id_number",
            &format!("1,2026-01,{ID}")
        ));

        let h = "id_number,name,sex,birth_date,region_code";
        let hukou = |row: &str| same_as_serde::<HukouRecord>(Kind::Hukou, h, row);
        assert!(hukou(&format!(
            "{ID},王秀英,female,1949-12-31,341502001001"
        )));
        assert!(!hukou(&format!(
            "{ID},王秀英,female,1949-02-30,341502001001"
        )));
        // another form of date: read as serde reads it
        assert!(hukou(&format!("{ID},王秀英,female,1949-2-3,341502001001")));
        assert!(!hukou(&format!(
            "{ID},王秀英,woman,1949-12-31,341502001001"
        )));

        let h = "plate,id_number,vehicle_type,value_fen,registered_on";
        let car = |row: &str| same_as_serde::<VehicleRecord>(Kind::Vehicles, h, row);
        assert!(car(&format!("皖N12345,{ID},passenger_car,,2020-05-01")));
        assert!(car(&format!("皖N12345,{ID},truck,8000000,2020-05-01")));
        assert!(!car(&format!("皖N12345,{ID},truck,8e6,2020-05-01")));

        let h = "certificate_no,id_number,usage,area_m2,value_fen,region_code,registered_on";
        let home = |row: &str| same_as_serde::<PropertyRecord>(Kind::Properties, h, row);
        assert!(home(&format!("C1,{ID},residential,90,,,2019-03-01")));
        assert!(home(&format!("C1,{ID},commercial,,100,341502,2019-03-01")));
        assert!(!home(&format!("C1,{ID},residential,90,,34150,2019-03-01")));
        assert!(!home(&format!("C1,{ID},residential,-1,,,2019-03-01")));

        let h = "credit_code,company_name,id_number,role,registered_capital_fen,status";
        let company = |row: &str| same_as_serde::<CompanyRecord>(Kind::Companies, h, row);
        assert!(company(&format!("91X,某公司,{ID},shareholder,100,active")));
        assert!(!company(&format!("91X,某公司,{ID},shareholder,,active")));

        let h = "record_id,id_number,name,death_date";
        let death = |row: &str| same_as_serde::<DeathRecord>(Kind::Deaths, h, row);
        assert!(death(&format!("D1,{ID},王秀英,2026-03-04")));
        assert!(!death(&format!("D1,{ID},王秀英,")));
    }

    #[test]
    fn a_header_naming_a_column_twice_is_left_to_serde() {
        let header: Vec<String> = ["id_number", "month", "month", "wage_fen"]
            .map(String::from)
            .to_vec();
        assert!(plain_columns(Kind::Wages, &header).is_none());
    }
}
