//! On generated data, households given a hardship scenario are warned with the scenario's cause
//! among the top reasons, and households without one are rarely warned.
//!
//! The generator's scenarios are written from DOMAIN.md's hardship stories (serious illness with
//! heavy bills and continuing treatment, death of an earner, job loss of the only earner, a
//! dangerous house or a disaster, a severe disability), not from the rules; linkage is perfect
//! here (the truth file's member), so this measures the rules alone. Every household is assessed
//! as of the end of the window. A scenario household whose risk was *cleared* by then (风险消除:
//! six stable months, income back above the line, someone able to work) is counted as handled
//! when it was warned, with its cause, as of its story's last event; the strict end-of-window
//! figure is printed beside. Run with `--nocapture` to see the figures.

mod common;

use std::collections::BTreeMap;

use doudi_risk::{
    assess, derive_state, Assessment, ClearanceStatus, Level, RuleSet, VULNERABILITY_ID,
};

/// The rules that may rightly explain each kind of scenario.
fn causes(kind: &str) -> &'static [&'static str] {
    doudi_synth::scenario_causes(kind).unwrap_or(&[])
}

/// Warned (yellow or above) with one of `kind`'s causes among the three heaviest rules.
fn warned_with_cause(a: &Assessment, kind: &str) -> bool {
    let mut top: Vec<_> = a
        .contributions
        .iter()
        .filter(|c| c.rule_id != VULNERABILITY_ID && c.points > 0)
        .collect();
    top.sort_by_key(|c| std::cmp::Reverse(c.points));
    top.truncate(3);
    a.level >= Level::Yellow
        && top
            .iter()
            .any(|c| causes(kind).contains(&c.rule_id.as_str()))
}

fn describe(a: &Assessment) -> String {
    let cs: Vec<String> = a
        .contributions
        .iter()
        .map(|c| format!("{} {:+}: {}", c.rule_id, c.points, c.reason_en))
        .collect();
    format!("{} {} {cs:?}", a.level, a.score)
}

#[test]
fn hardship_households_are_warned_with_their_cause_and_others_rarely() {
    let data = common::generate(4000, 11, 0.08);
    let rules = RuleSet::builtin();
    let none = Vec::new();

    let mut per_kind: BTreeMap<String, (u32, u32, u32)> = BTreeMap::new();
    let (mut strict, mut handled, mut scen) = (0u32, 0u32, 0u32);
    let (mut false_warn, mut quiet) = (0u32, 0u32);
    let mut misses = Vec::new();
    let mut shown: Vec<String> = Vec::new();
    let mut examples = Vec::new();
    let mut false_examples = Vec::new();
    for h in &data.register {
        let facts = data.facts.get(&h.household_id).unwrap_or(&none);
        let state = derive_state(h, facts, data.as_of);
        let a = assess(&rules, h, &state);
        match data.scenarios.get(&h.household_id) {
            Some((kind, ids)) => {
                scen += 1;
                let e = per_kind.entry(kind.clone()).or_default();
                e.2 += 1;
                if warned_with_cause(&a, kind) {
                    if !shown.contains(kind) {
                        shown.push(kind.clone());
                        examples.push(format!(
                            "{} {kind} → {} {} (rules {}):\n{}\n{}",
                            h.household_id,
                            a.level,
                            a.score,
                            a.rule_set_version,
                            a.contributions
                                .iter()
                                .map(|c| format!(
                                    "    {:+} {}\n       {}",
                                    c.points, c.reason_zh, c.reason_en
                                ))
                                .collect::<Vec<_>>()
                                .join("\n"),
                            a.relief
                                .as_ref()
                                .map(|r| format!(
                                    "    relief: {}\n       {}",
                                    r.reason_zh, r.reason_en
                                ))
                                .unwrap_or_default()
                        ));
                    }
                    strict += 1;
                    handled += 1;
                    e.0 += 1;
                    e.1 += 1;
                    continue;
                }
                // Cleared by the end of the window: was it warned when its story ended?
                let story_end = facts
                    .iter()
                    .filter(|f| ids.contains(&f.event_id))
                    .map(|f| f.occurred_at)
                    .max();
                let c = rules.clearance(h, &state);
                let cleared = c.status == ClearanceStatus::Cleared
                    // or cleared, and a new episode (not the scenario's) open since
                    || story_end.is_some_and(|t| {
                        c.resolved_through.is_some()
                            && c.episode_start.is_some_and(|s| s > t.date_naive())
                    });
                let then = story_end.map(|t| assess(&rules, h, &derive_state(h, facts, t)));
                if cleared && then.as_ref().is_some_and(|b| warned_with_cause(b, kind)) {
                    handled += 1;
                    e.1 += 1;
                } else if misses.len() < 20 {
                    misses.push(format!(
                        "{} {kind} {:?}: end {} / story end {}",
                        h.household_id,
                        rules.clearance(h, &state),
                        describe(&a),
                        then.as_ref().map(describe).unwrap_or_default()
                    ));
                }
            }
            None => {
                quiet += 1;
                if a.level >= Level::Yellow {
                    false_warn += 1;
                    if false_examples.len() < 20 {
                        false_examples.push(format!(
                            "{} {:?}: {}",
                            h.household_id,
                            h.category,
                            describe(&a)
                        ));
                    }
                }
            }
        }
    }
    let pct = |a: u32, b: u32| f64::from(a) * 100.0 / f64::from(b.max(1));
    println!(
        "scenario households warned with their cause: {handled}/{scen} = {:.2}% \
         (strictly at the end of the window: {strict}/{scen} = {:.2}%; the rest cleared by then)",
        pct(handled, scen),
        pct(strict, scen)
    );
    for (k, (s, h, n)) in &per_kind {
        println!("  {k}: {h}/{n} handled, {s}/{n} warned at the end");
    }
    println!(
        "households without a scenario warned (yellow+) at the end: {false_warn}/{quiet} = {:.2}%",
        pct(false_warn, quiet)
    );
    for e in &examples {
        println!("example: {e}");
    }
    for m in &misses {
        println!("  miss: {m}");
    }
    for f in &false_examples {
        println!("  false: {f}");
    }
    assert!(scen >= 200, "too few scenario households: {scen}");
    assert!(
        pct(handled, scen) >= 98.0,
        "{handled}/{scen} scenario households warned: {misses:#?}"
    );
    assert!(
        pct(false_warn, quiet) <= 1.0,
        "{false_warn}/{quiet} households without a scenario warned: {false_examples:#?}"
    );
}

#[test]
fn backtest_reports_what_higher_orange_and_red_thresholds_would_change() {
    let data = common::generate(1500, 12, 0.08);
    let current = RuleSet::builtin();
    let mut candidate = current.clone();
    candidate.version = "2026.11-2-higher".into();
    candidate.levels.orange.min_score = 80;
    candidate.levels.red.min_score = 120;
    let none = Vec::new();
    let rows = data.register.iter().map(|h| {
        (
            h,
            data.facts.get(&h.household_id).unwrap_or(&none).as_slice(),
            data.as_of,
        )
    });
    let r = doudi_risk::backtest(&current, &candidate, rows, 3);
    println!("{}", r.render_text());
    assert_eq!(r.households, 1500);
    // higher orange and red thresholds only lower levels: nothing gained, lost or raised
    assert_eq!(r.gained.total() + r.lost.total() + r.raised, 0, "{r:#?}");
    assert!(r.lowered > 0, "{r:#?}");
    assert_eq!(r.households_affected, r.lowered);
    assert_eq!(r.scores_changed, 0);
    assert_eq!(r.examples.len(), 3);
    assert!(r.examples.iter().all(|e| e.change == "lowered"));
    assert_eq!(r.warned_current.total(), r.warned_candidate.total());
}
