//! Scale benchmark of the nightly cross-check: a register of about 1,000,000 members against about
//! 10,000,000 snapshot rows.
//!
//! `cargo bench -p doudi-crosscheck --bench scale`. Environment:
//! - `DOUDI_SCALE_DIR`: where the register and snapshots are generated (kept and reused when
//!   present); default a temporary directory removed afterwards;
//! - `DOUDI_SCALE_MEMBERS` (default 1000000) and `DOUDI_SCALE_ROWS` (default 10000000);
//! - `DOUDI_SCALE_THREADS`: worker threads (default all cores).
//!
//! Generation is timed apart. The run is measured in a child process (this executable again with
//! `DOUDI_SCALE_PHASE=run`) so that its peak RSS (`VmHWM`) counts the run alone: loading the
//! register from `register.jsonl`, indexing, reading every snapshot and judging. The child also
//! checks the findings against the planted truth.

use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use doudi_crosscheck::{run_with, snapshot_as_of, CheckConfig, NoProgress, RunOptions};
use doudi_model::{Household, Money};
use doudi_synth::snapshots::{write_snapshots, SnapshotConfig};
use doudi_synth::{generate_register, GenConfig};

#[path = "../tests/support/mod.rs"]
mod support;

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.replace('_', "").parse().ok())
        .unwrap_or(default)
}

fn status_kib(field: &str) -> u64 {
    fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

fn generate(dir: &Path, members: usize, rows: usize) {
    let t = Instant::now();
    let base = GenConfig::default();
    let sample = generate_register(&GenConfig {
        households: 10_000,
        ..base.clone()
    });
    let avg = sample.iter().map(|h| h.members.len()).sum::<usize>() as f64 / sample.len() as f64;
    let n = (members as f64 / avg * 1.03) as usize + 100;
    let mut register = generate_register(&GenConfig {
        households: n,
        ..base
    });
    let mut count = 0;
    let keep = register
        .iter()
        .position(|h| {
            count += h.members.len();
            count >= members
        })
        .map_or(register.len(), |i| i + 1);
    register.truncate(keep);
    let total_members: usize = register.iter().map(|h| h.members.len()).sum();
    fs::create_dir_all(dir).unwrap();
    let mut w = std::io::BufWriter::new(fs::File::create(dir.join("register.jsonl")).unwrap());
    for h in &register {
        serde_json::to_writer(&mut w, h).unwrap();
        w.write_all(b"\n").unwrap();
    }
    w.flush().unwrap();

    // Choose the months of payment rolls so that the snapshots hold about `rows` rows.
    let paid: usize = register
        .iter()
        .filter(|h| h.monthly_benefit > Money::ZERO)
        .map(|h| h.members.len())
        .sum();
    let employed: usize = register
        .iter()
        .flat_map(|h| &h.members)
        .filter(|m| m.employed)
        .count();
    let outsiders = 0.1;
    let wage_months = 12usize;
    let fixed = total_members as f64 * (1.0 + outsiders * 2.5)
        + (employed as f64 + total_members as f64 * outsiders * 0.6) * wage_months as f64;
    let per_month = paid as f64 + total_members as f64 * outsiders * 0.3;
    let payment_months = (((rows as f64 - fixed) / per_month).round() as u32).clamp(2, 36);
    let cfg = SnapshotConfig {
        seed: 1,
        payment_months,
        wage_months: wage_months as u32,
        plant_rate: 0.002,
        outsiders,
        ..SnapshotConfig::default()
    };
    let summary = write_snapshots(dir, &register, &cfg).unwrap();
    println!(
        "generated {} households, {} members, {} snapshot rows in {} files ({} months of payments) in {:.1} s",
        register.len(),
        total_members,
        summary.total_rows(),
        summary.rows.len(),
        payment_months,
        t.elapsed().as_secs_f64()
    );
}

fn run_phase(dir: &Path) {
    let t0 = Instant::now();
    let f = BufReader::new(fs::File::open(dir.join("register.jsonl")).unwrap());
    let register: Vec<Household> = f
        .lines()
        .map(|l| serde_json::from_str(&l.unwrap()).unwrap())
        .collect();
    let load_s = t0.elapsed().as_secs_f64();
    let rss_register = status_kib("VmRSS:");
    let snaps = dir.join("snapshots");
    let as_of = snapshot_as_of(&snaps).unwrap().unwrap();
    let opts = RunOptions {
        threads: std::env::var("DOUDI_SCALE_THREADS")
            .ok()
            .and_then(|v| v.parse().ok()),
        ..RunOptions::default()
    };
    let t1 = Instant::now();
    let result = run_with(
        &register,
        &snaps,
        &CheckConfig::default(),
        as_of,
        &NoProgress,
        &opts,
    )
    .unwrap();
    let run_s = t1.elapsed().as_secs_f64();
    let rows: u64 = result.files.iter().map(|f| f.rows + f.bad_rows).sum();
    let bytes: u64 = result.files.iter().map(|f| f.bytes).sum();
    let hwm = status_kib("VmHWM:");

    let truth = support::read_truth(&dir.join("truth/findings.jsonl"));
    let found = support::keys(&result.findings);
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    println!(
        "register: {} households, {} members, loaded in {:.1} s (RSS {:.0} MiB)",
        result.register_households,
        result.register_members,
        load_s,
        rss_register as f64 / 1024.0
    );
    println!(
        "crosscheck: {rows} rows ({:.0} MiB) in {} files, {:.1} s wall ({:.0} rows/s; index {} ms, read {} ms, checks {} ms) on {cores} cores",
        bytes as f64 / (1 << 20) as f64,
        result.files.len(),
        run_s,
        rows as f64 / run_s,
        result.timings.index_ms,
        result.timings.read_ms,
        result.timings.checks_ms
    );
    println!(
        "findings: {} (truth {}, equal: {}); peak RSS (VmHWM) {:.0} MiB including the register",
        found.len(),
        truth.len(),
        found == truth,
        hwm as f64 / 1024.0
    );
    assert_eq!(found, truth, "findings differ from the planted truth");
}

fn main() {
    if std::env::var("DOUDI_SCALE_PHASE").as_deref() == Ok("run") {
        let dir = PathBuf::from(std::env::var("DOUDI_SCALE_DIR").unwrap());
        run_phase(&dir);
        return;
    }
    let members = env_usize("DOUDI_SCALE_MEMBERS", 1_000_000);
    let rows = env_usize("DOUDI_SCALE_ROWS", 10_000_000);
    let (dir, _tmp) = match std::env::var("DOUDI_SCALE_DIR") {
        Ok(d) => (PathBuf::from(d), None),
        Err(_) => {
            let t = tempfile::tempdir().unwrap();
            (t.path().to_path_buf(), Some(t))
        }
    };
    if dir.join("snapshots/manifest.json").exists() && dir.join("register.jsonl").exists() {
        println!("reusing {}", dir.display());
    } else {
        generate(&dir, members, rows);
    }
    let exe = std::env::current_exe().unwrap();
    let status = Command::new(exe)
        .env("DOUDI_SCALE_PHASE", "run")
        .env("DOUDI_SCALE_DIR", &dir)
        .status()
        .unwrap();
    assert!(status.success(), "the run phase failed");
}
