//! Assessments per second on realistic households: every household of a generated dataset, with
//! its whole year of facts (perfect linkage), derived and assessed as of the end of the window.
//! `cargo bench -p doudi-risk --bench assess`

use chrono::{DateTime, FixedOffset, NaiveDate, TimeDelta};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use doudi_model::{parse_event, Fact, Household, ParseLimits};
use doudi_risk::{assess, derive_state, RuleSet};
use doudi_synth::{GenConfig, Noise};
use std::collections::HashMap;

fn households() -> (Vec<(Household, Vec<Fact>)>, DateTime<FixedOffset>) {
    let dir = tempfile::tempdir().expect("temp dir");
    let start = NaiveDate::from_ymd_opt(2026, 1, 1).expect("date");
    let cfg = GenConfig {
        households: 2000,
        seed: 5,
        start,
        months: 12,
        hardship_share: 0.05,
        noise: Noise::none(),
    };
    doudi_synth::write_dataset(dir.path(), &cfg, &mut |_| {}).expect("generate");
    let register = doudi_synth::generate_register(&cfg);
    let mut truth: HashMap<String, (String, String)> = HashMap::new();
    let text = std::fs::read_to_string(dir.path().join("truth/events.jsonl")).expect("truth");
    for l in text.lines() {
        let v: serde_json::Value = serde_json::from_str(l).expect("json");
        if let (Some(e), Some(h), Some(m)) = (
            v["event_id"].as_str(),
            v["household_id"].as_str(),
            v["member_id"].as_str(),
        ) {
            truth.insert(e.into(), (h.into(), m.into()));
        }
    }
    let mut facts: HashMap<String, Vec<Fact>> = HashMap::new();
    let limits = ParseLimits::default();
    for source in std::fs::read_dir(dir.path().join("feeds")).expect("feeds") {
        for file in std::fs::read_dir(source.expect("entry").path()).expect("dir") {
            let text = std::fs::read_to_string(file.expect("file").path()).expect("read");
            for l in text.lines() {
                let e = parse_event(l.as_bytes(), &limits).expect("event");
                if let Some((h, m)) = truth.get(&e.event_id) {
                    facts
                        .entry(h.clone())
                        .or_default()
                        .push(e.into_fact(h.clone(), m.clone()));
                }
            }
        }
    }
    for f in facts.values_mut() {
        f.sort_by(|a, b| (a.occurred_at, &a.event_id).cmp(&(b.occurred_at, &b.event_id)));
    }
    let tz = FixedOffset::east_opt(8 * 3600).expect("tz");
    let as_of = NaiveDate::from_ymd_opt(2027, 1, 1)
        .expect("date")
        .and_hms_opt(0, 0, 0)
        .expect("time")
        .and_local_timezone(tz)
        .single()
        .expect("time")
        - TimeDelta::seconds(1);
    let rows = register
        .into_iter()
        .map(|h| {
            let f = facts.remove(&h.household_id).unwrap_or_default();
            (h, f)
        })
        .collect();
    (rows, as_of)
}

fn bench(c: &mut Criterion) {
    let (rows, as_of) = households();
    let rules = RuleSet::builtin();
    let facts: usize = rows.iter().map(|(_, f)| f.len()).sum();
    let mut g = c.benchmark_group("risk");
    g.throughput(Throughput::Elements(rows.len() as u64));
    g.bench_function(
        format!(
            "derive_state + assess, {} households ({:.1} facts each)",
            rows.len(),
            facts as f64 / rows.len() as f64
        ),
        |b| {
            b.iter(|| {
                rows.iter()
                    .map(|(h, f)| assess(&rules, h, &derive_state(h, f, as_of)).score)
                    .sum::<i64>()
            })
        },
    );
    let (h, f) = rows
        .iter()
        .max_by_key(|(_, f)| f.len())
        .expect("some household");
    g.throughput(Throughput::Elements(1));
    g.bench_function(
        format!(
            "derive_state + assess, longest timeline ({} facts)",
            f.len()
        ),
        |b| b.iter(|| assess(&rules, h, &derive_state(h, f, as_of))),
    );
    g.finish();

    // The machine may be shared: also count per CPU-second of this thread (one core).
    if let Some(t0) = thread_cpu_ticks() {
        let mut n = 0u64;
        let mut sink = 0i64;
        loop {
            for (h, f) in &rows {
                sink = sink.wrapping_add(assess(&rules, h, &derive_state(h, f, as_of)).score);
            }
            n += rows.len() as u64;
            if let Some(t) = thread_cpu_ticks() {
                if t - t0 >= 500 {
                    let secs = (t - t0) as f64 / 100.0;
                    println!(
                        "risk/assessments per CPU-second of one core: {:.0} ({n} in {secs:.2} s CPU; checksum {sink})",
                        n as f64 / secs
                    );
                    break;
                }
            }
        }
    }
}

/// User + system CPU time of this thread in clock ticks (1/100 s on Linux), if readable.
fn thread_cpu_ticks() -> Option<u64> {
    let stat = std::fs::read_to_string("/proc/thread-self/stat").ok()?;
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split(' ').collect();
    // fields after the command: state is 3rd overall, utime 14th, stime 15th
    Some(f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?)
}

criterion_group!(benches, bench);
criterion_main!(benches);
