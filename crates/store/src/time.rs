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

/// Whether `text` is a time exactly as [`ts`] writes it (so text order is time order): RFC 3339,
/// UTC, a four-digit year (0001 to 9999), six decimals.
pub fn is_canonical(text: &str) -> bool {
    DateTime::parse_from_rfc3339(text).is_ok_and(|t| ts(&t) == text)
}

/// Now, as the store writes it.
pub(crate) fn now() -> String {
    ts(&Utc::now())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_times_as_the_store_writes_them_are_canonical() {
        assert!(is_canonical("2026-03-01T00:00:00.000000Z"));
        assert!(is_canonical("0001-01-01T00:00:00.000000Z"));
        for bad in [
            "2026-03-01T00:00:00Z",
            "2026-03-01T08:00:00.000000+08:00",
            "+230185-11-06T01:36:59.000000Z",
            "-0001-12-31T10:00:00.000000Z",
            "soon",
        ] {
            assert!(!is_canonical(bad), "{bad}");
        }
    }
}
