//! End to end with the real binary: the HTTP push's two other ways (issue 21, item 5).
//!
//! - A department's own export pushed through a feed profile (`?profile=NAME`, listed in
//!   `serve.push_profiles`): GB18030 CSV and Excel, as `doudi gen --native` writes them. The files
//!   kept in the feeds folder are read by `doudi run --once` to the very state of a run over the
//!   same exports dropped in a folder; a retry is a duplicate; a bad row, a wrong media type, an
//!   unknown profile or one of another source refuse the batch whole and store nothing.
//! - Kafka mode (`serve.push_to = "kafka"`): pushed events are on the source's topic, keyed by
//!   person, the profile in the `doudi-profile` header, before the answer; a worker ingests them.

mod common;
#[path = "common/kafka.rs"]
mod kafka;

use std::path::Path;
use std::time::Duration;

use common::{create_token, doudi, export_files as exports, gen, ok, sqlite_url, status, Server};
use serde_json::Value;

const XLSX: &str = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet";

fn feeder(dir: &Path, db: &str, source: &str) -> String {
    create_token(dir, db, "feeder", "34", &["--source", source])
}

/// `doudi serve` with `config` (TOML) on a free port; waits until it is ready.
async fn serve(dir: &Path, db: &str, config: &str) -> (Server, String) {
    std::fs::write(dir.join("serve.toml"), config).expect("config");
    let port = common::free_port();
    let server = Server(
        common::serve_command(dir, &["--config", "serve.toml", "serve", "--db", db], port)
            .spawn()
            .expect("start doudi serve"),
    );
    let base = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::new();
    let up = common::ready(&http, &base, 400).await;
    assert!(up, "doudi serve did not become ready");
    (server, base)
}

async fn push(
    base: &str,
    token: &str,
    source: &str,
    profile: Option<&str>,
    media: &str,
    body: Vec<u8>,
) -> (u16, Value) {
    let mut url = format!("{base}/api/feeds/{source}");
    if let Some(p) = profile {
        url.push_str(&format!("?profile={p}"));
    }
    let r = reqwest::Client::new()
        .post(url)
        .bearer_auth(token)
        .header("content-type", media)
        // The messages read below are the English ones (Chinese is the default).
        .header("accept-language", "en")
        .body(body)
        .timeout(Duration::from_secs(120))
        .send()
        .await
        .expect("push");
    let status = r.status().as_u16();
    let text = r.text().await.expect("answer");
    (
        status,
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}")),
    )
}

/// [`push`] of a CSV export through the `yibao-settlement` profile as `health_insurance`.
async fn push_settlement(base: &str, token: &str, body: Vec<u8>) -> (u16, Value) {
    push(
        base,
        token,
        "health_insurance",
        Some("yibao-settlement"),
        "text/csv",
        body,
    )
    .await
}

/// [`push`] of envelope lines (JSON lines) as `health_insurance`.
async fn push_envelopes(base: &str, token: &str, body: Vec<u8>) -> (u16, Value) {
    push(
        base,
        token,
        "health_insurance",
        None,
        "application/x-ndjson",
        body,
    )
    .await
}

/// Files of `folder` (recursively), as (relative path, bytes).
fn tree(folder: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    if !folder.exists() {
        return out;
    }
    let mut stack = vec![folder.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).expect("dir") {
            let p = e.expect("entry").path();
            if p.is_dir() {
                stack.push(p);
            } else {
                let rel = p.strip_prefix(folder).expect("under").display().to_string();
                out.push((rel, std::fs::read(&p).expect("read")));
            }
        }
    }
    out.sort();
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exports_pushed_through_a_profile_end_as_the_same_exports_dropped_in_a_folder() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let dir = tmp.path();
    gen(dir, "200", "7", ".", &["--native"]);
    let [reference, db] = common::imported_stores(dir, "", ["reference.db", "doudi.db"]);
    // The reference: the GB18030 settlement lists and the Excel appraisals dropped in folders.
    let dropped = dir.join("dropped");
    for name in ["yibao-settlement", "zhujian-dangerous-house"] {
        let to = dropped.join(name);
        std::fs::create_dir_all(&to).expect("folder");
        for (rel, bytes) in tree(&dir.join("native").join(name)) {
            std::fs::write(to.join(rel), bytes).expect("copy");
        }
    }
    ok(doudi(
        dir,
        &["run", "--feeds", "dropped", "--once", "--db", &reference],
    ));
    let want = status(dir, &reference);
    assert!(want["received"].as_u64().unwrap_or(0) > 100, "{want}");

    let hi = feeder(dir, &db, "health_insurance");
    let housing = feeder(dir, &db, "housing");
    let (server, base) = serve(
        dir,
        &db,
        "[feeds]\ndir = \"pushed\"\n[serve]\npush_profiles = [\"yibao-settlement\", \"zhujian-dangerous-house\"]\n",
    )
    .await;

    let settlements = exports(&dir.join("native/yibao-settlement"));
    let appraisals = exports(&dir.join("native/zhujian-dangerous-house"));
    assert!(!settlements.is_empty() && !appraisals.is_empty());

    // Refused whole, nothing stored: a wrong media type, an unknown profile, a profile of
    // another source, a bad row (named by row, never by value).
    let first = std::fs::read(&settlements[0]).expect("export");
    for (token, source, profile, media, named) in [
        (
            &hi,
            "health_insurance",
            "yibao-settlement",
            "application/x-ndjson",
            "text/csv",
        ),
        (
            &hi,
            "health_insurance",
            "no-such",
            "text/csv",
            "yibao-settlement",
        ),
        (
            &housing,
            "housing",
            "yibao-settlement",
            "text/csv",
            "/api/feeds/health_insurance",
        ),
    ] {
        let (s, v) = push(&base, token, source, Some(profile), media, first.clone()).await;
        assert_eq!(s, 422, "{v}");
        let msg = v["error"]["message"].as_str().unwrap_or("");
        assert!(msg.contains(named), "{v}");
    }
    // The first data row's settlement date (`,YYYYMMDD,` after the title and header lines) made
    // impossible: month 13.
    let mut bad = first.clone();
    let body_at = bad
        .iter()
        .enumerate()
        .filter(|(_, b)| **b == b'\n')
        .nth(1)
        .map(|(i, _)| i + 1)
        .expect("a title and a header line");
    let at = (body_at..bad.len() - 10)
        .find(|&i| {
            bad[i] == b','
                && &bad[i + 1..i + 3] == b"20"
                && bad[i + 3..i + 9].iter().all(u8::is_ascii_digit)
                && bad[i + 9] == b','
        })
        .expect("an eight-digit date in a data row");
    let row = bad[..at].iter().filter(|b| **b == b'\n').count() + 1;
    bad[at + 5..at + 7].copy_from_slice(b"13");
    let (s, v) = push_settlement(&base, &hi, bad).await;
    assert_eq!(s, 422, "{v}");
    let msg = v["error"]["message"].as_str().unwrap_or("");
    assert!(
        msg.contains(&format!("row {row}")) && msg.contains("nothing was stored"),
        "{msg}"
    );
    assert!(
        tree(&dir.join("pushed")).is_empty(),
        "a refused batch left files"
    );

    // Every export pushed as the department wrote it.
    let mut accepted = 0;
    for f in &settlements {
        let (s, v) = push_settlement(&base, &hi, std::fs::read(f).expect("export")).await;
        assert_eq!(s, 200, "{v}");
        assert!(
            v["profile"]
                .as_str()
                .unwrap_or("")
                .starts_with("yibao-settlement@"),
            "{v}"
        );
        accepted += v["accepted"].as_u64().expect("accepted");
    }
    for f in &appraisals {
        let (s, v) = push(
            &base,
            &housing,
            "housing",
            Some("zhujian-dangerous-house"),
            XLSX,
            std::fs::read(f).expect("export"),
        )
        .await;
        assert_eq!(s, 200, "{v}");
        accepted += v["accepted"].as_u64().expect("accepted");
    }
    assert!(accepted > 0);
    // Kept as sent, one file a batch, beside the profile.
    let kept = tree(&dir.join("pushed"));
    let exports_kept = kept.iter().filter(|(n, _)| n.contains("/push-")).count();
    assert_eq!(
        exports_kept,
        settlements.len() + appraisals.len(),
        "{:?}",
        kept.iter().map(|k| &k.0).collect::<Vec<_>>()
    );
    assert_eq!(
        kept.iter()
            .filter(|(n, _)| n.ends_with("profile.toml"))
            .count(),
        2
    );
    assert!(
        kept.iter().any(|(_, b)| *b == first),
        "the export is kept byte for byte"
    );

    // A retry of a batch already kept: nothing new written.
    let (s, v) = push_settlement(&base, &hi, first.clone()).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["accepted"], 0, "{v}");
    assert_eq!(tree(&dir.join("pushed")).len(), kept.len());
    // After a restart the service no longer remembers the ids (not yet in the store either): the
    // very same export, already kept, is answered as duplicates all the same.
    drop(server);
    let (_server, base) = serve(
        dir,
        &db,
        &std::fs::read_to_string(dir.join("serve.toml")).expect("config"),
    )
    .await;
    let (s, v) = push_settlement(&base, &hi, first.clone()).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["accepted"], 0, "{v}");
    assert!(v["duplicates"].as_u64().unwrap_or(0) > 0, "{v}");
    assert_eq!(v["file"], Value::Null, "{v}");
    assert_eq!(tree(&dir.join("pushed")).len(), kept.len());

    ok(doudi(
        dir,
        &["run", "--feeds", "pushed", "--once", "--db", &db],
    ));
    assert_eq!(status(dir, &db), want, "pushed exports vs dropped exports");
    // The profile version is stored with the events, as for dropped exports.
    let pool = sqlx::SqlitePool::connect(&db)
        .await
        .expect("open the store");
    let profiles: Vec<String> = sqlx::query_scalar(
        "SELECT DISTINCT profile FROM events WHERE profile IS NOT NULL ORDER BY 1",
    )
    .fetch_all(&pool)
    .await
    .expect("profiles");
    assert_eq!(profiles.len(), 2, "{profiles:?}");
    assert!(profiles[0].starts_with("yibao-settlement@"), "{profiles:?}");
    assert!(
        profiles[1].starts_with("zhujian-dangerous-house@"),
        "{profiles:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_kafka_mode_a_push_is_on_the_topic_before_the_answer_and_a_worker_ingests_it() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let dir = tmp.path();
    gen(dir, "200", "8", ".", &["--native"]);
    let db = sqlite_url(dir, "doudi.db");
    ok(doudi(dir, &["import", "register.jsonl", "--db", &db]));
    let broker = kafka::Broker::start(dir, 4);
    let hi = feeder(dir, &db, "health_insurance");
    let (_server, base) = serve(
        dir,
        &db,
        &format!(
            "[kafka]\nbrokers = \"{}\"\n[serve]\npush_to = \"kafka\"\npush_profiles = [\"yibao-settlement\"]\n",
            broker.bootstrap
        ),
    )
    .await;

    // Envelope lines.
    let mut lines = Vec::new();
    for f in exports(&dir.join("feeds/health_insurance")) {
        for l in std::fs::read_to_string(f).expect("feed").lines() {
            if !l.trim().is_empty() && lines.len() < 150 {
                lines.push(l.to_string());
            }
        }
    }
    let body: String = lines.iter().map(|l| format!("{l}\n")).collect();
    let (s, v) = push_envelopes(&base, &hi, body.clone().into_bytes()).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["accepted"].as_u64(), Some(lines.len() as u64), "{v}");
    assert_eq!(v["topic"], "health_insurance", "{v}");
    assert!(v.get("file").is_none(), "{v}");
    // Acknowledged means on the topic: read back at once.
    let on_topic = kafka::read_topic(&broker.bootstrap, "health_insurance");
    assert_eq!(on_topic.len(), lines.len());
    // Keyed by person (the generated feed has records without an ID number: those go unkeyed).
    let keyed = on_topic.iter().filter(|m| m.key.is_some()).count();
    assert!(
        keyed * 10 >= on_topic.len() * 8,
        "{keyed} of {} keyed",
        on_topic.len()
    );

    // An export through its profile: the profile's name@version rides in the header.
    let export = exports(&dir.join("native/yibao-settlement"))
        .into_iter()
        .next()
        .expect("an export");
    let (s, v) = push_settlement(&base, &hi, std::fs::read(&export).expect("export")).await;
    assert_eq!(s, 200, "{v}");
    let rows = v["accepted"].as_u64().expect("accepted");
    let on_topic = kafka::read_topic(&broker.bootstrap, "health_insurance");
    let with_profile = on_topic
        .iter()
        .filter(|m| {
            m.headers
                .get("doudi-profile")
                .is_some_and(|p| p.starts_with("yibao-settlement@"))
        })
        .count() as u64;
    // The generated envelopes and the native export describe the same year: ids differ by design
    // (the export's are derived from its columns), so none of the export's is a duplicate.
    assert_eq!(with_profile, rows);
    assert_eq!(on_topic.len() as u64, lines.len() as u64 + rows);

    // A worker ingests them all; afterwards the same batch is answered as duplicates.
    let total = lines.len() as u64 + rows;
    let mut worker = kafka::worker(dir, &broker.bootstrap, &db, &[]);
    let got = kafka::wait_received(dir, &db, total, Duration::from_secs(120));
    assert_eq!(
        got["received"].as_u64(),
        Some(total),
        "{got}\n{}",
        kafka::logs(dir)
    );
    kafka::terminate(&worker);
    let _ = worker.wait();
    let (s, v) = push_envelopes(&base, &hi, body.into_bytes()).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["duplicates"].as_u64(), Some(lines.len() as u64), "{v}");
    assert_eq!(v["topic"], Value::Null, "{v}");
    assert_eq!(
        kafka::read_topic(&broker.bootstrap, "health_insurance").len() as u64,
        total,
        "duplicates are not produced again"
    );
}
