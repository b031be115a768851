//! End to end with the real binary: `doudi gen` data through `doudi run`, tokens from
//! `doudi tokens`, and `doudi serve` (configured from the environment) answering an officer and an
//! auditor — with every log at debug level. No register ID number or name may appear in any log
//! line; the audit trail records the service's reads and moves and still verifies; SIGTERM stops
//! the server cleanly.

mod common;

use std::io::Read;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::{doudi_env, ok};
use serde_json::Value;

const DEBUG: &[(&str, &str)] = &[("DOUDI_LOG", "debug"), ("RUST_LOG", "debug")];

/// Every member's ID number and name in the generated register.
fn personal_data(dir: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(dir.join("register.jsonl")).expect("register");
    let mut out = Vec::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let h: Value = serde_json::from_str(line).expect("household");
        for m in h["members"].as_array().expect("members") {
            out.push(m["id_number"].as_str().expect("id").to_string());
            out.push(m["name"].as_str().expect("name").to_string());
        }
    }
    out
}

fn logs_of(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A token of `role` for `region` (`more`: `--officer`, …), created with debug logging.
fn token(dir: &Path, db: &str, role: &str, region: &str, more: &[&str]) -> String {
    common::create_token_env(dir, DEBUG, db, role, region, more)
}

/// `POST /sign-in` of the form with `token`.
async fn sign_in(http: &reqwest::Client, base: &str, token: &str) -> reqwest::Response {
    http.post(format!("{base}/sign-in"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("token={token}"))
        .send()
        .await
        .expect("sign in")
}

async fn get(http: &reqwest::Client, url: &str, token: &str) -> (u16, String) {
    let r = http
        .get(url)
        .header("authorization", format!("Bearer {token}"))
        .send()
        .await
        .expect("request");
    let status = r.status().as_u16();
    (status, r.text().await.expect("body"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_personal_data_reaches_the_logs_of_the_pipeline_or_the_service() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let dir = tmp.path();
    let db = format!("sqlite://{}", dir.join("doudi.db").display());
    let mut logs = String::new();
    for args in [
        &[
            "gen",
            "--households",
            "400",
            "--seed",
            "7",
            "--out",
            ".",
            "--hardship-share",
            "0.3",
        ][..],
        &["import", "register.jsonl", "--db", &db],
        &["officers", "import", "officers.jsonl", "--db", &db],
        &["run", "--feeds", "feeds", "--once", "--db", &db],
    ] {
        let out = doudi_env(dir, args, DEBUG);
        logs.push_str(&logs_of(&out));
        ok(out);
    }
    let secrets = personal_data(dir);
    assert!(secrets.len() > 400, "the register has members");

    // Tokens: an officer of a township with warnings, and an auditor.
    let warnings: Value = serde_json::from_str(&ok(doudi_env(
        dir,
        &["warnings", "list", "--json", "--limit", "1000", "--db", &db],
        &[],
    )))
    .expect("warnings");
    let w = common::assigned_warning(&warnings);
    let officer = w["assigned_to"].as_str().expect("officer").to_string();
    let township = &w["region_code"].as_str().expect("region")[..9];
    let household = w["household_id"].as_str().expect("household").to_string();
    let warning_id = w["warning_id"].as_i64().expect("id");
    let more = ["--officer", &officer, "--expires-in", "30"];
    let officer_token = token(dir, &db, "officer", township, &more);
    let auditor_token = token(dir, &db, "auditor", "34", &[]);
    let spare = token(dir, &db, "admin", "34", &[]);
    let listed = ok(doudi_env(dir, &["tokens", "list", "--db", &db], &[]));
    assert!(
        listed.contains("officer") && listed.contains(&officer),
        "{listed}"
    );
    assert!(
        !listed.contains(&officer_token),
        "a token is never shown again"
    );
    ok(doudi_env(dir, &["tokens", "revoke", "3", "--db", &db], &[]));
    let again = doudi_env(dir, &["tokens", "revoke", "3", "--db", &db], &[]);
    assert_eq!(again.status.code(), Some(2));

    // The service, its address from the environment, logs at debug into a file.
    let port = common::free_port();
    let log_path = dir.join("serve.log");
    let log_file = std::fs::File::create(&log_path).expect("log file");
    let mut server = common::serve_command(dir, &["serve", "--db", &db], port)
        .env("DOUDI_LOG", "debug")
        .env("RUST_LOG", "debug")
        .stderr(log_file)
        .spawn()
        .expect("start doudi serve");
    let base = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    let up = common::ready(&http, &base, 200).await;
    assert!(up, "doudi serve did not become ready");

    // What the officer and the auditor read, each answered.
    let household_path = format!("/api/households/{household}");
    for (path, token) in [
        ("/api/warnings".to_string(), &officer_token),
        (format!("/api/warnings/{warning_id}"), &officer_token),
        (household_path.clone(), &officer_token),
        (format!("{household_path}/timeline"), &officer_token),
        (format!("{household_path}/trace"), &auditor_token),
    ] {
        let (s, body) = get(&http, &format!("{base}{path}"), token).await;
        assert_eq!(s, 200, "{path}: {body}");
        if path == household_path {
            assert!(
                secrets.iter().any(|p| body.contains(p.as_str())),
                "the officer sees the household in clear"
            );
        }
    }
    // Pages: sign in (a session of its own, not the API token, in the cookie).
    let r = sign_in(&http, &base, &auditor_token).await;
    assert_eq!(r.status().as_u16(), 303);
    let session = r
        .headers()
        .get("set-cookie")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .unwrap_or("")
        .to_string();
    assert!(
        session.starts_with("doudi_session=") && !session.contains(&auditor_token),
        "{session}"
    );
    let r = http
        .get(format!("{base}/households/{household}/trace"))
        .header("cookie", &session)
        .send()
        .await
        .expect("trace page");
    assert_eq!(r.status().as_u16(), 200);
    // A path carrying an ID number (someone pasted it where a household id goes), a revoked token.
    let (s, _) = get(
        &http,
        &format!("{base}/api/households/{}", secrets[0]),
        &auditor_token,
    )
    .await;
    assert_eq!(s, 404);
    let (s, _) = get(&http, &format!("{base}/api/warnings"), &spare).await;
    assert_eq!(s, 401);
    let r = http
        .post(format!("{base}/api/warnings/{warning_id}/acknowledge"))
        .header("authorization", format!("Bearer {officer_token}"))
        .header("content-type", "application/json")
        .body(r#"{"note":"已电话联系"}"#)
        .send()
        .await
        .expect("acknowledge");
    assert_eq!(
        r.status().as_u16(),
        200,
        "{}",
        r.text().await.unwrap_or_default()
    );
    let r = sign_in(&http, &base, &officer_token).await;
    assert_eq!(r.status().as_u16(), 303);
    let metrics = http
        .get(format!("{base}/metrics"))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    assert!(
        metrics.contains("route=\"/api/households/{id}\""),
        "{metrics}"
    );

    // SIGTERM: the server finishes and exits 0.
    let killed = Command::new("kill")
        .args(["-TERM", &server.id().to_string()])
        .status()
        .expect("kill");
    assert!(killed.success());
    let mut exited = None;
    for _ in 0..200 {
        if let Some(status) = server.try_wait().expect("wait") {
            exited = Some(status);
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let Some(status) = exited else {
        let _ = server.kill();
        panic!("doudi serve did not stop on SIGTERM");
    };
    assert!(status.success(), "doudi serve exited with {status}");
    let mut served = String::new();
    std::fs::File::open(&log_path)
        .and_then(|mut f| f.read_to_string(&mut served))
        .expect("read serve log");
    assert!(served.contains("DEBUG"), "debug logging was on: {served}");
    assert!(served.contains("shutting down"), "{served}");
    logs.push_str(&served);

    for secret in &secrets {
        if let Some(at) = logs.find(secret.as_str()) {
            let line_start = logs[..at].rfind('\n').map_or(0, |i| i + 1);
            let line_end = logs[at..].find('\n').map_or(logs.len(), |i| at + i);
            panic!(
                "personal data of the register in a log line: {}",
                logs[line_start..line_end].replace(secret.as_str(), "<HERE>")
            );
        }
    }

    // The service's reads and moves are in the audit trail, which still verifies.
    let trail: Value = serde_json::from_str(&ok(doudi_env(
        dir,
        &["audit", "list", "--json", "--limit", "100000", "--db", &db],
        &[],
    )))
    .expect("audit json");
    let records = trail.as_array().expect("records");
    let has = |action: &str, actor: &str| {
        records
            .iter()
            .any(|r| r["action"] == action && r["actor"].as_str() == Some(actor))
    };
    assert!(has("warning_acknowledge", &officer));
    assert!(has("read_personal_data", &officer));
    assert!(
        has("read_personal_data", "token:2"),
        "the auditor's trace read"
    );
    assert!(records.iter().any(|r| r["action"] == "token_revoked"));
    let verified = ok(doudi_env(dir, &["audit", "verify", "--db", &db], &[]));
    assert!(verified.contains("intact"), "{verified}");
}
