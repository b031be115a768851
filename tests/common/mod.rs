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
    let server = server.to_string();
    let sql = sql.to_string();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(async {
            use sqlx::Connection;
            let mut c = sqlx::PgConnection::connect(&server)
                .await
                .expect("connect to DOUDI_TEST_POSTGRES_URL");
            sqlx::raw_sql(&sql)
                .execute(&mut c)
                .await
                .expect("admin sql");
            let _ = c.close().await;
        })
    })
    .join()
    .expect("admin thread");
}
