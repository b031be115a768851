//! `doudi produce --profile`: a department's exports read through its feed profile and published as
//! envelope events; the worker applies them as the file reader does, and keeps the profile's
//! `name@version` with each event. A refused row is named and not published; the command says so
//! with exit 1.

mod common;
#[path = "common/kafka.rs"]
mod kafka;

use std::time::Duration;

use common::{doudi, exits, gen, ok};
use kafka::*;
use serde_json::Value;

#[test]
fn exports_produced_through_a_profile_reach_the_worker_with_their_provenance() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path();
    let db = format!("sqlite://{}", dir.join("doudi.db").display());
    gen(dir, "300", "9", "data", &["--native"]);
    import(dir, &db);
    let folder = dir.join("data/native/gongan-hukou");
    let files = common::export_files(&folder);
    assert!(!files.is_empty());
    let broker = Broker::start(dir, 2);
    let mut args = vec![
        "produce",
        "--brokers",
        broker.bootstrap.as_str(),
        "--profile",
        "gongan-hukou",
        "--json",
    ];
    args.extend(files.iter().map(String::as_str));
    let report: Value = serde_json::from_str(&ok(doudi(dir, &args))).expect("json");
    assert_eq!(report["topic"], "civil_registry", "{report}");
    assert_eq!(report["refused"], 0, "{report}");
    let published = report["published"].as_u64().expect("published");
    assert!(
        published > 0 && published == report["rows"].as_u64().unwrap_or(0),
        "{report}"
    );

    // A file with a row the profile refuses: the good rows go, the bad one is named, exit 1.
    let bad = dir.join("bad.csv");
    std::fs::write(
        &bad,
        // UTF-8 with a byte-order mark (which overrides the profile's GB18030)
        "\u{feff}变动流水号,变动类型,登记时间,公民身份号码,姓名,性别,出生日期,户籍地区划,变动日期,死亡原因,新生儿性别,新生儿姓名,新生儿公民身份号码,迁入地区划,迁出地区划\n\
         X1,死亡注销,2026-02-30 10:00:00,341502195001010011,王秀英,2,19500101,341502001003,20260228,,,,,,\n",
    )
    .expect("bad csv");
    let stdout = exits(
        doudi(
            dir,
            &[
                "produce",
                "--brokers",
                &broker.bootstrap,
                "--profile",
                profiles_path().as_str(),
                bad.to_str().expect("path"),
            ],
        ),
        1,
    );
    assert!(stdout.contains("1 rows refused"), "{stdout}");

    let _w = worker(dir, &broker.bootstrap, &db, &[]);
    let s = wait_received(dir, &db, published, Duration::from_secs(120));
    assert_eq!(
        s["received"].as_u64(),
        Some(published),
        "{s}\n{}",
        logs(dir)
    );
    // Nothing more arrives: the refused row was not published.
    std::thread::sleep(Duration::from_secs(2));
    let s = status(dir, &db);
    assert_eq!(s["received"].as_u64(), Some(published), "{s}");
    assert_eq!(s["dead_letters"].as_u64(), Some(0), "{s}");

    let profiles = rows(&db);
    assert_eq!(
        profiles,
        vec![("gongan-hukou@1".to_string(), published as i64)]
    );
}

fn profiles_path() -> String {
    concat!(env!("CARGO_MANIFEST_DIR"), "/profiles/gongan-hukou.toml").to_string()
}

fn rows(db: &str) -> Vec<(String, i64)> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(async {
            use sqlx::Row;
            let pool = sqlx::SqlitePool::connect(db).await.expect("connect");
            let out = sqlx::query(
                "SELECT COALESCE(profile, '∅'), COUNT(*) FROM events GROUP BY profile ORDER BY 1",
            )
            .fetch_all(&pool)
            .await
            .expect("query")
            .iter()
            .map(|r| (r.get::<String, _>(0), r.get::<i64, _>(1)))
            .collect();
            pool.close().await;
            out
        })
}

#[test]
fn a_topic_of_raw_rows_is_read_through_its_configured_profile() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path();
    let db = format!("sqlite://{}", dir.join("doudi.db").display());
    ok(doudi(
        dir,
        &["gen", "--households", "50", "--seed", "3", "--out", "data"],
    ));
    import(dir, &db);
    let mut broker = Broker::start(dir, 1);
    assert!(
        broker.command("create hukou_rows 1").starts_with("ok"),
        "topic created"
    );
    std::fs::write(
        dir.join("doudi.toml"),
        "[kafka.profiles]\nhukou_rows = \"gongan-hukou\"\n",
    )
    .expect("config");
    // The department's rows as its exchange sends them: column → cell.
    let row = |n: u32, kind: &str, at: &str| {
        serde_json::json!({
            "变动流水号": format!("K{n}"), "变动类型": kind, "登记时间": at,
            "公民身份号码": common::id_number(&format!("3415021950010{n:04}")), "姓名": "王秀英",
            "性别": "2", "出生日期": "19500101", "户籍地区划": "341502001003",
            "变动日期": "20260301", "死亡原因": ""
        })
        .to_string()
    };
    let lines = [
        row(1, "死亡注销", "2026-03-01 10:00:00"),
        row(2, "死亡注销", "2026-02-30 10:00:00"), // no such day: refused
        row(3, "户籍更正", "2026-03-02 10:00:00"), // a change the profile passes over
        row(4, "死亡注销", "2026-03-03 10:00:00"),
    ];
    std::fs::write(dir.join("rows.jsonl"), lines.join("\n") + "\n").expect("rows");
    kafka::produce(dir, &broker.bootstrap, "hukou_rows", &["rows.jsonl"]);
    let config = dir.join("doudi.toml");
    let _w = worker(
        dir,
        &broker.bootstrap,
        &db,
        &[("DOUDI_CONFIG", config.to_str().expect("path"))],
    );
    let s = wait_received(dir, &db, 4, Duration::from_secs(120));
    assert_eq!(s["received"].as_u64(), Some(4), "{s}\n{}", logs(dir));
    assert_eq!(s["dead_letters"].as_u64(), Some(2), "{s}");
    assert_eq!(rows(&db), vec![("gongan-hukou@1".to_string(), 2)]);
    let letters: Value = serde_json::from_str(&ok(doudi(
        dir,
        &["deadletters", "list", "--json", "--db", &db],
    )))
    .expect("json");
    let reasons: Vec<&str> = letters
        .as_array()
        .expect("array")
        .iter()
        .map(|d| d["reason"].as_str().unwrap_or(""))
        .collect();
    assert!(
        reasons.iter().all(|r| r.contains("gongan-hukou@1")),
        "{reasons:?}"
    );
    assert!(
        reasons.iter().any(|r| r.contains("登记时间")),
        "the bad date is named by its column: {reasons:?}"
    );
    assert!(
        reasons.iter().any(|r| r.contains("passed over")),
        "{reasons:?}"
    );
    assert!(
        letters
            .as_array()
            .expect("array")
            .iter()
            .all(|d| d["stream"] == "hukou_rows/0"),
        "{letters}"
    );

    // The profile fixed (this bureau files late death cancellations under 户籍更正) and configured for
    // the topic: `deadletters replay` maps the topic's refused rows again with it. The row with an
    // impossible date stays refused; the other becomes an event with the fixed profile's version.
    let fixed = std::fs::read_to_string(profiles_path())
        .expect("profile")
        .replace("version = 1", "version = 2")
        .replace(
            "\"迁出\" = \"household_moved\"",
            "\"迁出\" = \"household_moved\", \"户籍更正\" = \"death\"",
        );
    assert!(
        fixed.contains("户籍更正"),
        "the fix applies to the shipped profile"
    );
    std::fs::write(dir.join("fixed.toml"), fixed).expect("fixed profile");
    std::fs::write(
        dir.join("doudi.toml"),
        "[kafka.profiles]\nhukou_rows = \"fixed.toml\"\n",
    )
    .expect("config");
    let out = ok(doudi(
        dir,
        &[
            "--config",
            "doudi.toml",
            "deadletters",
            "replay",
            "--db",
            &db,
        ],
    ));
    assert!(out.contains("replayed 1 dead letters"), "{out}");
    assert!(
        out.contains("1 still refused") && out.contains("登记时间"),
        "{out}"
    );
    assert_eq!(
        rows(&db),
        vec![
            ("gongan-hukou@1".to_string(), 2),
            ("gongan-hukou@2".to_string(), 1)
        ]
    );
}
