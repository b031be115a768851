//! Helpers shared by the end-to-end tests: run the real `doudi` binary in a folder, with a clean
//! environment, and read what it printed.

// Each test file uses some of these.
#![allow(dead_code)]

use std::path::Path;
use std::process::{Command, Output};

/// Run `doudi` in `dir` with nothing from the caller's environment that could change it, in
/// English (`DOUDI_LANG=en`; an `env` of [`doudi_env`] may choose another language).
pub fn doudi(dir: &Path, args: &[&str]) -> Output {
    doudi_env(dir, args, &[])
}

/// [`doudi`] with extra environment variables.
pub fn doudi_env(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_doudi"));
    cmd.current_dir(dir)
        .args(args)
        .env_remove("DOUDI_CONFIG")
        .env_remove("DOUDI_DB")
        .env_remove("DOUDI_USER")
        .env("DOUDI_LOG", "warn")
        // The tests read the English texts; Chinese (the default) is tested in cli_lang_e2e.
        .env("DOUDI_LANG", "en");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("run doudi")
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

/// A new database on the PostgreSQL test server (`DOUDI_TEST_POSTGRES_URL`), dropped with its
/// connections when this is dropped, the test passed or not. Derefs to its URL.
pub struct PgDatabase {
    server: String,
    name: String,
    pub url: String,
}

impl PgDatabase {
    /// `what` goes into the database's name, to tell leftovers apart.
    pub fn create(server: &str, what: &str) -> PgDatabase {
        let name = format!(
            "doudi_{what}_{}_{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.subsec_nanos())
                .unwrap_or(0)
        );
        pg_admin(server, &format!("CREATE DATABASE {name}"));
        let base = server.rsplit_once('/').map(|(b, _)| b).unwrap_or(server);
        PgDatabase {
            server: server.to_string(),
            url: format!("{base}/{name}"),
            name,
        }
    }
}

impl std::ops::Deref for PgDatabase {
    type Target = str;
    fn deref(&self) -> &str {
        &self.url
    }
}

impl Drop for PgDatabase {
    fn drop(&mut self) {
        pg_admin(
            &self.server,
            &format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name),
        );
    }
}

/// One statement on the server, on its own thread and runtime (so also from `Drop`, and from
/// inside another runtime).
fn pg_admin(server: &str, sql: &str) {
    let (server, sql) = (server.to_string(), sql.to_string());
    on_own_thread(move || async move {
        use sqlx::Connection;
        let mut c = sqlx::PgConnection::connect(&server)
            .await
            .expect("connect to DOUDI_TEST_POSTGRES_URL");
        sqlx::raw_sql(&sql)
            .execute(&mut c)
            .await
            .expect("admin sql");
        let _ = c.close().await;
    });
}

/// Run the future `work` makes to its end on a runtime of a thread of its own (so also from `Drop`, and from
/// inside another runtime).
pub fn on_own_thread<F: std::future::Future<Output = ()>>(
    work: impl FnOnce() -> F + Send + 'static,
) {
    std::thread::spawn(move || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime")
            .block_on(work())
    })
    .join()
    .expect("a thread of its own");
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

/// Import the generated register and officer directory found at `prefix` (`""` or `"data/"`)
/// into `db`.
pub fn import_generated(dir: &Path, prefix: &str, db: &str) {
    let register = format!("{prefix}register.jsonl");
    let officers = format!("{prefix}officers.jsonl");
    ok(doudi(dir, &["import", &register, "--db", db]));
    ok(doudi(dir, &["officers", "import", &officers, "--db", db]));
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
