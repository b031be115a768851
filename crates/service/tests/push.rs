//! HTTP push of a feed (`POST /api/feeds/{source}`): a feeder token of one source, batches of
//! envelope lines accepted whole or refused whole, appended durably to the feeds folder,
//! idempotent by event id; 413 over the push's body limit, 429 over the token's batch rate.

mod common;

use axum::body::Body;
use axum::http::Request;
use common::{death_line, make_feeder_token, Fixture, Reply, FEEDER_SOURCE};
use doudi_service::Role;

/// The counts a push answers with: events accepted, and duplicates of events stored before.
fn accepted_and_duplicates(v: &serde_json::Value) -> (Option<i64>, Option<i64>) {
    (v["accepted"].as_i64(), v["duplicates"].as_i64())
}

async fn push(fx: &Fixture, source: &str, token: &str, body: impl Into<String>) -> Reply {
    push_as(fx, source, token, "application/x-ndjson", body).await
}

async fn push_as(
    fx: &Fixture,
    source: &str,
    token: &str,
    media: &str,
    body: impl Into<String>,
) -> Reply {
    let req = Request::builder()
        .method("POST")
        .uri(format!("/api/feeds/{source}"))
        .header("authorization", format!("Bearer {token}"))
        .header("content-type", media)
        // The messages read here are the English ones (Chinese is the default).
        .header("accept-language", "en")
        .body(Body::from(body.into()))
        .expect("request");
    fx.send(req).await
}

/// Every `push-*.jsonl` file of the source's folder, concatenated in name order.
fn pushed(fx: &Fixture, source: &str) -> String {
    let dir = fx.dir.path().join("feeds").join(source);
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return String::new();
    };
    let mut names: Vec<_> = entries
        .map(|e| e.expect("entry").path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("push-") && n.ends_with(".jsonl"))
        })
        .collect();
    names.sort();
    names
        .iter()
        .map(|p| std::fs::read_to_string(p).expect("read"))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_is_appended_durably_and_pushed_again_is_a_duplicate() {
    for fx in Fixture::each_store(|_| {}).await {
        let feeder = fx.token(Role::Feeder).to_string();
        let batch = format!(
            "{}\n{}{}",
            death_line("P-1").trim_end(),
            death_line("P-2"),
            death_line("P-1")
        );
        let r = push(&fx, FEEDER_SOURCE, &feeder, batch.clone()).await;
        assert_eq!(r.status, 200, "{}", r.body);
        let v = r.json();
        assert_eq!(v["accepted"], 2, "{v}");
        assert_eq!(v["duplicates"], 1, "the id repeated in the batch: {v}");
        assert_eq!(v["duplicate_lines"], serde_json::json!([3]), "{v}");
        let file = v["file"].as_str().expect("file").to_string();
        assert!(
            file.starts_with("civil_registry/push-") && file.ends_with(".jsonl"),
            "{file}"
        );
        let text = pushed(&fx, FEEDER_SOURCE);
        assert_eq!(text, format!("{}{}", death_line("P-1"), death_line("P-2")));

        // The same batch again: every event a duplicate, nothing appended.
        let r = push(&fx, FEEDER_SOURCE, &feeder, batch).await;
        assert_eq!(r.status, 200, "{}", r.body);
        let v = r.json();
        assert_eq!(accepted_and_duplicates(&v), (Some(0), Some(3)), "{v}");
        assert!(v["file"].is_null(), "{v}");
        assert_eq!(pushed(&fx, FEEDER_SOURCE), text);

        // A new service process (the ids are read back from the folder): still duplicates.
        let again = doudi_service::app(doudi_service::AppState::new(
            fx.store.clone(),
            fx.state.config().clone(),
        ));
        let req = Request::builder()
            .method("POST")
            .uri("/api/feeds/civil_registry")
            .header("authorization", format!("Bearer {feeder}"))
            .header("content-type", "application/x-ndjson; charset=utf-8")
            .body(Body::from(format!(
                "{}{}",
                death_line("P-2"),
                death_line("P-3")
            )))
            .expect("request");
        let r = tower::ServiceExt::oneshot(again, req)
            .await
            .expect("answer");
        assert_eq!(r.status(), 200);
        let body = axum::body::to_bytes(r.into_body(), 1 << 20)
            .await
            .expect("body");
        let v: serde_json::Value = serde_json::from_slice(&body).expect("json");
        assert_eq!(accepted_and_duplicates(&v), (Some(1), Some(1)), "{v}");
        assert_eq!(pushed(&fx, FEEDER_SOURCE).lines().count(), 3);
        fx.finish().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_already_in_the_store_is_a_duplicate() {
    for fx in Fixture::each_store(|_| {}).await {
        let feeder = make_feeder_token(&fx.store, "health_insurance").await;
        let feed =
            std::fs::read_to_string(fx.dir.path().join("feeds/health_insurance/2026-02.jsonl"))
                .expect("feed");
        let stored = feed.lines().next().expect("a line");
        assert!(stored.contains("\"YB-1\""), "{stored}");
        let r = push(&fx, "health_insurance", &feeder, format!("{stored}\n")).await;
        assert_eq!(r.status, 200, "{}", r.body);
        let v = r.json();
        assert_eq!(accepted_and_duplicates(&v), (Some(0), Some(1)), "{v}");
        assert_eq!(pushed(&fx, "health_insurance"), "");
        fx.finish().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_bad_line_refuses_the_batch_whole_naming_the_line_and_never_its_values() {
    let fx = Fixture::new().await;
    let feeder = fx.token(Role::Feeder).to_string();
    let bad_date = death_line("P-9").replace("2026-02-28", "2026-02-30");
    let wrong_kind = death_line("P-10").replace("\"death\"", "\"settlement\"");
    let body = format!(
        "{}{bad_date}not json at all 341502\n{wrong_kind}",
        death_line("P-8")
    );
    let r = push(&fx, FEEDER_SOURCE, &feeder, body).await;
    assert_eq!(r.status, 422, "{}", r.body);
    let v = r.json();
    assert_eq!(v["error"]["code"], "unprocessable", "{v}");
    let m = v["error"]["message"].as_str().expect("message");
    assert!(
        m.contains("refused whole") && m.contains("3 line(s) refused"),
        "{m}"
    );
    assert!(m.contains("line 2: invalid_field: data.died_on"), "{m}");
    assert!(m.contains("line 3: not_json"), "{m}");
    assert!(m.contains("line 4: unknown_kind"), "{m}");
    assert!(!m.contains("line 1:"), "the good line is not named: {m}");
    for personal in ["陈桂兰", &common_id(), "2026-02-30", "341502"] {
        assert!(
            !m.contains(personal),
            "the message quotes {personal:?}: {m}"
        );
    }
    assert_eq!(
        pushed(&fx, FEEDER_SOURCE),
        "",
        "nothing of the batch is stored"
    );

    // An empty batch, and one with blank lines only: refused too.
    for body in ["", "\n \r\n"] {
        let r = push(&fx, FEEDER_SOURCE, &feeder, body).await;
        assert_eq!(r.status, 422, "{:?}: {}", body, r.body);
    }
    // An event of another source in the civil-registry feed.
    let other = death_line("P-11").replace("\"civil_registry\"", "\"housing\"");
    let r = push(&fx, FEEDER_SOURCE, &feeder, other).await;
    assert_eq!(r.status, 422, "{}", r.body);
    assert!(r.body.contains("line 1: "), "{}", r.body);
    // Not sent as NDJSON.
    let r = push_as(
        &fx,
        FEEDER_SOURCE,
        &feeder,
        "application/json",
        death_line("P-12"),
    )
    .await;
    assert_eq!(r.status, 415, "{}", r.body);
    assert_eq!(pushed(&fx, FEEDER_SOURCE), "");
    fx.finish().await;
}

fn common_id() -> String {
    let line = death_line("x");
    let start = line.find("\"id_number\":\"").expect("id") + 13;
    line[start..start + 18].to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_feeder_pushes_its_own_source_only_and_no_other_role_pushes() {
    let fx = Fixture::new().await;
    let feeder = fx.token(Role::Feeder).to_string();
    let r = push(&fx, "housing", &feeder, death_line("P-20")).await;
    assert_eq!(r.status, 403, "{}", r.body);
    assert!(r.body.contains("pushes civil_registry"), "{}", r.body);
    let r = push(&fx, "weather", &feeder, death_line("P-21")).await;
    assert_eq!(r.status, 404, "{}", r.body);
    for role in Role::ALL {
        let r = push(&fx, FEEDER_SOURCE, fx.token(role), death_line("P-22")).await;
        assert_eq!(r.status, 403, "{}: {}", role.code(), r.body);
    }
    // A feeder reads nothing: no API read, and a session of its token sees no page.
    for path in [
        "/api/warnings",
        "/api/officers",
        "/api/deadletters",
        "/api/review",
    ] {
        let r = fx.api("GET", path, Some(&feeder), None).await;
        assert_eq!(r.status, 403, "{path}: {}", r.body);
    }
    for path in ["/", "/regions/341502001"] {
        let r = fx.page("GET", path, Some(&feeder), None).await;
        assert_eq!(r.status, 403, "{path}: {}", r.status);
    }
    assert_eq!(pushed(&fx, FEEDER_SOURCE), "");
    fx.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_the_push_body_limit_is_413_and_over_the_rate_429() {
    let fx = Fixture::with_config(|c| {
        c.push_max_bytes = 2048;
        c.push_batches_per_minute = 2;
    })
    .await;
    let feeder = fx.token(Role::Feeder).to_string();
    // Bigger than the general body limit (64 KiB)? No: bigger than the push's own limit.
    let big: String = (0..20).map(|i| death_line(&format!("B-{i}"))).collect();
    assert!(big.len() > 2048);
    // Announced by Content-Length: refused before the guard, naming the setting.
    let req = Request::builder()
        .method("POST")
        .uri("/api/feeds/civil_registry")
        .header("authorization", format!("Bearer {feeder}"))
        .header("content-type", "application/x-ndjson")
        .header("content-length", big.len().to_string())
        .body(Body::from(big.clone()))
        .expect("request");
    let r = fx.send(req).await;
    assert_eq!(r.status, 413, "{}", r.body);
    assert!(r.body.contains("serve.push_max_bytes"), "{}", r.body);
    // Without Content-Length (as sent in chunks): refused while read.
    let r = push(&fx, FEEDER_SOURCE, &feeder, big).await;
    assert_eq!(r.status, 413, "{}", r.body);
    assert_eq!(r.json()["error"]["code"], "payload_too_large", "{}", r.body);
    // The general limit (64 KiB) is not the push's: a batch over 2 KiB but under 64 KiB was
    // refused above, and one under 2 KiB passes below.
    assert_eq!(pushed(&fx, FEEDER_SOURCE), "");

    // The 413s above were refused before the handler, or counted: two batches a minute at most
    // in all. Send until refused; the refusal is 429 with the setting named.
    let mut statuses = Vec::new();
    for i in 0..3 {
        let r = push(&fx, FEEDER_SOURCE, &feeder, death_line(&format!("R-{i}"))).await;
        statuses.push(r.status.as_u16());
        if r.status == 429 {
            assert!(
                r.body.contains("serve.push_batches_per_minute"),
                "{}",
                r.body
            );
            assert_eq!(r.json()["error"]["code"], "rate_limited");
            break;
        }
    }
    assert_eq!(statuses.last(), Some(&429), "{statuses:?}");
    let accepted = statuses.iter().filter(|s| **s == 200).count();
    assert_eq!(pushed(&fx, FEEDER_SOURCE).lines().count(), accepted);
    // Another feeder has its own quota.
    let other = make_feeder_token(&fx.store, FEEDER_SOURCE).await;
    let r = push(&fx, FEEDER_SOURCE, &other, death_line("R-9")).await;
    assert_eq!(r.status, 200, "{}", r.body);
    fx.finish().await;
}
