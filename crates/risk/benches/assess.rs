//! Assessments per second on realistic households: every household of a generated dataset, with
//! its whole year of facts (perfect linkage), derived and assessed as of the end of the window.
//! `cargo bench -p doudi-risk --bench assess`

use chrono::{DateTime, FixedOffset};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use doudi_model::{Fact, Household};
use doudi_risk::{assess, derive_state, RuleSet};
use doudi_synth::Noise;

#[path = "../tests/common/mod.rs"]
mod common;

fn households() -> (Vec<(Household, Vec<Fact>)>, DateTime<FixedOffset>) {
    let mut d = common::generate_with(2000, 5, 0.05, Noise::none());
    for f in d.facts.values_mut() {
        f.sort_by(|a, b| (a.occurred_at, &a.event_id).cmp(&(b.occurred_at, &b.event_id)));
    }
    let rows = std::mem::take(&mut d.register)
        .into_iter()
        .map(|h| {
            let f = d.facts.remove(&h.household_id).unwrap_or_default();
            (h, f)
        })
        .collect();
    (rows, d.as_of)
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
