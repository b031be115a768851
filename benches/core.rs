//! Criterion benches of the pure core: parsing an event, linking a record, assessing a household.
//! `cargo bench --bench core`

mod support;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use doudi_linkage::RegisterIndex;
use doudi_model::{parse_event, Fact, ParseLimits};
use doudi_risk::{assess, derive_state, RuleSet};
use doudi_synth::GenConfig;

fn dataset() -> (tempfile::TempDir, GenConfig) {
    let dir = tempfile::tempdir().expect("temp dir");
    let cfg = support::config(2000, 3, 12, 0.05);
    doudi_synth::write_dataset(dir.path(), &cfg, &mut |_| {}).expect("generate");
    (dir, cfg)
}

fn lines(dir: &std::path::Path) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    for source in std::fs::read_dir(dir.join("feeds")).expect("feeds") {
        for file in std::fs::read_dir(source.expect("entry").path()).expect("source") {
            let text = std::fs::read(file.expect("file").path()).expect("read");
            out.extend(
                text.split(|b| *b == b'\n')
                    .filter(|l| !l.is_empty())
                    .map(<[u8]>::to_vec),
            );
        }
    }
    out
}

fn benches(c: &mut Criterion) {
    let (dir, cfg) = dataset();
    let raw = lines(dir.path());
    let limits = ParseLimits::default();
    let events: Vec<_> = raw
        .iter()
        .filter_map(|l| parse_event(l, &limits).ok())
        .collect();
    let register = doudi_synth::generate_register(&cfg);
    let index = RegisterIndex::build(&register);
    let rules = RuleSet::builtin();

    let mut g = c.benchmark_group("core");
    g.throughput(Throughput::Elements(raw.len() as u64));
    g.bench_function("parse_event (all feed lines)", |b| {
        b.iter(|| {
            raw.iter()
                .filter(|l| parse_event(l, &limits).is_ok())
                .count()
        })
    });
    g.bench_function("link exact id (all events)", |b| {
        b.iter(|| {
            events
                .iter()
                .filter(|e| index.link(&e.subject).outcome == doudi_linkage::Outcome::Linked)
                .count()
        })
    });
    g.finish();

    // Assess the household with the longest timeline after each of its facts.
    let by_id: std::collections::HashMap<_, _> = register
        .iter()
        .map(|h| (h.household_id.clone(), h))
        .collect();
    let mut timelines: std::collections::HashMap<String, Vec<Fact>> = Default::default();
    for e in &events {
        let d = index.link(&e.subject);
        if let (Some(h), Some(m)) = (d.household_id, d.member_id) {
            let fact = e.clone().into_fact(h.clone(), m);
            timelines.entry(h).or_default().push(fact);
        }
    }
    let (hh, facts) = timelines
        .iter()
        .max_by_key(|(_, f)| f.len())
        .expect("some timeline");
    let household = by_id[hh];
    let as_of = facts.iter().map(|f| f.occurred_at).max().expect("facts");
    let mut g = c.benchmark_group("risk");
    g.throughput(Throughput::Elements(1));
    g.bench_function(
        format!("derive_state + assess ({} facts)", facts.len()),
        |b| b.iter(|| assess(&rules, household, &derive_state(household, facts, as_of))),
    );
    // Realistic households: every household of the register with its year of linked facts,
    // assessed as of the end of the window (most have a few routine facts, a few a hardship).
    let end = events.iter().map(|e| e.occurred_at).max().expect("events");
    let none = Vec::new();
    let rows: Vec<_> = register
        .iter()
        .map(|h| (h, timelines.get(&h.household_id).unwrap_or(&none)))
        .collect();
    let n_facts: usize = rows.iter().map(|(_, f)| f.len()).sum();
    g.throughput(Throughput::Elements(rows.len() as u64));
    g.bench_function(
        format!(
            "assessments/s: derive_state + assess, {} households, {:.1} facts each",
            rows.len(),
            n_facts as f64 / rows.len() as f64
        ),
        |b| {
            b.iter(|| {
                rows.iter()
                    .map(|(h, f)| assess(&rules, h, &derive_state(h, f, end)).score)
                    .sum::<i64>()
            })
        },
    );
    g.finish();
}

criterion_group!(core, benches);
criterion_main!(core);
