//! The deployment files say only what doudi understands: every `DOUDI_…` variable names a real
//! setting, every doudi command line in them parses, every metric an alert uses is exported; and
//! they keep secrets secret: every secret comes from a file or a secret object, never a literal.

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use common::{doudi, doudi_env, ok};

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
                Some("yaml" | "yml" | "md" | "toml" | "conf" | "properties" | "sh")
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
            if var.ends_with("_FILE") {
                checked += secret_file_variable_is_known(&file, &var);
                continue;
            }
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

/// A `DOUDI_<NAME>_FILE` variable doudi reads: `doudi config` with it naming a file succeeds
/// (an unknown one is an unknown setting).
fn secret_file_variable_is_known(file: &Path, var: &str) -> usize {
    let dir = tempfile::tempdir().expect("temp dir");
    let secret = dir.path().join("secret");
    std::fs::write(&secret, "s3cr3t\n").expect("secret file");
    let out = doudi_env(
        dir.path(),
        &["config"],
        &[(var, secret.to_str().expect("UTF-8 path"))],
    );
    assert!(
        out.status.success(),
        "{}: {var} is not a secret file doudi reads:\n{}",
        file.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    1
}

/// The secret settings, as the reference configuration lists them (`#   DOUDI_…_FILE …`).
fn secret_file_variables() -> Vec<String> {
    let example = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/doudi.example.toml"),
    )
    .expect("deploy/doudi.example.toml");
    let vars: Vec<String> = example
        .lines()
        .filter_map(|l| l.strip_prefix("#   DOUDI_"))
        .filter_map(|l| l.split_whitespace().next())
        .filter(|v| v.ends_with("_FILE"))
        .map(|v| format!("DOUDI_{v}"))
        .collect();
    assert!(vars.len() >= 5, "doudi.example.toml lists {vars:?}");
    vars
}

/// Where a line assigns a value to a name that says it is secret (`…password…`, `…secret…`,
/// `…token…`, `…passphrase…`): `(name, value)`, the value up to the next delimiter.
fn secret_assignments(line: &str) -> Vec<(String, String)> {
    let lower = line.to_ascii_lowercase();
    let is_name = |c: char| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-');
    let mut out = Vec::new();
    for word in ["password", "secret", "token", "passphrase"] {
        for (at, _) in lower.match_indices(word) {
            let start = lower[..at]
                .rfind(|c: char| !is_name(c))
                .map_or(0, |i| i + 1);
            let end = lower[at..]
                .find(|c: char| !is_name(c))
                .map_or(lower.len(), |i| at + i);
            let after = line[end..].trim_start_matches(['"', '\'', ' ']);
            let Some(value) = after.strip_prefix(['=', ':']) else {
                continue;
            };
            let value = value.trim_start().trim_start_matches(['"', '\'']);
            let value: String = value
                .chars()
                .take_while(|c| !c.is_whitespace() && !matches!(c, '"' | '\'' | ',' | ';'))
                .collect();
            out.push((line[start..end].to_string(), value));
        }
    }
    out
}

/// A value that is no secret itself: none, a file, a secret object, or read from a file.
fn names_no_literal(name: &str, value: &str) -> bool {
    let name = name.to_ascii_lowercase();
    value.is_empty()
        || name.ends_with("_file")
        || name.ends_with(".location")
        // References to secret objects; PostgreSQL's hashing of passwords.
        || ["secrets", "secret", "secretname", "password_encryption"].contains(&name.as_str())
        || ["/", "./", "deploy/", "{file:", "%s", "$(cat ", "$$(cat "]
            .iter()
            .any(|p| value.starts_with(p))
}

#[test]
fn every_secret_in_deploy_comes_from_a_file_or_a_secret_object() {
    let mut checked = 0;
    for file in deploy_files() {
        let text = std::fs::read_to_string(&file).expect("deploy file");
        let ext = file.extension().and_then(|e| e.to_str()).unwrap_or("");
        for (n, line) in text.lines().enumerate() {
            let at = format!("{}:{}", file.display(), n + 1);
            // No URL carries a password.
            for (i, _) in line.match_indices("://") {
                let token: String = line[i + 3..]
                    .chars()
                    .take_while(|c| !c.is_whitespace() && !matches!(c, '/' | '"' | '`'))
                    .collect();
                if let Some((userinfo, _)) = token.split_once('@') {
                    assert!(
                        !userinfo.contains(':'),
                        "{at}: a URL with a password ({line:?}); give it apart, from a file"
                    );
                }
            }
            // doudi's secret settings only by their files.
            for var in secret_file_variables() {
                let direct = var.trim_end_matches("_FILE");
                for (i, _) in line.match_indices(direct) {
                    assert!(
                        line[i..].starts_with(&var),
                        "{at}: {direct} holds a secret in the environment; use {var}"
                    );
                    checked += 1;
                }
            }
            // Scripts, prose and comments name secrets; configuration assigns them.
            if matches!(ext, "md" | "sh") || line.trim_start().starts_with('#') {
                continue;
            }
            assert!(
                !line.contains("POSTGRES_PASSWORD:")
                    && !line.contains("secretRef")
                    && !line.contains("secretKeyRef")
                    && !line.contains("stringData"),
                "{at}: a secret in an environment or a manifest ({line:?}); mount it as a file"
            );
            for (name, value) in secret_assignments(line) {
                assert!(
                    names_no_literal(&name, &value),
                    "{at}: {name} is given a literal value ({value:?}); read it from a file"
                );
                checked += 1;
            }
        }
        // A Secret object in the manifests carries no data: secrets are created from files.
        for doc in text.split("\n---\n") {
            if doc.contains("\nkind: Secret") {
                assert!(
                    !doc.contains("\ndata:"),
                    "{}: a Secret with its values in the repository",
                    file.display()
                );
            }
        }
    }
    assert!(checked >= 20, "only {checked} secrets checked");
}

#[test]
fn the_literal_checks_catch_what_they_are_for() {
    let bad = [
        "      DOUDI_DELIVER__SECRET: ${DOUDI_DELIVER__SECRET:?set it}",
        "      POSTGRES_PASSWORD: change-me",
        "  sasl.jaas.config: ScramLoginModule required username=\"a\" password=\"hunter2\";",
        "\"sasl.password\" = \"hunter2\"",
    ];
    for line in bad {
        assert!(
            secret_assignments(line)
                .iter()
                .any(|(n, v)| !names_no_literal(n, v)),
            "{line}"
        );
    }
    let good = [
        "    DOUDI_STORE__PASSWORD_FILE: /etc/doudi/secrets/postgres-password",
        "  postgres_password: {file: ./secrets/postgres_password}",
        "        secret: {secretName: doudi-tls}",
        "secret = \"\"",
    ];
    for line in good {
        assert!(
            secret_assignments(line)
                .iter()
                .all(|(n, v)| names_no_literal(n, v)),
            "{line}"
        );
    }
}

#[test]
fn the_deployments_configuration_file_is_valid_and_the_configmap_holds_the_same() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy");
    let text = std::fs::read_to_string(root.join("doudi.toml")).expect("deploy/doudi.toml");
    let manifest = std::fs::read_to_string(root.join("k8s/10-config.yaml")).expect("10-config");
    let block = manifest
        .split_once("  doudi.toml: |\n")
        .expect("10-config.yaml has a doudi.toml")
        .1;
    let unindented: String = block
        .lines()
        .map(|l| l.strip_prefix("    ").unwrap_or(l))
        .map(|l| format!("{l}\n"))
        .collect();
    assert_eq!(
        unindented.trim_end(),
        text.trim_end(),
        "k8s/10-config.yaml's doudi.toml differs from deploy/doudi.toml"
    );
    // As doudi reads it, with the files it names present (under a temporary root).
    let dir = tempfile::tempdir().expect("temp dir");
    let mut local = String::new();
    for line in text.lines() {
        match line.split_once(".location\" = \"") {
            Some((key, path)) => {
                let path = path.trim_end_matches('"');
                let here = dir.path().join(path.trim_start_matches('/'));
                std::fs::create_dir_all(here.parent().expect("a folder")).expect("mkdir");
                std::fs::write(&here, "").expect("file");
                local.push_str(&format!(
                    "{key}.location\" = {:?}\n",
                    here.display().to_string()
                ));
            }
            None => local.push_str(&format!("{line}\n")),
        }
    }
    let config = dir.path().join("doudi.toml");
    std::fs::write(&config, local).expect("config");
    let printed = ok(doudi(
        dir.path(),
        &["config", "--config", config.to_str().expect("UTF-8")],
    ));
    assert!(
        printed.contains("\"security.protocol\" = \"SASL_SSL\""),
        "{printed}"
    );
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

/// Issue 22: the identity model is retrained on a schedule from the feed topics, by a CronJob in
/// Kubernetes and by a long-running `--every` service in compose.
#[test]
fn the_identity_model_is_retrained_on_a_schedule_in_compose_and_kubernetes() {
    let lines = command_lines();
    let train = |file: &str| {
        lines.iter().find(|(f, a)| {
            f.ends_with(file) && a.len() >= 4 && a[..3] == ["linkage", "train", "--brokers"]
        })
    };
    let (_, compose) = train("compose.yaml").expect("no `linkage train --brokers` in compose");
    assert!(
        compose.windows(2).any(|w| w[0] == "--every"),
        "compose trains once only: {compose:?}"
    );
    train("60-cronjobs.yaml").expect("no `linkage train --brokers` CronJob in deploy/k8s");
    let k8s = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/k8s/60-cronjobs.yaml"),
    )
    .unwrap();
    let job = k8s
        .split("\n---")
        .find(|d| d.contains("\"linkage\", \"train\""))
        .unwrap();
    assert!(
        job.contains("kind: CronJob") && job.contains("schedule:"),
        "{job}"
    );
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

#[test]
fn the_deliverer_publishes_every_notice_to_the_warnings_topic_in_compose_and_kubernetes() {
    let delivers: Vec<(PathBuf, Vec<String>)> = command_lines()
        .into_iter()
        .filter(|(_, args)| args[0] == "deliver")
        .collect();
    let files: BTreeSet<String> = delivers
        .iter()
        .filter_map(|(f, _)| f.file_name().map(|n| n.to_string_lossy().into_owned()))
        .collect();
    assert!(
        files.contains("compose.yaml") && files.contains("50-deliver.yaml"),
        "a deliverer in compose and in Kubernetes: {files:?}"
    );
    for (file, args) in delivers {
        assert!(
            args.windows(2)
                .any(|w| w[0] == "--brokers" && !w[1].is_empty()),
            "{}: `doudi {}` publishes nothing to the warnings topic (add --brokers)",
            file.display(),
            args.join(" ")
        );
    }
    // The topic it writes exists where the deliverer runs.
    let compose =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/compose.yaml"))
            .expect("deploy/compose.yaml");
    assert!(
        compose.contains("--topic warnings"),
        "compose creates no warnings topic"
    );
}

#[test]
fn sizing_says_what_two_workers_do() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy");
    let sizing = std::fs::read_to_string(root.join("SIZING.md")).expect("SIZING.md");
    assert!(
        !sizing.contains("takes over on failure)"),
        "SIZING.md calls the second worker a standby: both are active"
    );
    assert!(
        sizing.contains("both active"),
        "SIZING.md says what two workers do"
    );
    let compose = std::fs::read_to_string(root.join("compose.yaml")).expect("compose.yaml");
    let workers = compose
        .lines()
        .filter(|l| {
            l.trim_start()
                .starts_with("command: [\"run\", \"--brokers\"")
        })
        .count();
    let k8s = std::fs::read_to_string(root.join("k8s/30-worker.yaml")).expect("30-worker.yaml");
    assert_eq!(workers, 2, "compose runs the two workers SIZING.md counts");
    assert!(
        k8s.contains("replicas: 2"),
        "Kubernetes runs the two workers SIZING.md counts"
    );
}

/// `doudi run` (a Kafka worker, or a file run that keeps watching) started and sent SIGTERM after
/// `after`: its exit status, and what it printed on stderr.
fn terminated_after(
    dir: &Path,
    args: &[&str],
    after: std::time::Duration,
) -> (Option<i32>, String) {
    use std::process::{Command, Stdio};
    let child = Command::new(env!("CARGO_BIN_EXE_doudi"))
        .current_dir(dir)
        .env("DOUDI_LANG", "en")
        .args(args)
        .env_remove("DOUDI_CONFIG")
        .env_remove("DOUDI_DB")
        .env("DOUDI_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start doudi run");
    std::thread::sleep(after);
    let sent = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(sent.success());
    let out = child.wait_with_output().expect("doudi run ends");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn a_worker_sent_sigterm_in_its_first_second_drains_and_exits_0() {
    use std::time::Duration;
    let tmp = tempfile::tempdir().expect("temp dir");
    let dir = tmp.path();
    // A register to load (so that the worker is busy starting when the signal comes) and a
    // feeds folder for the file run.
    common::gen(dir, "300", "5", "data", &[]);
    let db = common::sqlite_url(dir, "doudi.db");
    ok(doudi(dir, &["import", "data/register.jsonl", "--db", &db]));
    // Nothing listens on port 9 of loopback: a worker that is still starting never gets far,
    // and one that got further must leave cleanly all the same.
    let kafka = ["run", "--brokers", "127.0.0.1:9", "--db", &db];
    let files = ["run", "--feeds", "data/feeds", "--db", &db];
    for (what, args) in [("Kafka worker", &kafka[..]), ("file run", &files[..])] {
        for ms in [100, 400] {
            let fresh = format!("sqlite://{}", dir.join(format!("fresh-{ms}.db")).display());
            let on_fresh: Vec<&str> = args
                .iter()
                .map(|a| if *a == db { fresh.as_str() } else { *a })
                .collect();
            // On the imported database, and on a fresh one (migrations still running).
            for args in [args, &on_fresh[..]] {
                let (code, stderr) = terminated_after(dir, args, Duration::from_millis(ms));
                assert_eq!(
                    code,
                    Some(0),
                    "a {what} sent SIGTERM after {ms} ms must drain and exit 0 ({args:?}):\n{stderr}"
                );
            }
        }
    }
}
