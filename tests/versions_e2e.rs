//! Issue 19 item 2 / issue 22 item 5, end to end: a rule set activated while workers run is a
//! stored, versioned change at a stream position that every worker adopts at that position. The
//! first half of every feed file is fed, `doudi rules activate` stores a rule set with a lower
//! yellow threshold (results visibly change), the rest is fed; in each scenario the records of the
//! first half carry the old version and the others the new one, and assessments and warnings are
//! identical row by row to the reference:
//!
//! | scenario | backend |
//! |---|---|
//! | files, `doudi run --once` before and after the activation (the reference) | SQLite |
//! | files, one worker following them while the rule set is activated | SQLite |
//! | Kafka, one worker SIGKILLed after the activation and started again | SQLite |
//! | Kafka, two workers of one group | PostgreSQL (with DOUDI_TEST_POSTGRES_URL) |

mod common;
#[path = "common/kafka.rs"]
mod kafka;

use std::collections::{BTreeMap, HashSet};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::{doudi, ok, PgDatabase};
use kafka::{Broker, Guard, FEEDS};

const OLD: &str = "2026.12-1";
const NEW: &str = "2026.12-1-lower-yellow";
const WITHIN: Duration = Duration::from_secs(120);
const BATCH: (&str, &str) = ("DOUDI_LIMITS__BATCH_SIZE", "100");

/// The generated data split in two: `half1/<topic>/<file>` holds the first half of each feed
/// file's lines, `half2/…` the rest.
struct Data {
    _tmp: tempfile::TempDir,
    dir: PathBuf,
    first: u64,
    total: u64,
    /// (source, event_id) of the first half's records.
    first_ids: HashSet<(String, String)>,
}

fn generate() -> Data {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().to_path_buf();
    ok(doudi(
        &dir,
        &[
            "gen",
            "--households",
            "300",
            "--months",
            "12",
            "--seed",
            "22",
            "--out",
            "data",
            "--start",
            "2025-01-01",
        ],
    ));
    let (mut first, mut total) = (0, 0);
    let mut first_ids = HashSet::new();
    for (topic, file) in kafka::feed_files(&dir) {
        let text = std::fs::read_to_string(&file).unwrap();
        let lines: Vec<&str> = text.lines().filter(|l| !l.is_empty()).collect();
        let cut = lines.len() / 2;
        let name = file.file_name().unwrap();
        for (half, part) in [("half1", &lines[..cut]), ("half2", &lines[cut..])] {
            let folder = dir.join(half).join(&topic);
            std::fs::create_dir_all(&folder).unwrap();
            let mut body = part.join("\n");
            if !body.is_empty() {
                body.push('\n');
            }
            std::fs::write(folder.join(name), body).unwrap();
        }
        for l in &lines[..cut] {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            first_ids.insert((
                v["source"].as_str().unwrap().to_string(),
                v["event_id"].as_str().unwrap().to_string(),
            ));
        }
        first += cut as u64;
        total += lines.len() as u64;
    }
    std::fs::write(dir.join("new-rules.toml"), new_rules()).unwrap();
    Data {
        _tmp: tmp,
        dir,
        first,
        total,
        first_ids,
    }
}

fn new_rules() -> String {
    let text = doudi_risk::RuleSet::builtin_toml()
        .replacen(
            &format!("version = \"{OLD}\""),
            &format!("version = \"{NEW}\""),
            1,
        )
        .replacen(
            "[levels.yellow]\nmin_score = 30",
            "[levels.yellow]\nmin_score = 10",
            1,
        );
    assert!(text.contains(NEW) && text.contains("min_score = 10"));
    text
}

/// The files of `half` of `topic`, in order.
fn half_files(data: &Data, half: &str, topic: &str) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(data.dir.join(half).join(topic))
        .map(|d| d.map(|e| e.unwrap().path()).collect())
        .unwrap_or_default();
    files.sort();
    files
}

/// A scenario's folder, with `data` (the register, officers) linked in.
fn scenario(data: &Data, name: &str) -> PathBuf {
    let dir = data.dir.join(name);
    std::fs::create_dir_all(&dir).unwrap();
    std::os::unix::fs::symlink(data.dir.join("data"), dir.join("data")).unwrap();
    std::fs::copy(data.dir.join("new-rules.toml"), dir.join("new-rules.toml")).unwrap();
    dir
}

fn import(dir: &Path, db: &str) {
    ok(doudi(dir, &["import", "data/register.jsonl", "--db", db]));
    ok(doudi(
        dir,
        &["officers", "import", "data/officers.jsonl", "--db", db],
    ));
}

/// `feeds/` holds the first half of every file.
fn feeds_first_half(data: &Data, dir: &Path) {
    for topic in FEEDS {
        let folder = dir.join("feeds").join(topic);
        std::fs::create_dir_all(&folder).unwrap();
        for f in half_files(data, "half1", topic) {
            std::fs::copy(&f, folder.join(f.file_name().unwrap())).unwrap();
        }
    }
}

/// Append the second half of every file to `feeds/`: the files grow, as exports do.
fn feeds_rest(data: &Data, dir: &Path) {
    for topic in FEEDS {
        for f in half_files(data, "half2", topic) {
            let target = dir.join("feeds").join(topic).join(f.file_name().unwrap());
            let mut out = std::fs::OpenOptions::new()
                .append(true)
                .create(true)
                .open(target)
                .unwrap();
            out.write_all(&std::fs::read(&f).unwrap()).unwrap();
        }
    }
}

/// Activate the new rule set; what it printed.
fn activate(dir: &Path, db: &str) -> String {
    let out = ok(common::doudi_env(
        dir,
        &["rules", "activate", "new-rules.toml", "--db", db],
        &[("DOUDI_USER", "tester")],
    ));
    assert!(out.contains(NEW), "{out}");
    out
}

/// Records read less those read again (after a kill, or repeated in the data).
fn distinct(dir: &Path, db: &str) -> u64 {
    let s = kafka::status(dir, db);
    s["received"].as_u64().unwrap_or(0) - s["duplicates"].as_u64().unwrap_or(0)
}

/// Wait until `n` distinct records are read.
fn wait(dir: &Path, db: &str, n: u64) {
    let start = Instant::now();
    loop {
        let s = kafka::status(dir, db);
        let stored = s["received"].as_u64().unwrap_or(0) - s["duplicates"].as_u64().unwrap_or(0);
        if stored >= n {
            assert_eq!(stored, n, "{s}");
            return;
        }
        assert!(
            start.elapsed() < WITHIN,
            "not read within {WITHIN:?}: {s}\n{}",
            kafka::logs(dir)
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn stop(dir: &Path, workers: Vec<Guard>) {
    kafka::stop_workers(dir, workers);
}

/// A worker following the feed files (`doudi run --feeds feeds`, no `--once`).
fn file_worker(dir: &Path, db: &str) -> Guard {
    let log = std::fs::File::create(dir.join("worker-files.log")).unwrap();
    Guard(Some(
        common::quiet_command(dir, &["run", "--feeds", "feeds", "--db", db])
            .env("DOUDI_FEEDS__POLL_INTERVAL_MS", "100")
            .env(BATCH.0, BATCH.1)
            .stderr(log)
            .spawn()
            .expect("start a file worker"),
    ))
}

fn produce(data: &Data, dir: &Path, bootstrap: &str, half: &str) {
    for topic in FEEDS {
        let files = half_files(data, half, topic);
        if files.is_empty() {
            continue;
        }
        let mut args = vec!["produce", "--brokers", bootstrap, "--topic", topic];
        let names: Vec<String> = files.iter().map(|f| f.display().to_string()).collect();
        args.extend(names.iter().map(String::as_str));
        ok(doudi(dir, &args));
    }
}

// ---------------------------------------------------------------------------------------------
// What is compared

type Rows = BTreeMap<String, Vec<String>>;

const ASSESSMENTS: &str = "SELECT e.source, e.event_id, a.household_id, a.rule_set_version, CAST(a.score AS TEXT), a.level, COALESCE(a.assessment, '') FROM assessments a JOIN events e ON e.seq = a.seq";
const WARNINGS: &str = "SELECT household_id, level, CAST(score AS TEXT), status, assessment_source, assessment_event_id FROM warnings WHERE status <> 'withdrawn'";

#[derive(Debug, PartialEq)]
struct Outcome {
    assessments: Rows,
    warnings: Rows,
}

fn rows(raw: Vec<Vec<String>>, key: usize) -> Rows {
    let mut out = Rows::new();
    for r in raw {
        out.entry(r[..key].join(" "))
            .or_default()
            .push(r[key..].join(" "));
    }
    for v in out.values_mut() {
        v.sort();
    }
    out
}

async fn outcome_of(url: &str) -> Outcome {
    use sqlx::Row;
    macro_rules! fetch {
        ($pool:expr, $sql:expr, $n:expr) => {
            sqlx::query($sql)
                .fetch_all($pool)
                .await
                .unwrap()
                .iter()
                // Each column as text; a packed document (the assessment) as its JSON.
                .map(|r| {
                    (0..$n)
                        .map(|i| {
                            doudi_store::unpack_document(r.get::<doudi_store::Stored, _>(i).0)
                                .expect("a stored value")
                        })
                        .collect()
                })
                .collect::<Vec<Vec<String>>>()
        };
    }
    let (a, w) = if url.starts_with("postgres") {
        let pool = sqlx::PgPool::connect(url).await.unwrap();
        let out = (fetch!(&pool, ASSESSMENTS, 7), fetch!(&pool, WARNINGS, 6));
        pool.close().await;
        out
    } else {
        let pool = sqlx::SqlitePool::connect(url).await.unwrap();
        let out = (fetch!(&pool, ASSESSMENTS, 7), fetch!(&pool, WARNINGS, 6));
        pool.close().await;
        out
    };
    Outcome {
        assessments: rows(a, 2),
        warnings: rows(w, 1),
    }
}

fn outcome(url: &str) -> Outcome {
    let url = url.to_string();
    // On a thread of its own: callers may be inside no runtime, or another one.
    common::on_own_thread(move || async move { outcome_of(&url).await })
}

/// Every assessment of a first-half record carries the old version, every other the new one.
fn versions_follow_positions(name: &str, data: &Data, o: &Outcome) -> (usize, usize) {
    let (mut old, mut new) = (0, 0);
    for (key, rows) in &o.assessments {
        let (source, event_id) = key.split_once(' ').unwrap();
        let first = data
            .first_ids
            .contains(&(source.to_string(), event_id.to_string()));
        for r in rows {
            let version = r.split(' ').nth(1).unwrap();
            let expected = if first { OLD } else { NEW };
            assert_eq!(version, expected, "{name}: {key} assessed with {version}");
            if first {
                old += 1;
            } else {
                new += 1;
            }
        }
    }
    assert!(old > 100 && new > 100, "{name}: {old} old, {new} new");
    (old, new)
}

fn same_as(name: &str, reference: &Outcome, got: &Outcome) {
    for (table, a, b) in [
        ("assessments", &reference.assessments, &got.assessments),
        ("warnings", &reference.warnings, &got.warnings),
    ] {
        let keys: HashSet<&String> = a.keys().chain(b.keys()).collect();
        let mut differ: Vec<&String> = keys
            .into_iter()
            .filter(|k| a.get(*k) != b.get(*k))
            .collect();
        differ.sort();
        assert!(
            differ.is_empty(),
            "{name}: {} {table} keys differ from the reference, e.g. {:?}: {:?} vs {:?}",
            differ.len(),
            differ[0],
            a.get(differ[0]),
            b.get(differ[0])
        );
    }
}

// ---------------------------------------------------------------------------------------------
// The scenarios

/// The reference: files, `--once` before and after the activation. Sets the distinct records of
/// the first half and of the whole, which the other scenarios wait for.
fn files_once(data: &mut Data) -> Outcome {
    let dir = scenario(data, "files-once");
    let db = format!("sqlite://{}", dir.join("doudi.db").display());
    import(&dir, &db);
    feeds_first_half(data, &dir);
    ok(doudi(
        &dir,
        &["run", "--feeds", "feeds", "--once", "--db", &db],
    ));
    data.first = distinct(&dir, &db);
    let printed = activate(&dir, &db);
    // Every stream, at the line after the first half.
    assert!(printed.contains("from line (offset)"), "{printed}");
    feeds_rest(data, &dir);
    let out = doudi(&dir, &["run", "--feeds", "feeds", "--once", "--db", &db]);
    // This run's configuration (the built-in rule set) is not the active one: it says so.
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    ok(out);
    assert!(
        said.contains("the configured rule set is not the active one"),
        "{said}"
    );
    data.total = distinct(&dir, &db);
    let shown = ok(doudi(&dir, &["rules", "show", "--db", &db]));
    assert!(
        shown.contains(&format!("{OLD} at")) && shown.contains(&format!("{NEW} (active)")),
        "{shown}"
    );
    assert!(shown.contains("tester"), "{shown}");
    outcome(&db)
}

/// Files, one worker following them while the rule set is activated (no restart).
fn files_following(data: &Data) -> Outcome {
    let dir = scenario(data, "files-following");
    let db = format!("sqlite://{}", dir.join("doudi.db").display());
    import(&dir, &db);
    feeds_first_half(data, &dir);
    let w = file_worker(&dir, &db);
    wait(&dir, &db, data.first);
    activate(&dir, &db);
    feeds_rest(data, &dir);
    wait(&dir, &db, data.total);
    stop(&dir, vec![w]);
    outcome(&db)
}

/// Kafka, one broker for both scenarios at once (each its own consumer group and database): one
/// worker on SQLite, SIGKILLed after the activation and started again; two workers on PostgreSQL
/// (when DOUDI_TEST_POSTGRES_URL is set). Returns each scenario's outcome by name.
fn kafka_scenarios(data: &Data) -> Vec<(&'static str, Outcome)> {
    let dir = scenario(data, "kafka");
    let t = Instant::now();
    let sqlite = format!("sqlite://{}", dir.join("killed.db").display());
    import(&dir, &sqlite);
    let pg = match std::env::var("DOUDI_TEST_POSTGRES_URL") {
        Ok(base) => Some(PgDatabase::create(&base, "versions_two")),
        Err(_) => {
            eprintln!("skipped the PostgreSQL scenario: DOUDI_TEST_POSTGRES_URL is not set");
            None
        }
    };
    if let Some(pg) = &pg {
        import(&dir, &pg.url);
    }
    let broker = Broker::start(&dir, 4);
    produce(data, &dir, &broker.bootstrap, "half1");
    println!(
        "  broker up, first half produced: {:.1} s",
        t.elapsed().as_secs_f64()
    );
    let killed_env = [("DOUDI_KAFKA__GROUP_ID", "killed"), BATCH];
    let mut killed = kafka::worker(&dir, &broker.bootstrap, &sqlite, &killed_env);
    let mut two = Vec::new();
    if let Some(pg) = &pg {
        let env = [("DOUDI_KAFKA__GROUP_ID", "two"), BATCH];
        two.push(kafka::worker(&dir, &broker.bootstrap, &pg.url, &env));
        two.push(kafka::worker(&dir, &broker.bootstrap, &pg.url, &env));
    }
    wait(&dir, &sqlite, data.first);
    activate(&dir, &sqlite);
    if let Some(pg) = &pg {
        wait(&dir, &pg.url, data.first);
        activate(&dir, &pg.url);
    }
    println!(
        "  first half read, activated: {:.1} s",
        t.elapsed().as_secs_f64()
    );
    produce(data, &dir, &broker.bootstrap, "half2");
    // The SQLite worker is killed while (or before) it reads the second half, and started again.
    std::thread::sleep(Duration::from_millis(300));
    killed.kill().unwrap();
    let _ = killed.wait();
    drop(killed);
    let restarted = kafka::worker(&dir, &broker.bootstrap, &sqlite, &killed_env);
    wait(&dir, &sqlite, data.total);
    if let Some(pg) = &pg {
        wait(&dir, &pg.url, data.total);
    }
    println!("  the rest read: {:.1} s", t.elapsed().as_secs_f64());
    two.push(restarted);
    stop(&dir, two);
    let mut out = vec![(
        "Kafka, a worker killed and restarted (SQLite)",
        outcome(&sqlite),
    )];
    if let Some(pg) = &pg {
        out.push(("Kafka, two workers (PostgreSQL)", outcome(&pg.url)));
    }
    out
}

#[test]
fn a_rule_set_activated_while_workers_run_applies_from_its_positions() {
    let started = Instant::now();
    let mut data = generate();
    let reference = files_once(&mut data);
    println!("{} records, {} in the first half", data.total, data.first);
    let (old, new) = versions_follow_positions("files, --once", &data, &reference);
    println!(
        "reference: {old} assessments with {OLD}, {new} with {NEW}, {} warnings ({:.1} s)",
        reference.warnings.values().map(Vec::len).sum::<usize>(),
        started.elapsed().as_secs_f64()
    );
    let t = Instant::now();
    let mut got = vec![("files, a following worker (SQLite)", files_following(&data))];
    println!(
        "files, a following worker: {:.1} s",
        t.elapsed().as_secs_f64()
    );
    let t = Instant::now();
    got.extend(kafka_scenarios(&data));
    println!("Kafka scenarios: {:.1} s", t.elapsed().as_secs_f64());
    for (name, o) in &got {
        versions_follow_positions(name, &data, o);
        same_as(name, &reference, o);
        println!("{name}: identical");
    }
}
