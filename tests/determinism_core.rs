//! Issue 19, the core: a household's assessments and warning are a function of its set of facts,
//! whatever order the records arrive in. The same generated year is applied in several orders —
//! by event time, reversed, shuffled into batches, one record at a time in file order (one feed
//! after the other, as topics produced one after the other would deliver them) — on SQLite and, when
//! `DOUDI_TEST_POSTGRES_URL` is set, on PostgreSQL; assessments and warnings are compared row by
//! row. And the catch-up policy: a year of feeds applied at once gives late warnings whose
//! deadlines follow the policy (`[warnings]`), not one deadline for all.

mod common;

use std::path::Path;

use chrono::{DateTime, TimeDelta, Utc};
use common::{batches, PgDatabase};
use doudi_pipeline::driver::RawRecord;
use doudi_pipeline::Ingested;
use rand::seq::SliceRandom;
use rand::SeedableRng;

/// What is compared, row by row: assessments and warnings.
#[derive(Debug, PartialEq)]
struct Outcome {
    /// (source, event_id, household, rule_set_version, score, level, assessment JSON)
    assessments: Vec<AssessmentRow>,
    /// (household, level, score, status, triggering source, triggering event id, occurred_at,
    /// late, summary, transitions as (level, source, event id)). Withdrawn warnings are left out: a warning opened while a household's
    /// records were incomplete and withdrawn when the rest arrived is the trace of an order, not
    /// a result.
    warnings: Vec<WarningRow>,
}

/// The last column: the assessment as stored (packed: bytes on SQLite, text on PostgreSQL).
type AssessmentRow = (
    String,
    String,
    String,
    String,
    i64,
    String,
    doudi_store::Stored,
);
/// The summary (the latest assessment) as stored too: packed (migration 0017).
type WarningRow = (
    String,
    String,
    i64,
    String,
    String,
    String,
    String,
    i64,
    doudi_store::Stored,
    String,
);

const ASSESSMENTS: &str = "SELECT e.source, e.event_id, a.household_id, a.rule_set_version, a.score, a.level, COALESCE(a.assessment, '')
     FROM assessments a JOIN events e ON e.seq = a.seq ORDER BY e.source, e.event_id";
const WARNINGS: &str =
    "SELECT household_id, level, score, status, assessment_source, assessment_event_id,
            COALESCE(occurred_at, ''), late, summary, COALESCE(transitions, '')
     FROM warnings WHERE status <> 'withdrawn' ORDER BY household_id, warning_id";

/// The transitions of a warning as (level, source, event id): their deadlines follow receipt
/// times, which differ from run to run.
fn transitions(mut o: Outcome) -> Outcome {
    for w in &mut o.warnings {
        let ts: Vec<doudi_warnings::fold::Transition> =
            serde_json::from_str(&w.9).expect("transitions");
        w.9 = ts
            .iter()
            .map(|t| format!("{}:{}:{}", t.level.code(), t.source, t.event_id))
            .collect::<Vec<_>>()
            .join(" ");
    }
    o
}

async fn outcome(url: &str) -> Outcome {
    common::on_pool!(url, |pool| Outcome {
        assessments: sqlx::query_as(ASSESSMENTS)
            .fetch_all(&pool)
            .await
            .expect("assessments"),
        warnings: sqlx::query_as(WARNINGS)
            .fetch_all(&pool)
            .await
            .expect("warnings"),
    })
}

/// The warning history's lines by action (what the re-derivations did, for the log).
async fn history(url: &str) -> Vec<(String, i64)> {
    const SQL: &str =
        "SELECT action, COUNT(*) FROM warning_history GROUP BY action ORDER BY action";
    if url.starts_with("sqlite") {
        let pool = sqlx::SqlitePool::connect(url).await.expect("connect");
        let rows = sqlx::query_as(SQL).fetch_all(&pool).await.expect("history");
        pool.close().await;
        rows
    } else {
        let pool = sqlx::PgPool::connect(url).await.expect("connect");
        let rows = sqlx::query_as(SQL).fetch_all(&pool).await.expect("history");
        pool.close().await;
        rows
    }
}

/// A generated year (`households`, seeded), its register and its records in file order (one
/// feed after the other, each in its own order).
fn generated(
    dir: &Path,
    households: usize,
    seed: u64,
) -> (Vec<doudi_model::Household>, Vec<RawRecord>) {
    common::generated_year(dir, households, seed, 0.4)
}

fn occurred_at(r: &RawRecord) -> Option<chrono::DateTime<chrono::FixedOffset>> {
    doudi_pipeline::ingest_record(r.clone(), &doudi_model::ParseLimits::default())
        .result
        .ok()
        .map(|e| e.occurred_at)
}

fn by_time(items: &[RawRecord]) -> Vec<RawRecord> {
    let mut v = items.to_vec();
    v.sort_by_cached_key(occurred_at);
    v
}

/// The orders to compare, by name: each a list of batches of the same records.
fn orders(items: &[RawRecord], seed: u64) -> Vec<(&'static str, Vec<Vec<Ingested>>)> {
    let sorted = by_time(items);
    let mut reversed = sorted.clone();
    reversed.reverse();
    let mut shuffled = items.to_vec();
    shuffled.shuffle(&mut rand::rngs::StdRng::seed_from_u64(seed));
    vec![
        ("by event time", batches(&sorted, 200)),
        ("reversed", batches(&reversed, 300)),
        ("shuffled", batches(&shuffled, 150)),
        (
            "one record at a time, one feed after the other",
            batches(items, 1),
        ),
    ]
}

async fn apply(url: &str, register: &[doudi_model::Household], batches: &[Vec<Ingested>]) {
    let (store, engine) = common::open_with_register(url, register).await;
    for b in batches {
        doudi_pipeline::apply_batch(&store, &engine, b)
            .await
            .expect("apply");
    }
    store.close().await;
}

/// Apply each order into a fresh database made by `db`, and compare every outcome with the first.
async fn same_outcome_in_every_order(
    what: &str,
    register: &[doudi_model::Household],
    items: &[RawRecord],
    mut db: impl FnMut(&str) -> String,
) {
    let mut first: Option<(&str, Outcome)> = None;
    for (name, order) in orders(items, 19) {
        let url = db(name);
        let started = std::time::Instant::now();
        apply(&url, register, &order).await;
        let got = transitions(outcome(&url).await);
        println!(
            "{what}, {name}: {} batches, {} assessments, {} warnings, {:.1} s; history {:?}",
            order.len(),
            got.assessments.len(),
            got.warnings.len(),
            started.elapsed().as_secs_f64(),
            history(&url).await
        );
        match &first {
            None => {
                assert!(got.assessments.len() > 500, "{}", got.assessments.len());
                assert!(got.warnings.len() > 5, "{}", got.warnings.len());
                first = Some((name, got));
            }
            Some((reference, expected)) => {
                assert_eq!(
                    got.assessments.len(),
                    expected.assessments.len(),
                    "{what}: {name} vs {reference}"
                );
                for (g, e) in got.assessments.iter().zip(&expected.assessments) {
                    assert_eq!(g, e, "{what}: an assessment of {name} vs {reference}");
                }
                assert_eq!(
                    got.warnings, expected.warnings,
                    "{what}: warnings of {name} vs {reference}"
                );
            }
        }
    }
}

#[test]
fn assessments_and_warnings_do_not_depend_on_arrival_order_on_sqlite() {
    let tmp = tempfile::tempdir().unwrap();
    let (register, items) = generated(tmp.path(), 500, 19);
    println!("seed 19: {} records", items.len());
    let rt = tokio::runtime::Runtime::new().unwrap();
    let dir = tmp.path().to_path_buf();
    rt.block_on(same_outcome_in_every_order(
        "SQLite",
        &register,
        &items,
        |name| {
            format!(
                "sqlite://{}",
                dir.join(format!("{}.db", name.replace([' ', ','], "_")))
                    .display()
            )
        },
    ));
}

#[test]
fn assessments_and_warnings_do_not_depend_on_arrival_order_on_postgres() {
    let Some(server) = common::postgres_url() else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let (register, items) = generated(tmp.path(), 500, 19);
    println!("seed 19: {} records", items.len());
    let rt = tokio::runtime::Runtime::new().unwrap();
    let mut dbs = Vec::new();
    rt.block_on(same_outcome_in_every_order(
        "PostgreSQL",
        &register,
        &items,
        |_| {
            let db = PgDatabase::create(&server, "detcore");
            let url = db.url.clone();
            dbs.push(db);
            url
        },
    ));
}

/// A year of feeds applied at once (a first deployment catching up): every warning is a catch-up
/// case, due its level's catch-up window after its record arrived — not every red in the same 24
/// hours — and says when the hardship happened.
#[test]
fn a_year_caught_up_at_once_gets_catch_up_deadlines_by_level_and_event_dates() {
    let (tmp, [url]) = common::sqlite_case(["catch_up.db"]);
    let (register, items) = generated(tmp.path(), 80, 7);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let rows: Vec<(String, String, String, i64, String, String)> = rt.block_on(async {
        apply(&url, &register, &batches(&by_time(&items), 500)).await;
        let pool = sqlx::SqlitePool::connect(&url).await.expect("connect");
        sqlx::query_as(
            "SELECT household_id, level, deadline, late, occurred_at, transitions FROM warnings
             WHERE status = 'open' ORDER BY household_id",
        )
        .fetch_all(&pool)
        .await
        .expect("warnings")
    });
    assert!(rows.len() > 10, "{} warnings", rows.len());
    let policy = doudi_warnings::fold::DeadlinePolicy::default();
    let time = |s: &str| DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let pool = rt
        .block_on(sqlx::SqlitePool::connect(&url))
        .expect("connect");
    let mut deadlines = std::collections::BTreeSet::new();
    let mut levels = std::collections::BTreeSet::new();
    for (household, level, deadline, late, occurred_at, transitions) in &rows {
        assert_eq!(
            *late, 1,
            "{household}: a record of 2025 received now is late"
        );
        let transitions: Vec<doudi_warnings::fold::Transition> =
            serde_json::from_str(transitions).expect("transitions");
        let last = transitions.last().expect("a transition");
        assert_eq!(last.level.code(), level.as_str());
        assert_eq!(time(occurred_at), last.occurred_at, "{household}");
        assert!(last.occurred_at.format("%Y").to_string() == "2025");
        // Each transition's deadline: its record's receipt + its level's catch-up window; the
        // warning's: the earliest of them.
        let mut earliest = None;
        for t in &transitions {
            let received: String = rt
                .block_on(
                    sqlx::query_scalar(
                        "SELECT received_at FROM events WHERE source = $1 AND event_id = $2",
                    )
                    .bind(&t.source)
                    .bind(&t.event_id)
                    .fetch_one(&pool),
                )
                .expect("received_at");
            let hours = policy.catch_up_hours.get(t.level).expect("a level");
            let due = time(&received) + TimeDelta::hours(hours);
            assert_eq!(t.deadline, due, "{household}: {t:?}");
            earliest = Some(earliest.map_or(due, |e: DateTime<Utc>| e.min(due)));
        }
        assert_eq!(Some(time(deadline)), earliest, "{household}");
        deadlines.insert(deadline.clone());
        levels.insert(level.clone());
    }
    assert!(levels.len() >= 2, "levels {levels:?}");
    assert!(deadlines.len() > 1, "every warning has the same deadline");
}

/// `rederive_households` (what a register change calls) re-derives households from all their
/// facts: on households already derived it changes no assessment, no warning and writes no
/// history line.
#[test]
fn rederiving_households_from_all_their_facts_changes_nothing_already_derived() {
    let (tmp, [url]) = common::sqlite_case(["rederive.db"]);
    let (register, items) = generated(tmp.path(), 200, 3);
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        // Shuffled, so that the stored rows came from re-derivations already.
        let mut shuffled = items.clone();
        shuffled.shuffle(&mut rand::rngs::StdRng::seed_from_u64(3));
        apply(&url, &register, &batches(&shuffled, 100)).await;
        let before = transitions(outcome(&url).await);
        let lines_before = history(&url).await;
        let store = doudi_store::Store::open(&url).await.expect("open");
        let engine = doudi_pipeline::Engine::new(
            doudi_risk::RuleSet::builtin(),
            doudi_model::ParseLimits::default(),
            store.load_register().await.expect("load register"),
        );
        let households: Vec<String> = register.iter().map(|h| h.household_id.clone()).collect();
        let out = doudi_pipeline::rederive_households(&store, &engine, &households)
            .await
            .expect("rederive");
        store.close().await;
        assert_eq!((out.warnings_opened, out.warnings_raised), (0, 0));
        assert_eq!(transitions(outcome(&url).await), before);
        assert_eq!(history(&url).await, lines_before);
        assert!(!before.warnings.is_empty());
    });
}
