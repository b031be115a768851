//! `doudi produce --profile`: a department's exports read through its feed profile and published as
//! envelope events; the worker applies them as the file reader does, and keeps the profile's
//! `name@version` with each event. A refused row is named and not published; the command says so
//! with exit 1.

mod common;
#[path = "common/kafka.rs"]
mod kafka;

use std::time::Duration;

use common::{doudi, exits, ok};
use kafka::*;
use serde_json::Value;

#[test]
fn exports_produced_through_a_profile_reach_the_worker_with_their_provenance() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path();
    let db = format!("sqlite://{}", dir.join("doudi.db").display());
    ok(doudi(
        dir,
        &[
            "gen",
            "--households",
            "300",
            "--seed",
            "9",
            "--out",
            "data",
            "--native",
        ],
    ));
    import(dir, &db);
    let folder = dir.join("data/native/gongan-hukou");
    let mut files: Vec<String> = std::fs::read_dir(&folder)
        .expect("folder")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.file_name().is_some_and(|n| n != "profile.toml"))
        .map(|p| p.display().to_string())
        .collect();
    files.sort();
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
