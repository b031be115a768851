//! PostgreSQL over TLS against the local server, as `.ci/postgres-tls` sets it up: a test CA in
//! `DOUDI_TEST_POSTGRES_TLS_DIR` (`ca.crt`, `other-ca.crt`, `client.crt`/`client.key` for the role
//! `doudi_cert`, `doudi_pw.password`), a server certificate for `localhost` only, and roles that
//! only `hostssl` rules admit. Without the variable every test prints `skipped: …`.
//!
//! (The whole conformance suite also runs over TLS in CI: `.ci/run` runs it a second time with
//! `DOUDI_TEST_POSTGRES_URL` at `sslmode=verify-full`.)

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};

use doudi_store::{pg_options, Store};
use sqlx::Connection;

struct Tls {
    dir: PathBuf,
}

impl Tls {
    fn get() -> Option<Tls> {
        match std::env::var_os("DOUDI_TEST_POSTGRES_TLS_DIR") {
            Some(dir) => Some(Tls { dir: dir.into() }),
            None => {
                println!("skipped: DOUDI_TEST_POSTGRES_TLS_DIR not set (see .ci/postgres-tls)");
                None
            }
        }
    }

    fn file(&self, name: &str) -> String {
        self.dir.join(name).display().to_string()
    }

    /// A URL for `user` at `host`, database `db`, with these query parameters.
    fn url(&self, user: &str, host: &str, db: &str, query: &str) -> String {
        format!("postgres://{user}@{host}:5432/{db}?{query}")
    }

    fn verify_full(&self) -> String {
        format!("sslmode=verify-full&sslrootcert={}", self.file("ca.crt"))
    }

    /// A fresh database owned by `owner` (made over TLS as `postgres`); dropped by [`Db::drop`].
    async fn database(&self, owner: &str) -> Db {
        static N: AtomicU64 = AtomicU64::new(0);
        let name = format!(
            "doudi_tls_{}_{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        );
        let admin = self.url("postgres", "localhost", "postgres", &self.verify_full());
        exec(&admin, &format!("CREATE DATABASE {name} OWNER {owner}")).await;
        Db { admin, name }
    }
}

struct Db {
    admin: String,
    name: String,
}

impl Db {
    async fn drop(self) {
        exec(
            &self.admin,
            &format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name),
        )
        .await;
    }
}

async fn exec(url: &str, sql: &str) {
    let mut c = sqlx::PgConnection::connect(url).await.expect(url);
    sqlx::raw_sql(sql).execute(&mut c).await.expect(sql);
    let _ = c.close().await;
}

/// The TLS version of a connection made with doudi's options, or the error.
async fn tls_version(url: &str, password: Option<&str>) -> Result<Option<String>, String> {
    let options = pg_options(url, password).map_err(|e| e.to_string())?;
    let mut c = sqlx::PgConnection::connect_with(&options)
        .await
        .map_err(|e| e.to_string())?;
    let v: Option<String> = sqlx::query_scalar(
        "SELECT CASE WHEN ssl THEN version END FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
    )
    .fetch_one(&mut c)
    .await
    .map_err(|e| e.to_string())?;
    let _ = c.close().await;
    Ok(v)
}

#[tokio::test]
async fn verify_full_to_localhost_opens_the_store_encrypted() {
    let Some(tls) = Tls::get() else { return };
    let db = tls.database("doudi_tls").await;
    let url = tls.url("doudi_tls", "localhost", &db.name, &tls.verify_full());
    let version = tls_version(&url, None).await.expect("verify-full connects");
    assert!(
        version.as_deref().is_some_and(|v| v.starts_with("TLSv1.")),
        "{version:?}"
    );
    // Migrations and a write and a read, all over the verified connection.
    let store = Store::open(&url).await.expect("open over TLS");
    assert_eq!(store.backend(), "postgres");
    assert!(store.tokens().await.expect("read over TLS").is_empty());
    store.close().await;
    db.drop().await;
}

#[tokio::test]
async fn a_plain_connection_is_refused_where_the_server_requires_tls() {
    let Some(tls) = Tls::get() else { return };
    let plain = tls.url("doudi_tls", "127.0.0.1", "postgres", "sslmode=disable");
    let e = Store::open(&plain).await.unwrap_err().to_string();
    assert!(e.contains("no encryption"), "{e}");
    // The same role over TLS (not verified: `require`) is admitted.
    let required = tls.url("doudi_tls", "127.0.0.1", "postgres", "sslmode=require");
    assert!(tls_version(&required, None).await.unwrap().is_some());
}

#[tokio::test]
async fn verify_full_checks_the_host_name() {
    let Some(tls) = Tls::get() else { return };
    // The server's certificate names localhost only.
    let by_ip = tls.url("doudi_tls", "127.0.0.1", "postgres", &tls.verify_full());
    let e = tls_version(&by_ip, None).await.unwrap_err();
    assert!(e.contains("not valid for name"), "{e}");
    // verify-ca checks the chain. (With sqlx 0.8 it checks the name too, so it is not tried by
    // address here: upstream sqlx issue 3793, see the README.)
    let ca_only = format!("sslmode=verify-ca&sslrootcert={}", tls.file("ca.crt"));
    let by_name = tls.url("doudi_tls", "localhost", "postgres", &ca_only);
    assert!(tls_version(&by_name, None).await.unwrap().is_some());
}

#[tokio::test]
async fn a_server_certificate_from_another_ca_is_refused() {
    let Some(tls) = Tls::get() else { return };
    for mode in ["verify-ca", "verify-full", "require"] {
        let query = format!("sslmode={mode}&sslrootcert={}", tls.file("other-ca.crt"));
        let url = tls.url("doudi_tls", "localhost", "postgres", &query);
        let e = tls_version(&url, None).await.unwrap_err();
        assert!(e.contains("UnknownIssuer"), "{mode}: {e}");
    }
}

#[tokio::test]
async fn a_client_certificate_authenticates_a_role_that_needs_one() {
    let Some(tls) = Tls::get() else { return };
    let db = tls.database("doudi_cert").await;
    let with_cert = format!(
        "{}&sslcert={}&sslkey={}",
        tls.verify_full(),
        tls.file("client.crt"),
        tls.file("client.key")
    );
    let url = tls.url("doudi_cert", "localhost", &db.name, &with_cert);
    let store = Store::open(&url)
        .await
        .expect("the client certificate admits");
    assert!(store.tokens().await.unwrap().is_empty());
    store.close().await;
    let without = tls.url("doudi_cert", "localhost", &db.name, &tls.verify_full());
    let e = Store::open(&without).await.unwrap_err().to_string();
    assert!(e.contains("client certificate"), "{e}");
    db.drop().await;
}

#[tokio::test]
async fn a_password_given_apart_from_the_url_authenticates() {
    let Some(tls) = Tls::get() else { return };
    let password = std::fs::read_to_string(tls.dir.join("doudi_pw.password"))
        .expect("doudi_pw.password")
        .trim_end()
        .to_string();
    let db = tls.database("doudi_pw").await;
    let url = tls.url("doudi_pw", "localhost", &db.name, &tls.verify_full());
    let store = Store::open_with_password(&url, Some(&password))
        .await
        .expect("the password admits");
    store.close().await;
    let e = Store::open_with_password(&url, Some("wrong"))
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("password authentication failed"), "{e}");
    assert!(!e.contains(&password), "{e}");
    db.drop().await;
}
