//! `doudi crosscheck`: the nightly comparison of the register against full department snapshots.

use std::collections::{BTreeMap, HashMap};
use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Mutex;

use anyhow::Context;
use chrono::NaiveDate;
use clap::Args;
use doudi_crosscheck::{
    reconcile_checks, Finding, Flow, Progress, Reconciliation, RunOptions, RunResult, StoredFinding,
};
use doudi_store::{CrosscheckRunRow, FindingRow, NightChanges};
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};

use super::open_store;
use crate::Config;

#[derive(Debug, Args)]
#[command(after_help = "\
Reads every snapshot file in DIR (death.csv, hukou.csv, vehicles.csv, properties.csv, companies.csv, wages.csv, payments.csv, or .jsonl; schemas in schemas/snapshots/), compares them with the register, and records the night's findings: new ones are opened and routed to the officer of the household's township with a deadline (category eligibility review, never an automatic cut); findings still true are kept (no duplicates on a re-run); findings no longer true close themselves with a note.

The register file: on a SQLite store the night reads the register from a compact binary copy kept beside the database (DB-crosscheck-register, made readable by its owner only), made by the first night after each change to the register and used only while the register is the one it was made from (its version and import); a file of another register, of another format or damaged (every part is hashed) is never used: the night then reads the register from the database and makes the file again. On PostgreSQL, and with --no-register-file, the register is read from the database. Deleting the file is always safe.

Exit codes (for cron): 0 all checks ran on clean snapshots; 3 all checks ran but bad rows were skipped (listed in the report with file and line); 4 some checks could not run (a snapshot missing or unreadable: their open findings are left as they were); 1 the run failed.

Example (cron at 2 a.m.): doudi crosscheck --snapshots /data/snapshots/$(date +%F) --out /srv/reports/$(date +%F)")]
pub struct CrosscheckArgs {
    /// Folder of snapshot files (one file per kind; CSV with a header row, or JSONL).
    #[arg(long, value_name = "DIR")]
    pub snapshots: PathBuf,
    /// Write findings.json, findings.csv and report.html here.
    #[arg(long, value_name = "REPORT_DIR")]
    pub out: Option<PathBuf>,
    /// The night the snapshots describe (default: DIR/manifest.json's as_of, else today).
    #[arg(long, value_name = "YYYY-MM-DD")]
    pub as_of: Option<NaiveDate>,
    /// Keep checkpoints here, so that an interrupted run resumes (default: DIR/.doudi-work if
    /// writable, otherwise none).
    #[arg(long, value_name = "DIR")]
    pub work_dir: Option<PathBuf>,
    /// Print the night's summary as JSON.
    #[arg(long)]
    pub json: bool,
    /// Read the register from the database tonight, and neither use nor keep the register file
    /// beside a SQLite store (see below).
    #[arg(long)]
    pub no_register_file: bool,
}

/// Where checkpoints go: `--work-dir`, else `DIR/.doudi-work` when it can be made and written
/// (a read-only snapshot mount gets none: the night then runs without resuming, and says so).
fn work_dir(args: &CrosscheckArgs) -> Option<PathBuf> {
    if let Some(dir) = &args.work_dir {
        return Some(dir.clone());
    }
    let dir = args.snapshots.join(".doudi-work");
    let probe = dir.join(".probe");
    match std::fs::create_dir_all(&dir).and_then(|()| std::fs::write(&probe, b"")) {
        Ok(()) => {
            let _ = std::fs::remove_file(&probe);
            Some(dir)
        }
        Err(e) => {
            tracing::warn!(dir = %dir.display(), error = %e, "no checkpoints tonight: the default work directory cannot be written (pass --work-dir DIR to resume an interrupted run)");
            None
        }
    }
}

pub async fn run(config: &Config, args: CrosscheckArgs) -> anyhow::Result<ExitCode> {
    if !args.snapshots.is_dir() {
        let dir = args.snapshots.display();
        anyhow::bail!(tr!(
            "快照目录 {dir} 不存在（可试 `doudi gen --out DIR`：它会写出 DIR/snapshots/）",
            "snapshot folder {dir} does not exist (try `doudi gen --out DIR`: it writes DIR/snapshots/)"
        ));
    }
    let as_of = match args.as_of {
        Some(d) => d,
        None => doudi_crosscheck::snapshot_as_of(&args.snapshots)?
            .unwrap_or_else(|| chrono::Local::now().date_naive()),
    };
    let store = open_store(config).await?;
    if let Some(last) = store
        .last_crosscheck_night()
        .await?
        .filter(|l| as_of.to_string().as_str() < l.as_str())
    {
        return super::refusal(tr!(
            "{as_of} 早于上次核查的日期（{last}）：重新核查它会关闭此后发现的问题（请用 --as-of {last} 或更晚的日期）",
            "night {as_of} is older than the last night checked ({last}): replaying it would close findings found since (pass --as-of {last} or later)"
        ));
    }
    let loading = std::time::Instant::now();
    let (register, keep) = night_register(&store, args.no_register_file).await?;
    if register.is_empty() {
        anyhow::bail!(tr!(
            "低保名册为空：请先导入（doudi import FILE）",
            "the register is empty: import it first (doudi import FILE)"
        ));
    }
    tracing::info!(
        households = register.len(),
        ms = loading.elapsed().as_millis() as u64,
        "register loaded"
    );
    let directory = doudi_app::engine::directory(&store).await?;
    let started_at = chrono::Utc::now();
    tracing::info!(households = register.len(), night = %as_of, snapshots = %args.snapshots.display(), "cross-check starting");
    // The open findings are read (and decoded) while the snapshots are.
    let open_task = {
        let store = store.clone();
        tokio::spawn(async move { read_open_findings(&store).await })
    };

    let cfg = config.crosscheck.clone();
    let snapshots = args.snapshots.clone();
    let opts = RunOptions {
        work_dir: work_dir(&args),
        ..RunOptions::default()
    };
    let result = tokio::task::spawn_blocking(move || {
        let r = std::thread::scope(|s| {
            // A register read from the database is kept for the next nights, written beside
            // the checks.
            let reg = &register;
            let writer = keep.map(|k| s.spawn(move || k.write(reg)));
            let progress = BarProgress::new();
            let r = doudi_crosscheck::run_with(reg, &snapshots, &cfg, as_of, &progress, &opts);
            progress.finish();
            if let Some(w) = writer {
                w.join().unwrap_or_else(|p| std::panic::resume_unwind(p));
            }
            r
        });
        // Freeing a provincial register (millions of strings) is not on the night's way.
        std::thread::spawn(move || drop(register));
        r
    })
    .await
    .context(crate::lang::t(
        "核查线程中止",
        "the cross-check thread stopped",
    ))?
    .context(crate::lang::t("核查失败", "the cross-check failed"))?;

    // Reconcile with the open findings and record the night.
    let (stored, open) = open_task.await.context(crate::lang::t(
        "读取未关闭的核查发现的任务中止",
        "reading the open findings stopped",
    ))??;
    // A check whose snapshot had bad rows ran on partial data: its findings are reported, but
    // none is closed tonight (the bad row may be the one that still holds it).
    let partial: std::collections::BTreeSet<doudi_crosscheck::snapshot::Kind> = result
        .files
        .iter()
        .filter(|f| f.bad_rows > 0)
        .map(|f| f.kind)
        .collect();
    let ran: std::collections::BTreeSet<doudi_crosscheck::Check> = result
        .checks_run
        .iter()
        .copied()
        .filter(|c| !c.needs().iter().any(|k| partial.contains(k)))
        .collect();
    let held_open: Vec<&'static str> = result
        .checks_run
        .iter()
        .filter(|c| !ran.contains(c))
        .map(|c| c.code())
        .collect();
    let rec = reconcile_checks(&open, &result.findings, as_of, &ran);
    let assigned: HashMap<String, Option<String>> = rec
        .new
        .iter()
        .chain(&rec.still_open)
        .map(|s| {
            (
                s.finding.key.clone(),
                directory
                    .route(&s.finding.region_code)
                    .map(|a| a.officer_id),
            )
        })
        .collect();
    let row = |s: &StoredFinding| -> anyhow::Result<FindingRow> {
        let f = &s.finding;
        Ok(FindingRow {
            key: f.key.clone(),
            check_code: f.check.code().to_string(),
            household_id: f.household_id.clone(),
            member_id: f.member_id.clone(),
            region_code: f.region_code.to_string(),
            category: f.category.clone(),
            amount_fen: f.amount_at_stake.fen(),
            finding: serde_json::to_string(f)?,
            first_seen: s.first_seen.to_string(),
            last_seen: s.last_seen.to_string(),
            deadline: f.deadline.to_string(),
            assigned_to: assigned.get(&f.key).cloned().flatten(),
        })
    };
    // Only what changed is written: a finding found again with the same facts and officer moves
    // its `last_seen` only (nothing at all on a re-run of the same night).
    let before: HashMap<&str, usize> = open
        .iter()
        .enumerate()
        .map(|(i, s)| (s.finding.key.as_str(), i))
        .collect();
    let mut changes = NightChanges {
        opened: rec.new.iter().map(row).collect::<anyhow::Result<_>>()?,
        closed: rec
            .closed
            .iter()
            .map(|c| {
                (
                    c.finding.finding.key.clone(),
                    format!("{} / {}", c.note_zh, c.note_en),
                )
            })
            .collect(),
        ..NightChanges::default()
    };
    for s in &rec.still_open {
        let key = s.finding.key.as_str();
        let same = before.get(key).and_then(|&i| {
            let (old, row) = (&open[i], &stored[i].row);
            let officer = assigned.get(key).cloned().flatten();
            (old.finding == s.finding
                && row.amount_fen == s.finding.amount_at_stake.fen()
                && (officer.is_none() || officer == row.assigned_to))
                .then_some(row.last_seen.as_str())
        });
        match same {
            Some(last_seen) if last_seen == s.last_seen.to_string() => changes.unchanged += 1,
            Some(_) => changes.seen_again.push(key.to_string()),
            None => changes.refreshed.push(row(s)?),
        }
    }
    drop(stored);
    tracing::info!(
        opened = changes.opened.len(),
        refreshed = changes.refreshed.len(),
        seen_again = changes.seen_again.len(),
        unchanged = changes.unchanged,
        closed = changes.closed.len(),
        "storing the night"
    );
    let rows_read: u64 = result.files.iter().map(|f| f.rows).sum();
    let run_row = CrosscheckRunRow {
        night: as_of.to_string(),
        snapshots: args.snapshots.display().to_string(),
        started_at: started_at.to_rfc3339(),
        rows_read: rows_read as i64,
        bad_rows: result.bad_row_count as i64,
    };
    // The report is written (under temporary names) while the night is stored, and put in place
    // once it is recorded.
    let result = std::sync::Arc::new(result);
    let rec = std::sync::Arc::new(rec);
    let staging = args.out.clone().map(|dir| {
        let (result, rec) = (std::sync::Arc::clone(&result), std::sync::Arc::clone(&rec));
        tokio::task::spawn_blocking(move || {
            doudi_crosscheck::stage_report(&dir, &result, Some(&rec)).with_context(|| {
                let d = dir.display();
                tr!("无法把报告写入 {d}", "cannot write the report into {d}")
            })
        })
    });
    let recorded = store.record_crosscheck(&run_row, &changes).await;
    store.close().await;
    let staged = match staging {
        Some(task) => Some(task.await.context(crate::lang::t(
            "写报告的线程中止",
            "the report thread stopped",
        ))?),
        None => None,
    };
    let run_id = match recorded {
        Ok(id) => id,
        Err(e) => {
            if let Some(Ok(s)) = staged {
                s.discard();
            }
            return Err(e.into());
        }
    };
    let report = match staged {
        Some(s) => Some(s?.commit().with_context(|| {
            let d = args
                .out
                .as_deref()
                .unwrap_or(std::path::Path::new(""))
                .display();
            tr!("无法把报告写入 {d}", "cannot write the report into {d}")
        })?),
        None => None,
    };
    let (result, rec) = (&*result, &*rec);
    let unassigned = assigned.values().filter(|a| a.is_none()).count();
    if !held_open.is_empty() {
        tracing::warn!(checks = ?held_open, "findings of checks with bad snapshot rows were not closed tonight");
        let checks = held_open.join(", ");
        eprintln!(
            "{}",
            tr!(
                "注意：快照中有错误行，因此今晚未关闭 {checks} 的任何发现",
                "note: snapshots had bad rows, so no finding of {checks} was closed tonight"
            )
        );
    }
    if unassigned > 0 {
        tracing::warn!(unassigned, "findings in regions no officer covers (import the officer directory: doudi officers import FILE)");
    }
    if args.json {
        let mut summary = summary_json(run_id, result, rec, unassigned, report.as_ref());
        summary["not_closed_tonight"] = serde_json::json!(held_open);
        println!("{}", serde_json::to_string_pretty(&summary)?);
    } else {
        print_summary(run_id, result, rec, unassigned, report.as_ref());
    }
    Ok(ExitCode::from(
        u8::try_from(result.exit_code()).unwrap_or(1),
    ))
}

/// The open findings as stored, and decoded (in the same order).
async fn read_open_findings(
    store: &doudi_store::Store,
) -> anyhow::Result<(Vec<doudi_store::StoredFinding>, Vec<StoredFinding>)> {
    let stored = store.open_findings().await?;
    tokio::task::spawn_blocking(move || {
        let open = stored
            .iter()
            .map(|s| {
                Ok(StoredFinding {
                    finding: serde_json::from_str::<Finding>(&s.row.finding)
                        .with_context(|| unreadable(&s.row.key, "finding"))?,
                    first_seen: s
                        .row
                        .first_seen
                        .parse()
                        .with_context(|| unreadable(&s.row.key, "first_seen"))?,
                    last_seen: s
                        .row
                        .last_seen
                        .parse()
                        .with_context(|| unreadable(&s.row.key, "last_seen"))?,
                })
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        Ok((stored, open))
    })
    .await
    .context(crate::lang::t(
        "读取未关闭的核查发现的线程中止",
        "the thread reading the open findings stopped",
    ))?
}

/// The register file of a store's register: where, and the register's stamp.
struct KeepRegister {
    path: PathBuf,
    stamp: String,
}

impl KeepRegister {
    /// Write the file (under a temporary name, then renamed over the old one, readable by its
    /// owner only). A failure only costs the next night the time of reading the database.
    fn write(&self, register: &[doudi_model::Household]) {
        let t = std::time::Instant::now();
        let Some(name) = self.path.file_name() else {
            return;
        };
        let tmp = self.path.with_file_name(format!(
            ".{}.{}.tmp",
            name.to_string_lossy(),
            std::process::id()
        ));
        let written = doudi_crosscheck::register_file::encode(register, &self.stamp)
            .map_err(anyhow::Error::from)
            .and_then(|bytes| {
                let _ = std::fs::remove_file(&tmp);
                let mut options = std::fs::OpenOptions::new();
                options.write(true).create_new(true);
                #[cfg(unix)]
                std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
                let mut f = options.open(&tmp)?;
                std::io::Write::write_all(&mut f, &bytes)?;
                drop(f);
                std::fs::rename(&tmp, &self.path)?;
                Ok(bytes.len())
            });
        match written {
            Ok(bytes) => tracing::info!(
                file = %self.path.display(),
                bytes,
                ms = t.elapsed().as_millis() as u64,
                "register file written for the next nights"
            ),
            Err(e) => {
                let _ = std::fs::remove_file(&tmp);
                tracing::warn!(file = %self.path.display(), error = %e, "cannot keep the register file (the next night reads the register from the database)");
            }
        }
    }
}

/// The register for the night: from the register file beside a SQLite store when it was made
/// from the register as it stands, else from the database (with, when a file can be kept, what
/// to write it with).
async fn night_register(
    store: &doudi_store::Store,
    no_file: bool,
) -> anyhow::Result<(Vec<doudi_model::Household>, Option<KeepRegister>)> {
    let path = if no_file {
        None
    } else {
        store.sqlite_file().map(|db| {
            let mut name = db.file_name().unwrap_or_default().to_os_string();
            name.push("-crosscheck-register");
            db.with_file_name(name)
        })
    };
    let Some(path) = path else {
        return Ok((super::load_register(store).await?, None));
    };
    let stamp = store.register_stamp().await?;
    if let Some(stamp) = &stamp {
        let t = std::time::Instant::now();
        match std::fs::read(&path) {
            Ok(bytes) => {
                let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
                let stamp = stamp.clone();
                let decoded = tokio::task::spawn_blocking(move || {
                    doudi_crosscheck::register_file::decode(&bytes, &stamp, threads)
                })
                .await
                .context(crate::lang::t(
                    "读取名册文件的线程中止",
                    "the thread reading the register file stopped",
                ))?;
                match decoded {
                    Ok(register) => {
                        tracing::info!(file = %path.display(), households = register.len(), ms = t.elapsed().as_millis() as u64, "register read from the register file");
                        return Ok((register, None));
                    }
                    Err(e) => {
                        tracing::info!(file = %path.display(), reason = %e, "register file not used: reading the register from the database, and keeping a new file");
                    }
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                tracing::info!(file = %path.display(), "no register file yet: reading the register from the database, and keeping one");
            }
            Err(e) => {
                tracing::warn!(file = %path.display(), error = %e, "cannot read the register file: reading the register from the database");
            }
        }
    }
    let register = store.load_register().await.context(crate::lang::t(
        "无法加载低保名册",
        "cannot load the register",
    ))?;
    // Kept only when no import changed the register while it was read.
    let after = store.register_stamp().await?;
    let keep = match (stamp, after) {
        (Some(s), Some(a)) if s == a => Some(KeepRegister { path, stamp: s }),
        _ => None,
    };
    Ok((register, keep))
}

/// A stored finding that does not read back (`what`: the finding itself or one of its fields).
fn unreadable(key: &str, what: &str) -> String {
    match what {
        "finding" => tr!(
            "保存的核查发现 {key} 无法读取",
            "stored finding {key} is unreadable"
        ),
        field => tr!(
            "保存的核查发现 {key} 的 {field} 无效",
            "stored finding {key} has a bad {field}"
        ),
    }
}

fn by_check(rec: &Reconciliation) -> BTreeMap<&'static str, (u64, i64)> {
    let mut m: BTreeMap<&'static str, (u64, i64)> = BTreeMap::new();
    for s in rec.new.iter().chain(&rec.still_open) {
        let e = m.entry(s.finding.check.code()).or_default();
        e.0 += 1;
        e.1 += s.finding.amount_at_stake.fen();
    }
    m
}

fn summary_json(
    run_id: i64,
    result: &RunResult,
    rec: &Reconciliation,
    unassigned: usize,
    report: Option<&doudi_crosscheck::ReportFiles>,
) -> serde_json::Value {
    serde_json::json!({
        "run_id": run_id,
        "night": result.as_of,
        "rows_read": result.files.iter().map(|f| f.rows).sum::<u64>(),
        "bad_rows": result.bad_row_count,
        "bad_rows_by_file": result.bad_rows_by_file(),
        "checks_run": result.checks_run,
        "checks_skipped": result.checks_skipped,
        "new": rec.new.len(),
        "still_open": rec.still_open.len(),
        "closed": rec.closed.len(),
        "unassigned": unassigned,
        "by_check": by_check(rec).into_iter().map(|(k, (n, fen))| (k, serde_json::json!({"findings": n, "amount_at_stake_fen": fen}))).collect::<BTreeMap<_, _>>(),
        "timings_ms": result.timings,
        "exit_code": result.exit_code(),
        "report": report.map(|r| serde_json::json!({"json": r.json, "csv": r.csv, "html": r.html})),
    })
}

fn print_summary(
    run_id: i64,
    result: &RunResult,
    rec: &Reconciliation,
    unassigned: usize,
    report: Option<&doudi_crosscheck::ReportFiles>,
) {
    let rows: u64 = result.files.iter().map(|f| f.rows).sum();
    let (night, secs) = (result.as_of, result.timings.total_ms as f64 / 1000.0);
    let bad = result.bad_row_count;
    say!(
        "{night} 的核查（第 #{run_id} 次）：快照 {rows} 行，用时 {secs:.1} 秒，错误行 {bad} 行",
        "cross-check of {night} (run #{run_id}): {rows} snapshot rows in {secs:.1} s, {bad} bad rows"
    );
    let (new, still, closed) = (rec.new.len(), rec.still_open.len(), rec.closed.len());
    let nobody = if unassigned > 0 {
        tr!(
            "，其中 {unassigned} 条所在辖区没有责任干部",
            ", {unassigned} in regions no officer covers"
        )
    } else {
        String::new()
    };
    say!(
        "核查发现：新增 {new}，仍未关闭 {still}，已关闭（情况已不存在）{closed}{nobody}",
        "findings: {new} new, {still} still open, {closed} closed (no longer true){nobody}"
    );
    for (check, (n, fen)) in by_check(rec) {
        let yuan = fen as f64 / 100.0;
        say!(
            "  {check:<28} {n:>6}   涉及金额 {yuan:>14.2} 元",
            "  {check:<28} {n:>6}   at stake {yuan:>14.2} yuan"
        );
    }
    for (check, why) in &result.checks_skipped {
        say!("  跳过 {check}：{why}", "  skipped {check}: {why}");
    }
    for b in result.bad_rows.iter().take(10) {
        let (file, line, reason) = (&b.file, b.line, &b.reason);
        say!(
            "  错误行 {file}:{line}：{reason}",
            "  bad row {file}:{line}: {reason}"
        );
    }
    if bad > 10 {
        say!(
            "  ……共 {bad} 行错误（见报告）",
            "  … {bad} bad rows in all (see the report)"
        );
    }
    if let Some(r) = report {
        let (html, json, csv) = (r.html.display(), r.json.display(), r.csv.display());
        say!(
            "报告：{html}（另有 {json} 和 {csv}）",
            "report: {html} (also {json} and {csv})"
        );
    }
}

/// Byte bars per file on a terminal; otherwise a log line per file and one every 5 s.
struct BarProgress {
    terminal: bool,
    multi: MultiProgress,
    bars: Mutex<HashMap<String, ProgressBar>>,
    /// Bytes read in all, and when the last progress line was logged.
    logged: Mutex<(u64, std::time::Instant)>,
}

impl BarProgress {
    fn new() -> Self {
        BarProgress {
            terminal: std::io::stderr().is_terminal(),
            multi: MultiProgress::new(),
            bars: Mutex::new(HashMap::new()),
            logged: Mutex::new((0, std::time::Instant::now())),
        }
    }

    fn finish(&self) {
        if let Ok(bars) = self.bars.lock() {
            for b in bars.values() {
                b.finish_and_clear();
            }
        }
    }

    fn bar(&self, file: &str) -> Option<ProgressBar> {
        self.bars.lock().ok().and_then(|b| b.get(file).cloned())
    }
}

impl Progress for BarProgress {
    fn start_file(&self, file: &str, bytes: u64) {
        if !self.terminal {
            tracing::info!(file, bytes, "reading snapshot");
            return;
        }
        let bar = self.multi.add(ProgressBar::new(bytes));
        bar.set_style(
            ProgressStyle::with_template(crate::lang::t(
                "{msg:24} [{bar:40}] {bytes}/{total_bytes}（{bytes_per_sec}，剩余 {eta}）",
                "{msg:24} [{bar:40}] {bytes}/{total_bytes} ({bytes_per_sec}, {eta} left)",
            ))
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
        );
        bar.set_message(file.to_string());
        if let Ok(mut bars) = self.bars.lock() {
            bars.insert(file.to_string(), bar);
        }
    }

    fn advance(&self, file: &str, bytes: u64, _rows: u64) -> Flow {
        if self.terminal {
            if let Some(b) = self.bar(file) {
                b.inc(bytes);
            }
        } else if let Ok(mut g) = self.logged.lock() {
            g.0 += bytes;
            if g.1.elapsed() >= std::time::Duration::from_secs(5) {
                g.1 = std::time::Instant::now();
                tracing::info!(bytes_read = g.0, "cross-check progress");
            }
        }
        Flow::Continue
    }

    fn finish_file(&self, file: &str, rows: u64, resumed: bool) {
        if !self.terminal {
            tracing::info!(file, rows, resumed, "snapshot read");
            return;
        }
        if let Some(b) = self.bar(file) {
            let resumed = if resumed {
                crate::lang::t("，续读", ", resumed")
            } else {
                ""
            };
            b.finish_with_message(tr!(
                "{file}（{rows} 行{resumed}）",
                "{file} ({rows} rows{resumed})"
            ));
        }
    }

    fn stage(&self, what: &str) {
        tracing::info!("cross-check: {what}");
    }
}
