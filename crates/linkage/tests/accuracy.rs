//! Linkage accuracy on synthetic feeds at default noise, scored against the generator's truth.

use std::collections::HashMap;
use std::path::Path;

use chrono::NaiveDate;
use doudi_linkage::{train, Linker, Outcome, Query, RegisterIndex, Thresholds};
use doudi_model::{parse_event, Event, Household, ParseLimits};
use doudi_synth::{GenConfig, Noise};
use serde_json::Value;

/// The (household, member) an event is really about (None for outsiders), and its noise labels.
type Truth = (Option<(String, String)>, Vec<String>);

struct Data {
    register: Vec<Household>,
    events: Vec<Event>,
    /// event id → (household id, member id) or None for outsiders; and the noise labels
    truth: HashMap<String, Truth>,
}

fn load(dir: &Path) -> Data {
    let text = |p: &Path| std::fs::read_to_string(p).unwrap();
    let register = text(&dir.join("register.jsonl"))
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let limits = ParseLimits::default();
    let mut events = Vec::new();
    for source in std::fs::read_dir(dir.join("feeds")).unwrap() {
        for f in std::fs::read_dir(source.unwrap().path()).unwrap() {
            for line in text(&f.unwrap().path()).lines() {
                events.push(parse_event(line.as_bytes(), &limits).unwrap());
            }
        }
    }
    let truth = text(&dir.join("truth").join("events.jsonl"))
        .lines()
        .map(|l| {
            let v: Value = serde_json::from_str(l).unwrap();
            let who = match (v["household_id"].as_str(), v["member_id"].as_str()) {
                (Some(h), Some(m)) => Some((h.to_string(), m.to_string())),
                _ => None,
            };
            let noise = v["noise"]
                .as_array()
                .unwrap()
                .iter()
                .map(|n| n.as_str().unwrap().to_string())
                .collect();
            (v["event_id"].as_str().unwrap().to_string(), (who, noise))
        })
        .collect();
    Data {
        register,
        events,
        truth,
    }
}

fn dataset() -> (tempfile::TempDir, Data) {
    let dir = tempfile::tempdir().unwrap();
    let cfg = GenConfig {
        households: 3000,
        seed: 11,
        start: NaiveDate::from_ymd_opt(2025, 7, 1).unwrap(),
        months: 12,
        hardship_share: 0.05,
        noise: Noise::default(),
    };
    doudi_synth::write_dataset(dir.path(), &cfg, &mut |_| {}).unwrap();
    let data = load(dir.path());
    (dir, data)
}

#[derive(Default, Debug)]
struct Score {
    member_records: usize,
    linked_right: usize,
    linked_wrong: usize,
    outsiders: usize,
    outsiders_linked: usize,
    review: usize,
    total: usize,
}

fn score(linker: &Linker, d: &Data) -> Score {
    let mut s = Score::default();
    for e in &d.events {
        let (who, _) = &d.truth[&e.event_id];
        let dec = linker.link(&e.subject);
        s.total += 1;
        if dec.outcome == Outcome::Review {
            s.review += 1;
        }
        match who {
            Some((h, m)) => {
                s.member_records += 1;
                let right = dec.member_id.as_deref() == Some(m);
                if !right && std::env::var_os("DOUDI_EXPLAIN").is_some() {
                    println!(
                        "record of {m} ({:?}):\n{}",
                        d.truth[&e.event_id].1,
                        doudi_linkage::explain(&dec, linker.thresholds())
                    );
                }
                if dec.outcome == Outcome::Linked {
                    if dec.household_id.as_deref() == Some(h) && dec.member_id.as_deref() == Some(m)
                    {
                        s.linked_right += 1;
                    } else {
                        s.linked_wrong += 1;
                    }
                }
            }
            None => {
                s.outsiders += 1;
                if dec.outcome == Outcome::Linked {
                    s.outsiders_linked += 1;
                }
            }
        }
    }
    s
}

fn report(what: &str, s: &Score) -> (f64, f64, f64, f64) {
    let precision = s.linked_right as f64 / (s.linked_right + s.linked_wrong).max(1) as f64;
    let recall = s.linked_right as f64 / s.member_records.max(1) as f64;
    let outsiders = s.outsiders_linked as f64 / s.outsiders.max(1) as f64;
    let review = s.review as f64 / s.total.max(1) as f64;
    println!(
        "{what}: {} records ({} of members, {} outsiders): precision {precision:.5}, recall \
         {recall:.5}, outsiders linked {outsiders:.5}, review {review:.5} ({s:?})",
        s.total, s.member_records, s.outsiders
    );
    (precision, recall, outsiders, review)
}

#[test]
fn linkage_on_noisy_feeds_is_precise_and_complete() {
    let (_dir, d) = dataset();
    let index = RegisterIndex::build(&d.register);
    let subjects: Vec<_> = d.events.iter().map(|e| e.subject.clone()).collect();

    let prior = Linker::with_prior(index.clone());
    report("prior model", &score(&prior, &d));

    let model = train(&index, &subjects, 30).expect("a usable model");
    let again = train(&index, &subjects, 30).expect("a usable model");
    assert_eq!(model, again, "training is deterministic");
    println!(
        "trained model {} ({}), lambda {}",
        model.version, model.method, model.lambda
    );
    for (f, w) in model.fields.iter().zip(model.weights()) {
        let levels: Vec<String> = f
            .levels
            .iter()
            .zip(w)
            .map(|(l, w)| format!("{} {w:+.2}", l.level))
            .collect();
        println!("  {}: {}", f.field, levels.join(", "));
    }
    let linker = Linker::new(index, model, Thresholds::default());
    let s = score(&linker, &d);
    let (precision, recall, outsiders, review) = report("trained model", &s);
    assert!(precision >= 0.999, "precision {precision}");
    assert!(recall >= 0.99, "recall {recall}");
    assert!(outsiders <= 0.001, "outsiders linked {outsiders}");
    assert!(review <= 0.02, "review {review}");
}

#[test]
fn blocking_finds_the_true_member_for_nearly_every_record() {
    let (_dir, d) = dataset();
    let index = RegisterIndex::build(&d.register);
    let by_member: HashMap<&str, u32> = (0..index.len() as u32)
        .map(|i| (index.member_id(i), i))
        .collect();
    let (mut found, mut total, mut compared) = (0usize, 0usize, 0usize);
    let mut by_noise: HashMap<String, (usize, usize)> = HashMap::new();
    let (mut keys, mut cands) = (Vec::new(), Vec::new());
    for e in &d.events {
        let (who, noise) = &d.truth[&e.event_id];
        let Some((_, m)) = who else { continue };
        let want = by_member[m.as_str()];
        let q = Query::new(&e.subject);
        cands.clear();
        index.id_candidates(&q, &mut keys, &mut cands);
        index.other_candidates(&q, Thresholds::default().max_block, &mut cands);
        cands.sort_unstable();
        cands.dedup();
        compared += cands.len();
        total += 1;
        let hit = cands.contains(&want);
        found += usize::from(hit);
        for n in noise {
            let c = by_noise.entry(n.clone()).or_default();
            c.0 += usize::from(hit);
            c.1 += 1;
        }
    }
    let recall = found as f64 / total as f64;
    println!(
        "blocking recall {recall:.5} ({found}/{total}), {:.1} candidates per record; by noise {by_noise:?}",
        compared as f64 / total as f64
    );
    assert!(recall > 0.999, "{recall}");
}

#[test]
fn the_index_is_small_per_member() {
    let cfg = GenConfig {
        households: 4000,
        seed: 2,
        ..GenConfig::default()
    };
    let register = doudi_synth::generate_register(&cfg);
    let index = RegisterIndex::build(&register);
    let per_member = index.heap_bytes() as f64 / index.len() as f64;
    println!(
        "index of {} members: {} heap bytes, {per_member:.1} per member",
        index.len(),
        index.heap_bytes()
    );
    assert!(per_member < 400.0, "{per_member}");
}
