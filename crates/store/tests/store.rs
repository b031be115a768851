//! The store's own contract, on SQLite: batches are atomic, events are idempotent by
//! `(source, event_id)`, positions round-trip, and register imports keep history.

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
async fn only_sqlite_urls_are_accepted_for_now() {
    let e = Store::open("mysql://localhost/x").await.unwrap_err();
    assert!(e.to_string().contains("sqlite://"), "{e}");
}
