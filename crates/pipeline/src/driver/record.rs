//! One record as a source read it: where it came from (a typed [`Position`]) and its bytes.

use doudi_model::Source;

use super::Position;

/// One record read from a source (a feed file's line or row, a Kafka message, a replayed dead
/// letter): where it came from and its bytes (at most the size cap).
#[derive(Clone, Debug)]
pub struct RawRecord {
    pub source: Source,
    /// `<source>/<file name>`, relative to the feeds folder.
    pub stream: String,
    /// Where it was read: a file's line and bytes, a partition's offset, or a replayed dead
    /// letter's first reading.
    pub position: Position,
    /// The line without its newline, cut at the size cap.
    pub bytes: Vec<u8>,
    /// The line's full length (more than `bytes.len()` when cut).
    pub full_len: u64,
}

impl RawRecord {
    /// The line, row or offset it was read at.
    pub fn line(&self) -> u64 {
        self.position.line()
    }

    pub fn truncated(&self) -> bool {
        self.full_len > self.bytes.len() as u64
    }
}
