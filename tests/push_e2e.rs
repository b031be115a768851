//! End to end with the real binary: a department's feed pushed over HTTP to `doudi serve`
//! (`POST /api/feeds/health_insurance`, a feeder token from `doudi tokens create`), then
//! `doudi run --once` ingests the pushed events from the feeds folder. The store ends as the one
//! that read the same feed from files; the same batches pushed again are duplicates, appended
//! nowhere and ingested nowhere.

mod common;

use std::time::Duration;

use common::{doudi, ok, Server};
use serde_json::Value;

use common::status;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pushed_events_are_ingested_by_run_as_if_read_from_files() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let dir = tmp.path();
    common::gen(dir, "300", "7", ".", &[]);
    let [reference, db] = common::imported_stores(dir, "", ["reference.db", "doudi.db"]);
    ok(doudi(
        dir,
        &["run", "--feeds", "feeds", "--once", "--db", &reference],
    ));

    // The health-insurance feed is held back from the folder: it will come by HTTP.
    let held = dir.join("held");
    std::fs::rename(dir.join("feeds/health_insurance"), &held).expect("hold back");
    let mut files: Vec<_> = std::fs::read_dir(&held)
        .expect("held")
        .map(|e| e.expect("entry").path())
        .collect();
    files.sort();
    let lines: Vec<String> = files
        .iter()
        .flat_map(|f| {
            std::fs::read_to_string(f)
                .expect("read")
                .lines()
                .filter(|l| !l.trim().is_empty())
                .map(str::to_string)
                .collect::<Vec<_>>()
        })
        .collect();
    assert!(lines.len() > 500, "{} lines", lines.len());

    let created: Value = serde_json::from_str(&ok(doudi(
        dir,
        &[
            "tokens",
            "create",
            "--role",
            "feeder",
            "--source",
            "health_insurance",
            "--region",
            "34",
            "--label",
            "医保 exchange",
            "--json",
            "--db",
            &db,
        ],
    )))
    .expect("token json");
    assert_eq!(created["feed_source"], "health_insurance", "{created}");
    let feeder = created["token"].as_str().expect("token").to_string();
    let listed = ok(doudi(dir, &["tokens", "list", "--db", &db]));
    assert!(
        listed.contains("feeder") && listed.contains("health_insurance"),
        "{listed}"
    );
    // A feeder without a source, or a source on another role: refused.
    for args in [
        &["--role", "feeder", "--region", "34"][..],
        &["--role", "auditor", "--region", "34", "--source", "housing"][..],
    ] {
        let mut all = vec!["tokens", "create", "--db", &db];
        all.extend_from_slice(args);
        assert_eq!(doudi(dir, &all).status.code(), Some(2), "{args:?}");
    }

    let port = common::free_port();
    let _server = Server(
        common::serve_command(dir, &["serve", "--db", &db], port)
            .env("DOUDI_FEEDS__DIR", "feeds")
            .spawn()
            .expect("start doudi serve"),
    );
    let base = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .expect("client");
    let up = common::ready(&http, &base, 200).await;
    assert!(up, "doudi serve did not become ready");

    let push = |batch: String| {
        let http = http.clone();
        let url = format!("{base}/api/feeds/health_insurance");
        let feeder = feeder.clone();
        async move {
            let r = http
                .post(url)
                .bearer_auth(feeder)
                .header("content-type", "application/x-ndjson")
                .body(batch)
                .send()
                .await
                .expect("push");
            let status = r.status().as_u16();
            let text = r.text().await.expect("answer");
            let body: Value = serde_json::from_str(&text).expect("json answer");
            (status, body)
        }
    };
    let batches: Vec<String> = lines
        .chunks(200)
        .map(|c| c.iter().map(|l| format!("{l}\n")).collect())
        .collect();
    let mut accepted = 0;
    for b in &batches {
        let (s, v) = push(b.clone()).await;
        assert_eq!(s, 200, "{v}");
        accepted += v["accepted"].as_u64().expect("accepted");
    }
    assert_eq!(accepted as usize, lines.len());
    let pushed_dir = dir.join("feeds/health_insurance");
    let pushed: Vec<_> = std::fs::read_dir(&pushed_dir)
        .expect("pushed folder")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        // The hidden `.push.lock` (serialising writers across processes) is not a feed file.
        .filter(|n| !n.starts_with('.'))
        .collect();
    assert_eq!(pushed.len(), 1, "{pushed:?}");
    assert!(pushed[0].starts_with("push-") && pushed[0].ends_with(".jsonl"));

    // `doudi run` picks the pushed file up like any feed file.
    ok(doudi(
        dir,
        &["run", "--feeds", "feeds", "--once", "--db", &db],
    ));
    let got = status(dir, &db);
    assert_eq!(got, status(dir, &reference), "pushed vs read from files");

    // Pushed again after ingestion: every event a duplicate (stored), nothing appended, and a
    // second run changes nothing.
    let before = std::fs::read(pushed_dir.join(&pushed[0])).expect("pushed file");
    let (s, v) = push(batches[0].clone()).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["accepted"], 0, "{v}");
    assert_eq!(v["duplicates"].as_u64(), Some(200), "{v}");
    assert_eq!(
        std::fs::read(pushed_dir.join(&pushed[0])).expect("file"),
        before
    );
    ok(doudi(
        dir,
        &["run", "--feeds", "feeds", "--once", "--db", &db],
    ));
    assert_eq!(status(dir, &db), got);
}
