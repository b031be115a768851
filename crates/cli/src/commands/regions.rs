//! `doudi regions`: the names of region codes (county, township, village), so that pages, notices
//! and reports say 东河口镇大塘村, not 341502102003 (issue 20).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::Subcommand;
use doudi_model::{RegionCode, RegionLevel};
use doudi_store::RegionName;
use serde::Deserialize;

use super::open_store;
use crate::{output, Config};

/// The longest name accepted, in characters (the longest township names run to about 15).
const MAX_NAME_CHARS: usize = 40;

#[derive(Debug, Subcommand)]
pub enum RegionsCommand {
    /// Import region names from a CSV or JSON-lines file; adds new codes and renames known ones.
    #[command(after_help = "\
Each region is a code (6 digits a county, 9 a township, 12 a village) and its own name:
  CSV (UTF-8, an optional header line code,name):   341502102,东河口镇
                                                     341502102003,大塘村
  JSON lines (.jsonl):                               {\"code\":\"341502102003\",\"name\":\"大塘村\"}
A village is shown with its township's name before its own: 东河口镇大塘村. The format is told by
the extension (.csv; .jsonl, .ndjson or .json), else by the first character. A later import adds
and renames, never deletes. Any bad line: nothing is imported, every problem is listed as
FILE:LINE: what is wrong. `doudi gen` writes DIR/regions.csv for the regions it generates.")]
    Import { file: PathBuf },
    /// List the named regions (code, level, own name, and a village's full name).
    List {
        /// Only the regions under this code prefix (a county or a township).
        #[arg(long, value_name = "CODE")]
        under: Option<String>,
        #[arg(long)]
        json: bool,
    },
}

pub async fn run(config: &Config, cmd: RegionsCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        RegionsCommand::Import { file } => {
            let regions = match read_regions(&file)? {
                Ok(r) => r,
                Err(problems) => return Ok(output::nothing_imported(&file, &problems)),
            };
            let store = open_store(config).await?;
            let report = store
                .import_region_names(&regions, &file.display().to_string())
                .await?;
            store.close().await;
            let name = file.display();
            let (added, renamed, unchanged) = (report.added, report.renamed, report.unchanged);
            say!(
                "区划名称（{name}）：新增 {added}，改名 {renamed}，未变 {unchanged}",
                "region names from {name}: {added} added, {renamed} renamed, {unchanged} unchanged"
            );
            Ok(ExitCode::SUCCESS)
        }
        RegionsCommand::List { under, json } => {
            let prefix = under.unwrap_or_default();
            if !prefix.bytes().all(|b| b.is_ascii_digit()) {
                complain!(
                    "--under 需要数字组成的区划代码前缀（例如 341502）",
                    "--under takes a code prefix of digits (e.g. 341502)"
                );
                return Ok(ExitCode::from(2));
            }
            let store = open_store(config).await?;
            let own = store.list_region_names(&prefix).await?;
            // The townships of the villages listed, when the prefix leaves them out.
            let codes: Vec<String> = own.iter().map(|r| r.code.clone()).collect();
            let full = store.region_names(&codes).await?;
            store.close().await;
            let rows: Vec<Listed> = own
                .into_iter()
                .map(|r| Listed {
                    level: level(&r.code),
                    full_name: full.get(&r.code).cloned().unwrap_or_else(|| r.name.clone()),
                    code: r.code,
                    name: r.name,
                })
                .collect();
            let empty = || {
                tr!(
                    "没有区划名称（请导入：doudi regions import FILE）",
                    "no region names (import some: doudi regions import FILE)"
                )
            };
            output::print_list(json, &rows, empty, |r| {
                let level = match (crate::lang::lang(), r.level) {
                    (crate::lang::Lang::En, l) => l,
                    (_, "county") => "县",
                    (_, "township") => "乡镇",
                    (_, "village") => "村",
                    (_, l) => l,
                };
                println!("{:<12} {level:<8} {}", r.code, r.full_name);
            })?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

#[derive(serde::Serialize)]
struct Listed {
    code: String,
    level: &'static str,
    /// The region's own name.
    name: String,
    /// What people read: a village with its township's name before its own.
    full_name: String,
}

fn level(code: &str) -> &'static str {
    match RegionCode::parse(code).map(|c| c.level()) {
        Ok(RegionLevel::County) => "county",
        Ok(RegionLevel::Township) => "township",
        Ok(RegionLevel::Village) => "village",
        Err(_) => "?",
    }
}

/// One JSON line.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Line {
    code: String,
    name: String,
}

/// Check one region: the code's form, the name's.
fn check(code: &str, name: &str) -> Result<RegionName, String> {
    let code = RegionCode::parse(code).map_err(|e| e.to_string())?;
    let name = name.trim();
    if name.is_empty() {
        return Err(tr!(
            "区划 {code} 的名称为空",
            "region {code} has an empty name"
        ));
    }
    if name.chars().any(char::is_control) {
        return Err(tr!(
            "区划 {code} 的名称含有控制字符（制表符或换行？）",
            "the name of region {code} holds a control character (a tab or a line break?)"
        ));
    }
    let chars = name.chars().count();
    if chars > MAX_NAME_CHARS {
        return Err(tr!(
            "区划 {code} 的名称长 {chars} 个字，超过 {MAX_NAME_CHARS} 个：请填写区划本身的名称（大塘村），不要填完整地址",
            "the name of region {code} is {chars} characters long, over {MAX_NAME_CHARS}: give the region's own name (大塘村), not a full address"
        ));
    }
    Ok(RegionName {
        code: code.as_str().to_string(),
        name: name.to_string(),
    })
}

/// Is the file JSON lines (else CSV)? By extension, else by its first character.
fn is_json_lines(path: &Path, text: &str) -> bool {
    match path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase)
        .as_deref()
    {
        Some("csv") => false,
        Some("jsonl" | "ndjson" | "json") => true,
        _ => text.trim_start().starts_with('{'),
    }
}

/// Read and check a region-name file (CSV or JSON lines); on any problem return every problem as
/// `LINE: what` (the caller puts the file name before it).
pub fn read_regions(path: &Path) -> anyhow::Result<Result<Vec<RegionName>, Vec<String>>> {
    let bytes = std::fs::read(path).with_context(|| output::cannot("读取", "read", path))?;
    let bar = output::bar(
        bytes.len() as u64,
        crate::lang::t("读取区划名称", "reading regions"),
    );
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(&bytes);
    let mut problems = Vec::new();
    let mut regions: Vec<RegionName> = Vec::new();
    // Code → the line it was first seen on.
    let mut seen: HashMap<String, usize> = HashMap::new();
    let text = match std::str::from_utf8(bytes) {
        Ok(t) => t,
        Err(e) => {
            let line = bytes[..e.valid_up_to()]
                .iter()
                .filter(|&&b| b == b'\n')
                .count()
                + 1;
            bar.finish_and_clear();
            return Ok(Err(vec![tr!(
                "{line}：不是 UTF-8 编码（请把文件另存为 UTF-8；GBK 或 GB18030 导出的文件须先转换）",
                "{line}: not UTF-8 (save the file as UTF-8; a GBK or GB18030 export must be converted first)"
            )]));
        }
    };
    let json = is_json_lines(path, text);
    for (i, raw) in text.split('\n').enumerate() {
        let line_no = i + 1;
        bar.inc(raw.len() as u64 + 1);
        let line = raw.trim_end_matches('\r');
        if line.trim().is_empty() {
            continue;
        }
        let parsed = if json {
            serde_json::from_str::<Line>(line)
                .map_err(|e| output::json_problem(&e))
                .and_then(|l| check(&l.code, &l.name))
        } else {
            match csv_fields(line) {
                Err(e) => Err(e),
                Ok(f) if line_no == 1 && is_header(&f) => continue,
                Ok(f) if f.len() != 2 => {
                    let n = f.len();
                    Err(tr!(
                        "{n} 列，应为 2 列：code,name（名称中有逗号时请加双引号）",
                        "{n} column(s), expected 2: code,name (a name with a comma goes in double quotes)"
                    ))
                }
                Ok(f) => check(&f[0], &f[1]),
            }
        };
        match parsed {
            Ok(r) => match seen.get(&r.code) {
                Some(first) => {
                    let code = &r.code;
                    problems.push(tr!(
                        "{line_no}：区划 {code} 重复命名（首次在第 {first} 行）",
                        "{line_no}: region {code} is named again (first on line {first})"
                    ))
                }
                None => {
                    seen.insert(r.code.clone(), line_no);
                    regions.push(r);
                }
            },
            Err(e) => problems.push(tr!("{line_no}：{e}", "{line_no}: {e}")),
        }
    }
    bar.finish_and_clear();
    if regions.is_empty() && problems.is_empty() {
        problems.push(tr!("1：文件中没有区划", "1: the file names no region"));
    }
    Ok(if problems.is_empty() {
        Ok(regions)
    } else {
        Err(problems)
    })
}

/// A header line: `code,name` (or the Chinese column names).
fn is_header(fields: &[String]) -> bool {
    fields.first().is_some_and(|f| {
        let f = f.trim().to_ascii_lowercase();
        f == "code" || f == "代码" || f == "区划代码"
    })
}

/// The fields of one CSV line (RFC 4180: a field in double quotes may hold commas, a doubled
/// quote is a quote).
fn csv_fields(line: &str) -> Result<Vec<String>, String> {
    let mut fields = Vec::new();
    let mut field = String::new();
    let mut chars = line.chars().peekable();
    let mut quoted = false;
    let mut was_quoted = false;
    while let Some(c) = chars.next() {
        match (quoted, c) {
            (true, '"') if chars.peek() == Some(&'"') => {
                chars.next();
                field.push('"');
            }
            (true, '"') => quoted = false,
            (true, c) => field.push(c),
            (false, '"') if field.trim().is_empty() && !was_quoted => {
                field.clear();
                quoted = true;
                was_quoted = true;
            }
            (false, '"') => {
                return Err(crate::lang::t(
                    "未加引号的字段中有双引号",
                    "a double quote inside an unquoted field",
                )
                .into())
            }
            (false, ',') => {
                fields.push(std::mem::take(&mut field));
                was_quoted = false;
            }
            (false, c) => field.push(c),
        }
    }
    if quoted {
        return Err(crate::lang::t(
            "带引号的字段没有闭合（名称中有换行？）",
            "a quoted field is not closed (a line break inside a name?)",
        )
        .into());
    }
    fields.push(field);
    Ok(fields)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(name: &str, text: &[u8]) -> Result<Vec<RegionName>, Vec<String>> {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join(name);
        std::fs::write(&p, text).unwrap();
        read_regions(&p).unwrap()
    }

    #[test]
    fn csv_with_a_header_a_bom_and_quotes_is_read() {
        let r = read(
            "regions.csv",
            "\u{feff}code,name\r\n341502,金安区\r\n341502102,\"东河口镇\"\r\n\r\n341502102003,\"大塘村 \"\"一组\"\"\"\n"
                .as_bytes(),
        )
        .unwrap();
        assert_eq!(r.len(), 3);
        assert_eq!(r[1].name, "东河口镇");
        assert_eq!(r[2].code, "341502102003");
        assert_eq!(r[2].name, "大塘村 \"一组\"");
    }

    #[test]
    fn json_lines_are_read_by_extension_or_by_their_first_character() {
        let text = "{\"code\":\"341502102\",\"name\":\"东河口镇\"}\n{\"code\":\"341502102003\",\"name\":\"大塘村\"}\n";
        for name in ["regions.jsonl", "regions.txt"] {
            let r = read(name, text.as_bytes()).unwrap();
            assert_eq!(r[1].name, "大塘村", "{name}");
        }
    }

    #[test]
    fn every_bad_line_is_refused_with_its_number_and_what_is_wrong() {
        let e = read(
            "regions.csv",
            "341502,金安区\n34150,短\n341502102,\n341502102003,大塘村,多余\n341502,又一个\n341502103001,\"未闭合\n341502103002,a\tb\n"
                .as_bytes(),
        )
        .unwrap_err();
        assert_eq!(e.len(), 6, "{e:#?}");
        // Each problem in line order: its line number, then what is wrong.
        let expected = [
            ("2: ", "6 (county), 9 (township) or 12"),
            ("3: ", "empty name"),
            ("4: ", "3 column(s)"),
            ("5: ", "first on line 1"),
            ("6: ", "not closed"),
            ("7: ", "control character"),
        ];
        for (problem, (line, what)) in e.iter().zip(expected) {
            assert!(
                problem.starts_with(line) && problem.contains(what),
                "{problem}"
            );
        }

        let e = read(
            "regions.jsonl",
            b"{\"code\":\"341502\",\"name\":\"x\"}\n{\"code\":\"341502102\",\"name\":\"y\",\"level\":2}\n",
        )
        .unwrap_err();
        assert!(e[0].starts_with("2: ") && e[0].contains("level"), "{e:?}");

        let e = read("regions.csv", b"341502,\xb4\xf3\xcc\xc1\n").unwrap_err();
        assert!(e[0].starts_with("1: not UTF-8"), "{e:?}");
        let e = read("regions.csv", b"\n\n").unwrap_err();
        assert!(e[0].contains("names no region"), "{e:?}");
        let long = format!("341502,{}\n", "很".repeat(41));
        let e = read("regions.csv", long.as_bytes()).unwrap_err();
        assert!(e[0].contains("41 characters"), "{e:?}");
    }
}
