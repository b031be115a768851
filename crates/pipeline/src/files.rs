//! File feeds: `DIR/<source>/*.jsonl`, read from stored positions, one record per line, with a
//! size cap so that one absurd line cannot exhaust memory.

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufRead, BufReader, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use doudi_model::{Source, ALL_SOURCES};

use crate::PipelineError;

/// One line read from a feed file: where it came from and its bytes (at most the size cap).
#[derive(Clone, Debug)]
pub struct RawRecord {
    pub source: Source,
    /// `<source>/<file name>`, relative to the feeds folder.
    pub stream: String,
    /// Line number, from 1.
    pub line: u64,
    /// Byte offset where the line starts.
    pub byte_offset: u64,
    /// Byte offset after the line and its newline: where reading resumes.
    pub end_offset: u64,
    /// The line without its newline, cut at the size cap.
    pub bytes: Vec<u8>,
    /// The line's full length (more than `bytes.len()` when cut).
    pub full_len: u64,
}

impl RawRecord {
    pub fn truncated(&self) -> bool {
        self.full_len > self.bytes.len() as u64
    }
}

/// The feed files of one source, in name order.
#[derive(Clone, Debug)]
pub struct SourceFiles {
    pub source: Source,
    pub files: Vec<(String, PathBuf)>,
}

/// Find the feed files under `dir`: one folder per source (`health_insurance/`, `employment/`,
/// `housing/`, `civil_registry/`), each holding `*.jsonl` files read in name order. A folder or file
/// that is not recognised is an error rather than something silently skipped.
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
                hint: "the feeds folder holds one folder per source, not files",
            });
        }
        names.push((name, path));
    }
    for (name, path) in names {
        let Some(source) = Source::from_code(&name) else {
            return Err(PipelineError::UnknownSourceFolder {
                path,
                known: ALL_SOURCES
                    .iter()
                    .map(|s| s.code())
                    .collect::<Vec<_>>()
                    .join(", "),
            });
        };
        let mut files = Vec::new();
        for entry in std::fs::read_dir(&path).map_err(|e| io(e, &path))? {
            let entry = entry.map_err(|e| io(e, &path))?;
            let p = entry.path();
            let fname = entry.file_name().to_string_lossy().into_owned();
            if fname.starts_with('.') {
                continue;
            }
            if !p.is_file() || !fname.ends_with(".jsonl") {
                return Err(PipelineError::UnexpectedFeedEntry {
                    path: p,
                    hint: "feed folders hold only *.jsonl files, one event per line",
                });
            }
            files.push((format!("{}/{}", source.code(), fname), p));
        }
        files.sort();
        out.push(SourceFiles { source, files });
    }
    out.sort_by_key(|s| s.source);
    Ok(out)
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
                Some(l) if !l.terminated && !self.take_unterminated => {
                    // A line still being written: leave it for the next pass.
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
                        line: *line,
                        byte_offset: start,
                        end_offset: *offset,
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
    let mut readers: Vec<SourceReader> = scan_feeds(dir)?
        .into_iter()
        .map(|files| SourceReader::new(files, HashMap::new(), limits.max_event_bytes + 1, true))
        .collect();
    let mut out = Vec::with_capacity(max.min(1 << 20));
    while out.len() < max && !readers.is_empty() {
        let mut i = 0;
        while i < readers.len() && out.len() < max {
            match readers[i].next_record()? {
                None => {
                    readers.remove(i);
                    continue;
                }
                Some(r) if !r.truncated() => {
                    if let Ok(event) = doudi_model::parse_event(&r.bytes, limits) {
                        out.push(event.subject);
                    }
                }
                Some(_) => {}
            }
            i += 1;
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

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
