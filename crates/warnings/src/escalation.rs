//! Deadlines and escalation, as a pure function of a warning's clock and the time now.
//!
//! Each level has a time to acknowledge (configuration). A warning nobody acknowledged in time
//! escalates to the next person up the chain — the assigned officer's supervisor, then the
//! supervisor above that — one step per further acknowledgement period. A warning acknowledged but
//! not resolved by its deadline (the level's time to act) escalates once to the supervisor.
//! Between steps, the current holder is reminded at an interval. An acknowledged warning never
//! escalates for acknowledgement; a resolved one never does anything. Nothing fires before its
//! moment: `due` at `t` is empty for every `t` before the deadline.
//!
//! The acknowledgement clock runs from when the warning was opened, at its current level's pace:
//! a warning nobody acknowledged for days that is raised to red is escalated at once, as far up
//! as the time it has waited reaches — deliberately, since nobody has taken it up.

use chrono::{DateTime, TimeDelta, Utc};
use doudi_risk::Level;
use serde::{Deserialize, Serialize};

use crate::lifecycle::Status;

/// The longest period accepted (a year).
pub const MAX_HOURS: u32 = 8760;

/// Hours per level.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PerLevel {
    pub red: u32,
    pub orange: u32,
    pub yellow: u32,
}

impl PerLevel {
    pub fn get(&self, level: Level) -> Option<u32> {
        match level {
            Level::Red => Some(self.red),
            Level::Orange => Some(self.orange),
            Level::Yellow => Some(self.yellow),
            Level::None => None,
        }
    }
}

/// When to escalate and remind (defaults from DOMAIN.md's time limits: urgent relief within
/// 24–48 hours, a visit within days).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EscalationConfig {
    /// Hours to acknowledge, per level.
    pub ack_within_hours: PerLevel,
    /// Hours between reminders to whoever holds an unacknowledged or overdue warning, per level.
    pub remind_every_hours: PerLevel,
}

impl Default for EscalationConfig {
    fn default() -> Self {
        EscalationConfig {
            ack_within_hours: PerLevel {
                red: 2,
                orange: 24,
                yellow: 72,
            },
            remind_every_hours: PerLevel {
                red: 1,
                orange: 8,
                yellow: 24,
            },
        }
    }
}

impl EscalationConfig {
    pub fn validate(&self) -> Result<(), String> {
        for (name, p) in [
            ("ack_within_hours", &self.ack_within_hours),
            ("remind_every_hours", &self.remind_every_hours),
        ] {
            if [p.red, p.orange, p.yellow]
                .iter()
                .any(|h| *h == 0 || *h > MAX_HOURS)
            {
                return Err(format!(
                    "warnings.escalation.{name}: every level needs 1 to {MAX_HOURS} hours"
                ));
            }
        }
        Ok(())
    }
}

/// What the escalation needs to know of a warning.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Clock {
    pub status: Status,
    pub level: Level,
    pub opened_at: DateTime<Utc>,
    /// The deadline to act (resolve).
    pub deadline: DateTime<Utc>,
    /// Escalation steps taken for acknowledgement (0: still with the assigned officer).
    pub ack_steps: u32,
    /// Whether the resolve deadline has been escalated already.
    pub resolve_escalated: bool,
    /// When the holder was last notified (opened, escalated or reminded).
    pub last_notice_at: DateTime<Utc>,
}

/// Something to do now.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "notice", rename_all = "snake_case")]
pub enum Notice {
    /// Not acknowledged in time: step `step` up the chain (1: the supervisor, 2: the one above…).
    Escalate { step: u32, at: DateTime<Utc> },
    /// Acknowledged but not resolved by the deadline: to the supervisor.
    Overdue { at: DateTime<Utc> },
    /// Remind the current holder.
    Remind { at: DateTime<Utc> },
}

fn hours(h: u32) -> TimeDelta {
    TimeDelta::hours(i64::from(h))
}

/// The notices due at `now` (in the order they fell due), given how far escalation has gone.
/// `chain_len` is how many people are above the assigned officer (supervisors); escalation never
/// steps past the top.
pub fn due(c: &Clock, now: DateTime<Utc>, cfg: &EscalationConfig, chain_len: u32) -> Vec<Notice> {
    let mut out = Vec::new();
    let (Some(ack), Some(remind)) = (
        cfg.ack_within_hours.get(c.level),
        cfg.remind_every_hours.get(c.level),
    ) else {
        return out;
    };
    let mut last_notice = c.last_notice_at;
    match c.status {
        Status::Resolved | Status::Withdrawn => return out,
        Status::Open => {
            // Step k falls due at opened + k × ack (k ≥ 1), up to the top of the chain.
            let mut step = c.ack_steps;
            while step < chain_len {
                let Some(at) = c
                    .opened_at
                    .checked_add_signed(hours(ack.min(MAX_HOURS)) * (step.min(16) as i32 + 1))
                else {
                    break;
                };
                if at > now {
                    break;
                }
                step += 1;
                out.push(Notice::Escalate { step, at });
                last_notice = at;
            }
        }
        Status::Acknowledged | Status::Visited => {
            if !c.resolve_escalated && c.deadline <= now && chain_len > 0 {
                out.push(Notice::Overdue { at: c.deadline });
                last_notice = c.deadline;
            }
        }
    }
    // Reminders: while unacknowledged, or once overdue.
    let waiting = c.status == Status::Open || (c.deadline <= now && c.status != Status::Resolved);
    if waiting {
        if let Some(next) = last_notice.checked_add_signed(hours(remind.min(MAX_HOURS))) {
            if next <= now && out.is_empty() {
                out.push(Notice::Remind { at: next });
            }
        }
    }
    out
}

/// Why the tick made a notice, as its note says it. The note is stored in English (the words
/// below, also those of notices made before); the Chinese is said from it wherever an officer
/// reads it (pages, robot messages, the webhook's `note_zh`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NoticeNote {
    /// Nobody acknowledged the warning within this many hours (an escalation step).
    NotAcknowledged { hours: u32 },
    /// Acknowledged but not resolved by its deadline.
    NotResolved,
    /// The holder is reminded: the warning is still waiting.
    StillWaiting,
}

impl NoticeNote {
    /// The note as stored, in English.
    pub fn en(self) -> String {
        match self {
            NoticeNote::NotAcknowledged { hours } => format!("not acknowledged within {hours} h"),
            NoticeNote::NotResolved => "not resolved by its deadline".to_string(),
            NoticeNote::StillWaiting => "still waiting".to_string(),
        }
    }

    /// The note in Chinese.
    pub fn zh(self) -> String {
        match self {
            NoticeNote::NotAcknowledged { hours } => format!("超过 {hours} 小时无人签收"),
            NoticeNote::NotResolved => "已过办理期限仍未办结".to_string(),
            NoticeNote::StillWaiting => "仍在等待处理".to_string(),
        }
    }

    /// A stored note read back (`None`: not one of the tick's notes).
    pub fn parse(note: &str) -> Option<NoticeNote> {
        let note = note.trim();
        match note {
            "not resolved by its deadline" => Some(NoticeNote::NotResolved),
            "still waiting" => Some(NoticeNote::StillWaiting),
            _ => note
                .strip_prefix("not acknowledged within ")?
                .strip_suffix(" h")?
                .parse()
                .ok()
                .map(|hours| NoticeNote::NotAcknowledged { hours }),
        }
    }

    /// A stored note in Chinese: the tick's notes in words, any other text as it is.
    pub fn zh_of(note: &str) -> String {
        NoticeNote::parse(note).map_or_else(|| note.to_string(), NoticeNote::zh)
    }

    /// A stored note in English (as stored).
    pub fn en_of(note: &str) -> String {
        NoticeNote::parse(note).map_or_else(|| note.to_string(), NoticeNote::en)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(h: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_767_225_600, 0).unwrap() + TimeDelta::hours(h)
    }

    /// A red warning's clock at `status`.
    fn red_at(status: Status) -> Clock {
        Clock {
            status,
            ..clock(Level::Red)
        }
    }

    fn clock(level: Level) -> Clock {
        Clock {
            status: Status::Open,
            level,
            opened_at: t(0),
            deadline: t(24),
            ack_steps: 0,
            resolve_escalated: false,
            last_notice_at: t(0),
        }
    }

    fn cfg() -> EscalationConfig {
        EscalationConfig::default()
    }

    #[test]
    fn an_unacknowledged_red_warning_escalates_exactly_at_two_hours_not_before() {
        let c = clock(Level::Red);
        let just_before = t(2) - TimeDelta::seconds(1);
        assert!(
            !due(&c, just_before, &cfg(), 2)
                .iter()
                .any(|n| matches!(n, Notice::Escalate { .. })),
            "nothing escalates before the deadline"
        );
        assert_eq!(
            due(&c, t(2), &cfg(), 2),
            vec![Notice::Escalate { step: 1, at: t(2) }]
        );
    }

    #[test]
    fn escalation_climbs_one_step_per_period_and_stops_at_the_top() {
        let c = clock(Level::Red);
        assert_eq!(
            due(&c, t(5), &cfg(), 2),
            vec![
                Notice::Escalate { step: 1, at: t(2) },
                Notice::Escalate { step: 2, at: t(4) }
            ]
        );
        let c = Clock {
            ack_steps: 2,
            last_notice_at: t(4),
            ..clock(Level::Red)
        };
        // At the top: reminders only, one per hour for red.
        assert_eq!(due(&c, t(4) + TimeDelta::minutes(59), &cfg(), 2), vec![]);
        assert_eq!(due(&c, t(5), &cfg(), 2), vec![Notice::Remind { at: t(5) }]);
    }

    #[test]
    fn an_acknowledged_warning_does_not_escalate_until_its_deadline_passes_unresolved() {
        let c = red_at(Status::Acknowledged);
        assert_eq!(due(&c, t(23), &cfg(), 2), vec![]);
        assert_eq!(
            due(&c, t(24), &cfg(), 2),
            vec![Notice::Overdue { at: t(24) }]
        );
        let c = Clock {
            resolve_escalated: true,
            last_notice_at: t(24),
            ..c
        };
        assert_eq!(due(&c, t(24), &cfg(), 2), vec![]);
        assert_eq!(
            due(&c, t(25), &cfg(), 2),
            vec![Notice::Remind { at: t(25) }]
        );
    }

    #[test]
    fn a_resolved_warning_or_a_region_without_supervisor_does_not_escalate() {
        let c = red_at(Status::Resolved);
        assert_eq!(due(&c, t(100), &cfg(), 2), vec![]);
        // Nobody above: the officer is reminded instead.
        let c = clock(Level::Red);
        assert_eq!(due(&c, t(2), &cfg(), 0), vec![Notice::Remind { at: t(1) }]);
    }

    #[test]
    fn absurd_periods_are_refused_and_never_panic() {
        let mut cfg = cfg();
        cfg.ack_within_hours.red = u32::MAX;
        assert!(cfg.validate().is_err());
        // Even unvalidated, a huge period is taken as the longest accepted one.
        let c = clock(Level::Red);
        assert_eq!(
            due(&c, t(1_000_000), &cfg, 1),
            vec![Notice::Escalate {
                step: 1,
                at: t(i64::from(MAX_HOURS))
            }]
        );
    }

    #[test]
    fn a_yellow_warning_waits_three_days_for_acknowledgement() {
        let c = Clock {
            deadline: t(15 * 24),
            ..clock(Level::Yellow)
        };
        assert!(!due(&c, t(71), &cfg(), 1)
            .iter()
            .any(|n| matches!(n, Notice::Escalate { .. })));
        assert_eq!(
            due(&c, t(72), &cfg(), 1),
            vec![Notice::Escalate { step: 1, at: t(72) }]
        );
    }

    #[test]
    fn the_ticks_notes_are_said_in_chinese_and_read_back_from_english() {
        for n in [
            NoticeNote::NotAcknowledged { hours: 4 },
            NoticeNote::NotResolved,
            NoticeNote::StillWaiting,
        ] {
            assert_eq!(NoticeNote::parse(&n.en()), Some(n));
            assert!(n
                .zh()
                .chars()
                .any(|c| ('\u{4e00}'..='\u{9fff}').contains(&c)));
        }
        assert_eq!(
            NoticeNote::zh_of("not acknowledged within 48 h"),
            "超过 48 小时无人签收"
        );
        assert_eq!(NoticeNote::zh_of("still waiting"), "仍在等待处理");
        assert_eq!(
            NoticeNote::zh_of("a person's own words"),
            "a person's own words"
        );
    }
}
