//! The file a bounded [`crate::RegisterIndex`] keeps its bulk in: the members' fixed-size records
//! and the blocking arrays' sorted `(key, member)` pairs, read back with positioned reads.
//!
//! The file is created readable and writable by its owner only (mode 0600) under a name of its
//! own (the process id and a counter), and unlinked at once: the open handle is all that reaches
//! it, so it is gone when the index is dropped or the process ends, however it ends, and no
//! other process, worker or restart ever sees a half-written one. A restart builds a new one.
//!
//! Layout: the records of the members indexed while building (in member order,
//! [`RECORD_BYTES`] each: the 18-character identity number, the birth date as days from the
//! common era, the sex), then each blocking array's pairs sorted by mixed key then member
//! ([`PAIR_BYTES`] each: the mixed key and the member, little-endian).
//!
//! Building never holds more than a run of pairs per blocking array: pairs are sorted a run at a
//! time into a second (unlinked) file and merged into the index file at the end.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// A member's record in the file: identity number (18), birth date (i32), sex (u8).
pub(crate) const RECORD_BYTES: usize = 23;
/// A blocking pair in the file: mixed key (u64), member (u32).
pub(crate) const PAIR_BYTES: usize = 12;
/// Bytes read at a time from a run while merging.
const RUN_READ: usize = PAIR_BYTES * 5461;

/// What went wrong with the index file, and which file.
#[derive(Debug, thiserror::Error)]
#[error("identity index file {path}: {what}: {source}")]
pub struct IndexFileError {
    pub path: PathBuf,
    pub what: &'static str,
    #[source]
    pub source: std::io::Error,
}

/// A private file under `dir`, unlinked as soon as it is made (the handle keeps it).
pub(crate) fn private_unlinked(dir: &Path, stem: &str) -> Result<(File, PathBuf), IndexFileError> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let path = dir.join(format!(".{stem}.{}.{n}.tmp", std::process::id()));
    let err = |what, source| IndexFileError {
        path: path.clone(),
        what,
        source,
    };
    let mut options = std::fs::OpenOptions::new();
    options.read(true).write(true).create_new(true);
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let file = options.open(&path).map_err(|e| err("cannot create", e))?;
    std::fs::remove_file(&path).map_err(|e| err("cannot unlink after creating", e))?;
    Ok((file, path))
}

/// The built index's file, shared by the clones of an index.
#[derive(Debug)]
pub(crate) struct IndexFile {
    pub file: File,
    /// Where it was made (unlinked; for messages).
    pub path: PathBuf,
    /// Bytes written.
    pub bytes: u64,
}

impl IndexFile {
    /// Read `buf.len()` bytes at `offset`. A failed read of the process's own file means the
    /// disk under it failed: like a failed memory read, it stops the worker (before its batch
    /// commits, so nothing is lost; the restart builds the file again).
    pub fn read(&self, buf: &mut [u8], offset: u64) {
        if let Err(e) = self.file.read_exact_at(buf, offset) {
            panic!(
                "identity index file {} (unlinked): cannot read {} bytes at {offset}: {e}",
                self.path.display(),
                buf.len()
            );
        }
    }
}

/// The top bits of a mixed key that pick a directory bucket, for `n` keys: log2(n) rounded up,
/// less 3 (four to eight keys a bucket).
pub(crate) fn dir_bits(n: usize) -> u32 {
    let n = n.max(2);
    (usize::BITS - (n - 1).leading_zeros())
        .saturating_sub(3)
        .clamp(1, 32)
}

/// One blocking array's pairs while building: a run in memory, the runs sorted before it in the
/// runs file.
#[derive(Debug, Default)]
struct ArrayRuns {
    buffer: Vec<(u64, u32)>,
    /// (offset, pairs) of each run written.
    runs: Vec<(u64, u64)>,
}

/// Where a bounded builder writes: the index file (records as members come, then the arrays)
/// and the runs file.
#[derive(Debug)]
pub(crate) struct Spill {
    out: BufWriter<File>,
    file: File,
    path: PathBuf,
    written: u64,
    runs_out: BufWriter<File>,
    runs_file: File,
    runs_path: PathBuf,
    runs_written: u64,
    arrays: [ArrayRuns; 5],
    run_pairs: usize,
    pub records: usize,
}

/// A blocking array merged into the file: where its pairs start, how many, and its directory.
pub(crate) struct DiskArray {
    pub offset: u64,
    pub len: usize,
    pub dir: Vec<u32>,
    pub shift: u32,
}

impl Spill {
    pub fn create(dir: &Path, run_pairs: usize) -> Result<Spill, IndexFileError> {
        let (file, path) = private_unlinked(dir, "identity-index")?;
        let (runs_file, runs_path) = private_unlinked(dir, "identity-index-runs")?;
        let clone = |f: &File, p: &Path| {
            f.try_clone().map_err(|e| IndexFileError {
                path: p.to_path_buf(),
                what: "cannot open a second handle",
                source: e,
            })
        };
        Ok(Spill {
            out: BufWriter::with_capacity(256 * 1024, clone(&file, &path)?),
            runs_out: BufWriter::with_capacity(256 * 1024, clone(&runs_file, &runs_path)?),
            file,
            path,
            written: 0,
            runs_file,
            runs_path,
            runs_written: 0,
            arrays: Default::default(),
            run_pairs: run_pairs.max(1024),
            records: 0,
        })
    }

    fn err(&self, what: &'static str, source: std::io::Error) -> IndexFileError {
        IndexFileError {
            path: self.path.clone(),
            what,
            source,
        }
    }

    /// Append a member's record.
    pub fn record(&mut self, id: &[u8; 18], birth: i32, sex: u8) -> Result<(), IndexFileError> {
        let mut r = [0u8; RECORD_BYTES];
        r[..18].copy_from_slice(id);
        r[18..22].copy_from_slice(&birth.to_le_bytes());
        r[22] = sex;
        self.out
            .write_all(&r)
            .map_err(|e| self.err("cannot write", e))?;
        self.written += RECORD_BYTES as u64;
        self.records += 1;
        Ok(())
    }

    /// Add a (mixed key, member) pair to blocking array `block`.
    pub fn pair(&mut self, block: usize, pair: (u64, u32)) -> Result<(), IndexFileError> {
        self.arrays[block].buffer.push(pair);
        if self.arrays[block].buffer.len() >= self.run_pairs {
            self.write_run(block)?;
        }
        Ok(())
    }

    /// Sort the buffered pairs of `block` and write them as a run.
    fn write_run(&mut self, block: usize) -> Result<(), IndexFileError> {
        let mut buffer = std::mem::take(&mut self.arrays[block].buffer);
        if buffer.is_empty() {
            return Ok(());
        }
        buffer.sort_unstable();
        let start = self.runs_written;
        for (k, m) in &buffer {
            let mut p = [0u8; PAIR_BYTES];
            p[..8].copy_from_slice(&k.to_le_bytes());
            p[8..].copy_from_slice(&m.to_le_bytes());
            if let Err(e) = self.runs_out.write_all(&p) {
                return Err(IndexFileError {
                    path: self.runs_path.clone(),
                    what: "cannot write",
                    source: e,
                });
            }
        }
        self.runs_written += (buffer.len() * PAIR_BYTES) as u64;
        self.arrays[block].runs.push((start, buffer.len() as u64));
        buffer.clear();
        self.arrays[block].buffer = buffer;
        Ok(())
    }

    /// Merge each array's runs into the index file; the file and the arrays' places in it.
    pub fn finish(mut self) -> Result<(IndexFile, [DiskArray; 5]), IndexFileError> {
        for b in 0..5 {
            self.write_run(b)?;
            self.arrays[b].buffer = Vec::new();
        }
        let runs_path = self.runs_path.clone();
        self.runs_out.flush().map_err(|e| IndexFileError {
            path: runs_path.clone(),
            what: "cannot write",
            source: e,
        })?;
        let mut arrays = Vec::with_capacity(5);
        for b in 0..5 {
            let runs = std::mem::take(&mut self.arrays[b].runs);
            arrays.push(self.merge(&runs)?);
        }
        self.out.flush().map_err(|e| self.err("cannot write", e))?;
        let Spill {
            out, file, path, ..
        } = self;
        drop(out);
        let arrays: [DiskArray; 5] = match arrays.try_into() {
            Ok(a) => a,
            Err(_) => unreachable!("five arrays merged"),
        };
        let bytes = file.metadata().map(|m| m.len()).unwrap_or(0);
        Ok((IndexFile { file, path, bytes }, arrays))
    }

    /// Merge sorted runs into the index file (duplicates kept once), with the directory.
    fn merge(&mut self, runs: &[(u64, u64)]) -> Result<DiskArray, IndexFileError> {
        let total: u64 = runs.iter().map(|r| r.1).sum();
        let bits = dir_bits(total as usize);
        let shift = 64 - bits;
        let mut counts = vec![0u32; 1usize << bits];
        let offset = self.written;
        let mut readers: Vec<RunReader> = runs
            .iter()
            .map(|(start, n)| RunReader {
                pos: *start,
                end: start + n * PAIR_BYTES as u64,
                buf: Vec::new(),
                at: 0,
            })
            .collect();
        let mut heap = BinaryHeap::with_capacity(readers.len());
        for (i, r) in readers.iter_mut().enumerate() {
            if let Some(p) = r.next(&self.runs_file, &self.runs_path)? {
                heap.push(Reverse((p, i)));
            }
        }
        let mut last: Option<(u64, u32)> = None;
        let mut len = 0usize;
        while let Some(Reverse((p, i))) = heap.pop() {
            if let Some(next) = readers[i].next(&self.runs_file, &self.runs_path)? {
                heap.push(Reverse((next, i)));
            }
            if last == Some(p) {
                continue;
            }
            last = Some(p);
            let mut b = [0u8; PAIR_BYTES];
            b[..8].copy_from_slice(&p.0.to_le_bytes());
            b[8..].copy_from_slice(&p.1.to_le_bytes());
            self.out
                .write_all(&b)
                .map_err(|e| self.err("cannot write", e))?;
            counts[(p.0 >> shift) as usize] += 1;
            len += 1;
        }
        self.written += (len * PAIR_BYTES) as u64;
        // The directory the in-memory array would have (its bits follow the pairs kept).
        let kept_bits = dir_bits(len);
        let coarse = bits - kept_bits.min(bits);
        let buckets = 1usize << (bits - coarse);
        let mut dir = Vec::with_capacity(buckets + 1);
        let mut pos = 0u32;
        for b in 0..buckets {
            dir.push(pos);
            pos += counts[b << coarse..(b + 1) << coarse].iter().sum::<u32>();
        }
        dir.push(pos);
        Ok(DiskArray {
            offset,
            len,
            dir,
            shift: 64 - (bits - coarse),
        })
    }
}

/// A sorted run being read back.
struct RunReader {
    pos: u64,
    end: u64,
    buf: Vec<u8>,
    at: usize,
}

impl RunReader {
    fn next(&mut self, file: &File, path: &Path) -> Result<Option<(u64, u32)>, IndexFileError> {
        if self.at + PAIR_BYTES > self.buf.len() {
            if self.pos >= self.end {
                return Ok(None);
            }
            let n = (RUN_READ as u64).min(self.end - self.pos) as usize;
            self.buf.resize(n, 0);
            file.read_exact_at(&mut self.buf, self.pos)
                .map_err(|e| IndexFileError {
                    path: path.to_path_buf(),
                    what: "cannot read a run back",
                    source: e,
                })?;
            self.pos += n as u64;
            self.at = 0;
        }
        let p = &self.buf[self.at..self.at + PAIR_BYTES];
        self.at += PAIR_BYTES;
        let mut k = [0u8; 8];
        k.copy_from_slice(&p[..8]);
        let mut m = [0u8; 4];
        m.copy_from_slice(&p[8..]);
        Ok(Some((u64::from_le_bytes(k), u32::from_le_bytes(m))))
    }
}

/// The index file shared by an index's clones.
pub(crate) type Shared = Arc<IndexFile>;

#[cfg(test)]
mod tests {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};

    /// The index file is its owner's alone and has no name from the start: nothing to clean up
    /// after a crash, nothing another process can open.
    #[test]
    fn the_index_file_is_private_and_unlinked_from_the_start() {
        let dir = tempfile::tempdir().unwrap();
        let (file, path) = super::private_unlinked(dir.path(), "identity-index").unwrap();
        let meta = file.metadata().unwrap();
        assert_eq!(meta.permissions().mode() & 0o777, 0o600);
        assert_eq!(meta.nlink(), 0, "unlinked");
        assert!(!path.exists());
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
        let e = super::private_unlinked(&dir.path().join("missing"), "identity-index")
            .unwrap_err()
            .to_string();
        assert!(e.contains("missing") && e.contains("cannot create"), "{e}");
    }
}
