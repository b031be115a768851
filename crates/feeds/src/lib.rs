//! Department exports in, doudi events out: versioned TOML *feed profiles* that describe one
//! department's export (CSV, Excel, JSON lines or fixed-width text; UTF-8, GB18030 or GBK) and how
//! its columns become the fields of [`doudi_model::Event`]s, and the reader that applies them.
//!
//! ```no_run
//! # use std::sync::Arc;
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let profile = Arc::new(doudi_feeds::Profile::load("profiles/yibao-settlement.toml".as_ref())?);
//! for row in doudi_feeds::FeedReader::open(profile, "2026-03.csv".as_ref())? {
//!     let row = row?; // a file error ends the file; rows before it stand
//!     match row.result {
//!         Ok(event) => { /* row.position, event */ }
//!         Err(refused) => { /* a dead letter: row.raw, row.position, refused */ }
//!     }
//! }
//! # Ok(()) }
//! ```
//!
//! Every event a profile makes passes through [`doudi_model::parse_event`], so it is held to the
//! same checks as an envelope event; the profile itself is checked against the event schemas in
//! `schemas/events/` when it is loaded, so a mistake in it is one message with its line.
//!
//! This crate is pure: bytes in, events out. It never writes, never touches a store or network,
//! never logs, and never panics on input. It never puts a cell's value in an error: a refused
//! row says its row number, column, field and why, and keeps the row itself in [`Row::raw`] for a
//! dead letter, which is where personal data belongs.

mod error;
mod map;
mod profile;
mod read;
mod report;
mod schema;
pub mod shipped;
mod text;

pub use error::{FileError, ProfileError, RowError};
pub use map::{hash_id, Mapped};
pub use profile::{Encoding, FileSpec, Format, Other, Profile, Provenance};
pub use read::{FeedReader, Position, Row, Stats};
pub use report::{mask_event, CheckReport, FileReport, Refusal};
pub use text::{Transform, Unit};
