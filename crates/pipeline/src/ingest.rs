//! Ingest: raw record → validated event, or the reason it is refused.

use std::sync::Arc;

use doudi_model::{parse_event, Event, EventError, Evidence, ParseLimits};
use doudi_store::Json;

use crate::driver::RawRecord;

/// A record after ingest.
#[derive(Debug)]
pub struct Ingested {
    pub record: RawRecord,
    pub result: Result<Event, EventError>,
    /// The event's canonical JSON (empty when refused), made here on the reader thread so that the
    /// applier, which waits on the database, does less.
    pub normalised: String,
    /// `normalised` packed as the store keeps it (made here too; empty when refused).
    pub packed: doudi_store::Packed,
    /// The identity decision and its evidence encoded for the store, when made ahead on the
    /// reader thread (the applier links whatever has none).
    pub link: Option<(doudi_linkage::LinkDecision, Json<Evidence>)>,
    /// The register version `link` was decided with (the applier links again when its register
    /// moved on meanwhile).
    pub register_version: i64,
    /// The feed profile that made the event from a department's export (`name@version`), kept
    /// with the event; `None` for a JSON envelope.
    pub profile: Option<Arc<str>>,
}

impl Ingested {
    /// A record as read (a line or a row, through `profile` if any): not linked yet.
    fn read(
        record: RawRecord,
        result: Result<Event, EventError>,
        profile: Option<Arc<str>>,
    ) -> Ingested {
        let normalised = result.as_ref().map(Event::to_json).unwrap_or_default();
        let packed = if result.is_ok() {
            doudi_store::pack_event(&normalised)
        } else {
            doudi_store::Packed::default()
        };
        Ingested {
            record,
            result,
            normalised,
            packed,
            link: None,
            register_version: 0,
            profile,
        }
    }

    /// Link the event ahead of the applier (pure: the linker is read-only).
    pub fn link_with(&mut self, linker: &doudi_linkage::Linker) {
        if let Ok(event) = &self.result {
            self.link = Some(link_event(linker, event));
            self.register_version = linker.register_version();
        }
    }
}

/// Link one event: the decision and its evidence encoded for the store.
pub(crate) fn link_event(
    linker: &doudi_linkage::Linker,
    event: &Event,
) -> (doudi_linkage::LinkDecision, Json<Evidence>) {
    let decision = linker.link(&event.subject);
    let evidence = Json::encode(&decision.evidence);
    (decision, evidence)
}

/// Parse and validate one record. An event whose `source` is not the feed it arrived on is refused.
pub fn ingest_record(record: RawRecord, limits: &ParseLimits) -> Ingested {
    let result = if record.truncated() {
        Err(EventError::TooLarge {
            len: record.full_len as usize,
            limit: limits.max_event_bytes,
        })
    } else {
        parse_event(&record.bytes, limits).and_then(|e| {
            if e.source != record.source {
                Err(EventError::SourceMismatch {
                    expected: record.source.code().to_string(),
                    found: e.source.code().to_string(),
                })
            } else {
                Ok(e)
            }
        })
    };
    Ingested::read(record, result, None)
}

/// A row of a department's export as its feed profile read it: the event, or why there is none
/// (the profile, row, column and reason; never the cell's value).
pub fn ingest_row(
    record: RawRecord,
    result: Result<Event, doudi_feeds::RowError>,
    profile: &Arc<str>,
) -> Ingested {
    let result = result.map_err(|e| EventError::RowRefused(format!("profile {profile}: {e}")));
    Ingested::read(record, result, Some(Arc::clone(profile)))
}

/// A department's raw row as a record carries it (a JSON object of column → cell, as a Kafka
/// topic of raw rows does), read through `profile`. A row the profile passes over (a totals line,
/// a filter) is kept as refused, saying which rule, rather than dropped: replay with the profile
/// marks it done.
pub fn ingest_raw_row(
    record: RawRecord,
    profile: &doudi_feeds::Profile,
    provenance: &Arc<str>,
) -> Ingested {
    let row = record.line();
    let result = if record.truncated() {
        Err(doudi_feeds::RowError::new(
            row,
            format!(
                "the row is {} bytes, over the limit (limits.max_event_bytes)",
                record.full_len
            ),
        ))
    } else {
        match profile.map_raw(row, &record.bytes) {
            doudi_feeds::Mapped::Event(e) => Ok(*e),
            doudi_feeds::Mapped::Refused(e) => Err(e),
            doudi_feeds::Mapped::Skipped(reason) => Err(doudi_feeds::RowError::new(
                row,
                format!("passed over by the profile's rule ({reason}); kept, not applied"),
            )),
        }
    };
    ingest_row(record, result, provenance)
}

/// Best effort: the `event_id` of a refused record, for finding it again (never trusted).
pub(crate) fn sniff_event_id(bytes: &[u8]) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct Id {
        event_id: String,
    }
    serde_json::from_slice::<Id>(bytes)
        .ok()
        .map(|i| i.event_id)
        .filter(|s| !s.is_empty() && s.len() <= 128)
}
