use std::collections::HashSet;
use std::fs::File;
use std::hash::{BuildHasher, BuildHasherDefault, Hasher, RandomState};
use std::io::BufReader;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;
use doudi_model::Household;
use indicatif::ProgressBar;

use super::open_store;
use crate::{output, Config};

/// Largest accepted register line (one household with its members).
const MAX_LINE: usize = 1024 * 1024;

/// Problems of a refused file kept to be shown (the others are only counted).
const KEEP_PROBLEMS: usize = 1000;

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

/// Ids seen in a file, each kept as a 128-bit key (two SipHash-1-3 hashes under random keys):
/// 16 bytes whatever the id's length. Two different ids share a key with probability about
/// n²/2¹²⁹ (for 10 million ids, under 10⁻²⁴), and no file can be made to collide on purpose.
struct IdSet {
    keys: HashSet<u128, BuildHasherDefault<KeyHasher>>,
    high: RandomState,
    low: RandomState,
}

impl IdSet {
    fn new() -> IdSet {
        IdSet {
            keys: HashSet::default(),
            high: RandomState::new(),
            low: RandomState::new(),
        }
    }

    fn key(&self, id: &str) -> u128 {
        (u128::from(self.high.hash_one(id)) << 64) | u128::from(self.low.hash_one(id))
    }

    /// Add `id`; false when it was there already.
    fn insert(&mut self, id: &str) -> bool {
        let key = self.key(id);
        self.keys.insert(key)
    }

    fn contains(&self, id: &str) -> bool {
        self.keys.contains(&self.key(id))
    }
}

/// The hash of an [`IdSet`] key is the key's low half (already a hash).
#[derive(Default)]
struct KeyHasher(u64);

impl Hasher for KeyHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(*b);
        }
    }

    fn write_u128(&mut self, key: u128) {
        self.0 = key as u64;
    }
}

/// A register file read a line at a time, every line checked: JSON, the household's own rules,
/// a household or a member listed twice. Of the households read it keeps only keys of their ids
/// ([`IdSet`]), and of the problems the first [`KEEP_PROBLEMS`] and how many there are.
pub struct RegisterReader {
    path: PathBuf,
    reader: BufReader<File>,
    bar: ProgressBar,
    buf: Vec<u8>,
    line_no: u64,
    households: IdSet,
    members: IdSet,
    /// Households read without a problem.
    good: u64,
    problems: Vec<String>,
    problem_count: usize,
}

impl RegisterReader {
    pub fn open(path: &Path) -> anyhow::Result<RegisterReader> {
        let file = File::open(path).with_context(|| output::cannot("打开", "open", path))?;
        let size = file.metadata().map(|m| m.len()).unwrap_or(0);
        Ok(RegisterReader {
            path: path.to_path_buf(),
            reader: BufReader::with_capacity(256 * 1024, file),
            bar: output::bar(size, crate::lang::t("读取低保名册", "reading register")),
            buf: Vec::new(),
            line_no: 0,
            households: IdSet::new(),
            members: IdSet::new(),
            good: 0,
            problems: Vec::new(),
            problem_count: 0,
        })
    }

    /// Read the file to its end, giving `each` its households `chunk` at a time while no line has
    /// had a problem (the chunk in which the first problem is found is not given; the lines after
    /// it are only checked). Stops early, returning false, when `each` returns false or `stop`
    /// says so (looked at every thousand lines).
    pub fn read_chunks(
        &mut self,
        chunk: usize,
        mut each: impl FnMut(Vec<Household>) -> bool,
        stop: impl Fn() -> bool,
    ) -> anyhow::Result<bool> {
        let read = self.read_all(chunk.max(1), &mut each, &stop);
        self.bar.finish_and_clear();
        read
    }

    fn read_all(
        &mut self,
        chunk: usize,
        each: &mut impl FnMut(Vec<Household>) -> bool,
        stop: &impl Fn() -> bool,
    ) -> anyhow::Result<bool> {
        let mut held = Vec::with_capacity(chunk.min(100_000));
        for n in 0u64.. {
            if n % 1024 == 0 && stop() {
                return Ok(false);
            }
            let Some(household) = self.next_household()? else {
                break;
            };
            if self.problem_count > 0 {
                held.clear();
                continue;
            }
            held.push(household);
            if held.len() == chunk {
                let full = std::mem::replace(&mut held, Vec::with_capacity(chunk.min(100_000)));
                if !each(full) {
                    return Ok(false);
                }
            }
        }
        Ok(self.problem_count > 0 || held.is_empty() || each(held))
    }

    /// The next household without a problem (the problems of the lines before it recorded); none
    /// at the end of the file.
    fn next_household(&mut self) -> anyhow::Result<Option<Household>> {
        loop {
            let Some(read) = doudi_pipeline::files::read_capped_line(
                &mut self.reader,
                MAX_LINE + 1,
                &mut self.buf,
            )
            .with_context(|| output::cannot("读取", "read", &self.path))?
            else {
                return Ok(None);
            };
            self.line_no += 1;
            let line_no = self.line_no;
            self.bar.inc(read.consumed);
            if read.full_len > MAX_LINE as u64 {
                let len = read.full_len;
                self.problem(tr!(
                    "第 {line_no} 行：{len} 字节，超过每户 {MAX_LINE} 字节的上限",
                    "line {line_no}: {len} bytes, over the limit of {MAX_LINE} bytes for one household"
                ));
                continue;
            }
            if self.buf.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            let text = match std::str::from_utf8(&self.buf) {
                Ok(t) => t,
                Err(e) => {
                    let at = e.valid_up_to();
                    self.problem(tr!(
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
                    self.problem(tr!("第 {line_no} 行：{msg}", "line {line_no}: {msg}"));
                    continue;
                }
            };
            if let Err(e) = household.validate() {
                let hh = &household.household_id;
                self.problem(tr!(
                    "第 {line_no} 行（户 {hh}）：{e}",
                    "line {line_no} (household {hh}): {e}"
                ));
                continue;
            }
            if !self.households.insert(&household.household_id) {
                let hh = &household.household_id;
                self.problem(tr!(
                    "第 {line_no} 行：户 {hh} 在文件中出现了两次",
                    "line {line_no}: household {hh} appears twice in the file"
                ));
                continue;
            }
            let members = &mut self.members;
            if let Some(m) = household
                .members
                .iter()
                .find(|m| !members.insert(&m.member_id))
            {
                let member = &m.member_id;
                self.problem(tr!(
                    "第 {line_no} 行：成员 {member} 也出现在文件中的另一户",
                    "line {line_no}: member {member} also appears in another household of the file"
                ));
                continue;
            }
            self.good += 1;
            return Ok(Some(household));
        }
    }

    fn problem(&mut self, message: String) {
        self.problem_count += 1;
        if self.problems.len() < KEEP_PROBLEMS {
            self.problems.push(message);
        }
    }

    /// Whether the file lists this household (among the lines read so far).
    fn lists(&self, household_id: &str) -> bool {
        self.households.contains(household_id)
    }
}

/// Parse a register file; on any bad line return its problems (line number and what is wrong;
/// the first [`KEEP_PROBLEMS`]). Holds the whole file: for small files (`doudi demo`).
pub fn read_register(path: &Path) -> anyhow::Result<Result<Vec<Household>, Vec<String>>> {
    let mut reader = RegisterReader::open(path)?;
    let mut households = Vec::new();
    reader.read_chunks(
        4096,
        |chunk| {
            households.extend(chunk);
            true
        },
        || false,
    )?;
    if reader.problem_count == 0 {
        Ok(Ok(households))
    } else {
        Ok(Err(reader.problems))
    }
}

fn import_failed() -> &'static str {
    crate::lang::t(
        "低保名册导入失败，未做任何更改",
        "register import failed; nothing was changed",
    )
}

/// Open the store and start the import (when the first chunk of the file is found good, so that
/// a file with a problem early on never touches the database).
async fn begin(
    config: &Config,
    file: &Path,
    full_snapshot: bool,
) -> anyhow::Result<(doudi_store::Store, doudi_store::RegisterImport)> {
    let store = open_store(config).await?;
    let import = store
        .begin_register_import(&file.display().to_string(), full_snapshot)
        .await
        .context(import_failed())?;
    Ok((store, import))
}

/// Import the file a chunk of `memory.import_households` at a time, in one transaction: a
/// thread reads and checks the file while the chunks before are written; a problem anywhere
/// (or any error) rolls everything back.
pub async fn run(config: &Config, args: ImportArgs) -> anyhow::Result<ExitCode> {
    let full_snapshot = !args.no_removals;
    let chunk = config.memory.import_households;
    let mut reader = RegisterReader::open(&args.file)?;
    // One chunk waits while one is written and the next is read: three in hand at most.
    let (send, mut chunks) = tokio::sync::mpsc::channel::<Vec<Household>>(1);
    let reading = tokio::task::spawn_blocking(move || {
        let read = reader.read_chunks(
            chunk,
            |households| send.blocking_send(households).is_ok(),
            || send.is_closed(),
        );
        (reader, read)
    });
    let mut import: Option<(doudi_store::Store, doudi_store::RegisterImport)> = None;
    let written: anyhow::Result<()> = async {
        while let Some(households) = chunks.recv().await {
            if import.is_none() {
                import = Some(begin(config, &args.file, full_snapshot).await?);
            }
            if let Some((_, started)) = import.as_mut() {
                started.write(&households).await.context(import_failed())?;
            }
            tracing::debug!(households = households.len(), "register chunk written");
        }
        Ok(())
    }
    .await;
    // A reader still going stops at its next chunk (or thousand lines).
    drop(chunks);
    let (reader, read) = match reading.await {
        Ok(done) => done,
        Err(e) => match e.try_into_panic() {
            Ok(panic) => std::panic::resume_unwind(panic),
            Err(e) => anyhow::bail!("the register reader was cancelled: {e}"),
        },
    };
    if let Err(e) = written.and(read) {
        if let Some((store, started)) = import {
            if let Err(e) = started.rollback().await {
                tracing::debug!(error = %e, "rolling back the register import");
            }
            store.close().await;
        }
        return Err(e);
    }
    if reader.problem_count > 0 {
        if let Some((store, started)) = import {
            started.rollback().await.context(import_failed())?;
            store.close().await;
        }
        return Ok(output::refused(
            &args.file,
            &reader.problems,
            reader.problem_count,
        ));
    }
    let (store, started) = match import {
        Some(started) => started,
        None => begin(config, &args.file, full_snapshot).await?,
    };
    let report = started
        .finish(|id| reader.lists(id))
        .await
        .context(import_failed())?;
    let (n, file) = (reader.good, args.file.display());
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
        .context(import_failed())
}
