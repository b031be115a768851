//! Domain types of doudi: region codes, identity numbers (GB 11643-1999), exact money, households and
//! members of the low-income register, the feed events with their validating parser, and the outcome
//! of a risk assessment as data (level, contributions, relief suggestion; scored by `doudi-risk`),
//! a link decision as data (outcome and evidence; made by `doudi-linkage`) and a warning's
//! lifecycle vocabulary (status, disposition; moved by `doudi-warnings`).
//!
//! This crate is pure: it never does I/O, never logs, and never panics on input. Everything that
//! reads outside data returns a typed error that says what was wrong and where.
//! Personal data (ID numbers, names) is shown masked by `Display`/`Debug` wherever this crate can.

/// `Display` as the value's stable code (`f.write_str`, or `f.pad` where the caller's width and
/// alignment apply).
macro_rules! display_by_code {
    ($ty:ident) => {
        display_by_code!($ty, write_str);
    };
    ($ty:ident, $write:ident) => {
        impl std::fmt::Display for $ty {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.$write(self.code())
            }
        }
    };
}

/// Serde for a value written as its text: serialised as `$text`, read back through its `parse`
/// (refusing what `parse` refuses).
macro_rules! serde_as_text {
    ($ty:ident, $text:path) => {
        impl serde::Serialize for $ty {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str($text(self))
            }
        }

        impl<'de> serde::Deserialize<'de> for $ty {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = <String as serde::Deserialize>::deserialize(d)?;
                $ty::parse(&s).map_err(serde::de::Error::custom)
            }
        }
    };
}

pub mod assessment;
pub mod event;
pub mod household;
pub mod id_number;
pub mod link;
pub mod money;
pub mod region;
pub mod sex;
pub mod warning;

pub use assessment::{
    Assessment, Contribution, Lapsed, Level, LevelBasis, ReliefSuggestion, RiskState, RiskStatus,
    Urgency,
};
pub use event::{
    parse_event, Event, EventError, Fact, ParseLimits, Payload, Source, Subject, ALL_KINDS,
    ALL_SOURCES,
};
pub use household::{Area, Category, Household, Member, RegisterError, Relation, WorkCapacity};
pub use id_number::{mask_id_str, mask_name, IdNumber, IdNumberError};
pub use link::{CandidateEvidence, Comparison, Evidence, IdEvidence, LinkOutcome};
pub use money::{Money, MoneyError};
pub use region::{RegionCode, RegionError, RegionLevel};
pub use sex::Sex;
pub use warning::{Disposition, WarningStatus};
