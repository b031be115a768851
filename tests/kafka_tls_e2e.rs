//! doudi's Kafka clients over TLS with SASL: librdkafka (built with OpenSSL) against a real TLS
//! handshake and a complete SASL exchange in the Kafka protocol.
//!
//! librdkafka's mock broker (`doudi dev-broker`) has neither TLS nor SASL, and Apache Kafka cannot
//! be fetched here, so the tests put a TLS- and SASL-terminating proxy in front of it
//! (tests/common/kafka_secure.rs): it does the TLS handshake with a test CA's certificate for
//! `localhost` (mutual TLS: it requires a client certificate from the same CA), answers
//! SaslHandshake and SaslAuthenticate itself (SCRAM-SHA-512, SCRAM-SHA-256, PLAIN), then relays
//! to the broker, rewriting the broker addresses it advertises (Metadata, FindCoordinator) to its
//! own listeners. Every client connection therefore goes through TLS and SASL: the bootstrap,
//! the partition leaders and the group coordinator.
//!
//! What the first test drives is the real thing: `doudi produce` and a `doudi run` worker (its
//! consumer and its dead-letter producer), configured as an operator would — `[kafka.client]` in
//! the configuration file, the password in a file named by `DOUDI_KAFKA__SASL_PASSWORD_FILE`.

mod common;
#[path = "common/kafka.rs"]
mod kafka;
#[path = "common/kafka_secure.rs"]
mod kafka_secure;
#[path = "common/pki.rs"]
mod pki;

use std::path::Path;
use std::time::Duration;

use common::{doudi_env, ok};
use kafka::*;
use kafka_secure::SecureProxy;
use rdkafka::producer::{BaseProducer, Producer};

const PASSWORD: &str = "a-long-scram-password-0123";

/// `[kafka.client]` for the proxy: SASL over TLS, the test CA, the client certificate.
fn client_table(pki: &pki::Pki, mechanism: &str) -> Vec<(&'static str, String)> {
    vec![
        ("security.protocol", "SASL_SSL".into()),
        ("sasl.mechanisms", mechanism.into()),
        ("sasl.username", "doudi".into()),
        ("ssl.ca.location", pki.ca.display().to_string()),
        (
            "ssl.certificate.location",
            pki.client_cert.display().to_string(),
        ),
        ("ssl.key.location", pki.client_key.display().to_string()),
    ]
}

/// The environment of a doudi process configured for the proxy: its configuration file and the
/// password file.
fn secured_env(dir: &Path, pki: &pki::Pki) -> Vec<(&'static str, String)> {
    let mut toml = String::from("[kafka.client]\n");
    for (k, v) in client_table(pki, "SCRAM-SHA-512") {
        toml.push_str(&format!("{k:?} = {v:?}\n"));
    }
    let config = dir.join("doudi.toml");
    std::fs::write(&config, toml).unwrap();
    let password = dir.join("kafka-password");
    std::fs::write(&password, format!("{PASSWORD}\n")).unwrap();
    vec![
        ("DOUDI_CONFIG", config.display().to_string()),
        (
            "DOUDI_KAFKA__SASL_PASSWORD_FILE",
            password.display().to_string(),
        ),
    ]
}

#[test]
fn produce_and_a_worker_go_through_mutual_tls_and_scram_sha_512() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let db = format!("sqlite://{}", dir.join("doudi.db").display());
    let good = gen_and_import(dir, "150", "11", &db);
    let broker = Broker::start(dir, 2);
    let pki = pki::Pki::make(dir);
    let proxy = SecureProxy::start(&broker.bootstrap, &pki, true, "doudi", PASSWORD);
    let env = secured_env(dir, &pki);
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();

    // A record the worker refuses: its dead letter goes out through the proxy too. Each feed's
    // files go as one (a `doudi produce` makes a producer per file).
    let mut feeds = vec![("health_insurance", "this is not json\n".to_string())];
    for topic in FEEDS {
        let mut all = String::new();
        for (_, f) in feed_files(dir).iter().filter(|(t, _)| t == topic) {
            all.push_str(&std::fs::read_to_string(f).unwrap());
        }
        feeds.push((topic, all));
    }
    for (n, (topic, lines)) in feeds.iter().enumerate() {
        let file = dir.join(format!("feed-{n}.jsonl"));
        std::fs::write(&file, lines).unwrap();
        let file = file.display().to_string();
        let args = [
            "produce",
            "--brokers",
            &proxy.bootstrap,
            "--topic",
            topic,
            &file,
        ];
        ok(doudi_env(dir, &args, &env));
    }
    let total = good + 1;

    let _worker = worker(dir, &proxy.bootstrap, &db, &env);
    let s = wait_received(dir, &db, total, Duration::from_secs(120));
    assert_eq!(s["received"], total, "{}", logs(dir));
    assert_eq!(s["dead_letters"], 1);
    // Read straight from the broker (plain): the dead letter arrived through the proxy.
    let dlq = read_topic(&broker.bootstrap, "dead_letters");
    assert_eq!(dlq.len(), 1);
    assert_eq!(dlq[0].payload, b"this is not json");

    let stats = &proxy.stats;
    assert!(
        stats.authenticated("SCRAM-SHA-512") >= 6,
        "every producer and the worker's connections authenticate: {}",
        stats.authenticated("SCRAM-SHA-512")
    );
    assert_eq!(
        stats
            .handshake_failures
            .load(std::sync::atomic::Ordering::Relaxed),
        0,
        "{:?}",
        stats.handshake_errors.lock().unwrap()
    );
    assert_eq!(
        stats
            .auth_failures
            .load(std::sync::atomic::Ordering::Relaxed),
        0
    );
    assert!(stats.relayed.load(std::sync::atomic::Ordering::Relaxed) > 0);
}

/// A client made by doudi's one client builder (`KafkaConfig::client`, what every doudi client
/// starts from) with these properties and password; the broker addresses its metadata names, or
/// why it got none.
fn metadata(
    bootstrap: &str,
    table: Vec<(&'static str, String)>,
    password: &str,
) -> Result<Vec<String>, String> {
    let mut cfg = doudi_kafka::KafkaConfig {
        brokers: bootstrap.to_string(),
        ..Default::default()
    };
    cfg.client = table.into_iter().map(|(k, v)| (k.to_string(), v)).collect();
    cfg.secrets.set("sasl.password", password.to_string());
    cfg.validate()?;
    let producer: BaseProducer = cfg.producer().create().map_err(|e| e.to_string())?;
    let m = producer
        .client()
        .fetch_metadata(None, Duration::from_secs(4))
        .map_err(|e| e.to_string())?;
    Ok(m.brokers()
        .iter()
        .map(|b| format!("{}:{}", b.host(), b.port()))
        .collect())
}

#[test]
fn scram_sha_256_and_plain_authenticate_and_bad_credentials_or_certificates_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let broker = Broker::start(dir, 1);
    let pki = pki::Pki::make(dir);
    let proxy = SecureProxy::start(&broker.bootstrap, &pki, true, "doudi", PASSWORD);
    let stats = &proxy.stats;
    let load = |n: &std::sync::atomic::AtomicU64| n.load(std::sync::atomic::Ordering::Relaxed);

    for mechanism in ["SCRAM-SHA-256", "PLAIN"] {
        let brokers = metadata(&proxy.bootstrap, client_table(&pki, mechanism), PASSWORD)
            .unwrap_or_else(|e| panic!("{mechanism}: {e}"));
        assert_eq!(brokers, vec![proxy.bootstrap.clone()], "{mechanism}");
        assert!(stats.authenticated(mechanism) >= 1, "{mechanism}");
    }

    // A wrong password: the SCRAM proof does not check out.
    let failures = load(&stats.auth_failures);
    let e = metadata(
        &proxy.bootstrap,
        client_table(&pki, "SCRAM-SHA-512"),
        "not-the-password",
    )
    .unwrap_err();
    assert!(load(&stats.auth_failures) > failures, "{e}");
    assert_eq!(stats.authenticated("SCRAM-SHA-512"), 0);

    // No client certificate: the proxy refuses the handshake (mutual TLS).
    let refused = load(&stats.handshake_failures);
    let mut table = client_table(&pki, "SCRAM-SHA-512");
    table.retain(|(k, _)| !k.starts_with("ssl.certificate") && !k.starts_with("ssl.key"));
    let e = metadata(&proxy.bootstrap, table, PASSWORD).unwrap_err();
    assert!(load(&stats.handshake_failures) > refused, "{e}");
    assert!(
        stats
            .handshake_errors
            .lock()
            .unwrap()
            .iter()
            .any(|m| m.contains("certificate")),
        "{:?}",
        stats.handshake_errors.lock().unwrap()
    );

    // The client checks the broker: a CA it was not given, or a name the certificate does not
    // carry (127.0.0.1; the certificate says localhost), and it goes no further.
    let mut table = client_table(&pki, "SCRAM-SHA-512");
    table[3].1 = pki.other_ca.display().to_string();
    metadata(&proxy.bootstrap, table, PASSWORD).unwrap_err();
    metadata(
        &proxy.bootstrap_by_address,
        client_table(&pki, "SCRAM-SHA-512"),
        PASSWORD,
    )
    .unwrap_err();
    assert_eq!(
        stats.authenticated("SCRAM-SHA-512"),
        0,
        "no SASL exchange over a broker the client did not verify"
    );
}
