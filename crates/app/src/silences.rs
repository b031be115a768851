//! Setting a silence: notices (new warnings', escalations, reminders) held back for a household
//! or a region, for a stated reason and time. Only a supervisor whose region contains the
//! silenced one may set it; a refused attempt is audited.
//!
//! Bounds on what a client sends: a silence lasts at most a year ([`MAX_HOURS`] hours, and no
//! later than the same instant a calendar year after its start); its times lie in the years 0001
//! to 9999 once in UTC, so that the store's text (RFC 3339, four-digit year, UTC) orders as the
//! times do.

use chrono::{DateTime, Datelike, FixedOffset, Months, TimeDelta, Utc};
use doudi_model::RegionCode;
use doudi_store::{ts, Store};
use doudi_warnings::routing::Role as OfficerRole;
use serde::Serialize;

use crate::error::AppError;
use crate::who::Who;

/// What a silence covers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Scope {
    /// A household of the register.
    Household(String),
    /// A region code (county, township or village): every household inside it.
    Region(String),
}

/// A silence to set.
#[derive(Clone, Debug)]
pub struct NewSilence {
    pub scope: Scope,
    pub reason: String,
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
}

/// A silence set.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Silenced {
    pub silence_id: i64,
    pub scope: &'static str,
    pub target: String,
    pub starts_at: String,
    pub ends_at: String,
    pub created_by: String,
}

/// The longest silence in hours (a leap year); a silence also ends at most a calendar year after
/// it starts.
pub const MAX_HOURS: u32 = 366 * 24;

/// A time a client sent (`what`: which field), in UTC; refused unless its year is 0001 to 9999
/// once in UTC (the store writes four-digit years only).
pub fn client_time(t: &DateTime<FixedOffset>, what: &str) -> Result<DateTime<Utc>, AppError> {
    let utc = t.with_timezone(&Utc);
    if !(1..=9999).contains(&utc.year()) {
        return Err(AppError::BadRequest(format!(
            "{what} {} is outside the years 0001 to 9999 once in UTC",
            t.to_rfc3339()
        )));
    }
    Ok(utc)
}

/// The end of a silence of `hours` from `start`: at most [`MAX_HOURS`] (checked: never
/// overflows).
pub fn end_after_hours(start: DateTime<Utc>, hours: u32) -> Result<DateTime<Utc>, AppError> {
    let too_long = || {
        AppError::BadRequest(format!(
            "hours must be 1 to {MAX_HOURS} (a silence lasts at most a year; got {hours})"
        ))
    };
    if hours == 0 || hours > MAX_HOURS {
        return Err(too_long());
    }
    TimeDelta::try_hours(i64::from(hours))
        .and_then(|d| start.checked_add_signed(d))
        .ok_or_else(too_long)
}

/// Refuse a silence whose times are outside the years 0001 to 9999, that ends before it starts,
/// or that lasts more than a year.
pub fn check_times(start: &DateTime<Utc>, end: &DateTime<Utc>) -> Result<(), AppError> {
    for (t, what) in [(start, "the start"), (end, "the end")] {
        if !(1..=9999).contains(&t.year()) {
            return Err(AppError::BadRequest(format!(
                "{what} of the silence ({t}) is outside the years 0001 to 9999"
            )));
        }
    }
    if end <= start {
        return Err(AppError::BadRequest(format!(
            "the silence ends ({end}) before it starts ({start})"
        )));
    }
    let year_later = start.checked_add_months(Months::new(12));
    if year_later.is_none_or(|y| *end > y) {
        return Err(AppError::BadRequest(format!(
            "a silence lasts at most a year: it starts at {start} and may end at {} at the latest (got {end})",
            year_later.map_or_else(|| "9999-12-31T23:59:59Z".to_string(), |y| y.to_rfc3339())
        )));
    }
    Ok(())
}

/// Set silence `s` for supervisor `by` (in `who`'s region).
pub async fn add_silence(
    store: &Store,
    who: &Who,
    by: &str,
    s: &NewSilence,
) -> Result<Silenced, AppError> {
    let (scope, target, region) = match &s.scope {
        Scope::Region(r) => {
            let code = RegionCode::parse(r)
                .map_err(|e| AppError::BadRequest(format!("region: {e}")))?
                .as_str()
                .to_string();
            ("region", code.clone(), code)
        }
        Scope::Household(h) => {
            let Some(region) = store.household_region(h).await? else {
                return Err(AppError::NotFound(format!(
                    "household {h} is not in the register"
                )));
            };
            ("household", h.clone(), region)
        }
    };
    let missing = match &s.scope {
        Scope::Household(h) => format!("household {h} is not in the register"),
        Scope::Region(r) => format!("region {r} is not among this token's regions"),
    };
    who.require_region(&region, &missing)?;
    let directory = crate::engine::directory(store).await?;
    let allowed = directory.get(by).is_some_and(|o| {
        o.role == OfficerRole::Supervisor && region.starts_with(o.region.as_str())
    });
    if !allowed {
        let why = format!(
            "{by:?} may not silence {scope} {target}: only a supervisor whose region contains {region} may"
        );
        store
            .audit(
                by,
                "silence_refused",
                &format!("{scope}:{target}"),
                &serde_json::json!({"refused": why}),
            )
            .await?;
        return Err(AppError::Forbidden(why));
    }
    if s.reason.trim().is_empty() {
        return Err(AppError::BadRequest("a silence needs a reason".into()));
    }
    check_times(&s.start, &s.end)?;
    let (starts_at, ends_at) = (ts(&s.start), ts(&s.end));
    let silence_id = store
        .add_silence(scope, &target, &s.reason, &starts_at, &ends_at, by)
        .await?;
    Ok(Silenced {
        silence_id,
        scope,
        target,
        starts_at,
        ends_at,
        created_by: by.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> DateTime<FixedOffset> {
        DateTime::parse_from_rfc3339(s).unwrap()
    }

    #[test]
    fn hours_are_bounded_and_never_overflow() {
        let start = Utc::now();
        for h in [0, MAX_HOURS + 1, 2_000_000_000, 2_300_000_000, u32::MAX] {
            let e = end_after_hours(start, h).unwrap_err().to_string();
            assert!(
                e.contains("at most a year") && e.contains(&h.to_string()),
                "{e}"
            );
        }
        assert_eq!(
            end_after_hours(start, 48).unwrap(),
            start + TimeDelta::hours(48)
        );
        // Also from the last representable instants: refused, not a panic.
        assert!(end_after_hours(DateTime::<Utc>::MAX_UTC, 1).is_err());
    }

    #[test]
    fn client_times_have_four_digit_years_in_utc() {
        let e = client_time(&t("0000-01-01T00:00:00+14:00"), "from").unwrap_err();
        assert!(e.to_string().contains("0001 to 9999"), "{e}");
        let e = client_time(&t("9999-12-31T23:00:00-08:00"), "until").unwrap_err();
        assert!(e.to_string().contains("until"), "{e}");
        let ok = client_time(&t("0001-01-01T00:00:00Z"), "from").unwrap();
        assert_eq!(doudi_store::ts(&ok), "0001-01-01T00:00:00.000000Z");
    }

    #[test]
    fn a_silence_lasts_at_most_a_year() {
        let start = t("2026-03-01T00:00:00+08:00").with_timezone(&Utc);
        let year = t("2027-03-01T00:00:00+08:00").with_timezone(&Utc);
        assert!(check_times(&start, &year).is_ok());
        let e = check_times(&start, &(year + TimeDelta::seconds(1))).unwrap_err();
        assert!(e.to_string().contains("at most a year"), "{e}");
        assert!(check_times(&start, &start).is_err());
        let late = t("9999-06-01T00:00:00Z").with_timezone(&Utc);
        let e = check_times(&late, &(late + TimeDelta::days(300))).unwrap_err();
        assert!(e.to_string().contains("0001 to 9999"), "{e}");
    }
}
