//! Issue 19 item 2, the core: the rule set a record is assessed with belongs to the record's
//! history. Half of each stream is applied, a new rule set is activated (a lower yellow threshold:
//! results visibly change), the rest is applied — in file order, and shuffled so that many facts
//! come late (before facts of the first half in event time, re-deriving them). Every assessment of
//! a first-half record carries the old version and every other the new one, whatever re-derived
//! it; and the outcome is the same in both orders, on SQLite and (with
//! `DOUDI_TEST_POSTGRES_URL`) PostgreSQL.

mod common;

use std::collections::{BTreeMap, HashSet};
use std::path::Path;

use common::{batches, PgDatabase};
use doudi_pipeline::driver::RawRecord;
use doudi_pipeline::Ingested;
use doudi_store::ActivationKind;
use rand::seq::SliceRandom;
use rand::SeedableRng;

const OLD: &str = "2026.12-1";
const NEW: &str = "2026.12-1-lower-yellow";

/// The built-in rule set with a lower yellow threshold, as a new version.
fn new_rules() -> String {
    let text = doudi_risk::RuleSet::builtin_toml();
    assert!(text.contains(&format!("version = \"{OLD}\"")));
    let text = text.replacen(
        &format!("version = \"{OLD}\""),
        &format!("version = \"{NEW}\""),
        1,
    );
    let text = text.replacen(
        "[levels.yellow]\nmin_score = 30",
        "[levels.yellow]\nmin_score = 10",
        1,
    );
    assert!(text.contains("min_score = 10"));
    doudi_risk::RuleSet::from_toml_str(&text).expect("the new rule set is valid");
    text
}

fn generated(dir: &Path) -> (Vec<doudi_model::Household>, Vec<RawRecord>) {
    common::generated_year(dir, 300, 22, 0.5)
}

/// The first half of each stream (by line), and the rest.
fn halves(items: &[RawRecord]) -> (Vec<RawRecord>, Vec<RawRecord>) {
    let mut per_stream: BTreeMap<&str, u64> = BTreeMap::new();
    for r in items {
        let n = per_stream.entry(r.stream.as_str()).or_default();
        *n = (*n).max(r.position.line());
    }
    items
        .iter()
        .cloned()
        .partition(|r| r.position.line() <= per_stream[r.stream.as_str()] / 2)
}

/// The last column: the assessment as stored (packed: bytes on SQLite, text on PostgreSQL).
type Row = (
    String,
    String,
    String,
    String,
    i64,
    String,
    doudi_store::Stored,
);
const ASSESSMENTS: &str = "SELECT e.source, e.event_id, a.household_id, a.rule_set_version, a.score, a.level, COALESCE(a.assessment, '')
     FROM assessments a JOIN events e ON e.seq = a.seq ORDER BY e.source, e.event_id";
type WarningRow = (String, String, i64, String, String, String);
const WARNINGS: &str =
    "SELECT household_id, level, score, status, assessment_source, assessment_event_id
     FROM warnings WHERE status <> 'withdrawn' ORDER BY household_id, warning_id";

async fn outcome(url: &str) -> (Vec<Row>, Vec<WarningRow>) {
    if url.starts_with("sqlite") {
        let pool = sqlx::SqlitePool::connect(url).await.expect("connect");
        let a = sqlx::query_as(ASSESSMENTS).fetch_all(&pool).await.unwrap();
        let w = sqlx::query_as(WARNINGS).fetch_all(&pool).await.unwrap();
        pool.close().await;
        (a, w)
    } else {
        let pool = sqlx::PgPool::connect(url).await.expect("connect");
        let a = sqlx::query_as(ASSESSMENTS).fetch_all(&pool).await.unwrap();
        let w = sqlx::query_as(WARNINGS).fetch_all(&pool).await.unwrap();
        pool.close().await;
        (a, w)
    }
}

/// Apply the first half, activate the new rule set, apply `rest`; the engine was made before
/// the activation (a running worker) and adopts it between two batches. With `restart`, `rest`
/// is applied by a new engine (another worker, a restart): its timelines are read back from the
/// store, not kept from the first half.
async fn apply(
    url: &str,
    register: &[doudi_model::Household],
    first: &[Vec<Ingested>],
    rest: &[Vec<Ingested>],
    restart: bool,
) {
    let store = doudi_store::Store::open(url).await.expect("open");
    store
        .import_register(register, "register.jsonl", true)
        .await
        .expect("import");
    let builtin = doudi_risk::RuleSet::builtin();
    store
        .activate(
            ActivationKind::Rules,
            &builtin.version,
            doudi_risk::RuleSet::builtin_toml(),
            "test",
            true,
        )
        .await
        .expect("first activation");
    let engine = doudi_pipeline::Engine::new(
        builtin,
        doudi_model::ParseLimits::default(),
        store.load_register().await.expect("load register"),
    );
    for b in first {
        doudi_pipeline::apply_batch(&store, &engine, b)
            .await
            .expect("apply");
    }
    let (row, stored) = store
        .activate(ActivationKind::Rules, NEW, &new_rules(), "test", false)
        .await
        .expect("activate");
    assert!(stored && !row.from.is_empty());
    let engine = if restart {
        doudi_pipeline::Engine::new(
            doudi_risk::RuleSet::builtin(),
            doudi_model::ParseLimits::default(),
            store.load_register().await.expect("load register"),
        )
    } else {
        engine
    };
    for b in rest {
        doudi_pipeline::apply_batch(&store, &engine, b)
            .await
            .expect("apply");
    }
    assert_eq!(engine.versions().latest_rules().version, NEW);
    store.close().await;
}

async fn each_record_keeps_its_version(what: &str, mut db: impl FnMut(&str) -> String) {
    let tmp = tempfile::tempdir().unwrap();
    let (register, items) = generated(tmp.path());
    let (first, rest) = halves(&items);
    let first_ids: HashSet<(String, String)> = first
        .iter()
        .filter_map(|r| {
            doudi_pipeline::ingest_record(r.clone(), &doudi_model::ParseLimits::default())
                .result
                .ok()
                .map(|e| (e.source.code().to_string(), e.event_id))
        })
        .collect();
    let mut shuffled = rest.clone();
    shuffled.shuffle(&mut rand::rngs::StdRng::seed_from_u64(22));
    let mut reference = None;
    for (name, rest, restart) in [
        ("in file order", batches(&rest, 200), false),
        ("shuffled, late facts", batches(&shuffled, 97), false),
        (
            "shuffled, late facts, another worker",
            batches(&shuffled, 97),
            true,
        ),
    ] {
        let url = db(name);
        apply(&url, &register, &batches(&first, 200), &rest, restart).await;
        let got = outcome(&url).await;
        let (mut old, mut new) = (0, 0);
        for (source, event_id, _, version, ..) in &got.0 {
            let expected = if first_ids.contains(&(source.clone(), event_id.clone())) {
                old += 1;
                OLD
            } else {
                new += 1;
                NEW
            };
            assert_eq!(
                version, expected,
                "{what}, {name}: {source}/{event_id} was assessed with {version}"
            );
        }
        println!(
            "{what}, {name}: {old} assessments with {OLD}, {new} with {NEW}, {} warnings",
            got.1.len()
        );
        assert!(old > 300 && new > 300, "{old} {new}");
        match &reference {
            None => reference = Some(got),
            Some(r) => {
                assert_eq!(got.0.len(), r.0.len(), "{what}: {name}");
                for (g, e) in got.0.iter().zip(&r.0) {
                    assert_eq!(g, e, "{what}: an assessment, {name} vs in file order");
                }
                assert_eq!(got.1, r.1, "{what}: warnings, {name} vs in file order");
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_each_record_keeps_the_rule_set_of_its_position() {
    let dir = tempfile::tempdir().unwrap();
    let mut n = 0;
    each_record_keeps_its_version("SQLite", |_| {
        n += 1;
        format!("sqlite://{}", dir.path().join(format!("v{n}.db")).display())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_each_record_keeps_the_rule_set_of_its_position() {
    let Some(base) = common::postgres_url() else {
        return;
    };
    let mut dbs = Vec::new();
    each_record_keeps_its_version("PostgreSQL", |name| {
        let db = PgDatabase::create(&base, &format!("vcore_{}", name.len()));
        let url = db.url.clone();
        dbs.push(db);
        url
    })
    .await;
}

/// A rule set changed in place under the same version would make two workers disagree: the
/// version lookup is by position alone, and the lookup of a stream begun after an activation is
/// the activation's.
#[test]
fn the_version_lookup_by_stream_position() {
    use doudi_store::ActivationRow;
    let row = ActivationRow {
        id: 2,
        kind: ActivationKind::Rules,
        version: NEW.into(),
        content: String::new(),
        from: [("employment/a.jsonl".to_string(), 51)]
            .into_iter()
            .collect(),
        activated_at: String::new(),
        activated_by: "test".into(),
    };
    assert!(!row.covers("employment/a.jsonl", 50));
    assert!(row.covers("employment/a.jsonl", 51));
    assert!(row.covers("employment/new.jsonl", 1));
}

/// On PostgreSQL a batch is staged (its events and link decisions) before it takes the lock
/// activations take: one staged before an activation that committed before it finishes is
/// refused at its finish (`VersionsChanged`, nothing of it committed) and applied again with the
/// new version. (SQLite's single writer never lets an activation in between.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_a_batch_staged_before_an_activation_is_applied_again_with_it() {
    let Some(base) = common::postgres_url() else {
        return;
    };
    let db = PgDatabase::create(&base, "vcore_stale");
    let tmp = tempfile::tempdir().unwrap();
    let (register, items) = generated(tmp.path());
    let batch = batches(&items[..200], 200).remove(0);
    let (store, engine) = common::open_with_register(&db.url, &register).await;
    let staged = doudi_pipeline::stage_batch(&store, &engine, &batch)
        .await
        .expect("stage");
    store
        .activate(ActivationKind::Rules, NEW, &new_rules(), "test", false)
        .await
        .expect("activate");
    match staged.finish(&engine).await {
        Err(doudi_pipeline::PipelineError::VersionsChanged { seen: 0, now }) => assert!(now > 0),
        other => panic!("{other:?}"),
    }
    let out = doudi_pipeline::apply_batch(&store, &engine, &batch)
        .await
        .expect("applied again");
    assert!(out.accepted > 100, "{out:?}");
    let (assessments, _) = outcome(&db.url).await;
    assert!(assessments.len() > 20, "{}", assessments.len());
    for a in &assessments {
        assert_eq!(a.3, NEW, "{a:?}");
    }
    store.close().await;
}
