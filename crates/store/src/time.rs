//! Times as the store keeps them: RFC 3339 text in UTC with a `Z` and six decimals, so that text
//! order is time order on both backends.

use chrono::{DateTime, TimeZone, Utc};

/// A time as the store writes it. Whatever writes a time the store compares (a `--now`, a
/// silence's end) uses this.
pub fn ts<Tz: TimeZone>(t: &DateTime<Tz>) -> String {
    t.with_timezone(&Utc)
        .format("%Y-%m-%dT%H:%M:%S%.6fZ")
        .to_string()
}

/// Now, as the store writes it.
pub(crate) fn now() -> String {
    ts(&Utc::now())
}
