//! Report files: `findings.json`, `findings.csv` and a self-contained `report.html` (inline CSS
//! and SVG, no script, nothing fetched) an official can open offline. Findings hold masked ID
//! numbers and names only, and nothing else personal is added here.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};

use serde::Serialize;

use doudi_model::Money;

use crate::finding::{Check, Finding, Reconciliation};
use crate::{CrosscheckError, RunResult};

/// Findings shown in the HTML table (the CSV and JSON hold all).
const HTML_MAX_FINDINGS: usize = 2000;
/// Townships drawn in the chart (the table lists all).
const CHART_MAX_TOWNSHIPS: usize = 25;

/// The files written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReportFiles {
    pub json: PathBuf,
    pub csv: PathBuf,
    pub html: PathBuf,
}

#[derive(Default, Clone, Copy, Serialize)]
struct Total {
    findings: u64,
    #[serde(rename = "amount_at_stake_fen")]
    amount: Money,
}

struct Row<'a> {
    finding: &'a Finding,
    status: &'static str,
    first_seen: Option<chrono::NaiveDate>,
}

fn rows<'a>(result: &'a RunResult, rec: Option<&'a Reconciliation>) -> Vec<Row<'a>> {
    match rec {
        None => result
            .findings
            .iter()
            .map(|f| Row {
                finding: f,
                status: "found",
                first_seen: None,
            })
            .collect(),
        Some(r) => {
            let mut v: Vec<Row> = r
                .new
                .iter()
                .map(|s| Row {
                    finding: &s.finding,
                    status: "new",
                    first_seen: Some(s.first_seen),
                })
                .chain(r.still_open.iter().map(|s| Row {
                    finding: &s.finding,
                    status: "open",
                    first_seen: Some(s.first_seen),
                }))
                .collect();
            v.sort_by(|a, b| a.finding.key.cmp(&b.finding.key));
            v
        }
    }
}

fn write_err(path: &Path) -> impl FnOnce(std::io::Error) -> CrosscheckError + '_ {
    move |source| CrosscheckError::Write {
        path: path.to_path_buf(),
        source,
    }
}

/// Write the night's report into `dir` (created if missing). With a reconciliation, findings
/// carry their status (`new` / `open`) and the closed ones are listed; without, tonight's findings
/// are written as found.
pub fn write_report(
    dir: &Path,
    result: &RunResult,
    reconciliation: Option<&Reconciliation>,
) -> Result<ReportFiles, CrosscheckError> {
    stage_report(dir, result, reconciliation)?.commit()
}

/// A report written in full under temporary names (`.findings.json.part`…) in its directory,
/// not yet in place: [`StagedReport::commit`] renames its files into place, [`StagedReport::discard`]
/// removes them. So a report can be written while the night is being stored and appear only once
/// the night is recorded.
#[derive(Debug)]
pub struct StagedReport {
    files: ReportFiles,
    parts: [PathBuf; 3],
}

impl StagedReport {
    /// Put the files in place (each replaces the file of its name).
    pub fn commit(self) -> Result<ReportFiles, CrosscheckError> {
        let targets = [&self.files.json, &self.files.csv, &self.files.html];
        for (part, target) in self.parts.iter().zip(targets) {
            if let Err(e) = fs::rename(part, target) {
                self.remove_parts();
                return Err(CrosscheckError::Write {
                    path: target.clone(),
                    source: e,
                });
            }
        }
        Ok(self.files)
    }

    /// Remove the files written (the report is not to be published).
    pub fn discard(self) {
        self.remove_parts();
    }

    fn remove_parts(&self) {
        for part in &self.parts {
            let _ = fs::remove_file(part);
        }
    }
}

/// [`write_report`]'s files, written under temporary names ([`StagedReport`]). The three files
/// are written at once, each on its own thread.
pub fn stage_report(
    dir: &Path,
    result: &RunResult,
    reconciliation: Option<&Reconciliation>,
) -> Result<StagedReport, CrosscheckError> {
    fs::create_dir_all(dir).map_err(write_err(dir))?;
    let files = ReportFiles {
        json: dir.join("findings.json"),
        csv: dir.join("findings.csv"),
        html: dir.join("report.html"),
    };
    let parts = [
        dir.join(".findings.json.part"),
        dir.join(".findings.csv.part"),
        dir.join(".report.html.part"),
    ];
    let staged = StagedReport { files, parts };
    let rows = rows(result, reconciliation);
    let mut by_check: BTreeMap<Check, Total> = BTreeMap::new();
    let mut by_township: BTreeMap<String, Total> = BTreeMap::new();
    let mut total = Total::default();
    for r in &rows {
        let f = r.finding;
        for t in [
            by_check.entry(f.check).or_default(),
            by_township.entry(f.township()).or_default(),
            &mut total,
        ] {
            t.findings += 1;
            t.amount += f.amount_at_stake;
        }
    }
    let night = Night {
        result,
        reconciliation,
        rows: &rows,
        by_check: &by_check,
        by_township: &by_township,
        total,
    };
    let (json, csv, html) = std::thread::scope(|s| {
        let json = s.spawn(|| write_json(&staged.parts[0], &night));
        let csv = s.spawn(|| write_csv(&staged.parts[1], &rows));
        let html_path = &staged.parts[2];
        let html = fs::write(html_path, html(&night)).map_err(write_err(html_path));
        (joined(json), joined(csv), html)
    });
    match json.and(csv).and(html) {
        Ok(()) => Ok(staged),
        Err(e) => {
            staged.discard();
            Err(e)
        }
    }
}

/// A writing thread's result; its panic is the caller's.
fn joined<T>(h: std::thread::ScopedJoinHandle<'_, T>) -> T {
    match h.join() {
        Ok(v) => v,
        Err(p) => std::panic::resume_unwind(p),
    }
}

/// What the night's reports are written from: its result, the reconciliation with the findings
/// already open, the rows of the report and their totals.
#[derive(Clone, Copy)]
struct Night<'a> {
    result: &'a RunResult,
    reconciliation: Option<&'a Reconciliation>,
    rows: &'a [Row<'a>],
    by_check: &'a BTreeMap<Check, Total>,
    by_township: &'a BTreeMap<String, Total>,
    total: Total,
}

fn write_json(path: &Path, night: &Night<'_>) -> Result<(), CrosscheckError> {
    let Night {
        result,
        reconciliation,
        rows,
        by_check,
        by_township,
        total,
    } = *night;
    #[derive(Serialize)]
    struct JsonFinding<'a> {
        status: &'a str,
        #[serde(skip_serializing_if = "Option::is_none")]
        first_seen: Option<chrono::NaiveDate>,
        #[serde(flatten)]
        finding: &'a Finding,
    }
    #[derive(Serialize)]
    struct JsonReport<'a> {
        as_of: chrono::NaiveDate,
        totals: Total,
        by_check: BTreeMap<&'static str, Total>,
        by_township: &'a BTreeMap<String, Total>,
        checks_run: Vec<&'static str>,
        checks_skipped: BTreeMap<&'static str, &'a str>,
        files: &'a [crate::FileReport],
        bad_row_count: u64,
        bad_rows: &'a [crate::BadRow],
        findings: Vec<JsonFinding<'a>>,
        #[serde(skip_serializing_if = "Option::is_none")]
        closed: Option<&'a [crate::ClosedFinding]>,
    }
    let json = JsonReport {
        as_of: result.as_of,
        totals: total,
        by_check: by_check.iter().map(|(c, t)| (c.code(), *t)).collect(),
        by_township,
        checks_run: result.checks_run.iter().map(|c| c.code()).collect(),
        checks_skipped: result
            .checks_skipped
            .iter()
            .map(|(c, w)| (c.code(), w.as_str()))
            .collect(),
        files: &result.files,
        bad_row_count: result.bad_row_count,
        bad_rows: &result.bad_rows,
        findings: rows
            .iter()
            .map(|r| JsonFinding {
                status: r.status,
                first_seen: r.first_seen,
                finding: r.finding,
            })
            .collect(),
        closed: reconciliation.map(|r| r.closed.as_slice()),
    };
    let text = serde_json::to_vec_pretty(&json).map_err(|e| CrosscheckError::Write {
        path: path.to_path_buf(),
        source: e.into(),
    })?;
    fs::write(path, text).map_err(write_err(path))
}

fn write_csv(csv_path: &Path, rows: &[Row]) -> Result<(), CrosscheckError> {
    let mut w = csv::Writer::from_path(csv_path).map_err(|e| CrosscheckError::Write {
        path: csv_path.to_path_buf(),
        source: e.into(),
    })?;
    let mut put = |rec: &[String]| {
        w.write_record(rec).map_err(|e| CrosscheckError::Write {
            path: csv_path.to_path_buf(),
            source: e.into(),
        })
    };
    put(&[
        "key",
        "status",
        "check",
        "check_zh",
        "household_id",
        "member_id",
        "region_code",
        "township",
        "household_category",
        "amount_at_stake_yuan",
        "as_of",
        "deadline",
        "first_seen",
        "summary_zh",
        "summary_en",
    ]
    .map(String::from))?;
    for r in rows {
        let f = r.finding;
        put(&[
            f.key.clone(),
            r.status.to_string(),
            f.check.code().to_string(),
            f.check.name_zh().to_string(),
            f.household_id.clone(),
            f.member_id.clone().unwrap_or_default(),
            f.region_code.to_string(),
            f.township(),
            f.household_category.code().to_string(),
            f.amount_at_stake.to_string(),
            f.as_of.to_string(),
            f.deadline.to_string(),
            r.first_seen.map(|d| d.to_string()).unwrap_or_default(),
            f.summary_zh.clone(),
            f.summary_en.clone(),
        ])?;
    }
    w.flush().map_err(write_err(csv_path))
}

fn esc(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&#39;"),
            _ => o.push(c),
        }
    }
    o
}

/// A horizontal bar chart as inline SVG: one bar per (label, value), value written at the end.
fn bars(title: &str, items: &[(String, f64, String)]) -> String {
    let max = items.iter().map(|i| i.1).fold(0.0_f64, f64::max);
    let row_h = 22.0;
    let label_w = 230.0;
    let bar_w = 420.0;
    let h = row_h * items.len() as f64 + 30.0;
    let mut s = String::new();
    let _ = write!(
        s,
        r#"<figure><figcaption>{}</figcaption><svg width="{}" height="{h}" role="img" aria-label="{}">"#,
        esc(title),
        label_w + bar_w + 140.0,
        esc(title)
    );
    for (i, (label, v, text)) in items.iter().enumerate() {
        let y = 10.0 + i as f64 * row_h;
        let w = if max > 0.0 { v / max * bar_w } else { 0.0 };
        let _ = write!(
            s,
            r##"<text x="{}" y="{}" text-anchor="end" font-size="12">{}</text><rect x="{}" y="{}" width="{w:.1}" height="{}" fill="#b03a2e"/><text x="{}" y="{}" font-size="12">{}</text>"##,
            label_w - 6.0,
            y + 14.0,
            esc(label),
            label_w,
            y + 3.0,
            row_h - 6.0,
            label_w + w + 6.0,
            y + 14.0,
            esc(text)
        );
    }
    s.push_str("</svg></figure>");
    s
}

fn yuan_f(m: Money) -> f64 {
    m.fen() as f64 / 100.0
}

fn html(night: &Night<'_>) -> String {
    let Night {
        result,
        reconciliation: rec,
        rows,
        by_check,
        by_township,
        total,
    } = *night;
    let mut s = String::with_capacity(64 * 1024);
    let _ = write!(
        s,
        r#"<!DOCTYPE html><html lang="zh-CN"><head><meta charset="utf-8"><title>数据比对核查报告 Cross-check report {as_of}</title>
<style>
body{{font-family:"Noto Sans CJK SC","Microsoft YaHei","PingFang SC",sans-serif;margin:2em;color:#222;max-width:1200px}}
h1{{font-size:1.5em;border-bottom:3px solid #b03a2e;padding-bottom:.3em}}
h2{{font-size:1.15em;margin-top:1.6em}}
.en{{color:#666;font-size:.85em;font-weight:normal}}
table{{border-collapse:collapse;margin:.5em 0;font-size:.9em}}
th,td{{border:1px solid #ccc;padding:3px 8px;text-align:left;vertical-align:top}}
th{{background:#f3f3f3}}
td.n{{text-align:right;font-variant-numeric:tabular-nums}}
.cards{{display:flex;gap:1em;flex-wrap:wrap}}
.card{{border:1px solid #ddd;border-radius:6px;padding:.6em 1em;min-width:10em}}
.card b{{display:block;font-size:1.6em}}
figure{{margin:1em 0}} figcaption{{font-weight:bold;margin-bottom:.3em}}
.warn{{color:#b03a2e}}
</style></head><body>
<h1>低收入人口数据比对核查报告 <span class="en">Nightly cross-check report</span></h1>
<p>比对日期 <span class="en">as of</span>: <b>{as_of}</b> · 在册家庭 <span class="en">households</span>: {hh} · 在册人员 <span class="en">members</span>: {mem}</p>
<p>所有发现均为<b>待核查</b>事项（类别：资格复核），不自动停发或调整待遇。身份证号和姓名均已脱敏。<br><span class="en">Every finding is a review for an officer (category: eligibility review), never an automatic cut. ID numbers and names are masked.</span></p>
"#,
        as_of = result.as_of,
        hh = result.register_households,
        mem = result.register_members,
    );
    let _ = write!(
        s,
        r#"<div class="cards"><div class="card">发现 <span class="en">findings</span><b>{}</b></div><div class="card">涉及金额（元） <span class="en">amount at stake, yuan</span><b>{}</b></div>"#,
        total.findings, total.amount
    );
    if let Some(r) = rec {
        let _ = write!(
            s,
            r#"<div class="card">新增 <span class="en">new</span><b>{}</b></div><div class="card">仍未办结 <span class="en">still open</span><b>{}</b></div><div class="card">自动关闭 <span class="en">closed</span><b>{}</b></div>"#,
            r.new.len(),
            r.still_open.len(),
            r.closed.len()
        );
    }
    let _ = write!(
        s,
        r#"<div class="card">问题数据行 <span class="en">bad rows</span><b>{}</b></div></div>"#,
        result.bad_row_count
    );
    if !result.checks_skipped.is_empty() {
        s.push_str(r#"<h2 class="warn">未执行的核查 <span class="en">Checks not run</span></h2><table><tr><th>核查 <span class="en">check</span></th><th>原因 <span class="en">reason</span></th></tr>"#);
        for (c, why) in &result.checks_skipped {
            let _ = write!(
                s,
                "<tr><td>{} <span class=\"en\">{}</span></td><td>{}</td></tr>",
                esc(c.name_zh()),
                esc(c.name_en()),
                esc(why)
            );
        }
        s.push_str("</table>");
    }

    // by check
    s.push_str(r#"<h2>按核查类型 <span class="en">By check</span></h2>"#);
    let items: Vec<(String, f64, String)> = Check::ALL
        .iter()
        .map(|c| {
            let t = by_check.get(c).copied().unwrap_or_default();
            (
                c.name_zh().to_string(),
                t.findings as f64,
                t.findings.to_string(),
            )
        })
        .collect();
    s.push_str(&bars("发现数 Findings by check", &items));
    let items: Vec<(String, f64, String)> = Check::ALL
        .iter()
        .map(|c| {
            let t = by_check.get(c).copied().unwrap_or_default();
            (
                c.name_zh().to_string(),
                yuan_f(t.amount),
                format!("{} 元", t.amount),
            )
        })
        .collect();
    s.push_str(&bars("涉及金额 Amount at stake by check (yuan)", &items));
    s.push_str(r#"<table><tr><th>核查 <span class="en">check</span></th><th>发现 <span class="en">findings</span></th><th>涉及金额（元） <span class="en">amount, yuan</span></th></tr>"#);
    for c in Check::ALL {
        let t = by_check.get(&c).copied().unwrap_or_default();
        let _ = write!(
            s,
            "<tr><td>{} <span class=\"en\">{}</span></td><td class=\"n\">{}</td><td class=\"n\">{}</td></tr>",
            esc(c.name_zh()),
            esc(c.name_en()),
            t.findings,
            t.amount
        );
    }
    s.push_str("</table>");

    // by township
    s.push_str(r#"<h2>按乡镇（街道） <span class="en">By township</span></h2>"#);
    let mut towns: Vec<(&String, &Total)> = by_township.iter().collect();
    towns.sort_by(|a, b| b.1.findings.cmp(&a.1.findings).then(a.0.cmp(b.0)));
    let items: Vec<(String, f64, String)> = towns
        .iter()
        .take(CHART_MAX_TOWNSHIPS)
        .map(|(t, v)| {
            (
                (*t).clone(),
                v.findings as f64,
                format!("{} · {} 元", v.findings, v.amount),
            )
        })
        .collect();
    s.push_str(&bars("发现最多的乡镇 Townships with most findings", &items));
    s.push_str(r#"<table><tr><th>乡镇代码 <span class="en">township</span></th><th>发现 <span class="en">findings</span></th><th>涉及金额（元） <span class="en">amount, yuan</span></th></tr>"#);
    for (t, v) in &towns {
        let _ = write!(
            s,
            "<tr><td>{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td></tr>",
            esc(t),
            v.findings,
            v.amount
        );
    }
    s.push_str("</table>");

    // files
    s.push_str(r#"<h2>比对数据 <span class="en">Snapshots read</span></h2><table><tr><th>文件 <span class="en">file</span></th><th>类型 <span class="en">kind</span></th><th>行数 <span class="en">rows</span></th><th>匹配在册 <span class="en">matched</span></th><th>问题行 <span class="en">bad rows</span></th><th>说明 <span class="en">note</span></th></tr>"#);
    for f in &result.files {
        let note = match (&f.error, f.resumed) {
            (Some(e), _) => format!("拒收 refused: {e}"),
            (None, true) => "断点续读 from checkpoint".into(),
            _ => String::new(),
        };
        let _ = write!(
            s,
            "<tr><td>{}</td><td>{} <span class=\"en\">{}</span></td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td>{}</td></tr>",
            esc(&f.file),
            esc(f.kind.name_zh()),
            f.kind.code(),
            f.rows,
            f.matched_rows,
            f.bad_rows,
            esc(&note)
        );
    }
    s.push_str("</table>");
    if !result.bad_rows.is_empty() {
        let _ = write!(
            s,
            r#"<h2>问题数据行 <span class="en">Bad rows</span> ({} / {})</h2><table><tr><th>文件 file</th><th>行 line</th><th>字段 field</th><th>原因 reason</th></tr>"#,
            result.bad_rows.len().min(200),
            result.bad_row_count
        );
        for b in result.bad_rows.iter().take(200) {
            let _ = write!(
                s,
                "<tr><td>{}</td><td class=\"n\">{}</td><td>{}</td><td>{}</td></tr>",
                esc(&b.file),
                b.line,
                esc(b.field.as_deref().unwrap_or("")),
                esc(&b.reason)
            );
        }
        s.push_str("</table>");
    }

    // findings
    let _ = write!(
        s,
        r#"<h2>发现清单 <span class="en">Findings</span> ({} / {})</h2>"#,
        rows.len().min(HTML_MAX_FINDINGS),
        rows.len()
    );
    if rows.len() > HTML_MAX_FINDINGS {
        s.push_str("<p>完整清单见 findings.csv。<span class=\"en\">The full list is in findings.csv.</span></p>");
    }
    s.push_str(r#"<table><tr><th>状态 status</th><th>核查 check</th><th>家庭 household</th><th>成员 member</th><th>村（社区） village</th><th>金额（元） amount</th><th>核查期限 deadline</th><th>说明 summary</th></tr>"#);
    for r in rows.iter().take(HTML_MAX_FINDINGS) {
        let f = r.finding;
        let _ = write!(
            s,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td class=\"n\">{}</td><td>{}</td><td>{}<br><span class=\"en\">{}</span></td></tr>",
            r.status,
            esc(f.check.name_zh()),
            esc(&f.household_id),
            esc(f.member_id.as_deref().unwrap_or("")),
            f.region_code,
            f.amount_at_stake,
            f.deadline,
            esc(&f.summary_zh),
            esc(&f.summary_en)
        );
    }
    s.push_str("</table>");
    if let Some(r) = rec {
        if !r.closed.is_empty() {
            let _ = write!(
                s,
                r#"<h2>自动关闭 <span class="en">Closed tonight</span> ({})</h2><table><tr><th>核查 check</th><th>家庭 household</th><th>成员 member</th><th>首次发现 first seen</th><th>说明 note</th></tr>"#,
                r.closed.len()
            );
            for c in r.closed.iter().take(HTML_MAX_FINDINGS) {
                let f = &c.finding.finding;
                let _ = write!(
                    s,
                    "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}<br><span class=\"en\">{}</span></td></tr>",
                    esc(f.check.name_zh()),
                    esc(&f.household_id),
                    esc(f.member_id.as_deref().unwrap_or("")),
                    c.finding.first_seen,
                    esc(&c.note_zh),
                    esc(&c.note_en)
                );
            }
            s.push_str("</table>");
        }
    }
    let _ = write!(
        s,
        r#"<p class="en">Read in {} ms ({} ms indexing, {} ms reading, {} ms checks).</p></body></html>"#,
        result.timings.total_ms,
        result.timings.index_ms,
        result.timings.read_ms,
        result.timings.checks_ms
    );
    s
}
