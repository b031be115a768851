//! Linkage at register scale: a register of about 1,000,000 members (`DOUDI_LINKAGE_MEMBERS` to
//! change it), feed records with the realistic noise mix (synthetic feeds of the register's first
//! households, whose register is a prefix of the big one, plus outsiders), linked on one core.
//!
//! `cargo bench --bench linkage`; quick run: `DOUDI_LINKAGE_MEMBERS=100000 cargo bench --bench linkage`.
//! Prints the index's heap bytes per member, build and training times, and records linked per
//! second; criterion then measures linking all records.

use std::collections::HashMap;
use std::time::Instant;

use chrono::NaiveDate;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use doudi_linkage::{train, Linker, Outcome, RegisterIndex, Thresholds};
use doudi_model::{parse_event, ParseLimits, Subject};
use doudi_synth::{GenConfig, Noise};

fn config(households: usize) -> GenConfig {
    GenConfig {
        households,
        seed: 5,
        start: NaiveDate::from_ymd_opt(2025, 11, 1).expect("date"),
        months: 12,
        hardship_share: 0.05,
        noise: Noise::default(),
    }
}

/// Subjects of the feeds of the first `households` households (noise and outsiders included),
/// each with the member it is really about (`None` for outsiders).
fn subjects(households: usize) -> Vec<(Subject, Option<String>)> {
    let dir = tempfile::tempdir().expect("temp dir");
    doudi_synth::write_dataset(dir.path(), &config(households), &mut |_| {}).expect("generate");
    let truth: HashMap<String, Option<String>> =
        std::fs::read_to_string(dir.path().join("truth").join("events.jsonl"))
            .expect("truth")
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .map(|v| {
                (
                    v["event_id"].as_str().unwrap_or("").to_string(),
                    v["member_id"].as_str().map(str::to_string),
                )
            })
            .collect();
    let limits = ParseLimits::default();
    let mut out = Vec::new();
    for source in std::fs::read_dir(dir.path().join("feeds")).expect("feeds") {
        for file in std::fs::read_dir(source.expect("entry").path()).expect("source") {
            let text = std::fs::read(file.expect("file").path()).expect("read");
            for line in text.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
                if let Ok(e) = parse_event(line, &limits) {
                    let who = truth.get(&e.event_id).cloned().flatten();
                    out.push((e.subject, who));
                }
            }
        }
    }
    out
}

fn benches(c: &mut Criterion) {
    let members_wanted: usize = std::env::var("DOUDI_LINKAGE_MEMBERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    // about 2.2 members per household
    let households = (members_wanted * 10 / 22).max(100);
    let t = Instant::now();
    let register = doudi_synth::generate_register(&config(households));
    let members: usize = register.iter().map(|h| h.members.len()).sum();
    println!(
        "register: {households} households, {members} members, generated in {:.1?}",
        t.elapsed()
    );
    let t = Instant::now();
    let index = RegisterIndex::build(&register);
    let built = t.elapsed();
    drop(register);
    let bytes = index.heap_bytes();
    println!(
        "index: built in {built:.1?}, {bytes} heap bytes = {:.1} bytes per member",
        bytes as f64 / index.len() as f64
    );

    let feed_households = (households / 20).clamp(100, 20_000);
    let labelled = subjects(feed_households);
    let records: Vec<Subject> = labelled.iter().map(|(s, _)| s.clone()).collect();
    println!(
        "records: {} (feeds of the first {feed_households} households, default noise)",
        records.len()
    );
    let t = Instant::now();
    let train_on = &records[..records.len().min(20_000)];
    let model = train(&index, train_on, 30).expect("a usable model");
    println!(
        "trained on {} records in {:.1?}: {} ({})",
        train_on.len(),
        t.elapsed(),
        model.version,
        model.method
    );
    let linker = Linker::new(index, model, Thresholds::default());

    let t = Instant::now();
    let decisions: Vec<_> = records.iter().map(|s| linker.link(s)).collect();
    let secs = t.elapsed().as_secs_f64();
    let mut counts = [0usize; 3];
    let (mut right, mut wrong, mut of_members, mut outsiders, mut outsiders_linked) =
        (0usize, 0usize, 0usize, 0usize, 0usize);
    for (d, (_, who)) in decisions.iter().zip(&labelled) {
        match d.outcome {
            Outcome::Linked => counts[0] += 1,
            Outcome::Review => counts[1] += 1,
            Outcome::Unmatched => counts[2] += 1,
        }
        match who {
            Some(m) => {
                of_members += 1;
                if d.outcome == Outcome::Linked {
                    if d.member_id.as_ref() == Some(m) {
                        right += 1;
                    } else {
                        wrong += 1;
                    }
                }
            }
            None => {
                outsiders += 1;
                outsiders_linked += usize::from(d.outcome == Outcome::Linked);
            }
        }
    }
    println!(
        "linked {} records in {secs:.3} s on one core: {:.0} records/s (linked {}, review {}, \
         unmatched {})",
        records.len(),
        records.len() as f64 / secs,
        counts[0],
        counts[1],
        counts[2]
    );
    println!(
        "accuracy vs truth: precision {:.5}, recall {:.5} over {of_members} member records; \
         outsiders linked {outsiders_linked}/{outsiders}; review share {:.5}",
        right as f64 / (right + wrong).max(1) as f64,
        right as f64 / of_members.max(1) as f64,
        counts[1] as f64 / records.len().max(1) as f64
    );
    let t = Instant::now();
    let json: usize = records
        .iter()
        .map(|s| {
            serde_json::to_string(&linker.link(s).evidence)
                .map(|j| j.len())
                .unwrap_or(0)
        })
        .sum();
    println!(
        "with evidence as JSON: {:.0} records/s, {:.0} bytes of evidence per record",
        records.len() as f64 / t.elapsed().as_secs_f64(),
        json as f64 / records.len() as f64
    );

    let mut g = c.benchmark_group("linkage");
    g.sample_size(10);
    g.throughput(Throughput::Elements(records.len() as u64));
    g.bench_function(
        format!("link {} records vs {members} members", records.len()),
        |b| {
            b.iter(|| {
                records
                    .iter()
                    .filter(|s| linker.link(s).outcome == Outcome::Linked)
                    .count()
            })
        },
    );
    g.finish();
}

criterion_group!(linkage, benches);
criterion_main!(linkage);
