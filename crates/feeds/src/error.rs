//! What can go wrong, at three levels: the profile (fix the TOML), the file (fix or re-export the
//! file, or the profile's `[file]` table), one row (fix the row or the profile's mapping).
//! No message quotes a cell's value: a row's personal data never reaches a log through an error.

use std::fmt;
use std::path::PathBuf;

/// A profile that cannot be used. Says which file and, where known, which line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProfileError {
    #[error("cannot read profile {}: {message}", path.display())]
    Io { path: PathBuf, message: String },
    /// The TOML does not parse or has a key the profile format does not know (the message from
    /// the TOML reader says the line and column).
    #[error("profile {}: {message}", path.display())]
    Toml { path: PathBuf, message: String },
    /// The TOML is well formed, but what it says cannot work (a kind the source does not send, a
    /// required field left unmapped, a code mapped to a value the field does not take, …).
    #[error("profile {}{}: {message}", path.display(), line.map(|l| format!(", line {l}")).unwrap_or_default())]
    Invalid {
        path: PathBuf,
        line: Option<usize>,
        message: String,
    },
}

/// A file that cannot be read with the profile, or that stops being readable partway. Rows read
/// before a file error stand; nothing after it was read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FileError {
    #[error("{file}: cannot read: {message}")]
    Io { file: String, message: String },
    #[error("{file}: not a readable Excel workbook (.xlsx): {message}; if it was cut short in transfer, export or copy it again")]
    Workbook { file: String, message: String },
    #[error("{file}: no sheet named {sheet:?} (sheets: {found})")]
    NoSuchSheet {
        file: String,
        sheet: String,
        found: String,
    },
    #[error("{file}: the header row (row {row}) lacks column {column:?} that the profile reads (header has: {found})")]
    MissingColumn {
        file: String,
        row: u64,
        column: String,
        found: String,
    },
    #[error("{file}: column {column:?} appears more than once in the header (row {row}); rename one in the export or in the profile")]
    AmbiguousColumn {
        file: String,
        row: u64,
        column: String,
    },
    #[error("{file}: ended before the header row (row {row})")]
    NoHeader { file: String, row: u64 },
    #[error("{file}: {where_} has more than {limit} data rows, the profile's limit (max_rows); rows after row {last_row} were not read: split the export or raise max_rows")]
    TooManyRows {
        file: String,
        where_: String,
        limit: u64,
        last_row: u64,
    },
    #[error("{file}: {message}")]
    Encoding { file: String, message: String },
}

/// Why one row made no event: which row, which column (and the event field it feeds), and why,
/// in words that say what to fix. Never the cell's value.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct RowError {
    /// The row as the file shows it (line for CSV and JSON lines, sheet row for Excel), from 1.
    pub row: u64,
    /// The export's column, when one column is at fault.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub column: Option<String>,
    /// The event field (`subject.id_number`, `data.settled_on`, `kind`, `event_id`, …).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    pub reason: String,
}

impl RowError {
    pub fn new(row: u64, reason: impl Into<String>) -> Self {
        RowError {
            row,
            column: None,
            field: None,
            reason: reason.into(),
        }
    }
}

impl fmt::Display for RowError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "row {}", self.row)?;
        if let Some(c) = &self.column {
            write!(f, ", column {c}")?;
        }
        if let Some(field) = &self.field {
            write!(f, " ({field})")?;
        }
        write!(f, ": {}", self.reason)
    }
}

impl std::error::Error for RowError {}

/// Mask values in a message from the event model's checks (which may quote a code, an amount or
/// a date): quoted text and runs of three or more digits become `…`.
pub(crate) fn redact(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    let mut chars = message.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '"' {
            for d in chars.by_ref() {
                if d == '"' {
                    break;
                }
            }
            out.push('…');
        } else if c.is_ascii_digit() {
            let mut run = String::from(c);
            while let Some(&d) = chars.peek() {
                if d.is_ascii_digit() || ((d == '-' || d == '.' || d == ':') && !run.is_empty()) {
                    run.push(d);
                    chars.next();
                } else {
                    break;
                }
            }
            if run.chars().filter(char::is_ascii_digit).count() >= 3 {
                out.push('…');
            } else {
                out.push_str(&run);
            }
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redaction_hides_codes_amounts_and_dates_but_keeps_small_numbers() {
        assert_eq!(
            redact("\"C99X\" is not an ICD-10 code like \"C34.9\""),
            "… is not an ICD-10 code like …"
        );
        assert_eq!(
            redact("fund paid (3000000) plus out of pocket (250) exceeds the total cost (99)"),
            "fund paid (…) plus out of pocket (…) exceeds the total cost (99)"
        );
        assert_eq!(
            redact("discharged on 2026-03-01, before admission on 2026-03-05"),
            "discharged on …, before admission on …"
        );
        assert_eq!(redact("must be 1 to 4, got 7"), "must be 1 to 4, got 7");
    }
}
