//! End-to-end, what people do with what the pipeline found: a record the linker cannot decide goes
//! to the review queue, and a person's decision (recorded with who and why) sends a linked record on
//! through the pipeline to a warning routed to the township officer; the officer acknowledges,
//! visits and resolves the warning, and every move — refused ones included — is in its history.

mod common;

use common::{doudi, json as doudi_json, ok, refused, warnings_list};
use std::path::Path;
use std::process::Output;

use serde_json::{json, Value};

/// One elderly woman enrolled twice (two households, same ID number, name and birth date): no
/// linker can tell which household a record about her belongs to.
fn household(id: &str) -> Value {
    common::tekun_household(id, id, HER)
}

/// Her ID number, name and birth date.
const HER: (&str, &str, &str) = ("34240119490127046X", "陈桂兰", "1949-01-27");

/// `doudi warnings VERB ID --by BY MORE` on `db`.
fn act(dir: &Path, db: &str, verb: &str, id: &str, by: &str, more: &[&str]) -> Output {
    let mut args = vec!["warnings", verb, id, "--by", by, "--db", db];
    args.extend_from_slice(more);
    doudi(dir, &args)
}

/// `doudi warnings resolve ID --by BY --disposition HOW [--amount YUAN] --note NOTE` on `db`.
fn resolve(
    dir: &Path,
    db: &str,
    id: &str,
    by: &str,
    how: &str,
    amount: &str,
    note: &str,
) -> Output {
    let mut more = vec!["--disposition", how, "--note", note];
    if !amount.is_empty() {
        more.extend(["--amount", amount]);
    }
    act(dir, db, "resolve", id, by, &more)
}

#[test]
fn a_reviewed_record_is_linked_by_a_person_and_goes_on_to_a_routed_warning() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let db = format!("sqlite://{}", dir.join("doudi.db").display());
    common::write_case(
        dir,
        &[household("HA"), household("HB")],
        &[
            json!({"officer_id": "o-341502001", "name": "李娜", "role": "officer", "region": "341502001", "substitute": "o-341502002"}),
            json!({"officer_id": "o-341502002", "name": "王磊", "role": "officer", "region": "341502002"}),
            json!({"officer_id": "s-341502", "name": "陈主任", "role": "supervisor", "region": "341502"}),
        ],
        &[common::illness("YB-1", common::village_woman(HER))],
    );

    ok(doudi(dir, &["import", "register.jsonl", "--db", &db]));
    let imported = ok(doudi(
        dir,
        &["officers", "import", "officers.jsonl", "--db", &db],
    ));
    assert!(imported.contains("3 added"), "{imported}");
    common::run_once(dir, "feeds", &db);

    let queue = doudi_json(dir, &["review", "list", "--json", "--db", &db]);
    let items = queue.as_array().unwrap();
    assert_eq!(items.len(), 1, "{queue}");
    let seq = items[0]["seq"].as_i64().unwrap().to_string();
    assert!(items[0]["decision"].is_null());
    let shown = ok(doudi(dir, &["review", "show", &seq, "--db", &db]));
    assert!(
        !shown.contains("34240119490127046X"),
        "full ID number shown: {shown}"
    );

    // Without a name for the decider the decision is refused by the command line itself.
    let no_by = doudi(dir, &["review", "decide", &seq, "--reject", "--db", &db]);
    assert!(!no_by.status.success());
    // A member who is not in the register is refused and nothing is recorded.
    let e = refused(doudi(
        dir,
        &[
            "review", "decide", &seq, "--link", "HZ-1", "--by", "li", "--db", &db,
        ],
    ));
    assert!(
        e.contains("HZ-1") && e.contains("not an active member"),
        "{e}"
    );

    let done = ok(doudi(
        dir,
        &[
            "review",
            "decide",
            &seq,
            "--link",
            "HA-1",
            "--by",
            "li",
            "--note",
            "checked hukou",
            "--db",
            &db,
        ],
    ));
    assert!(done.contains("linked to household HA"), "{done}");
    assert!(done.contains("warnings opened 1"), "{done}");

    // Decided once only.
    let e = refused(doudi(
        dir,
        &[
            "review", "decide", &seq, "--reject", "--by", "wang", "--db", &db,
        ],
    ));
    assert!(e.contains("decided already"), "{e}");

    let queue = doudi_json(dir, &["review", "list", "--json", "--db", &db]);
    assert_eq!(queue.as_array().unwrap().len(), 0);
    let item = doudi_json(dir, &["review", "show", &seq, "--json", "--db", &db]);
    assert_eq!(item["decision"]["decided_by"], "li");
    assert_eq!(item["decision"]["member_id"], "HA-1");
    assert_eq!(item["decision"]["note"], "checked hukou");

    let status = common::status(dir, &db);
    assert_eq!(
        status["applied"], 1,
        "the reviewed fact joined HA's timeline"
    );
    let open: i64 = status["warnings_open"]
        .as_object()
        .unwrap()
        .values()
        .map(|v| v.as_i64().unwrap())
        .sum();
    assert_eq!(open, 1);
    let list = ok(doudi(dir, &["officers", "list", "--db", &db]));
    assert!(
        list.contains("o-341502001") && list.contains("supervisor"),
        "{list}"
    );
    // The decision is a labelled pair: retraining blends it into the identity model.
    let trained = ok(doudi(
        dir,
        &["linkage", "train", "--feeds", "feeds", "--db", &db],
    ));
    assert!(trained.contains("labels"), "{trained}");
    // Routed to the officer of the household's township, and shown masked.
    let warnings = warnings_list(dir, &db, &["--officer", "o-341502001"]);
    let w = &warnings[0];
    assert_eq!(w["household_id"], "HA");
    assert_eq!(w["assigned_to"], "o-341502001");
    let text = Value::from(warnings).to_string();
    assert!(
        !text.contains("34240119490127046X") && !text.contains("陈桂兰"),
        "{text}"
    );
    let none = warnings_list(dir, &db, &["--officer", "o-341502002"]);
    assert_eq!(none.len(), 0);
}

#[test]
fn a_bad_officer_file_is_refused_whole_with_line_numbers() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let db = format!("sqlite://{}", dir.join("doudi.db").display());
    std::fs::write(
        dir.join("officers.jsonl"),
        "{\"officer_id\":\"a\",\"name\":\"x\",\"role\":\"officer\",\"region\":\"341502001\"}\n{\"officer_id\":\"b\",\"name\":\"y\",\"role\":\"chief\",\"region\":\"341502001\"}\n",
    )
    .unwrap();
    let e = refused(doudi(
        dir,
        &["officers", "import", "officers.jsonl", "--db", &db],
    ));
    assert!(e.contains("line 2") && e.contains("chief"), "{e}");
    let list = ok(doudi(dir, &["officers", "list", "--db", &db]));
    assert!(list.contains("no officers"), "{list}");
}

/// One household at risk (a 特困 woman alone with a hospital bill beyond a year of her means: red),
/// its officer and their neighbour township's officer.
fn warned() -> (tempfile::TempDir, String, i64) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let db = format!("sqlite://{}", dir.join("doudi.db").display());
    let officers = [
        json!({"officer_id": "li", "name": "李娜", "role": "officer", "region": "341502001", "substitute": "wang"}),
        json!({"officer_id": "wang", "name": "王磊", "role": "officer", "region": "341502002"}),
        json!({"officer_id": "zhou", "name": "周洁", "role": "officer", "region": "341503001"}),
        json!({"officer_id": "chen", "name": "陈主任", "role": "supervisor", "region": "341502"}),
    ];
    // A hospital bill of 17,512 yuan out of pocket: beyond a year of her means (急难, red).
    let event = json!({
        "event_id": "YB-1", "source": "health_insurance", "kind": "settlement",
        "occurred_at": "2026-02-12T10:05:00+08:00",
        "subject": common::village_woman(HER),
        "data": {"setting": "inpatient", "total_cost_fen": 4856200, "fund_paid_fen": 3105000,
            "out_of_pocket_fen": 1751200, "diagnoses": ["C34.9"], "admitted_on": "2026-02-01",
            "discharged_on": "2026-02-12", "settled_on": "2026-02-12"}
    });
    common::write_case(dir, &[household("HA")], &officers, &[event]);
    common::import_generated(dir, "", &db);
    common::run_once(dir, "feeds", &db);
    let list = warnings_list(dir, &db, &[]);
    let w = &list[0];
    assert_eq!(w["assigned_to"], "li");
    (tmp, db, w["warning_id"].as_i64().unwrap())
}

/// [`warned`], then acknowledged by its officer `li` (with `more`: a note) after a refused try by
/// `zhou`, of another township.
fn acknowledged(more: &[&str]) -> (tempfile::TempDir, String) {
    let (tmp, db, id) = warned();
    let id = id.to_string();
    let _ = act(tmp.path(), &db, "ack", &id, "zhou", &[]);
    ok(act(tmp.path(), &db, "ack", &id, "li", more));
    (tmp, db)
}

#[test]
fn a_warning_is_acknowledged_visited_and_resolved_by_its_officer_with_every_move_recorded() {
    let (tmp, db, id) = warned();
    let dir = tmp.path();
    let id = id.to_string();

    // Another township's officer is refused, and the attempt is recorded.
    let e = refused(act(dir, &db, "ack", &id, "zhou", &[]));
    assert!(e.contains("may not act") && e.contains("\"li\""), "{e}");
    // Resolving before acknowledging is refused with what to do.
    let e = refused(resolve(dir, &db, &id, "li", "false_alarm", "", "x"));
    assert!(e.contains("acknowledge it first"), "{e}");

    let note = ["--note", "substitute takes it"];
    ok(act(dir, &db, "ack", &id, "wang", &note));
    let e = refused(act(dir, &db, "ack", &id, "li", &[]));
    assert!(e.contains("acknowledged already"), "{e}");
    // Relief needs the visit first.
    let e = refused(resolve(dir, &db, &id, "li", "relief_granted", "2000", "x"));
    assert!(e.contains("visit"), "{e}");
    ok(act(
        dir,
        &db,
        "visit",
        &id,
        "li",
        &["--note", "独居，住院中"],
    ));
    // Above the township's limit (3,000 yuan by default) an officer is refused; the supervisor may.
    let e = refused(resolve(dir, &db, &id, "li", "relief_granted", "5000", "x"));
    assert!(e.contains("approval limit"), "{e}");
    ok(resolve(
        dir,
        &db,
        &id,
        "chen",
        "relief_granted",
        "5000",
        "急难型临时救助",
    ));

    let d = doudi_json(dir, &["warnings", "show", &id, "--json", "--db", &db]);
    assert_eq!(d["status"], "resolved");
    assert_eq!(d["disposition"]["disposition"], "relief_granted");
    assert_eq!(d["disposition"]["amount_fen"], 500_000);
    let history: Vec<(String, String, bool)> = d["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| {
            (
                h["action"].as_str().unwrap().to_string(),
                h["actor"].as_str().unwrap().to_string(),
                !h["refused"].is_null(),
            )
        })
        .collect();
    let expected: Vec<(String, String, bool)> = [
        ("opened", "pipeline", false),
        ("acknowledge", "zhou", true),
        ("acknowledge", "wang", false),
        ("visit", "li", false),
        ("resolve", "li", true),
        ("resolve", "chen", false),
    ]
    .iter()
    .map(|(a, b, c)| (a.to_string(), b.to_string(), *c))
    .collect();
    assert_eq!(history, expected);
    assert!(!d.to_string().contains("34240119490127046X"));
    // Resolved: no longer in the list of active warnings.
    assert_eq!(warnings_list(dir, &db, &[]).len(), 0);
}

/// What `doudi args` printed holds every one of `words`.
fn assert_prints(dir: &Path, args: &[&str], words: &[&str]) {
    let printed = ok(doudi(dir, args));
    assert!(words.iter().all(|w| printed.contains(w)), "{printed}");
}

/// The built-in rule set with `rule` weighed at `points` and a new version.
fn candidate_rules(rule: &str, points: i64) -> String {
    let text =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("rules/default.toml"))
            .unwrap();
    let mut out = String::new();
    let mut in_rule = false;
    let mut done = false;
    for line in text.lines() {
        if line.starts_with('[') {
            in_rule = line.trim() == format!("[rules.{rule}]");
        }
        let line = if line.starts_with("version = ") {
            "version = \"candidate-1\"".to_string()
        } else if in_rule && !done && line.starts_with("points = ") {
            done = true;
            format!("points = {points}")
        } else {
            line.to_string()
        };
        out.push_str(&line);
        out.push('\n');
    }
    assert!(done, "the {rule} rule has points");
    out
}

#[test]
fn a_backtest_shows_the_warnings_a_rule_change_would_lose_and_refuses_a_bad_rule_file() {
    let (tmp, db, _) = warned();
    let dir = tmp.path();
    std::fs::write(
        dir.join("candidate.toml"),
        candidate_rules("catastrophic_bill", 0),
    )
    .unwrap();
    let report: Value = serde_json::from_str(&ok(doudi(
        dir,
        &[
            "backtest",
            "--rules",
            "candidate.toml",
            "--json",
            "--db",
            &db,
        ],
    )))
    .unwrap();
    assert_eq!(report["candidate_version"], "candidate-1");
    assert_eq!(report["households"], 1);
    let lost = report["lost"]["red"].as_u64().unwrap()
        + report["lost"]["orange"].as_u64().unwrap()
        + report["lost"]["yellow"].as_u64().unwrap();
    let lowered = report["lowered"].as_u64().unwrap();
    assert_eq!(lost + lowered, 1, "{report}");
    assert_eq!(report["examples"][0]["household_id"], "HA");
    // Nothing was written: the warning is as it was.
    assert_eq!(warnings_list(dir, &db, &[]).len(), 1);

    std::fs::write(dir.join("bad.toml"), candidate_rules("serious_illness", -5)).unwrap();
    let e = refused(doudi(
        dir,
        &["backtest", "--rules", "bad.toml", "--db", &db],
    ));
    assert!(
        e.contains("bad.toml") && e.contains("serious_illness"),
        "{e}"
    );
}

fn opened_at(dir: &Path, db: &str, id: i64) -> chrono::DateTime<chrono::Utc> {
    let d: Value = serde_json::from_str(&ok(doudi(
        dir,
        &["warnings", "show", &id.to_string(), "--json", "--db", db],
    )))
    .unwrap();
    chrono::DateTime::parse_from_rfc3339(d["opened_at"].as_str().unwrap())
        .unwrap()
        .with_timezone(&chrono::Utc)
}

/// `warnings tick` at `at`: (escalated, reminded, held back by silences).
fn tick(dir: &Path, db: &str, at: chrono::DateTime<chrono::Utc>) -> (u64, u64, u64) {
    let out = ok(doudi(
        dir,
        &["warnings", "tick", "--now", &at.to_rfc3339(), "--db", db],
    ));
    let n = |label: &str| -> u64 {
        out.split(label)
            .nth(1)
            .and_then(|r| r.trim_start().split(|c: char| !c.is_ascii_digit()).next())
            .and_then(|d| d.parse().ok())
            .unwrap_or_else(|| panic!("no {label} count in {out:?}"))
    };
    (n("escalated"), n("reminded"), n("silences"))
}

fn inbox(dir: &Path, db: &str, officer: &str) -> Vec<String> {
    let v = doudi_json(
        dir,
        &[
            "warnings",
            "inbox",
            "--officer",
            officer,
            "--json",
            "--db",
            db,
        ],
    );
    v.as_array()
        .unwrap()
        .iter()
        .map(|n| n["kind"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn an_unacknowledged_red_warning_escalates_to_the_supervisor_exactly_at_its_deadline() {
    let (tmp, db, id) = warned();
    let dir = tmp.path();
    let opened = opened_at(dir, &db, id);
    assert_eq!(
        inbox(dir, &db, "li"),
        ["opened"],
        "the officer was told at once"
    );

    let (escalated, reminded, _) = tick(dir, &db, opened + chrono::TimeDelta::minutes(119));
    assert_eq!(escalated, 0, "not before two hours");
    assert_eq!(reminded, 1, "the officer is reminded after an hour");
    assert!(inbox(dir, &db, "chen").is_empty());
    let (escalated, _, _) = tick(dir, &db, opened + chrono::TimeDelta::hours(2));
    assert_eq!(escalated, 1, "at two hours");
    assert_eq!(inbox(dir, &db, "chen"), ["escalated"]);
    // Ticking again at the same moment changes nothing.
    let (escalated, _, _) = tick(dir, &db, opened + chrono::TimeDelta::hours(2));
    assert_eq!(escalated, 0);
    let show = ["warnings", "show", &id.to_string(), "--db", &db];
    assert_prints(dir, &show, &["escalated", "to chen"]);
}

#[test]
fn an_acknowledged_warning_does_not_escalate_for_acknowledgement() {
    let (tmp, db, id) = warned();
    let dir = tmp.path();
    let opened = opened_at(dir, &db, id);
    ok(act(dir, &db, "ack", &id.to_string(), "li", &[]));
    let (escalated, _, _) = tick(dir, &db, opened + chrono::TimeDelta::hours(20));
    assert_eq!(escalated, 0);
    assert!(inbox(dir, &db, "chen").is_empty());
}

#[test]
fn a_silence_holds_escalation_back_until_it_ends() {
    let (tmp, db, id) = warned();
    let dir = tmp.path();
    let opened = opened_at(dir, &db, id);
    let until = opened + chrono::TimeDelta::hours(10);
    // Only a supervisor of the region may silence it; a refusal is in the audit trail.
    let e = refused(doudi(
        dir,
        &[
            "silences",
            "add",
            "--region",
            "341502001",
            "--hours",
            "10",
            "--reason",
            "x",
            "--by",
            "li",
            "--db",
            &db,
        ],
    ));
    assert!(e.contains("only a supervisor"), "{e}");
    ok(doudi(
        dir,
        &[
            "silences",
            "add",
            "--region",
            "341502001",
            "--until",
            &until.to_rfc3339(),
            "--reason",
            "flood response on site",
            "--by",
            "chen",
            "--db",
            &db,
        ],
    ));
    let (escalated, _, silenced) = tick(dir, &db, opened + chrono::TimeDelta::hours(3));
    assert_eq!((escalated, silenced), (0, 1));
    assert!(inbox(dir, &db, "chen").is_empty());
    let (escalated, _, _) = tick(dir, &db, opened + chrono::TimeDelta::hours(11));
    assert_eq!(escalated, 1, "the silence has ended");
    assert_eq!(inbox(dir, &db, "chen"), ["escalated"]);
    let list = ["silences", "list", "--db", &db];
    assert_prints(dir, &list, &["flood response on site", "chen"]);
}

#[test]
fn a_trace_shows_the_record_its_identity_evidence_the_assessment_and_every_human_action() {
    let (tmp, db) = acknowledged(&["--note", "on my way"]);
    let dir = tmp.path();
    let trace: Value =
        serde_json::from_str(&ok(doudi(dir, &["trace", "HA", "--json", "--db", &db]))).unwrap();
    let entries = trace.as_array().unwrap();
    let kinds: Vec<&str> = entries
        .iter()
        .map(|e| e["entry"].as_str().unwrap())
        .collect();
    for k in ["register", "event", "assessment", "warning"] {
        assert!(kinds.contains(&k), "{k} in {kinds:?}");
    }
    let event = entries.iter().find(|e| e["entry"] == "event").unwrap();
    assert_eq!(event["stream"], "health_insurance/2026-02.jsonl");
    assert_eq!(event["position"], 1);
    assert_eq!(event["outcome"], "linked");
    assert!(
        event["evidence"]["model"].is_string(),
        "the model version is in the evidence"
    );
    let assessment = entries.iter().find(|e| e["entry"] == "assessment").unwrap();
    assert!(assessment["rule_set_version"].is_string());
    assert!(
        assessment["assessment"]["contributions"]
            .as_array()
            .unwrap()
            .len()
            >= 2
    );
    let actions: Vec<(String, bool)> = entries
        .iter()
        .filter(|e| e["entry"] == "warning")
        .map(|e| {
            (
                e["actor"].as_str().unwrap().to_string(),
                e["refused"].is_string(),
            )
        })
        .collect();
    assert!(actions.contains(&("zhou".to_string(), true)), "{actions:?}");
    assert!(actions.contains(&("li".to_string(), false)), "{actions:?}");
    let text = trace.to_string();
    assert!(
        !text.contains("34240119490127046X") && !text.contains("陈桂兰"),
        "masked: {text}"
    );
    let human = ok(doudi(dir, &["trace", "HA", "--db", &db]));
    assert!(
        human.contains("REFUSED") && human.contains("on my way"),
        "{human}"
    );
    let e = refused(doudi(dir, &["trace", "NOPE", "--db", &db]));
    assert!(e.contains("knows nothing"), "{e}");
}

/// Run one SQL statement against the test database, as someone tampering with it would.
fn tamper(db: &str, sql: &str) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        use sqlx::Connection;
        let mut c = sqlx::SqliteConnection::connect(db).await.unwrap();
        sqlx::query(sql).execute(&mut c).await.unwrap();
        c.close().await.unwrap();
    });
}

fn verify(dir: &Path, db: &str) -> (Option<i32>, Value) {
    let out = doudi(dir, &["audit", "verify", "--json", "--db", db]);
    (
        out.status.code(),
        serde_json::from_slice(&out.stdout).expect("verify json"),
    )
}

#[test]
fn audit_verify_names_the_first_altered_deleted_or_reordered_record() {
    let (tmp, db) = acknowledged(&[]);
    let dir = tmp.path();
    ok(doudi(dir, &["trace", "HA", "--db", &db]));
    let (code, v) = verify(dir, &db);
    assert_eq!(code, Some(0), "{v}");
    let n = v["records"].as_i64().unwrap();
    assert!(
        n >= 6,
        "register import, officers, batch, refusal, move, read: {v}"
    );
    let list = ok(doudi(dir, &["audit", "list", "--db", &db]));
    for action in [
        "register_imported",
        "officers_imported",
        "batch_applied",
        "warning_acknowledge_refused",
        "warning_acknowledge",
        "read_personal_data",
    ] {
        assert!(list.contains(action), "{action} in {list}");
    }
    assert!(
        !list.contains("34240119490127046X"),
        "no ID number in the trail"
    );

    // Altered: record 3's detail edited.
    tamper(&db, "UPDATE audit_log SET detail = '{}' WHERE seq = 3");
    let (code, v) = verify(dir, &db);
    assert_eq!(code, Some(3));
    assert_eq!(v["first_broken"][0], 3);
    assert!(
        v["first_broken"][1].as_str().unwrap().contains("altered"),
        "{v}"
    );

    // Deleted: record 2 removed, on a fresh trail.
    let (tmp, db, _) = warned();
    let dir = tmp.path();
    tamper(&db, "DELETE FROM audit_log WHERE seq = 2");
    let (code, v) = verify(dir, &db);
    assert_eq!(code, Some(3));
    assert_eq!(v["first_broken"][0], 3, "{v}");
    assert!(
        v["first_broken"][1]
            .as_str()
            .unwrap()
            .contains("#2 is missing"),
        "{v}"
    );

    // Reordered: records 2 and 3 swap places.
    let (tmp, db, _) = warned();
    let dir = tmp.path();
    tamper(&db, "UPDATE audit_log SET seq = -2 WHERE seq = 2");
    tamper(&db, "UPDATE audit_log SET seq = 2 WHERE seq = 3");
    tamper(&db, "UPDATE audit_log SET seq = 3 WHERE seq = -2");
    let (code, v) = verify(dir, &db);
    assert_eq!(code, Some(3));
    assert_eq!(v["first_broken"][0], 2, "{v}");

    // The end cut off.
    let (tmp, db, _) = warned();
    let dir = tmp.path();
    tamper(
        &db,
        "DELETE FROM audit_log WHERE seq = (SELECT MAX(seq) FROM audit_log)",
    );
    let (code, v) = verify(dir, &db);
    assert_eq!(code, Some(3));
    assert!(
        v["first_broken"][1]
            .as_str()
            .unwrap()
            .contains("end of the trail"),
        "{v}"
    );
}
