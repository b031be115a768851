//! End-to-end load benchmark: generate a register and feeds, import the register, and run the
//! whole pipeline once over the feeds on the embedded default (SQLite), as `doudi run --once` does.
//! Prints events per second for each phase, at each register size asked for, with the run's peak
//! memory, then how far apart the sizes' rates are (issue 24: the cost of an event must not grow
//! with the register).
//!
//! ```sh
//! cargo bench --bench pipeline                                     # 20,000, 100,000, 450,000 households
//! DOUDI_BENCH_HOUSEHOLDS=100000 cargo bench --bench pipeline        # one size
//! DOUDI_BENCH_HOUSEHOLDS=20000,100000 cargo bench --bench pipeline  # several, in the order given
//! ```
//! Then, at the first size, the same year as the departments export it (`gen --native`), run the
//! same way through the shipped feed profiles: once the CSV layouts (GB18030, GBK, UTF-8), once the
//! Excel layouts, each into a fresh store, in rows/s (a row is an event).
//!
//! A benchmark, not a test: nothing here asserts a speed.

mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use doudi_pipeline::{run_files, RunOptions};
use doudi_store::Store;

// The same allocator as the `doudi` binary, so that the figures are the binary's.
#[cfg(all(target_os = "linux", not(target_env = "musl")))]
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// The register sizes `cargo bench` runs by default.
const SIZES: [usize; 3] = [20_000, 100_000, 450_000];

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` passes nothing: run small then.
    let sizes = match std::env::var("DOUDI_BENCH_HOUSEHOLDS") {
        Ok(v) => v
            .split(',')
            .map(|n| {
                n.trim()
                    .parse()
                    .expect("DOUDI_BENCH_HOUSEHOLDS: sizes, comma-separated")
            })
            .collect(),
        Err(_) if support::benching() => SIZES.to_vec(),
        Err(_) => vec![500],
    };
    support::runtime().block_on(async {
        let mut rates = Vec::new();
        for (i, &households) in sizes.iter().enumerate() {
            rates.push((households, bench(households, i == 0).await));
        }
        if rates.len() > 1 {
            let (lo, hi) = rates
                .iter()
                .fold((f64::MAX, 0f64), |(lo, hi), &(_, r)| (lo.min(r), hi.max(r)));
            println!("\nrun --once events/s by register size:");
            for (households, rate) in &rates {
                println!("  {households:>9} households {rate:>10.0} events/s");
            }
            println!(
                "  slowest {:.1}% below the fastest (aim: within 10%)",
                (hi - lo) / hi * 100.0
            );
        }
    });
}

/// One register size: generate, import, run once (and, with `native`, the department exports).
/// Returns the run's events per second.
async fn bench(households: usize, native: bool) -> f64 {
    println!("\n{households} households");
    // Peak memory from here on (Linux: 5 resets the peak resident set).
    let _ = std::fs::write("/proc/self/clear_refs", "5");
    let dir = tempfile::tempdir().expect("temp dir");
    let cfg = support::config(households, 1, 12, 0.05);
    let t = Instant::now();
    let summary = doudi_synth::write_dataset(dir.path(), &cfg, &mut |_| {}).expect("generate");
    let events: usize = summary.events.values().sum();
    report("generate", households, "households", t.elapsed());

    let url = support::sqlite(dir.path(), "bench.db");
    let store = Store::open(&url).await.expect("open store");
    let register = doudi_synth::generate_register(&cfg);
    let t = Instant::now();
    store
        .import_register(&register, "register.jsonl", true)
        .await
        .expect("import");
    report("import register", households, "households", t.elapsed());

    let engine = Arc::new(support::engine(&store).await);
    let opts = support::run_options(dir.path().join("feeds"));
    let t = Instant::now();
    let run = support::run_once(&store, engine, &opts).await;
    let elapsed = t.elapsed();
    assert_eq!(
        run.received as usize, events,
        "every generated event was read"
    );
    let rate = report("run --once (end to end)", events, "events", elapsed);
    println!(
        "  {} linked, {} unmatched, {} warnings opened, {} batches",
        run.linked, run.unmatched, run.warnings_opened, run.batches
    );
    let db_bytes: u64 = std::fs::read_dir(dir.path())
        .expect("read dir")
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with("bench.db"))
        .filter_map(|e| e.metadata().ok())
        .map(|m| m.len())
        .sum();
    println!(
        "  database size after the run: {:.0} MiB; peak memory (generate, import, run): {}",
        db_bytes as f64 / 1048576.0,
        peak_memory().map_or("unknown".to_string(), |kib| format!(
            "{:.0} MiB",
            kib as f64 / 1024.0
        ))
    );
    store.close().await;
    if !native {
        return rate;
    }

    // The native exports, by file format, each group run alone into a fresh store.
    doudi_synth::native::write_native(dir.path()).expect("write native");
    for (group, pick) in [
        (
            "CSV",
            (|f| matches!(f, doudi_synth::native::NativeFormat::Csv { .. }))
                as fn(doudi_synth::native::NativeFormat) -> bool,
        ),
        ("XLSX", |f| f == doudi_synth::native::NativeFormat::Xlsx),
    ] {
        let feeds = dir.path().join(format!("native-{group}"));
        std::fs::create_dir_all(&feeds).expect("group folder");
        for layout in doudi_synth::native::LAYOUTS
            .iter()
            .filter(|l| pick(l.format))
        {
            // the profile beside the files, as `doudi gen --native` puts it
            std::fs::write(
                dir.path()
                    .join("native")
                    .join(layout.name)
                    .join("profile.toml"),
                doudi_feeds::shipped::text(layout.name).expect("shipped profile"),
            )
            .expect("write profile");
            std::os::unix::fs::symlink(
                dir.path().join("native").join(layout.name),
                feeds.join(layout.name),
            )
            .expect("link layout folder");
        }
        let url = format!(
            "sqlite://{}",
            dir.path().join(format!("bench-{group}.db")).display()
        );
        let store = Store::open(&url).await.expect("open store");
        store
            .import_register(&register, "register.jsonl", true)
            .await
            .expect("import");
        let engine = Arc::new(support::engine(&store).await);
        let opts = RunOptions {
            feeds_dir: feeds,
            ..opts.clone()
        };
        let t = Instant::now();
        let run = run_files(
            &store,
            engine,
            &opts,
            &(),
            doudi_pipeline::driver::CancellationToken::new(),
        )
        .await
        .expect("run native");
        assert_eq!(run.dead_letters, 0, "every native row makes an event");
        report(
            &format!("run --once ({group} exports)"),
            run.received as usize,
            "rows",
            t.elapsed(),
        );
        store.close().await;
    }
    rate
}

/// Print a phase's time and rate; returns the rate.
fn report(phase: &str, n: usize, unit: &str, elapsed: Duration) -> f64 {
    let rate = n as f64 / elapsed.as_secs_f64();
    println!(
        "{phase:<26} {n:>9} {unit:<10} {:>8.2} s {rate:>10.0} {unit}/s",
        elapsed.as_secs_f64(),
    );
    rate
}

/// The process's peak resident set in KiB (Linux `VmHWM`), if known.
fn peak_memory() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}
