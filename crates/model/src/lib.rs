//! Domain types of doudi: region codes, identity numbers (GB 11643-1999), exact money, households and
//! members of the low-income register, the feed events with their validating parser, and the outcome
//! of a risk assessment as data (level, contributions, relief suggestion; scored by `doudi-risk`).
//!
//! This crate is pure: it never does I/O, never logs, and never panics on input. Everything that
//! reads outside data returns a typed error that says what was wrong and where.
//! Personal data (ID numbers, names) is shown masked by `Display`/`Debug` wherever this crate can.

pub mod assessment;
pub mod event;
pub mod household;
pub mod id_number;
pub mod money;
pub mod region;
pub mod sex;

pub use assessment::{Assessment, Contribution, Level, ReliefSuggestion};
pub use event::{
    parse_event, Event, EventError, Fact, ParseLimits, Payload, Source, Subject, ALL_KINDS,
    ALL_SOURCES,
};
pub use household::{Area, Category, Household, Member, RegisterError, Relation, WorkCapacity};
pub use id_number::{mask_id_str, mask_name, IdNumber, IdNumberError};
pub use money::{Money, MoneyError};
pub use region::{RegionCode, RegionError, RegionLevel};
pub use sex::Sex;
