//! Helpers shared by the end-to-end tests: run the real `doudi` binary in a folder, with a clean
//! environment, and read what it printed.

// Each test file uses some of these.
#![allow(dead_code)]

use std::path::Path;
use std::process::{Command, Output};

// The PostgreSQL test database, shared with the service's tests (crates/service/tests/common).
mod pg;
#[allow(unused_imports)]
pub use pg::{on_own_thread, PgDatabase};

/// Run `doudi` in `dir` with nothing from the caller's environment that could change it, in
/// English (`DOUDI_LANG=en`; an `env` of [`doudi_env`] may choose another language).
pub fn doudi(dir: &Path, args: &[&str]) -> Output {
    doudi_env(dir, args, &[])
}

/// [`doudi`] with extra environment variables.
pub fn doudi_env(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = doudi_command(dir, args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("run doudi")
}

/// The command [`doudi`] runs, for a caller that sets more or spawns it.
pub fn doudi_command(dir: &Path, args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_doudi"));
    cmd.current_dir(dir)
        .args(args)
        .env_remove("DOUDI_CONFIG")
        .env_remove("DOUDI_DB")
        .env_remove("DOUDI_USER")
        .env("DOUDI_LOG", "warn")
        // The tests read the English texts; Chinese (the default) is tested in cli_lang_e2e.
        .env("DOUDI_LANG", "en");
    cmd
}

/// Its standard output, after asserting it succeeded.
pub fn ok(out: Output) -> String {
    assert!(
        out.status.success(),
        "doudi failed: {}\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Its standard output, after asserting it exited with `code`.
pub fn exits(out: Output, code: i32) -> String {
    assert_eq!(
        out.status.code(),
        Some(code),
        "stdout: {}\nstderr: {}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Its standard error, after asserting it refused the request (exit 2).
pub fn refused(out: Output) -> String {
    assert_eq!(
        out.status.code(),
        Some(2),
        "expected a refusal (exit 2): stdout {} stderr {}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// `doudi gen` of `households` households from `seed` into `out` (beside `dir`), with `more`
/// arguments; its standard output, after asserting it succeeded.
pub fn gen(dir: &Path, households: &str, seed: &str, out: &str, more: &[&str]) -> String {
    let mut args = vec![
        "gen",
        "--households",
        households,
        "--seed",
        seed,
        "--out",
        out,
    ];
    args.extend_from_slice(more);
    ok(doudi(dir, &args))
}

/// The URL of the SQLite database `name` in `dir`.
pub fn sqlite_url(dir: &Path, name: &str) -> String {
    format!("sqlite://{}", dir.join(name).display())
}

/// The PostgreSQL test server's URL (`DOUDI_TEST_POSTGRES_URL`), or `None` after saying the test
/// is skipped.
pub fn postgres_url() -> Option<String> {
    let url = std::env::var("DOUDI_TEST_POSTGRES_URL").ok();
    if url.is_none() {
        println!("skipped: DOUDI_TEST_POSTGRES_URL not set");
    }
    url
}

/// A temporary folder and the URLs of the SQLite databases `names` in it.
pub fn sqlite_case<const N: usize>(names: [&str; N]) -> (tempfile::TempDir, [String; N]) {
    let tmp = tempfile::tempdir().expect("temp dir");
    let urls = names.map(|name| sqlite_url(tmp.path(), name));
    (tmp, urls)
}

/// A temporary folder and a fresh database on the PostgreSQL test server for each of `what` (see
/// [`PgDatabase::create`]), or `None` after saying the test is skipped.
pub fn postgres_case<const N: usize>(
    what: [&str; N],
) -> Option<(tempfile::TempDir, [PgDatabase; N])> {
    let server = postgres_url()?;
    let databases = what.map(|w| PgDatabase::create(&server, w));
    Some((tempfile::tempdir().expect("temp dir"), databases))
}

/// Import the generated register and officer directory found at `prefix` (`""` or `"data/"`)
/// into `db`.
pub fn import_generated(dir: &Path, prefix: &str, db: &str) {
    let register = format!("{prefix}register.jsonl");
    let officers = format!("{prefix}officers.jsonl");
    ok(doudi(dir, &["import", &register, "--db", db]));
    ok(doudi(dir, &["officers", "import", &officers, "--db", db]));
}

/// The SQLite databases `names` in `dir`, each holding the generated register and officer
/// directory found at `prefix` (as [`import_generated`]); their URLs.
pub fn imported_stores<const N: usize>(dir: &Path, prefix: &str, names: [&str; N]) -> [String; N] {
    names.map(|name| {
        let db = sqlite_url(dir, name);
        import_generated(dir, prefix, &db);
        db
    })
}

/// A valid 18-digit ID number (ISO 7064 MOD 11-2 check character).
pub fn id_number(body: &str) -> String {
    const W: [u32; 17] = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
    let sum: u32 = body
        .chars()
        .zip(W)
        .map(|(c, w)| c.to_digit(10).expect("digit") * w)
        .sum();
    let check = b"10X98765432"[(sum % 11) as usize] as char;
    format!("{body}{check}")
}

/// The first warning of a `warnings list --json` answer that is assigned to a generated officer.
pub fn assigned_warning(warnings: &serde_json::Value) -> serde_json::Value {
    warnings
        .as_array()
        .and_then(|a| {
            a.iter().find(|w| {
                w["assigned_to"]
                    .as_str()
                    .is_some_and(|o| o.starts_with("o-"))
            })
        })
        .expect("an assigned warning")
        .clone()
}

/// A copy of every generated feed file under `data/feeds_copy`, each renamed `copy-…`, so a
/// second worker reads the same records from other files.
pub fn copy_feeds(dir: &Path) {
    for source in std::fs::read_dir(dir.join("data/feeds")).unwrap() {
        let source = source.unwrap().path();
        let copy = dir
            .join("data/feeds_copy")
            .join(source.file_name().unwrap());
        std::fs::create_dir_all(&copy).unwrap();
        for file in std::fs::read_dir(&source).unwrap() {
            let file = file.unwrap().path();
            let name = file.file_name().unwrap().to_string_lossy().into_owned();
            std::fs::copy(&file, copy.join(format!("copy-{name}"))).unwrap();
        }
    }
}

/// A store at `url` holding `register`, and an engine loaded from it with the built-in rules.
pub async fn open_with_register(
    url: &str,
    register: &[doudi_model::Household],
) -> (doudi_store::Store, doudi_pipeline::Engine) {
    let store = doudi_store::Store::open(url).await.expect("open");
    store
        .import_register(register, "register.jsonl", true)
        .await
        .expect("import");
    let engine = doudi_pipeline::Engine::new(
        doudi_risk::RuleSet::builtin(),
        doudi_model::ParseLimits::default(),
        store.load_register().await.expect("load register"),
    );
    (store, engine)
}

/// A child process (a server), killed when dropped (the test passed or not).
pub struct Server(pub std::process::Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A free TCP port on loopback.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// `doudi args` (a `serve`) in `dir` listening on `port`, with nothing from the caller's
/// environment that could change it, logging at warn, its output going nowhere; the caller may
/// set more, then spawns it.
pub fn serve_command(dir: &Path, args: &[&str], port: u16) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_doudi"));
    c.current_dir(dir)
        .args(args)
        .env_remove("DOUDI_CONFIG")
        .env_remove("DOUDI_DB")
        .env("DOUDI_SERVE__LISTEN", format!("127.0.0.1:{port}"))
        .env("DOUDI_LOG", "warn")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    c
}

/// Every record of the generated feeds under `feeds`, in file order (one feed after the other,
/// each in its own order).
pub fn feed_records(feeds: &Path) -> Vec<doudi_pipeline::driver::RawRecord> {
    let limits = doudi_model::ParseLimits::default();
    let mut items = Vec::new();
    for files in doudi_pipeline::files::scan_feeds(feeds).expect("feeds") {
        let mut reader = doudi_pipeline::files::SourceReader::new(
            files,
            Default::default(),
            limits.max_event_bytes,
            true,
        );
        while let Some(record) = reader.next_record().expect("read a feed") {
            items.push(record);
        }
    }
    items
}

/// Whether the server at `base` answers `GET /readyz` with success within `tries` × 50 ms.
pub async fn ready(http: &reqwest::Client, base: &str, tries: u32) -> bool {
    for _ in 0..tries {
        if let Ok(r) = http.get(format!("{base}/readyz")).send().await {
            if r.status().is_success() {
                return true;
            }
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    false
}

/// The export files of a generated native folder (all but its `profile.toml`), sorted.
pub fn export_files(folder: &Path) -> Vec<String> {
    let mut files: Vec<String> = std::fs::read_dir(folder)
        .expect("folder")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.file_name().is_some_and(|n| n != "profile.toml"))
        .map(|p| p.display().to_string())
        .collect();
    files.sort();
    files
}

/// The JSON `doudi args` printed, after asserting it succeeded.
pub fn json(dir: &Path, args: &[&str]) -> serde_json::Value {
    serde_json::from_str(&ok(doudi(dir, args))).expect("doudi printed JSON")
}

/// `doudi status --json` of `db`.
pub fn status(dir: &Path, db: &str) -> serde_json::Value {
    json(dir, &["status", "--json", "--db", db])
}

/// `doudi deadletters replay ARGS` on `db`, with `env`; what it printed, after asserting it
/// succeeded.
pub fn replay(dir: &Path, db: &str, args: &[&str], env: &[(&str, &str)]) -> String {
    let mut all = vec!["deadletters", "replay", "--db", db];
    all.extend_from_slice(args);
    ok(doudi_env(dir, &all, env))
}

/// `doudi args` in `dir` as [`doudi`] runs it, its output going nowhere; the caller may set more,
/// then spawns it (a run to kill, a worker to stop).
pub fn quiet_command(dir: &Path, args: &[&str]) -> Command {
    let mut c = doudi_command(dir, args);
    c.stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    c
}

/// `doudi run --feeds FEEDS --once` on `db`; what it printed, after asserting it succeeded.
pub fn run_once(dir: &Path, feeds: &str, db: &str) -> String {
    ok(doudi(dir, &["run", "--feeds", feeds, "--once", "--db", db]))
}

/// `doudi deadletters list --json` of `db`.
pub fn dead_letters(dir: &Path, db: &str) -> Vec<serde_json::Value> {
    let list = json(dir, &["deadletters", "list", "--json", "--db", db]);
    list.as_array().expect("a list").clone()
}

/// `values` written to `path` as JSON lines.
pub fn write_jsonl(path: &Path, values: &[serde_json::Value]) {
    let text: String = values.iter().map(|v| format!("{v}\n")).collect();
    std::fs::write(path, text).expect("write JSON lines");
}

/// The JSON lines of the file at `path`.
pub fn read_jsonl(path: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .expect("read JSON lines")
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect()
}

/// `doudi tokens create --role ROLE` for region `region` with `more` arguments (`--source`,
/// `--officer`, …) on `db`, `--json`; the token.
pub fn create_token(dir: &Path, db: &str, role: &str, region: &str, more: &[&str]) -> String {
    create_token_env(dir, &[], db, role, region, more)
}

/// [`create_token`] with extra environment variables.
pub fn create_token_env(
    dir: &Path,
    env: &[(&str, &str)],
    db: &str,
    role: &str,
    region: &str,
    more: &[&str],
) -> String {
    let mut args = vec![
        "tokens", "create", "--json", "--db", db, "--role", role, "--region", region,
    ];
    args.extend_from_slice(more);
    let created: serde_json::Value =
        serde_json::from_str(&ok(doudi_env(dir, &args, env))).expect("token json");
    created["token"].as_str().expect("token").to_string()
}

/// Nanoseconds since the epoch: a name part that tells one call's files from another's.
pub fn now_nanos() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("after the epoch")
        .as_nanos()
}

/// The records of `items` cut into ingested batches of `size`, as the driver hands them on.
pub fn batches(
    items: &[doudi_pipeline::driver::RawRecord],
    size: usize,
) -> Vec<Vec<doudi_pipeline::Ingested>> {
    let limits = doudi_model::ParseLimits::default();
    items
        .chunks(size)
        .map(|c| {
            c.iter()
                .map(|r| doudi_pipeline::ingest_record(r.clone(), &limits))
                .collect()
        })
        .collect()
}

/// A year from 2025-01-01 of `households` generated from `seed` with `hardship_share`, written
/// into `dir`: its register, and the records of its feeds in file order.
pub fn generated_year(
    dir: &Path,
    households: usize,
    seed: u64,
    hardship_share: f64,
) -> (
    Vec<doudi_model::Household>,
    Vec<doudi_pipeline::driver::RawRecord>,
) {
    let gen = doudi_synth::GenConfig {
        households,
        seed,
        start: chrono::NaiveDate::from_ymd_opt(2025, 1, 1).expect("a date"),
        months: 12,
        hardship_share,
        noise: doudi_synth::Noise::default(),
    };
    doudi_synth::write_dataset(dir, &gen, &mut |_| {}).expect("generate");
    let items = feed_records(&dir.join("feeds"));
    (doudi_synth::generate_register(&gen), items)
}

/// `$work`, an expression of `$pool` (awaited inside), on a pool of the database at `$db`,
/// PostgreSQL or SQLite, closed after: the same queries on either backend.
#[allow(unused_macros)]
macro_rules! on_pool {
    ($db:expr, |$pool:ident| $work:expr) => {{
        let db: &str = $db;
        if db.starts_with("postgres") {
            let $pool = sqlx::PgPool::connect(db).await.expect("connect");
            let out = $work;
            $pool.close().await;
            out
        } else {
            let $pool = sqlx::SqlitePool::connect(db).await.expect("connect");
            let out = $work;
            $pool.close().await;
            out
        }
    }};
}
#[allow(unused_imports)]
pub(crate) use on_pool;

/// A data set of `households` generated from `seed` (the rest as `doudi gen`'s defaults), written
/// into a new temporary folder.
pub fn synth_dataset(households: usize, seed: u64) -> tempfile::TempDir {
    let tmp = tempfile::tempdir().expect("tempdir");
    let cfg = doudi_synth::GenConfig {
        households,
        seed,
        ..doudi_synth::GenConfig::default()
    };
    doudi_synth::write_dataset(tmp.path(), &cfg, &mut |_| {}).expect("generate");
    tmp
}

/// A 特困 household `id` at house `number` of village 341502001003 (大塘村): one elderly woman
/// alone, `member` (ID number, name, birth date as YYYY-MM-DD).
pub fn tekun_household(id: &str, number: &str, member: (&str, &str, &str)) -> serde_json::Value {
    let (id_number, name, birth) = member;
    serde_json::json!({
        "household_id": id, "region_code": "341502001003", "address": format!("大塘村{number}号"),
        "category": "tekun", "area": "rural", "monthly_benefit_fen": 117200, "enrolled_on": "2023-05-01",
        "members": [{"member_id": format!("{id}-1"), "id_number": id_number, "name": name,
            "sex": "female", "birth_date": birth, "relation": "head", "work_capacity": "none"}]
    })
}

/// A health-insurance record `event_id`: lung cancer diagnosed on 2026-02-12 for `subject`.
pub fn illness(event_id: &str, subject: serde_json::Value) -> serde_json::Value {
    serde_json::json!({
        "event_id": event_id, "source": "health_insurance", "kind": "serious_illness_diagnosed",
        "occurred_at": "2026-02-12T10:05:00+08:00",
        "subject": subject,
        "data": {"diagnosis": "C34.9", "description": "肺恶性肿瘤", "diagnosed_on": "2026-02-12"}
    })
}

/// The subject of a record about a woman of village 341502001003 (ID number, name, birth date).
pub fn village_woman(member: (&str, &str, &str)) -> serde_json::Value {
    let (id_number, name, birth) = member;
    serde_json::json!({"id_number": id_number, "name": name, "birth_date": birth,
        "sex": "female", "region_code": "341502001003"})
}

/// A case in `dir`: `register.jsonl`, `officers.jsonl` and the health-insurance feed
/// `feeds/health_insurance/2026-02.jsonl` holding `events`.
pub fn write_case(
    dir: &Path,
    register: &[serde_json::Value],
    officers: &[serde_json::Value],
    events: &[serde_json::Value],
) {
    write_jsonl(&dir.join("register.jsonl"), register);
    write_jsonl(&dir.join("officers.jsonl"), officers);
    let feeds = dir.join("feeds/health_insurance");
    std::fs::create_dir_all(&feeds).expect("feeds folder");
    write_jsonl(&feeds.join("2026-02.jsonl"), events);
}

/// `doudi warnings list --json` of `db` with `more` arguments (`--officer`, …).
pub fn warnings_list(dir: &Path, db: &str, more: &[&str]) -> Vec<serde_json::Value> {
    let mut args = vec!["warnings", "list", "--json", "--db", db];
    args.extend_from_slice(more);
    json(dir, &args).as_array().expect("a list").clone()
}
