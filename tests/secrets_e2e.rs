//! Secrets from files, through the real binary: `DOUDI_<NAME>_FILE` for every secret setting,
//! never printed by `doudi config`; the PostgreSQL password from a file over a verified TLS
//! connection (with `DOUDI_TEST_POSTGRES_TLS_DIR`, see .ci/postgres-tls); `doudi serve` refusing an
//! https `public_url` without TLS or a trusted proxy, and serving HTTPS with its own certificate.

mod common;
#[path = "common/pki.rs"]
mod pki;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{doudi_env, ok};

#[test]
fn doudi_config_prints_no_secret_and_masks_a_password_in_the_url() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let mut env = vec![(
        "DOUDI_STORE__URL".to_string(),
        "postgres://doudi:url-password-1@db:5432/doudi".to_string(),
    )];
    for (n, name) in [
        "DELIVER__SECRET",
        "STORE__PASSWORD",
        "KAFKA__SASL_PASSWORD",
        "KAFKA__SSL_KEY_PASSWORD",
        "KAFKA__SSL_KEYSTORE_PASSWORD",
    ]
    .iter()
    .enumerate()
    {
        let file = dir.join(format!("secret-{n}"));
        std::fs::write(&file, format!("file-secret-{n}\n")).unwrap();
        env.push((format!("DOUDI_{name}_FILE"), file.display().to_string()));
    }
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let printed = ok(doudi_env(dir, &["config"], &env));
    assert!(!printed.contains("file-secret-"), "{printed}");
    assert!(!printed.contains("url-password-1"), "{printed}");
    assert!(
        printed.contains("url = \"postgres://doudi:***@db:5432/doudi\""),
        "{printed}"
    );

    // Both ways at once is refused, naming both variables.
    let mut both = env.clone();
    both.push(("DOUDI_DELIVER__SECRET", "inline"));
    let out = doudi_env(dir, &["config"], &both);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("DOUDI_DELIVER__SECRET and DOUDI_DELIVER__SECRET_FILE"),
        "{stderr}"
    );
}

#[tokio::test]
async fn the_database_password_comes_from_a_file_over_verified_tls() {
    let Some(tls) = std::env::var_os("DOUDI_TEST_POSTGRES_TLS_DIR") else {
        println!("skipped: DOUDI_TEST_POSTGRES_TLS_DIR not set (see .ci/postgres-tls)");
        return;
    };
    let tls = std::path::PathBuf::from(tls);
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().to_path_buf();
    let verify = format!(
        "sslmode=verify-full&sslrootcert={}",
        tls.join("ca.crt").display()
    );
    let name = format!("doudi_secrets_{}", std::process::id());
    let admin = format!("postgres://postgres@localhost:5432/postgres?{verify}");
    let sql = |q: String| {
        let admin = admin.clone();
        async move {
            use sqlx::Connection;
            let mut c = sqlx::PgConnection::connect(&admin).await.expect("admin");
            sqlx::raw_sql(&q).execute(&mut c).await.expect("admin sql");
        }
    };
    sql(format!("CREATE DATABASE {name} OWNER doudi_pw")).await;
    let url = format!("postgres://doudi_pw@localhost:5432/{name}?{verify}");
    let file = tls.join("doudi_pw.password").display().to_string();
    let (with, without) = {
        let (dir, url) = (dir.clone(), url.clone());
        tokio::task::spawn_blocking(move || {
            let with = doudi_env(
                &dir,
                &["migrate", "--db", &url],
                &[("DOUDI_STORE__PASSWORD_FILE", &file)],
            );
            let without = doudi_env(&dir, &["migrate", "--db", &url], &[]);
            (with, without)
        })
        .await
        .unwrap()
    };
    sql(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")).await;
    assert!(ok(with).contains("is up to date"));
    assert!(!without.status.success());
    let e = String::from_utf8_lossy(&without.stderr);
    assert!(e.contains("password"), "{e}");
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[test]
fn serve_refuses_an_https_public_url_without_tls_or_a_trusted_proxy() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let out = doudi_env(
        dir,
        &["serve", "--listen", "127.0.0.1:0"],
        &[("DOUDI_SERVE__PUBLIC_URL", "https://doudi.example.gov.cn")],
    );
    assert!(!out.status.success());
    let e = String::from_utf8_lossy(&out.stderr);
    assert!(
        e.contains("serve.trusted_proxies") && e.contains("serve.tls_cert"),
        "{e}"
    );
    let out = doudi_env(
        dir,
        &["config"],
        &[("DOUDI_SERVE__TRUSTED_PROXIES", "[\"10.0.0.0/33\"]")],
    );
    let e = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && e.contains("serve.trusted_proxies: \"10.0.0.0/33\""),
        "{e}"
    );
}

#[tokio::test]
async fn serve_with_its_own_certificate_answers_https() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let pki = pki::Pki::make(dir);
    let port = free_port();
    let mut serve = Command::new(env!("CARGO_BIN_EXE_doudi"))
        .current_dir(dir)
        .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
        .env_remove("DOUDI_CONFIG")
        .env_remove("DOUDI_DB")
        .env("DOUDI_LOG", "warn")
        .env(
            "DOUDI_SERVE__PUBLIC_URL",
            format!("https://localhost:{port}"),
        )
        .env("DOUDI_SERVE__TLS_CERT", &pki.server_cert)
        .env("DOUDI_SERVE__TLS_KEY", &pki.server_key)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start doudi serve");
    let client = reqwest::Client::builder()
        .add_root_certificate(
            reqwest::Certificate::from_pem(&std::fs::read(&pki.ca).unwrap()).unwrap(),
        )
        .resolve("localhost", ([127, 0, 0, 1], port).into())
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    let start = Instant::now();
    let status = loop {
        match client
            .get(format!("https://localhost:{port}/healthz"))
            .send()
            .await
        {
            Ok(r) => break r.status(),
            Err(e) if start.elapsed() > Duration::from_secs(30) => panic!("no answer: {e:?}"),
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    };
    let _ = serve.kill();
    let _ = serve.wait();
    assert_eq!(status, 200);
}
