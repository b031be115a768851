//! The deployment files say only what doudi understands: every `DOUDI_…` variable names a real
//! setting, every doudi command line in them parses, every metric an alert uses is exported.

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use common::doudi;

fn deploy_files() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy");
    let mut out = Vec::new();
    let mut dirs = vec![root];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).expect("deploy/ is readable") {
            let path = entry.expect("deploy/ entry").path();
            if path.is_dir() {
                dirs.push(path);
            } else if matches!(
                path.extension().and_then(|e| e.to_str()),
                Some("yaml" | "yml" | "md")
            ) || path.file_name().is_some_and(|n| n == "Dockerfile")
            {
                out.push(path);
            }
        }
    }
    out.sort();
    assert!(out.len() >= 8, "deploy/ lost its files: {out:?}");
    out
}

/// `DOUDI_SECTION__KEY` names in a text (not DOUDI_CONFIG / DOUDI_DB, the two flag variables).
fn setting_variables(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let bytes = text.as_bytes();
    let mut i = 0;
    while let Some(found) = text[i..].find("DOUDI_") {
        let start = i + found;
        let mut end = start + "DOUDI_".len();
        while end < bytes.len()
            && (bytes[end].is_ascii_uppercase()
                || bytes[end].is_ascii_digit()
                || bytes[end] == b'_')
        {
            end += 1;
        }
        let name = &text[start..end];
        if name.contains("__") && !name.starts_with("DOUDI_TEST") {
            out.insert(name.to_string());
        }
        i = end;
    }
    out
}

#[test]
fn every_setting_variable_names_a_real_setting() {
    let example = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/doudi.example.toml"),
    )
    .expect("deploy/doudi.example.toml");
    let defaults: toml::Table = example.parse().expect("the example configuration parses");
    let mut checked = 0;
    for file in deploy_files() {
        let text = std::fs::read_to_string(&file).expect("deploy file");
        for var in setting_variables(&text) {
            let path: Vec<String> = var["DOUDI_".len()..]
                .split("__")
                .map(str::to_lowercase)
                .collect();
            let mut at = &defaults;
            for (n, part) in path.iter().enumerate() {
                match at.get(part) {
                    Some(toml::Value::Table(t)) if n + 1 < path.len() => at = t,
                    Some(v) if n + 1 == path.len() && !v.is_table() => {}
                    _ => panic!(
                        "{}: {var} is not a doudi setting (no {} in deploy/doudi.example.toml)",
                        file.display(),
                        path.join(".")
                    ),
                }
            }
            checked += 1;
        }
    }
    assert!(checked >= 5, "only {checked} setting variables found");
}

/// The doudi command lines of the compose file and the Kubernetes manifests: flow sequences after
/// `command:` or `args:` (one per line), without the shell loops.
fn command_lines() -> Vec<(PathBuf, Vec<String>)> {
    let mut out = Vec::new();
    for file in deploy_files() {
        if file.extension().is_some_and(|e| e == "md") {
            continue;
        }
        let text = std::fs::read_to_string(&file).expect("deploy file");
        for line in text.lines() {
            let line = line.trim();
            let Some(rest) = line
                .strip_prefix("command: [")
                .or_else(|| line.strip_prefix("args: ["))
            else {
                continue;
            };
            let Some(inner) = rest.strip_suffix(']') else {
                continue;
            };
            let args: Vec<String> = inner
                .split(',')
                .map(|a| a.trim().trim_matches('"').to_string())
                .map(|a| {
                    if a.starts_with("$(") {
                        "127.0.0.1:9092".to_string()
                    } else {
                        a
                    }
                })
                .collect();
            out.push((file.clone(), args));
        }
    }
    out
}

#[test]
fn every_command_line_parses() {
    let lines = command_lines();
    let subcommands: BTreeSet<&str> = lines.iter().map(|(_, a)| a[0].as_str()).collect();
    for needed in [
        "run",
        "serve",
        "deliver",
        "migrate",
        "warnings",
        "crosscheck",
    ] {
        assert!(
            subcommands.contains(needed),
            "no `doudi {needed}` found in deploy/ ({subcommands:?})"
        );
    }
    for (file, args) in lines {
        let mut full = args.clone();
        full.push("--help".to_string());
        let refs: Vec<&str> = full.iter().map(String::as_str).collect();
        let dir = tempfile::tempdir().expect("temp dir");
        let out = doudi(dir.path(), &refs);
        assert!(
            out.status.success(),
            "{}: `doudi {}` does not parse:\n{}",
            file.display(),
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn every_metric_an_alert_uses_is_exported() {
    // One of each, so that every family has a sample to render.
    doudi_telemetry::events_consumed("housing", 1);
    doudi_telemetry::set_consumer_lag("housing", 0, 1);
    doudi_telemetry::observe_stage("batch", 0.01);
    doudi_telemetry::dead_letters("housing", "bad_json", 1);
    doudi_telemetry::warnings("red", "opened", 1);
    doudi_telemetry::db_error("batch");
    doudi_telemetry::http_request("GET", "/healthz", 200, 0.001);
    doudi_telemetry::auth_failure();
    let exported = doudi_telemetry::render();
    let alerts = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/prometheus/alerts.yml"),
    )
    .expect("deploy/prometheus/alerts.yml");
    let mut used = BTreeSet::new();
    for (i, _) in alerts.match_indices("doudi_") {
        let name: String = alerts[i..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        used.insert(name);
    }
    assert!(used.len() >= 6, "alerts use only {used:?}");
    for name in used {
        assert!(
            exported.contains(&format!("\n{name}{{")) || exported.contains(&format!("\n{name} ")),
            "alerts.yml uses {name}, which doudi does not export"
        );
    }
}
