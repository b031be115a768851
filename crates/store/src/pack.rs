//! Packed documents: the per-event JSON documents (normalised events, assessments, link evidence)
//! and the register's history of household records, stored deflated
//! against a preset dictionary of their own kind, so that what every such document repeats (keys,
//! rule ids, the sentences a rule writes with only its dates and amounts changing) costs a few
//! bits instead of its bytes. Packed, a document is text still (`~`, the dictionary's id, then
//! base64 of the raw deflate stream), so it goes in the same TEXT column as the JSON it replaces,
//! and a column holds either form: [`unpack`] gives the JSON back, as it was written, byte for
//! byte, and passes plain JSON (every row stored before packing) through as it is.
//!
//! Written to SQLite, a packed document is bytes instead (a BLOB in the same column, SQLite's
//! TEXT columns keep a BLOB as it is): a byte naming the dictionary (its id with the high bit
//! set, which no JSON document and no UTF-8 text starts with) then the raw deflate stream, a
//! quarter smaller than its base64. PostgreSQL's TEXT columns take the text form. A reader takes
//! a column's value as bytes ([`Stored`]) and [`unpack_stored`] reads any of the three forms.
//!
//! A dictionary is part of the stored format: once rows are written with one, it never changes.
//! A better one is a new [`Dict`] with a new id beside it (the old one stays to read old rows).
//! The dictionaries are synthetic documents made by `doudi gen` and `doudi run` (no one's data;
//! ID numbers zeroed past their region).

use std::borrow::Cow;
use std::cell::RefCell;

use base64::engine::general_purpose::STANDARD_NO_PAD;
use base64::Engine;
use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};

use crate::error::StoreError;

/// What starts a packed document (a JSON document starts with `{`).
const MARK: char = '~';

/// Set in the first byte of a packed document stored as bytes: the dictionary's id (ASCII) with
/// this bit (no JSON document, no UTF-8 text starts with such a byte).
const BIN: u8 = 0x80;

/// No packed document unpacks to more than this (a stored document is a few kilobytes).
const MAX_UNPACKED: usize = 16 << 20;

/// A preset dictionary, by the id stored in front of what it packed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dict {
    /// `assessments.assessment`, `warnings.summary` (the latest assessment, migration 0017).
    Assessment,
    /// `link_decisions.evidence`, `link_history.evidence`.
    Evidence,
    /// `events.normalised`.
    Event,
    /// `register_history.after`.
    Register,
}

impl Dict {
    const ALL: [Dict; 4] = [
        Dict::Assessment,
        Dict::Evidence,
        Dict::Event,
        Dict::Register,
    ];

    fn id(self) -> char {
        match self {
            Dict::Assessment => 'a',
            Dict::Evidence => 'e',
            Dict::Event => 'n',
            Dict::Register => 'r',
        }
    }

    fn bytes(self) -> &'static [u8] {
        match self {
            Dict::Assessment => include_bytes!("dict/assessment-a.dict"),
            Dict::Evidence => include_bytes!("dict/evidence-e.dict"),
            Dict::Event => include_bytes!("dict/event-n.dict"),
            Dict::Register => include_bytes!("dict/register-r.dict"),
        }
    }

    /// The window (as large as the dictionary: priming a stream with the dictionary is most of
    /// the cost of packing a short document) and the level. Assessments (1.3 KB of sentences, on
    /// a third of the facts): 8 KiB, level 6, about 190 bytes; evidence (300 bytes on every
    /// record): 1 KiB, level 1, about 36 bytes; events (390 bytes): 4 KiB, level 1, about 100;
    /// household records (700 bytes): 4 KiB, level 1, about 180.
    fn window_and_level(self) -> (u8, u32) {
        match self {
            Dict::Assessment => (13, 6),
            Dict::Evidence => (10, 1),
            Dict::Event | Dict::Register => (12, 1),
        }
    }

    fn slot(self) -> usize {
        self as usize
    }
}

/// Each thread's deflate and inflate streams, one per dictionary (reset for each document).
struct Streams {
    deflate: [Option<Compress>; 4],
    inflate: [Option<Decompress>; 4],
}

thread_local! {
    static STREAMS: RefCell<Streams> = const {
        RefCell::new(Streams {
            deflate: [None, None, None, None],
            inflate: [None, None, None, None],
        })
    };
}

/// A packed document: the dictionary's byte then the raw deflate stream (or, were deflating to
/// fail, the JSON itself). Written as bytes to SQLite and as text (`~`, id, base64) to
/// PostgreSQL ([`Packed::to_text`]).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Packed(Vec<u8>);

impl Packed {
    /// The bytes SQLite keeps.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// The text PostgreSQL keeps: `~`, the dictionary's id, then base64 (or the JSON itself).
    pub fn to_text(&self) -> String {
        match self.0.split_first() {
            Some((&first, rest)) if first & BIN != 0 => {
                let mut out = String::with_capacity(2 + rest.len() * 4 / 3 + 4);
                out.push(MARK);
                out.push(char::from(first & !BIN));
                STANDARD_NO_PAD.encode_string(rest, &mut out);
                out
            }
            _ => String::from_utf8_lossy(&self.0).into_owned(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub(crate) fn into_bytes(self) -> Vec<u8> {
        self.0
    }
}

/// A stored document as read from its column, in any of its forms (see [`unpack_stored`]): a
/// SQLite BLOB or TEXT, a PostgreSQL TEXT, taken as bytes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Stored(pub Vec<u8>);

impl Stored {
    /// Bound back as it was read (a register record copied to its history): bytes on SQLite.
    pub(crate) fn into_bytes(self) -> Vec<u8> {
        self.0
    }

    /// Bound back as text (PostgreSQL's TEXT columns hold only text forms).
    pub(crate) fn into_text(self) -> String {
        String::from_utf8(self.0).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into())
    }
}

impl sqlx::Type<sqlx::Sqlite> for Stored {
    fn type_info() -> sqlx::sqlite::SqliteTypeInfo {
        <Vec<u8> as sqlx::Type<sqlx::Sqlite>>::type_info()
    }
    fn compatible(ty: &sqlx::sqlite::SqliteTypeInfo) -> bool {
        // BLOB or TEXT.
        <Vec<u8> as sqlx::Type<sqlx::Sqlite>>::compatible(ty)
    }
}

impl<'r> sqlx::Decode<'r, sqlx::Sqlite> for Stored {
    fn decode(value: sqlx::sqlite::SqliteValueRef<'r>) -> Result<Self, sqlx::error::BoxDynError> {
        <Vec<u8> as sqlx::Decode<sqlx::Sqlite>>::decode(value).map(Stored)
    }
}

impl sqlx::Type<sqlx::Postgres> for Stored {
    fn type_info() -> sqlx::postgres::PgTypeInfo {
        <String as sqlx::Type<sqlx::Postgres>>::type_info()
    }
    fn compatible(ty: &sqlx::postgres::PgTypeInfo) -> bool {
        <String as sqlx::Type<sqlx::Postgres>>::compatible(ty)
    }
}

impl<'r> sqlx::Decode<'r, sqlx::Postgres> for Stored {
    fn decode(value: sqlx::postgres::PgValueRef<'r>) -> Result<Self, sqlx::error::BoxDynError> {
        <String as sqlx::Decode<sqlx::Postgres>>::decode(value).map(|s| Stored(s.into_bytes()))
    }
}

/// A normalised event (JSON) as `events.normalised` keeps it: made by whoever makes the event
/// row, on its own thread ([`crate::EventRow::packed`]).
pub fn pack_event(normalised: &str) -> Packed {
    pack_bytes(Dict::Event, normalised)
}

/// A document as a column keeps it, read back (its bytes, or its text): its JSON (for tools and
/// tests that read the tables past the store).
pub fn unpack_document(stored: impl AsRef<[u8]>) -> Result<String, StoreError> {
    unpack_stored(stored.as_ref(), "a stored document").map(Cow::into_owned)
}

/// A household's register record as `households.record` (and the register's history) keeps it,
/// in any of its forms, decoded: the one reader of the register's stored records, for every
/// loader of the register.
pub fn decode_household_record(stored: &[u8]) -> Result<doudi_model::Household, StoreError> {
    crate::codec::decode_stored(stored, "households.record")
}

/// `text` packed with `dict`, as bytes (see [`Packed`]). Were deflating to fail, the JSON itself.
pub(crate) fn pack_bytes(dict: Dict, text: &str) -> Packed {
    STREAMS
        .with(|s| {
            let (window, level) = dict.window_and_level();
            let mut s = s.borrow_mut();
            let c = s.deflate[dict.slot()].get_or_insert_with(|| {
                Compress::new_with_window_bits(Compression::new(level), false, window)
            });
            deflate_after(c, dict.bytes(), text.as_bytes(), dict.id() as u8 | BIN)
        })
        .map(Packed)
        .unwrap_or_else(|| Packed(text.as_bytes().to_vec()))
}

/// The document stored in `stored` (bytes or text, see [`Stored`]): unpacked if packed, else
/// the text itself. `column` names the table and column for errors.
pub(crate) fn unpack_stored<'a>(
    stored: &'a [u8],
    column: &'static str,
) -> Result<Cow<'a, str>, StoreError> {
    match stored.split_first() {
        Some((&first, rest)) if first & BIN != 0 => {
            let dict = dict_of(char::from(first & !BIN), column)?;
            inflated(dict, rest, column).map(Cow::Owned)
        }
        _ => {
            let text = std::str::from_utf8(stored).map_err(|e| StoreError::Corrupt {
                context: column,
                message: format!("stored document: {e}"),
            })?;
            unpack(text, column)
        }
    }
}

fn dict_of(id: char, column: &'static str) -> Result<Dict, StoreError> {
    Dict::ALL
        .into_iter()
        .find(|d| d.id() == id)
        .ok_or_else(|| StoreError::Corrupt {
            context: column,
            message: format!("unknown packing {id:?}"),
        })
}

/// The JSON `bytes` (a raw deflate stream) inflate to with `dict`.
fn inflated(dict: Dict, bytes: &[u8], column: &'static str) -> Result<String, StoreError> {
    let corrupt = |message: String| StoreError::Corrupt {
        context: column,
        message,
    };
    let out = STREAMS
        .with(|s| {
            let mut s = s.borrow_mut();
            let d = s.inflate[dict.slot()].get_or_insert_with(|| {
                Decompress::new_with_window_bits(false, dict.window_and_level().0)
            });
            inflate(d, dict.bytes(), bytes)
        })
        .map_err(corrupt)?;
    String::from_utf8(out).map_err(|e| corrupt(format!("packed document: {e}")))
}

/// `text` packed with `dict`, in the text form (what rows written before the byte form hold,
/// and PostgreSQL's columns).
#[cfg(test)]
pub(crate) fn pack(dict: Dict, text: &str) -> String {
    pack_bytes(dict, text).to_text()
}

/// The raw deflate stream of `input` with `dict`, after `head` (a byte, or none).
fn deflate_after(c: &mut Compress, dict: &[u8], input: &[u8], head: u8) -> Option<Vec<u8>> {
    c.reset();
    c.set_dictionary(dict).ok()?;
    let mut out = Vec::with_capacity(input.len() / 2 + 64);
    out.push(head);
    loop {
        let done = usize::try_from(c.total_in()).ok()?;
        let status = c
            .compress_vec(input.get(done..)?, &mut out, FlushCompress::Finish)
            .ok()?;
        if status == Status::StreamEnd {
            return Some(out);
        }
        out.reserve(out.capacity().max(64));
    }
}

/// The document stored in `text`: unpacked if packed, else `text` itself. `column` names the
/// table and column for errors.
pub(crate) fn unpack<'a>(text: &'a str, column: &'static str) -> Result<Cow<'a, str>, StoreError> {
    let Some(rest) = text.strip_prefix(MARK) else {
        return Ok(Cow::Borrowed(text));
    };
    let mut chars = rest.chars();
    let dict = match chars.next() {
        Some(id) => dict_of(id, column)?,
        None => {
            return Err(StoreError::Corrupt {
                context: column,
                message: "unknown packing None".into(),
            })
        }
    };
    let bytes = STANDARD_NO_PAD
        .decode(chars.as_str())
        .map_err(|e| StoreError::Corrupt {
            context: column,
            message: format!("packed document: {e}"),
        })?;
    inflated(dict, &bytes, column).map(Cow::Owned)
}

fn inflate(d: &mut Decompress, dict: &[u8], input: &[u8]) -> Result<Vec<u8>, String> {
    d.reset(false);
    d.set_dictionary(dict).map_err(|e| e.to_string())?;
    let mut out = Vec::with_capacity(input.len() * 4 + 64);
    loop {
        let (done, made) = (d.total_in(), d.total_out());
        let rest = usize::try_from(done)
            .ok()
            .and_then(|i| input.get(i..))
            .unwrap_or_default();
        let status = d
            .decompress_vec(rest, &mut out, FlushDecompress::Finish)
            .map_err(|e| format!("packed document: {e}"))?;
        if status == Status::StreamEnd {
            return Ok(out);
        }
        let stuck = d.total_in() == done && d.total_out() == made;
        if out.len() < out.capacity() || stuck {
            return Err("packed document cut short".into());
        }
        if out.len() >= MAX_UNPACKED {
            return Err("packed document too large".into());
        }
        out.reserve(out.capacity());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_packed_document_unpacks_to_the_same_bytes_and_json_passes_through() {
        let json = r#"{"rule_set_version":"2026.1","score":40,"reason_zh":"家庭成员（户主）于2026-01-31失去工作"}"#;
        for dict in Dict::ALL {
            let packed = pack(dict, json);
            assert!(packed.starts_with('~'), "{packed}");
            assert_eq!(unpack(&packed, "t.c").unwrap(), json);
        }
        assert!(matches!(unpack(json, "t.c").unwrap(), Cow::Borrowed(j) if j == json));
        let long = json.repeat(500);
        assert_eq!(unpack(&pack(Dict::Evidence, &long), "t.c").unwrap(), long);
    }

    #[test]
    fn packed_bytes_read_back_as_do_their_text_form_and_plain_json() {
        let json = r#"{"household_id":"H1","address":"一村1号","members":[]}"#;
        for dict in Dict::ALL {
            let packed = pack_bytes(dict, json);
            let bytes = packed.as_bytes();
            assert_eq!(bytes[0], dict.id() as u8 | BIN);
            assert!(bytes.len() < json.len(), "{} bytes", bytes.len());
            assert_eq!(unpack_stored(bytes, "t.c").unwrap(), json);
            // The text form: what SQLite rows written before, and PostgreSQL's, hold.
            let text = packed.to_text();
            assert!(
                text.starts_with(['~']) && text.len() > bytes.len(),
                "{text}"
            );
            assert_eq!(unpack_stored(text.as_bytes(), "t.c").unwrap(), json);
            assert_eq!(unpack(&text, "t.c").unwrap(), json);
        }
        assert!(matches!(
            unpack_stored(json.as_bytes(), "t.c").unwrap(),
            Cow::Borrowed(j) if j == json
        ));
        assert_eq!(unpack_document(json).unwrap(), json);
    }

    #[test]
    fn damaged_packed_bytes_are_corrupt_naming_their_column() {
        let packed = pack_bytes(Dict::Register, r#"{"a":1}"#);
        let bytes = packed.as_bytes();
        for bad in [
            vec![b'z' | BIN, 1, 2, 3],
            bytes[..bytes.len() - 2].to_vec(),
            vec![0xff, 0xfe],
        ] {
            let e = unpack_stored(&bad, "households.record").unwrap_err();
            assert!(e.to_string().contains("households.record"), "{bad:?}: {e}");
        }
    }

    #[test]
    fn a_damaged_packed_document_is_corrupt_naming_its_column() {
        let packed = pack(Dict::Assessment, r#"{"a":1}"#);
        for bad in [
            "~z AAAA".to_string(),
            "~a***".to_string(),
            packed[..packed.len() - 2].to_string(),
        ] {
            let e = unpack(&bad, "assessments.assessment").unwrap_err();
            assert!(
                e.to_string().contains("assessments.assessment"),
                "{bad}: {e}"
            );
        }
    }
}
