//! Reading an export file with a profile: rows out, one at a time, each with where it stands in
//! the file, its raw cells (for dead letters) and the event or the reason there is none.
//!
//! Text formats (CSV, JSON lines, fixed width) stream from any reader. Excel workbooks stream too:
//! calamine's cell reader runs on a thread of its own (it borrows the workbook it reads) and hands
//! rows over in batches, so a full 1,048,576-row sheet never sits in memory.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufRead, BufReader, Cursor, Read, Seek};
use std::path::Path;
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::Arc;

use calamine::{DataRef, Reader, Xlsx};
use doudi_model::Event;
use serde_json::{Map, Value};

use crate::error::{redact, FileError, RowError};
use crate::map::{Gathered, Mapped};
use crate::profile::{normalise_header, Encoding, Format, Profile, Provenance};
use crate::text;

/// Where a row stands: enough to show a clerk the row and to resume after it.
#[derive(Clone, Debug, PartialEq, Eq, Hash, serde::Serialize)]
pub struct Position {
    /// The file's name as given to the reader (e.g. `2026-03.csv`).
    pub file: String,
    /// Excel: the sheet read.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sheet: Option<String>,
    /// The row as the file shows it, from 1 (CSV and JSON lines: the line the record starts on;
    /// Excel: the sheet's row number).
    pub row: u64,
    /// Text formats: the byte offset where the row starts, and where the next one starts.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub byte_offset: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub end_offset: Option<u64>,
}

/// One data row and what became of it.
#[derive(Clone, Debug)]
pub struct Row {
    pub position: Position,
    /// The row's cells as a JSON object (column → text, in the file's column order; JSON lines:
    /// the line itself), UTF-8 whatever the file's encoding: what a dead letter keeps, readable by
    /// a person and mapped again by [`Profile::map_raw`] once the profile is fixed.
    pub raw: Vec<u8>,
    pub result: Result<Event, RowError>,
}

/// Counts of what a file held, kept as it is read.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct Stats {
    /// Data rows read (after the header; blank rows not counted).
    pub rows: u64,
    pub events: u64,
    pub refused: u64,
    /// Rows passed over by a skip rule, by the rule's reason.
    pub skipped: BTreeMap<String, u64>,
    pub blank: u64,
    /// Events made, by kind.
    pub by_kind: BTreeMap<&'static str, u64>,
}

/// A file being read through a profile. Iterate for rows; a file error ends the iteration (rows
/// before it stand).
pub struct FeedReader {
    profile: Arc<Profile>,
    file: String,
    source: Box<dyn RowSource>,
    /// Header cells as they will be keys of `raw` (unique), and the profile's columns' places.
    header: Option<Header>,
    stats: Stats,
    resume_after: u64,
    done: bool,
    /// The encoding the text was read in (a BOM may have overridden the profile's).
    encoding: Option<Encoding>,
}

struct Header {
    keys: Vec<String>,
    places: Vec<usize>,
}

/// A row as a format reader yields it, before the profile looks at it.
struct RawRow {
    row: u64,
    start: Option<u64>,
    end: Option<u64>,
    cells: RawCells,
}

enum RawCells {
    Table(Vec<String>),
    Json(Vec<u8>, Map<String, Value>),
    /// The row cannot be read as text: why.
    Bad(Vec<u8>, String),
}

trait RowSource: Send {
    fn next_row(&mut self) -> Option<Result<RawRow, FileError>>;
    fn sheet(&self) -> Option<&str> {
        None
    }
    /// Bytes (text) or rows (Excel) done, and the total when known.
    fn progress(&self) -> (u64, Option<u64>);
}

impl FeedReader {
    /// Open `path` with `profile`.
    pub fn open(profile: Arc<Profile>, path: &Path) -> Result<FeedReader, FileError> {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| path.display().to_string());
        let io = |e: std::io::Error| FileError::Io {
            file: name.clone(),
            message: e.to_string(),
        };
        let f = File::open(path).map_err(io)?;
        let len = f.metadata().map(|m| m.len()).ok();
        if profile.file.format == Format::Xlsx {
            return FeedReader::start(profile, name.clone(), |p, n| {
                XlsxSource::spawn(BufReader::new(f), p.file.sheet.clone(), n)
            });
        }
        FeedReader::text(
            profile,
            name,
            Box::new(BufReader::with_capacity(1 << 16, f)),
            len,
        )
    }

    /// Read a file held in memory (a pushed batch, a test) named `name`.
    pub fn from_bytes(
        profile: Arc<Profile>,
        name: &str,
        bytes: Vec<u8>,
    ) -> Result<FeedReader, FileError> {
        let len = bytes.len() as u64;
        if profile.file.format == Format::Xlsx {
            return FeedReader::start(profile, name.to_string(), |p, n| {
                XlsxSource::spawn(Cursor::new(bytes), p.file.sheet.clone(), n)
            });
        }
        FeedReader::text(
            profile,
            name.to_string(),
            Box::new(Cursor::new(bytes)),
            Some(len),
        )
    }

    fn start(
        profile: Arc<Profile>,
        file: String,
        make: impl FnOnce(&Profile, String) -> Result<Box<dyn RowSource>, FileError>,
    ) -> Result<FeedReader, FileError> {
        let source = make(&profile, file.clone())?;
        Ok(FeedReader {
            profile,
            file,
            source,
            header: None,
            stats: Stats::default(),
            resume_after: 0,
            done: false,
            encoding: None,
        })
    }

    fn text(
        profile: Arc<Profile>,
        file: String,
        reader: Box<dyn BufRead + Send>,
        len: Option<u64>,
    ) -> Result<FeedReader, FileError> {
        let mut reader = reader;
        let (encoding, bom) = sniff_bom(&mut reader, profile.file.encoding, &file)?;
        let spec = &profile.file;
        let source: Box<dyn RowSource> = match spec.format {
            Format::Csv => Box::new(CsvSource::new(
                reader,
                spec.delimiter.unwrap_or(','),
                encoding,
                spec.max_row_bytes,
                bom,
                len,
            )),
            Format::Jsonl => Box::new(LineSource::new(
                reader,
                encoding,
                spec.max_row_bytes,
                bom,
                len,
                None,
            )),
            Format::FixedWidth => Box::new(LineSource::new(
                reader,
                encoding,
                spec.max_row_bytes,
                bom,
                len,
                spec.widths.clone(),
            )),
            Format::Xlsx => {
                return Err(FileError::Io {
                    file,
                    message: "internal: an Excel profile reached the text reader".into(),
                })
            }
        };
        let mut r = FeedReader::start(profile, file, |_, _| Ok(source))?;
        r.encoding = Some(encoding);
        Ok(r)
    }

    /// Read rows up to and including `row` without mapping them: to resume after a stored
    /// position (the driver's seam; text formats may later seek to `end_offset` instead).
    pub fn resume_after(mut self, row: u64) -> Self {
        self.resume_after = row;
        self
    }

    pub fn profile(&self) -> &Profile {
        &self.profile
    }

    pub fn provenance(&self) -> Provenance {
        self.profile.provenance()
    }

    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    pub fn file(&self) -> &str {
        &self.file
    }

    /// The encoding the text was read in (`None` for Excel).
    pub fn encoding(&self) -> Option<Encoding> {
        self.encoding
    }

    pub fn sheet(&self) -> Option<&str> {
        self.source.sheet()
    }

    /// Work done and the total when known (bytes for text, rows for Excel): for progress bars.
    pub fn progress(&self) -> (u64, Option<u64>) {
        self.source.progress()
    }

    fn position_of(&self, raw: &RawRow) -> Position {
        Position {
            file: self.file.clone(),
            sheet: self.source.sheet().map(str::to_string),
            row: raw.row,
            byte_offset: raw.start,
            end_offset: raw.end,
        }
    }

    fn bind(&mut self, row: u64, cells: &[String]) -> Result<(), FileError> {
        let norm: Vec<String> = cells.iter().map(|c| normalise_header(c)).collect();
        let mut places = Vec::with_capacity(self.profile.columns().len());
        for c in self.profile.columns() {
            let want = normalise_header(c);
            let mut hits = norm.iter().enumerate().filter(|(_, h)| **h == want);
            match (hits.next(), hits.next()) {
                (Some((i, _)), None) => places.push(i),
                (None, _) => {
                    return Err(FileError::MissingColumn {
                        file: self.file.clone(),
                        row,
                        column: c.clone(),
                        found: cells
                            .iter()
                            .map(|c| text::trim(c))
                            .filter(|c| !c.is_empty())
                            .collect::<Vec<_>>()
                            .join(", "),
                    })
                }
                (Some(_), Some(_)) => {
                    return Err(FileError::AmbiguousColumn {
                        file: self.file.clone(),
                        row,
                        column: c.clone(),
                    })
                }
            }
        }
        let mut keys: Vec<String> = Vec::with_capacity(cells.len());
        for (i, c) in cells.iter().enumerate() {
            let mut k = text::trim(c).to_string();
            if k.is_empty() || keys.contains(&k) {
                k = format!("{k}#{}", i + 1);
            }
            keys.push(k);
        }
        self.header = Some(Header { keys, places });
        Ok(())
    }

    fn fail(&mut self, e: FileError) -> Option<Result<Row, FileError>> {
        self.done = true;
        Some(Err(e))
    }
}

impl Iterator for FeedReader {
    type Item = Result<Row, FileError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        loop {
            let raw = match self.source.next_row() {
                None => {
                    self.done = true;
                    if self.header.is_none() && self.needs_header() {
                        return Some(Err(FileError::NoHeader {
                            file: self.file.clone(),
                            row: self.profile.file.header_row,
                        }));
                    }
                    return None;
                }
                Some(Err(e)) => {
                    let e = match e {
                        FileError::Io { file, message } if file.is_empty() => FileError::Io {
                            file: self.file.clone(),
                            message,
                        },
                        e => e,
                    };
                    return self.fail(e);
                }
                Some(Ok(r)) => r,
            };
            let profile = Arc::clone(&self.profile);
            let spec = &profile.file;
            if self.header.is_none() && spec.format != Format::Jsonl {
                if self.needs_header() {
                    if raw.row < spec.header_row {
                        continue;
                    }
                    let RawCells::Table(cells) = &raw.cells else {
                        return self.fail(FileError::Encoding {
                            file: self.file.clone(),
                            message: format!(
                                "the header row (row {}) cannot be read as {} text",
                                raw.row,
                                self.encoding.unwrap_or_default().describe()
                            ),
                        });
                    };
                    if raw.row > spec.header_row {
                        // the header row was blank: Excel and CSV readers pass blank rows by
                        return self.fail(FileError::NoHeader {
                            file: self.file.clone(),
                            row: spec.header_row,
                        });
                    }
                    let cells = cells.clone();
                    if let Err(e) = self.bind(raw.row, &cells) {
                        return self.fail(e);
                    }
                    continue;
                }
                let names = spec.columns.clone().unwrap_or_default();
                if let Err(e) = self.bind(0, &names) {
                    return self.fail(e);
                }
            }
            if let RawCells::Table(cells) = &raw.cells {
                if cells.iter().all(|c| text::trim(c).is_empty()) {
                    self.stats.blank += 1;
                    continue;
                }
            }
            if raw.row <= self.resume_after {
                continue;
            }
            self.stats.rows += 1;
            if self.stats.rows > spec.max_rows {
                self.stats.rows -= 1;
                let e = FileError::TooManyRows {
                    file: self.file.clone(),
                    where_: self
                        .source
                        .sheet()
                        .map(|s| format!("sheet {s:?}"))
                        .unwrap_or_else(|| "the file".into()),
                    limit: spec.max_rows,
                    last_row: raw.row.saturating_sub(1),
                };
                return self.fail(e);
            }
            let position = self.position_of(&raw);
            let (raw_bytes, mapped) = self.map_row(raw);
            let result = match mapped {
                Mapped::Skipped(reason) => {
                    *self.stats.skipped.entry(reason).or_insert(0) += 1;
                    continue;
                }
                Mapped::Event(e) => {
                    self.stats.events += 1;
                    *self.stats.by_kind.entry(e.kind()).or_insert(0) += 1;
                    Ok(*e)
                }
                Mapped::Refused(e) => {
                    self.stats.refused += 1;
                    Err(e)
                }
            };
            return Some(Ok(Row {
                position,
                raw: raw_bytes,
                result,
            }));
        }
    }
}

impl FeedReader {
    fn needs_header(&self) -> bool {
        matches!(self.profile.file.format, Format::Csv | Format::Xlsx)
            && self.profile.file.header_row > 0
    }

    fn map_row(&self, raw: RawRow) -> (Vec<u8>, Mapped) {
        match raw.cells {
            RawCells::Bad(bytes, why) => (bytes, Mapped::Refused(RowError::new(raw.row, why))),
            RawCells::Json(line, obj) => {
                let mapped = match self.profile.gather_json(&obj) {
                    Ok(g) => self.profile.map_cells(raw.row, &g),
                    Err(column) => Mapped::Refused(RowError {
                        row: raw.row,
                        column: Some(column),
                        field: None,
                        reason: "holds a list or an object; a cell must be text, a number, true/false or null".into(),
                    }),
                };
                (line, mapped)
            }
            RawCells::Table(cells) => {
                let Some(h) = &self.header else {
                    return (
                        Vec::new(),
                        Mapped::Refused(RowError::new(raw.row, "no header")),
                    );
                };
                let raw_json = raw_object(&h.keys, &cells);
                if cells.len() > h.keys.len()
                    && cells[h.keys.len()..]
                        .iter()
                        .any(|c| !text::trim(c).is_empty())
                {
                    return (
                        raw_json,
                        Mapped::Refused(RowError::new(
                            raw.row,
                            format!(
                                "has {} cells, more than the header's {}: a delimiter inside an unquoted cell?",
                                cells.len(),
                                h.keys.len()
                            ),
                        )),
                    );
                }
                let g = Gathered(h.places.iter().map(|i| cells.get(*i).cloned()).collect());
                (raw_json, self.profile.map_cells(raw.row, &g))
            }
        }
    }
}

/// `{"header": "cell", …}` in column order; cells past the header keyed by their column number.
fn raw_object(keys: &[String], cells: &[String]) -> Vec<u8> {
    let mut out = String::with_capacity(16 * cells.len() + 2);
    out.push('{');
    for (i, c) in cells.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        let k = keys
            .get(i)
            .cloned()
            .unwrap_or_else(|| format!("#{}", i + 1));
        out.push_str(&Value::String(k).to_string());
        out.push(':');
        out.push_str(&Value::String(c.clone()).to_string());
    }
    out.push('}');
    out.into_bytes()
}

/// Read a byte-order mark if there is one: it decides the encoding. UTF-16 is refused.
fn sniff_bom(
    reader: &mut Box<dyn BufRead + Send>,
    configured: Encoding,
    file: &str,
) -> Result<(Encoding, u64), FileError> {
    let head = reader.fill_buf().map_err(|e| FileError::Io {
        file: file.to_string(),
        message: e.to_string(),
    })?;
    let (enc, n) = if head.starts_with(&[0xEF, 0xBB, 0xBF]) {
        (Encoding::Utf8, 3)
    } else if head.starts_with(&[0x84, 0x31, 0x95, 0x33]) {
        (Encoding::Gb18030, 4)
    } else if head.starts_with(&[0xFF, 0xFE]) || head.starts_with(&[0xFE, 0xFF]) {
        return Err(FileError::Encoding {
            file: file.to_string(),
            message: "is UTF-16 text (Excel's \"Unicode text\"): save it as CSV (UTF-8 or GB18030) or as .xlsx".into(),
        });
    } else {
        (configured, 0)
    };
    reader.consume(n);
    Ok((enc, n as u64))
}

/// Decode one field or line. Refuses bytes that are not text in `enc`, and, in a GB18030 file,
/// text that is plainly UTF-8 (a row pasted in from another export): both would otherwise turn
/// into wrong characters without a word.
fn decode(bytes: &[u8], enc: Encoding) -> Result<String, String> {
    match enc {
        Encoding::Utf8 => match std::str::from_utf8(bytes) {
            Ok(s) => Ok(s.to_string()),
            Err(_) => Err(
                "is not UTF-8 text: the file, or this row, is in another encoding (GB18030? set encoding = \"gb18030\" in the profile's [file])"
                    .into(),
            ),
        },
        Encoding::Gb18030 | Encoding::Gbk => {
            if bytes.is_ascii() {
                return Ok(String::from_utf8_lossy(bytes).into_owned());
            }
            if let Ok(s) = std::str::from_utf8(bytes) {
                if s.chars().any(|c| ('\u{4E00}'..='\u{9FFF}').contains(&c)) {
                    return Err(format!(
                        "is UTF-8 text in a file the profile reads as {} (mixed encodings): re-save the export in one encoding",
                        enc.describe()
                    ));
                }
            }
            encoding_rs::GB18030
                .decode_without_bom_handling_and_without_replacement(bytes)
                .map(|c| c.into_owned())
                .ok_or_else(|| format!("has bytes that are not {} text", enc.describe()))
        }
    }
}

struct CsvSource {
    reader: csv::Reader<Box<dyn BufRead + Send>>,
    record: csv::ByteRecord,
    enc: Encoding,
    max: usize,
    bom: u64,
    len: Option<u64>,
    done_bytes: u64,
}

impl CsvSource {
    fn new(
        reader: Box<dyn BufRead + Send>,
        delimiter: char,
        enc: Encoding,
        max: usize,
        bom: u64,
        len: Option<u64>,
    ) -> Self {
        let reader = csv::ReaderBuilder::new()
            .has_headers(false)
            .flexible(true)
            .delimiter(delimiter as u8)
            // Records end at '\n' only, so that a record's position (line, byte) is where it
            // starts in CRLF files too; the '\r' before it is taken off the last cell.
            .terminator(csv::Terminator::Any(b'\n'))
            .from_reader(reader);
        CsvSource {
            reader,
            record: csv::ByteRecord::new(),
            enc,
            max,
            bom,
            len,
            done_bytes: 0,
        }
    }
}

impl RowSource for CsvSource {
    fn next_row(&mut self) -> Option<Result<RawRow, FileError>> {
        match self.reader.read_byte_record(&mut self.record) {
            Ok(false) => None,
            Err(e) => Some(Err(FileError::Io {
                file: String::new(),
                message: e.to_string(),
            })),
            Ok(true) => {
                let pos = self
                    .record
                    .position()
                    .cloned()
                    .unwrap_or_else(csv::Position::new);
                let start = pos.byte() + self.bom;
                let end = self.reader.position().byte() + self.bom;
                self.done_bytes = end;
                let row = pos.line();
                let size = self.record.as_slice().len();
                let cells = if size > self.max {
                    RawCells::Bad(
                        Vec::new(),
                        format!(
                            "is {size} bytes long, over the limit of {} (max_row_bytes): an unclosed quote that runs on?",
                            self.max
                        ),
                    )
                } else {
                    let n = self.record.len();
                    let decoded: Result<Vec<String>, String> = self
                        .record
                        .iter()
                        .enumerate()
                        .map(|(i, f)| {
                            let f = if i + 1 == n {
                                f.strip_suffix(b"\r").unwrap_or(f)
                            } else {
                                f
                            };
                            decode(f, self.enc)
                        })
                        .collect();
                    match decoded {
                        Ok(cells) => RawCells::Table(cells),
                        Err(why) => RawCells::Bad(lossy_row(&self.record), why),
                    }
                };
                Some(Ok(RawRow {
                    row,
                    start: Some(start),
                    end: Some(end),
                    cells,
                }))
            }
        }
    }

    fn progress(&self) -> (u64, Option<u64>) {
        (self.done_bytes, self.len)
    }
}

/// A row that cannot be decoded, kept for the dead letter: its fields as a JSON array of the
/// bytes read lossily (nothing is dropped; the original file still holds the exact bytes).
fn lossy_row(record: &csv::ByteRecord) -> Vec<u8> {
    let cells: Vec<Value> = record
        .iter()
        .map(|f| Value::String(String::from_utf8_lossy(f).into_owned()))
        .collect();
    serde_json::to_vec(&cells).unwrap_or_default()
}

/// JSON lines and fixed-width text: one record a line.
struct LineSource {
    reader: Box<dyn BufRead + Send>,
    enc: Encoding,
    max: usize,
    offset: u64,
    line: u64,
    len: Option<u64>,
    widths: Option<Vec<usize>>,
    buf: Vec<u8>,
}

impl LineSource {
    fn new(
        reader: Box<dyn BufRead + Send>,
        enc: Encoding,
        max: usize,
        bom: u64,
        len: Option<u64>,
        widths: Option<Vec<usize>>,
    ) -> Self {
        LineSource {
            reader,
            enc,
            max,
            offset: bom,
            line: 0,
            len,
            widths,
            buf: Vec::new(),
        }
    }

    /// The next line (without its newline), at most `max` bytes kept; its full length.
    fn read_line(&mut self) -> std::io::Result<Option<usize>> {
        self.buf.clear();
        let mut total = 0usize;
        let mut any = false;
        loop {
            let avail = self.reader.fill_buf()?;
            if avail.is_empty() {
                return Ok(any.then_some(total));
            }
            any = true;
            let (chunk, found) = match avail.iter().position(|b| *b == b'\n') {
                Some(i) => (&avail[..i], Some(i)),
                None => (avail, None),
            };
            let room = (self.max + 1).saturating_sub(self.buf.len());
            self.buf.extend_from_slice(&chunk[..chunk.len().min(room)]);
            total += chunk.len();
            let used = found.map(|i| i + 1).unwrap_or(chunk.len());
            self.reader.consume(used);
            self.offset += used as u64;
            if found.is_some() {
                return Ok(Some(total));
            }
        }
    }
}

impl RowSource for LineSource {
    fn next_row(&mut self) -> Option<Result<RawRow, FileError>> {
        loop {
            let start = self.offset;
            let total = match self.read_line() {
                Ok(None) => return None,
                Ok(Some(n)) => n,
                Err(e) => {
                    return Some(Err(FileError::Io {
                        file: String::new(),
                        message: e.to_string(),
                    }))
                }
            };
            self.line += 1;
            if self.buf.last() == Some(&b'\r') && total <= self.max {
                self.buf.pop();
            }
            if self.buf.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            let row = self.line;
            let end = Some(self.offset);
            let cells = if total > self.max {
                RawCells::Bad(
                    Vec::new(),
                    format!(
                        "is {total} bytes long, over the limit of {} (max_row_bytes)",
                        self.max
                    ),
                )
            } else {
                match decode(&self.buf, self.enc) {
                    Err(why) => RawCells::Bad(
                        String::from_utf8_lossy(&self.buf).into_owned().into_bytes(),
                        why,
                    ),
                    Ok(text) => match &self.widths {
                        Some(w) => fixed_cells(&text, w),
                        None => match serde_json::from_str::<Map<String, Value>>(&text) {
                            Ok(obj) => RawCells::Json(text.into_bytes(), obj),
                            Err(e) => RawCells::Bad(
                                text.into_bytes(),
                                format!("is not a JSON object: {}", redact(&e.to_string())),
                            ),
                        },
                    },
                }
            };
            return Some(Ok(RawRow {
                row,
                start: Some(start),
                end,
                cells,
            }));
        }
    }

    fn progress(&self) -> (u64, Option<u64>) {
        (self.offset, self.len)
    }
}

/// Cut a line into columns of `widths` characters. Text past the last column is refused.
fn fixed_cells(line: &str, widths: &[usize]) -> RawCells {
    let mut chars = line.chars();
    let mut cells = Vec::with_capacity(widths.len());
    for w in widths {
        cells.push(chars.by_ref().take(*w).collect::<String>());
    }
    let rest: String = chars.collect();
    if !text::trim(&rest).is_empty() {
        return RawCells::Bad(
            line.as_bytes().to_vec(),
            format!(
                "is longer than the profile's widths add up to ({} characters)",
                widths.iter().sum::<usize>()
            ),
        );
    }
    RawCells::Table(cells)
}

enum XlsxMsg {
    Ready {
        sheet: String,
        last_row: Option<u64>,
    },
    Rows(Vec<(u64, Vec<String>)>),
    Failed(FileError),
}

struct XlsxSource {
    rx: Receiver<XlsxMsg>,
    sheet: String,
    last_row: Option<u64>,
    batch: std::vec::IntoIter<(u64, Vec<String>)>,
    done_rows: u64,
    finished: bool,
}

impl XlsxSource {
    fn spawn<R: Read + Seek + Send + 'static>(
        reader: R,
        sheet: Option<String>,
        file: String,
    ) -> Result<Box<dyn RowSource>, FileError> {
        let (tx, rx) = sync_channel(8);
        let f = file.clone();
        std::thread::Builder::new()
            .name("xlsx-reader".into())
            .spawn(move || xlsx_thread(reader, sheet, f, tx))
            .map_err(|e| FileError::Io {
                file: file.clone(),
                message: format!("cannot start the Excel reader: {e}"),
            })?;
        match rx.recv() {
            Ok(XlsxMsg::Ready { sheet, last_row }) => Ok(Box::new(XlsxSource {
                rx,
                sheet,
                last_row,
                batch: Vec::new().into_iter(),
                done_rows: 0,
                finished: false,
            })),
            Ok(XlsxMsg::Failed(e)) => Err(e),
            Ok(XlsxMsg::Rows(_)) | Err(_) => Err(FileError::Workbook {
                file,
                message: "the reader stopped before the sheet opened".into(),
            }),
        }
    }
}

impl RowSource for XlsxSource {
    fn next_row(&mut self) -> Option<Result<RawRow, FileError>> {
        loop {
            if let Some((row, cells)) = self.batch.next() {
                self.done_rows = row;
                return Some(Ok(RawRow {
                    row,
                    start: None,
                    end: None,
                    cells: RawCells::Table(cells),
                }));
            }
            if self.finished {
                return None;
            }
            match self.rx.recv() {
                Ok(XlsxMsg::Rows(rows)) => self.batch = rows.into_iter(),
                Ok(XlsxMsg::Failed(e)) => {
                    self.finished = true;
                    return Some(Err(e));
                }
                Ok(XlsxMsg::Ready { .. }) | Err(_) => {
                    self.finished = true;
                    return None;
                }
            }
        }
    }

    fn sheet(&self) -> Option<&str> {
        Some(&self.sheet)
    }

    fn progress(&self) -> (u64, Option<u64>) {
        (self.done_rows, self.last_row)
    }
}

const XLSX_BATCH: usize = 512;

fn xlsx_thread<R: Read + Seek>(
    reader: R,
    sheet: Option<String>,
    file: String,
    tx: SyncSender<XlsxMsg>,
) {
    let fail = |message: String| {
        XlsxMsg::Failed(FileError::Workbook {
            file: file.clone(),
            message,
        })
    };
    let mut wb: Xlsx<R> = match Xlsx::new(reader) {
        Ok(wb) => wb,
        Err(e) => {
            let _ = tx.send(fail(e.to_string()));
            return;
        }
    };
    let names = wb.sheet_names();
    let name = match &sheet {
        Some(s) => match names.iter().find(|n| *n == s) {
            Some(n) => n.clone(),
            None => {
                let _ = tx.send(XlsxMsg::Failed(FileError::NoSuchSheet {
                    file: file.clone(),
                    sheet: s.clone(),
                    found: names.join(", "),
                }));
                return;
            }
        },
        None => match names.first() {
            Some(n) => n.clone(),
            None => {
                let _ = tx.send(fail("the workbook has no sheet".into()));
                return;
            }
        },
    };
    let mut cells = match wb.worksheet_cells_reader(&name) {
        Ok(c) => c,
        Err(e) => {
            let _ = tx.send(fail(e.to_string()));
            return;
        }
    };
    let dims = cells.dimensions();
    let last_row = (dims.end.0 > 0 || dims.end.1 > 0).then_some(dims.end.0 as u64 + 1);
    if tx
        .send(XlsxMsg::Ready {
            sheet: name,
            last_row,
        })
        .is_err()
    {
        return;
    }
    let mut batch: Vec<(u64, Vec<String>)> = Vec::with_capacity(XLSX_BATCH);
    let mut current: Option<(u64, Vec<String>)> = None;
    loop {
        match cells.next_cell() {
            Ok(Some(cell)) => {
                let (r, c) = cell.get_position();
                let (r, c) = (r as u64 + 1, c as usize);
                if current.as_ref().is_some_and(|(row, _)| *row != r) {
                    if let Some(done) = current.take() {
                        batch.push(done);
                    }
                    if batch.len() >= XLSX_BATCH
                        && tx
                            .send(XlsxMsg::Rows(std::mem::replace(
                                &mut batch,
                                Vec::with_capacity(XLSX_BATCH),
                            )))
                            .is_err()
                    {
                        return;
                    }
                }
                let (_, row) = current.get_or_insert_with(|| (r, Vec::new()));
                let text = cell_text(cell.get_value());
                if c >= row.len() {
                    if text.is_empty() {
                        continue;
                    }
                    row.resize(c + 1, String::new());
                }
                row[c] = text;
            }
            Ok(None) => break,
            Err(e) => {
                if let Some(done) = current.take() {
                    batch.push(done);
                }
                let _ = tx.send(XlsxMsg::Rows(batch));
                let _ = tx.send(fail(format!("stopped partway through the sheet: {e}")));
                return;
            }
        }
    }
    if let Some(done) = current.take() {
        batch.push(done);
    }
    let _ = tx.send(XlsxMsg::Rows(batch));
}

/// A cell as text, the way Excel shows it unformatted: whole numbers without `.0`, other numbers
/// to 15 significant digits (Excel's own precision), dates as `YYYY-MM-DD` (with the time when
/// there is one).
fn cell_text(v: &DataRef<'_>) -> String {
    match v {
        DataRef::Empty => String::new(),
        DataRef::String(s) => s.clone(),
        DataRef::SharedString(s) => s.to_string(),
        DataRef::Int(i) => i.to_string(),
        DataRef::Float(f) => number_text(*f),
        DataRef::Bool(b) => b.to_string(),
        DataRef::DateTime(d) => {
            if d.is_duration() {
                number_text(d.as_f64())
            } else {
                match d.as_datetime() {
                    Some(dt) if dt.time() == chrono::NaiveTime::MIN => {
                        dt.format("%Y-%m-%d").to_string()
                    }
                    Some(dt) => dt.format("%Y-%m-%d %H:%M:%S").to_string(),
                    None => number_text(d.as_f64()),
                }
            }
        }
        DataRef::DateTimeIso(s) | DataRef::DurationIso(s) => s.clone(),
        DataRef::Error(e) => e.to_string(),
    }
}

fn number_text(f: f64) -> String {
    if !f.is_finite() {
        return f.to_string();
    }
    if f.fract() == 0.0 && f.abs() < 1e15 {
        return format!("{}", f as i64);
    }
    // 15 significant digits, trailing zeros dropped: 0.1 + 0.2 shows as 0.3, as in Excel.
    let digits = 14 - f.abs().log10().floor() as i32;
    let s = format!("{:.*}", digits.clamp(0, 20) as usize, f);
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_read_as_excel_shows_them() {
        assert_eq!(number_text(1234.5), "1234.5");
        assert_eq!(number_text(0.1 + 0.2), "0.3");
        assert_eq!(number_text(96100.0), "96100");
        assert_eq!(number_text(12.345), "12.345");
        assert_eq!(number_text(1234.56), "1234.56");
    }

    #[test]
    fn gb18030_text_decodes_and_utf8_pasted_in_is_refused() {
        let (gb, _, _) = encoding_rs::GB18030.encode("王秀英,女");
        assert_eq!(decode(&gb, Encoding::Gb18030).as_deref(), Ok("王秀英,女"));
        let mixed = decode("王秀英".as_bytes(), Encoding::Gb18030).unwrap_err();
        assert!(mixed.contains("mixed encodings"), "{mixed}");
        let not_utf8 = decode(&gb, Encoding::Utf8).unwrap_err();
        assert!(not_utf8.contains("GB18030"), "{not_utf8}");
        // "女" alone in GBK is also valid UTF-8 (U+016E): no CJK, so read as GBK
        let (nv, _, _) = encoding_rs::GB18030.encode("女");
        assert_eq!(decode(&nv, Encoding::Gbk).as_deref(), Ok("女"));
    }
}
