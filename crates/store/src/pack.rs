//! Packed documents: the per-event JSON documents (normalised events, assessments, link evidence)
//! and the register's history of household records, stored deflated
//! against a preset dictionary of their own kind, so that what every such document repeats (keys,
//! rule ids, the sentences a rule writes with only its dates and amounts changing) costs a few
//! bits instead of its bytes. Packed, a document is text still (`~`, the dictionary's id, then
//! base64 of the raw deflate stream), so it goes in the same TEXT column as the JSON it replaces,
//! and a column holds either form: [`unpack`] gives the JSON back, as it was written, byte for
//! byte, and passes plain JSON (every row stored before packing) through as it is.
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

/// No packed document unpacks to more than this (a stored document is a few kilobytes).
const MAX_UNPACKED: usize = 16 << 20;

/// A preset dictionary, by the id stored in front of what it packed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dict {
    /// `assessments.assessment`.
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

/// A normalised event (JSON) as `events.normalised` keeps it: made by whoever makes the event
/// row, on its own thread ([`crate::EventRow::packed`]).
pub fn pack_event(normalised: &str) -> String {
    pack(Dict::Event, normalised)
}

/// A document as a column keeps it, read back: its JSON (for tools and tests that read the
/// tables past the store).
pub fn unpack_document(text: &str) -> Result<String, StoreError> {
    unpack(text, "a stored document").map(Cow::into_owned)
}

/// `text` packed with `dict`. Deflating a string in memory cannot fail; were it to, the text is
/// kept as it is (still readable).
pub(crate) fn pack(dict: Dict, text: &str) -> String {
    STREAMS
        .with(|s| {
            let (window, level) = dict.window_and_level();
            let mut s = s.borrow_mut();
            let c = s.deflate[dict.slot()].get_or_insert_with(|| {
                Compress::new_with_window_bits(Compression::new(level), false, window)
            });
            deflate(c, dict.bytes(), text.as_bytes())
        })
        .map(|bytes| {
            let mut out = String::with_capacity(2 + bytes.len() * 4 / 3 + 4);
            out.push(MARK);
            out.push(dict.id());
            STANDARD_NO_PAD.encode_string(&bytes, &mut out);
            out
        })
        .unwrap_or_else(|| text.to_string())
}

fn deflate(c: &mut Compress, dict: &[u8], input: &[u8]) -> Option<Vec<u8>> {
    c.reset();
    c.set_dictionary(dict).ok()?;
    let mut out = Vec::with_capacity(input.len() / 2 + 64);
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
    let corrupt = |message: String| StoreError::Corrupt {
        context: column,
        message,
    };
    let mut chars = rest.chars();
    let id = chars.next();
    let dict = Dict::ALL
        .into_iter()
        .find(|d| Some(d.id()) == id)
        .ok_or_else(|| corrupt(format!("unknown packing {id:?}")))?;
    let bytes = STANDARD_NO_PAD
        .decode(chars.as_str())
        .map_err(|e| corrupt(format!("packed document: {e}")))?;
    let out = STREAMS
        .with(|s| {
            let mut s = s.borrow_mut();
            let d = s.inflate[dict.slot()].get_or_insert_with(|| {
                Decompress::new_with_window_bits(false, dict.window_and_level().0)
            });
            inflate(d, dict.bytes(), &bytes)
        })
        .map_err(corrupt)?;
    String::from_utf8(out)
        .map(Cow::Owned)
        .map_err(|e| corrupt(format!("packed document: {e}")))
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
