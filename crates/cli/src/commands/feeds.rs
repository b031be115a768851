//! `doudi feeds`: department exports read through feed profiles — a dry run a data clerk can
//! read (`check`), and the profiles shipped with doudi (`profiles`, `show`).

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use clap::{Args, Subcommand};
use doudi_feeds::{shipped, CheckReport, FeedReader, Profile};

use crate::lang::t;
use crate::output;

#[derive(Debug, Subcommand)]
pub enum FeedsCommand {
    /// Read export files through a profile without storing anything: rows read, events made by
    /// kind, every refused row (row, column, why) and five sample events with personal data
    /// masked. Exit 0 when every row made an event (or was passed over by a rule), 1 when a row
    /// was refused or a file could not be read to its end, 2 when the profile itself is wrong.
    Check(CheckArgs),
    /// List the profiles shipped with doudi (profiles/ in the source tree).
    Profiles,
    /// Print a shipped profile's TOML, to start your own from it.
    Show {
        /// A shipped profile's name, e.g. yibao-settlement.
        name: String,
    },
}

#[derive(Debug, Args)]
#[command(after_help = "\
Examples:
  doudi feeds check --profile yibao-settlement 2026-03.csv
  doudi feeds check --profile my-county/yibao.toml exports/*.csv --json > report.json
  doudi feeds show yibao-settlement > my-county/yibao.toml    # then edit it, raise its version

A refused row names its row as the file shows it (Excel's row number, or the CSV line), the column and why; \
it never prints the cell's value. Fix the export or the profile, then check again.")]
pub struct CheckArgs {
    /// The profile: a TOML file, or the name of a shipped profile (see `doudi feeds profiles`).
    #[arg(long, value_name = "FILE|NAME")]
    pub profile: String,
    /// Export files to read (CSV, XLSX, JSON lines or fixed-width, as the profile says).
    #[arg(required = true, value_name = "FILE")]
    pub files: Vec<PathBuf>,
    /// Print the report as JSON instead of text.
    #[arg(long)]
    pub json: bool,
    /// How many sample events to show (masked).
    #[arg(long, default_value_t = 5)]
    pub samples: usize,
}

pub fn run(cmd: FeedsCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        FeedsCommand::Check(args) => check(args),
        FeedsCommand::Profiles => {
            for (name, _) in shipped::PROFILES {
                match shipped::profile(name) {
                    Some(Ok(p)) => println!(
                        "{name:<26} {:<17} {:<16} {}",
                        p.source.code(),
                        p.file.format.describe(),
                        p.title.as_deref().unwrap_or("")
                    ),
                    Some(Err(e)) => say!("{name:<26}（无效：{e}）", "{name:<26} (invalid: {e})"),
                    None => {}
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        FeedsCommand::Show { name } => match shipped::text(&name) {
            Some(t) => {
                print!("{t}");
                Ok(ExitCode::SUCCESS)
            }
            None => anyhow::bail!(tr!(
                "没有名为 {name:?} 的内置数据格式；`doudi feeds profiles` 列出全部",
                "no shipped profile named {name:?}; `doudi feeds profiles` lists them"
            )),
        },
    }
}

/// A profile from a path, or a shipped one by name.
pub fn load_profile(spec: &str) -> Result<Profile, doudi_feeds::ProfileError> {
    let path = Path::new(spec);
    if !path.exists() {
        if let Some(p) = shipped::profile(spec) {
            return p;
        }
    }
    Profile::load(path)
}

fn check(args: CheckArgs) -> anyhow::Result<ExitCode> {
    let profile = match load_profile(&args.profile) {
        Ok(p) => Arc::new(p),
        Err(e) => {
            return super::refusal(e.to_string());
        }
    };
    let mut report = CheckReport::new(&profile, args.samples);
    for file in &args.files {
        let name = file.display().to_string();
        match FeedReader::open(Arc::clone(&profile), file) {
            Err(e) => report.unreadable(&name, &profile, e.to_string()),
            Ok(reader) => {
                let (_, total) = reader.progress();
                let bar = output::bar(total.unwrap_or(0), t("读取导出文件", "reading export"));
                report.check(reader, &mut |done, total| {
                    if let Some(t) = total {
                        bar.set_length(t);
                    }
                    bar.set_position(done);
                });
                bar.finish_and_clear();
            }
        }
    }
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&report)
                .context(t("无法输出报告", "cannot write the report"))?
        );
    } else {
        print!("{}", render(&report, &profile));
    }
    Ok(if report.clean() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// The report as a clerk reads it.
fn render(r: &CheckReport, p: &Profile) -> String {
    let mut o: Vec<String> = Vec::new();
    let (name, version, source) = (&r.profile.profile, &r.profile.version, &r.source);
    let title = p
        .title
        .as_deref()
        .map(|t| format!(" — {t}"))
        .unwrap_or_default();
    let source_words = crate::lang::lang().source(source);
    o.push(tr!(
        "数据格式 {name} 版本 {version}（{source_words}）{title}",
        "profile {name} version {version} ({source}){title}"
    ));
    for f in &r.files {
        let mut what = vec![f.format.to_string()];
        what.extend(f.encoding.map(str::to_string));
        what.extend(f.sheet.as_ref().map(|s| tr!("工作表 {s}", "sheet {s}")));
        o.push(format!("\n{} ({})", f.file, what.join(", ")));
        let s = &f.stats;
        let (rows, events, refused) = (s.rows, s.events, s.refused);
        o.push(tr!(
            "  读取行数      {rows:>9}",
            "  rows read      {rows:>9}"
        ));
        o.push(tr!(
            "  生成记录      {events:>9}",
            "  events made    {events:>9}"
        ));
        o.extend(
            s.by_kind
                .iter()
                .map(|(kind, n)| format!("    {kind:<26} {n:>9}")),
        );
        o.extend(s.skipped.iter().map(|(reason, n)| {
            tr!(
                "  跳过          {n:>9}  {reason}",
                "  passed over    {n:>9}  {reason}"
            )
        }));
        o.push(tr!(
            "  拒收          {refused:>9}",
            "  refused        {refused:>9}"
        ));
        o.extend(f.refusals.iter().map(|e| format!("    {e}")));
        if let Some(e) = &f.error {
            o.push(tr!("  文件未读完：{e}", "  FILE NOT READ TO ITS END: {e}"));
        }
    }
    if !r.samples.is_empty() {
        o.push(tr!(
            "\n样例记录（个人信息已遮蔽）：",
            "\nsample events (personal data masked):"
        ));
        o.extend(r.samples.iter().map(|s| format!("  {s}")));
    }
    let totals = r.totals();
    let (files, rows, events, refused) =
        (r.files.len(), totals.rows, totals.events, totals.refused);
    let verdict = if r.clean() {
        t(" — 可以导入", " — ready")
    } else {
        t(
            " — 请改正被拒收的行（在导出文件中，或在数据格式的映射中）后再检查",
            " — fix the refused rows (in the export, or the profile's mapping) and check again",
        )
    };
    o.push(tr!(
        "\n{files} 个文件：{rows} 行，{events} 条记录，拒收 {refused} 行{verdict}",
        "\n{files} file(s): {rows} rows, {events} events, {refused} refused{verdict}"
    ));
    o.push(String::new());
    o.join("\n")
}
