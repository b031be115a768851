//! Progress reports, so that the CLI can draw bars on a terminal and write plain lines in logs.
//! The crate itself draws nothing.

use std::collections::BTreeMap;
use std::io::Write;
use std::sync::Mutex;

/// Whether the run should go on. Returning [`Flow::Stop`] from [`Progress::advance`] interrupts
/// the run cleanly: files already read are checkpointed (when a work directory is given) and the
/// run returns [`crate::CrosscheckError::Interrupted`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flow {
    Continue,
    Stop,
}

/// Told what the run is doing. Called from several threads at once.
pub trait Progress: Sync {
    /// A file is about to be read (`bytes` in all).
    fn start_file(&self, _file: &str, _bytes: u64) {}
    /// `bytes` more bytes and `rows` more rows of `file` were read.
    fn advance(&self, _file: &str, _bytes: u64, _rows: u64) -> Flow {
        Flow::Continue
    }
    /// A file is done: read now, or taken from a checkpoint (`resumed`).
    fn finish_file(&self, _file: &str, _rows: u64, _resumed: bool) {}
    /// A step of the run (indexing, checks, ...).
    fn stage(&self, _what: &str) {}
}

/// Reports nothing.
pub struct NoProgress;

impl Progress for NoProgress {}

/// Plain progress lines (for logs and pipes): one line per file start and end, one every 10 %
/// of a file.
pub struct LogProgress<W: Write + Send> {
    out: Mutex<(W, BTreeMap<String, FileState>)>,
}

/// Bytes in all, bytes done, last tenth reported.
#[derive(Default)]
struct FileState {
    total: u64,
    done: u64,
    last_decile: u64,
}

impl<W: Write + Send> LogProgress<W> {
    pub fn new(out: W) -> Self {
        LogProgress {
            out: Mutex::new((out, BTreeMap::new())),
        }
    }
}

impl<W: Write + Send> Progress for LogProgress<W> {
    fn start_file(&self, file: &str, bytes: u64) {
        if let Ok(mut g) = self.out.lock() {
            g.1.insert(
                file.to_string(),
                FileState {
                    total: bytes,
                    ..FileState::default()
                },
            );
            let _ = writeln!(g.0, "crosscheck: reading {file} ({bytes} bytes)");
        }
    }

    fn advance(&self, file: &str, bytes: u64, rows: u64) -> Flow {
        if let Ok(mut g) = self.out.lock() {
            let (w, files) = &mut *g;
            if let Some(st) = files.get_mut(file) {
                st.done += bytes;
                let decile = (st.done * 10).checked_div(st.total).unwrap_or(10).min(10);
                if decile > st.last_decile && decile < 10 {
                    st.last_decile = decile;
                    let _ = writeln!(w, "crosscheck: {file} {decile}0%");
                }
            }
            let _ = rows;
        }
        Flow::Continue
    }

    fn finish_file(&self, file: &str, rows: u64, resumed: bool) {
        if let Ok(mut g) = self.out.lock() {
            let how = if resumed { " (from checkpoint)" } else { "" };
            let _ = writeln!(g.0, "crosscheck: {file} done, {rows} rows{how}");
        }
    }

    fn stage(&self, what: &str) {
        if let Ok(mut g) = self.out.lock() {
            let _ = writeln!(g.0, "crosscheck: {what}");
        }
    }
}
