//! `doudi officers`: the directory of officers and supervisors that warnings and findings are
//! routed to.

use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::Subcommand;
use doudi_warnings::routing::{Directory, Officer, Role};

use super::open_store;
use crate::lang::{lang, t, Lang};
use crate::{output, Config};

#[derive(Debug, Subcommand)]
pub enum OfficersCommand {
    /// Import the directory from a JSONL file (one officer per line); it replaces the stored one.
    #[command(after_help = "\
Each line is one officer:
  {\"officer_id\":\"o-341502001\",\"name\":\"李娜\",\"role\":\"officer\",\"region\":\"341502001\",
   \"channels\":{\"webhook\":\"https://…\"},\"substitute\":\"o-341502002\",\"on_duty\":true}
One delivery channel at most: the signed webhook, a WeCom group robot or a DingTalk robot with
signing. A robot's URL carries its key, so name the files holding it (and DingTalk's secret):
   \"channels\":{\"wecom\":{\"url_file\":\"/etc/doudi/robots/o-341502001.url\"}}
   \"channels\":{\"dingtalk\":{\"url_file\":\"/etc/doudi/robots/o-341502001.url\",
                            \"secret_file\":\"/etc/doudi/robots/o-341502001.secret\"}}
role is officer (a township or village: receives its warnings) or supervisor (a county: receives
escalations, approves relief above the township's limit). A warning goes to the officer of the
longest region prefix of the household's region; off duty, to their substitute, else to the
supervisor. Officers missing from a later import become inactive. Any bad line: nothing is imported,
every problem is listed with its line number.")]
    Import { file: PathBuf },
    /// List the officers and the regions they cover.
    List {
        #[arg(long)]
        json: bool,
    },
}

pub async fn run(config: &Config, cmd: OfficersCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        OfficersCommand::Import { file } => {
            let officers = match read_officers(&file)? {
                Ok(o) => o,
                Err(problems) => return Ok(output::nothing_imported(&file, &problems)),
            };
            let store = open_store(config).await?;
            let report = doudi_app::engine::import_directory(&store, &officers).await?;
            store.close().await;
            let (added, changed) = (report.added, report.changed);
            let (unchanged, inactive) = (report.unchanged, report.deactivated);
            say!(
                "干部名录：新增 {added}，变更 {changed}，未变 {unchanged}，停用 {inactive}",
                "officers: {added} added, {changed} changed, {unchanged} unchanged, {inactive} made inactive"
            );
            Ok(ExitCode::SUCCESS)
        }
        OfficersCommand::List { json } => {
            let store = open_store(config).await?;
            let directory = doudi_app::engine::directory(&store).await?;
            store.close().await;
            let mut all: Vec<&Officer> = directory_officers(&directory);
            all.sort_by(|a, b| {
                a.region
                    .cmp(&b.region)
                    .then(a.officer_id.cmp(&b.officer_id))
            });
            // Phone numbers masked, in JSON as in the table (which does not show them).
            let shown: Vec<Officer> = all
                .iter()
                .map(|o| {
                    let mut o = (*o).clone();
                    o.channels.phone = o.channels.phone.as_deref().map(doudi_app::mask::mask_phone);
                    o
                })
                .collect();
            let empty = || {
                tr!(
                    "没有干部（请导入干部名录：doudi officers import FILE）",
                    "no officers (import a directory: doudi officers import FILE)"
                )
            };
            output::print_list(json, &shown, empty, |o| {
                let duty = match o.on_duty {
                    true => t("在岗", "on duty"),
                    false => t("不在岗", "off duty"),
                };
                let substitute = o
                    .substitute
                    .as_deref()
                    .map(|s| tr!("，代班人 {s}", ", substitute {s}"))
                    .unwrap_or_default();
                let role = match (lang(), o.role) {
                    (Lang::En, r) => r.code(),
                    (Lang::Zh, Role::Officer) => "乡镇干部",
                    (Lang::Zh, Role::Supervisor) => "县级督办",
                };
                println!(
                    "{:<14} {role:<10} {:<12} {duty}{substitute}",
                    o.officer_id,
                    o.region.as_str(),
                );
            })?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn directory_officers(d: &Directory) -> Vec<&Officer> {
    d.officers().collect()
}

/// Read and check a directory file; on any problem return every problem as `line N: what`.
pub fn read_officers(path: &Path) -> anyhow::Result<Result<Vec<Officer>, Vec<String>>> {
    let file = std::fs::File::open(path).with_context(|| output::cannot("打开", "open", path))?;
    let mut officers = Vec::new();
    let mut problems = Vec::new();
    for (i, line) in std::io::BufReader::new(file).lines().enumerate() {
        let line = line.with_context(|| output::cannot("读取", "read", path))?;
        if line.trim().is_empty() {
            continue;
        }
        match serde_json::from_str::<Officer>(&line) {
            Ok(o) => officers.push(o),
            Err(e) => {
                let (n, what) = (i + 1, without_values(&e.to_string()));
                problems.push(tr!("第 {n} 行：{what}", "line {n}: {what}"))
            }
        }
    }
    if problems.is_empty() {
        if let Err(e) = Directory::new(officers.clone()) {
            problems.push(format!(" {e}"));
        }
    }
    Ok(if problems.is_empty() {
        Ok(officers)
    } else {
        Err(problems)
    })
}

/// A parse error without the values it quotes (a phone number or a name typed in the wrong
/// place must not be echoed to a terminal or a log); field and variant names stay.
fn without_values(msg: &str) -> String {
    let mut out = String::with_capacity(msg.len());
    let mut rest = msg;
    while let Some(start) = rest.find(['`', '"']) {
        let quote = rest[start..].chars().next().unwrap_or('"');
        let Some(len) = rest[start + 1..].find(quote) else {
            break;
        };
        let inner = &rest[start + 1..start + 1 + len];
        out.push_str(&rest[..start]);
        let is_name = !inner.is_empty()
            && inner
                .chars()
                .all(|c| c.is_ascii_lowercase() || c == '_' || c.is_ascii_digit())
            && inner.chars().next().is_some_and(|c| c.is_ascii_lowercase());
        if is_name {
            out.push(quote);
            out.push_str(inner);
            out.push(quote);
        } else {
            out.push_str("(value hidden)");
        }
        rest = &rest[start + 2 + len..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_errors_keep_field_names_and_hide_values() {
        let e = serde_json::from_str::<Officer>(
            r#"{"officer_id":"a","name":"李娜","role":"officer","region":"341502001","channels":{"phone":13800138000}}"#,
        )
        .unwrap_err()
        .to_string();
        let shown = without_values(&e);
        assert!(!shown.contains("13800138000"), "{shown}");
        let e = serde_json::from_str::<Officer>(
            r#"{"officer_id":"a","name":"李娜","role":"chief","region":"341502001"}"#,
        )
        .unwrap_err()
        .to_string();
        assert!(without_values(&e).contains("chief"), "{e}");
        assert_eq!(doudi_app::mask::mask_phone("13800138000"), "138******00");
    }
}
