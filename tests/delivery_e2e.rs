//! End to end, delivery of notices to officers over signed webhooks: the pipeline opens warnings
//! (their notices committed with them, the outbox), `doudi deliver` posts them to a real HTTP
//! receiver on loopback (axum, in the test), which verifies each signature and applies each item
//! once by its idempotency key, as a receiver should.
//!
//! The same notices reach officers whose directory entry names a WeCom (企业微信) group robot or a
//! DingTalk (钉钉) custom robot: loopback receivers check the documented request formats, DingTalk's
//! signature (computed here apart from doudi, with the `hmac`, `sha2` and `base64` crates) and its
//! timestamp's freshness, and answer `errcode` 0 or an error code (a retry proven).
//!
//! "Down for a minute" is simulated by a down window counted in requests (connections refused,
//! then 503 answers) with short backoff settings (20–100 ms): the retries, their count and the
//! outcome are the same as with real minutes, and nothing here asserts a duration.

mod common;

use std::collections::HashMap;
use std::net::TcpListener;
use std::path::Path;
use std::process::{Command, Output};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::{Path as UrlPath, State};
use axum::http::{HeaderMap, StatusCode};
use common::ok;
use doudi_store::{NoticeDelivery, NoticeRow, Store};
use serde_json::{json, Value};

const SECRET: &str = "test-secret-0123456789";

fn doudi(dir: &Path, args: &[&str]) -> Output {
    doudi_cmd(dir, args).output().expect("run doudi")
}

/// [`common::doudi_command`] with the webhook signing key set.
fn doudi_cmd(dir: &Path, args: &[&str]) -> Command {
    let mut c = common::doudi_command(dir, args);
    c.env("DOUDI_DELIVER__SECRET", SECRET);
    c
}

/// A valid 18-digit ID number (GB 11643) born on `birth` (YYYYMMDD) in 342401, with sequence `seq`.
fn id_number(birth: &str, seq: u32) -> String {
    let body = format!("342401{birth}{seq:03}");
    let weights = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
    let sum: u32 = body
        .chars()
        .zip(weights)
        .map(|(c, w)| c.to_digit(10).unwrap() * w)
        .sum();
    let check = ['1', '0', 'X', '9', '8', '7', '6', '5', '4', '3', '2'][(sum % 11) as usize];
    format!("{body}{check}")
}

const NAMES: [&str; 14] = [
    "陈桂兰",
    "王秀英",
    "李玉珍",
    "张淑芬",
    "刘桂芳",
    "杨凤英",
    "赵秀兰",
    "黄玉兰",
    "周桂珍",
    "吴秀珍",
    "徐凤兰",
    "孙玉英",
    "马桂英",
    "朱秀芳",
];

/// Household `H{i}`: one elderly woman (特困), distinct name and birth date (i < 14); returns the
/// record and the member's (ID number, name, birth date).
fn household(i: u32) -> (Value, (String, String, String)) {
    // Past the 14 names, the same names and birth dates again with other ID numbers.
    let day = 27 - i % 14;
    let id = id_number(&format!("194901{day:02}"), 46 + 2 * (i / 14));
    let name = NAMES[(i % 14) as usize].to_string();
    let birth = format!("1949-01-{day:02}");
    let h = common::tekun_household(&format!("H{i}"), &i.to_string(), (&id, &name, &birth));
    (h, (id, name, birth))
}

/// A register of `n` households, each with a serious illness (one red warning each, for officer
/// `li` of township 341502001, whose webhook is `webhook`); supervisor `chen` has no webhook.
/// Returns the database URL and the members' (ID number, name).
fn warned(dir: &Path, n: u32, webhook: &str, config: &str) -> (String, Vec<(String, String)>) {
    warned_with(dir, n, json!({ "webhook": webhook }), config)
}

/// [`warned`], officer `li` reached by `channels` (a webhook, a WeCom or a DingTalk robot).
fn warned_with(
    dir: &Path,
    n: u32,
    channels: Value,
    config: &str,
) -> (String, Vec<(String, String)>) {
    let db = format!("sqlite://{}", dir.join("doudi.db").display());
    let (households, people): (Vec<Value>, Vec<(String, String, String)>) =
        (0..n).map(household).unzip();
    let events: Vec<Value> = people
        .iter()
        .enumerate()
        .map(|(i, (id, name, birth))| {
            common::illness(&format!("YB-{i}"), common::village_woman((id, name, birth)))
        })
        .collect();
    common::write_case(
        dir,
        &households,
        &[
            json!({"officer_id": "li", "name": "李娜", "role": "officer", "region": "341502001",
                   "channels": channels}),
            json!({"officer_id": "chen", "name": "陈主任", "role": "supervisor", "region": "341502"}),
        ],
        &events,
    );
    std::fs::write(dir.join("doudi.toml"), config).unwrap();
    common::import_generated(dir, "", &db);
    common::run_once(dir, "feeds", &db);
    (
        db,
        people.into_iter().map(|(id, name, _)| (id, name)).collect(),
    )
}

/// Short retries, a generous quota.
const FAST: &str = "[deliver]\nbackoff_base_ms = 20\nbackoff_cap_ms = 100\nmax_attempts = 10\nquota_per_minute = 1000\npoll_interval_ms = 20\ntimeout_ms = 5000\nweb_base_url = \"https://doudi.example.gov.cn\"\n";

/// One request as the receiver saw it.
#[derive(Clone, Debug)]
struct Request {
    officer: String,
    key: String,
    verified: bool,
    body: Value,
}

/// The receiver: verifies, then (unless told to fail) applies each item once by its key.
#[derive(Default)]
struct Hook {
    requests: Vec<Request>,
    /// Item keys in the order applied, each once.
    applied: Vec<String>,
    /// Answer 503 without applying to this many next requests.
    fail_before: usize,
    /// Apply, then answer 503 (the answer is lost) to this many next requests.
    fail_after_apply: usize,
    /// Notice id → requests carrying it to refuse with 503.
    fail_notice: HashMap<i64, usize>,
}

type Shared = Arc<Mutex<Hook>>;

fn header(h: &HeaderMap, name: &str) -> String {
    h.get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string()
}

async fn receive(
    State(s): State<Shared>,
    UrlPath(officer): UrlPath<String>,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    let now = chrono::Utc::now().timestamp();
    // A receiver in the middle of a key change: the retired key "0" and the current "1", picked
    // by the key id doudi sends (deliver.key_id, "1" by default).
    let keys: [(&str, &[u8]); 2] = [("0", b"a-retired-key"), ("1", SECRET.as_bytes())];
    let key_id = headers.get("X-Doudi-Key-Id").and_then(|v| v.to_str().ok());
    let verified = doudi_deliver::key_for(&keys, key_id)
        .and_then(|key| {
            doudi_deliver::verify(
                key,
                &header(&headers, "X-Doudi-Timestamp"),
                &header(&headers, "X-Doudi-Signature"),
                &body,
                now,
                300,
            )
        })
        .is_ok();
    let value: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let mut h = s.lock().unwrap();
    h.requests.push(Request {
        officer,
        key: header(&headers, "Idempotency-Key"),
        verified,
        body: value.clone(),
    });
    if !verified {
        return StatusCode::UNAUTHORIZED;
    }
    if h.fail_before > 0 {
        h.fail_before -= 1;
        return StatusCode::SERVICE_UNAVAILABLE;
    }
    let items = value["items"].as_array().cloned().unwrap_or_default();
    for i in &items {
        if let Some(left) = h.fail_notice.get_mut(&i["notice_id"].as_i64().unwrap_or(0)) {
            if *left > 0 {
                *left -= 1;
                return StatusCode::SERVICE_UNAVAILABLE;
            }
        }
    }
    for i in &items {
        let key = i["idempotency_key"].as_str().unwrap_or("").to_string();
        if !h.applied.contains(&key) {
            h.applied.push(key);
        }
    }
    if h.fail_after_apply > 0 {
        h.fail_after_apply -= 1;
        return StatusCode::SERVICE_UNAVAILABLE;
    }
    StatusCode::OK
}

/// Serve the receiver on `listener` from the runtime `rt`.
fn serve(rt: &tokio::runtime::Runtime, listener: TcpListener, state: Shared) {
    listener.set_nonblocking(true).unwrap();
    let app = axum::Router::new()
        .route("/hook/{officer}", axum::routing::post(receive))
        .with_state(state);
    rt.spawn(async move {
        let l = tokio::net::TcpListener::from_std(listener).unwrap();
        axum::serve(l, app).await.unwrap();
    });
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap()
}

/// What `work` makes of the store at `db` (opened for it, closed after), on `rt`.
fn with_store<T>(rt: &tokio::runtime::Runtime, db: &str, work: impl AsyncFnOnce(&Store) -> T) -> T {
    rt.block_on(async {
        let store = Store::open(db).await.unwrap();
        let out = work(&store).await;
        store.close().await;
        out
    })
}

fn deliveries(rt: &tokio::runtime::Runtime, db: &str) -> Vec<NoticeDelivery> {
    with_store(rt, db, async |store| {
        store.notice_deliveries(0, 10_000).await.unwrap()
    })
}

/// A receiver on a free port of loopback, served from `rt`: officer `li`'s webhook URL and what
/// the receiver saw.
fn receiver(rt: &tokio::runtime::Runtime) -> (String, Shared) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/hook/li", listener.local_addr().unwrap());
    let hook = Shared::default();
    serve(rt, listener, hook.clone());
    (url, hook)
}

/// A test's temporary folder and runtime.
fn case() -> (tempfile::TempDir, tokio::runtime::Runtime) {
    (tempfile::tempdir().unwrap(), runtime())
}

/// [`case`] with a [`receiver`].
fn with_receiver() -> (tempfile::TempDir, tokio::runtime::Runtime, String, Shared) {
    let (tmp, rt) = case();
    let (url, hook) = receiver(&rt);
    (tmp, rt, url, hook)
}

/// [`case`] with the robots ([`serve_robots`]).
fn with_robots() -> (
    tempfile::TempDir,
    tokio::runtime::Runtime,
    String,
    SharedRobots,
) {
    let (tmp, rt) = case();
    let (base, robots) = serve_robots(&rt);
    (tmp, rt, base, robots)
}

/// `doudi deliver --once` with the test's `doudi.toml`; what it printed.
fn deliver_once(dir: &Path, db: &str) -> String {
    ok(doudi(
        dir,
        &["deliver", "--once", "--config", "doudi.toml", "--db", db],
    ))
}

/// Run `doudi deliver` (the loop) until every notice is out of `pending`; a guard of two minutes
/// turns a hang into a failure with the state (not a timing assertion).
fn deliver_until_settled(
    rt: &tokio::runtime::Runtime,
    dir: &Path,
    db: &str,
) -> Vec<NoticeDelivery> {
    let mut child = doudi_cmd(dir, &["deliver", "--config", "doudi.toml", "--db", db])
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let guard = Instant::now();
    let state = loop {
        let d = deliveries(rt, db);
        if d.iter().all(|n| n.delivery != "pending") {
            break d;
        }
        if guard.elapsed() > Duration::from_secs(120) {
            let _ = child.kill();
            panic!("notices still pending: {d:#?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let _ = child.kill();
    let _ = child.wait();
    state
}

#[test]
fn a_warning_reaches_its_officers_webhook_signed_with_masked_ids_and_a_link() {
    let (tmp, rt, url, hook) = with_receiver();
    let dir = tmp.path();
    let (db, ids) = warned(dir, 1, &url, FAST);

    // Without a secret delivery refuses to start, and says how to give one.
    let out = doudi_cmd(dir, &["deliver", "--once", "--db", &db])
        .env_remove("DOUDI_DELIVER__SECRET")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let e = String::from_utf8_lossy(&out.stderr);
    assert!(e.contains("DOUDI_DELIVER__SECRET"), "{e}");
    assert!(hook.lock().unwrap().requests.is_empty());

    let printed = deliver_once(dir, &db);
    assert!(printed.contains("delivered 1 notices"), "{printed}");
    let h = hook.lock().unwrap();
    assert_eq!(h.requests.len(), 1);
    let r = &h.requests[0];
    eprintln!(
        "payload example:\n{}",
        serde_json::to_string_pretty(&r.body).unwrap()
    );
    assert!(r.verified, "signature verified by the receiver");
    assert_eq!(r.officer, "li");
    let notice_id = r.body["items"][0]["notice_id"].as_i64().unwrap();
    assert_eq!(r.key, format!("doudi-notice-{notice_id}"));
    assert_eq!(r.body["type"], "notice");
    let item = &r.body["items"][0];
    assert_eq!(item["notice"], "opened");
    assert_eq!(item["household"]["household_id"], "H0");
    assert_eq!(item["household"]["address"], "大塘村0号");
    assert_eq!(item["household"]["category"], "tekun");
    assert_eq!(item["members"][0]["member_id"], "H0-1");
    assert_eq!(item["members"][0]["id_number"], "342401********046X");
    assert_eq!(item["members"][0]["name"], "陈**");
    assert!(item["warning"]["level"].is_string());
    assert!(item["warning"]["deadline"].is_string());
    let warning_id = item["warning"]["warning_id"].as_i64().unwrap();
    assert_eq!(
        item["warning"]["link"],
        format!("https://doudi.example.gov.cn/warnings/{warning_id}")
    );
    let reasons = item["reasons"].as_array().unwrap();
    assert!(!reasons.is_empty(), "{item}");
    assert!(reasons
        .iter()
        .any(|r| r["event_ids"].as_array().unwrap().contains(&json!("YB-0"))));
    let text = r.body.to_string();
    assert!(
        !text.contains(&ids[0].0) && !text.contains(&ids[0].1),
        "personal data in the payload: {text}"
    );
    drop(h);

    // Delivered once: a second run sends nothing.
    deliver_once(dir, &db);
    assert_eq!(hook.lock().unwrap().requests.len(), 1);
    let d = deliveries(&rt, &db);
    assert_eq!(d.len(), 1);
    assert_eq!((d[0].delivery.as_str(), d[0].attempts), ("delivered", 1));

    // The escalation (nobody acknowledged it) goes to the supervisor, who has no webhook: the
    // notice stays in his inbox, marked as needing no delivery (not failed).
    ok(doudi(
        dir,
        &[
            "warnings",
            "tick",
            "--now",
            "2030-01-01T00:00:00Z",
            "--db",
            &db,
        ],
    ));
    deliver_once(dir, &db);
    let d = deliveries(&rt, &db);
    let chen: Vec<&NoticeDelivery> = d.iter().filter(|n| n.recipient == "chen").collect();
    assert!(!chen.is_empty(), "{d:#?}");
    assert!(chen.iter().all(|n| n.delivery == "inbox_only"), "{d:#?}");
    let inbox = ok(doudi(
        dir,
        &["warnings", "inbox", "--officer", "chen", "--db", &db],
    ));
    assert!(inbox.contains("escalated"), "{inbox}");
}

#[test]
fn a_receiver_down_then_up_gets_each_notice_once_after_retries_all_in_the_log() {
    let (tmp, rt) = case();
    let dir = tmp.path();
    // A port nobody listens on yet: connections are refused.
    let probe = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = probe.local_addr().unwrap();
    drop(probe);
    let url = format!("http://{addr}/hook/li");
    let (db, _) = warned(dir, 1, &url, FAST);

    let printed = deliver_once(dir, &db);
    assert!(printed.contains("1 to retry"), "{printed}");
    let d = deliveries(&rt, &db);
    assert_eq!((d[0].delivery.as_str(), d[0].attempts), ("pending", 1));
    let notice_id = d[0].notice_id;

    // Up again, but answering 503 twice, then once applying the notice and losing the answer
    // (503 after the effect): the retry after that must not apply it a second time.
    let hook = Shared::default();
    {
        let mut h = hook.lock().unwrap();
        h.fail_before = 2;
        h.fail_after_apply = 1;
    }
    serve(&rt, TcpListener::bind(addr).unwrap(), hook.clone());
    let d = deliver_until_settled(&rt, dir, &db);
    assert_eq!(d[0].delivery, "delivered", "{d:#?}");
    assert_eq!(d[0].attempts, 5);

    let h = hook.lock().unwrap();
    let key = format!("doudi-notice-{notice_id}");
    assert_eq!(h.requests.len(), 4, "503, 503, applied+503, 200");
    assert!(h.requests.iter().all(|r| r.key == key && r.verified));
    assert_eq!(h.applied, vec![key.clone()], "exactly one effect");
    // Every request carried the same body.
    assert!(h.requests.iter().all(|r| r.body == h.requests[0].body));
    drop(h);

    let log = log_of(&rt, &db, notice_id);
    let seen: Vec<(i64, Option<i64>, &str)> = log
        .iter()
        .map(|l| (l.attempt, l.http_status, l.outcome.as_str()))
        .collect();
    assert_eq!(
        seen,
        vec![
            (1, None, "retry"),
            (2, Some(503), "retry"),
            (3, Some(503), "retry"),
            (4, Some(503), "retry"),
            (5, Some(200), "delivered"),
        ]
    );
    assert!(
        log[0].error.as_deref().unwrap_or("").contains("onnect"),
        "{:?}",
        log[0].error
    );
    assert!(log.iter().all(|l| l.idempotency_key == key));
    assert!(
        !log.iter()
            .any(|l| l.error.as_deref().unwrap_or("").contains("127.0.0.1")),
        "no URL in the log"
    );
}

#[test]
fn a_households_later_notices_wait_behind_an_earlier_one_in_retry_while_others_go_on() {
    let (tmp, rt, url, hook) = with_receiver();
    let dir = tmp.path();
    let (db, _) = warned(dir, 5, &url, FAST);

    // Two more notices for H0's warning (reminders), after both households' first notices.
    let d = deliveries(&rt, &db);
    assert_eq!(d.len(), 5, "{d:#?}");
    let first_h0 = d.iter().find(|n| n.household_id == "H0").unwrap().clone();
    let first_h1 = d.iter().find(|n| n.household_id == "H1").unwrap().clone();
    with_store(&rt, &db, async |store| {
        let reminder = |note: &str| NoticeRow {
            warning_id: first_h0.warning_id,
            kind: "reminder".into(),
            recipient: "li".into(),
            due_at: chrono::DateTime::parse_from_rfc3339("2026-02-12T04:00:00Z")
                .unwrap()
                .with_timezone(&chrono::Utc),
            note: note.into(),
        };
        store
            .add_notices(&[reminder("first"), reminder("second")])
            .await
            .unwrap();
    });
    // H0's first notice is refused three times.
    hook.lock()
        .unwrap()
        .fail_notice
        .insert(first_h0.notice_id, 3);

    let d = deliver_until_settled(&rt, dir, &db);
    assert!(d.iter().all(|n| n.delivery == "delivered"), "{d:#?}");
    let h0: Vec<i64> = d
        .iter()
        .filter(|n| n.household_id == "H0")
        .map(|n| n.notice_id)
        .collect();
    assert_eq!(h0.len(), 3);

    let h = hook.lock().unwrap();
    let applied: Vec<i64> = h
        .applied
        .iter()
        .map(|k| k.trim_start_matches("doudi-notice-").parse().unwrap())
        .collect();
    // H0's notices applied in notice order; H1's went on while H0's first was in retry.
    let h0_applied: Vec<i64> = applied.iter().copied().filter(|i| h0.contains(i)).collect();
    assert_eq!(h0_applied, h0);
    let pos = |id: i64| applied.iter().position(|&i| i == id).unwrap();
    assert!(pos(first_h1.notice_id) < pos(first_h0.notice_id));
    // No later H0 notice ever reached the receiver before the first was applied.
    let first_ok = h
        .requests
        .iter()
        .position(|r| {
            r.body["items"][0]["notice_id"] == first_h0.notice_id
                && h.applied
                    .contains(&format!("doudi-notice-{}", first_h0.notice_id))
        })
        .unwrap();
    for r in &h.requests[..first_ok] {
        let id = r.body["items"][0]["notice_id"].as_i64().unwrap();
        assert!(id == first_h0.notice_id || !h0.contains(&id), "{id} early");
    }
    assert_eq!(applied.len(), 7, "each once");
}

#[test]
fn a_flood_beyond_the_quota_arrives_as_one_digest_with_every_notice() {
    let (tmp, rt, url, hook) = with_receiver();
    let dir = tmp.path();
    let config = FAST.replace("quota_per_minute = 1000", "quota_per_minute = 3");
    let (db, ids) = warned(dir, 12, &url, &config);
    let d = deliveries(&rt, &db);
    assert_eq!(d.len(), 12);

    let printed = deliver_once(dir, &db);
    assert!(
        printed.contains("delivered 12 notices (1 requests, 1 digests)"),
        "{printed}"
    );
    let h = hook.lock().unwrap();
    assert_eq!(h.requests.len(), 1, "one digest");
    let r = &h.requests[0];
    assert!(r.verified);
    assert_eq!(r.body["type"], "digest");
    assert_eq!(r.body["count"], 12);
    assert!(r.key.starts_with("doudi-digest-"), "{}", r.key);
    let mut expected: Vec<String> = d
        .iter()
        .map(|n| format!("doudi-notice-{}", n.notice_id))
        .collect();
    expected.sort();
    let mut applied = h.applied.clone();
    applied.sort();
    assert_eq!(applied, expected, "every notice, none dropped");
    let text = r.body.to_string();
    assert!(ids
        .iter()
        .all(|(id, name)| !text.contains(id.as_str()) && !text.contains(name.as_str())));
    drop(h);
    let d = deliveries(&rt, &db);
    assert!(d.iter().all(|n| n.delivery == "delivered"));
}

#[test]
fn id_numbers_of_the_test_households_are_valid() {
    assert_eq!(id_number("19490127", 46), "34240119490127046X");
}

#[test]
fn a_notice_the_receiver_keeps_refusing_is_marked_failed_and_stays_in_the_inbox() {
    let (tmp, rt, url, hook) = with_receiver();
    let dir = tmp.path();
    hook.lock().unwrap().fail_before = usize::MAX;
    let config = FAST.replace("max_attempts = 10", "max_attempts = 3");
    let (db, _) = warned(dir, 1, &url, &config);

    // Down for good: three attempts, then failed (not deleted).
    let d = deliver_until_settled(&rt, dir, &db);
    assert_eq!((d[0].delivery.as_str(), d[0].attempts), ("failed", 3));
    assert_eq!(d[0].last_error.as_deref(), Some("HTTP 503"));
    assert_eq!(hook.lock().unwrap().requests.len(), 3);
    assert!(hook.lock().unwrap().applied.is_empty());
    let inbox = ok(doudi(
        dir,
        &["warnings", "inbox", "--officer", "li", "--db", &db],
    ));
    assert!(inbox.contains("opened"), "{inbox}");

    // A refusal no retry can help (here: a wrong secret, 401) fails at once.
    let (db2, _) = {
        let sub = dir.join("second");
        std::fs::create_dir_all(&sub).unwrap();
        warned(&sub, 1, &url, FAST)
    };
    let out = doudi_cmd(
        &dir.join("second"),
        &["deliver", "--once", "--config", "doudi.toml", "--db", &db2],
    )
    .env("DOUDI_DELIVER__SECRET", "not-the-shared-secret")
    .output()
    .unwrap();
    let printed = ok(out);
    assert!(printed.contains("1 failed"), "{printed}");
    let d = deliveries(&rt, &db2);
    assert_eq!((d[0].delivery.as_str(), d[0].attempts), ("failed", 1));
    assert_eq!(d[0].last_error.as_deref(), Some("HTTP 401"));
}

// ---- WeCom and DingTalk robots -------------------------------------------------------------

/// The robots' credentials, as their real webhooks carry them.
const WECOM_KEY: &str = "693a91f6-test-wecom-key";
const DINGTALK_TOKEN: &str = "dt-test-access-token";
const DINGTALK_SECRET: &str = "SECtest-dingtalk-signing-secret";

/// One message as a robot received it.
#[derive(Clone, Debug)]
struct RobotPost {
    /// The documented request shape, checked: an error says what was wrong.
    format: Result<(), String>,
    /// DingTalk: the signature matched and the timestamp was fresh.
    signed: Option<Result<(), String>>,
    /// The markdown (WeCom's `content`, DingTalk's `text`) and DingTalk's `title`.
    text: String,
    title: Option<String>,
    /// The errcode answered.
    errcode: i64,
}

/// Loopback WeCom and DingTalk robots: they check each request and answer the errcodes queued
/// (then 0).
#[derive(Default)]
struct Robots {
    posts: Vec<RobotPost>,
    answers: std::collections::VecDeque<i64>,
}

type SharedRobots = Arc<Mutex<Robots>>;

/// `{"msgtype":"markdown","markdown":{<fields>}}` and nothing else, every field a string.
fn markdown_fields(body: &Value, fields: &[&str]) -> Result<Vec<String>, String> {
    let top = body.as_object().ok_or("the body is not a JSON object")?;
    let mut keys: Vec<&str> = top.keys().map(String::as_str).collect();
    keys.sort();
    if keys != ["markdown", "msgtype"] || body["msgtype"] != "markdown" {
        return Err(format!("not a markdown message: {body}"));
    }
    let md = body["markdown"]
        .as_object()
        .ok_or("markdown is not an object")?;
    let mut have: Vec<&str> = md.keys().map(String::as_str).collect();
    have.sort();
    let mut want = fields.to_vec();
    want.sort();
    if have != want {
        return Err(format!("markdown has {have:?}, the format {want:?}"));
    }
    fields
        .iter()
        .map(|f| {
            md[*f]
                .as_str()
                .map(str::to_string)
                .ok_or(format!("markdown.{f} is not a string"))
        })
        .collect()
}

fn json_content_type(headers: &HeaderMap) -> Result<(), String> {
    let ct = header(headers, "content-type");
    if ct.starts_with("application/json") {
        Ok(())
    } else {
        Err(format!("content type {ct:?}"))
    }
}

fn answer(state: &SharedRobots, post: RobotPost) -> axum::Json<Value> {
    let mut r = state.lock().unwrap();
    let mut post = post;
    post.errcode = if post.format.is_err() || post.signed.as_ref().is_some_and(|s| s.is_err()) {
        310000
    } else {
        r.answers.pop_front().unwrap_or(0)
    };
    let errcode = post.errcode;
    r.posts.push(post);
    axum::Json(
        json!({"errcode": errcode, "errmsg": if errcode == 0 { "ok" } else { "refused by the test robot" }}),
    )
}

/// WeCom: `POST /cgi-bin/webhook/send?key=KEY`, `{"msgtype":"markdown","markdown":{"content":…}}`,
/// the content at most 4,096 bytes.
fn wecom_post(q: &HashMap<String, String>, headers: &HeaderMap, value: &Value) -> RobotPost {
    let fields = markdown_fields(value, &["content"]);
    let text = fields.as_ref().map(|f| f[0].clone()).unwrap_or_default();
    let format = (|| {
        json_content_type(headers)?;
        if q.get("key").map(String::as_str) != Some(WECOM_KEY) {
            return Err(format!("key {:?}", q.get("key")));
        }
        fields?;
        if text.len() > 4096 {
            return Err(format!("content of {} bytes, over 4096", text.len()));
        }
        Ok(())
    })();
    RobotPost {
        format,
        signed: None,
        text,
        title: None,
        errcode: 0,
    }
}

/// DingTalk's signature, computed here apart from doudi: base64(HMAC-SHA256(secret,
/// "{timestamp}\n{secret}")).
fn dingtalk_sign(secret: &str, timestamp: &str) -> String {
    use base64::Engine;
    use hmac::Mac;
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(format!("{timestamp}\n{secret}").as_bytes());
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

/// DingTalk: `POST /robot/send?access_token=T&timestamp=MS&sign=S`, the timestamp in milliseconds
/// within a minute of now (DingTalk allows an hour), the sign HMAC-SHA256 as documented;
/// `{"msgtype":"markdown","markdown":{"title":…,"text":…}}`.
fn dingtalk_post(q: &HashMap<String, String>, headers: &HeaderMap, value: &Value) -> RobotPost {
    let fields = markdown_fields(value, &["title", "text"]);
    let (title, text) = match &fields {
        Ok(f) => (Some(f[0].clone()), f[1].clone()),
        Err(_) => (None, String::new()),
    };
    let format = (|| {
        json_content_type(headers)?;
        if q.get("access_token").map(String::as_str) != Some(DINGTALK_TOKEN) {
            return Err("wrong access_token".to_string());
        }
        fields.map(|_| ())
    })();
    let signed = (|| {
        let ts = q.get("timestamp").ok_or("no timestamp")?;
        let ms: i64 = ts.parse().map_err(|_| format!("timestamp {ts:?}"))?;
        let skew = (chrono::Utc::now().timestamp_millis() - ms).abs();
        if skew > 60_000 {
            return Err(format!(
                "timestamp {ms} is {skew} ms away from now (milliseconds?)"
            ));
        }
        let sign = q.get("sign").ok_or("no sign")?;
        if *sign != dingtalk_sign(DINGTALK_SECRET, ts) {
            return Err("sign not match".to_string());
        }
        Ok(())
    })();
    RobotPost {
        format,
        signed: Some(signed),
        text,
        title,
        errcode: 0,
    }
}

/// A robot: WeCom's at `/cgi-bin/webhook/send` ([`wecom_post`]), DingTalk's at `/robot/send`
/// ([`dingtalk_post`]); each request checked, then answered ([`answer`]).
async fn robot(
    State(s): State<SharedRobots>,
    axum::extract::Query(q): axum::extract::Query<HashMap<String, String>>,
    uri: axum::http::Uri,
    headers: HeaderMap,
    body: Bytes,
) -> axum::Json<Value> {
    let value: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let post = if uri.path() == "/robot/send" {
        dingtalk_post(&q, &headers, &value)
    } else {
        wecom_post(&q, &headers, &value)
    };
    answer(&s, post)
}

/// The robots, served from `rt` on a free port of loopback: their base URL and what they saw.
fn serve_robots(rt: &tokio::runtime::Runtime) -> (String, SharedRobots) {
    let state = SharedRobots::default();
    let robots = state.clone();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    listener.set_nonblocking(true).unwrap();
    let app = axum::Router::new()
        .route("/cgi-bin/webhook/send", axum::routing::post(robot))
        .route("/robot/send", axum::routing::post(robot))
        .with_state(state);
    rt.spawn(async move {
        let l = tokio::net::TcpListener::from_std(listener).unwrap();
        axum::serve(l, app).await.unwrap();
    });
    (format!("http://{addr}"), robots)
}

/// The files the directory names: a robot's URL (its key in it) and DingTalk's secret.
fn secret_file(dir: &Path, name: &str, text: &str) -> String {
    let p = dir.join(name);
    std::fs::write(&p, format!("{text}\n")).unwrap();
    p.display().to_string()
}

/// The file naming officer `li`'s WeCom robot at `base` (its key in the URL).
fn wecom_url_file(dir: &Path, base: &str) -> String {
    let url = format!("{base}/cgi-bin/webhook/send?key={WECOM_KEY}");
    secret_file(dir, "li-wecom.url", &url)
}

/// Name the test region's county, township and village (through `doudi regions import`).
fn import_regions(dir: &Path, db: &str) {
    let names = "code,name\n341502,金安区\n341502001,东河口镇\n341502001003,大塘村\n";
    let printed = import_region_file(dir, db, "regions.csv", names);
    assert!(printed.contains("3 added"), "{printed}");
}

/// `text` written to the file `name`, then imported by `doudi regions import`; what it printed.
fn import_region_file(dir: &Path, db: &str, name: &str, text: &str) -> String {
    std::fs::write(dir.join(name), text).unwrap();
    ok(doudi(dir, &["regions", "import", name, "--db", db]))
}

fn log_of(rt: &tokio::runtime::Runtime, db: &str, notice: i64) -> Vec<doudi_store::DeliveryLogRow> {
    with_store(rt, db, async |store| {
        let mut log = store.delivery_log(Some(notice), 100).await.unwrap();
        log.reverse();
        log
    })
}

/// `doudi deliver --log` of `db` tells every one of `told` and none of `secrets`.
fn assert_log_tells(dir: &Path, db: &str, told: &[&str], secrets: &[&str]) {
    let printed = ok(doudi(dir, &["deliver", "--log", "--db", db]));
    assert!(
        told.iter().all(|t| printed.contains(t)) && !secrets.iter().any(|s| printed.contains(s)),
        "{printed}"
    );
}

/// The one open warning as a robot message should tell it: its id, level (红色), top reason and
/// deadline as an officer in Anhui reads it (UTC+8, to the minute).
struct Told {
    warning_id: i64,
    level: &'static str,
    reason: String,
    deadline: String,
}

fn the_warning(rt: &tokio::runtime::Runtime, db: &str) -> Told {
    with_store(rt, db, async |store| {
        let w = store.open_warnings(10, None).await.unwrap().remove(0);
        let beijing = chrono::FixedOffset::east_opt(8 * 3600).unwrap();
        Told {
            warning_id: w.warning_id,
            level: w.level.name_zh(),
            reason: w.summary.contributions[0].reason_zh.clone(),
            deadline: w
                .deadline
                .with_timezone(&beijing)
                .format("%Y-%m-%d %H:%M")
                .to_string(),
        }
    })
}

#[test]
fn a_warning_reaches_the_officers_wecom_group_as_markdown_after_a_refused_attempt() {
    let (tmp, rt, base, robots) = with_robots();
    let dir = tmp.path();
    // The first post is refused as WeCom does when a robot sends too fast.
    robots.lock().unwrap().answers.push_back(45009);
    let url_file = wecom_url_file(dir, &base);
    let (db, ids) = warned_with(dir, 1, json!({"wecom": {"url_file": url_file}}), FAST);
    import_regions(dir, &db);
    let listed = ok(doudi(dir, &["regions", "list", "--db", &db]));
    assert!(
        listed.contains("341502001003 village  东河口镇大塘村"),
        "{listed}"
    );
    // The directory as stored and listed names the file, never the URL or its key.
    let officers = ok(doudi(dir, &["officers", "list", "--json", "--db", &db]));
    assert!(
        officers.contains("li-wecom.url") && !officers.contains(WECOM_KEY),
        "{officers}"
    );

    let d = deliver_until_settled(&rt, dir, &db);
    assert_eq!(
        (d[0].delivery.as_str(), d[0].attempts),
        ("delivered", 2),
        "{d:#?}"
    );
    let r = robots.lock().unwrap();
    assert_eq!(r.posts.len(), 2, "refused once (45009), then taken");
    for p in &r.posts {
        assert_eq!(p.format, Ok(()), "the documented format");
    }
    assert_eq!(
        r.posts[0].text, r.posts[1].text,
        "a retry posts the same message"
    );
    let text = &r.posts[1].text;
    eprintln!("WeCom markdown:\n{text}");
    let w = the_warning(&rt, &db);
    assert_eq!(
        *text,
        format!(
            "### {}预警 · 新预警\n\
             > **户**：H0（户主 陈＊＊）\n\
             > **地点**：东河口镇大塘村\n\
             > **原因**：{}\n\
             > **期限**：{} 前办理\n\
             \n\
             [查看预警 #{id}](https://doudi.example.gov.cn/warnings/{id})",
            w.level,
            w.reason,
            w.deadline,
            id = w.warning_id
        )
    );
    assert!(
        !text.contains(&ids[0].0) && !text.contains(&ids[0].1),
        "personal data: {text}"
    );
    assert!(!text.contains("大塘村0号"), "no address in a group");
    drop(r);

    let log = log_of(&rt, &db, d[0].notice_id);
    let seen: Vec<String> = log
        .iter()
        .map(|l| {
            format!(
                "{} attempt {}: HTTP {:?} {} {:?}",
                l.channel, l.attempt, l.http_status, l.outcome, l.error
            )
        })
        .collect();
    assert_eq!(
        seen,
        [
            "wecom attempt 1: HTTP Some(200) retry Some(\"errcode 45009: refused by the test robot\")",
            "wecom attempt 2: HTTP Some(200) delivered None",
        ]
    );
    assert_log_tells(dir, &db, &["errcode 45009"], &[WECOM_KEY]);
}

#[test]
fn a_dingtalk_robot_gets_signed_fresh_requests_and_a_wrong_secret_fails_with_its_errcode() {
    let (tmp, rt, base, robots) = with_robots();
    let dir = tmp.path();
    let channels = |secret: &str| {
        json!({"dingtalk": {
            "url_file": secret_file(dir, "li-dingtalk.url", &format!("{base}/robot/send?access_token={DINGTALK_TOKEN}")),
            "secret_file": secret_file(dir, "li-dingtalk.secret", secret),
        }})
    };
    let (db, ids) = warned_with(dir, 1, channels(DINGTALK_SECRET), FAST);
    import_regions(dir, &db);
    // Robots need no webhook signing key.
    let printed = ok(doudi_cmd(
        dir,
        &["deliver", "--once", "--config", "doudi.toml", "--db", &db],
    )
    .env_remove("DOUDI_DELIVER__SECRET")
    .output()
    .unwrap());
    assert!(printed.contains("delivered 1 notices"), "{printed}");
    let r = robots.lock().unwrap();
    assert_eq!(r.posts.len(), 1);
    let p = &r.posts[0];
    assert_eq!(p.format, Ok(()));
    assert_eq!(
        p.signed,
        Some(Ok(())),
        "signature and timestamp as documented"
    );
    let w = the_warning(&rt, &db);
    assert_eq!(p.title, Some(format!("{}预警 · 户 H0", w.level)));
    eprintln!("DingTalk markdown:\n{}", p.text);
    assert!(
        p.text.contains("  \n> **地点**：东河口镇大塘村  \n"),
        "{}",
        p.text
    );
    assert!(!p.text.contains(&ids[0].0) && !p.text.contains(&ids[0].1));
    drop(r);

    // A robot whose secret doudi holds wrong refuses every post (errcode 310000): retried, then
    // failed, the errcode in the log, the secret nowhere.
    let sub = dir.join("second");
    std::fs::create_dir_all(&sub).unwrap();
    let config = FAST.replace("max_attempts = 10", "max_attempts = 2");
    let wrong = "SECnot-the-robots-secret";
    let (db2, _) = warned_with(&sub, 1, channels(wrong), &config);
    let d = deliver_until_settled(&rt, &sub, &db2);
    assert_eq!(
        (d[0].delivery.as_str(), d[0].attempts),
        ("failed", 2),
        "{d:#?}"
    );
    let r = robots.lock().unwrap();
    assert_eq!(r.posts.len(), 3);
    assert!(r.posts[1..]
        .iter()
        .all(|p| p.signed == Some(Err("sign not match".into())) && p.errcode == 310000));
    drop(r);
    let log = log_of(&rt, &db2, d[0].notice_id);
    assert!(log.iter().all(|l| l.channel == "dingtalk"
        && l.error.as_deref() == Some("errcode 310000: refused by the test robot")));
    assert_log_tells(&sub, &db2, &[], &[wrong, DINGTALK_TOKEN]);
}

#[test]
fn a_flood_to_a_robot_arrives_as_digests_that_fit_one_message_each_and_drop_nothing() {
    let (tmp, rt, base, robots) = with_robots();
    let dir = tmp.path();
    let url_file = wecom_url_file(dir, &base);
    let config = FAST.replace("quota_per_minute = 1000", "quota_per_minute = 3");
    let (db, _) = warned_with(dir, 30, json!({"wecom": {"url_file": url_file}}), &config);
    let d = deliver_until_settled(&rt, dir, &db);
    assert!(d.iter().all(|n| n.delivery == "delivered"), "{d:#?}");
    let r = robots.lock().unwrap();
    assert!(r.posts.iter().all(|p| p.format.is_ok()));
    assert!(
        r.posts.len() <= 3,
        "within the quota: {} posts",
        r.posts.len()
    );
    assert!(
        r.posts[0].text.starts_with("### 预警汇总："),
        "{}",
        r.posts[0].text
    );
    // Every warning linked exactly once across the digests.
    let mut linked: Vec<String> = r
        .posts
        .iter()
        .flat_map(|p| {
            p.text
                .lines()
                .filter(|l| l.starts_with("[查看预警 #"))
                .map(str::to_string)
                .collect::<Vec<_>>()
        })
        .collect();
    let per_post: Vec<usize> = r
        .posts
        .iter()
        .map(|p| p.text.matches("[查看预警 #").count())
        .collect();
    eprintln!(
        "30 notices in {} robot messages carrying {per_post:?}",
        r.posts.len()
    );
    assert_eq!(linked.len(), 30, "{linked:#?}");
    linked.sort();
    linked.dedup();
    assert_eq!(linked.len(), 30);
    assert!(
        per_post.len() > 1,
        "more than one message holds: {per_post:?}"
    );
}

#[test]
fn region_names_import_from_csv_or_json_lines_and_a_bad_file_imports_nothing() {
    let (tmp, [db]) = common::sqlite_case(["doudi.db"]);
    let dir = tmp.path();
    let bad = "code,name\n341502,金安区\n34150,短\n341502001,\n";
    std::fs::write(dir.join("bad.csv"), bad).unwrap();
    let out = doudi(dir, &["regions", "import", "bad.csv", "--db", &db]);
    assert_eq!(out.status.code(), Some(2));
    let e = String::from_utf8_lossy(&out.stderr);
    assert!(
        e.contains("bad.csv:3: region code \"34150\" must be 6"),
        "{e}"
    );
    assert!(
        e.contains("bad.csv:4: region 341502001 has an empty name"),
        "{e}"
    );
    let listed = ok(doudi(dir, &["regions", "list", "--db", &db]));
    assert!(
        listed.contains("no region names"),
        "nothing half-imported: {listed}"
    );

    let printed = import_region_file(
        dir,
        &db,
        "regions.jsonl",
        "{\"code\":\"341502001\",\"name\":\"东河口镇\"}\n{\"code\":\"341502001003\",\"name\":\"大塘村\"}\n",
    );
    assert!(printed.contains("2 added, 0 renamed"), "{printed}");
    let listed = ok(doudi(dir, &["regions", "list", "--json", "--db", &db]));
    let rows: Value = serde_json::from_str(&listed).unwrap();
    assert_eq!(rows[1]["full_name"], "东河口镇大塘村");

    // `doudi gen` writes the names of every region it generates.
    ok(doudi(dir, &["gen", "--households", "20", "--out", "gen"]));
    let printed = ok(doudi(
        dir,
        &["regions", "import", "gen/regions.csv", "--db", &db],
    ));
    let added: usize = printed
        .split(": ")
        .nth(1)
        .and_then(|t| t.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    assert!(added > 100, "every county, township and village: {printed}");
}
