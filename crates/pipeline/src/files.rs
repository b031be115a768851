//! File feeds: `DIR/<source>/*.jsonl`, read from stored positions, one record per line, with a
//! size cap so that one absurd line cannot exhaust memory; and folders of a department's own
//! exports with their feed profile beside them (`DIR/<folder>/profile.toml`), read row by row
//! through it (see [`ProfileReader`]).

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufRead, BufReader, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::SystemTime;

use doudi_feeds::{FeedReader, FileError, Profile};
use doudi_model::{EventError, ParseLimits, Source, ALL_SOURCES};

use crate::driver::Position;
use crate::driver::RawRecord;
use crate::ingest::{ingest_record, ingest_row, Ingested};
use crate::PipelineError;

/// The feed files of one folder, in name order: JSON envelope lines of one source, or a
/// department's own exports read through the folder's feed profile.
#[derive(Clone, Debug)]
pub struct SourceFiles {
    pub source: Source,
    /// The folder's name (a source code for envelope feeds).
    pub folder: String,
    /// The folder's feed profile (`profile.toml` beside the files); `None`: `*.jsonl` envelopes.
    pub profile: Option<Arc<Profile>>,
    pub files: Vec<(String, PathBuf)>,
}

/// The file beside a department's exports that names how to read them.
pub const PROFILE_FILE: &str = "profile.toml";

/// Find the feed files under `dir`, one folder each:
///
/// - a folder named for a source (`health_insurance/`, `employment/`, `housing/`,
///   `civil_registry/`) holding `*.jsonl` files of JSON envelopes, one event per line;
/// - any folder holding a feed profile as `profile.toml` beside a department's export files
///   (CSV, Excel, JSON lines, fixed width, as the profile says); the profile names the source.
///
/// Files are read in name order. A folder or file that is not recognised is an error rather than
/// something silently skipped; names starting with `.` are passed over (write a file under such a
/// name, then rename it, so that a half-written file is never read).
pub fn scan_feeds(dir: &Path) -> Result<Vec<SourceFiles>, PipelineError> {
    let io = |e: std::io::Error, p: &Path| PipelineError::Io {
        path: p.to_path_buf(),
        source: e,
    };
    let mut out = Vec::new();
    let entries = std::fs::read_dir(dir).map_err(|e| io(e, dir))?;
    let mut names: Vec<(String, PathBuf)> = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| io(e, dir))?;
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') {
            continue;
        }
        if !path.is_dir() {
            return Err(PipelineError::UnexpectedFeedEntry {
                path,
                hint: "the feeds folder holds one folder per source or per department export, not files",
            });
        }
        names.push((name, path));
    }
    for (name, path) in names {
        let profile_path = path.join(PROFILE_FILE);
        let profile = if profile_path.is_file() {
            let p = Profile::load(&profile_path)?;
            if let Some(named) = Source::from_code(&name) {
                if named != p.source {
                    return Err(PipelineError::ProfileSourceMismatch {
                        path: profile_path,
                        folder: name,
                        found: p.source.code().to_string(),
                    });
                }
            }
            Some(Arc::new(p))
        } else {
            None
        };
        let source = match (&profile, Source::from_code(&name)) {
            (Some(p), _) => p.source,
            (None, Some(s)) => s,
            (None, None) => {
                return Err(PipelineError::UnknownSourceFolder {
                    path,
                    known: ALL_SOURCES
                        .iter()
                        .map(|s| s.code())
                        .collect::<Vec<_>>()
                        .join(", "),
                })
            }
        };
        let mut files = Vec::new();
        for entry in std::fs::read_dir(&path).map_err(|e| io(e, &path))? {
            let entry = entry.map_err(|e| io(e, &path))?;
            let p = entry.path();
            let fname = entry.file_name().to_string_lossy().into_owned();
            if fname.starts_with('.') || (profile.is_some() && fname == PROFILE_FILE) {
                continue;
            }
            if !p.is_file() {
                return Err(PipelineError::UnexpectedFeedEntry {
                    path: p,
                    hint: "feed folders hold files, not folders",
                });
            }
            if profile.is_none() && !fname.ends_with(".jsonl") {
                return Err(PipelineError::UnexpectedFeedEntry {
                    path: p,
                    hint: "feed folders without a profile.toml hold only *.jsonl files, one event per line",
                });
            }
            files.push((format!("{name}/{fname}"), p));
        }
        files.sort();
        out.push(SourceFiles {
            source,
            folder: name,
            profile,
            files,
        });
    }
    out.sort_by(|a, b| (a.source, &a.folder).cmp(&(b.source, &b.folder)));
    Ok(out)
}

/// What a file looked like when it was last read to its end (or to an error that stops it):
/// its length and modification time. A file that still looks so is not opened again by later
/// passes of the same run.
pub type FileStamp = (u64, Option<SystemTime>);

/// Department exports read to their end in this process, by stream (see [`FileStamp`]).
pub type FileMarks = Arc<Mutex<HashMap<String, FileStamp>>>;

/// The length of a file whose last byte is not a newline; `None` when it ends with one (or is
/// empty, or cannot be read: the reader then says why).
fn unterminated(path: &Path) -> Option<u64> {
    let mut f = File::open(path).ok()?;
    let len = f.metadata().ok()?.len();
    if len == 0 {
        return None;
    }
    f.seek(SeekFrom::Start(len - 1)).ok()?;
    let mut last = [0u8; 1];
    std::io::Read::read_exact(&mut f, &mut last).ok()?;
    (last[0] != b'\n').then_some(len)
}

fn stamp(path: &Path) -> FileStamp {
    std::fs::metadata(path)
        .map(|m| (m.len(), m.modified().ok()))
        .unwrap_or((0, None))
}

/// Reads one folder: envelope lines, or a department's exports through its profile.
pub enum FeedSource {
    Envelope(SourceReader),
    Profile(Box<ProfileReader>),
}

impl FeedSource {
    /// `positions` maps a stream to `(byte_offset, line)` already committed (for an export:
    /// where the last row read ends, 0 for Excel, and its row number).
    pub fn new(
        files: SourceFiles,
        positions: HashMap<String, (u64, u64)>,
        cap: usize,
        take_unterminated: bool,
        marks: FileMarks,
    ) -> Self {
        match files.profile.clone() {
            Some(profile) => FeedSource::Profile(Box::new(ProfileReader::new(
                files,
                profile,
                positions,
                marks,
                take_unterminated,
            ))),
            None => {
                FeedSource::Envelope(SourceReader::new(files, positions, cap, take_unterminated))
            }
        }
    }

    /// The next record, ingested (an event, or why it is refused), or `None` when every file is
    /// read to its end.
    pub fn next_item(&mut self, limits: &ParseLimits) -> Result<Option<Ingested>, PipelineError> {
        match self {
            FeedSource::Envelope(r) => Ok(r.next_record()?.map(|rec| ingest_record(rec, limits))),
            FeedSource::Profile(r) => Ok(r.next_item()),
        }
    }
}

/// Reads a folder of one department's exports through its feed profile, file by file in name
/// order, each from the row after its stored position. A row the profile refuses becomes a
/// refused record (a dead letter with the file, row, column and why); a file that stops being
/// readable (cut short, past the profile's row limit, a header without a column the profile
/// reads) becomes one refused record saying so, and its position stays at the last row read, so
/// that the rest is read once the file or the profile is fixed.
pub struct ProfileReader {
    source: Source,
    profile: Arc<Profile>,
    provenance: Arc<str>,
    files: std::vec::IntoIter<(String, PathBuf)>,
    current: Option<OpenExport>,
    positions: HashMap<String, (u64, u64)>,
    marks: FileMarks,
    /// Read a text file's last row even when no newline ends it (a finished file), rather than
    /// wait for the rest of it.
    take_unterminated: bool,
}

struct OpenExport {
    stream: String,
    stamp: FileStamp,
    reader: FeedReader,
    /// A text file whose last byte is not a newline: its length (the last row may still be
    /// being written, and is left for a later pass).
    unterminated_at: Option<u64>,
    /// The last row read and where it ends (Excel: 0).
    row: u64,
    end: u64,
}

impl ProfileReader {
    fn new(
        files: SourceFiles,
        profile: Arc<Profile>,
        positions: HashMap<String, (u64, u64)>,
        marks: FileMarks,
        take_unterminated: bool,
    ) -> Self {
        ProfileReader {
            source: files.source,
            provenance: Arc::from(profile.provenance().to_string()),
            profile,
            files: files.files.into_iter(),
            current: None,
            positions,
            marks,
            take_unterminated,
        }
    }

    fn mark(&self, stream: &str, stamp: FileStamp) {
        self.marks
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(stream.to_string(), stamp);
    }

    /// A file error as a refused record at the last row read (its position does not move).
    fn file_error(&self, stream: String, row: u64, end: u64, e: FileError) -> Ingested {
        Ingested {
            record: RawRecord {
                source: self.source,
                stream,
                position: Position::File {
                    line: row,
                    start: end,
                    end,
                },
                bytes: Vec::new(),
                full_len: 0,
            },
            result: Err(EventError::FileUnreadable(format!(
                "profile {}: {e}",
                self.provenance
            ))),
            normalised: String::new(),
            packed: Default::default(),
            link: None,
            register_version: 0,
            profile: Some(Arc::clone(&self.provenance)),
        }
    }

    /// The next row, ingested, or `None` when every file is read.
    pub fn next_item(&mut self) -> Option<Ingested> {
        loop {
            let Some(cur) = self.current.as_mut() else {
                let (stream, path) = self.files.next()?;
                let stamp = stamp(&path);
                let seen = self
                    .marks
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .get(&stream)
                    .copied();
                if seen == Some(stamp) {
                    continue;
                }
                let (end, row) = self.positions.get(&stream).copied().unwrap_or((0, 0));
                let text = self.profile.file.format != doudi_feeds::Format::Xlsx;
                let unterminated_at = if text && !self.take_unterminated {
                    unterminated(&path)
                } else {
                    None
                };
                match FeedReader::open(Arc::clone(&self.profile), &path) {
                    Ok(reader) => {
                        self.current = Some(OpenExport {
                            stream,
                            stamp,
                            unterminated_at,
                            reader: reader.resume_after(row),
                            row,
                            end,
                        });
                        continue;
                    }
                    Err(e) => {
                        self.mark(&stream, stamp);
                        return Some(self.file_error(stream, row, end, e));
                    }
                }
            };
            match cur.reader.next() {
                None => {
                    let (stream, stamp) = (cur.stream.clone(), cur.stamp);
                    self.current = None;
                    self.mark(&stream, stamp);
                }
                Some(Err(e)) => {
                    let (stream, stamp, row, end) =
                        (cur.stream.clone(), cur.stamp, cur.row, cur.end);
                    self.current = None;
                    self.mark(&stream, stamp);
                    return Some(self.file_error(stream, row, end, e));
                }
                Some(Ok(r))
                    if cur.unterminated_at.is_some()
                        && r.position.end_offset == cur.unterminated_at =>
                {
                    // The last row has no newline yet: perhaps half written. Left (its position
                    // unmoved, the file unmarked) for a pass after the rest arrives.
                    self.current = None;
                }
                Some(Ok(r)) => {
                    let p = &r.position;
                    cur.row = p.row;
                    cur.end = p.end_offset.unwrap_or(0);
                    self.positions
                        .insert(cur.stream.clone(), (cur.end, cur.row));
                    let record = RawRecord {
                        source: self.source,
                        stream: cur.stream.clone(),
                        position: Position::File {
                            line: p.row,
                            start: p.byte_offset.unwrap_or(0),
                            end: cur.end,
                        },
                        full_len: r.raw.len() as u64,
                        bytes: r.raw,
                    };
                    return Some(ingest_row(record, r.result, &self.provenance));
                }
            }
        }
    }
}

/// Whether `stream` (`folder/file`) is a file the HTTP push appends to (`push-<date>.jsonl`).
pub fn is_pushed(stream: &str) -> bool {
    stream
        .rsplit('/')
        .next()
        .is_some_and(|f| f.starts_with("push-") && f.ends_with(".jsonl"))
}

/// Reads one source's files in order, from the stored positions.
pub struct SourceReader {
    source: Source,
    files: std::vec::IntoIter<(String, PathBuf)>,
    current: Option<(String, BufReader<File>, u64, u64)>,
    positions: HashMap<String, (u64, u64)>,
    cap: usize,
    /// Read a last line that has no newline (a finished file) rather than wait for the rest.
    take_unterminated: bool,
}

impl SourceReader {
    /// `positions` maps a stream to `(byte_offset, line)` already committed.
    pub fn new(
        files: SourceFiles,
        positions: HashMap<String, (u64, u64)>,
        cap: usize,
        take_unterminated: bool,
    ) -> Self {
        SourceReader {
            source: files.source,
            files: files.files.into_iter(),
            current: None,
            positions,
            cap,
            take_unterminated,
        }
    }

    pub fn source(&self) -> Source {
        self.source
    }

    /// The next record, or `None` when every file is read to its end.
    pub fn next_record(&mut self) -> Result<Option<RawRecord>, PipelineError> {
        loop {
            if self.current.is_none() {
                let Some((stream, path)) = self.files.next() else {
                    return Ok(None);
                };
                let (offset, line) = self.positions.get(&stream).copied().unwrap_or((0, 0));
                let mut file = File::open(&path).map_err(|e| PipelineError::Io {
                    path: path.clone(),
                    source: e,
                })?;
                let len = file.metadata().map(|m| m.len()).unwrap_or(0);
                if offset > len {
                    return Err(PipelineError::FileShrank {
                        path,
                        stored: offset,
                        now: len,
                    });
                }
                file.seek(SeekFrom::Start(offset))
                    .map_err(|e| PipelineError::Io {
                        path: path.clone(),
                        source: e,
                    })?;
                self.current = Some((
                    stream,
                    BufReader::with_capacity(256 * 1024, file),
                    offset,
                    line,
                ));
            }
            let Some((stream, reader, offset, line)) = self.current.as_mut() else {
                continue;
            };
            let mut bytes = Vec::new();
            let read =
                read_capped_line(reader, self.cap, &mut bytes).map_err(|e| PipelineError::Io {
                    path: PathBuf::from(stream.clone()),
                    source: e,
                })?;
            match read {
                None => {
                    self.current = None;
                }
                Some(l) if !l.terminated && (!self.take_unterminated || is_pushed(stream)) => {
                    // A line still being written: leave it for the next pass. (A file of the HTTP
                    // push is only ever appended whole lines: a last line without its newline is
                    // an append in progress, even for `--once`.)
                    self.current = None;
                }
                Some(l) => {
                    let start = *offset;
                    *offset += l.consumed;
                    *line += 1;
                    let mut full_len = l.full_len;
                    if full_len == bytes.len() as u64 && bytes.last() == Some(&b'\r') {
                        bytes.pop();
                        full_len -= 1;
                    }
                    if bytes.iter().all(u8::is_ascii_whitespace) && full_len == bytes.len() as u64 {
                        // Blank lines carry no record; the position still moves past them.
                        self.positions.insert(stream.clone(), (*offset, *line));
                        continue;
                    }
                    self.positions.insert(stream.clone(), (*offset, *line));
                    return Ok(Some(RawRecord {
                        source: self.source,
                        stream: stream.clone(),
                        position: Position::File {
                            line: *line,
                            start,
                            end: *offset,
                        },
                        bytes,
                        full_len,
                    }));
                }
            }
        }
    }
}

/// What [`read_capped_line`] read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LineRead {
    /// Bytes consumed from the file, newline included.
    pub consumed: u64,
    /// Length of the line without its newline.
    pub full_len: u64,
    /// Whether the line ended with a newline (rather than at the end of the file).
    pub terminated: bool,
}

/// Read one line into `buf`, keeping at most `cap` bytes of it but consuming all of it.
/// Returns `None` at end of file.
pub fn read_capped_line<R: BufRead>(
    reader: &mut R,
    cap: usize,
    buf: &mut Vec<u8>,
) -> std::io::Result<Option<LineRead>> {
    buf.clear();
    let mut consumed: u64 = 0;
    let mut full_len: u64 = 0;
    loop {
        let available = match reader.fill_buf() {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if available.is_empty() {
            return Ok((consumed > 0).then_some(LineRead {
                consumed,
                full_len,
                terminated: false,
            }));
        }
        let (chunk, done) = match available.iter().position(|&b| b == b'\n') {
            Some(i) => (&available[..i], Some(i + 1)),
            None => (available, None),
        };
        let room = cap.saturating_sub(buf.len());
        buf.extend_from_slice(&chunk[..chunk.len().min(room)]);
        full_len += chunk.len() as u64;
        let used = done.unwrap_or(chunk.len());
        reader.consume(used);
        consumed += used as u64;
        if done.is_some() {
            return Ok(Some(LineRead {
                consumed,
                full_len,
                terminated: true,
            }));
        }
    }
}

/// Up to `max` subjects of valid events from the feeds under `dir`, taken evenly from every source
/// (round robin over the sources, each read from its first file on): what the identity model is
/// trained on. Deterministic for the same files. Invalid lines are skipped here (the run itself
/// dead-letters them).
pub fn sample_subjects(
    dir: &Path,
    limits: &doudi_model::ParseLimits,
    max: usize,
) -> Result<Vec<doudi_model::Subject>, PipelineError> {
    let marks = FileMarks::default();
    let mut readers: Vec<FeedSource> = scan_feeds(dir)?
        .into_iter()
        .map(|files| {
            FeedSource::new(
                files,
                HashMap::new(),
                limits.max_event_bytes + 1,
                true,
                marks.clone(),
            )
        })
        .collect();
    let mut out = Vec::with_capacity(max.min(1 << 20));
    while out.len() < max && !readers.is_empty() {
        let mut i = 0;
        while i < readers.len() && out.len() < max {
            match readers[i].next_item(limits)? {
                None => {
                    readers.remove(i);
                    continue;
                }
                Some(item) => {
                    if let Ok(event) = item.result {
                        out.push(event.subject);
                    }
                }
            }
            i += 1;
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const PROFILE: &str = r#"
[profile]
name = "t-deaths"
version = 1
source = "civil_registry"
[file]
format = "csv"
[event]
kind = { column = "类型", map = { "死亡" = "death" } }
occurred_at = "时间"
event_id = { column = "编号" }
[subject]
name = "姓名"
[data.death]
died_on = "日期"
"#;

    fn export_folder(csv: &str) -> (tempfile::TempDir, SourceFiles) {
        let tmp = tempfile::tempdir().expect("tempdir");
        let folder = tmp.path().join("deaths");
        std::fs::create_dir_all(&folder).expect("folder");
        std::fs::write(folder.join(PROFILE_FILE), PROFILE).expect("profile");
        std::fs::write(folder.join("a.csv"), csv).expect("csv");
        let mut found = scan_feeds(tmp.path()).expect("scan");
        assert_eq!(found.len(), 1);
        let files = found.remove(0);
        assert_eq!(
            files.source,
            Source::CivilRegistry,
            "the profile says the source"
        );
        assert_eq!(files.files.len(), 1, "profile.toml is not a feed file");
        (tmp, files)
    }

    fn read_all(
        files: SourceFiles,
        positions: HashMap<String, (u64, u64)>,
        once: bool,
    ) -> Vec<Ingested> {
        let mut r = FeedSource::new(files, positions, 1 << 16, once, FileMarks::default());
        let mut out = Vec::new();
        while let Some(i) = r.next_item(&ParseLimits::default()).expect("read") {
            out.push(i);
        }
        out
    }

    const CSV: &str = "编号,类型,时间,姓名,日期\n\
        a1,死亡,2026-03-01 08:00:00,王秀英,2026-02-28\n\
        a2,死亡,2026-03-02 08:00:00,李桂兰,2026-02-30\n\
        a3,死亡,2026-03-03 08:00:00,张建国,2026-03-01";

    #[test]
    fn export_rows_resume_by_row_and_a_half_written_last_row_waits_while_watching() {
        let (_tmp, files) = export_folder(CSV);
        // Watching: the last row has no newline yet, so it is not read.
        let watching = read_all(files.clone(), HashMap::new(), false);
        let rows: Vec<u64> = watching.iter().map(|i| i.record.line()).collect();
        assert_eq!(rows, vec![2, 3]);
        assert!(watching[0].result.is_ok());
        assert_eq!(watching[0].profile.as_deref(), Some("t-deaths@1"));
        let refused = watching[1]
            .result
            .as_ref()
            .expect_err("2026-02-30 is refused");
        assert_eq!(refused.code(), "row_refused");
        let why = refused.to_string();
        assert!(
            why.contains("t-deaths@1") && why.contains("row 3") && why.contains("日期"),
            "{why}"
        );
        assert!(!why.contains("李桂兰"), "{why}");
        // Once: the file is finished, its last row is read; from the stored position, only it.
        let at = (
            watching[1].record.position.resume_at(),
            watching[1].record.line(),
        );
        let rest = read_all(
            files,
            HashMap::from([("deaths/a.csv".to_string(), at)]),
            true,
        );
        assert_eq!(rest.len(), 1);
        assert_eq!(rest[0].record.line(), 4);
        assert!(rest[0].result.is_ok());
    }

    #[test]
    fn a_pushed_files_unterminated_last_line_waits_even_once() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let folder = tmp.path().join("civil_registry");
        std::fs::create_dir_all(&folder).expect("folder");
        let text = "{\"event_id\":\"a\"}\n{\"event_id\":\"b\"";
        std::fs::write(folder.join("2026-03.jsonl"), text).expect("dropped file");
        std::fs::write(folder.join("push-2026-12-07.jsonl"), text).expect("pushed file");
        let feeds = scan_feeds(tmp.path()).expect("scan");
        assert_eq!(feeds.len(), 1);
        let mut reader = SourceReader::new(feeds[0].clone(), HashMap::new(), 1 << 20, true);
        let mut streams = Vec::new();
        while let Some(r) = reader.next_record().expect("read") {
            let line = r.line();
            streams.push((r.stream, line));
        }
        assert_eq!(
            streams,
            vec![
                ("civil_registry/2026-03.jsonl".to_string(), 1),
                ("civil_registry/2026-03.jsonl".to_string(), 2),
                ("civil_registry/push-2026-12-07.jsonl".to_string(), 1),
            ],
            "a dropped file is finished with --once; a pushed one may be mid-append"
        );
        assert!(is_pushed("civil_registry/push-2026-12-07.jsonl"));
        assert!(!is_pushed("push-x/2026-03.jsonl") && !is_pushed("a/push-1.csv"));
    }

    #[test]
    fn a_file_cut_short_is_one_refused_record_that_keeps_the_position() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let folder = tmp.path().join("chronic");
        std::fs::create_dir_all(&folder).expect("folder");
        std::fs::write(
            folder.join(PROFILE_FILE),
            doudi_feeds::shipped::text("yibao-chronic").expect("shipped"),
        )
        .expect("profile");
        std::fs::write(folder.join("a.xlsx"), b"PK\x03\x04 cut").expect("xlsx");
        let files = scan_feeds(tmp.path()).expect("scan").remove(0);
        let got = read_all(files, HashMap::new(), true);
        assert_eq!(got.len(), 1);
        let e = got[0].result.as_ref().expect_err("unreadable");
        assert_eq!(e.code(), "file_unreadable");
        assert_eq!(
            (got[0].record.line(), got[0].record.position.resume_at()),
            (0, 0)
        );
    }

    #[test]
    fn capped_lines_keep_the_cap_and_consume_the_rest() {
        let data = b"short\nthis line is long\nlast";
        let mut r = std::io::BufReader::with_capacity(4, &data[..]);
        let mut buf = Vec::new();
        let a = read_capped_line(&mut r, 8, &mut buf).unwrap().unwrap();
        assert_eq!(
            (buf.as_slice(), a.consumed, a.full_len, a.terminated),
            (&b"short"[..], 6, 5, true)
        );
        let b = read_capped_line(&mut r, 8, &mut buf).unwrap().unwrap();
        assert_eq!(
            (buf.as_slice(), b.consumed, b.full_len),
            (&b"this lin"[..], 18, 17)
        );
        let c = read_capped_line(&mut r, 8, &mut buf).unwrap().unwrap();
        assert_eq!((buf.as_slice(), c.terminated), (&b"last"[..], false));
        assert!(read_capped_line(&mut r, 8, &mut buf).unwrap().is_none());
    }
}
