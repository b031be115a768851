//! The command line speaks Chinese by default and English with `--lang en` (or `DOUDI_LANG=en`):
//! summaries, tables with their levels and statuses, refusals and the error chain. Machine output
//! (JSON) is the same in both. The Chinese lines hold no English words: only codes, ids, numbers,
//! paths and commands in backquotes (the scan of `tests/pages_words.rs`, for the terminal).

mod common;

use std::path::Path;
use std::process::Output;

use common::doudi_env;

/// `doudi ARGS` in Chinese (`DOUDI_LANG=zh`; with neither it nor `--lang` as well, see below).
fn zh(dir: &Path, args: &[&str]) -> Output {
    doudi_env(dir, args, &[("DOUDI_LANG", "zh")])
}

/// `doudi --lang en ARGS` (the flag wins over `DOUDI_LANG`).
fn en(dir: &Path, args: &[&str]) -> Output {
    let mut all = vec!["--lang", "en"];
    all.extend_from_slice(args);
    doudi_env(dir, &all, &[("DOUDI_LANG", "zh")])
}

/// Its standard output, after asserting it succeeded ([`common::ok`]).
fn stdout(out: &Output) -> String {
    common::ok(out.clone())
}

/// Its standard error, after asserting it refused the request ([`common::refused`]).
fn refused(out: &Output) -> String {
    common::refused(out.clone())
}

/// Every one of `words` is in the text `s`.
fn assert_words(s: &str, words: &[&str]) {
    for word in words {
        assert!(s.contains(word), "{word} missing:\n{s}");
    }
}

/// English words in a Chinese line: runs of Latin letters that are not part of a code, an id, a
/// number, a path, a flag, a URL or a command in backquotes.
fn english_words(text: &str) -> Vec<String> {
    let mut found = Vec::new();
    for line in text.lines().filter(|l| !is_log_line(l)) {
        // Commands in backquotes are what to type, not words to read.
        let mut kept = String::new();
        for (i, part) in line.split('`').enumerate() {
            if i % 2 == 0 {
                kept.push_str(part);
                kept.push(' ');
            }
        }
        for token in kept.split(|c: char| !(c.is_ascii_alphanumeric() || "_-./:#@%+".contains(c))) {
            let letters = token.chars().any(|c| c.is_ascii_alphabetic());
            let code_like = token
                .chars()
                .any(|c| c.is_ascii_digit() || "_-./:#@%+".contains(c));
            if letters && !code_like && token != "doudi" {
                found.push(format!("{token:?} in {line:?}"));
            }
        }
    }
    found
}

/// A log line (`2026-12-07T05:38:34.509268Z  WARN …`): logs are for operators and stay English.
fn is_log_line(line: &str) -> bool {
    let mut parts = line.split_whitespace();
    let stamp = parts.next().unwrap_or("");
    let level = parts.next().unwrap_or("");
    stamp.len() > 20
        && stamp.ends_with('Z')
        && stamp.as_bytes().get(10) == Some(&b'T')
        && ["TRACE", "DEBUG", "INFO", "WARN", "ERROR"].contains(&level)
}

fn assert_chinese(what: &str, text: &str) {
    let words = english_words(text);
    assert!(words.is_empty(), "{what}: English words {words:#?}\n{text}");
    assert!(
        text.chars().any(|c| ('\u{4e00}'..='\u{9fff}').contains(&c)),
        "{what}: no Chinese at all:\n{text}"
    );
}

#[test]
fn the_command_line_speaks_chinese_by_default_and_english_with_the_switch() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let demo = dir.join("demo");
    let demo_arg = demo.display().to_string();
    let db = format!("sqlite://{}", demo.join("doudi.db").display());

    // A tiny generated set, imported and run by the demo (in Chinese).
    let shown = stdout(&zh(
        dir,
        &[
            "demo",
            "--dir",
            &demo_arg,
            "--households",
            "150",
            "--show",
            "1",
        ],
    ));
    assert!(
        shown.contains("已生成") && shown.contains("未办结预警"),
        "{shown}"
    );
    assert!(!shown.contains("Open warnings"), "{shown}");

    // status
    let s = stdout(&zh(dir, &["status", "--db", &db]));
    assert_words(
        &s,
        &[
            "低保名册",
            "收到记录",
            "身份匹配",
            "未办结预警",
            "红色",
            "橙色",
            "黄色",
        ],
    );
    assert_chinese("status", &s);
    // Chinese is the default: neither `--lang` nor `DOUDI_LANG`.
    let default = std::process::Command::new(env!("CARGO_BIN_EXE_doudi"))
        .current_dir(dir)
        .args(["status", "--db", &db])
        .env_remove("DOUDI_LANG")
        .env_remove("DOUDI_CONFIG")
        .env_remove("DOUDI_DB")
        .env("DOUDI_LOG", "warn")
        .output()
        .unwrap();
    assert_eq!(stdout(&default), s);
    let s = stdout(&en(dir, &["status", "--db", &db]));
    assert_words(
        &s,
        &[
            "register",
            "events received",
            "identity",
            "warnings open",
            "red",
        ],
    );
    // DOUDI_LANG alone switches too.
    let s = stdout(&doudi_env(
        dir,
        &["status", "--db", &db],
        &[("DOUDI_LANG", "en")],
    ));
    assert!(s.contains("warnings open"), "{s}");
    // JSON is the same in both languages.
    let j_zh: serde_json::Value =
        serde_json::from_str(&stdout(&zh(dir, &["status", "--json", "--db", &db]))).unwrap();
    let j_en: serde_json::Value =
        serde_json::from_str(&stdout(&en(dir, &["status", "--json", "--db", &db]))).unwrap();
    assert_eq!(j_zh, j_en);

    // warnings list, with its levels and the officer responsible
    let list = stdout(&zh(dir, &["warnings", "list", "--db", &db]));
    assert!(list.contains("责任人") && list.contains("截止"), "{list}");
    assert!(
        ["红色", "橙色", "黄色"].iter().any(|l| list.contains(l)),
        "{list}"
    );
    assert_chinese("warnings list", &list);
    let list_en = stdout(&en(dir, &["warnings", "list", "--db", &db]));
    assert!(
        list_en.contains("score") && list_en.contains("officer"),
        "{list_en}"
    );

    // one warning in full: status, level, history in words
    let warnings: serde_json::Value = serde_json::from_str(&stdout(&zh(
        dir,
        &["warnings", "list", "--json", "--db", &db],
    )))
    .unwrap();
    let id = warnings[0]["warning_id"]
        .as_i64()
        .expect("a warning")
        .to_string();
    let detail = stdout(&zh(dir, &["warnings", "show", &id, "--db", &db]));
    assert!(
        detail.contains("待签收") && detail.contains("处理记录") && detail.contains("开启预警"),
        "{detail}"
    );

    // refusals: no such warning; a move by someone not in the directory (the pages' words)
    let e = refused(&zh(dir, &["warnings", "show", "999999", "--db", &db]));
    assert!(e.starts_with("错误：没有预警 #999999"), "{e}");
    assert_chinese("refusal", &e);
    let e = refused(&en(dir, &["warnings", "show", "999999", "--db", &db]));
    assert!(e.starts_with("error: no warning #999999"), "{e}");
    let e = refused(&zh(
        dir,
        &["warnings", "ack", &id, "--by", "o-999", "--db", &db],
    ));
    assert!(e.contains("不在干部名录中"), "{e}");
    assert_chinese("move refusal", &e);
    let e = refused(&en(
        dir,
        &["warnings", "ack", &id, "--by", "o-999", "--db", &db],
    ));
    assert!(e.contains("error: ") && e.contains("o-999"), "{e}");

    // a run's summary (everything already read: all duplicates)
    let feeds = demo.join("feeds").display().to_string();
    let run = stdout(&zh(dir, &["run", "--feeds", &feeds, "--once", "--db", &db]));
    assert!(run.contains("读取") && run.contains("身份匹配"), "{run}");
    assert_chinese("run summary", &run);
    let run = stdout(&en(dir, &["run", "--feeds", &feeds, "--once", "--db", &db]));
    assert!(run.starts_with("read ") && run.contains("linked"), "{run}");

    // the error chain: a lead in Chinese, the library's detail after it
    let bad_db = format!("sqlite://{}/no/such/dir/x.db", dir.display());
    let out = zh(dir, &["status", "--db", &bad_db]);
    let e = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(e.starts_with("错误：无法使用数据库"), "{e}");
    let out = en(dir, &["status", "--db", &bad_db]);
    let e = String::from_utf8_lossy(&out.stderr);
    assert!(e.starts_with("error: cannot use the database"), "{e}");

    // --help stays English and says how to switch
    let help = stdout(&zh(dir, &["--help"]));
    assert!(
        help.contains("--lang en") && help.contains("DOUDI_LANG=en"),
        "{help}"
    );
}

#[test]
fn the_scan_finds_english_words_and_lets_codes_through() {
    assert!(english_words("户 H000123 区划 341502001 截止 2026-03-01T10:00:00Z").is_empty());
    assert!(english_words("见 `doudi warnings list`；数据库 sqlite://a/b.db").is_empty());
    assert_eq!(english_words("预警 warning #3").len(), 1);
    assert!(english_words("2026-12-07T05:38:34.509268Z  WARN refused a warning move").is_empty());
}
