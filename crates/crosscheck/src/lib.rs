//! Nightly cross-checks of the low-income register against full department snapshots (防止超发错发).
//!
//! Streams catch what changes; this batch job catches what streams missed and what pays the wrong
//! people. [`run`] reads full extracts (death registry, hukou roll, vehicles, properties, companies,
//! wages, benefit payments; CSV or JSONL, see [`snapshot`] and `schemas/snapshots/`) row by row,
//! keeps only aggregates about the register's own members, and judges each household with the
//! checks of [`Check`]. Findings carry evidence and a stable key, so that [`reconcile`] makes runs
//! idempotent across nights; [`write_report`] writes JSON, CSV and a self-contained HTML report.
//!
//! Memory is bounded by the register, not by the snapshots: the register is indexed by ID number,
//! snapshot files are split into byte ranges at line boundaries and read on every core, and a
//! checkpoint per finished file (in an optional work directory) lets an interrupted run resume.
//!
//! This crate must never: cut or change a payment (every finding is a review for an officer, a
//! rise in income is a 渐退 review with a grace period, never a cut); write an unmasked ID number
//! or name into a finding, report, error, checkpoint or `Debug` output; stop a night's run on a bad
//! row (it is counted and reported with file, line and field); report a check whose snapshot is
//! missing or unreadable (the check is skipped and said so, and [`reconcile_checks`] leaves its
//! open findings alone); or do any I/O beyond the snapshot, work and report directories.

mod aggregate;
mod checks;
pub mod config;
mod finding;
mod index;
mod progress;
mod reader;
pub mod register_file;
mod report;
mod sanitize;
pub mod snapshot;

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Instant, UNIX_EPOCH};

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

use doudi_model::Household;

pub use config::{CheckConfig, CompanyRule, IncomeLine, IncomeRule, PropertyRule, VehicleRule};
pub use finding::{
    reconcile, reconcile_checks, Check, ClosedFinding, Finding, Reconciliation, StoredFinding,
    CATEGORY,
};
pub use progress::{Flow, LogProgress, NoProgress, Progress};
pub use reader::BadRow;
pub use report::{stage_report, write_report, ReportFiles, StagedReport};
pub use snapshot::{Format, Kind, Month};

use aggregate::{Cx, Death, Partial};
use index::{fnv, Index};
use reader::{ChunkOut, FilePlan};
use snapshot::{
    CompanyRecord, DeathRecord, HukouRecord, PaymentRecord, PropertyRecord, VehicleRecord,
    WageRecord,
};

/// Why a run failed. Messages name the file (and line or field where there is one) and never
/// hold personal data.
#[derive(Debug, thiserror::Error)]
pub enum CrosscheckError {
    #[error("invalid cross-check configuration: {0}")]
    Config(String),
    #[error("cannot read {}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot write {}: {source}", path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("snapshot {file}: unusable header row: {reason}")]
    BadHeader { file: String, reason: String },
    #[error("snapshot directory {} holds no snapshot file (<kind>[-...].csv or .jsonl)", .0.display())]
    NoSnapshots(PathBuf),
    #[error("{}: {reason}", path.display())]
    Manifest { path: PathBuf, reason: String },
    #[error("the run was interrupted; files finished so far are checkpointed")]
    Interrupted,
    /// A broken invariant of the reader (a bug, not bad input): the run stops rather than count
    /// a row it did not check.
    #[error(
        "snapshot {file}: internal error: {reason}; the run stopped (files finished before it \
         are checkpointed): please report it with the log"
    )]
    Internal { file: String, reason: String },
}

/// How to run (beyond the configuration of the checks).
#[derive(Clone, Debug)]
pub struct RunOptions {
    /// Where checkpoints are kept; `None`: no resume.
    pub work_dir: Option<PathBuf>,
    /// Worker threads (reading the snapshots, judging); `None`: all cores.
    pub threads: Option<usize>,
    /// Files are read in byte ranges of about this size (at least 64 KiB).
    pub chunk_bytes: u64,
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions {
            work_dir: None,
            threads: None,
            chunk_bytes: 16 << 20,
        }
    }
}

/// What happened to one snapshot file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileReport {
    pub file: String,
    pub kind: Kind,
    pub format: Format,
    pub bytes: u64,
    /// Well-formed rows read.
    pub rows: u64,
    /// Rows about a register member.
    pub matched_rows: u64,
    pub bad_rows: u64,
    /// Taken from a checkpoint of an earlier, interrupted run.
    pub resumed: bool,
    /// Why the whole file was refused (its kind's checks are then skipped).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Wall-clock milliseconds of each step.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Timings {
    pub index_ms: u64,
    pub read_ms: u64,
    pub checks_ms: u64,
    pub total_ms: u64,
}

/// The outcome of a night's run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunResult {
    pub as_of: NaiveDate,
    /// Sorted by key; deterministic for the same register, snapshots and configuration.
    pub findings: Vec<Finding>,
    pub checks_run: BTreeSet<Check>,
    /// Checks not run, with the reason (a snapshot kind missing, empty or unreadable).
    pub checks_skipped: BTreeMap<Check, String>,
    pub files: Vec<FileReport>,
    /// Files in the snapshot directory that are not snapshots (by name).
    pub ignored_files: Vec<String>,
    /// The first bad rows (at most `max_bad_rows_listed`), by file and line.
    pub bad_rows: Vec<BadRow>,
    pub bad_row_count: u64,
    pub register_households: usize,
    pub register_members: usize,
    pub timings: Timings,
}

impl RunResult {
    /// Rows read per file.
    pub fn rows_by_file(&self) -> BTreeMap<&str, u64> {
        self.files
            .iter()
            .map(|f| (f.file.as_str(), f.rows))
            .collect()
    }

    /// Bad rows counted per file.
    pub fn bad_rows_by_file(&self) -> BTreeMap<&str, u64> {
        self.files
            .iter()
            .map(|f| (f.file.as_str(), f.bad_rows))
            .collect()
    }

    /// Process exit code for a cron job: 0 all checks ran on clean snapshots (with or without
    /// findings); 3 all checks ran but bad rows were skipped; 4 some checks could not run (a
    /// snapshot missing, empty or unreadable). Failures of the run itself are the caller's
    /// (conventionally 1).
    pub fn exit_code(&self) -> i32 {
        if !self.checks_skipped.is_empty() {
            4
        } else if self.bad_row_count > 0 {
            3
        } else {
            0
        }
    }
}

/// `DIR/manifest.json`'s `as_of` (the night the snapshots were taken), if the file is there.
pub fn snapshot_as_of(snapshots_dir: &Path) -> Result<Option<NaiveDate>, CrosscheckError> {
    let path = snapshots_dir.join("manifest.json");
    let text = match fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(source) => return Err(CrosscheckError::Io { path, source }),
    };
    #[derive(Deserialize)]
    struct M {
        as_of: NaiveDate,
    }
    serde_json::from_str::<M>(&text)
        .map(|m| Some(m.as_of))
        .map_err(|e| CrosscheckError::Manifest {
            path,
            reason: e.to_string(),
        })
}

/// Run every check of `cfg` for the night `as_of` with default options (all cores, no
/// checkpoints).
pub fn run(
    register: &[Household],
    snapshots_dir: &Path,
    cfg: &CheckConfig,
    as_of: NaiveDate,
    progress: &dyn Progress,
) -> Result<RunResult, CrosscheckError> {
    run_with(
        register,
        snapshots_dir,
        cfg,
        as_of,
        progress,
        &RunOptions::default(),
    )
}

struct Found {
    plan: FilePlan,
    report: FileReport,
}

/// [`run`] with options: a work directory for checkpoints (resume after interruption), threads,
/// chunk size.
pub fn run_with(
    register: &[Household],
    snapshots_dir: &Path,
    cfg: &CheckConfig,
    as_of: NaiveDate,
    progress: &dyn Progress,
    opts: &RunOptions,
) -> Result<RunResult, CrosscheckError> {
    let t0 = Instant::now();
    cfg.validate().map_err(CrosscheckError::Config)?;

    // The snapshot files, by name.
    let entries = fs::read_dir(snapshots_dir).map_err(|source| CrosscheckError::Io {
        path: snapshots_dir.to_path_buf(),
        source,
    })?;
    let mut names = Vec::new();
    for e in entries {
        let e = e.map_err(|source| CrosscheckError::Io {
            path: snapshots_dir.to_path_buf(),
            source,
        })?;
        if e.path().is_file() {
            names.push(e.file_name().to_string_lossy().into_owned());
        }
    }
    names.sort();
    let mut ignored_files = Vec::new();
    let mut found: Vec<Found> = Vec::new();
    let mut refused: Vec<FileReport> = Vec::new();
    for name in names {
        let Some((kind, format)) = snapshot::classify(&name) else {
            if name != "manifest.json" && !name.starts_with('.') {
                ignored_files.push(name);
            }
            continue;
        };
        let path = snapshots_dir.join(&name);
        let mut report = FileReport {
            file: name.clone(),
            kind,
            format,
            bytes: 0,
            rows: 0,
            matched_rows: 0,
            bad_rows: 0,
            resumed: false,
            error: None,
        };
        match reader::plan(&path, &name, kind, format) {
            Ok(plan) => {
                report.bytes = plan.size;
                found.push(Found { plan, report });
            }
            Err(CrosscheckError::BadHeader { reason, .. }) => {
                report.error = Some(reason);
                refused.push(report);
            }
            Err(e) => return Err(e),
        }
    }
    if found.is_empty() && refused.is_empty() {
        return Err(CrosscheckError::NoSnapshots(snapshots_dir.to_path_buf()));
    }

    let threads = opts
        .threads
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get()))
        .clamp(1, 64);
    progress.stage("indexing the register");
    // The register's digest (for the checkpoints) is taken beside the index.
    let (index, digest) = if threads > 1 {
        std::thread::scope(|s| {
            let digest = s.spawn(|| index::digest(register));
            let index = Index::build(register);
            let digest = digest
                .join()
                .unwrap_or_else(|p| std::panic::resume_unwind(p));
            (index, digest)
        })
    } else {
        (Index::build(register), index::digest(register))
    };
    let index_ms = t0.elapsed().as_millis() as u64;

    let cfg_text = serde_json::to_string(cfg).unwrap_or_default();
    let base = format!("v1|{as_of}|{cfg_text}|{digest:x}");
    let wage_window = (
        Month::of(as_of).plus(-(cfg.income.months as i32)),
        cfg.income.months,
    );
    let pool = Pool {
        progress,
        opts,
        threads,
    };

    let t_read = Instant::now();
    // Phase 1: deaths (payments are judged against them).
    let (deaths_files, other_files): (Vec<Found>, Vec<Found>) =
        found.into_iter().partition(|f| f.plan.kind == Kind::Deaths);
    let empty_deaths = BTreeMap::new();
    let empty_dead = BTreeMap::new();
    let cx1 = Cx {
        index: &index,
        cfg,
        as_of,
        wage_window,
        deaths: &empty_deaths,
        all_dead: &empty_dead,
    };
    let fp1 = format!("{:016x}", fnv(base.as_bytes()));
    let (mut total, mut reports, mut bad_rows) = pool.read(deaths_files, &cx1, &fp1)?;

    let deaths: BTreeMap<u32, Death> = total.deaths.clone();
    let mut all_dead: BTreeMap<u32, snapshot::Month> = BTreeMap::new();
    let mut dead_count: BTreeMap<u32, (usize, NaiveDate)> = BTreeMap::new();
    for (&m, d) in &deaths {
        let e = dead_count
            .entry(index.household_of(m))
            .or_insert((0, d.date));
        e.0 += 1;
        e.1 = e.1.max(d.date);
    }
    for (h, (n, last)) in dead_count {
        if n >= register[h as usize].members.len() {
            all_dead.insert(h, Month::of(last));
        }
    }
    let mut deaths_meta = String::new();
    for r in &reports {
        deaths_meta.push_str(&format!(
            "{}|{}|",
            r.file,
            file_stamp(&snapshots_dir.join(&r.file))
        ));
    }
    let fp2 = format!("{:016x}", fnv(format!("{base}|{deaths_meta}").as_bytes()));
    let cx2 = Cx {
        index: &index,
        cfg,
        as_of,
        wage_window,
        deaths: &deaths,
        all_dead: &all_dead,
    };
    // Phase 2: everything else.
    let (p2, r2, b2) = pool.read(other_files, &cx2, &fp2)?;
    total.merge(p2);
    reports.extend(r2);
    bad_rows.extend(b2);
    let read_ms = t_read.elapsed().as_millis() as u64;

    reports.extend(refused);
    reports.sort_by(|a, b| a.file.cmp(&b.file));
    bad_rows.sort();
    let bad_row_count = reports.iter().map(|r| r.bad_rows).sum();
    bad_rows.truncate(cfg.max_bad_rows_listed);

    // Which kinds were read completely, and so which checks can run.
    let mut unavailable: BTreeMap<Kind, String> = BTreeMap::new();
    for kind in Kind::ALL {
        let files: Vec<&FileReport> = reports.iter().filter(|r| r.kind == kind).collect();
        let why = if files.is_empty() {
            Some(format!("no {kind} snapshot"))
        } else if let Some(bad) = files.iter().find(|r| r.error.is_some()) {
            Some(format!("{} was refused", bad.file))
        } else if files.iter().all(|r| r.rows == 0) {
            Some(format!("the {kind} snapshot has no usable row"))
        } else {
            None
        };
        if let Some(w) = why {
            unavailable.insert(kind, w);
        }
    }
    let mut checks_run = BTreeSet::new();
    let mut checks_skipped = BTreeMap::new();
    for c in Check::ALL {
        match c.needs().iter().find_map(|k| unavailable.get(k)) {
            Some(why) => {
                checks_skipped.insert(c, why.clone());
            }
            None => {
                checks_run.insert(c);
            }
        }
    }

    progress.stage("judging households");
    let t_checks = Instant::now();
    let judge = checks::Judge {
        index: &index,
        cfg,
        as_of,
        wage_window,
        ran: &checks_run,
    };
    let findings = judge.run(&total, threads);
    let checks_ms = t_checks.elapsed().as_millis() as u64;

    Ok(RunResult {
        as_of,
        findings,
        checks_run,
        checks_skipped,
        files: reports,
        ignored_files,
        bad_rows,
        bad_row_count,
        register_households: register.len(),
        register_members: index.members.len(),
        timings: Timings {
            index_ms,
            read_ms,
            checks_ms,
            total_ms: t0.elapsed().as_millis() as u64,
        },
    })
}

/// Size and modification time: a file changed since its checkpoint is read again.
fn file_stamp(path: &Path) -> String {
    match fs::metadata(path) {
        Ok(m) => {
            let mtime = m
                .modified()
                .ok()
                .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
                .map_or(0, |d| d.as_nanos());
            format!("{}:{mtime}", m.len())
        }
        Err(_) => "?".into(),
    }
}

/// A finished file as kept in the work directory.
#[derive(Serialize, Deserialize)]
struct Checkpoint {
    fingerprint: String,
    file: String,
    stamp: String,
    report: FileReport,
    bad_rows: Vec<BadRow>,
    partial: Partial,
}

fn checkpoint_path(work: &Path, file: &str) -> PathBuf {
    work.join(format!("{file}.checkpoint.json"))
}

fn load_checkpoint(work: &Path, plan: &FilePlan, fingerprint: &str) -> Option<Checkpoint> {
    let bytes = fs::read(checkpoint_path(work, &plan.name)).ok()?;
    let c: Checkpoint = serde_json::from_slice(&bytes).ok()?;
    (c.fingerprint == fingerprint && c.file == plan.name && c.stamp == file_stamp(&plan.path))
        .then_some(c)
}

fn save_checkpoint(work: &Path, c: &Checkpoint) -> Result<(), CrosscheckError> {
    let path = checkpoint_path(work, &c.file);
    let tmp = work.join(format!("{}.checkpoint.tmp", c.file));
    let write = |p: &Path| -> io::Result<()> {
        fs::create_dir_all(work)?;
        let f = fs::File::create(p)?;
        let mut w = io::BufWriter::new(f);
        serde_json::to_writer(&mut w, c).map_err(io::Error::other)?;
        io::Write::flush(&mut w)?;
        Ok(())
    };
    write(&tmp)
        .and_then(|()| fs::rename(&tmp, &path))
        .map_err(|source| CrosscheckError::Write { path, source })
}

/// Remove every checkpoint from `work_dir` (after a night completed, for instance).
pub fn clear_checkpoints(work_dir: &Path) -> Result<usize, CrosscheckError> {
    let mut n = 0;
    let entries = match fs::read_dir(work_dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(0),
        Err(source) => {
            return Err(CrosscheckError::Io {
                path: work_dir.to_path_buf(),
                source,
            })
        }
    };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if name.ends_with(".checkpoint.json") || name.ends_with(".checkpoint.tmp") {
            fs::remove_file(e.path()).map_err(|source| CrosscheckError::Write {
                path: e.path(),
                source,
            })?;
            n += 1;
        }
    }
    Ok(n)
}

struct Pool<'a> {
    progress: &'a dyn Progress,
    opts: &'a RunOptions,
    threads: usize,
}

/// A file being read: chunks still out, and what came back.
struct InFlight {
    plan: FilePlan,
    report: FileReport,
    started: bool,
    pending: usize,
    newlines: Vec<u64>,
    bad: Vec<(usize, reader::ChunkBad)>,
    bad_count: u64,
    partial: Partial,
}

type PhaseOut = (Partial, Vec<FileReport>, Vec<BadRow>);

impl Pool<'_> {
    fn read(
        &self,
        files: Vec<Found>,
        cx: &Cx,
        fingerprint: &str,
    ) -> Result<PhaseOut, CrosscheckError> {
        let mut total = Partial::default();
        let mut reports = Vec::new();
        let mut bad_rows = Vec::new();
        let mut inflight = Vec::new();
        let mut jobs = VecDeque::new();
        for f in files {
            if let Some(work) = &self.opts.work_dir {
                if let Some(c) = load_checkpoint(work, &f.plan, fingerprint) {
                    let mut report = c.report;
                    report.resumed = true;
                    self.progress.finish_file(&report.file, report.rows, true);
                    total.merge(c.partial);
                    bad_rows.extend(c.bad_rows);
                    reports.push(report);
                    continue;
                }
            }
            let ranges = reader::chunks(&f.plan, self.opts.chunk_bytes)?;
            let fi = inflight.len();
            for (seq, r) in ranges.iter().enumerate() {
                jobs.push_back((fi, seq, *r));
            }
            inflight.push(Mutex::new(InFlight {
                newlines: vec![0; ranges.len()],
                pending: ranges.len(),
                plan: f.plan,
                report: f.report,
                started: false,
                bad: Vec::new(),
                bad_count: 0,
                partial: Partial::default(),
            }));
        }
        let jobs = Mutex::new(jobs);
        let stop = AtomicBool::new(false);
        let failure: Mutex<Option<CrosscheckError>> = Mutex::new(None);
        let done: Mutex<(Partial, Vec<FileReport>, Vec<BadRow>)> =
            Mutex::new((Partial::default(), Vec::new(), Vec::new()));
        let max_bad = cx.cfg.max_bad_rows_listed;

        std::thread::scope(|s| {
            for _ in 0..self.threads.min(jobs.lock().map_or(1, |j| j.len()).max(1)) {
                s.spawn(|| loop {
                    if stop.load(Ordering::Relaxed) {
                        return;
                    }
                    let Some((fi, seq, range)) = jobs.lock().ok().and_then(|mut j| j.pop_front())
                    else {
                        return;
                    };
                    let plan = match inflight[fi].lock() {
                        Ok(mut st) => {
                            if !st.started {
                                st.started = true;
                                self.progress.start_file(&st.plan.name, st.plan.size);
                            }
                            st.plan.clone()
                        }
                        Err(_) => return,
                    };
                    let res = chunk_reader(plan.kind)(&plan, range, cx, self.progress, &stop);
                    let out = match res {
                        Ok(o) => o,
                        Err(e) => {
                            stop.store(true, Ordering::SeqCst);
                            if !matches!(e, CrosscheckError::Interrupted) {
                                if let Ok(mut f) = failure.lock() {
                                    f.get_or_insert(e);
                                }
                            }
                            return;
                        }
                    };
                    let finished = {
                        let Ok(mut st) = inflight[fi].lock() else {
                            return;
                        };
                        st.partial.merge(out.partial);
                        st.newlines[seq] = out.newlines;
                        st.bad_count += out.bad_count;
                        st.bad.extend(out.bad.into_iter().map(|b| (seq, b)));
                        st.pending -= 1;
                        if st.pending == 0 {
                            Some(finish_file(&mut st, max_bad))
                        } else {
                            None
                        }
                    };
                    if let Some((report, bads, partial)) = finished {
                        self.progress.finish_file(&report.file, report.rows, false);
                        if let Some(work) = &self.opts.work_dir {
                            let c = Checkpoint {
                                fingerprint: fingerprint.to_string(),
                                file: report.file.clone(),
                                stamp: file_stamp(&plan.path),
                                report: report.clone(),
                                bad_rows: bads.clone(),
                                partial,
                            };
                            if let Err(e) = save_checkpoint(work, &c) {
                                stop.store(true, Ordering::SeqCst);
                                if let Ok(mut f) = failure.lock() {
                                    f.get_or_insert(e);
                                }
                                return;
                            }
                            if let Ok(mut d) = done.lock() {
                                d.0.merge(c.partial);
                                d.1.push(report);
                                d.2.extend(bads);
                            }
                        } else if let Ok(mut d) = done.lock() {
                            d.0.merge(partial);
                            d.1.push(report);
                            d.2.extend(bads);
                        }
                    }
                });
            }
        });
        if let Some(e) = failure.into_inner().ok().flatten() {
            return Err(e);
        }
        if stop.load(Ordering::SeqCst) {
            return Err(CrosscheckError::Interrupted);
        }
        let (p, r, b) = done.into_inner().unwrap_or_default();
        total.merge(p);
        reports.extend(r);
        bad_rows.extend(b);
        Ok((total, reports, bad_rows))
    }
}

/// All chunks of a file are in: number the bad rows' lines, fill in the report.
fn finish_file(st: &mut InFlight, max_bad: usize) -> (FileReport, Vec<BadRow>, Partial) {
    let mut base = Vec::with_capacity(st.newlines.len());
    let mut acc = st.plan.header_lines;
    for n in &st.newlines {
        base.push(acc);
        acc += n;
    }
    let mut bads: Vec<BadRow> = std::mem::take(&mut st.bad)
        .into_iter()
        .map(|(seq, b)| BadRow {
            file: st.plan.name.clone(),
            line: base.get(seq).copied().unwrap_or(0) + b.line_in_chunk,
            field: b.field,
            reason: b.reason,
        })
        .collect();
    bads.sort();
    bads.truncate(max_bad);
    let partial = std::mem::take(&mut st.partial);
    let mut report = st.report.clone();
    report.rows = partial.rows;
    report.matched_rows = partial.matched;
    report.bad_rows = st.bad_count;
    (report, bads, partial)
}

/// Reads a byte range of a file as rows of one kind ([`reader::read_chunk`]).
type ChunkReader =
    fn(&FilePlan, (u64, u64), &Cx, &dyn Progress, &AtomicBool) -> Result<ChunkOut, CrosscheckError>;

/// The reader of a file of `kind`.
fn chunk_reader(kind: Kind) -> ChunkReader {
    use reader::read_chunk;
    match kind {
        Kind::Deaths => read_chunk::<DeathRecord>,
        Kind::Hukou => read_chunk::<HukouRecord>,
        Kind::Vehicles => read_chunk::<VehicleRecord>,
        Kind::Properties => read_chunk::<PropertyRecord>,
        Kind::Companies => read_chunk::<CompanyRecord>,
        Kind::Wages => read_chunk::<WageRecord>,
        Kind::Payments => read_chunk::<PaymentRecord>,
    }
}
