//! The use cases against a real store (SQLite in a temporary folder): what both doors rely on.

use doudi_app::household::{audit_read, household};
use doudi_app::mask::View;
use doudi_app::review::{decide, Decision};
use doudi_app::warnings::{move_warning, MoveRequest};
use doudi_app::{AppError, EngineSettings, Role, Who};
use doudi_model::{
    parse_event, CandidateEvidence, Evidence, Household, IdEvidence, LinkOutcome, Money,
    ParseLimits, WarningStatus,
};
use doudi_store::{EventRow, Json, LinkRow, OfficerRow, Store};
use doudi_warnings::lifecycle::Move;

struct Db {
    store: Store,
    url: String,
    _dir: tempfile::TempDir,
}

async fn db() -> Db {
    let dir = tempfile::tempdir().expect("temp dir");
    let url = format!("sqlite://{}", dir.path().join("t.db").display());
    let store = Store::open(&url).await.expect("open");
    Db {
        store,
        url,
        _dir: dir,
    }
}

fn household_record(id: &str) -> Household {
    serde_json::from_value(serde_json::json!({
        "household_id": id, "region_code": "341502001003", "address": "大塘村12号", "category": "dibao",
        "area": "rural", "enrolled_on": "2023-05-01",
        "members": [{"member_id": format!("{id}-1"), "id_number": "11010519491231002X", "name": "王秀英",
            "sex": "female", "birth_date": "1949-12-31", "relation": "head", "work_capacity": "none"}]
    }))
    .expect("household")
}

fn officer(id: &str, role: &str, region: &str) -> OfficerRow {
    OfficerRow {
        officer_id: id.into(),
        role: role.into(),
        region_code: region.into(),
        record:
            serde_json::json!({"officer_id": id, "name": "李娜", "role": role, "region": region})
                .to_string(),
    }
}

/// H1 and H2 in village 341502001003; officer `li` of its township, `zhou` of another, supervisor
/// `chief` of the county.
async fn register(store: &Store) {
    store
        .import_register(
            &[household_record("H1"), household_record("H2")],
            "reg",
            true,
        )
        .await
        .unwrap();
    store
        .import_officers(&[
            officer("li", "officer", "341502001"),
            officer("zhou", "officer", "341502002"),
            officer("chief", "supervisor", "341502"),
        ])
        .await
        .unwrap();
}

fn officer_of(region: &str, actor: &str) -> Who {
    Who {
        role: Role::Officer,
        region: region.into(),
        actor: actor.into(),
        token_id: Some(1),
        client: None,
    }
}

/// A serious illness of H1's member, sent to review with H1-1 as its one candidate; returns its
/// seq.
/// A store with the register and one record waiting in review (its seq).
async fn in_review() -> (Db, i64) {
    let db = db().await;
    register(&db.store).await;
    let seq = record_in_review(&db.store).await;
    (db, seq)
}

async fn record_in_review(store: &Store) -> i64 {
    let raw = serde_json::json!({
        "event_id": "d1", "source": "health_insurance", "kind": "serious_illness_diagnosed",
        "occurred_at": "2026-02-12T10:05:00+08:00",
        "subject": {"id_number": "11010519491231002X", "name": "王秀英", "birth_date": "1949-12-31",
            "sex": "female", "region_code": "341502001003"},
        "data": {"diagnosis": "C34.9", "description": "肺恶性肿瘤", "diagnosed_on": "2026-02-12"}
    })
    .to_string();
    let e = parse_event(raw.as_bytes(), &ParseLimits::default()).expect("event");
    let mut tx = store.begin().await.unwrap();
    let new = tx
        .insert_events(&[EventRow {
            source: "health_insurance".into(),
            event_id: "d1".into(),
            kind: e.kind().into(),
            occurred_at: e.occurred_at,
            stream: "health_insurance/a.jsonl".into(),
            position: 1,
            raw: raw.as_bytes().to_vec(),
            normalised: e.to_json(),
            packed: None,
            profile: None,
        }])
        .await
        .unwrap();
    let seq = new[&("health_insurance".to_string(), "d1".to_string())];
    tx.insert_links(&[LinkRow {
        event_seq: seq,
        source: "health_insurance".into(),
        event_id: "d1".into(),
        outcome: LinkOutcome::Review,
        household_id: None,
        member_id: None,
        evidence: Json::encode(&Evidence {
            model_version: "m1".into(),
            id_number: IdEvidence::Missing,
            prior: -10.0,
            total: Some(3.0),
            match_probability: 0.4,
            reason: "between_thresholds".into(),
            candidates: vec![CandidateEvidence {
                household_id: "H1".into(),
                member_id: "H1-1".into(),
                total: 3.0,
                comparisons: vec![],
            }],
        }),
        register_version: 0,
    }])
    .await
    .unwrap();
    tx.commit().await.unwrap();
    seq
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_review_decision_reads_only_the_linked_household_of_the_register() {
    let (db, seq) = in_review().await;
    let store = &db.store;
    // Another household's stored record is unreadable: reading the whole register fails, a
    // decision about H1 does not need it.
    let pool = sqlx::SqlitePool::connect(&db.url).await.unwrap();
    sqlx::query("UPDATE households SET record = '{' WHERE household_id = 'H2'")
        .execute(&pool)
        .await
        .unwrap();
    pool.close().await;
    assert!(store.load_register().await.is_err());
    let settings = EngineSettings::with_rules(doudi_risk::RuleSet::builtin());

    let outside = decide(
        store,
        &settings,
        &officer_of("341502002", "zhou"),
        seq,
        Decision::Reject,
        "zhou",
        "",
    )
    .await;
    // Outside the asker's region: the very answer for a record that is not there (was 403).
    assert!(
        matches!(&outside, Err(AppError::NotFound(m)) if m == &format!("record #{seq} is not in the review queue")),
        "{outside:?}"
    );
    let stranger = Decision::Link {
        member_id: "H2-1".into(),
    };
    let li = officer_of("341502001", "li");
    let not_a_candidate = decide(store, &settings, &li, seq, stranger, "li", "").await;
    assert!(
        matches!(not_a_candidate, Err(AppError::BadRequest(_))),
        "{not_a_candidate:?}"
    );

    let member = Decision::Link {
        member_id: "H1-1".into(),
    };
    let done = decide(store, &settings, &li, seq, member, "li", "checked hukou")
        .await
        .unwrap();
    assert_eq!(done.household_id.as_deref(), Some("H1"));
    assert!(done.level.is_some() && done.score.is_some(), "{done:?}");
    let again = decide(store, &settings, &li, seq, Decision::Reject, "li", "").await;
    assert!(matches!(again, Err(AppError::Conflict(m)) if m.contains("decided already")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_move_by_someone_not_responsible_is_refused_and_recorded_and_the_right_one_moves() {
    let (db, seq) = in_review().await;
    let store = &db.store;
    let settings = EngineSettings::with_rules(doudi_risk::RuleSet::builtin());
    let op = Who::operator("cli:test");
    let link = Decision::Link {
        member_id: "H1-1".into(),
    };
    decide(store, &settings, &op, seq, link, "li", "")
        .await
        .unwrap();
    let w = store.open_warnings(1, None).await.unwrap();
    let id = w
        .first()
        .expect("a serious illness opens a warning")
        .warning_id;
    let limit = Money::from_yuan(1000);
    let ack = |officer| MoveRequest {
        warning_id: id,
        officer,
        note: "",
        m: Move::Acknowledge,
    };

    let refused = move_warning(store, &op, limit, &ack("zhou")).await;
    assert!(
        matches!(refused, Err(AppError::Forbidden(_))),
        "{refused:?}"
    );
    let outside = move_warning(store, &officer_of("341502002", "zhou"), limit, &ack("zhou")).await;
    // Outside the asker's region: "no warning", as for an id that does not exist (was 403).
    assert!(
        matches!(&outside, Err(AppError::NotFound(m)) if *m == format!("no warning #{id}")),
        "{outside:?}"
    );
    let moved = move_warning(store, &op, limit, &ack("li")).await.unwrap();
    assert_eq!(
        (moved.from, moved.to),
        (WarningStatus::Open, WarningStatus::Acknowledged)
    );
    let again = move_warning(store, &op, limit, &ack("li")).await;
    assert!(matches!(again, Err(AppError::Conflict(_))), "{again:?}");
    let history = store.warning_detail(id).await.unwrap().unwrap().history;
    assert!(history
        .iter()
        .any(|h| h.actor == "zhou" && h.refused.is_some()));
}

#[tokio::test]
async fn one_masking_policy_for_every_door_and_every_read_audited() {
    let db = db().await;
    let store = &db.store;
    register(store).await;
    // The command line reads as an administrator: masked, the address too.
    let cli = household(store, &Who::operator("cli:test"), "H1", "households show")
        .await
        .unwrap();
    assert!(cli.masked);
    let text = cli.value.record.to_string();
    assert!(
        !text.contains("11010519491231002X") && !text.contains("王秀英") && !text.contains("12号"),
        "{text}"
    );
    // The region's officer visits the household: in clear.
    let li = household(store, &officer_of("341502001", "li"), "H1", "GET /x")
        .await
        .unwrap();
    assert!(!li.masked && li.value.record.to_string().contains("大塘村12号"));
    let far = household(store, &officer_of("341502002", "zhou"), "H1", "GET /x").await;
    // Outside the asker's region: as if not in the register, no region named (was 403).
    assert!(
        matches!(&far, Err(AppError::NotFound(m)) if m == "household H1 is not in the register"),
        "{far:?}"
    );
    audit_read(
        store,
        &Who::operator("cli:test"),
        "H2",
        "trace",
        View::Trace,
    )
    .await
    .unwrap();
    let reads: Vec<serde_json::Value> = store
        .audit_records(1, 1000)
        .await
        .unwrap()
        .iter()
        .filter(|r| r.action == "read_personal_data")
        .map(|r| serde_json::from_str(&r.detail).unwrap())
        .collect();
    assert_eq!(
        reads,
        [
            serde_json::json!({"via": "households show", "masked": true, "role": "admin"}),
            serde_json::json!({"via": "GET /x", "masked": false, "role": "officer", "token_id": 1}),
            serde_json::json!({"via": "trace", "masked": true, "role": "admin"}),
        ]
    );
}
