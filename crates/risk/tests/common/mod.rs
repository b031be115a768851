//! A generated dataset turned into per-household timelines with perfect linkage (each event
//! linked to its true member through `truth/events.jsonl`; outsider events skipped), so that what
//! is measured is the rules, not the linker.
#![allow(dead_code)]

use std::collections::HashMap;
use std::path::Path;

use chrono::{DateTime, FixedOffset, NaiveDate, TimeDelta};
use doudi_model::{parse_event, Fact, Household, ParseLimits};
use doudi_synth::{GenConfig, Noise};

pub struct Dataset {
    pub register: Vec<Household>,
    /// Facts per household id, in feed order.
    pub facts: HashMap<String, Vec<Fact>>,
    /// Scenario kind and its event ids, per household id.
    pub scenarios: HashMap<String, (String, Vec<String>)>,
    /// The last moment of the window.
    pub as_of: DateTime<FixedOffset>,
    pub _dir: tempfile::TempDir,
}

fn read_lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
        .lines()
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect()
}

pub fn generate(households: usize, seed: u64, hardship_share: f64) -> Dataset {
    generate_with(households, seed, hardship_share, Noise::default())
}

/// [`generate`] with the feeds' noise given (the bench measures clean feeds).
pub fn generate_with(households: usize, seed: u64, hardship_share: f64, noise: Noise) -> Dataset {
    let dir = tempfile::tempdir().expect("temp dir");
    let start = NaiveDate::from_ymd_opt(2026, 1, 1).expect("date");
    let cfg = GenConfig {
        households,
        seed,
        start,
        months: 12,
        hardship_share,
        noise,
    };
    doudi_synth::write_dataset(dir.path(), &cfg, &mut |_| {}).expect("generate");
    let register: Vec<Household> = read_lines(&dir.path().join("register.jsonl"))
        .iter()
        .map(|l| serde_json::from_str(l).expect("household"))
        .collect();

    // event id → (household, member)
    let mut truth: HashMap<String, (String, String)> = HashMap::new();
    for l in read_lines(&dir.path().join("truth").join("events.jsonl")) {
        let v: serde_json::Value = serde_json::from_str(&l).expect("truth line");
        let (Some(e), Some(h), Some(m)) = (
            v["event_id"].as_str(),
            v["household_id"].as_str(),
            v["member_id"].as_str(),
        ) else {
            continue; // an outsider
        };
        truth.insert(e.to_string(), (h.to_string(), m.to_string()));
    }
    let limits = ParseLimits::default();
    let mut facts: HashMap<String, Vec<Fact>> = HashMap::new();
    let mut sources: Vec<_> = std::fs::read_dir(dir.path().join("feeds"))
        .expect("feeds")
        .map(|e| e.expect("entry").path())
        .collect();
    sources.sort();
    for source in sources {
        let mut files: Vec<_> = std::fs::read_dir(&source)
            .expect("source dir")
            .map(|e| e.expect("entry").path())
            .collect();
        files.sort();
        for file in files {
            for l in read_lines(&file) {
                let e = parse_event(l.as_bytes(), &limits).expect("generated events parse");
                let Some((h, m)) = truth.get(&e.event_id) else {
                    continue;
                };
                facts
                    .entry(h.clone())
                    .or_default()
                    .push(e.into_fact(h.clone(), m.clone()));
            }
        }
    }
    let mut scenarios = HashMap::new();
    for l in read_lines(&dir.path().join("truth").join("scenarios.jsonl")) {
        let v: serde_json::Value = serde_json::from_str(&l).expect("scenario line");
        let ids = v["event_ids"]
            .as_array()
            .expect("event ids")
            .iter()
            .filter_map(|i| i.as_str().map(str::to_string))
            .collect();
        scenarios.insert(
            v["household_id"].as_str().expect("id").to_string(),
            (v["scenario"].as_str().expect("kind").to_string(), ids),
        );
    }
    let tz = FixedOffset::east_opt(8 * 3600).expect("UTC+8");
    let end = start
        .checked_add_months(chrono::Months::new(12))
        .expect("end")
        .and_hms_opt(0, 0, 0)
        .expect("midnight")
        .and_local_timezone(tz)
        .single()
        .expect("unambiguous")
        - TimeDelta::seconds(1);
    Dataset {
        register,
        facts,
        scenarios,
        as_of: end,
        _dir: dir,
    }
}
