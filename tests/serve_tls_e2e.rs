//! `doudi serve` over its own TLS: a test CA (made here, tests/common/pki.rs) signs a
//! certificate for `localhost`; a client trusting that CA gets its answers over HTTPS, a client that does not is
//! refused in the handshake, and plain HTTP to the TLS port gets nothing.

mod common;
#[path = "common/pki.rs"]
mod pki;

use std::net::SocketAddr;
use std::time::Duration;

/// A client that finds `localhost` at `addr`, trusting the test CA `ca` when given (otherwise only
/// the system's roots).
fn localhost_client(addr: SocketAddr, ca: Option<&str>) -> reqwest::Client {
    let mut b = reqwest::Client::builder()
        .resolve("localhost", addr)
        .timeout(Duration::from_secs(10));
    if let Some(ca) = ca {
        b = b.add_root_certificate(reqwest::Certificate::from_pem(ca.as_bytes()).unwrap());
    }
    b.build().unwrap()
}

/// `GET https://localhost:PORT/healthz` with `client`.
async fn healthz(client: &reqwest::Client, port: u16) -> reqwest::Result<reqwest::Response> {
    client
        .get(format!("https://localhost:{port}/healthz"))
        .send()
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_over_its_own_tls_answers_clients_that_trust_its_ca_only() {
    let dir = tempfile::tempdir().expect("temp dir");
    let pki = pki::Pki::make(dir.path());
    let ca = std::fs::read_to_string(&pki.ca).unwrap();
    let tls = doudi_service::tls_config(&pki.server_cert, &pki.server_key).expect("TLS config");

    let store = doudi_store::Store::open(&common::sqlite_url(dir.path(), "t.db"))
        .await
        .expect("store");
    let app = doudi_service::app(doudi_service::AppState::new(
        store,
        doudi_service::ServiceConfig::with_rules(doudi_risk::RuleSet::builtin()),
    ));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(doudi_service::serve_tls(
        doudi_service::TlsListener::new(listener, tls).unwrap(),
        app,
        async move {
            let _ = stopped.await;
        },
    ));

    // A client that would block the accept loop with a handshake it never makes.
    let _silent = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();

    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    let trusting = localhost_client(addr, Some(&ca));
    let r = healthz(&trusting, port)
        .await
        .expect("HTTPS with the test CA");
    assert_eq!(r.status(), 200);
    let r = trusting
        .get(format!("https://localhost:{port}/api/warnings"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401, "the API still wants a token");

    let untrusting = localhost_client(addr, None);
    let e = healthz(&untrusting, port)
        .await
        .expect_err("an unknown CA is refused");
    assert!(format!("{e:?}").contains("UnknownIssuer"), "{e:?}");

    let plain = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    assert!(
        plain
            .get(format!("http://127.0.0.1:{port}/healthz"))
            .send()
            .await
            .is_err(),
        "plain HTTP gets no answer from the TLS port"
    );

    let _ = stop.send(());
    server.await.unwrap().unwrap();
}
