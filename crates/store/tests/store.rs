//! The store's own contract, on SQLite: batches are atomic, events are idempotent by
//! `(source, event_id)`, positions round-trip, and register imports keep history. (The same
//! contract on both backends is `conformance.rs`.)

use doudi_model::{parse_event, Household, ParseLimits};
use doudi_store::{EventRow, Position, PositionRow, Store};

async fn temp_store() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().expect("temp dir");
    let url = format!("sqlite://{}", dir.path().join("t.db").display());
    let store = Store::open(&url).await.expect("open");
    (dir, store)
}

fn event_row(id: &str) -> EventRow {
    let raw = format!(
        r#"{{"event_id":"{id}","source":"civil_registry","kind":"death","occurred_at":"2026-03-01T08:00:00+08:00","data":{{"died_on":"2026-02-28"}}}}"#
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
    }
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

#[tokio::test]
async fn a_batch_without_commit_leaves_nothing() {
    let (_dir, store) = temp_store().await;
    let mut tx = store.begin().await.unwrap();
    let new = tx.insert_events(&[event_row("e1")]).await.unwrap();
    assert_eq!(new.len(), 1);
    tx.set_positions(&[PositionRow {
        source: "civil_registry".into(),
        stream: "civil_registry/a.jsonl".into(),
        byte_offset: 100,
        line: 1,
    }])
    .await
    .unwrap();
    drop(tx);
    let s = store.status().await.unwrap();
    assert_eq!(s.accepted, 0);
    assert!(store.positions().await.unwrap().is_empty());
}

#[tokio::test]
async fn events_are_stored_once_by_source_and_event_id_and_positions_round_trip() {
    let (_dir, store) = temp_store().await;
    let mut tx = store.begin().await.unwrap();
    let first = tx
        .insert_events(&[event_row("e1"), event_row("e2")])
        .await
        .unwrap();
    assert_eq!(first.len(), 2);
    tx.set_positions(&[PositionRow {
        source: "civil_registry".into(),
        stream: "civil_registry/a.jsonl".into(),
        byte_offset: 420,
        line: 2,
    }])
    .await
    .unwrap();
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
        "e2 was stored before; e3 twice in a batch is one event"
    );
    tx.add_counters(3, 2).await.unwrap();
    tx.commit().await.unwrap();

    let s = store.status().await.unwrap();
    assert_eq!((s.received, s.accepted, s.duplicates), (5, 3, 2));
    let positions = store.positions().await.unwrap();
    assert_eq!(
        positions[&(
            "civil_registry".to_string(),
            "civil_registry/a.jsonl".to_string()
        )],
        Position {
            byte_offset: 420,
            line: 2
        }
    );
}

#[tokio::test]
async fn reimporting_the_register_records_each_change_in_history() {
    let (_dir, store) = temp_store().await;
    let r = store
        .import_register(
            &[household("H1", "一村1号"), household("H2", "二村2号")],
            "a",
            true,
        )
        .await
        .unwrap();
    assert_eq!((r.added, r.changed, r.removed, r.unchanged), (2, 0, 0, 0));

    let r = store
        .import_register(&[household("H1", "一村9号")], "b", true)
        .await
        .unwrap();
    assert_eq!((r.added, r.changed, r.removed, r.unchanged), (0, 1, 1, 0));
    let active = store.load_register().await.unwrap();
    assert_eq!(active.len(), 1);
    assert_eq!(active[0].address, "一村9号");

    // Coming back is a restore, not a new household.
    let r = store
        .import_register(
            &[household("H1", "一村9号"), household("H2", "二村2号")],
            "c",
            false,
        )
        .await
        .unwrap();
    assert_eq!((r.added, r.restored, r.unchanged), (0, 1, 1));
    assert_eq!(store.load_register().await.unwrap().len(), 2);
    assert_eq!(store.status().await.unwrap().households, 2);
}

#[tokio::test]
async fn unknown_url_schemes_are_refused() {
    let e = Store::open("mysql://localhost/x").await.unwrap_err();
    assert!(e.to_string().contains("sqlite://"), "{e}");
}

fn link_row(seq: i64, id: &str, outcome: &'static str) -> doudi_store::LinkRow {
    doudi_store::LinkRow {
        event_seq: seq,
        source: "civil_registry".into(),
        event_id: id.into(),
        outcome,
        household_id: None,
        member_id: None,
        evidence: r#"{"candidates":[]}"#.into(),
    }
}

#[tokio::test]
async fn a_review_item_is_decided_once_and_leaves_the_queue() {
    use doudi_store::{ReviewChoice, StoreError};
    let (_dir, store) = temp_store().await;
    let mut tx = store.begin().await.unwrap();
    let new = tx
        .insert_events(&[event_row("r1"), event_row("r2")])
        .await
        .unwrap();
    let seq = |id: &str| new[&("civil_registry".to_string(), id.to_string())];
    let (s1, s2) = (seq("r1"), seq("r2"));
    tx.insert_links(&[link_row(s1, "r1", "review"), link_row(s2, "r2", "linked")])
        .await
        .unwrap();
    tx.commit().await.unwrap();

    let queue = store.pending_reviews(10).await.unwrap();
    assert_eq!(queue.iter().map(|i| i.seq).collect::<Vec<_>>(), [s1]);
    assert_eq!(store.pending_review_count().await.unwrap(), 1);

    let link = ReviewChoice::Link {
        household_id: "H1".into(),
        member_id: "H1-1".into(),
    };
    let mut tx = store.begin().await.unwrap();
    tx.record_review(s1, &link, "officer-7", "same person, checked by phone")
        .await
        .unwrap();
    tx.commit().await.unwrap();
    assert!(store.pending_reviews(10).await.unwrap().is_empty());
    let item = store.review_item(s1).await.unwrap().expect("still shown");
    let d = item.decision.expect("decided");
    assert_eq!(
        (
            d.decision.as_str(),
            d.member_id.as_deref(),
            d.decided_by.as_str()
        ),
        ("link", Some("H1-1"), "officer-7")
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
        matches!(&not_review, Err(StoreError::Conflict(m)) if m.contains("not sent to review")),
        "{not_review:?}"
    );
    let unknown = tx
        .record_review(9999, &ReviewChoice::Reject, "officer-8", "")
        .await;
    assert!(matches!(unknown, Err(StoreError::Conflict(_))));
}

#[tokio::test]
async fn the_timeline_version_moves_with_every_appended_fact() {
    let (_dir, store) = temp_store().await;
    let mut tx = store.begin().await.unwrap();
    let v0 = tx.timeline_version().await.unwrap();
    let new = tx.insert_events(&[event_row("t1")]).await.unwrap();
    let seq = new[&("civil_registry".to_string(), "t1".to_string())];
    let event = parse_event(&event_row("t1").raw, &ParseLimits::default()).unwrap();
    tx.insert_facts(&[doudi_store::FactRow {
        event_seq: seq,
        fact: doudi_model::Fact {
            event_id: event.event_id,
            source: event.source,
            household_id: "H1".into(),
            member_id: "H1-1".into(),
            occurred_at: event.occurred_at,
            payload: event.payload,
        },
    }])
    .await
    .unwrap();
    let v1 = tx.timeline_version().await.unwrap();
    assert_eq!(v1, v0 + 1);
    tx.commit().await.unwrap();
    let pages = store.timelines_after("", 10).await.unwrap();
    assert_eq!(pages.len(), 1);
    assert_eq!(pages[0].0, "H1");
    assert_eq!(pages[0].1.len(), 1);
    assert!(store.timelines_after("H1", 10).await.unwrap().is_empty());
}

#[tokio::test]
async fn only_one_linkage_model_is_active() {
    let (_dir, store) = temp_store().await;
    assert!(store.active_linkage_model().await.unwrap().is_none());
    store.activate_linkage_model("m1", "{}", 10).await.unwrap();
    store
        .activate_linkage_model("m2", "{\"x\":1}", 20)
        .await
        .unwrap();
    let m = store.active_linkage_model().await.unwrap().unwrap();
    assert_eq!((m.version.as_str(), m.trained_on), ("m2", 20));
    store
        .activate_linkage_model("m1", "ignored", 0)
        .await
        .unwrap();
    let m = store.active_linkage_model().await.unwrap().unwrap();
    assert_eq!((m.version.as_str(), m.model.as_str()), ("m1", "{}"));
}

#[tokio::test]
async fn findings_open_once_per_key_refresh_and_close_with_a_note() {
    use doudi_store::{CrosscheckRunRow, FindingRow, NightChanges};
    let (_dir, store) = temp_store().await;
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
    store
        .record_crosscheck(
            &run("2026-11-01"),
            &NightChanges {
                opened: vec![finding("a", "2026-11-01"), finding("b", "2026-11-01")],
                ..NightChanges::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(store.open_findings().await.unwrap().len(), 2);
    // A second open of the same key is refused by the store itself.
    let dup = store
        .record_crosscheck(
            &run("2026-11-01"),
            &NightChanges {
                opened: vec![finding("a", "2026-11-01")],
                ..NightChanges::default()
            },
        )
        .await;
    assert!(dup.is_err());
    store
        .record_crosscheck(
            &run("2026-11-02"),
            &NightChanges {
                refreshed: vec![finding("a", "2026-11-02")],
                closed: vec![("b".into(), "no longer true on 2026-11-02".into())],
                ..NightChanges::default()
            },
        )
        .await
        .unwrap();
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
}

#[tokio::test]
async fn an_officer_import_replaces_the_directory_and_deactivates_the_missing() {
    use doudi_store::OfficerRow;
    let (_dir, store) = temp_store().await;
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
    let all = store.load_officers().await.unwrap();
    assert_eq!(all.len(), 1);
    assert_eq!(all[0].region_code, "341502003");
}
