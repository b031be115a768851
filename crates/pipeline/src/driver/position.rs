//! Where a record came from, typed by its source: a line (or row) of a feed file, a message of a
//! Kafka partition, or a dead letter read again. The store keeps one `(next, line)` pair per
//! stream; each kind of position says what those are, instead of a Kafka offset travelling in a
//! file's byte fields.

use std::sync::Arc;

/// A record's position in its source.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Position {
    /// A line of an envelope file, or a row of a department's export (an Excel row has no byte
    /// offsets: `start` and `end` are then those of the end of the file, and the row decides).
    File {
        /// Line (or row) number, from 1.
        line: u64,
        /// Byte offset where the line starts.
        start: u64,
        /// Byte offset after the line and its newline: where reading resumes.
        end: u64,
    },
    /// A message of a Kafka partition.
    Kafka {
        topic: Arc<str>,
        partition: i32,
        offset: i64,
    },
    /// A dead letter read again (`doudi deadletters replay`): where it was first read. Its
    /// stream's position is never moved by it.
    Replayed { line: u64, start: u64, end: u64 },
}

impl Position {
    /// The line, row or offset shown to people and stored with events and dead letters.
    pub fn line(&self) -> u64 {
        match self {
            Position::File { line, .. } | Position::Replayed { line, .. } => *line,
            Position::Kafka { offset, .. } => (*offset).max(0) as u64,
        }
    }

    /// Where the record starts: its byte offset in a file, its offset in a partition.
    pub fn start(&self) -> u64 {
        match self {
            Position::File { start, .. } | Position::Replayed { start, .. } => *start,
            Position::Kafka { offset, .. } => (*offset).max(0) as u64,
        }
    }

    /// Where reading resumes once this record is applied: the byte after its newline, the next
    /// offset of its partition.
    pub fn resume_at(&self) -> u64 {
        match self {
            Position::File { end, .. } | Position::Replayed { end, .. } => *end,
            Position::Kafka { offset, .. } => (*offset).max(0) as u64 + 1,
        }
    }

    /// Bytes of the source this record took (progress over files); 0 for messages.
    pub fn bytes(&self) -> u64 {
        match self {
            Position::File { start, end, .. } => end.saturating_sub(*start),
            Position::Kafka { .. } | Position::Replayed { .. } => 0,
        }
    }

    /// The stream this position is in, for a Kafka message (`topic/partition`); a file's stream
    /// is its path under the feeds folder, which the reader names.
    pub fn kafka_stream(&self) -> Option<String> {
        match self {
            Position::Kafka {
                topic, partition, ..
            } => Some(format!("{topic}/{partition}")),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_line_resumes_after_its_newline() {
        let p = Position::File {
            line: 3,
            start: 40,
            end: 61,
        };
        assert_eq!(
            (p.line(), p.start(), p.resume_at(), p.bytes()),
            (3, 40, 61, 21)
        );
    }

    #[test]
    fn a_kafka_message_resumes_at_the_next_offset_and_names_its_stream() {
        let p = Position::Kafka {
            topic: Arc::from("employment"),
            partition: 2,
            offset: 41,
        };
        assert_eq!(
            (p.line(), p.start(), p.resume_at(), p.bytes()),
            (41, 41, 42, 0)
        );
        assert_eq!(p.kafka_stream().as_deref(), Some("employment/2"));
        // Offsets librdkafka reports as negative (none yet) never wrap to huge positions.
        let none = Position::Kafka {
            topic: Arc::from("t"),
            partition: 0,
            offset: -1,
        };
        assert_eq!((none.line(), none.resume_at()), (0, 1));
    }

    #[test]
    fn a_replayed_dead_letter_keeps_where_it_was_first_read() {
        let p = Position::Replayed {
            line: 7,
            start: 100,
            end: 130,
        };
        assert_eq!((p.line(), p.start(), p.resume_at()), (7, 100, 130));
        assert_eq!(p.kafka_stream(), None);
        assert_eq!(p.bytes(), 0);
    }
}
