use std::collections::HashSet;
use std::fs::File;
use std::io::BufReader;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;
use doudi_model::Household;

use super::open_store;
use crate::{output, Config};

/// Largest accepted register line (one household with its members).
const MAX_LINE: usize = 1024 * 1024;
/// How many problems to print before summarising.
const SHOW_PROBLEMS: usize = 20;

#[derive(Debug, Args)]
#[command(after_help = "\
The file holds one household per line (schemas/register/household.schema.json). Importing again applies additions, changes and removals: a household missing from the file is marked removed (never deleted) unless --no-removals is given; every version is kept in the register history. If any line is invalid, nothing is imported and every problem is listed with its line number.")]
pub struct ImportArgs {
    /// Register file (JSONL, one household per line).
    pub file: PathBuf,
    /// Apply additions and changes only; keep households that are not in the file.
    #[arg(long)]
    pub no_removals: bool,
}

/// Parse a register file; on any bad line return every problem (line number and what is wrong).
pub fn read_register(path: &Path) -> anyhow::Result<Result<Vec<Household>, Vec<String>>> {
    let file = File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let size = file.metadata().map(|m| m.len()).unwrap_or(0);
    let bar = output::bar(size, "reading register");
    let mut reader = BufReader::with_capacity(256 * 1024, file);
    let mut households = Vec::new();
    let mut problems = Vec::new();
    let mut ids = HashSet::new();
    let mut member_ids = HashSet::new();
    let mut buf = Vec::new();
    let mut line_no = 0u64;
    while let Some(read) =
        doudi_pipeline::files::read_capped_line(&mut reader, MAX_LINE + 1, &mut buf)
            .with_context(|| format!("cannot read {}", path.display()))?
    {
        line_no += 1;
        bar.inc(read.consumed);
        if read.full_len > MAX_LINE as u64 {
            problems.push(format!(
                "line {line_no}: {} bytes, over the limit of {MAX_LINE} bytes for one household",
                read.full_len
            ));
            continue;
        }
        if buf.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let text = match std::str::from_utf8(&buf) {
            Ok(t) => t,
            Err(e) => {
                problems.push(format!(
                    "line {line_no}: not valid UTF-8 (first bad byte at offset {})",
                    e.valid_up_to()
                ));
                continue;
            }
        };
        let household: Household = match serde_json::from_str(text) {
            Ok(h) => h,
            Err(e) => {
                let msg = e.to_string();
                let msg = match msg.rsplit_once(" at line 1 column ") {
                    Some((m, col)) => format!("{m} (column {col})"),
                    None => msg,
                };
                problems.push(format!("line {line_no}: {msg}"));
                continue;
            }
        };
        if let Err(e) = household.validate() {
            problems.push(format!(
                "line {line_no} (household {}): {e}",
                household.household_id
            ));
            continue;
        }
        if !ids.insert(household.household_id.clone()) {
            problems.push(format!(
                "line {line_no}: household {} appears twice in the file",
                household.household_id
            ));
            continue;
        }
        if let Some(m) = household
            .members
            .iter()
            .find(|m| !member_ids.insert(m.member_id.clone()))
        {
            problems.push(format!(
                "line {line_no}: member {} also appears in another household of the file",
                m.member_id
            ));
            continue;
        }
        households.push(household);
    }
    bar.finish_and_clear();
    if problems.is_empty() {
        Ok(Ok(households))
    } else {
        Ok(Err(problems))
    }
}

pub async fn run(config: &Config, args: ImportArgs) -> anyhow::Result<ExitCode> {
    let households = match read_register(&args.file)? {
        Ok(h) => h,
        Err(problems) => {
            eprintln!(
                "error: {} has {} invalid line(s); nothing was imported. Fix them and import again:",
                args.file.display(),
                problems.len()
            );
            for p in problems.iter().take(SHOW_PROBLEMS) {
                eprintln!("  {p}");
            }
            if problems.len() > SHOW_PROBLEMS {
                eprintln!("  … and {} more", problems.len() - SHOW_PROBLEMS);
            }
            return Ok(ExitCode::from(2));
        }
    };
    let store = open_store(config).await?;
    let report = import_households(&store, &households, &args.file, !args.no_removals).await?;
    println!(
        "imported {} households from {}: {} added, {} changed, {} restored, {} removed, {} unchanged",
        households.len(),
        args.file.display(),
        report.added,
        report.changed,
        report.restored,
        report.removed,
        report.unchanged
    );
    store.close().await;
    Ok(ExitCode::SUCCESS)
}

pub async fn import_households(
    store: &doudi_store::Store,
    households: &[Household],
    file: &Path,
    full_snapshot: bool,
) -> anyhow::Result<doudi_store::ImportReport> {
    store
        .import_register(households, &file.display().to_string(), full_snapshot)
        .await
        .context("register import failed; nothing was changed")
}
