//! A household's warning episode as a fold over its assessments in canonical order (issue 19).
//!
//! The pipeline stores one assessment per fact. The facts of a household are ordered by their
//! canonical key `(occurred_at, source, event_id)`: the order in which things happened, not the
//! order their records arrived in. [`fold`] takes the assessments of the current episode (the
//! facts after the last cut a person made by resolving a warning, see the README) and says what the
//! household's warning is:
//!
//! - no assessment above level none: no warning ([`None`]);
//! - otherwise the episode opened at the first assessment above none (its fact is the opening
//!   fact) and was raised at each later assessment above every level before it; the level is the
//!   highest reached (never lowered by a later fact);
//! - the score and the triggering fact are those of the latest assessment;
//! - the event time of the hardship ([`Episode::occurred_at`]) is that of the fact that set the
//!   current level; the deadline follows the [`DeadlinePolicy`] (never later than a deadline an
//!   earlier transition of the episode set).
//!
//! The result depends on the set of assessments alone: the input is sorted here, so any order of
//! the same assessments gives the same episode. No wall clock enters: deadlines come from the
//! facts' event and receipt times.

use chrono::{DateTime, FixedOffset, SubsecRound, TimeDelta, Utc};
use doudi_risk::Level;
use serde::{Deserialize, Serialize};

/// One assessment of the episode, with what the fold needs of its fact.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Step {
    /// The fact's event `seq` in the store (a tie-breaker only: the key decides the order).
    pub seq: i64,
    /// When the fact happened.
    pub occurred_at: DateTime<FixedOffset>,
    /// The fact's source code.
    pub source: String,
    pub event_id: String,
    /// When the store received the fact's record.
    pub received_at: DateTime<Utc>,
    pub level: Level,
    pub score: i64,
}

impl Step {
    /// The canonical key: event time, source, event id (then `seq`, for equal keys).
    fn key(&self) -> (DateTime<FixedOffset>, &str, &str, i64) {
        (self.occurred_at, &self.source, &self.event_id, self.seq)
    }
}

/// One level change of an episode: opened (the first) or raised (the others), by which fact.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Transition {
    pub level: Level,
    pub source: String,
    pub event_id: String,
    /// The fact's event time.
    pub occurred_at: DateTime<Utc>,
    /// Received more than `late_after_hours` after it happened (a catch-up case).
    pub late: bool,
    /// The deadline this transition set (by the [`DeadlinePolicy`]).
    pub deadline: DateTime<Utc>,
}

impl Transition {
    /// What identifies the transition across re-derivations: its level and its fact.
    pub fn same_as(&self, other: &Transition) -> bool {
        self.level == other.level && self.source == other.source && self.event_id == other.event_id
    }
}

/// A household's warning episode, as its assessments in canonical order say it is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Episode {
    /// The highest level reached.
    pub level: Level,
    /// The latest assessment's score.
    pub score: i64,
    /// The latest assessment's fact.
    pub source: String,
    pub event_id: String,
    /// The opening transition first, then each raise.
    pub transitions: Vec<Transition>,
    /// The event time of the fact that set the current level.
    pub occurred_at: DateTime<Utc>,
    /// Whether the fact that set the current level came late (a catch-up case).
    pub late: bool,
    /// The earliest deadline of the episode's transitions.
    pub deadline: DateTime<Utc>,
}

/// Hours per warning level (yellow, orange, red).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LevelHours {
    pub red: i64,
    pub orange: i64,
    pub yellow: i64,
}

impl LevelHours {
    /// The hours for `level` (`None` for level none).
    pub fn get(&self, level: Level) -> Option<i64> {
        match level {
            Level::None => None,
            Level::Yellow => Some(self.yellow),
            Level::Orange => Some(self.orange),
            Level::Red => Some(self.red),
        }
    }
}

/// How a warning's deadline follows from its fact's event and receipt times (the `[warnings]`
/// section of the configuration).
///
/// - A fact received within `late_after_hours` of its event: deadline = event time + the level's
///   act-within hours (from the rule set), but never earlier than receipt + `floor_hours` (an
///   officer always has at least that long).
/// - A fact received later than that is a catch-up case (`late`): deadline = receipt + the level's
///   `catch_up_hours`, so that a backfill of a year of feeds does not make every red due in the
///   same 24 hours.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DeadlinePolicy {
    pub floor_hours: i64,
    pub late_after_hours: i64,
    pub catch_up_hours: LevelHours,
}

impl Default for DeadlinePolicy {
    fn default() -> Self {
        DeadlinePolicy {
            floor_hours: 4,
            late_after_hours: 72,
            catch_up_hours: LevelHours {
                red: 72,
                orange: 168,
                yellow: 360,
            },
        }
    }
}

/// `t + hours`, saturating at the ends of representable time.
fn plus_hours(t: DateTime<Utc>, hours: i64) -> DateTime<Utc> {
    TimeDelta::try_hours(hours)
        .and_then(|d| t.checked_add_signed(d))
        .unwrap_or(if hours < 0 {
            DateTime::<Utc>::MIN_UTC
        } else {
            DateTime::<Utc>::MAX_UTC
        })
}

/// At most ten years, in hours (a setting beyond it is a typo).
const MAX_HOURS: i64 = 10 * 366 * 24;

impl DeadlinePolicy {
    /// Refuse settings that make no sense, saying which and what is allowed.
    pub fn validate(&self) -> Result<(), String> {
        let check = |name: &str, v: i64, min: i64| {
            if (min..=MAX_HOURS).contains(&v) {
                Ok(())
            } else {
                Err(format!(
                    "warnings.{name} must be {min} to {MAX_HOURS} hours (got {v})"
                ))
            }
        };
        check("deadline_floor_hours", self.floor_hours, 0)?;
        check("late_after_hours", self.late_after_hours, 1)?;
        let c = &self.catch_up_hours;
        check("catch_up_hours.red", c.red, 1)?;
        check("catch_up_hours.orange", c.orange, 1)?;
        check("catch_up_hours.yellow", c.yellow, 1)?;
        Ok(())
    }

    /// Whether a fact that happened at `occurred_at` and was received at `received_at` is late.
    pub fn is_late(&self, occurred_at: DateTime<Utc>, received_at: DateTime<Utc>) -> bool {
        received_at > plus_hours(occurred_at, self.late_after_hours.max(0))
    }

    /// The deadline (and the late mark) for a warning at `level` set by a fact that happened at
    /// `occurred_at` and was received at `received_at`; `act_within_hours` is the level's time to
    /// act (from the rule set; `None` for the level's default).
    pub fn deadline(
        &self,
        level: Level,
        act_within_hours: Option<i64>,
        occurred_at: DateTime<Utc>,
        received_at: DateTime<Utc>,
    ) -> (DateTime<Utc>, bool) {
        let act = act_within_hours
            .or_else(|| level.default_act_within_hours())
            .unwrap_or(0)
            .max(0);
        if self.is_late(occurred_at, received_at) {
            let hours = self.catch_up_hours.get(level).unwrap_or(act).max(0);
            (plus_hours(received_at, hours), true)
        } else {
            let due = plus_hours(occurred_at, act);
            let floor = plus_hours(received_at, self.floor_hours.max(0));
            (due.max(floor), false)
        }
    }
}

/// The episode of these assessments (any order), or `None` if none is above level none.
/// `act_within_hours` gives each level's time to act (the rule set's).
pub fn fold(
    steps: &[Step],
    policy: &DeadlinePolicy,
    act_within_hours: impl Fn(Level) -> Option<i64>,
) -> Option<Episode> {
    let mut order: Vec<&Step> = steps.iter().collect();
    order.sort_by(|a, b| a.key().cmp(&b.key()));
    let latest = *order.last()?;
    let mut transitions: Vec<Transition> = Vec::new();
    let mut level = Level::None;
    for s in &order {
        if s.level > level {
            level = s.level;
            let occurred_at = s.occurred_at.with_timezone(&Utc);
            let (deadline, late) = policy.deadline(
                s.level,
                act_within_hours(s.level),
                occurred_at,
                s.received_at,
            );
            transitions.push(Transition {
                level: s.level,
                source: s.source.clone(),
                event_id: s.event_id.clone(),
                occurred_at,
                late,
                deadline,
            });
        }
    }
    let current = transitions.last()?;
    let deadline = transitions
        .iter()
        .map(|t| t.deadline)
        .min()
        .unwrap_or(current.deadline);
    Some(Episode {
        level,
        score: latest.score,
        source: latest.source.clone(),
        event_id: latest.event_id.clone(),
        // To the microsecond, as the store keeps times: what is compared with the stored row
        // must be what the store gives back.
        occurred_at: current.occurred_at.trunc_subsecs(6),
        late: current.late,
        deadline: deadline.trunc_subsecs(6),
        transitions,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<FixedOffset> {
        DateTime::parse_from_rfc3339(s).unwrap()
    }

    fn step(seq: i64, day: u32, id: &str, level: Level, score: i64) -> Step {
        let occurred = at(&format!("2026-03-{day:02}T08:00:00+08:00"));
        Step {
            seq,
            occurred_at: occurred,
            source: "medical".into(),
            event_id: id.into(),
            // received an hour after it happened
            received_at: occurred.with_timezone(&Utc) + TimeDelta::hours(1),
            level,
            score,
        }
    }

    fn hours(l: Level) -> Option<i64> {
        l.default_act_within_hours()
    }

    fn steps() -> Vec<Step> {
        vec![
            step(10, 1, "a", Level::None, 0),
            step(11, 2, "b", Level::Yellow, 40),
            step(12, 3, "c", Level::None, 10),
            step(13, 4, "d", Level::Red, 120),
            step(14, 5, "e", Level::Orange, 80),
        ]
    }

    fn permutations(v: Vec<Step>) -> Vec<Vec<Step>> {
        if v.len() <= 1 {
            return vec![v];
        }
        let mut out = Vec::new();
        for i in 0..v.len() {
            let mut rest = v.clone();
            let x = rest.remove(i);
            for mut p in permutations(rest) {
                p.insert(0, x.clone());
                out.push(p);
            }
        }
        out
    }

    #[test]
    fn every_order_of_the_same_assessments_gives_the_same_episode() {
        let policy = DeadlinePolicy::default();
        let first = fold(&steps(), &policy, hours).unwrap();
        let all = permutations(steps());
        assert_eq!(all.len(), 120);
        for p in all {
            assert_eq!(fold(&p, &policy, hours).as_ref(), Some(&first));
        }
        // Equal event times: source and event id decide, not the order given.
        let mut tied = steps();
        for s in &mut tied {
            s.occurred_at = at("2026-03-01T08:00:00+08:00");
        }
        let a = fold(&tied, &policy, hours);
        tied.reverse();
        assert_eq!(fold(&tied, &policy, hours), a);
    }

    /// Each transition of `e`: (level, triggering event).
    fn transitions(e: &Episode) -> Vec<(Level, &str)> {
        e.transitions
            .iter()
            .map(|t| (t.level, t.event_id.as_str()))
            .collect()
    }

    #[test]
    fn the_level_is_the_highest_reached_and_never_lowered() {
        let e = fold(&steps(), &DeadlinePolicy::default(), hours).unwrap();
        assert_eq!(e.level, Level::Red);
        // score and triggering fact: the latest assessment (orange, after the red)
        assert_eq!((e.score, e.event_id.as_str()), (80, "e"));
        let t = transitions(&e);
        assert_eq!(t, vec![(Level::Yellow, "b"), (Level::Red, "d")]);
        // the hardship's time is that of the fact that set red
        assert_eq!(e.occurred_at, at("2026-03-04T00:00:00Z"));
        assert!(!e.late);
        // red 24 h from its event, earlier than yellow's 360 h
        assert_eq!(e.deadline, at("2026-03-05T00:00:00Z"));
    }

    #[test]
    fn nothing_above_none_is_no_episode() {
        let quiet = vec![
            step(1, 1, "a", Level::None, 0),
            step(2, 2, "b", Level::None, 5),
        ];
        assert_eq!(fold(&quiet, &DeadlinePolicy::default(), hours), None);
        assert_eq!(fold(&[], &DeadlinePolicy::default(), hours), None);
    }

    #[test]
    fn a_cut_starts_a_new_episode_from_the_facts_after_it() {
        // A person resolved after seq 13: the next episode folds the facts above the cut only.
        let cut = 13;
        let after: Vec<Step> = steps().into_iter().filter(|s| s.seq > cut).collect();
        let e = fold(&after, &DeadlinePolicy::default(), hours).unwrap();
        assert_eq!(e.level, Level::Orange);
        assert_eq!(e.transitions.len(), 1);
        assert_eq!(e.transitions[0].event_id, "e");
    }

    #[test]
    fn a_late_fact_earlier_than_the_opening_one_reopens_the_episode_at_it() {
        let mut s = steps();
        let mut late = step(20, 1, "z", Level::Orange, 70);
        late.occurred_at = at("2026-03-01T09:00:00+08:00");
        s.push(late);
        let e = fold(&s, &DeadlinePolicy::default(), hours).unwrap();
        let t = transitions(&e);
        assert_eq!(t, vec![(Level::Orange, "z"), (Level::Red, "d")]);
    }

    #[test]
    fn deadlines_follow_event_time_with_a_floor_and_catch_up_windows_when_late() {
        let p = DeadlinePolicy::default();
        let t = |s: &str| at(s).with_timezone(&Utc);
        // on time: event + 24 h
        assert_eq!(
            p.deadline(
                Level::Red,
                Some(24),
                t("2026-03-01T00:00:00Z"),
                t("2026-03-01T02:00:00Z")
            ),
            (t("2026-03-02T00:00:00Z"), false)
        );
        // received 22 h after: the 4 h floor from receipt
        assert_eq!(
            p.deadline(
                Level::Red,
                Some(24),
                t("2026-03-01T00:00:00Z"),
                t("2026-03-01T22:00:00Z")
            ),
            (t("2026-03-02T02:00:00Z"), false)
        );
        // received 100 h after: late, receipt + the catch-up window of the level
        assert_eq!(
            p.deadline(
                Level::Red,
                Some(24),
                t("2026-03-01T00:00:00Z"),
                t("2026-03-05T04:00:00Z")
            ),
            (t("2026-03-08T04:00:00Z"), true)
        );
        assert_eq!(
            p.deadline(
                Level::Yellow,
                None,
                t("2026-01-01T00:00:00Z"),
                t("2026-03-01T00:00:00Z")
            ),
            (t("2026-03-16T00:00:00Z"), true)
        );
        // absurd hours do not panic
        let (d, _) = p.deadline(
            Level::Red,
            Some(i64::MAX),
            t("2026-03-01T00:00:00Z"),
            t("2026-03-01T00:00:00Z"),
        );
        assert_eq!(d, DateTime::<Utc>::MAX_UTC);
    }
}
