//! Calibration: how the warnings of a store are spread — by level × top cause × vulnerability
//! (the household's category) — and whether each red is driven by what happened or by who the
//! household is (its largest contribution a finding, or the vulnerability multiplier). Read against
//! the generator's scenario mix (`crates/synth`), it says whether urgency means what policy means.
//! Pure: the caller reads the warnings.

use std::collections::BTreeMap;
use std::fmt;

use doudi_model::{Assessment, Category, Contribution, Level, Urgency};
use serde::Serialize;

use crate::rules::VULNERABILITY_ID;

/// What drives a warning: its largest contribution.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Driver {
    /// A finding (an event or a stretch of low income) is the largest contribution.
    Finding,
    /// Nothing counts any more: the findings that raised it lapsed (expired or cleared), and are
    /// shown with "verify and close".
    Lapsed,
    /// The vulnerability multiplier outweighs every finding.
    Vulnerability,
    /// The latest assessment holds nothing, not even lapsed findings.
    Empty,
}

/// One warning as calibration sees it.
pub struct Warned<'a> {
    pub household_id: &'a str,
    /// The warning's level (the highest its episode reached).
    pub level: Level,
    pub category: Category,
    /// The household's latest assessment (the warning's summary).
    pub latest: &'a Assessment,
}

/// One cell: level × top cause × category.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Cell {
    pub level: Level,
    /// The largest finding's cause (its rule, or the 急难 cause it reports); `lapsed:` before it
    /// when the finding no longer counts; `(none)`.
    pub cause: String,
    pub category: Category,
    pub warnings: u64,
    /// Of which the vulnerability multiplier is the largest contribution.
    pub driven_by_vulnerability: u64,
    /// A few examples: household and its top reason.
    pub examples: Vec<String>,
}

/// The spread of a store's warnings.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct CalibrationReport {
    pub warnings: u64,
    /// Warnings by level, red first.
    pub by_level: BTreeMap<Level, u64>,
    /// Reds by what drives them.
    pub reds_by_driver: BTreeMap<Driver, u64>,
    /// Share (‰) of the reds whose largest contribution is a finding (or, nothing counting any
    /// more, whose lapsed findings raised it).
    pub reds_driven_by_findings_permille: Option<i64>,
    pub cells: Vec<Cell>,
}

/// The top finding of an assessment — the most urgent class first, then the most points (first
/// of equals) — and what drives it (its largest contribution).
fn top(a: &Assessment) -> (Option<&Contribution>, Driver) {
    let findings = || {
        a.contributions
            .iter()
            .filter(|c| c.rule_id != VULNERABILITY_ID && c.points > 0)
    };
    let first_max = |key: &dyn Fn(&Contribution) -> (Option<Urgency>, i64)| {
        findings().fold(None::<&Contribution>, |b, c| match b {
            Some(b) if key(b) >= key(c) => Some(b),
            _ => Some(c),
        })
    };
    let top = first_max(&|c| (c.urgency, c.points));
    let largest = first_max(&|c| (None, c.points)).map_or(0, |c| c.points);
    let vulnerability = a
        .contributions
        .iter()
        .filter(|c| c.rule_id == VULNERABILITY_ID)
        .map(|c| c.points)
        .max();
    let lapsed = a.risk.as_ref().is_some_and(|r| !r.lapsed.is_empty());
    let driver = match (top, vulnerability) {
        (None, None) if lapsed => Driver::Lapsed,
        (None, None) => Driver::Empty,
        (None, Some(_)) => Driver::Vulnerability,
        (Some(_), Some(v)) if v > largest => Driver::Vulnerability,
        (Some(_), _) => Driver::Finding,
    };
    (top, driver)
}

/// Spread `warnings` into the report, keeping `examples` examples a cell.
pub fn calibrate<'a>(
    warnings: impl IntoIterator<Item = Warned<'a>>,
    examples: usize,
) -> CalibrationReport {
    let mut r = CalibrationReport::default();
    let mut cells: BTreeMap<(std::cmp::Reverse<Level>, String, Category), Cell> = BTreeMap::new();
    let (mut reds, mut red_findings) = (0i64, 0i64);
    for w in warnings {
        r.warnings += 1;
        *r.by_level.entry(w.level).or_default() += 1;
        let (best, driver) = top(w.latest);
        let lapsed = w
            .latest
            .risk
            .as_ref()
            .and_then(|k| k.lapsed.iter().map(|l| &l.finding).max_by_key(|f| f.points));
        let cause = match (best, lapsed) {
            (Some(c), _) => c.cause_or_rule().to_string(),
            (None, Some(f)) => format!("lapsed:{}", f.cause_or_rule()),
            (None, None) => "(none)".to_string(),
        };
        if w.level == Level::Red {
            reds += 1;
            *r.reds_by_driver.entry(driver).or_default() += 1;
            if matches!(driver, Driver::Finding | Driver::Lapsed) {
                red_findings += 1;
            }
        }
        let cell = cells
            .entry((std::cmp::Reverse(w.level), cause.clone(), w.category))
            .or_insert_with(|| Cell {
                level: w.level,
                cause,
                category: w.category,
                warnings: 0,
                driven_by_vulnerability: 0,
                examples: Vec::new(),
            });
        cell.warnings += 1;
        if driver == Driver::Vulnerability {
            cell.driven_by_vulnerability += 1;
        }
        if cell.examples.len() < examples {
            let why = best.or(lapsed).map(|c| c.reason_en.as_str()).unwrap_or("");
            cell.examples.push(format!("{}: {why}", w.household_id));
        }
    }
    r.reds_driven_by_findings_permille = (reds > 0).then(|| red_findings * 1000 / reds);
    r.cells = cells.into_values().collect();
    r
}

impl fmt::Display for CalibrationReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "预警 warnings: {}", self.warnings)?;
        for l in [Level::Red, Level::Orange, Level::Yellow, Level::None] {
            if let Some(n) = self.by_level.get(&l) {
                writeln!(f, "  {} {:<6} {n}", l.name_zh(), l.code())?;
            }
        }
        let reds: u64 = self.reds_by_driver.values().sum();
        if reds > 0 {
            let n = |d| self.reds_by_driver.get(&d).copied().unwrap_or(0);
            writeln!(
                f,
                "红色预警 reds: {reds}: largest contribution a finding {}; nothing counting any more, raised by findings that lapsed (verify and close) {}; the vulnerability multiplier {}; nothing at all {}",
                n(Driver::Finding),
                n(Driver::Lapsed),
                n(Driver::Vulnerability),
                n(Driver::Empty)
            )?;
        }
        if let Some(p) = self.reds_driven_by_findings_permille {
            writeln!(f, "reds driven by findings: {}.{}%", p / 10, p % 10)?;
        }
        writeln!(f, "level × top cause × category (warnings, of which the vulnerability multiplier is the largest contribution):")?;
        for c in &self.cells {
            writeln!(
                f,
                "  {:<6} {:<28} {:<11} {:>6} {:>6}",
                c.level.code(),
                c.cause,
                c.category.code(),
                c.warnings,
                c.driven_by_vulnerability
            )?;
            for e in &c.examples {
                writeln!(f, "         e.g. {e}")?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::assess::assess;
    use crate::ruleset::RuleSet;
    use crate::state::derive_state;
    use crate::testkit::*;
    use doudi_model::WorkCapacity;

    #[test]
    fn warnings_are_spread_by_level_cause_and_category_and_reds_by_what_drives_them() {
        let rules = RuleSet::builtin();
        let mut alone = family(Category::Tekun);
        alone.members[1].work_capacity = WorkCapacity::None;
        let death = only("M1", "2026-03-02", death("2026-03-02"));
        let red = assess(
            &rules,
            &alone,
            &derive_state(&alone, &death, at("2026-03-03")),
        );
        let ill = only("M2", "2026-03-01", diagnosis("C50.9", "2026-03-01"));
        let h = family(Category::Dibao);
        let orange = assess(&rules, &h, &derive_state(&h, &ill, at("2026-03-02")));
        // an old red whose summary is now empty
        let quiet = assess(&rules, &h, &derive_state(&h, &[], at("2026-03-02")));
        let ruined = ruined_then_moved();
        let expired = assess(&rules, &h, &derive_state(&h, &ruined, at("2026-08-01")));
        let mut stale = orange.clone();
        stale
            .contributions
            .retain(|c| c.rule_id == VULNERABILITY_ID);
        let warned = [
            Warned {
                household_id: "H1",
                level: Level::Red,
                category: Category::Tekun,
                latest: &red,
            },
            Warned {
                household_id: "H2",
                level: Level::Orange,
                category: Category::Dibao,
                latest: &orange,
            },
            Warned {
                household_id: "H3",
                level: Level::Red,
                category: Category::Dibao,
                latest: &quiet,
            },
            Warned {
                household_id: "H4",
                level: Level::Red,
                category: Category::Dibao,
                latest: &stale,
            },
            Warned {
                household_id: "H5",
                level: Level::Red,
                category: Category::Dibao,
                latest: &expired,
            },
        ];
        let r = calibrate(warned, 2);
        assert_eq!(r.warnings, 5);
        assert_eq!(r.by_level.get(&Level::Red), Some(&4));
        assert_eq!(r.reds_by_driver.get(&Driver::Lapsed), Some(&1));
        assert!(r.cells.iter().any(|c| c.cause == "lapsed:disaster_damage"));
        assert_eq!(r.reds_by_driver.get(&Driver::Finding), Some(&1));
        // a quiet household never at risk: nothing at all
        assert_eq!(r.reds_by_driver.get(&Driver::Empty), Some(&1));
        // the stale one: vulnerability is all that is left
        assert_eq!(r.reds_by_driver.get(&Driver::Vulnerability), Some(&1));
        assert_eq!(r.reds_driven_by_findings_permille, Some(500));
        let first = &r.cells[0];
        assert_eq!((first.level, first.cause.as_str()), (Level::Red, "(none)"));
        assert!(r
            .cells
            .iter()
            .any(|c| c.cause == "income_gone" && c.category == Category::Tekun));
        assert!(r
            .cells
            .iter()
            .any(|c| c.level == Level::Orange && c.cause == "serious_illness"));
        let text = r.to_string();
        assert!(text.contains("reds driven by findings: 50.0%"), "{text}");
        assert!(
            text.contains("e.g. H1: Member (head of household) died"),
            "{text}"
        );
    }
}
