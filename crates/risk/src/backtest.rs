//! Backtest: replay stored timelines under a candidate rule set and report what would change —
//! warnings gained and lost by level, the level-change matrix, the households affected, and a few
//! examples with both levels and their top reasons. Pure: the caller reads the timelines.

use std::borrow::Borrow;
use std::fmt::{self, Write as _};

use chrono::{DateTime, FixedOffset};
use doudi_model::{Fact, Household};
use serde::Serialize;

use crate::assess::{assess, Assessment};
use crate::level::Level;
use crate::ruleset::RuleSet;
use crate::state::derive_state;

/// How many reasons an example shows per side.
const TOP_REASONS: usize = 3;

/// One cell of the level-change matrix (only non-empty cells are listed).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct LevelChange {
    pub from: Level,
    pub to: Level,
    pub households: u64,
}

/// Counts per level (`none` is not counted: these are warnings).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct ByLevel {
    pub yellow: u64,
    pub orange: u64,
    pub red: u64,
}

impl ByLevel {
    fn add(&mut self, level: Level) {
        match level {
            Level::None => {}
            Level::Yellow => self.yellow += 1,
            Level::Orange => self.orange += 1,
            Level::Red => self.red += 1,
        }
    }

    pub fn total(&self) -> u64 {
        self.yellow + self.orange + self.red
    }
}

/// One side of an example: level, score and top reasons (`rule_id: reason`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ExampleSide {
    pub level: Level,
    pub score: i64,
    pub top_reasons_zh: Vec<String>,
    pub top_reasons_en: Vec<String>,
}

impl ExampleSide {
    fn of(a: &Assessment) -> Self {
        let mut cs: Vec<_> = a.contributions.iter().collect();
        cs.sort_by(|x, y| y.points.cmp(&x.points).then(x.rule_id.cmp(&y.rule_id)));
        cs.truncate(TOP_REASONS);
        ExampleSide {
            level: a.level,
            score: a.score,
            top_reasons_zh: cs
                .iter()
                .map(|c| format!("{} ({:+}): {}", c.rule_id, c.points, c.reason_zh))
                .collect(),
            top_reasons_en: cs
                .iter()
                .map(|c| format!("{} ({:+}): {}", c.rule_id, c.points, c.reason_en))
                .collect(),
        }
    }
}

/// A household whose level would change.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct BacktestExample {
    pub household_id: String,
    /// `gained`, `lost`, `raised` or `lowered`.
    pub change: &'static str,
    pub current: ExampleSide,
    pub candidate: ExampleSide,
}

/// What replaying the timelines under the candidate rule set would change.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct BacktestReport {
    pub current_version: String,
    pub candidate_version: String,
    /// Households replayed.
    pub households: u64,
    /// Warned (yellow or above) under each rule set, by level.
    pub warned_current: ByLevel,
    pub warned_candidate: ByLevel,
    /// Not warned now, warned under the candidate (by the candidate's level).
    pub gained: ByLevel,
    /// Warned now, not under the candidate (by the current level).
    pub lost: ByLevel,
    /// Warned under both, at a higher / lower level under the candidate.
    pub raised: u64,
    pub lowered: u64,
    /// Households whose level changes.
    pub households_affected: u64,
    /// Households whose score changes (level or not).
    pub scores_changed: u64,
    /// Current level → candidate level, every non-empty cell (the diagonal included).
    pub level_changes: Vec<LevelChange>,
    pub examples: Vec<BacktestExample>,
}

fn idx(l: Level) -> usize {
    match l {
        Level::None => 0,
        Level::Yellow => 1,
        Level::Orange => 2,
        Level::Red => 3,
    }
}

/// Replay each household's timeline under `current` and `candidate`.
///
/// `households` yields what [`derive_state`] takes — the register record, its facts (any order)
/// and the time to assess at — owned or borrowed: `(Household, Vec<Fact>, as_of)` and
/// `(&Household, &[Fact], as_of)` both work. `examples` caps the examples kept; they are taken in
/// input order, alternating between kinds of change so that each kind is shown.
pub fn backtest<H, F, I>(
    current: &RuleSet,
    candidate: &RuleSet,
    households: I,
    examples: usize,
) -> BacktestReport
where
    H: Borrow<Household>,
    F: AsRef<[Fact]>,
    I: IntoIterator<Item = (H, F, DateTime<FixedOffset>)>,
{
    let mut r = BacktestReport {
        current_version: current.version.clone(),
        candidate_version: candidate.version.clone(),
        households: 0,
        warned_current: ByLevel::default(),
        warned_candidate: ByLevel::default(),
        gained: ByLevel::default(),
        lost: ByLevel::default(),
        raised: 0,
        lowered: 0,
        households_affected: 0,
        scores_changed: 0,
        level_changes: Vec::new(),
        examples: Vec::new(),
    };
    let mut matrix = [[0u64; 4]; 4];
    // Candidate examples per kind of change: gained, lost, raised, lowered.
    let mut pool: [Vec<BacktestExample>; 4] = Default::default();
    for (h, f, as_of) in households {
        let h = h.borrow();
        let state = derive_state(h, f.as_ref(), as_of);
        let a = assess(current, h, &state);
        let b = assess(candidate, h, &state);
        r.households += 1;
        r.warned_current.add(a.level);
        r.warned_candidate.add(b.level);
        matrix[idx(a.level)][idx(b.level)] += 1;
        if a.score != b.score {
            r.scores_changed += 1;
        }
        if a.level == b.level {
            continue;
        }
        r.households_affected += 1;
        let (kind, k) = if a.level == Level::None {
            r.gained.add(b.level);
            ("gained", 0)
        } else if b.level == Level::None {
            r.lost.add(a.level);
            ("lost", 1)
        } else if b.level > a.level {
            r.raised += 1;
            ("raised", 2)
        } else {
            r.lowered += 1;
            ("lowered", 3)
        };
        if pool[k].len() < examples {
            pool[k].push(BacktestExample {
                household_id: h.household_id.clone(),
                change: kind,
                current: ExampleSide::of(&a),
                candidate: ExampleSide::of(&b),
            });
        }
    }
    for from in Level::ALL {
        for to in Level::ALL {
            let n = matrix[idx(from)][idx(to)];
            if n > 0 {
                r.level_changes.push(LevelChange {
                    from,
                    to,
                    households: n,
                });
            }
        }
    }
    let mut iters: Vec<_> = pool.into_iter().map(Vec::into_iter).collect();
    while r.examples.len() < examples {
        let mut any = false;
        for it in iters.iter_mut() {
            if r.examples.len() >= examples {
                break;
            }
            if let Some(e) = it.next() {
                r.examples.push(e);
                any = true;
            }
        }
        if !any {
            break;
        }
    }
    r
}

impl BacktestReport {
    /// A plain-text report for a terminal, Chinese and English labels.
    pub fn render_text(&self) -> String {
        self.to_string()
    }
}

fn by_level(b: &ByLevel) -> String {
    format!(
        "{} (红 red {}, 橙 orange {}, 黄 yellow {})",
        b.total(),
        b.red,
        b.orange,
        b.yellow
    )
}

impl fmt::Display for BacktestReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "回测 Backtest: rules {} → {} over {} households",
            self.current_version, self.candidate_version, self.households
        );
        let _ = writeln!(
            s,
            "  预警 warned now:        {}",
            by_level(&self.warned_current)
        );
        let _ = writeln!(
            s,
            "  预警 warned candidate:  {}",
            by_level(&self.warned_candidate)
        );
        let _ = writeln!(s, "  新增 gained:           {}", by_level(&self.gained));
        let _ = writeln!(s, "  消失 lost:             {}", by_level(&self.lost));
        let _ = writeln!(
            s,
            "  升级 raised: {}   降级 lowered: {}",
            self.raised, self.lowered
        );
        let _ = writeln!(
            s,
            "  受影响家庭 households affected (level changes): {}; scores changed: {}",
            self.households_affected, self.scores_changed
        );
        let _ = writeln!(s, "  等级变化 level changes (now → candidate):");
        let _ = write!(s, "    {:>8}", "");
        for to in Level::ALL {
            let _ = write!(s, "{:>9}", to.code());
        }
        let _ = writeln!(s);
        for from in Level::ALL {
            let _ = write!(s, "    {:>8}", from.code());
            for to in Level::ALL {
                let n = self
                    .level_changes
                    .iter()
                    .find(|c| c.from == from && c.to == to)
                    .map_or(0, |c| c.households);
                let _ = write!(s, "{n:>9}");
            }
            let _ = writeln!(s);
        }
        if !self.examples.is_empty() {
            let _ = writeln!(s, "  例子 examples:");
        }
        for e in &self.examples {
            let _ = writeln!(
                s,
                "    {} [{}]: {} ({}) → {} ({})",
                e.household_id,
                e.change,
                e.current.level.code(),
                e.current.score,
                e.candidate.level.code(),
                e.candidate.score
            );
            for (label, side) in [("now", &e.current), ("candidate", &e.candidate)] {
                for (zh, en) in side.top_reasons_zh.iter().zip(&side.top_reasons_en) {
                    let _ = writeln!(s, "      {label}: {zh}");
                    let _ = writeln!(s, "      {:width$}  {en}", "", width = label.len());
                }
            }
        }
        f.write_str(&s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit::*;
    use doudi_model::Category;

    #[test]
    fn stricter_candidate_gains_and_raises_warnings_with_examples() {
        let current = RuleSet::builtin();
        let mut candidate = current.clone();
        candidate.version = "test-strict".into();
        candidate.levels.yellow.min_score = 10;
        candidate.review.watch_points = 10;
        candidate.levels.orange.min_score = 35;
        candidate.levels.red.min_score = 70;
        let h = family_dibao_rural();
        let quiet = family(Category::EdgeProne);
        let stop = only("M1", "2026-04-01", contributions_stopped("2026-01", 3));
        let child = [fact("E2", "M3", "2026-03-02", death("2026-03-02"))];
        let none: [doudi_model::Fact; 0] = [];
        let rows = vec![
            (&h, &stop[..], at("2026-04-02")),
            (&h, &child[..], at("2026-03-03")),
            (&quiet, &none[..], at("2026-03-03")),
        ];
        let r = backtest(&current, &candidate, rows.clone(), 5);
        assert_eq!(r.households, 3);
        // stopped contributions: 15 × 1.3 = 19 → none now, yellow under the candidate
        assert_eq!(
            r.gained,
            ByLevel {
                yellow: 1,
                orange: 0,
                red: 0
            }
        );
        // a child's death: 30 × 1.3 = 39 → yellow now, orange under the candidate
        assert_eq!(r.raised, 1);
        assert_eq!(r.lost.total(), 0);
        assert_eq!(r.households_affected, 2);
        assert_eq!(r.examples.len(), 2);
        assert_eq!(r.examples[0].change, "gained");
        assert_eq!(r.examples[0].candidate.level, Level::Yellow);
        assert!(r.examples[0].candidate.top_reasons_zh[0].starts_with("job_loss (+15)"));
        assert!(r.level_changes.contains(&LevelChange {
            from: Level::None,
            to: Level::None,
            households: 1
        }));
        let text = r.render_text();
        assert!(text.contains("gained"), "{text}");
        assert!(text.contains("test-strict"), "{text}");
        // owned input works too, and the same rule set changes nothing
        let owned = vec![(h.clone(), stop.to_vec(), at("2026-04-02"))];
        let same = backtest(&current, &current, owned, 5);
        assert_eq!(same.households_affected, 0);
        assert!(same.examples.is_empty());
        serde_json::to_string(&r).expect("serialises");
    }
}
