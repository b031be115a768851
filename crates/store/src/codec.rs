//! One encode/decode, for both backends, of what the store keeps as text: codes (levels, warning
//! statuses, link outcomes), times (RFC 3339, see [`crate::time`]) and JSON documents (assessments,
//! evidence, dispositions; assessments and evidence packed in their per-event columns, read in
//! either form, see [`crate::pack`]). A stored value that does not decode is [`StoreError::Corrupt`] naming
//! its table and column — never a default.

use std::marker::PhantomData;

use chrono::{DateTime, Utc};
use doudi_model::{Assessment, Disposition, Evidence, Level, LinkOutcome, WarningStatus};
use serde::de::DeserializeOwned;
use serde::{Serialize, Serializer};

use crate::db::Col;
use crate::error::StoreError;
use crate::pack::{pack_bytes, unpack_stored, Packed, Stored};
use crate::time::ts;

/// A value the store keeps as its code (`red`, `open`, `linked`).
pub trait Code: Copy + Sized {
    fn code(self) -> &'static str;
    fn from_code(text: &str) -> Option<Self>;
}

impl Code for Level {
    fn code(self) -> &'static str {
        Level::code(self)
    }
    fn from_code(text: &str) -> Option<Self> {
        Level::from_code(text)
    }
}

impl Code for WarningStatus {
    fn code(self) -> &'static str {
        WarningStatus::code(self)
    }
    fn from_code(text: &str) -> Option<Self> {
        WarningStatus::from_code(text)
    }
}

impl Code for LinkOutcome {
    fn code(self) -> &'static str {
        LinkOutcome::code(self)
    }
    fn from_code(text: &str) -> Option<Self> {
        LinkOutcome::from_code(text)
    }
}

/// Documents the store keeps as JSON. Their serde form is derived from plain data (strings,
/// numbers, lists, options): encoding them cannot fail.
pub trait Document: Serialize + DeserializeOwned + private::Sealed {}
impl Document for Assessment {}
impl Document for Evidence {}
impl Document for Disposition {}

mod private {
    use crate::pack::Dict;

    /// The dictionary a document is packed with in its per-event column (see [`crate::pack`]).
    pub trait Sealed {
        const PACK: Option<Dict>;
    }
    impl Sealed for doudi_model::Assessment {
        const PACK: Option<Dict> = Some(Dict::Assessment);
    }
    impl Sealed for doudi_model::Evidence {
        const PACK: Option<Dict> = Some(Dict::Evidence);
    }
    impl Sealed for doudi_model::Disposition {
        const PACK: Option<Dict> = None;
    }
}

/// A document encoded for the store, typed by what it holds: made where the value is made (the
/// pipeline encodes assessments and evidence on its worker threads), written as it is. Its JSON
/// ([`Json::as_str`]) and, for the documents stored once per event (assessments, evidence), its
/// packed form ([`Json::stored`], see [`crate::pack`]) that their own columns keep.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Json<T> {
    text: String,
    packed: Option<Packed>,
    of: PhantomData<fn() -> T>,
}

impl<T: Document> Json<T> {
    pub fn encode(value: &T) -> Json<T> {
        // Plain derived data never fails to encode; were it to, `null` is stored and reading it
        // back is `Corrupt` naming the column, never a silent default.
        let text = serde_json::to_string(value).unwrap_or_else(|_| "null".to_string());
        let packed = T::PACK.map(|dict| pack_bytes(dict, &text));
        Json {
            text,
            packed,
            of: PhantomData,
        }
    }

    /// The value again.
    pub fn decode(&self, column: &'static str) -> Result<T, StoreError> {
        decode_json(&self.text, column)
    }
}

impl<T> Json<T> {
    /// The JSON.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// What the document's per-event column keeps (see [`crate::pack`]): packed (bytes on
    /// SQLite, text on PostgreSQL); `None` for a document that is not packed (its JSON is kept).
    pub fn packed(&self) -> Option<&Packed> {
        self.packed.as_ref()
    }
}

pub(crate) fn decode_code<T: Code>(text: &str, column: &'static str) -> Result<T, StoreError> {
    T::from_code(text).ok_or_else(|| StoreError::Corrupt {
        context: column,
        message: format!("unknown value {text:?}"),
    })
}

pub(crate) fn decode_time(text: &str, column: &'static str) -> Result<DateTime<Utc>, StoreError> {
    DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| StoreError::Corrupt {
            context: column,
            message: format!("{text:?} is not an RFC 3339 time: {e}"),
        })
}

pub(crate) fn decode_json<T: DeserializeOwned>(
    text: &str,
    column: &'static str,
) -> Result<T, StoreError> {
    decode_stored(text.as_bytes(), column)
}

/// A stored document (any of its forms, see [`crate::pack::unpack_stored`]) decoded.
pub(crate) fn decode_stored<T: DeserializeOwned>(
    stored: &[u8],
    column: &'static str,
) -> Result<T, StoreError> {
    serde_json::from_str(&unpack_stored(stored, column)?).map_err(|e| StoreError::Corrupt {
        context: column,
        message: e.to_string(),
    })
}

/// A stored value that could not be read, where the reader goes on without it (a notice is
/// delivered even when its warning's assessment is unreadable): which column, and why.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, thiserror::Error)]
#[error("stored data is corrupt ({column}): {message}")]
pub struct Unreadable {
    pub column: &'static str,
    pub message: String,
}

impl From<StoreError> for Unreadable {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Corrupt { context, message } => Unreadable {
                column: context,
                message,
            },
            other => Unreadable {
                column: "",
                message: other.to_string(),
            },
        }
    }
}

/// Typed reads of a row's columns (`column` names the table and column for errors).
pub(crate) trait Typed: Col {
    fn code<T: Code>(&self, i: usize, column: &'static str) -> Result<T, StoreError> {
        decode_code(&self.col::<String>(i), column)
    }

    fn time(&self, i: usize, column: &'static str) -> Result<DateTime<Utc>, StoreError> {
        decode_time(&self.col::<String>(i), column)
    }

    fn maybe_time(
        &self,
        i: usize,
        column: &'static str,
    ) -> Result<Option<DateTime<Utc>>, StoreError> {
        self.col::<Option<String>>(i)
            .map(|t| decode_time(&t, column))
            .transpose()
    }

    /// A stored document's JSON (see [`crate::pack`]), in any of its forms.
    fn unpacked(&self, i: usize, column: &'static str) -> Result<String, StoreError> {
        let Stored(bytes) = self.col::<Stored>(i);
        match unpack_stored(&bytes, column)? {
            std::borrow::Cow::Borrowed(_) => {
                String::from_utf8(bytes).map_err(|e| StoreError::Corrupt {
                    context: column,
                    message: e.to_string(),
                })
            }
            std::borrow::Cow::Owned(t) => Ok(t),
        }
    }

    fn json<T: DeserializeOwned>(&self, i: usize, column: &'static str) -> Result<T, StoreError> {
        decode_stored(&self.col::<Stored>(i).0, column)
    }

    fn maybe_json<T: DeserializeOwned>(
        &self,
        i: usize,
        column: &'static str,
    ) -> Result<Option<T>, StoreError> {
        self.col::<Option<Stored>>(i)
            .map(|t| decode_stored(&t.0, column))
            .transpose()
    }
}

impl<R: Col> Typed for R {}

/// Serialise a time as the store keeps it (`2026-03-01T00:00:00.000000Z`), so that what a door
/// prints is what was stored.
pub(crate) fn ser_time<S: Serializer>(t: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&ts(t))
}

/// [`ser_time`] for an optional time.
pub(crate) fn ser_maybe_time<S: Serializer>(
    t: &Option<DateTime<Utc>>,
    s: S,
) -> Result<S::Ok, S::Error> {
    match t {
        Some(t) => s.serialize_str(&ts(t)),
        None => s.serialize_none(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unknown_stored_code_is_corrupt_naming_its_column() {
        let e = decode_code::<Level>("purple", "warnings.level").unwrap_err();
        assert_eq!(
            e.to_string(),
            "stored data is corrupt (warnings.level): unknown value \"purple\""
        );
        assert_eq!(
            decode_code::<WarningStatus>("visited", "warnings.status").unwrap(),
            WarningStatus::Visited
        );
    }

    #[test]
    fn times_decode_from_any_offset_and_print_as_stored() {
        let t = decode_time("2026-03-01T08:00:00+08:00", "events.occurred_at").unwrap();
        assert_eq!(ts(&t), "2026-03-01T00:00:00.000000Z");
        assert!(decode_time("yesterday", "warnings.deadline")
            .unwrap_err()
            .to_string()
            .contains("warnings.deadline"));
    }

    #[test]
    fn a_document_round_trips_and_a_bad_one_is_corrupt() {
        let d = Disposition::RiskCleared;
        let j = Json::encode(&d);
        assert_eq!(j.as_str(), r#"{"disposition":"risk_cleared"}"#);
        assert_eq!(j.decode("warnings.disposition").unwrap(), d);
        assert!(matches!(
            decode_json::<Disposition>("{}", "warnings.disposition"),
            Err(StoreError::Corrupt {
                context: "warnings.disposition",
                ..
            })
        ));
    }
}
