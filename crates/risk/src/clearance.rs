//! 风险消除 (risk cleared) over a household's timeline.
//!
//! A risk signal (a death, a diagnosis, a job loss, a severe-disability certificate, a dangerous-house
//! appraisal, a disaster, a forced relocation, a catastrophic bill or a heavy medical year) and
//! every stretch of time with per-capita income after deductions below the line make the household
//! *unstable*. Signals keep counting until the household has been stable for
//! `review.risk_clear_stable_months` months on end: then the risk is cleared and those signals no
//! longer count. A household nobody in which can work is never cleared (DOMAIN.md): once stable
//! that long it stays watched (`review.watch_points`).
//!
//! A dangerous house (危房 C/D) or a home made uninhabitable by a disaster stays a risk until the
//! household has moved (a relocation record on or after it).
//!
//! The line is the local 低保 standard, or the household's own per-capita income at registration
//! (after deductions) when that was lower: a 低保 household is not required to leave 低保 for a
//! new risk to be cleared, only to be back where it was.
//!
//! Simplification, written down: whether someone is able to work is judged at the date of the
//! assessment, also for episodes that ended earlier.

use chrono::{Months, NaiveDate};
use doudi_model::Money;
use serde::Serialize;

use crate::evidence::Evidence;
use crate::policy::{Deductions, General, ReviewParams, Standard};
use crate::state::HouseholdState;

/// Where the household stands on clearing its risk at the date of the assessment.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ClearanceStatus {
    /// No risk signal and income never below the line.
    NoRisk,
    /// A risk episode is open: its signals count.
    Open,
    /// The last episode was cleared (`cleared_on`).
    Cleared,
    /// Stable long enough, but nobody in the household can work: never cleared, stays watched
    /// (its last episode's signals still count, and the score is set to `review.watch_points`).
    Watched,
}

/// The household's risk-clearing position.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Clearance {
    pub status: ClearanceStatus,
    /// The per-capita line (after deductions) income must stay at or above.
    pub line: Money,
    /// Signals on or before this day belong to a cleared (or watched) episode and do not count.
    pub resolved_through: Option<NaiveDate>,
    /// First day of the open episode.
    pub episode_start: Option<NaiveDate>,
    /// Since when there has been no signal and income has stayed at or above the line
    /// (`None` while income is below it, or when there never was a risk).
    pub stable_since: Option<NaiveDate>,
    /// The day the risk was (status cleared) or will be (status open, if nothing happens) cleared.
    pub cleared_on: Option<NaiveDate>,
    /// Someone living is able to work.
    pub anyone_able: bool,
    /// The latest episode that no longer counts: the one cleared (status cleared), or the one
    /// before the open or watched one.
    pub previous: Option<Episode>,
    /// Signals after this day do not count either (`None`: no bound). Set only to look back at
    /// a previous episode ([`Clearance::within`]).
    pub until: Option<NaiveDate>,
}

/// A risk episode: signals and stretches of income below the line closer than the stable
/// period to one another.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Episode {
    pub start: NaiveDate,
    /// The last signal, or the end of the last stretch below the line or in an unsafe home.
    pub end: NaiveDate,
    /// The day income came back at or above the line, when it had fallen below it in the
    /// episode (evidence of recovery); `None` when it never fell.
    pub income_back_on: Option<NaiveDate>,
}

impl Clearance {
    /// Whether a signal that happened `on` still counts.
    pub fn counts(&self, on: NaiveDate) -> bool {
        self.resolved_through.is_none_or(|r| on > r) && self.until.is_none_or(|u| on <= u)
    }

    /// The same position, counting only the signals of `episode` (to say what counted then).
    pub fn within(&self, episode: Episode) -> Clearance {
        Clearance {
            resolved_through: episode.start.pred_opt(),
            until: Some(episode.end),
            ..*self
        }
    }
}

fn add_months(d: NaiveDate, n: u32) -> NaiveDate {
    d.checked_add_months(Months::new(n))
        .unwrap_or(NaiveDate::MAX)
}

/// The risk signals of a household's timeline up to the day of the assessment, as stretches of
/// days: a signal is a one-day stretch, a dangerous home lasts until the household moves. Each
/// rule adds its own (`Rule::signals`); stretches of income below the line are added here.
#[derive(Clone, Debug)]
pub struct Signals {
    as_of: NaiveDate,
    spans: Vec<(NaiveDate, NaiveDate)>,
}

impl Signals {
    pub fn new(as_of: NaiveDate) -> Self {
        Signals {
            as_of,
            spans: Vec::new(),
        }
    }

    /// A signal on day `on` (ignored when it is after the day of the assessment).
    pub fn day(&mut self, on: NaiveDate) {
        self.span(on, on);
    }

    /// Each of `records` on its day.
    pub fn days<'r, T: Evidence + 'r>(&mut self, records: impl IntoIterator<Item = &'r T>) {
        for r in records {
            self.day(r.on());
        }
    }

    /// A risk that lasted from `from` to `to` (ignored when it began after the day of the
    /// assessment).
    pub fn span(&mut self, from: NaiveDate, to: NaiveDate) {
        if from <= self.as_of {
            self.spans.push((from, to));
        }
    }
}

/// The parts of the rule set that clearing reads.
#[derive(Clone, Copy)]
pub struct ClearingRules<'s> {
    pub general: &'s General,
    pub deductions: &'s Deductions,
    pub review: &'s ReviewParams,
}

/// The clearing position of `state` from the rules' `signals`, with the household's standard and
/// pupils.
pub(crate) fn compute(
    rules: ClearingRules,
    state: &HouseholdState,
    standard: &Standard,
    pupils: i64,
    signals: Signals,
) -> Clearance {
    let as_of = state.as_of_date();
    let months = u32::try_from(rules.review.risk_clear_stable_months).unwrap_or(6);
    let d = rules.deductions;
    let baseline = d.per_capita_for_risk(state.parts_at_registration(), pupils);
    let line = standard.dibao_monthly.min(baseline);
    let anyone_able = state.alive_members().any(|m| rules.general.able(m));
    let spans = signals.spans;
    let mut income: Vec<(NaiveDate, NaiveDate)> = Vec::new();
    let now_pc = d.per_capita_for_risk(state.parts_now(), pupils);
    let below_now = now_pc < line && state.size_now() > 0;
    let hist = &state.income_history;
    for (i, p) in hist.iter().enumerate() {
        if p.on > as_of || d.per_capita_for_risk(p.parts(), pupils) >= line {
            continue;
        }
        let end = match hist.get(i + 1) {
            Some(next) => next.on.min(as_of),
            None if below_now => as_of,
            // Above the line now with no later fact: bills have left the 12-month window.
            None => add_months(p.on, 12).min(as_of),
        };
        income.push((p.on, end.max(p.on)));
    }
    // (first day, last day, a stretch of income below the line)
    let mut spans: Vec<(NaiveDate, NaiveDate, bool)> = spans
        .into_iter()
        .map(|(s, e)| (s, e, false))
        .chain(income.into_iter().map(|(s, e)| (s, e, true)))
        .collect();
    if spans.is_empty() {
        return Clearance {
            status: if below_now {
                ClearanceStatus::Open
            } else {
                ClearanceStatus::NoRisk
            },
            line,
            resolved_through: None,
            episode_start: below_now.then_some(as_of),
            stable_since: None,
            cleared_on: None,
            anyone_able,
            previous: None,
            until: None,
        };
    }
    spans.sort_unstable();

    // Episodes: stretches closer than `months` apart belong together.
    let mut previous: Option<Episode> = None;
    let (s0, e0, i0) = spans[0];
    let mut episode = Episode {
        start: s0,
        end: e0,
        income_back_on: i0.then_some(e0),
    };
    for &(s, e, is_income) in &spans[1..] {
        if s >= add_months(episode.end, months) {
            previous = Some(episode);
            episode = Episode {
                start: s,
                end: e,
                income_back_on: None,
            };
        }
        episode.end = episode.end.max(e);
        if is_income {
            episode.income_back_on = episode.income_back_on.max(Some(e));
        }
    }
    let resolved_through = previous.map(|p| p.end);
    let (start, end) = (episode.start, episode.end);
    let clear_day = add_months(end, months);
    if !below_now && as_of >= clear_day {
        if anyone_able {
            return Clearance {
                status: ClearanceStatus::Cleared,
                line,
                resolved_through: Some(end),
                episode_start: None,
                stable_since: Some(end),
                cleared_on: Some(clear_day),
                anyone_able,
                previous: Some(episode),
                until: None,
            };
        }
        // Never cleared: the last episode's signals still explain why it is watched.
        return Clearance {
            status: ClearanceStatus::Watched,
            line,
            resolved_through,
            episode_start: Some(start),
            stable_since: Some(end),
            cleared_on: None,
            anyone_able,
            previous,
            until: None,
        };
    }
    Clearance {
        status: ClearanceStatus::Open,
        line,
        resolved_through,
        episode_start: Some(start),
        stable_since: (!below_now).then_some(end),
        cleared_on: (!below_now && anyone_able).then_some(clear_day),
        anyone_able,
        previous,
        until: None,
    }
}
