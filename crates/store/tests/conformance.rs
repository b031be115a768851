//! One contract, two backends: every test here runs against SQLite (a temporary file) and against
//! PostgreSQL when `DOUDI_TEST_POSTGRES_URL` is set (e.g. `postgres://postgres@127.0.0.1:5432/test`;
//! each test creates its own database there and drops it after, so tests run in parallel).
//! Without the variable the PostgreSQL half prints `skipped: DOUDI_TEST_POSTGRES_URL not set`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use doudi_model::{
    parse_event, Assessment, Contribution, Disposition, Evidence, Household, IdEvidence, Level,
    LinkOutcome, ParseLimits, WarningStatus,
};
use doudi_store::Json;
use doudi_store::{
    AssessmentRow, AttemptOutcome, BatchTx, CrosscheckRunRow, DeadLetterRow, DeliveryAttempt,
    EventRow, FactRow, FindingRow, ImportReport, LinkRow, NewWarning, NightChanges, OfficerRow,
    Position, PositionRow, ReviewChoice, Store, StoreError, WarningMove, WarningUpdate,
    TIMELINE_VERSION_UNKNOWN,
};

/// A database for one test: the store, its URL (for tampering with raw SQL), and what to clean.
struct TestDb {
    store: Store,
    url: String,
    _dir: Option<tempfile::TempDir>,
    /// PostgreSQL: (server URL to connect to for the drop, database name).
    drop: Option<(String, String)>,
}

impl TestDb {
    async fn sqlite() -> TestDb {
        let dir = tempfile::tempdir().expect("temp dir");
        let url = format!("sqlite://{}", dir.path().join("t.db").display());
        TestDb::open(url, Some(dir), None).await
    }

    /// A fresh PostgreSQL database, or `None` (with a printed line) without the variable.
    async fn postgres() -> Option<TestDb> {
        let Ok(server) = std::env::var("DOUDI_TEST_POSTGRES_URL") else {
            println!("skipped: DOUDI_TEST_POSTGRES_URL not set");
            return None;
        };
        static N: AtomicU64 = AtomicU64::new(0);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let name = format!(
            "doudi_t_{}_{}_{}",
            std::process::id(),
            nanos,
            N.fetch_add(1, Ordering::Relaxed)
        );
        admin(&server, &format!("CREATE DATABASE {name}")).await;
        let url = with_database(&server, &name);
        Some(TestDb::open(url, None, Some((server, name))).await)
    }

    /// The store at `url`, with the folder it is in (SQLite) or the database to drop (PostgreSQL).
    async fn open(
        url: String,
        dir: Option<tempfile::TempDir>,
        drop: Option<(String, String)>,
    ) -> TestDb {
        let store = Store::open(&url).await.expect("open the test database");
        TestDb {
            store,
            url,
            _dir: dir,
            drop,
        }
    }

    /// Run raw SQL against the database (to tamper with it).
    async fn exec(&self, sql: &str) {
        if self.url.starts_with("sqlite:") {
            let pool = sqlx::SqlitePool::connect(&self.url)
                .await
                .expect("raw sqlite");
            sqlx::raw_sql(sql).execute(&pool).await.expect("raw sql");
            pool.close().await;
        } else {
            let pool = sqlx::PgPool::connect(&self.url)
                .await
                .expect("raw postgres");
            sqlx::raw_sql(sql).execute(&pool).await.expect("raw sql");
            pool.close().await;
        }
    }

    async fn finish(self) {
        self.store.close().await;
        if let Some((server, name)) = self.drop {
            admin(
                &server,
                &format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
            )
            .await;
        }
    }
}

fn with_database(server: &str, name: &str) -> String {
    let (base, query) = match server.split_once('?') {
        Some((b, q)) => (b, format!("?{q}")),
        None => (server, String::new()),
    };
    let after_scheme = base.find("://").map(|i| i + 3).unwrap_or(0);
    let base = match base[after_scheme..].find('/') {
        Some(slash) => &base[..after_scheme + slash],
        None => base,
    };
    format!("{base}/{name}{query}")
}

async fn admin(server: &str, sql: &str) {
    use sqlx::Connection;
    let mut c = sqlx::PgConnection::connect(server)
        .await
        .expect("connect to DOUDI_TEST_POSTGRES_URL");
    sqlx::raw_sql(sql).execute(&mut c).await.expect(sql);
    let _ = c.close().await;
}

/// `conformance!(name)` runs `async fn name(db: &TestDb)` on SQLite (`name::sqlite`) and on
/// PostgreSQL (`name::postgres`).
macro_rules! conformance {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                let db = super::TestDb::sqlite().await;
                super::$name(&db).await;
                db.finish().await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                let Some(db) = super::TestDb::postgres().await else { return };
                // Run the test as a task so that its database is dropped even if it fails.
                let db = std::sync::Arc::new(db);
                let run = {
                    let db = db.clone();
                    tokio::spawn(async move { super::$name(&db).await })
                };
                let outcome = run.await;
                if let Ok(db) = std::sync::Arc::try_unwrap(db) {
                    db.finish().await;
                }
                if let Err(e) = outcome {
                    std::panic::resume_unwind(e.into_panic());
                }
            }
        }
    )*};
}

conformance!(
    an_unknown_stored_value_is_corrupt_naming_its_column,
    events_are_stored_once_and_a_duplicate_changes_nothing,
    a_batch_without_commit_leaves_nothing,
    positions_never_move_backwards,
    facts_read_back_in_order_and_move_the_timeline_version,
    assessments_are_stored_and_traced,
    an_envelope_sent_as_normalised_is_stored_once_and_traced_whole,
    assessments_and_evidence_are_stored_packed_and_old_json_rows_still_read,
    register_records_are_stored_packed_and_old_json_records_still_read,
    raw_payloads_past_retention_are_removed_and_the_trace_says_when,
    warnings_open_update_and_move_through_their_lifecycle,
    notices_outbox_and_delivery_state,
    dead_letters_are_kept_and_marked_replayed,
    register_import_reports_each_change,
    a_few_households_are_read_without_the_register,
    a_review_item_is_decided_once,
    findings_open_once_per_key_refresh_and_close,
    officer_import_replaces_the_directory,
    region_names_are_imported_renamed_and_read_as_display_names,
    silences_hold_back_notices,
    audit_verify_passes_on_an_untouched_chain,
    audit_verify_catches_an_edited_record,
    audit_verify_catches_a_deleted_record,
    audit_verify_catches_a_reordered_record,
    concurrent_audit_appends_keep_one_chain,
    batches_on_the_same_household_serialise,
    a_batch_without_facts_and_one_with_facts_never_wait_in_a_cycle,
    linkage_models_activated_at_once_leave_one_active,
    activations_sit_between_batches_at_the_committed_positions,
    a_persons_move_waits_for_a_batch_on_the_household,
    a_review_decision_and_a_batch_at_once_both_commit,
    status_counts_everything,
    kafka_publication_is_recorded_once_per_notice,
    superseded_notices_withdrawn_warnings_and_the_resolve_cut,
    what_sent_notices_announced_and_supersedes_stay_per_warning_when_read_together,
    a_page_of_warnings_puts_the_overdue_first_when_asked,
    escalated_warnings_say_how_far_up_and_since_when,
    a_large_register_loads_whole_and_in_order,
    a_night_refreshes_and_closes_many_findings_at_once,
    times_equal_to_the_events_receipt_are_not_stored_again,
);

// ---------------------------------------------------------------------------------------------
// Builders

fn event_row(id: &str) -> EventRow {
    event_row_at(id, "2026-03-01T08:00:00+08:00")
}

/// Events `ids`, in that order (see [`event_row`]).
fn events(ids: &[&str]) -> Vec<EventRow> {
    ids.iter().map(|id| event_row(id)).collect()
}

fn event_row_at(id: &str, at: &str) -> EventRow {
    let raw = format!(
        r#"{{"event_id":"{id}","source":"civil_registry","kind":"death","occurred_at":"{at}","data":{{"died_on":"2026-02-28"}}}}"#
    );
    let e = parse_event(raw.as_bytes(), &ParseLimits::default()).expect("valid event");
    EventRow {
        source: e.source.code().into(),
        event_id: e.event_id.clone(),
        kind: e.kind().into(),
        occurred_at: e.occurred_at,
        stream: "civil_registry/a.jsonl".into(),
        position: 1,
        raw: raw.into_bytes(),
        normalised: e.to_json(),
        packed: None,
        profile: None,
    }
}

fn fact_row(seq: i64, row: &EventRow, household: &str) -> FactRow {
    let e = parse_event(&row.raw, &ParseLimits::default()).expect("valid event");
    FactRow {
        event_seq: seq,
        fact: e.into_fact(household.into(), format!("{household}-1")),
    }
}

fn key(id: &str) -> (String, String) {
    ("civil_registry".to_string(), id.to_string())
}

fn household(id: &str, address: &str) -> Household {
    serde_json::from_value(serde_json::json!({
        "household_id": id, "region_code": "341502001001", "address": address, "category": "dibao",
        "area": "rural", "enrolled_on": "2023-05-01",
        "members": [{"member_id": format!("{id}-1"), "id_number": "11010519491231002X", "name": "王秀英",
            "sex": "female", "birth_date": "1949-12-31", "relation": "head", "work_capacity": "none"}]
    }))
    .expect("household")
}

/// A time as RFC 3339 text says it.
fn at(text: &str) -> chrono::DateTime<chrono::Utc> {
    chrono::DateTime::parse_from_rfc3339(text)
        .expect("time")
        .with_timezone(&chrono::Utc)
}

/// An assessment of `household` whose one contribution (if any events) names `event_ids`.
fn assessment(household: &str, score: i64, level: Level, event_ids: &[&str]) -> Json<Assessment> {
    let contributions = if event_ids.is_empty() {
        Vec::new()
    } else {
        vec![Contribution {
            rule_id: "death".into(),
            points: score,
            reason_zh: "死亡".into(),
            reason_en: "death".into(),
            event_ids: event_ids.iter().map(|e| e.to_string()).collect(),
            urgency: None,
            cause: None,
        }]
    };
    Json::encode(&Assessment {
        rule_set_version: "rules-1".into(),
        household_id: household.into(),
        score,
        level,
        contributions,
        relief: None,
        act_within_hours: None,
        review_needed: Vec::new(),
        basis: None,
        risk: None,
    })
}

fn no_candidates() -> Json<Evidence> {
    Json::encode(&Evidence {
        model_version: "m1".into(),
        id_number: IdEvidence::Missing,
        prior: -10.0,
        total: None,
        match_probability: 0.0,
        reason: "no_candidates".into(),
        candidates: Vec::new(),
    })
}

fn link_row(seq: i64, id: &str, outcome: LinkOutcome, household: Option<&str>) -> LinkRow {
    LinkRow {
        event_seq: seq,
        source: "civil_registry".into(),
        event_id: id.into(),
        outcome,
        household_id: household.map(String::from),
        member_id: household.map(|h| format!("{h}-1")),
        evidence: no_candidates(),
        register_version: 0,
    }
}

fn position(offset: u64, line: u64) -> PositionRow {
    PositionRow {
        source: "civil_registry".into(),
        stream: "civil_registry/a.jsonl".into(),
        byte_offset: offset,
        line,
    }
}

fn new_warning(household: &str, event_id: &str, assigned_to: Option<&str>) -> NewWarning {
    NewWarning {
        household_id: household.into(),
        region_code: "341502001001".into(),
        level: Level::Orange,
        score: 60,
        deadline: at("2026-03-04T00:00:00Z"),
        source: "civil_registry".into(),
        event_id: event_id.into(),
        summary: assessment(household, 60, Level::Orange, &[event_id]),
        assigned_to: assigned_to.map(String::from),
        episode: Default::default(),
    }
}

/// Store events `ids` for `household` as linked facts, and return their seqs.
async fn store_facts(store: &Store, household: &str, ids: &[&str]) -> Vec<i64> {
    store_rows(store, household, events(ids)).await
}

/// [`store_facts`] of events built by the caller.
async fn store_rows(store: &Store, household: &str, rows: Vec<EventRow>) -> Vec<i64> {
    let mut tx = store.begin().await.unwrap();
    let new = tx.insert_events(&rows).await.unwrap();
    let seqs: Vec<i64> = rows.iter().map(|r| new[&key(&r.event_id)]).collect();
    let links: Vec<LinkRow> = rows
        .iter()
        .zip(&seqs)
        .map(|(r, s)| link_row(*s, &r.event_id, LinkOutcome::Linked, Some(household)))
        .collect();
    tx.insert_links(&links).await.unwrap();
    let facts: Vec<FactRow> = rows
        .iter()
        .zip(&seqs)
        .map(|(r, s)| fact_row(*s, r, household))
        .collect();
    tx.insert_facts(&facts).await.unwrap();
    tx.commit().await.unwrap();
    seqs
}

/// A register of H1 alone.
async fn import_h1(store: &Store) {
    store
        .import_register(&[household("H1", "一村1号")], "reg.jsonl", true)
        .await
        .unwrap();
}

/// A batch holding `households` (see [`doudi_store::BatchTx::lock_households`]).
async fn begin_holding(store: &Store, households: &[&str]) -> BatchTx {
    let mut tx = store.begin().await.unwrap();
    let ids: Vec<String> = households.iter().map(|h| h.to_string()).collect();
    tx.lock_households(&ids).await.unwrap();
    tx
}

/// Insert event `id` in `tx` and append it to `household`'s timeline (no link decision).
async fn append_fact(tx: &mut BatchTx, id: &str, household: &str) {
    let r = event_row(id);
    let new = tx.insert_events(std::slice::from_ref(&r)).await.unwrap();
    tx.insert_facts(&[fact_row(new[&key(id)], &r, household)])
        .await
        .unwrap();
}

/// The pipeline's audit record of a batch, with `detail`.
async fn audit_batch(tx: &mut BatchTx, detail: serde_json::Value) {
    tx.audit("pipeline", "batch_applied", "events", &detail)
        .await
        .unwrap();
}

/// Where the audit trail is broken first, and why (it must be).
async fn first_broken(db: &TestDb) -> (i64, String) {
    let check = db.store.verify_audit().await.unwrap();
    check.first_broken.expect("broken")
}

/// Import the register of H1 (一村1号) and H2 (二村2号), whole, from file `file`.
async fn import_h1_h2(store: &Store, file: &str) -> ImportReport {
    let households = [household("H1", "一村1号"), household("H2", "二村2号")];
    store
        .import_register(&households, file, true)
        .await
        .unwrap()
}

/// Open the first warning of H1 (from event `event_id`, assigned to `li`) in `tx`; its id.
async fn open_first_on_h1(tx: &mut BatchTx, event_id: &str) -> i64 {
    assert!(tx.open_warnings(&["H1".into()]).await.unwrap().is_empty());
    tx.open_warning(&new_warning("H1", event_id, Some("li")))
        .await
        .unwrap()
}

/// H1's warning `id` raised to red at `score` by event `event_id`.
fn raised_to_red(
    id: i64,
    score: i64,
    deadline: chrono::DateTime<chrono::Utc>,
    event_id: &str,
) -> WarningUpdate {
    WarningUpdate {
        warning_id: id,
        level: Level::Red,
        score,
        raised: true,
        deadline,
        source: "civil_registry".into(),
        event_id: event_id.into(),
        summary: assessment("H1", score, Level::Red, &[]),
        episode: Default::default(),
        reopen: false,
    }
}

/// Officer li's move of warning `id` from `from` to `to` (`action`) with `note`, without a
/// disposition.
fn li_move(
    id: i64,
    note: &'static str,
    from: WarningStatus,
    to: WarningStatus,
    action: &'static str,
) -> WarningMove<'static> {
    WarningMove {
        warning_id: id,
        from,
        to,
        action,
        actor: "li",
        note,
        disposition: None,
    }
}

/// A person's move that must succeed.
async fn move_ok(store: &Store, m: WarningMove<'_>) {
    store.move_warning(&m).await.unwrap();
}

/// A cross-check night that must be recorded.
async fn record_night(store: &Store, run: &CrosscheckRunRow, changes: &NightChanges) {
    store.record_crosscheck(run, changes).await.unwrap();
}

// ---------------------------------------------------------------------------------------------
// The contract

async fn events_are_stored_once_and_a_duplicate_changes_nothing(db: &TestDb) {
    let store = &db.store;
    let mut tx = store.begin().await.unwrap();
    let first = tx.insert_events(&events(&["e2", "e1"])).await.unwrap();
    assert_eq!(first.len(), 2);
    assert!(
        first[&key("e2")] < first[&key("e1")],
        "seq follows batch order, not key order (a timeline is read back in seq order)"
    );
    tx.add_counters(2, 0).await.unwrap();
    tx.commit().await.unwrap();

    let mut tx = store.begin().await.unwrap();
    let again = tx
        .insert_events(&[event_row("e2"), event_row("e3"), event_row("e3")])
        .await
        .unwrap();
    let keys: Vec<_> = again.keys().map(|(_, id)| id.as_str()).collect();
    assert_eq!(
        keys,
        ["e3"],
        "e2 stored before; e3 twice in a batch is one event"
    );
    assert!(again[&key("e3")] > first[&key("e2")]);
    tx.add_counters(3, 2).await.unwrap();
    tx.commit().await.unwrap();

    // A whole batch of repeats inserts nothing.
    let mut tx = store.begin().await.unwrap();
    assert!(tx
        .insert_events(&[event_row("e1"), event_row("e3")])
        .await
        .unwrap()
        .is_empty());
    tx.commit().await.unwrap();

    let s = store.status().await.unwrap();
    assert_eq!((s.received, s.accepted, s.duplicates), (5, 3, 2));
}

async fn a_batch_without_commit_leaves_nothing(db: &TestDb) {
    let store = &db.store;
    let mut tx = store.begin().await.unwrap();
    assert_eq!(tx.insert_events(&[event_row("e1")]).await.unwrap().len(), 1);
    tx.set_positions(&[position(100, 1)]).await.unwrap();
    audit_batch(&mut tx, serde_json::json!({})).await;
    drop(tx);
    let s = store.status().await.unwrap();
    assert_eq!(s.accepted, 0);
    assert!(store.positions().await.unwrap().is_empty());
    assert!(store.audit_records(1, 10).await.unwrap().is_empty());
    // The event can still come: nothing of it was kept.
    let mut tx = store.begin().await.unwrap();
    assert_eq!(tx.insert_events(&[event_row("e1")]).await.unwrap().len(), 1);
    tx.commit().await.unwrap();
}

async fn positions_never_move_backwards(db: &TestDb) {
    let store = &db.store;
    let stream = (
        "civil_registry".to_string(),
        "civil_registry/a.jsonl".to_string(),
    );
    let set = |rows: Vec<PositionRow>| async move {
        let mut tx = store.begin().await.unwrap();
        tx.set_positions(&rows).await.unwrap();
        tx.commit().await.unwrap();
    };
    set(vec![position(420, 2)]).await;
    assert_eq!(
        store.positions().await.unwrap()[&stream],
        Position {
            byte_offset: 420,
            line: 2
        }
    );
    // A late batch (a worker that lost the partition) does not move it back.
    set(vec![position(100, 1)]).await;
    assert_eq!(store.positions().await.unwrap()[&stream].byte_offset, 420);
    // The same stream twice in one call: the furthest counts.
    set(vec![position(900, 5), position(700, 4)]).await;
    assert_eq!(
        store.positions().await.unwrap()[&stream],
        Position {
            byte_offset: 900,
            line: 5
        }
    );
    // Another stream is its own.
    let mut other = position(10, 1);
    other.stream = "civil_registry/b.jsonl".into();
    set(vec![other]).await;
    let all = store.positions().await.unwrap();
    assert_eq!(all.len(), 2);
    assert_eq!(all[&stream].byte_offset, 900);
}

async fn facts_read_back_in_order_and_move_the_timeline_version(db: &TestDb) {
    let store = &db.store;
    let mut tx = store.begin().await.unwrap();
    let v0 = tx.timeline_version().await.unwrap();
    tx.commit().await.unwrap();
    store_facts(store, "H1", &["f1", "f2"]).await;
    store_facts(store, "H2", &["f3"]).await;
    store_facts(store, "H1", &["f4"]).await;

    let mut tx = store.begin().await.unwrap();
    assert_eq!(tx.timeline_version().await.unwrap(), v0 + 4);
    let t = tx
        .facts_for(&["H1".to_string(), "H2".to_string(), "H9".to_string()])
        .await
        .unwrap();
    let ids = |h: &str| t[h].iter().map(|f| f.event_id.clone()).collect::<Vec<_>>();
    assert_eq!(ids("H1"), ["f1", "f2", "f4"]);
    assert_eq!(ids("H2"), ["f3"]);
    assert!(!t.contains_key("H9"));
    assert_eq!(t["H1"][0].member_id, "H1-1");
    // Within a batch the version moves by the batch's own appends.
    append_fact(&mut tx, "f5", "H2").await;
    assert_eq!(tx.timeline_version().await.unwrap(), v0 + 5);
    tx.commit().await.unwrap();

    let pages = store.timelines_after("", 1).await.unwrap();
    assert_eq!(pages.len(), 1);
    assert_eq!((pages[0].0.as_str(), pages[0].1.len()), ("H1", 3));
    let next = store.timelines_after("H1", 10).await.unwrap();
    assert_eq!(next.len(), 1);
    assert_eq!((next[0].0.as_str(), next[0].1.len()), ("H2", 2));
}

async fn assessments_are_stored_and_traced(db: &TestDb) {
    let store = &db.store;
    import_h1(store).await;
    let seqs = store_facts(store, "H1", &["a1", "a2"]).await;
    let mut tx = store.begin().await.unwrap();
    tx.insert_assessments(&[
        AssessmentRow {
            event_seq: seqs[0],
            source: "civil_registry".into(),
            event_id: "a1".into(),
            household_id: "H1".into(),
            rule_set_version: "rules-1".into(),
            score: 0,
            level: Level::None,
            assessment: None,
        },
        AssessmentRow {
            event_seq: seqs[1],
            source: "civil_registry".into(),
            event_id: "a2".into(),
            household_id: "H1".into(),
            rule_set_version: "rules-1".into(),
            score: 70,
            level: Level::Red,
            assessment: Some(assessment("H1", 70, Level::Red, &[])),
        },
    ])
    .await
    .unwrap();
    tx.commit().await.unwrap();
    assert_eq!(store.status().await.unwrap().assessments, 2);
    let trace = store.trace("H1").await.unwrap();
    let scores: Vec<(i64, Level, bool)> = trace
        .iter()
        .filter_map(|e| match e {
            doudi_store::TraceEntry::Assessment {
                score,
                level,
                assessment,
                ..
            } => Some((*score, *level, assessment.is_some())),
            _ => None,
        })
        .collect();
    assert_eq!(scores, [(0, Level::None, false), (70, Level::Red, true)]);
    let events = trace
        .iter()
        .filter(
            |e| matches!(e, doudi_store::TraceEntry::Event { outcome, .. } if *outcome == LinkOutcome::Linked),
        )
        .count();
    assert_eq!(events, 2);
    assert!(trace.iter().any(
        |e| matches!(e, doudi_store::TraceEntry::Register { change, .. } if change == "added")
    ));
}

async fn an_envelope_sent_as_normalised_is_stored_once_and_traced_whole(db: &TestDb) {
    let store = &db.store;
    import_h1(store).await;
    // n1: the department sent our envelope exactly as doudi writes it; n2: its own spelling.
    let mut same = event_row("n1");
    same.raw = same.normalised.clone().into_bytes();
    let other = event_row("n2");
    assert_ne!(other.raw, other.normalised.as_bytes());
    store_rows(store, "H1", vec![same.clone(), other.clone()]).await;
    // The raw bytes are stored once (none kept for n1), yet every record's raw reads back whole.
    let stored = raw_lengths(&db.url).await;
    assert_eq!(
        stored,
        [
            ("n1".to_string(), 0),
            ("n2".to_string(), other.raw.len() as i64)
        ]
    );
    let raws: Vec<(String, String)> = store
        .trace("H1")
        .await
        .unwrap()
        .into_iter()
        .filter_map(|e| match e {
            doudi_store::TraceEntry::Event { event_id, raw, .. } => Some((event_id, raw)),
            _ => None,
        })
        .collect();
    let text = |r: &EventRow| String::from_utf8(r.raw.clone()).unwrap();
    assert_eq!(
        raws,
        [
            ("n1".to_string(), text(&same)),
            ("n2".to_string(), text(&other))
        ]
    );
    // The timeline (what every re-derivation reads) is whole too.
    let mut tx = store.begin().await.unwrap();
    let t = tx.facts_for(&["H1".to_string()]).await.unwrap();
    assert_eq!(t["H1"].len(), 2);
}

/// Events, assessments, link evidence and the register's history are stored packed (text, not
/// JSON) and read back as they were written; a row stored before packing (plain JSON) reads the
/// same.
async fn assessments_and_evidence_are_stored_packed_and_old_json_rows_still_read(db: &TestDb) {
    let store = &db.store;
    import_h1(store).await;
    let seqs = store_facts(store, "H1", &["p1", "p2"]).await;
    let red = assessment("H1", 70, Level::Red, &["p1", "p2"]);
    let rows: Vec<AssessmentRow> = seqs
        .iter()
        .zip(["p1", "p2"])
        .map(|(seq, id)| AssessmentRow {
            event_seq: *seq,
            source: "civil_registry".into(),
            event_id: id.into(),
            household_id: "H1".into(),
            rule_set_version: "rules-1".into(),
            score: 70,
            level: Level::Red,
            assessment: Some(red.clone()),
        })
        .collect();
    let mut tx = store.begin().await.unwrap();
    tx.insert_assessments(&rows).await.unwrap();
    let stored = tx.stored_assessments(&seqs).await.unwrap();
    assert_eq!(
        stored[&seqs[0]],
        ("rules-1".to_string(), Some(red.as_str().to_string()))
    );
    tx.commit().await.unwrap();
    // Packed in the columns: neither is JSON there. On SQLite bytes (a BLOB: the dictionary's
    // byte, high bit set, then the deflate stream), on PostgreSQL text (`~`, id, base64).
    let sql = "SELECT assessment FROM assessments UNION ALL SELECT evidence FROM link_decisions
               UNION ALL SELECT normalised FROM events UNION ALL SELECT after FROM register_history
               UNION ALL SELECT record FROM households";
    let stored = column_bytes(&db.url, sql).await;
    assert_eq!(stored.len(), 8);
    let sqlite = db.url.starts_with("sqlite:");
    assert!(
        stored
            .iter()
            .all(|b| if sqlite { b[0] >= 0x80 } else { b[0] == b'~' }),
        "{stored:?}"
    );
    if sqlite {
        let types = column_bytes(
            &db.url,
            "SELECT typeof(normalised) FROM events UNION ALL SELECT typeof(record) FROM households",
        )
        .await;
        assert!(types.iter().all(|t| t == b"blob"), "{types:?}");
    }
    // Old rows: the JSON itself (before packing), and packed text (`~`: SQLite rows written
    // before packed documents were kept as bytes).
    db.exec(&format!(
        "UPDATE assessments SET assessment = '{}' WHERE seq = {};
         UPDATE link_decisions SET evidence = '{}' WHERE seq = {};
         UPDATE events SET normalised = '{}' WHERE seq = {};
         UPDATE events SET normalised = '{}' WHERE seq = {};
         INSERT INTO register_history (import_id, household_id, change, before, after)
           SELECT import_id, household_id, 'changed', NULL, '{}' FROM register_history",
        red.as_str().replace('\'', "''"),
        seqs[1],
        no_candidates().as_str(),
        seqs[1],
        event_row("p2").normalised,
        seqs[1],
        // As written before zstd: deflate, in the text form.
        doudi_store::pack_event_deflate(&event_row("p1").normalised).to_text(),
        seqs[0],
        serde_json::to_string(&household("H1", "一村1号")).unwrap()
    ))
    .await;
    assert!(column_bytes(&db.url, "SELECT normalised FROM events")
        .await
        .iter()
        .any(|b| b.starts_with(b"~n")));
    let mut tx = store.begin().await.unwrap();
    let facts = &tx.facts_for(&["H1".to_string()]).await.unwrap()["H1"];
    let ids: Vec<&str> = facts.iter().map(|f| f.event_id.as_str()).collect();
    assert_eq!(ids, ["p1", "p2"]);
    drop(tx);
    let trace = store.trace("H1").await.unwrap();
    let (mut assessments, mut evidence, mut records) = (Vec::new(), Vec::new(), Vec::new());
    for e in trace {
        match e {
            doudi_store::TraceEntry::Register { record, .. } => records.push(record),
            doudi_store::TraceEntry::Assessment { assessment, .. } => assessments.push(assessment),
            doudi_store::TraceEntry::Event { evidence: ev, .. } => evidence.push(ev),
            _ => {}
        }
    }
    let want = red.decode("test").unwrap();
    assert_eq!(assessments, [Some(want.clone()), Some(want)]);
    let no = no_candidates().decode("test").unwrap();
    assert_eq!(evidence, [no.clone(), no]);
    let h1 = serde_json::to_value(household("H1", "一村1号")).unwrap();
    assert_eq!(records, [Some(h1.clone()), Some(h1)]);
    let mut tx = store.begin().await.unwrap();
    let stored = tx.stored_assessments(&seqs).await.unwrap();
    assert_eq!(stored[&seqs[0]], stored[&seqs[1]]);
}

/// The register's records are stored packed (`households.record`, and the history's `before`
/// and `after` with them); a record stored before (plain JSON) reads the same through every
/// reader of the register, and an import that changes it keeps it, as stored, for `before`.
async fn register_records_are_stored_packed_and_old_json_records_still_read(db: &TestDb) {
    let store = &db.store;
    import_h1_h2(store, "reg").await;
    let want = [household("H1", "一村1号"), household("H2", "二村2号")];
    let json = |h: &Household| serde_json::to_value(h).unwrap();
    let loaded = store.load_register().await.unwrap();
    assert_eq!(
        loaded.iter().map(json).collect::<Vec<_>>(),
        want.iter().map(json).collect::<Vec<_>>()
    );
    let records = column_bytes(
        &db.url,
        "SELECT record FROM households ORDER BY household_id",
    )
    .await;
    let plain = serde_json::to_string(&want[0]).unwrap();
    assert!(
        records[0].len() * 2 < plain.len(),
        "{} packed from {}",
        records[0].len(),
        plain.len()
    );
    assert_eq!(
        json(&doudi_store::decode_household_record(&records[0]).unwrap()),
        json(&want[0])
    );
    // H1 as a store from before packing holds it: the JSON itself.
    db.exec(&format!(
        "UPDATE households SET record = '{plain}' WHERE household_id = 'H1'"
    ))
    .await;
    let loaded = store.load_register().await.unwrap();
    assert_eq!(
        loaded.iter().map(json).collect::<Vec<_>>(),
        want.iter().map(json).collect::<Vec<_>>()
    );
    let few = store.register_households(&["H1".into()]).await.unwrap();
    assert_eq!(json(&few[0]), json(&want[0]));
    let shown = store.household("H1").await.unwrap().expect("H1");
    assert_eq!(shown.record, json(&want[0]));
    // An import that changes H1 keeps the old JSON as `before`; the register as of the version
    // before it reads it back; the new record is packed.
    let version = store.register_version().await.unwrap();
    let moved = household("H1", "一村9号");
    store
        .import_register(&[moved.clone(), want[1].clone()], "reg2", true)
        .await
        .unwrap();
    let before = store
        .households_as_of(&["H1".into()], version)
        .await
        .unwrap();
    assert_eq!(json(&before[0]), json(&want[0]));
    let now = store
        .households_as_of(&["H1".into()], version + 1)
        .await
        .unwrap();
    assert_eq!(json(&now[0]), json(&moved));
    let records = column_bytes(
        &db.url,
        "SELECT record FROM households ORDER BY household_id",
    )
    .await;
    assert_ne!(records[0].first(), Some(&b'{'));
    // A damaged record is corrupt, naming its column.
    db.exec("UPDATE households SET record = '~rAAAA' WHERE household_id = 'H2'")
        .await;
    let e = store.load_register().await.unwrap_err().to_string();
    assert!(e.contains("households.record"), "{e}");
}

/// Retention removes the raw payloads received before a moment, marks when, and the trace says
/// so instead of showing the normalised text; the event itself (normalised) stays whole.
async fn raw_payloads_past_retention_are_removed_and_the_trace_says_when(db: &TestDb) {
    let store = &db.store;
    import_h1(store).await;
    let mut same = event_row("r1");
    same.raw = same.normalised.clone().into_bytes();
    let other = event_row("r2");
    store_rows(store, "H1", vec![same.clone(), other.clone()]).await;
    let removed_at = |store: &Store| {
        let store = store.clone();
        async move {
            store
                .trace("H1")
                .await
                .unwrap()
                .into_iter()
                .filter_map(|e| match e {
                    doudi_store::TraceEntry::Event {
                        raw,
                        raw_removed_at,
                        ..
                    } => Some((raw, raw_removed_at.is_some())),
                    _ => None,
                })
                .collect::<Vec<_>>()
        }
    };
    // Received after the cut-off: kept.
    let past = at("2020-01-01T00:00:00Z");
    assert_eq!(store.remove_raw_before(past, "retention").await.unwrap(), 0);
    let kept = removed_at(store).await;
    assert_eq!(
        kept[1],
        (String::from_utf8(other.raw.clone()).unwrap(), false)
    );
    assert_eq!(kept[0], (same.normalised.clone(), false));
    // Received before it: removed, marked, audited, once.
    let records = store.verify_audit().await.unwrap().records;
    let later = chrono::Utc::now() + chrono::Duration::seconds(5);
    assert_eq!(
        store.remove_raw_before(later, "retention").await.unwrap(),
        2
    );
    assert_eq!(
        store.remove_raw_before(later, "retention").await.unwrap(),
        0
    );
    assert_eq!(
        removed_at(store).await,
        [(String::new(), true), (String::new(), true)]
    );
    assert_eq!(
        raw_lengths(&db.url).await,
        [("r1".to_string(), 0), ("r2".to_string(), 0)]
    );
    let mut tx = store.begin().await.unwrap();
    assert_eq!(
        tx.facts_for(&["H1".to_string()]).await.unwrap()["H1"].len(),
        2
    );
    drop(tx);
    let check = store.verify_audit().await.unwrap();
    assert_eq!((check.records, check.first_broken), (records + 1, None));
}

/// The first column (text) of `sql`'s rows, read past the store.
/// The values of a query's one column as bytes (a SQLite BLOB or TEXT, a PostgreSQL TEXT).
async fn column_bytes(url: &str, sql: &str) -> Vec<Vec<u8>> {
    use sqlx::Connection;
    if url.starts_with("sqlite:") {
        let mut c = sqlx::SqliteConnection::connect(url).await.unwrap();
        sqlx::query_scalar(sql).fetch_all(&mut c).await.unwrap()
    } else {
        let mut c = sqlx::PgConnection::connect(url).await.unwrap();
        let texts: Vec<String> = sqlx::query_scalar(sql).fetch_all(&mut c).await.unwrap();
        texts.into_iter().map(String::into_bytes).collect()
    }
}

/// `(event_id, length of the stored raw column)` of every event, read past the store.
async fn raw_lengths(url: &str) -> Vec<(String, i64)> {
    use sqlx::Connection;
    let sql = "SELECT event_id, CAST(length(raw) AS BIGINT) FROM events ORDER BY event_id";
    if url.starts_with("sqlite:") {
        let mut c = sqlx::SqliteConnection::connect(url).await.unwrap();
        sqlx::query_as(sql).fetch_all(&mut c).await.unwrap()
    } else {
        let mut c = sqlx::PgConnection::connect(url).await.unwrap();
        sqlx::query_as(sql).fetch_all(&mut c).await.unwrap()
    }
}

/// A register with H1 and an officer "li" covering its region; a warning opened on H1 by event
/// `w1`. Returns the warning id.
async fn open_one_warning(store: &Store) -> i64 {
    import_h1_h2(store, "reg").await;
    store
        .import_officers(&[OfficerRow {
            officer_id: "li".into(),
            role: "officer".into(),
            region_code: "341502001".into(),
            record: r#"{"officer_id":"li"}"#.into(),
        }])
        .await
        .unwrap();
    store_facts(store, "H1", &["w1"]).await;
    let mut tx = store.begin().await.unwrap();
    let id = open_first_on_h1(&mut tx, "w1").await;
    // Read back inside the batch (pending changes are written first).
    let open = tx.open_warnings(&["H1".into()]).await.unwrap();
    assert_eq!(open["H1"].warning_id, id);
    assert_eq!((open["H1"].level, open["H1"].score), (Level::Orange, 60));
    tx.commit().await.unwrap();
    id
}

async fn warnings_open_update_and_move_through_their_lifecycle(db: &TestDb) {
    let store = &db.store;
    let id = open_one_warning(store).await;

    let mut tx = store.begin().await.unwrap();
    tx.update_warning(&raised_to_red(id, 80, at("2026-03-02T00:00:00Z"), "w2"))
        .await
        .unwrap();
    // A second warning in the same batch gets its own id.
    let id2 = tx
        .open_warning(&new_warning("H2", "w3", None))
        .await
        .unwrap();
    assert_ne!(id, id2);
    tx.commit().await.unwrap();

    let list = store.open_warnings(10, None).await.unwrap();
    assert_eq!(list.len(), 2);
    assert_eq!((list[0].warning_id, list[0].level), (id, Level::Red));
    assert_eq!(list[0].household["household_id"], "H1");
    assert_eq!(store.open_warnings(10, Some("li")).await.unwrap().len(), 1);
    assert_eq!(store.status().await.unwrap().warnings_open[&Level::Red], 1);

    use WarningStatus::{Acknowledged, Open, Resolved, Visited};
    let relief = Disposition::ReliefGranted {
        amount: "1500".parse().unwrap(),
    };
    let mv = |from, to: WarningStatus, action| WarningMove {
        disposition: (to == Resolved).then_some(&relief),
        ..li_move(id, "called the household", from, to, action)
    };
    move_ok(store, mv(Open, Acknowledged, "acknowledge")).await;
    let stale = store.move_warning(&mv(Open, Visited, "visit")).await;
    assert!(
        matches!(&stale, Err(StoreError::Conflict(m)) if m.contains("no longer open")),
        "{stale:?}"
    );
    store
        .record_refused_move(id, "visit", "li", "", "warning moved meanwhile")
        .await
        .unwrap();
    move_ok(store, mv(Acknowledged, Visited, "visit")).await;
    move_ok(store, mv(Visited, Resolved, "resolve")).await;

    let d = store.warning_detail(id).await.unwrap().expect("warning");
    assert_eq!(d.warning.status, Resolved);
    assert!(d.acknowledged_at.is_some() && d.visited_at.is_some() && d.resolved_at.is_some());
    assert_eq!(d.disposition, Some(relief));
    let actions: Vec<&str> = d.history.iter().map(|h| h.action.as_str()).collect();
    assert_eq!(
        actions,
        [
            "opened",
            "raised",
            "acknowledge",
            "visit",
            "visit",
            "resolve"
        ]
    );
    assert_eq!(d.history[4].refused, None);
    assert_eq!(
        d.history[3].refused.as_deref(),
        Some("warning moved meanwhile")
    );
    assert!(store.warning_detail(id + 1000).await.unwrap().is_none());

    // Resolved: no longer open; a new episode may open on the household.
    let mut tx = store.begin().await.unwrap();
    let id3 = open_first_on_h1(&mut tx, "w4").await;
    tx.commit().await.unwrap();
    assert!(id3 > id2);
    assert_eq!(store.status().await.unwrap().warnings_total, 3);
    assert_eq!(store.verify_audit().await.unwrap().first_broken, None);
}

async fn notices_outbox_and_delivery_state(db: &TestDb) {
    let store = &db.store;
    let id = open_one_warning(store).await;
    let pending = store.pending_notices(10).await.unwrap();
    assert_eq!(pending.len(), 1, "one notice for the opened warning");
    let n = &pending[0];
    assert_eq!(
        (n.warning_id, n.kind.as_str(), n.recipient.as_str()),
        (id, "opened", "li")
    );
    assert_eq!(n.household_id, "H1");
    assert_eq!(
        n.members_concerned,
        ["H1-1"],
        "w1 is named by the warning's rules"
    );
    assert!(n.household.contains("H1"));
    assert_eq!(store.inbox("li", 10).await.unwrap().len(), 1);

    // Two more notices (escalation): a retry, then failed; the first delivered.
    store
        .add_notices(&[
            doudi_store::NoticeRow {
                warning_id: id,
                kind: "reminder".into(),
                recipient: "li".into(),
                due_at: at("2026-03-02T00:00:00.000000Z"),
                note: "please acknowledge".into(),
            },
            doudi_store::NoticeRow {
                warning_id: id,
                kind: "escalated".into(),
                recipient: "chief".into(),
                due_at: at("2026-03-03T00:00:00.000000Z"),
                note: "".into(),
            },
        ])
        .await
        .unwrap();
    let pending = store.pending_notices(10).await.unwrap();
    let ids: Vec<i64> = pending.iter().map(|p| p.notice_id).collect();
    assert_eq!(ids.len(), 3);
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "in notice order");
    let attempt = |notices: Vec<(i64, i64)>, outcome: AttemptOutcome| DeliveryAttempt {
        recipient: "li".into(),
        channel: "webhook".into(),
        idempotency_key: format!("k-{}", notices[0].0),
        notices,
        digest: false,
        at: "2026-03-02T01:00:00.000000Z".into(),
        http_status: Some(503),
        error: Some("status 503".into()),
        elapsed_ms: 12,
        outcome,
    };
    store
        .record_deliveries(&[
            attempt(vec![(ids[0], 1)], AttemptOutcome::Delivered),
            attempt(
                vec![(ids[1], 1)],
                AttemptOutcome::Retry {
                    next_attempt_at: "2026-03-02T01:05:00.000000Z".into(),
                },
            ),
        ])
        .await
        .unwrap();
    store.mark_inbox_only(&[ids[2]]).await.unwrap();
    let pending = store.pending_notices(10).await.unwrap();
    assert_eq!(pending.len(), 1);
    assert_eq!(
        (
            pending[0].notice_id,
            pending[0].attempts,
            pending[0].next_attempt_at.as_deref()
        ),
        (ids[1], 1, Some("2026-03-02T01:05:00.000000Z"))
    );
    store
        .record_deliveries(&[attempt(vec![(ids[1], 2)], AttemptOutcome::Failed)])
        .await
        .unwrap();
    assert!(store.pending_notices(10).await.unwrap().is_empty());

    let states = store.notice_deliveries(0, 10).await.unwrap();
    let st: Vec<(&str, i64)> = states
        .iter()
        .map(|s| (s.delivery.as_str(), s.attempts))
        .collect();
    assert_eq!(st, [("delivered", 1), ("failed", 2), ("inbox_only", 0)]);
    assert_eq!(states[1].last_error.as_deref(), Some("status 503"));
    assert!(states[0].delivered_at.is_some());

    let log = store.delivery_log(None, 10).await.unwrap();
    assert_eq!(log.len(), 3);
    assert_eq!(log[0].outcome, "failed", "newest first");
    let of_second = store.delivery_log(Some(ids[1]), 10).await.unwrap();
    assert_eq!(
        of_second
            .iter()
            .map(|l| (l.attempt, l.outcome.as_str()))
            .collect::<Vec<_>>(),
        [(2, "failed"), (1, "retry")]
    );
    assert_eq!(of_second[0].notice_ids, [ids[1]]);
    assert!(store
        .delivery_log(Some(ids[2]), 10)
        .await
        .unwrap()
        .is_empty());
}

async fn kafka_publication_is_recorded_once_per_notice(db: &TestDb) {
    let store = &db.store;
    let id = open_one_warning(store).await;
    store
        .add_notices(&[doudi_store::NoticeRow {
            warning_id: id,
            kind: "reminder".into(),
            recipient: "li".into(),
            due_at: at("2026-03-02T00:00:00.000000Z"),
            note: String::new(),
        }])
        .await
        .unwrap();
    let todo = store.kafka_unpublished_notices(10).await.unwrap();
    assert_eq!(todo.len(), 2, "every notice waits for Kafka");
    assert!(todo[0].notice_id < todo[1].notice_id, "in notice order");
    assert_eq!(todo[0].members_concerned, ["H1-1"]);
    let first = todo[0].notice_id;
    assert_eq!(
        store.mark_kafka_published(&[(first, 2, 40)]).await.unwrap(),
        1
    );
    // Marked again (a recovery finding it on the topic): the first record stays.
    assert_eq!(
        store.mark_kafka_published(&[(first, 3, 99)]).await.unwrap(),
        0
    );
    let left = store.kafka_unpublished_notices(10).await.unwrap();
    assert_eq!(left.len(), 1);
    assert_ne!(left[0].notice_id, first);
    let all = store.kafka_publications().await.unwrap();
    assert_eq!(all[0], (first, Some((2, 40))));
    assert_eq!(all[1].1, None);
    // Webhook delivery is independent of it.
    assert_eq!(store.pending_notices(10).await.unwrap().len(), 2);
}

async fn dead_letters_are_kept_and_marked_replayed(db: &TestDb) {
    let store = &db.store;
    let dead = |line: u64, code: &str, raw: &[u8]| DeadLetterRow {
        source: "civil_registry".into(),
        stream: "civil_registry/a.jsonl".into(),
        line,
        byte_offset: line * 100,
        event_id: (line != 2).then(|| format!("d{line}")),
        reason_code: code.into(),
        reason: format!("{code} at line {line}"),
        raw: raw.to_vec(),
        raw_len: raw.len() as u64 + 10,
    };
    let mut tx = store.begin().await.unwrap();
    tx.insert_dead_letters(&[
        dead(1, "bad_json", b"{not json"),
        dead(2, "too_large", &[0xff, 0xfe, b'x']),
        dead(3, "bad_json", b"{\"x\":"),
    ])
    .await
    .unwrap();
    tx.commit().await.unwrap();

    let list = store.dead_letters(10).await.unwrap();
    assert_eq!(list.len(), 3);
    assert_eq!(
        (list[0].line, list[0].reason_code.as_str()),
        (1, "bad_json")
    );
    assert_eq!(
        list[1].raw_preview, "\u{fffd}\u{fffd}x",
        "bytes kept as they came"
    );
    assert_eq!(list[1].raw_len, 13);
    let bad_json = store
        .dead_letters_to_replay(&[], Some("bad_json"), 0, 10)
        .await
        .unwrap();
    assert_eq!(bad_json.iter().map(|d| d.line).collect::<Vec<_>>(), [1, 3]);
    assert_eq!(bad_json[0].raw, b"{not json");
    let by_id = store
        .dead_letters_to_replay(&[list[1].id], None, 0, 10)
        .await
        .unwrap();
    assert_eq!(by_id.len(), 1);
    assert_eq!(by_id[0].raw, [0xff, 0xfe, b'x']);

    let mut tx = store.begin().await.unwrap();
    tx.mark_replayed(&[bad_json[0].id]).await.unwrap();
    tx.commit().await.unwrap();
    let left = store
        .dead_letters_to_replay(&[], None, 0, 10)
        .await
        .unwrap();
    assert_eq!(left.iter().map(|d| d.line).collect::<Vec<_>>(), [2, 3]);
    let after = store
        .dead_letters_to_replay(&[], None, left[0].id, 10)
        .await
        .unwrap();
    assert_eq!(after.len(), 1);
    let list = store.dead_letters(10).await.unwrap();
    assert!(list[0].replayed_at.is_some() && list[1].replayed_at.is_none());
    assert_eq!(store.status().await.unwrap().dead_letters, 3);
}

async fn register_import_reports_each_change(db: &TestDb) {
    let store = &db.store;
    let r = import_h1_h2(store, "a").await;
    assert_eq!((r.added, r.changed, r.removed, r.unchanged), (2, 0, 0, 0));
    let r = store
        .import_register(&[household("H1", "一村9号")], "b", true)
        .await
        .unwrap();
    assert_eq!((r.added, r.changed, r.removed, r.unchanged), (0, 1, 1, 0));
    assert!(r.import_id > 1);
    assert_eq!(store.status().await.unwrap().households, 1);
    // A partial file adds and changes only.
    let r = store
        .import_register(&[household("H3", "三村3号")], "c", false)
        .await
        .unwrap();
    assert_eq!((r.added, r.removed), (1, 0));
    let r = store
        .import_register(
            &[household("H1", "一村9号"), household("H2", "二村2号")],
            "d",
            true,
        )
        .await
        .unwrap();
    assert_eq!((r.added, r.restored, r.unchanged, r.removed), (0, 1, 1, 1));
    let reg = store.load_register().await.unwrap();
    assert_eq!(
        reg.iter()
            .map(|h| h.household_id.as_str())
            .collect::<Vec<_>>(),
        ["H1", "H2"]
    );
    let s = store.status().await.unwrap();
    assert_eq!((s.households, s.members), (2, 2));
    assert_eq!(
        store.household_region("H3").await.unwrap().as_deref(),
        Some("341502001001")
    );
    let changes: Vec<String> = store
        .trace("H2")
        .await
        .unwrap()
        .into_iter()
        .filter_map(|e| match e {
            doudi_store::TraceEntry::Register { change, .. } => Some(change),
            _ => None,
        })
        .collect();
    assert_eq!(changes, ["added", "removed", "restored"]);
}

async fn a_review_item_is_decided_once(db: &TestDb) {
    let store = &db.store;
    let mut tx = store.begin().await.unwrap();
    let new = tx.insert_events(&events(&["r1", "r2"])).await.unwrap();
    let (s1, s2) = (new[&key("r1")], new[&key("r2")]);
    tx.insert_links(&[
        link_row(s1, "r1", LinkOutcome::Review, None),
        link_row(s2, "r2", LinkOutcome::Linked, Some("H1")),
    ])
    .await
    .unwrap();
    tx.commit().await.unwrap();
    assert_eq!(
        store
            .pending_reviews(10)
            .await
            .unwrap()
            .iter()
            .map(|i| i.seq)
            .collect::<Vec<_>>(),
        [s1]
    );
    assert_eq!(store.pending_review_count().await.unwrap(), 1);
    let mut tx = store.begin().await.unwrap();
    assert!(tx.event_at(s1).await.unwrap().unwrap().contains("r1"));
    assert_eq!(tx.member_household("H1-1").await.unwrap(), None);
    tx.record_review(
        s1,
        &ReviewChoice::Link {
            household_id: "H1".into(),
            member_id: "H1-1".into(),
        },
        "officer-7",
        "checked by phone",
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    assert_eq!(store.pending_review_count().await.unwrap(), 0);
    let item = store.review_item(s1).await.unwrap().expect("still shown");
    let d = item.decision.expect("decided");
    assert_eq!(
        (d.decision.as_str(), d.member_id.as_deref()),
        ("link", Some("H1-1"))
    );
    assert_eq!(store.decided_reviews().await.unwrap().len(), 1);
    assert_eq!(
        store.link_decision(s2).await.unwrap().unwrap().outcome,
        LinkOutcome::Linked
    );

    let mut tx = store.begin().await.unwrap();
    let again = tx
        .record_review(s1, &ReviewChoice::Reject, "officer-8", "")
        .await;
    assert!(
        matches!(&again, Err(StoreError::Conflict(m)) if m.contains("decided already")),
        "{again:?}"
    );
    let not_review = tx
        .record_review(s2, &ReviewChoice::Reject, "officer-8", "")
        .await;
    assert!(
        matches!(&not_review, Err(StoreError::Conflict(m)) if m.contains("not sent to review"))
    );
    assert!(matches!(
        tx.record_review(9999, &ReviewChoice::Reject, "x", "").await,
        Err(StoreError::Conflict(_))
    ));
    drop(tx);

    // Linkage models: one active.
    store
        .activate_linkage_model("m1", "{}", 10, "doudi")
        .await
        .unwrap();
    store
        .activate_linkage_model("m2", "{\"x\":1}", 20, "doudi")
        .await
        .unwrap();
    assert_eq!(
        store.active_linkage_model().await.unwrap().unwrap().version,
        "m2"
    );
    store
        .activate_linkage_model("m1", "ignored", 0, "doudi")
        .await
        .unwrap();
    let m = store.active_linkage_model().await.unwrap().unwrap();
    assert_eq!((m.version.as_str(), m.model.as_str()), ("m1", "{}"));
}

async fn findings_open_once_per_key_refresh_and_close(db: &TestDb) {
    let store = &db.store;
    let finding = |key: &str, night: &str| FindingRow {
        key: key.into(),
        check_code: "deceased_still_paid".into(),
        household_id: "H1".into(),
        member_id: Some("H1-1".into()),
        region_code: "341502001001".into(),
        category: "eligibility_review".into(),
        amount_fen: 64_100,
        finding: "{}".into(),
        first_seen: "2026-11-01".into(),
        last_seen: night.into(),
        deadline: "2026-11-16T00:00:00Z".into(),
        assigned_to: Some("li".into()),
    };
    let run = |night: &str| CrosscheckRunRow {
        night: night.into(),
        snapshots: "snap".into(),
        started_at: "2026-11-01T02:00:00Z".into(),
        rows_read: 100,
        bad_rows: 0,
    };
    assert_eq!(store.last_crosscheck_night().await.unwrap(), None);
    let opened = NightChanges {
        opened: vec![finding("a", "2026-11-01"), finding("b", "2026-11-01")],
        ..NightChanges::default()
    };
    record_night(store, &run("2026-11-01"), &opened).await;
    assert_eq!(store.open_findings().await.unwrap().len(), 2);
    let dup = NightChanges {
        opened: vec![finding("a", "2026-11-01")],
        ..NightChanges::default()
    };
    assert!(store
        .record_crosscheck(&run("2026-11-01"), &dup)
        .await
        .is_err());
    let next = NightChanges {
        refreshed: vec![finding("a", "2026-11-02")],
        closed: vec![("b".into(), "no longer true on 2026-11-02".into())],
        ..NightChanges::default()
    };
    record_night(store, &run("2026-11-02"), &next).await;
    let older = store
        .record_crosscheck(&run("2026-10-30"), &NightChanges::default())
        .await;
    assert!(matches!(older, Err(StoreError::Conflict(_))));
    assert_eq!(
        store.last_crosscheck_night().await.unwrap().as_deref(),
        Some("2026-11-02")
    );
    let open = store.open_findings().await.unwrap();
    assert_eq!(open.len(), 1);
    assert_eq!(open[0].row.last_seen, "2026-11-02");
    let all = store.all_findings().await.unwrap();
    let b = all.iter().find(|f| f.row.key == "b").unwrap();
    assert_eq!(
        (
            b.status.as_str(),
            b.closed_on.as_deref(),
            b.close_note.as_deref()
        ),
        (
            "closed",
            Some("2026-11-02"),
            Some("no longer true on 2026-11-02")
        )
    );
    // Reopened later: a new finding, the old one stays closed.
    let again = NightChanges {
        opened: vec![finding("b", "2026-11-03")],
        ..NightChanges::default()
    };
    record_night(store, &run("2026-11-03"), &again).await;
    assert_eq!(store.all_findings().await.unwrap().len(), 3);
}

async fn officer_import_replaces_the_directory(db: &TestDb) {
    let store = &db.store;
    let row = |id: &str, region: &str| OfficerRow {
        officer_id: id.into(),
        role: "officer".into(),
        region_code: region.into(),
        record: format!(r#"{{"officer_id":"{id}","region":"{region}"}}"#),
    };
    let r = store
        .import_officers(&[row("li", "341502001"), row("wang", "341502002")])
        .await
        .unwrap();
    assert_eq!((r.added, r.changed, r.deactivated), (2, 0, 0));
    let r = store
        .import_officers(&[row("li", "341502003")])
        .await
        .unwrap();
    assert_eq!(
        (r.added, r.changed, r.unchanged, r.deactivated),
        (0, 1, 0, 1)
    );
    let r = store
        .import_officers(&[row("li", "341502003"), row("wang", "341502002")])
        .await
        .unwrap();
    assert_eq!(
        (r.added, r.changed, r.unchanged, r.deactivated),
        (0, 1, 1, 0)
    );
    let all = store.load_officers().await.unwrap();
    assert_eq!(
        all.iter()
            .map(|o| (o.officer_id.as_str(), o.region_code.as_str()))
            .collect::<Vec<_>>(),
        [("li", "341502003"), ("wang", "341502002")]
    );
}

async fn region_names_are_imported_renamed_and_read_as_display_names(db: &TestDb) {
    use doudi_store::RegionName;
    let store = &db.store;
    let r = |code: &str, name: &str| RegionName {
        code: code.into(),
        name: name.into(),
    };
    let report = store
        .import_region_names(
            &[
                r("341502", "金安区"),
                r("341502102", "东河口镇"),
                r("341502102003", "大塘村"),
                r("341502103001", "桥头村"),
            ],
            "regions.csv",
        )
        .await
        .unwrap();
    assert_eq!((report.added, report.renamed, report.unchanged), (4, 0, 0));
    let codes: Vec<String> = ["341502102003", "341502102", "341502103001", "341502999001"]
        .map(String::from)
        .to_vec();
    let names = store.region_names(&codes).await.unwrap();
    assert_eq!(names["341502102003"], "东河口镇大塘村");
    assert_eq!(names["341502102"], "东河口镇");
    assert_eq!(names["341502103001"], "桥头村", "its township has no name");
    assert!(!names.contains_key("341502999001"), "unnamed: the code");
    assert!(store.region_names(&[]).await.unwrap().is_empty());

    // A later import renames and adds; nothing is deleted.
    let report = store
        .import_region_names(
            &[r("341502102003", "大塘社区"), r("341502103", "马头镇")],
            "regions-2.csv",
        )
        .await
        .unwrap();
    assert_eq!((report.added, report.renamed, report.unchanged), (1, 1, 0));
    let names = store.region_names(&codes).await.unwrap();
    assert_eq!(names["341502102003"], "东河口镇大塘社区");
    assert_eq!(names["341502103001"], "马头镇桥头村");
    let all = store.list_region_names("").await.unwrap();
    assert_eq!(all.len(), 5);
    assert_eq!(all[0], r("341502", "金安区"));
    let under = store.list_region_names("341502103").await.unwrap();
    assert_eq!(
        under.iter().map(|r| r.code.as_str()).collect::<Vec<_>>(),
        ["341502103", "341502103001"]
    );
    // Many codes at once (more than one statement's worth on SQLite).
    let many: Vec<RegionName> = (0..1200)
        .map(|i| {
            r(
                &format!("341599{:03}{:03}", i / 100, i % 100),
                &format!("村{i}"),
            )
        })
        .collect();
    store.import_region_names(&many, "many.csv").await.unwrap();
    let codes: Vec<String> = many.iter().map(|r| r.code.clone()).collect();
    assert_eq!(store.region_names(&codes).await.unwrap().len(), 1200);
}

async fn silences_hold_back_notices(db: &TestDb) {
    let store = &db.store;
    let id = open_one_warning(store).await;
    let now = doudi_store::ts(&chrono::Utc::now());
    let later = doudi_store::ts(&(chrono::Utc::now() + chrono::Duration::days(1)));
    let sid = store
        .add_silence(
            "region",
            "3415",
            "flood: officers in the field",
            "2000-01-01T00:00:00.000000Z",
            &later,
            "chief",
        )
        .await
        .unwrap();
    let list = store.silences().await.unwrap();
    assert_eq!(
        (list[0].silence_id, list[0].scope.as_str()),
        (sid, "region")
    );
    let clocks = store.warning_clocks(at(&now)).await.unwrap();
    assert_eq!(clocks.len(), 1);
    assert_eq!(
        (
            clocks[0].warning_id,
            clocks[0].silenced_until.map(|t| doudi_store::ts(&t))
        ),
        (id, Some(later.clone()))
    );
    assert_eq!(clocks[0].assigned_to.as_deref(), Some("li"));
    // A warning raised while silenced: updated, but no notice.
    let before = store.pending_notices(10).await.unwrap().len();
    let mut tx = store.begin().await.unwrap();
    tx.update_warning(&raised_to_red(id, 90, chrono::Utc::now(), "w9"))
        .await
        .unwrap();
    tx.commit().await.unwrap();
    assert_eq!(store.pending_notices(10).await.unwrap().len(), before);
    assert_eq!(
        store.open_warnings(1, None).await.unwrap()[0].level,
        Level::Red
    );
    // Outside the window the silence does not count.
    let clocks = store
        .warning_clocks(at("1999-01-01T00:00:00.000000Z"))
        .await
        .unwrap();
    assert_eq!(clocks[0].silenced_until, None);
    // An escalation step is a compare-and-set on the state it was decided from.
    let step = doudi_store::EscalationUpdate {
        warning_id: id,
        expected_status: WarningStatus::Open,
        expected_ack_steps: 0,
        expected_resolve_escalated: false,
        ack_steps: 1,
        resolve_escalated: false,
        last_notice_at: at(&now),
        notices: vec![doudi_store::NoticeRow {
            warning_id: id,
            kind: "escalated".into(),
            recipient: "chief".into(),
            due_at: at(&now),
            note: String::new(),
        }],
    };
    assert_eq!(
        store
            .record_escalations(std::slice::from_ref(&step))
            .await
            .unwrap()
            .len(),
        1
    );
    assert!(
        store.record_escalations(&[step]).await.unwrap().is_empty(),
        "applied once"
    );
    assert_eq!(
        store.warning_clocks(at(&now)).await.unwrap()[0].ack_steps,
        1
    );
}

/// Five audit records (and the ones the register import writes).
async fn some_audit_records(store: &Store) -> i64 {
    for i in 0..5 {
        store
            .audit(
                "officer-7",
                "warning_read",
                &format!("warning:{i}"),
                &serde_json::json!({"i": i}),
            )
            .await
            .unwrap();
    }
    let check = store.verify_audit().await.unwrap();
    assert_eq!(check.first_broken, None);
    check.records
}

async fn audit_verify_passes_on_an_untouched_chain(db: &TestDb) {
    let store = &db.store;
    let n = some_audit_records(store).await;
    assert_eq!(n, 5);
    let recs = store.audit_records(2, 2).await.unwrap();
    assert_eq!(recs.iter().map(|r| r.seq).collect::<Vec<_>>(), [2, 3]);
    assert_eq!(recs[1].prev_hash, recs[0].hash);
    assert_eq!(
        recs[0].hash,
        doudi_store::record_hash(
            &recs[0].prev_hash,
            2,
            &recs[0].at,
            &recs[0].actor,
            &recs[0].action,
            &recs[0].subject,
            &recs[0].detail
        )
    );
}

async fn audit_verify_catches_an_edited_record(db: &TestDb) {
    some_audit_records(&db.store).await;
    db.exec("UPDATE audit_log SET detail = '{\"i\":99}' WHERE seq = 3")
        .await;
    let (seq, why) = first_broken(db).await;
    assert_eq!(seq, 3);
    assert!(why.contains("altered"), "{why}");
}

async fn audit_verify_catches_a_deleted_record(db: &TestDb) {
    some_audit_records(&db.store).await;
    db.exec("DELETE FROM audit_log WHERE seq = 2").await;
    let (seq, why) = first_broken(db).await;
    assert_eq!(seq, 3);
    assert!(why.contains("deleted or reordered"), "{why}");
    // The end of the trail deleted is caught by the count.
    db.exec("DELETE FROM audit_log WHERE seq >= 2").await;
    let (seq, why) = first_broken(db).await;
    assert_eq!(seq, 2);
    assert!(why.contains("missing"), "{why}");
}

async fn audit_verify_catches_a_reordered_record(db: &TestDb) {
    some_audit_records(&db.store).await;
    // Records 2 and 3 swap places (their contents and hashes; the numbering stays).
    db.exec(
        "UPDATE audit_log SET seq = -2 WHERE seq = 2;
         UPDATE audit_log SET seq = 2 WHERE seq = 3;
         UPDATE audit_log SET seq = 3 WHERE seq = -2;",
    )
    .await;
    let (seq, why) = first_broken(db).await;
    assert_eq!(seq, 2);
    assert!(
        why.contains("does not follow") || why.contains("altered"),
        "{why}"
    );
}

async fn concurrent_audit_appends_keep_one_chain(db: &TestDb) {
    let mut tasks = Vec::new();
    for t in 0..6 {
        let store = db.store.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..5 {
                store
                    .audit(
                        "pipeline",
                        "x",
                        &format!("t{t}:{i}"),
                        &serde_json::json!({}),
                    )
                    .await
                    .expect("append");
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let check = db.store.verify_audit().await.unwrap();
    assert_eq!((check.records, check.first_broken), (30, None));
}

async fn batches_on_the_same_household_serialise(db: &TestDb) {
    let store = db.store.clone();
    let postgres = store.backend() == "postgres";
    let (locked_tx, locked_rx) = tokio::sync::oneshot::channel();
    let hold = Duration::from_millis(400);
    // A: holds H1, appends a fact, commits after `hold`.
    let a = {
        let store = store.clone();
        tokio::spawn(async move {
            let mut tx = store.begin().await.unwrap();
            tx.lock_households(&["H1".into(), "H1".into()])
                .await
                .unwrap();
            append_fact(&mut tx, "c1", "H1").await;
            locked_tx.send(()).unwrap();
            tokio::time::sleep(hold).await;
            let committing = Instant::now();
            tx.commit().await.unwrap();
            committing
        })
    };
    locked_rx.await.unwrap();
    if postgres {
        // Another household is not held up by A.
        let t0 = Instant::now();
        let tx = begin_holding(&store, &["H2"]).await;
        tx.commit().await.unwrap();
        assert!(t0.elapsed() < hold / 2, "H2 waited for H1's batch");
    }
    // B: wants H1 too; must see A's fact once it holds the household.
    let mut tx = store.begin().await.unwrap();
    tx.lock_households(&["H3".into(), "H1".into()])
        .await
        .unwrap();
    let b_locked = Instant::now();
    let t = tx.facts_for(&["H1".into()]).await.unwrap();
    let a_committing = a.await.unwrap();
    assert!(b_locked >= a_committing, "B held H1 before A committed");
    assert_eq!(t["H1"].len(), 1, "B reads H1 as A left it");
    tx.commit().await.unwrap();

    if postgres {
        // Timelines held since the first version read are not taken as current when another
        // worker appended meanwhile (to another household).
        let mut tx = begin_holding(&store, &["H1"]).await;
        let v0 = tx.timeline_version().await.unwrap();
        store_facts(&store, "H2", &["c2"]).await;
        append_fact(&mut tx, "c3", "H1").await;
        assert_eq!(
            tx.timeline_version().await.unwrap(),
            TIMELINE_VERSION_UNKNOWN
        );
        tx.commit().await.unwrap();
        let mut tx = store.begin().await.unwrap();
        assert_eq!(tx.timeline_version().await.unwrap(), v0 + 2);
    }
}

/// A batch with facts takes the timeline counter's row, then the `received` / `duplicates` rows; a
/// batch without facts (only duplicates, or only dead letters) must take them in the same order,
/// or the two deadlock (PostgreSQL aborts one after `deadlock_timeout`).
async fn a_batch_without_facts_and_one_with_facts_never_wait_in_a_cycle(db: &TestDb) {
    let store = db.store.clone();
    let (started_tx, started_rx) = tokio::sync::oneshot::channel();
    // A: appends a fact (the timeline counter's row), lets B start, then counts and commits.
    let a = {
        let store = store.clone();
        tokio::spawn(async move {
            let mut tx = begin_holding(&store, &["H1"]).await;
            append_fact(&mut tx, "w1", "H1").await;
            started_tx.send(()).unwrap();
            tokio::time::sleep(Duration::from_millis(300)).await;
            tx.add_counters(1, 0).await.unwrap();
            audit_batch(&mut tx, serde_json::json!({"a": 1})).await;
            tx.commit().await.unwrap();
        })
    };
    started_rx.await.unwrap();
    // B: a batch of one duplicate, no facts: counts, appends its audit record, commits.
    let mut tx = store.begin().await.unwrap();
    tx.add_counters(1, 1).await.unwrap();
    audit_batch(&mut tx, serde_json::json!({"b": 1})).await;
    tx.commit().await.unwrap();
    a.await.unwrap();
    let check = store.verify_audit().await.unwrap();
    assert_eq!((check.records, check.first_broken), (2, None));
}

/// Two workers started at once on a new database both store the default linkage model, or a
/// model is trained while a worker starts: every activation succeeds, and one model is active.
async fn linkage_models_activated_at_once_leave_one_active(db: &TestDb) {
    let mut stored = 0;
    for round in 0..10 {
        // The same version twice (two workers), then two versions (a worker and a training).
        let versions = if round % 2 == 0 {
            [format!("v{round}"), format!("v{round}")]
        } else {
            [format!("v{round}-a"), format!("v{round}-b")]
        };
        let both: Vec<_> = versions
            .iter()
            .map(|version| {
                let store = db.store.clone();
                let version = version.clone();
                tokio::spawn(async move {
                    store
                        .activate_linkage_model(&version, "{}", 100, "doudi")
                        .await
                })
            })
            .collect();
        for task in both {
            task.await.unwrap().unwrap();
        }
        let active = db.store.active_linkage_model().await.unwrap().unwrap();
        assert!(
            versions.contains(&active.version),
            "{} active",
            active.version
        );
        // The same model twice is one activation (the second changes nothing); two are two.
        let now = db.store.activations().await.unwrap();
        let new: Vec<&str> = now[stored..].iter().map(|a| a.version.as_str()).collect();
        if round % 2 == 0 {
            assert_eq!(new, [versions[0].as_str()]);
        } else {
            assert_eq!(new.len(), 2, "{new:?}");
        }
        stored = now.len();
    }
}

/// An activation takes effect at every stream's committed position (the line after it); a
/// from-start activation is stored only while none of its kind is; a batch holding the timeline
/// counter's lock keeps an activation waiting until it commits, and then sees no new generation.
async fn activations_sit_between_batches_at_the_committed_positions(db: &TestDb) {
    use doudi_store::ActivationKind;
    let store = &db.store;
    assert_eq!(store.activation_generation().await.unwrap(), 0);
    let (first, stored) = store
        .activate(ActivationKind::Rules, "r1", "version = 'r1'", "doudi", true)
        .await
        .unwrap();
    assert!(stored && first.from.is_empty() && first.covers("any/stream", 0));
    // A second worker's first run: the stored one stays.
    let (again, stored) = store
        .activate(ActivationKind::Rules, "r9", "", "doudi", true)
        .await
        .unwrap();
    assert!(!stored);
    assert_eq!(again.id, first.id);

    let mut tx = store.begin().await.unwrap();
    tx.set_positions(&[position(420, 7)]).await.unwrap();
    tx.commit().await.unwrap();
    // A batch under the lock: the activation waits for its commit.
    let mut tx = store.begin().await.unwrap();
    tx.lock_timeline_counter().await.unwrap();
    let generation = tx.activation_generation().await.unwrap();
    assert_eq!(generation, first.id);
    let activating = {
        let store = store.clone();
        tokio::spawn(async move {
            store
                .activate(
                    ActivationKind::Rules,
                    "r2",
                    "version = 'r2'",
                    "alice",
                    false,
                )
                .await
        })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    tx.set_positions(&[position(900, 9)]).await.unwrap();
    assert_eq!(tx.activation_generation().await.unwrap(), generation);
    tx.commit().await.unwrap();
    let (second, stored) = activating.await.unwrap().unwrap();
    assert!(stored);
    // After the batch's commit: from the line after the batch's last one.
    let line = second.from["civil_registry/a.jsonl"];
    assert_eq!(line, 10);
    assert!(!second.covers("civil_registry/a.jsonl", line - 1));
    assert!(second.covers("civil_registry/a.jsonl", line));
    assert!(second.covers("a/new/stream", 0));
    assert_eq!(store.activation_generation().await.unwrap(), second.id);
    let all = store.activations().await.unwrap();
    assert_eq!(
        all.iter()
            .map(|a| (a.version.as_str(), a.activated_by.as_str()))
            .collect::<Vec<_>>(),
        vec![("r1", "doudi"), ("r2", "alice")]
    );
    // A model's activation is stored with it.
    let m = store
        .activate_linkage_model("m1", "{}", 10, "doudi")
        .await
        .unwrap();
    assert_eq!(
        (m.kind, m.version.as_str(), m.content.as_str()),
        (ActivationKind::Model, "m1", "m1")
    );
    assert!(m.id > second.id);
}

async fn a_persons_move_waits_for_a_batch_on_the_household(db: &TestDb) {
    let store = db.store.clone();
    let id = open_one_warning(&store).await;
    let mut tx = begin_holding(&store, &["H1"]).await;
    let open = tx.open_warnings(&["H1".into()]).await.unwrap();
    assert_eq!(open["H1"].warning_id, id);
    let mover = {
        let store = store.clone();
        tokio::spawn(async move {
            let done = store
                .move_warning(&WarningMove {
                    warning_id: id,
                    from: WarningStatus::Open,
                    to: WarningStatus::Acknowledged,
                    action: "acknowledge",
                    actor: "li",
                    note: "",
                    disposition: None,
                })
                .await;
            (done, Instant::now())
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!mover.is_finished(), "the move did not wait for the batch");
    tx.update_warning(&raised_to_red(id, 95, chrono::Utc::now(), "w2"))
        .await
        .unwrap();
    let committing = Instant::now();
    tx.commit().await.unwrap();
    let (done, at) = mover.await.unwrap();
    done.unwrap();
    assert!(at >= committing);
    let d = store.warning_detail(id).await.unwrap().unwrap();
    assert_eq!(
        (d.warning.status, d.warning.level),
        (WarningStatus::Acknowledged, Level::Red)
    );
    let actions: Vec<&str> = d.history.iter().map(|h| h.action.as_str()).collect();
    assert_eq!(actions, ["opened", "raised", "acknowledge"]);
}

async fn a_few_households_are_read_without_the_register(db: &TestDb) {
    let store = &db.store;
    store
        .import_register(
            &[
                household("H1", "一村1号"),
                household("H2", "二村2号"),
                household("H3", "三村3号"),
            ],
            "reg",
            true,
        )
        .await
        .unwrap();
    import_h1_h2(store, "reg2").await;
    let ids = |hs: Vec<Household>| hs.into_iter().map(|h| h.household_id).collect::<Vec<_>>();
    let wanted: Vec<String> = ["H3", "H2", "NOPE"].iter().map(|s| s.to_string()).collect();
    assert_eq!(
        ids(store.register_households(&wanted).await.unwrap()),
        ["H2"],
        "active households only, unknown ids left out"
    );
    assert!(store.register_households(&[]).await.unwrap().is_empty());

    // As the register was at each version: H3 removed at 2 and restored at 3, H1 changed at 3,
    // H2 removed at 3.
    let v3 = store
        .import_register(
            &[household("H1", "一村1号之二"), household("H3", "三村3号")],
            "reg3",
            true,
        )
        .await
        .unwrap();
    assert_eq!(v3.version, 3);
    let all: Vec<String> = ["H1", "H2", "H3", "NOPE"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let addresses = |hs: Vec<Household>| {
        hs.into_iter()
            .map(|h| format!("{} {}", h.household_id, h.address))
            .collect::<Vec<_>>()
    };
    for (version, expected) in [
        (1, &["H1 一村1号", "H2 二村2号", "H3 三村3号"][..]),
        (2, &["H1 一村1号", "H2 二村2号"][..]),
        (3, &["H1 一村1号之二", "H3 三村3号"][..]),
    ] {
        assert_eq!(
            addresses(store.households_as_of(&all, version).await.unwrap()),
            expected,
            "as of version {version}"
        );
    }
    let mut tx = store.begin().await.unwrap();
    assert_eq!(
        addresses(tx.households_as_of(&all, 2).await.unwrap()),
        ["H1 一村1号", "H2 二村2号"],
        "in a transaction"
    );
    assert!(tx.households_as_of(&[], 2).await.unwrap().is_empty());
}

/// Stored vocabulary is read back as types: a value no type knows is an error naming the table and
/// column, never a default (an unknown level once read back as `none`).
async fn an_unknown_stored_value_is_corrupt_naming_its_column(db: &TestDb) {
    let store = &db.store;
    let id = open_one_warning(store).await;
    db.exec(&format!(
        "UPDATE warnings SET level = 'purple' WHERE warning_id = {id}"
    ))
    .await;
    let corrupt_level = |e: StoreError| {
        matches!(
            e,
            StoreError::Corrupt {
                context: "warnings.level",
                ..
            }
        )
    };
    let mut tx = store.begin().await.unwrap();
    assert!(corrupt_level(
        tx.open_warnings(&["H1".into()]).await.unwrap_err()
    ));
    drop(tx);
    assert!(corrupt_level(store.warning_detail(id).await.unwrap_err()));
    assert!(corrupt_level(
        store.open_warnings(10, None).await.unwrap_err()
    ));
    db.exec(&format!(
        "UPDATE warnings SET level = 'red', deadline = 'soon' WHERE warning_id = {id}"
    ))
    .await;
    let e = store.warning_detail(id).await.unwrap_err();
    assert!(e.to_string().contains("warnings.deadline"), "{e}");
}

/// A review decision audits before it appends its fact, a batch appends before it audits: one
/// lock order keeps the two from waiting on each other in a cycle.
async fn a_review_decision_and_a_batch_at_once_both_commit(db: &TestDb) {
    let store = db.store.clone();
    let mut tx = store.begin().await.unwrap();
    let r = event_row("q1");
    let s1 = tx.insert_events(std::slice::from_ref(&r)).await.unwrap()[&key("q1")];
    tx.insert_links(&[link_row(s1, "q1", LinkOutcome::Review, None)])
        .await
        .unwrap();
    tx.commit().await.unwrap();

    // The person's decision: household H2, its audit record, then (later) the fact.
    let mut review = store.begin().await.unwrap();
    review.lock_households(&["H2".into()]).await.unwrap();
    let choice = ReviewChoice::Link {
        household_id: "H2".into(),
        member_id: "H2-1".into(),
    };
    review
        .record_review(s1, &choice, "officer-7", "")
        .await
        .unwrap();
    // Meanwhile a batch on H1: its fact, then its audit record.
    let batch = {
        let store = store.clone();
        tokio::spawn(async move {
            let mut tx = begin_holding(&store, &["H1"]).await;
            let r = event_row("q2");
            let s2 = tx.insert_events(std::slice::from_ref(&r)).await.unwrap()[&key("q2")];
            tx.insert_facts(&[fact_row(s2, &r, "H1")]).await.unwrap();
            audit_batch(&mut tx, serde_json::json!({})).await;
            tx.commit().await
        })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    review
        .insert_facts(&[fact_row(s1, &r, "H2")])
        .await
        .unwrap();
    review.commit().await.unwrap();
    batch.await.unwrap().unwrap();
    let mut tx = store.begin().await.unwrap();
    let t = tx.facts_for(&["H1".into(), "H2".into()]).await.unwrap();
    assert_eq!((t["H1"].len(), t["H2"].len()), (1, 1));
    drop(tx);
    let check = store.verify_audit().await.unwrap();
    assert_eq!((check.records, check.first_broken), (2, None));
}

async fn status_counts_everything(db: &TestDb) {
    let store = &db.store;
    import_h1_h2(store, "reg").await;
    let rows = [
        event_row("s1"),
        event_row("s2"),
        event_row("s3"),
        event_row("s4"),
    ];
    let mut tx = store.begin().await.unwrap();
    let new = tx.insert_events(&rows).await.unwrap();
    let seq = |id: &str| new[&key(id)];
    tx.insert_links(&[
        link_row(seq("s1"), "s1", LinkOutcome::Linked, Some("H1")),
        link_row(seq("s2"), "s2", LinkOutcome::Linked, Some("H2")),
        link_row(seq("s3"), "s3", LinkOutcome::Review, None),
        link_row(seq("s4"), "s4", LinkOutcome::Unmatched, None),
    ])
    .await
    .unwrap();
    tx.insert_facts(&[
        fact_row(seq("s1"), &rows[0], "H1"),
        fact_row(seq("s2"), &rows[1], "H2"),
    ])
    .await
    .unwrap();
    tx.insert_dead_letters(&[DeadLetterRow {
        source: "civil_registry".into(),
        stream: "civil_registry/a.jsonl".into(),
        line: 5,
        byte_offset: 500,
        event_id: None,
        reason_code: "bad_json".into(),
        reason: "bad".into(),
        raw: b"{".to_vec(),
        raw_len: 1,
    }])
    .await
    .unwrap();
    tx.open_warning(&new_warning("H1", "s1", None))
        .await
        .unwrap();
    tx.add_counters(6, 1).await.unwrap();
    tx.commit().await.unwrap();
    let s = store.status().await.unwrap();
    assert_eq!(
        (s.received, s.accepted, s.duplicates, s.dead_letters),
        (6, 4, 1, 1)
    );
    assert_eq!((s.linked, s.review, s.unmatched, s.applied), (2, 1, 1, 2));
    assert_eq!((s.households, s.members, s.warnings_total), (2, 2, 1));
    assert_eq!(s.warnings_open.get(&Level::Orange), Some(&1));
    assert_eq!(s.assessments, 0);
}

#[tokio::test]
async fn other_urls_are_refused_with_what_is_supported() {
    let e = Store::open("mysql://localhost/x").await.unwrap_err();
    assert!(matches!(e, StoreError::UnsupportedUrl(_)));
    assert!(e.to_string().contains("postgres://"), "{e}");
}

#[test]
fn a_test_database_url_keeps_server_and_options() {
    assert_eq!(
        with_database("postgres://postgres@127.0.0.1:5432/test", "x"),
        "postgres://postgres@127.0.0.1:5432/x"
    );
    assert_eq!(
        with_database("postgres://u:p@h/test?sslmode=disable", "x"),
        "postgres://u:p@h/x?sslmode=disable"
    );
    assert_eq!(with_database("postgres://h", "x"), "postgres://h/x");
}

/// Issue 24: what the sent notices announced is read for a batch's warnings together, and pending
/// notices are superseded a list at a time: each warning still gets its own highest sent level
/// (pending notices announce nothing yet), and a supersede reaches only its own warning's notices
/// of that transition.
async fn what_sent_notices_announced_and_supersedes_stay_per_warning_when_read_together(
    db: &TestDb,
) {
    let store = &db.store;
    let h1 = open_one_warning(store).await;
    let mut tx = store.begin().await.unwrap();
    let h2 = tx
        .open_warning(&new_warning("H2", "w3", Some("li")))
        .await
        .unwrap();
    tx.update_warning(&raised_to_red(h1, 80, at("2026-03-02T00:00:00Z"), "w2"))
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let announced = |current: &std::collections::HashMap<
        String,
        doudi_store::CurrentWarningRow,
    >| { (current["H1"].announced, current["H2"].announced) };
    let both = || vec!["H1".to_string(), "H2".to_string()];
    let mut tx = store.begin().await.unwrap();
    let (current, _) = tx.current_warnings(&both()).await.unwrap();
    assert_eq!(announced(&current), (Level::None, Level::None));
    drop(tx);

    // H1's two notices (opened orange, raised red) reach the inbox; H2's stays pending.
    let pending = store.pending_notices(10).await.unwrap();
    assert_eq!(pending.len(), 3);
    let of = |warning: i64| -> Vec<i64> {
        (pending.iter())
            .filter(|n| n.warning_id == warning)
            .map(|n| n.notice_id)
            .collect()
    };
    store.mark_inbox_only(&of(h1)).await.unwrap();
    let mut tx = store.begin().await.unwrap();
    let (current, _) = tx.current_warnings(&both()).await.unwrap();
    assert_eq!(announced(&current), (Level::Red, Level::None));
    drop(tx);
    store.mark_inbox_only(&of(h2)).await.unwrap();
    let mut tx = store.begin().await.unwrap();
    let (current, _) = tx.current_warnings(&both()).await.unwrap();
    assert_eq!(announced(&current), (Level::Red, Level::Orange));
    drop(tx);

    // New pending notices on both; one supersede list: H1's by its transition, H2's by a
    // transition it does not have.
    let mut tx = store.begin().await.unwrap();
    tx.update_warning(&raised_to_red(h1, 90, at("2026-03-02T00:00:00Z"), "w5"))
        .await
        .unwrap();
    tx.update_warning(&raised_to_red(h2, 85, at("2026-03-02T00:00:00Z"), "w4"))
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let mut tx = store.begin().await.unwrap();
    tx.supersede_notices(
        h1,
        doudi_store::transition_key(Level::Red, "civil_registry", "w5"),
    );
    tx.supersede_notices(
        h2,
        doudi_store::transition_key(Level::Red, "civil_registry", "w5"),
    );
    tx.commit().await.unwrap();
    let pending = store.pending_notices(10).await.unwrap();
    assert_eq!(
        pending.iter().map(|n| n.warning_id).collect::<Vec<_>>(),
        vec![h2],
        "only H1's notice of that transition is superseded"
    );
    // Superseded and pending notices announce nothing: the levels are as before.
    let mut tx = store.begin().await.unwrap();
    let (current, _) = tx.current_warnings(&both()).await.unwrap();
    assert_eq!(announced(&current), (Level::Red, Level::Orange));
}

/// Issue 19: a pending notice whose transition vanished is superseded (neither delivered nor
/// published); a withdrawn warning leaves the lists and reopens in place; a resolve stores the
/// household's episode cut.
async fn superseded_notices_withdrawn_warnings_and_the_resolve_cut(db: &TestDb) {
    let store = &db.store;
    let id = open_one_warning(store).await;
    assert_eq!(store.pending_notices(10).await.unwrap().len(), 1);
    // Another transition's key supersedes nothing; the opening transition's does.
    for (level, pending) in [(Level::Red, 1), (Level::Orange, 0)] {
        let mut tx = store.begin().await.unwrap();
        let transition = doudi_store::transition_key(level, "civil_registry", "w1");
        tx.supersede_notices(id, transition);
        tx.commit().await.unwrap();
        assert_eq!(store.pending_notices(10).await.unwrap().len(), pending);
    }
    assert!(store
        .kafka_unpublished_notices(10)
        .await
        .unwrap()
        .is_empty());

    // Withdrawn: out of the open list, still the household's current row.
    let mut tx = store.begin().await.unwrap();
    tx.withdraw_warning(doudi_store::WarningChange {
        warning_id: id,
        action: "withdrawn",
        level: Level::Orange,
        score: 60,
        source: "civil_registry".into(),
        event_id: "w1".into(),
        notify: None,
    });
    tx.commit().await.unwrap();
    assert!(store.open_warnings(10, None).await.unwrap().is_empty());
    let mut tx = store.begin().await.unwrap();
    let (current, cuts) = tx.current_warnings(&["H1".into()]).await.unwrap();
    assert_eq!(current["H1"].status, "withdrawn");
    assert_eq!(current["H1"].episode.transitions.as_deref(), Some("[]"));
    assert!(cuts.is_empty());
    // Reopened in place, with its episode mark.
    let occurred = at("2026-02-28T00:00:00Z");
    tx.put_warning_update(&WarningUpdate {
        warning_id: id,
        level: Level::Red,
        score: 90,
        raised: false,
        deadline: at("2026-03-04T00:00:00Z"),
        source: "civil_registry".into(),
        event_id: "w1".into(),
        summary: assessment("H1", 90, Level::Red, &["w1"]),
        episode: doudi_store::EpisodeMark {
            occurred_at: Some(occurred),
            late: true,
            transitions: Some("[]".into()),
        },
        reopen: true,
    });
    tx.commit().await.unwrap();
    let list = store.open_warnings(10, None).await.unwrap();
    assert_eq!(list.len(), 1);
    assert_eq!(
        (
            list[0].warning_id,
            list[0].level,
            list[0].occurred_at,
            list[0].late
        ),
        (id, Level::Red, Some(occurred), true)
    );

    // A resolve cuts the episode at the household's highest timeline seq.
    let seqs = store_facts(store, "H1", &["w2", "w3"]).await;
    let mv = |from, to, action| li_move(id, "checked", from, to, action);
    use WarningStatus::{Acknowledged, Open, Resolved, Visited};
    move_ok(store, mv(Open, Acknowledged, "acknowledge")).await;
    move_ok(store, mv(Acknowledged, Visited, "visit")).await;
    store
        .move_warning(&WarningMove {
            disposition: Some(&Disposition::RiskCleared),
            ..mv(Visited, Resolved, "resolve")
        })
        .await
        .unwrap();
    let mut tx = store.begin().await.unwrap();
    let (current, cuts) = tx.current_warnings(&["H1".into()]).await.unwrap();
    assert!(current.is_empty());
    assert_eq!(cuts.get("H1"), seqs.iter().max());
}

/// The pages' inbox and region overview: with `overdue_first_at`, an overdue orange comes before a
/// red not yet due, whatever the page's limit; without it, the API's order (level, deadline).
async fn a_page_of_warnings_puts_the_overdue_first_when_asked(db: &TestDb) {
    let store = &db.store;
    let orange = open_one_warning(store).await; // deadline 2026-03-04
    let mut tx = store.begin().await.unwrap();
    let red = tx
        .open_warning(&NewWarning {
            level: Level::Red,
            score: 90,
            deadline: at("2030-01-01T00:00:00Z"),
            ..new_warning("H2", "r1", Some("li"))
        })
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let page = |overdue_first_at| doudi_store::WarningFilter {
        region_prefix: "34",
        level: None,
        state: "active",
        assigned_to: None,
        overdue_first_at,
        limit: 1,
        offset: 0,
    };
    let first = |p: doudi_store::WarningPage| p.warnings[0].warning_id;
    let by_level = store.warnings_page(&page(None)).await.unwrap();
    assert_eq!(by_level.total, 2);
    assert_eq!(first(by_level), red);
    let now = Some(at("2026-06-01T00:00:00Z"));
    assert_eq!(
        first(store.warnings_page(&page(now)).await.unwrap()),
        orange
    );
    // Before the orange's deadline nothing is overdue: the level order again.
    let early = Some(at("2026-03-01T00:00:00Z"));
    assert_eq!(first(store.warnings_page(&page(early)).await.unwrap()), red);
}

/// The county overview's escalated list: an active warning sent up by the tick, with its step and
/// the time of its latest escalation notice; one sent up for being overdue; none that is not
/// escalated, resolved, or outside the region.
async fn escalated_warnings_say_how_far_up_and_since_when(db: &TestDb) {
    let store = &db.store;
    let quiet = open_one_warning(store).await; // H1, not escalated
    let mut tx = store.begin().await.unwrap();
    let up = tx
        .open_warning(&new_warning("H2", "r1", Some("li")))
        .await
        .unwrap();
    tx.commit().await.unwrap();
    assert_eq!(store.escalated_warnings("34", 10).await.unwrap().0, 0);
    let step = |id: i64, steps: i64, overdue: bool, when: &str, kind: &str| {
        doudi_store::EscalationUpdate {
            warning_id: id,
            expected_status: WarningStatus::Open,
            expected_ack_steps: steps - 1,
            expected_resolve_escalated: false,
            ack_steps: steps,
            resolve_escalated: overdue,
            last_notice_at: at(when),
            notices: vec![doudi_store::NoticeRow {
                warning_id: id,
                kind: kind.into(),
                recipient: "chief".into(),
                due_at: at(when),
                note: "not acknowledged within 4 h".into(),
            }],
        }
    };
    store
        .record_escalations(&[step(up, 1, false, "2026-03-02T04:00:00Z", "escalated")])
        .await
        .unwrap();
    store
        .record_escalations(&[step(up, 2, false, "2026-03-02T08:00:00Z", "escalated")])
        .await
        .unwrap();
    let (total, list) = store.escalated_warnings("34", 10).await.unwrap();
    assert_eq!(total, 1);
    assert_eq!(list[0].warning.warning_id, up);
    assert_eq!((list[0].ack_steps, list[0].overdue), (2, false));
    assert_eq!(list[0].since, Some(at("2026-03-02T08:00:00Z")));
    // Sent up for being overdue (no acknowledgement step): listed after the one two steps up.
    store
        .record_escalations(&[doudi_store::EscalationUpdate {
            expected_ack_steps: 0,
            ack_steps: 0,
            ..step(quiet, 1, true, "2026-03-05T00:00:00Z", "overdue")
        }])
        .await
        .unwrap();
    let (total, list) = store.escalated_warnings("34", 10).await.unwrap();
    assert_eq!(total, 2);
    let got: Vec<(i64, i64, bool)> = list
        .iter()
        .map(|e| (e.warning.warning_id, e.ack_steps, e.overdue))
        .collect();
    assert_eq!(got, vec![(up, 2, false), (quiet, 0, true)]);
    assert_eq!(list[1].since, Some(at("2026-03-05T00:00:00Z")));
    // The limit cuts the list, not the count; another region sees none.
    let (total, list) = store.escalated_warnings("34", 1).await.unwrap();
    assert_eq!((total, list.len()), (2, 1));
    assert_eq!(store.escalated_warnings("11", 10).await.unwrap().0, 0);
}

async fn a_large_register_loads_whole_and_in_order(db: &TestDb) {
    let store = &db.store;
    // More households than one decoding batch, imported out of order, a few of them removed.
    let n = 9_500;
    let mut households: Vec<Household> = (0..n)
        .rev()
        .map(|i| household(&format!("H{i:05}"), &format!("{i}号")))
        .collect();
    store.import_register(&households, "a", true).await.unwrap();
    households.retain(|h| !h.household_id.ends_with('7'));
    let r = store.import_register(&households, "b", true).await.unwrap();
    assert_eq!(r.removed, n / 10);
    households.sort_by(|a, b| a.household_id.cmp(&b.household_id));
    let loaded = store.load_register().await.unwrap();
    assert_eq!(loaded.len(), households.len());
    assert!(loaded == households, "the register read back differs");
    // An unreadable record is reported as corrupt, not skipped.
    db.exec("UPDATE households SET record = '{' WHERE household_id = 'H04242'")
        .await;
    assert!(matches!(
        store.load_register().await,
        Err(StoreError::Corrupt { .. })
    ));
}

async fn a_night_refreshes_and_closes_many_findings_at_once(db: &TestDb) {
    let store = &db.store;
    let finding = |i: usize, night: &str, amount: i64, officer: Option<&str>| FindingRow {
        key: format!("k{i:04}"),
        check_code: "disqualifying_vehicle".into(),
        household_id: format!("H{i}"),
        member_id: None,
        region_code: "341502001001".into(),
        category: "eligibility_review".into(),
        amount_fen: amount,
        finding: format!("{{\"night\":\"{night}\"}}"),
        first_seen: "2026-11-01".into(),
        last_seen: night.into(),
        deadline: "2026-11-16".into(),
        assigned_to: officer.map(String::from),
    };
    let run = |night: &str| CrosscheckRunRow {
        night: night.into(),
        snapshots: "snap".into(),
        started_at: format!("{night}T02:00:00Z"),
        rows_read: 1,
        bad_rows: 0,
    };
    // More findings than one statement takes, on each side.
    let n = 1_300;
    let opened = NightChanges {
        opened: (0..n)
            .map(|i| finding(i, "2026-11-01", 100, Some("li")))
            .collect(),
        ..NightChanges::default()
    };
    record_night(store, &run("2026-11-01"), &opened).await;
    // Night two: the even ones still true (new amount; the odd hundreds without an officer now),
    // the odd ones closed.
    let next = NightChanges {
        refreshed: (0..n)
            .filter(|i| i % 2 == 0)
            .map(|i| {
                finding(
                    i,
                    "2026-11-02",
                    200 + i as i64,
                    (i % 4 == 0).then_some("wang"),
                )
            })
            .collect(),
        closed: (0..n)
            .filter(|i| i % 2 == 1)
            .map(|i| (format!("k{i:04}"), format!("gone {i}")))
            .collect(),
        ..NightChanges::default()
    };
    record_night(store, &run("2026-11-02"), &next).await;
    let all = store.all_findings().await.unwrap();
    assert_eq!(all.len(), n);
    for f in &all {
        let i: usize = f.row.key[1..].parse().unwrap();
        if i.is_multiple_of(2) {
            assert_eq!(f.status, "open", "{}", f.row.key);
            assert_eq!(f.row.last_seen, "2026-11-02");
            assert_eq!(f.row.amount_fen, 200 + i as i64);
            assert_eq!(f.row.finding, "{\"night\":\"2026-11-02\"}");
            // a night without an officer for it keeps the one it had
            let officer = if i.is_multiple_of(4) { "wang" } else { "li" };
            assert_eq!(f.row.assigned_to.as_deref(), Some(officer));
            assert_eq!(f.closed_on, None);
        } else {
            assert_eq!(f.status, "closed", "{}", f.row.key);
            assert_eq!(f.closed_on.as_deref(), Some("2026-11-02"));
            assert_eq!(f.close_note.as_deref(), Some(format!("gone {i}").as_str()));
            assert_eq!(f.row.last_seen, "2026-11-01");
            assert_eq!(f.row.amount_fen, 100);
        }
    }
    assert_eq!(store.open_findings().await.unwrap().len(), n / 2);
}

/// A decision or an assessment made in the transaction that received its event keeps no time of
/// its own (its event's `received_at` is that time, migration 0017); one made later keeps its
/// time. Read back, both are the times they were made. A warning's summary is stored packed and
/// still names the members concerned.
async fn times_equal_to_the_events_receipt_are_not_stored_again(db: &TestDb) {
    let store = &db.store;
    import_h1(store).await;
    let mut tx = store.begin().await.unwrap();
    let received = tx.stamped_at();
    let new = tx.insert_events(&events(&["t1", "t2"])).await.unwrap();
    let (s1, s2) = (new[&key("t1")], new[&key("t2")]);
    tx.insert_links(&[link_row(s1, "t1", LinkOutcome::Review, None)])
        .await
        .unwrap();
    tx.commit().await.unwrap();
    // t2 linked and assessed in a later transaction, t1 assessed in it too.
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    let mut tx = store.begin().await.unwrap();
    let later = tx.stamped_at();
    assert!(later > received);
    tx.insert_links(&[link_row(s2, "t2", LinkOutcome::Review, None)])
        .await
        .unwrap();
    let quiet = |seq: i64, id: &str| AssessmentRow {
        event_seq: seq,
        source: "civil_registry".into(),
        event_id: id.into(),
        household_id: "H1".into(),
        rule_set_version: "rules-1".into(),
        score: 0,
        level: Level::None,
        assessment: None,
    };
    tx.insert_assessments(&[quiet(s1, "t1"), quiet(s2, "t2")])
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let stored = column_bytes(
        &db.url,
        "SELECT COALESCE(decided_at, '-') FROM link_decisions ORDER BY seq",
    )
    .await;
    let later_text = doudi_store::ts(&later);
    assert_eq!(stored, [b"-".to_vec(), later_text.clone().into_bytes()]);
    let stored = column_bytes(
        &db.url,
        "SELECT COALESCE(assessed_at, '-') FROM assessments ORDER BY seq",
    )
    .await;
    assert_eq!(
        stored,
        [later_text.clone().into_bytes(), later_text.into_bytes()]
    );
    let decided = |seq| async move {
        store
            .link_decision(seq)
            .await
            .unwrap()
            .expect("decision")
            .decided_at
    };
    assert_eq!((decided(s1).await, decided(s2).await), (received, later));
    let queued: Vec<_> = store
        .pending_reviews(10)
        .await
        .unwrap()
        .iter()
        .map(|i| (i.seq, i.queued_at))
        .collect();
    assert_eq!(queued, [(s1, received), (s2, later)]);

    // The summary, packed: bytes on SQLite, text on PostgreSQL; the notice still names H1-1.
    let id = open_one_warning(store).await;
    let summary = column_bytes(
        &db.url,
        &format!("SELECT summary FROM warnings WHERE warning_id = {id}"),
    )
    .await;
    assert!(
        summary[0].first().is_some_and(|b| *b != b'{'),
        "packed, not JSON"
    );
    let pending = store.pending_notices(10).await.unwrap();
    assert_eq!(pending[0].members_concerned, ["H1-1"]);
    assert_eq!(
        pending[0].summary.as_ref().unwrap(),
        &assessment("H1", 60, Level::Orange, &["w1"])
            .decode("test")
            .unwrap()
    );
}

/// A new SQLite store in a temporary directory with the migrations before `version` applied
/// (as the code of that time left it): the directory (keep it alive), the store's URL and a pool.
async fn sqlite_migrated_before(version: i64) -> (tempfile::TempDir, String, sqlx::SqlitePool) {
    use sqlx::migrate::Migrator;
    let dir = tempfile::tempdir().expect("temp dir");
    let url = format!("sqlite://{}", dir.path().join("old.db").display());
    let options = <sqlx::sqlite::SqliteConnectOptions as std::str::FromStr>::from_str(&url)
        .unwrap()
        .create_if_missing(true);
    let pool = sqlx::SqlitePool::connect_with(options).await.unwrap();
    let all: Migrator = sqlx::migrate!("./migrations/sqlite");
    let before = Migrator {
        migrations: std::borrow::Cow::Owned(
            all.migrations
                .iter()
                .filter(|m| m.version < version)
                .cloned()
                .collect(),
        ),
        ..Migrator::DEFAULT
    };
    before
        .run(&pool)
        .await
        .unwrap_or_else(|e| panic!("migrations before {version}: {e}"));
    (dir, url, pool)
}

/// A SQLite store migrated before 0016, with rows as the code before wrote them (the register's
/// record as plain JSON, documents packed as text, the event's source and id in identity
/// decisions and assessments), upgrades on open: those columns go, and every reader gives the
/// same household, trace and identity decision; what is written after is in the new forms.
#[tokio::test]
async fn a_store_from_before_0016_upgrades_and_reads_the_same() {
    let (_dir, url, pool) = sqlite_migrated_before(16).await;
    let h1 = household("H1", "一村1号");
    let record = serde_json::to_string(&h1).unwrap();
    let ev = event_row("o1");
    let evidence = no_candidates();
    let red = assessment("H1", 70, Level::Red, &["o1"]);
    let text = |j: Option<&doudi_store::Packed>| j.expect("packed").to_text();
    sqlx::raw_sql(&format!(
        "INSERT INTO register_imports (file, imported_at, full_snapshot, added, changed, removed, unchanged)
           VALUES ('reg.jsonl', '2026-12-01T00:00:00.000000Z', 1, 1, 0, 0, 0);
         INSERT INTO households (household_id, region_code, category, area, record, digest, active, updated_at)
           VALUES ('H1', '341502001001', 'dibao', 'rural', '{record}', 'old', 1, '2026-12-01T00:00:00.000000Z');
         INSERT INTO members (member_id, household_id, id_number, active) VALUES ('H1-1', 'H1', '11010519491231002X', 1);
         INSERT INTO register_history (import_id, household_id, change, before, after) VALUES (1, 'H1', 'added', NULL, '{record}');
         INSERT INTO events (seq, source, event_id, kind, occurred_at, received_at, stream, position, raw, normalised)
           VALUES (1, 'civil_registry', 'o1', 'death', '2026-03-01T00:00:00.000000Z', '2026-12-02T00:00:00.000000Z',
                   'civil_registry/a.jsonl', 1, X'', '{normalised}');
         INSERT INTO link_decisions (seq, source, event_id, outcome, household_id, member_id, evidence, decided_at, register_version)
           VALUES (1, 'civil_registry', 'o1', 'linked', 'H1', 'H1-1', '{evidence}', '2026-12-02T00:00:00.000000Z', 1);
         INSERT INTO timeline (seq, household_id, member_id) VALUES (1, 'H1', 'H1-1');
         INSERT INTO assessments (seq, source, event_id, household_id, rule_set_version, score, level, assessment, assessed_at)
           VALUES (1, 'civil_registry', 'o1', 'H1', 'rules-1', 70, 'red', '{assessment}', '2026-12-02T00:00:00.000000Z');",
        normalised = doudi_store::pack_event(&ev.normalised).to_text(),
        evidence = text(evidence.packed()),
        assessment = text(red.packed()),
    ))
    .execute(&pool)
    .await
    .expect("rows from before");
    pool.close().await;

    let store = Store::open(&url).await.expect("open and migrate");
    for (table, column) in [
        ("link_decisions", "source"),
        ("link_decisions", "event_id"),
        ("assessments", "source"),
        ("assessments", "event_id"),
    ] {
        let n: i64 = column_bytes(
            &url,
            &format!("SELECT CAST(COUNT(*) AS TEXT) FROM pragma_table_info('{table}') WHERE name = '{column}'"),
        )
        .await
        .iter()
        .map(|b| String::from_utf8_lossy(b).parse::<i64>().unwrap())
        .sum();
        assert_eq!(n, 0, "{table}.{column} is gone");
    }
    let json = |h: &Household| serde_json::to_value(h).unwrap();
    let loaded = store.load_register().await.unwrap();
    assert_eq!(loaded.iter().map(json).collect::<Vec<_>>(), [json(&h1)]);
    let decision = store.link_decision(1).await.unwrap().expect("decision");
    assert_eq!(
        (decision.source.as_str(), decision.event_id.as_str()),
        ("civil_registry", "o1")
    );
    assert_eq!(decision.evidence, evidence.decode("test").unwrap());
    let trace = serde_json::to_value(store.trace("H1").await.unwrap()).unwrap();
    let entries = trace.as_array().expect("entries");
    let of = |kind: &str| {
        entries
            .iter()
            .find(|e| e["entry"] == kind)
            .unwrap_or_else(|| panic!("a {kind} entry in {trace}"))
            .clone()
    };
    assert_eq!(of("register")["record"], json(&h1));
    let event = of("event");
    assert_eq!(
        (&event["source"], &event["event_id"], &event["raw"]),
        (
            &serde_json::json!("civil_registry"),
            &serde_json::json!("o1"),
            &serde_json::json!(ev.normalised)
        )
    );
    assert_eq!(
        event["evidence"],
        serde_json::to_value(evidence.decode("test").unwrap()).unwrap()
    );
    assert_eq!(
        of("assessment")["assessment"],
        serde_json::to_value(red.decode("test").unwrap()).unwrap()
    );
    // A new import writes the changed record packed; the old JSON is its `before`.
    store
        .import_register(&[household("H1", "一村2号")], "reg2.jsonl", true)
        .await
        .unwrap();
    let kinds = column_bytes(
        &url,
        "SELECT typeof(record) FROM households UNION ALL SELECT typeof(before) || '/' || typeof(after) FROM register_history WHERE import_id = 2",
    )
    .await;
    assert_eq!(kinds, [b"blob".to_vec(), b"blob/blob".to_vec()]);
    let as_before = store.households_as_of(&["H1".into()], 0).await.unwrap();
    assert_eq!(as_before.iter().map(json).collect::<Vec<_>>(), [json(&h1)]);
}

/// A SQLite store migrated before 0017, with times as the code before wrote them (every identity
/// decision and assessment stamped, a warning's summary as plain JSON), upgrades on open: a time
/// equal to its event's receipt goes (read back the same), a later one stays, and the plain
/// summary still names the members concerned.
#[tokio::test]
async fn a_store_from_before_0017_upgrades_and_reads_the_same_times() {
    let (_dir, url, pool) = sqlite_migrated_before(17).await;
    let (received, later) = ("2026-12-02T00:00:00.000000Z", "2026-12-03T00:00:00.000000Z");
    let evidence = no_candidates().packed().expect("packed").to_text();
    let summary = assessment("H1", 60, Level::Orange, &["o1"]);
    let mut sql = String::new();
    for (seq, id) in [(1, "o1"), (2, "o2")] {
        let ev = event_row(id);
        sql += &format!(
            "INSERT INTO events (seq, source, event_id, kind, occurred_at, received_at, stream, position, raw, normalised)
               VALUES ({seq}, 'civil_registry', '{id}', 'death', '2026-03-01T00:00:00.000000Z', '{received}',
                       'civil_registry/a.jsonl', {seq}, X'', '{}');
             INSERT INTO timeline (seq, household_id, member_id) VALUES ({seq}, 'H1', 'H1-1');
             INSERT INTO assessments (seq, household_id, rule_set_version, score, level, assessment, assessed_at)
               VALUES ({seq}, 'H1', 'rules-1', 0, 'none', NULL, '{}');",
            doudi_store::pack_event(&ev.normalised).to_text(),
            if seq == 1 { received } else { later },
        );
    }
    // o1 decided on receipt, o2 (in review) decided again later.
    sql += &format!(
        "INSERT INTO link_decisions (seq, outcome, household_id, member_id, evidence, decided_at, register_version)
           VALUES (1, 'linked', 'H1', 'H1-1', '{evidence}', '{received}', 1),
                  (2, 'review', NULL, NULL, '{evidence}', '{later}', 1);
         INSERT INTO warnings (warning_id, household_id, region_code, status, level, score, deadline,
                               assessment_source, assessment_event_id, summary, opened_at, updated_at)
           VALUES (1, 'H1', '341502001001', 'open', 'orange', 60, '2026-12-05T00:00:00.000000Z',
                   'civil_registry', 'o1', '{}', '{received}', '{received}');
         INSERT INTO notices (warning_id, kind, recipient, due_at, created_at)
           VALUES (1, 'opened', 'li', '{received}', '{received}');",
        summary.as_str(),
    );
    sqlx::raw_sql(&sql)
        .execute(&pool)
        .await
        .expect("rows from before");
    pool.close().await;

    let store = Store::open(&url).await.expect("open and migrate");
    assert_eq!(
        column_bytes(
            &url,
            "SELECT COALESCE(decided_at, '-') || ' ' || COALESCE(a.assessed_at, '-')
             FROM link_decisions l JOIN assessments a USING (seq) ORDER BY seq"
        )
        .await,
        ["- -".to_string(), format!("{later} {later}")].map(String::into_bytes)
    );
    let store = &store;
    let decided = |seq| async move {
        doudi_store::ts(
            &store
                .link_decision(seq)
                .await
                .unwrap()
                .expect("decision")
                .decided_at,
        )
    };
    assert_eq!(
        (decided(1).await, decided(2).await),
        (received.into(), later.into())
    );
    let review = store.pending_reviews(10).await.unwrap();
    assert_eq!(doudi_store::ts(&review[0].queued_at), later);
    let pending = store.pending_notices(10).await.unwrap();
    assert_eq!(pending[0].members_concerned, ["H1-1"]);
    assert_eq!(
        pending[0].summary.as_ref().unwrap(),
        &summary.decode("test").unwrap()
    );
}
