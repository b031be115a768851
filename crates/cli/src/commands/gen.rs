use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use chrono::{Datelike, NaiveDate};
use clap::Args;
use doudi_synth::{GenConfig, Noise};

use crate::output;

#[derive(Debug, Args)]
#[command(after_help = "\
Writes DIR/register.jsonl (the register, one household per line), DIR/officers.jsonl (an officer per township, a supervisor per county), DIR/snapshots/ (nightly department extracts for `doudi crosscheck`), DIR/feeds/<source>/<YYYY-MM>.jsonl (department events) and DIR/truth/ (which member each event is about, which households were given a hardship scenario). The same --seed always writes the same bytes.

Example: doudi gen --households 100000 --seed 1 --out data && doudi import data/register.jsonl")]
pub struct GenArgs {
    /// Number of households in the register.
    #[arg(long, default_value_t = 1000)]
    pub households: usize,
    /// Random seed: the same seed gives the same data.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Output folder (created if missing).
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// Replace data an earlier `gen` wrote in the output folder (its register.jsonl, officers.jsonl, feeds/, snapshots/, truth/).
    #[arg(long)]
    pub force: bool,
    /// First day of the feed window (default: the first of the month a year before today).
    #[arg(long, value_name = "YYYY-MM-DD")]
    pub start: Option<NaiveDate>,
    /// Length of the feed window in months.
    #[arg(long, default_value_t = 12)]
    pub months: u32,
    /// Share of households given a hardship scenario (0 to 1).
    #[arg(long, default_value_t = 0.05)]
    pub hardship_share: f64,
    /// Clean feeds: every record carries the member's exact ID number and name.
    #[arg(long)]
    pub no_noise: bool,
    /// Share of records with one wrong ID digit.
    #[arg(long)]
    pub wrong_digit: Option<f64>,
    /// Share of records with two adjacent ID digits swapped.
    #[arg(long)]
    pub swapped_digits: Option<f64>,
    /// Share of records with a legacy 15-digit ID.
    #[arg(long)]
    pub legacy_15: Option<f64>,
    /// Share of records with no ID number.
    #[arg(long)]
    pub missing_id: Option<f64>,
    /// Share of records with a homophone in the name (张玮 for 张伟).
    #[arg(long)]
    pub homophone_name: Option<f64>,
    /// Share of records with a traditional character in the name.
    #[arg(long)]
    pub traditional_name: Option<f64>,
    /// Share of records about people not in the register.
    #[arg(long)]
    pub outsiders: Option<f64>,
}

impl GenArgs {
    pub fn to_config(&self) -> GenConfig {
        let mut noise = if self.no_noise {
            Noise::none()
        } else {
            Noise::default()
        };
        let set = |slot: &mut f64, v: Option<f64>| {
            if let Some(v) = v {
                *slot = v;
            }
        };
        set(&mut noise.wrong_digit, self.wrong_digit);
        set(&mut noise.swapped_digits, self.swapped_digits);
        set(&mut noise.legacy_15, self.legacy_15);
        set(&mut noise.missing_id, self.missing_id);
        set(&mut noise.homophone_name, self.homophone_name);
        set(&mut noise.traditional_name, self.traditional_name);
        set(&mut noise.outsiders, self.outsiders);
        GenConfig {
            households: self.households,
            seed: self.seed,
            start: self.start.unwrap_or_else(default_start),
            months: self.months,
            hardship_share: self.hardship_share,
            noise,
        }
    }
}

/// The first of the month a year before today, so that the feeds end about now.
pub fn default_start() -> NaiveDate {
    let today = chrono::Local::now().date_naive();
    NaiveDate::from_ymd_opt(today.year() - 1, today.month(), 1).unwrap_or(today)
}

pub fn run(args: GenArgs) -> anyhow::Result<ExitCode> {
    let cfg = args.to_config();
    let earlier: Vec<PathBuf> = [
        "register.jsonl",
        "officers.jsonl",
        "feeds",
        "truth",
        "snapshots",
    ]
    .iter()
    .map(|p| args.out.join(p))
    .filter(|p| p.exists())
    .collect();
    if !earlier.is_empty() {
        if !args.force {
            anyhow::bail!(
                "{} already holds generated data (feed files from another run would mix with the new ones); choose another --out or pass --force to replace it",
                args.out.display()
            );
        }
        for p in earlier {
            let removed = if p.is_dir() {
                std::fs::remove_dir_all(&p)
            } else {
                std::fs::remove_file(&p)
            };
            removed.with_context(|| format!("cannot remove {}", p.display()))?;
        }
    }
    let summary = generate(&args.out, &cfg)?;
    let events: usize = summary.events.values().sum();
    println!(
        "wrote {} households ({} members) and {} events to {}",
        summary.households,
        summary.members,
        events,
        args.out.display()
    );
    for (source, n) in &summary.events {
        println!("  {:<18} {n}", source.code());
    }
    println!("  hardship scenarios: {}", summary.scenarios);
    println!(
        "next: doudi import {} && doudi officers import {}",
        args.out.join("register.jsonl").display(),
        args.out.join("officers.jsonl").display()
    );
    Ok(ExitCode::SUCCESS)
}

pub fn generate(out: &std::path::Path, cfg: &GenConfig) -> anyhow::Result<doudi_synth::GenSummary> {
    let bar = output::bar(cfg.households as u64, "generating households");
    let summary = doudi_synth::write_dataset(out, cfg, &mut |done| bar.set_position(done))
        .with_context(|| format!("cannot generate data into {}", out.display()))?;
    bar.finish_and_clear();
    let officers: String = doudi_synth::officers::officers(cfg.seed)
        .iter()
        .map(|o| format!("{o}\n"))
        .collect();
    let path = out.join("officers.jsonl");
    std::fs::write(&path, officers).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(summary)
}
