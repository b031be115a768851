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
    let file = File::open(path).with_context(|| output::cannot("打开", "open", path))?;
    let size = file.metadata().map(|m| m.len()).unwrap_or(0);
    let bar = output::bar(size, crate::lang::t("读取低保名册", "reading register"));
    let mut reader = BufReader::with_capacity(256 * 1024, file);
    let mut households = Vec::new();
    let mut problems = Vec::new();
    let mut ids = HashSet::new();
    let mut member_ids = HashSet::new();
    let mut buf = Vec::new();
    let mut line_no = 0u64;
    while let Some(read) =
        doudi_pipeline::files::read_capped_line(&mut reader, MAX_LINE + 1, &mut buf)
            .with_context(|| output::cannot("读取", "read", path))?
    {
        line_no += 1;
        bar.inc(read.consumed);
        if read.full_len > MAX_LINE as u64 {
            let len = read.full_len;
            problems.push(tr!(
                "第 {line_no} 行：{len} 字节，超过每户 {MAX_LINE} 字节的上限",
                "line {line_no}: {len} bytes, over the limit of {MAX_LINE} bytes for one household"
            ));
            continue;
        }
        if buf.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let text = match std::str::from_utf8(&buf) {
            Ok(t) => t,
            Err(e) => {
                let at = e.valid_up_to();
                problems.push(tr!(
                    "第 {line_no} 行：不是有效的 UTF-8 编码（第一个错误字节在偏移 {at} 处）",
                    "line {line_no}: not valid UTF-8 (first bad byte at offset {at})"
                ));
                continue;
            }
        };
        let household: Household = match serde_json::from_str(text) {
            Ok(h) => h,
            Err(e) => {
                let msg = output::json_problem(&e);
                problems.push(tr!("第 {line_no} 行：{msg}", "line {line_no}: {msg}"));
                continue;
            }
        };
        if let Err(e) = household.validate() {
            let hh = &household.household_id;
            problems.push(tr!(
                "第 {line_no} 行（户 {hh}）：{e}",
                "line {line_no} (household {hh}): {e}"
            ));
            continue;
        }
        if !ids.insert(household.household_id.clone()) {
            let hh = &household.household_id;
            problems.push(tr!(
                "第 {line_no} 行：户 {hh} 在文件中出现了两次",
                "line {line_no}: household {hh} appears twice in the file"
            ));
            continue;
        }
        if let Some(m) = household
            .members
            .iter()
            .find(|m| !member_ids.insert(m.member_id.clone()))
        {
            let member = &m.member_id;
            problems.push(tr!(
                "第 {line_no} 行：成员 {member} 也出现在文件中的另一户",
                "line {line_no}: member {member} also appears in another household of the file"
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
        Err(problems) => return Ok(output::nothing_imported(&args.file, &problems)),
    };
    let store = open_store(config).await?;
    let report = import_households(&store, &households, &args.file, !args.no_removals).await?;
    let (n, file) = (households.len(), args.file.display());
    let (added, changed, restored) = (report.added, report.changed, report.restored);
    let (removed, unchanged) = (report.removed, report.unchanged);
    say!(
        "从 {file} 导入 {n} 户：新增 {added}，变更 {changed}，恢复 {restored}，移出 {removed}，未变 {unchanged}",
        "imported {n} households from {file}: {added} added, {changed} changed, {restored} restored, {removed} removed, {unchanged} unchanged"
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
        .context(crate::lang::t(
            "低保名册导入失败，未做任何更改",
            "register import failed; nothing was changed",
        ))
}
