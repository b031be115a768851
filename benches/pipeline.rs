//! End-to-end load benchmark: generate a register and feeds, import the register, and run the
//! whole pipeline once over the feeds on the embedded default (SQLite), as `doudi run --once` does.
//! Prints events per second for each phase.
//!
//! ```sh
//! cargo bench --bench pipeline                              # 100,000 households
//! DOUDI_BENCH_HOUSEHOLDS=20000 cargo bench --bench pipeline  # smaller
//! ```
//! Then the same year as the departments export it (`gen --native`), run the same way through the
//! shipped feed profiles: once the CSV layouts (GB18030, GBK, UTF-8), once the Excel layouts, each
//! into a fresh store, in rows/s (a row is an event).
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

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` passes nothing: run small then.
    let benching = support::benching();
    let households = support::env(
        "DOUDI_BENCH_HOUSEHOLDS",
        if benching { 100_000 } else { 500 },
    ) as usize;
    support::runtime().block_on(bench(households));
}

async fn bench(households: usize) {
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
    report("run --once (end to end)", events, "events", elapsed);
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
        "  database size after the run: {:.0} MiB",
        db_bytes as f64 / 1048576.0
    );
    store.close().await;

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
}

fn report(phase: &str, n: usize, unit: &str, elapsed: Duration) {
    println!(
        "{phase:<26} {n:>9} {unit:<10} {:>8.2} s {:>10.0} {unit}/s",
        elapsed.as_secs_f64(),
        n as f64 / elapsed.as_secs_f64()
    );
}
