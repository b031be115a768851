//! Generate a small dataset, run one night's cross-check on it and write the report:
//! `cargo run -p doudi-crosscheck --example night -- OUT_DIR [HOUSEHOLDS]`.

use std::path::PathBuf;

use doudi_crosscheck::{reconcile, run, snapshot_as_of, write_report, CheckConfig, LogProgress};
use doudi_model::Household;
use doudi_synth::{write_dataset, GenConfig};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let out = PathBuf::from(args.next().ok_or("usage: night OUT_DIR [HOUSEHOLDS]")?);
    let households = args.next().map(|s| s.parse()).transpose()?.unwrap_or(2000);
    let data = out.join("data");
    let cfg = GenConfig {
        households,
        months: 1,
        ..GenConfig::default()
    };
    write_dataset(&data, &cfg, &mut |_| {})?;
    let register: Vec<Household> = std::fs::read_to_string(data.join("register.jsonl"))?
        .lines()
        .map(serde_json::from_str)
        .collect::<Result<_, _>>()?;
    let snaps = data.join("snapshots");
    let as_of = snapshot_as_of(&snaps)?.ok_or("no manifest.json")?;
    let progress = LogProgress::new(std::io::stderr());
    let result = run(&register, &snaps, &CheckConfig::default(), as_of, &progress)?;
    let rec = reconcile(&[], &result.findings, as_of);
    let files = write_report(&out.join("report"), &result, Some(&rec))?;
    println!(
        "{} findings, exit code {}; report in {}",
        result.findings.len(),
        result.exit_code(),
        files.html.display()
    );
    Ok(())
}
