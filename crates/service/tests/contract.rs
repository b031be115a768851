//! The server keeps to `schemas/openapi.json` to the letter, request by request: each refusal
//! below has the status the document's rules give it (400 for what the document forbids, 415 for
//! a body that is not JSON, 422 for a rule stated in words), and that status is listed for the
//! operation in the document; what the document allows at its bounds is accepted. The defects of
//! issue 23 item 9 are here one by one (415 and 422 undocumented; `limit` above 500, a visit without
//! a note, a resolution without a category, a silence without hours allowed by the document and
//! refused; an empty `region`, a `null` reason forbidden and accepted).

mod common;

use axum::body::Body;
use axum::http::Request;
use common::{Fixture, Reply};
use doudi_service::{routes, Kind, Role, ServiceConfig, OPENAPI_DOCUMENT};
use serde_json::{json, Value};

fn document() -> Value {
    serde_json::from_str(OPENAPI_DOCUMENT).expect("the document is JSON")
}

/// The operation of `method` and the route template `template`.
fn operation(doc: &Value, method: &str, template: &str) -> Value {
    let op = doc["paths"][template][method.to_ascii_lowercase()].clone();
    assert!(op.is_object(), "{method} {template} is not in the document");
    op
}

/// Assert `r` has `status`, a JSON error with its code where it is an error, and that the document
/// lists the status for the operation.
fn assert_documented(doc: &Value, method: &str, template: &str, r: &Reply, status: u16) {
    assert_eq!(r.status.as_u16(), status, "{method} {template}: {}", r.body);
    let op = operation(doc, method, template);
    assert!(
        op["responses"].get(status.to_string()).is_some(),
        "{method} {template} answered {status}, which schemas/openapi.json does not list"
    );
    if status >= 400 {
        let e = r.json();
        assert_eq!(e["error"]["status"], status, "{}", r.body);
        assert_eq!(
            e["error"]["where"],
            format!("{method} {template}"),
            "{}",
            r.body
        );
    }
}

/// A request with a raw body and an optional content type.
async fn raw(
    fx: &Fixture,
    method: &str,
    uri: &str,
    token: &str,
    content_type: Option<&str>,
    body: &str,
) -> Reply {
    let mut b = Request::builder()
        .method(method)
        .uri(uri)
        .header("authorization", format!("Bearer {token}"));
    if let Some(t) = content_type {
        b = b.header("content-type", t);
    }
    fx.send(b.body(Body::from(body.to_string())).expect("request"))
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_not_sent_as_json_is_415_on_every_route_that_reads_one() {
    let fx = Fixture::new().await;
    let doc = document();
    let w = fx.own.warnings[0];
    let seq = fx.own.review_seq;
    for (template, uri, role) in [
        (
            "/api/warnings/{id}/acknowledge",
            format!("/api/warnings/{w}/acknowledge"),
            Role::Officer,
        ),
        (
            "/api/warnings/{id}/visit",
            format!("/api/warnings/{w}/visit"),
            Role::Officer,
        ),
        (
            "/api/warnings/{id}/resolve",
            format!("/api/warnings/{w}/resolve"),
            Role::Officer,
        ),
        (
            "/api/review/{seq}/decide",
            format!("/api/review/{seq}/decide"),
            Role::Officer,
        ),
        (
            "/api/deadletters/replay",
            "/api/deadletters/replay".to_string(),
            Role::Admin,
        ),
        (
            "/api/silences",
            "/api/silences".to_string(),
            Role::Supervisor,
        ),
    ] {
        let token = fx.token(role);
        for content_type in [
            None,
            Some("text/plain"),
            Some("application/x-www-form-urlencoded"),
        ] {
            let r = raw(&fx, "POST", &uri, token, content_type, r#"{"note":"x"}"#).await;
            assert_documented(&doc, "POST", template, &r, 415);
            assert_eq!(r.json()["error"]["code"], "unsupported_media_type");
        }
    }
    // The acknowledgement's body is optional: nothing sent is no body, and a JSON type with a
    // charset parameter is JSON.
    let r = raw(
        &fx,
        "POST",
        &format!("/api/warnings/{w}/acknowledge"),
        fx.token(Role::Officer),
        None,
        "",
    )
    .await;
    assert_documented(&doc, "POST", "/api/warnings/{id}/acknowledge", &r, 200);
    let r = raw(
        &fx,
        "POST",
        &format!("/api/warnings/{w}/visit"),
        fx.token(Role::Officer),
        Some("application/json; charset=utf-8"),
        r#"{"note":"入户核查：住院治疗中"}"#,
    )
    .await;
    assert_documented(&doc, "POST", "/api/warnings/{id}/visit", &r, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_the_document_forbids_is_400_naming_the_place() {
    let fx = Fixture::new().await;
    let doc = document();
    let w = fx.own.warnings[0];
    let officer = fx.token(Role::Officer);
    let cases: Vec<(&str, String, Role, Value, &str)> = vec![
        // Unknown fields and nulls: one mapping, 400 (axum's own would have been 422).
        (
            "/api/warnings/{id}/acknowledge",
            format!("/api/warnings/{w}/acknowledge"),
            Role::Officer,
            json!({"note": "签收", "urgent": true}),
            "urgent",
        ),
        (
            "/api/deadletters/replay",
            "/api/deadletters/replay".into(),
            Role::Admin,
            json!({"reason": null}),
            "/reason",
        ),
        (
            "/api/deadletters/replay",
            "/api/deadletters/replay".into(),
            Role::Admin,
            json!({"ids": [1, null]}),
            "/ids/1",
        ),
        // A visit needs a note that says something.
        (
            "/api/warnings/{id}/visit",
            format!("/api/warnings/{w}/visit"),
            Role::Officer,
            json!({}),
            "note",
        ),
        // PostgreSQL stores no U+0000: the document forbids it in text, the server refuses it.
        (
            "/api/warnings/{id}/visit",
            format!("/api/warnings/{w}/visit"),
            Role::Officer,
            json!({"note": "入户\u{0}核查"}),
            "/note",
        ),
        (
            "/api/warnings/{id}/visit",
            format!("/api/warnings/{w}/visit"),
            Role::Officer,
            json!({"note": "\u{3000} "}),
            "/note",
        ),
        // A resolution needs what its disposition needs.
        (
            "/api/warnings/{id}/resolve",
            format!("/api/warnings/{w}/resolve"),
            Role::Officer,
            json!({"disposition": "enrolled", "note": "核实"}),
            "category",
        ),
        (
            "/api/warnings/{id}/resolve",
            format!("/api/warnings/{w}/resolve"),
            Role::Officer,
            json!({"disposition": "relief_granted", "amount": "0.00", "note": "临时救助"}),
            "/amount",
        ),
        // A silence needs an end, and lasts at most a year of hours.
        (
            "/api/silences",
            "/api/silences".into(),
            Role::Supervisor,
            json!({"region": fx.own.township, "reason": "防汛"}),
            "hours",
        ),
        (
            "/api/silences",
            "/api/silences".into(),
            Role::Supervisor,
            json!({"region": fx.own.township, "reason": "防汛", "hours": 4_294_967_295u64}),
            "/hours",
        ),
        (
            "/api/silences",
            "/api/silences".into(),
            Role::Supervisor,
            json!({"region": fx.own.township, "reason": "防汛", "hours": 8785}),
            "/hours",
        ),
        (
            "/api/review/{seq}/decide",
            format!("/api/review/{}/decide", fx.own.review_seq),
            Role::Officer,
            json!({"link": fx.own.review_member, "reject": true}),
            "/reject",
        ),
    ];
    for (template, uri, role, body, place) in cases {
        let r = fx
            .api("POST", &uri, Some(fx.token(role)), Some(body.clone()))
            .await;
        assert_documented(&doc, "POST", template, &r, 400);
        let message = r.json()["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        assert!(
            message.contains(place),
            "POST {template} {body}: the message should name {place}: {message}"
        );
    }
    // Malformed JSON.
    let r = raw(
        &fx,
        "POST",
        &format!("/api/warnings/{w}/visit"),
        officer,
        Some("application/json"),
        "{\"note\": ",
    )
    .await;
    assert_documented(&doc, "POST", "/api/warnings/{id}/visit", &r, 400);
    // Nothing above moved the warning.
    let r = fx
        .api("GET", &format!("/api/warnings/{w}"), Some(officer), None)
        .await;
    assert_eq!(r.json()["status"], "open", "{}", r.body);
}

/// `GET` requests of one token, each answer asserted with [`assert_documented`].
struct Getter<'a> {
    fx: &'a Fixture,
    doc: &'a Value,
    token: &'a str,
}

impl Getter<'_> {
    /// `GET uri`, asserted `status` and listed for the operation `template`.
    async fn get(&self, uri: &str, template: &str, status: u16) {
        let r = self.fx.api("GET", uri, Some(self.token), None).await;
        assert_documented(self.doc, "GET", template, &r, status);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn query_and_path_bounds_are_the_documents() {
    let fx = Fixture::new().await;
    let doc = document();
    let max = ServiceConfig::with_rules(doudi_risk::RuleSet::builtin()).max_page_size;
    let (fx, doc) = (&fx, &doc);
    let auditor = Getter {
        fx,
        doc,
        token: fx.token(Role::Auditor),
    };
    for template in ["/api/warnings", "/api/review", "/api/deadletters"] {
        let limit = operation(doc, "GET", template)["parameters"]
            .as_array()
            .and_then(|ps| ps.iter().find(|p| p["name"] == "limit"))
            .map(|p| p["schema"].clone())
            .expect("a limit parameter");
        assert_eq!(
            limit["maximum"], max,
            "{template}: the document's limit bound is the default max_page_size"
        );
        auditor
            .get(&format!("{template}?limit={max}"), template, 200)
            .await;
        let above = max + 1;
        auditor
            .get(&format!("{template}?limit={above}"), template, 400)
            .await;
        auditor
            .get(&format!("{template}?limit=0"), template, 400)
            .await;
    }
    let admin = Getter {
        fx,
        doc,
        token: fx.token(Role::Admin),
    };
    // An empty region or level is not a region or a level; within the bounds: accepted.
    for (query, status) in [
        ("region=", 400),
        ("level=", 400),
        ("region=1234567890123", 400),
        ("offset=-1", 400),
        ("state=", 400),
        ("officer=o-1%00", 400),
        ("region=3", 200),
        ("officer=", 200),
        ("offset=9223372036854775807", 200),
        ("level=red&state=all", 200),
    ] {
        let uri = format!("/api/warnings?{query}");
        admin.get(&uri, "/api/warnings", status).await;
    }
    for template in [
        "/api/households/{id}",
        "/api/households/{id}/timeline",
        "/api/households/{id}/trace",
    ] {
        let uri = template.replace("{id}", "HZ%00-1");
        let r = fx.api_get(Role::Auditor, &uri).await;
        assert_documented(doc, "GET", template, &r, 400);
    }
    // Ids are 64-bit integers: beyond them is not an id (400); within, a warning that is not there (404).
    for (id, status) in [("9223372036854775808", 400), ("-9223372036854775808", 404)] {
        admin
            .get(&format!("/api/warnings/{id}"), "/api/warnings/{id}", status)
            .await;
    }
    for days in ["0", "367"] {
        let uri = format!("/api/regions/341502/overview?days={days}");
        admin.get(&uri, "/api/regions/{code}/overview", 400).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_well_formed_request_refused_by_a_rule_in_words_is_422_and_documented() {
    let fx = Fixture::new().await;
    let doc = document();
    let sup = fx.token(Role::Supervisor);
    // The end before the start: the document can say it only in words.
    let backwards = json!({"region": fx.own.township, "reason": "防汛",
        "from": "2026-06-02T00:00:00+08:00", "until": "2026-06-01T00:00:00+08:00"});
    let r = fx
        .api("POST", "/api/silences", Some(sup), Some(backwards))
        .await;
    assert_documented(&doc, "POST", "/api/silences", &r, 422);
    assert_eq!(r.json()["error"]["code"], "unprocessable");
    // A link to a member who is not among the record's candidates.
    let r = fx
        .api(
            "POST",
            &format!("/api/review/{}/decide", fx.own.review_seq),
            Some(fx.token(Role::Officer)),
            Some(json!({"link": "no-such-member"})),
        )
        .await;
    assert_documented(&doc, "POST", "/api/review/{seq}/decide", &r, 422);
    // A (leap) year of hours is the document's bound, but a silence must also end within a
    // calendar year of its start: from a start in a common year, 8784 hours is a rule in words;
    // at the bound in a leap year: accepted.
    for (from, status) in [("2027-01-01T00:00:00Z", 422), ("2028-01-01T00:00:00Z", 201)] {
        let body =
            json!({"region": fx.own.township, "reason": "防汛", "from": from, "hours": 8784});
        let r = fx.api("POST", "/api/silences", Some(sup), Some(body)).await;
        assert_documented(&doc, "POST", "/api/silences", &r, status);
    }
}

#[test]
fn every_api_operation_documents_its_error_statuses() {
    let doc = document();
    for r in routes().iter().filter(|r| r.kind == Kind::Api) {
        let op = operation(&doc, r.method, r.path);
        let responses = op["responses"].as_object().expect("responses");
        let mut need = vec!["401", "403", "429"];
        if r.method == "POST" {
            need.extend(["400", "413", "415"]);
        }
        if op["parameters"].as_array().is_some_and(|ps| {
            ps.iter()
                .any(|p| p["in"] == "query" || p["schema"]["type"] == "integer")
        }) {
            need.push("400");
        }
        for status in need {
            assert!(
                responses.contains_key(status),
                "{} {} does not document {status}",
                r.method,
                r.path
            );
        }
        if let Some(body) = op.get("requestBody") {
            if let Some(ndjson) = body["content"].get("application/x-ndjson") {
                // The push: lines checked by its handler, one envelope each (tests/push.rs).
                assert_eq!(
                    ndjson["schema"]["type"], "string",
                    "{} {}",
                    r.method, r.path
                );
                assert!(responses.contains_key("422"), "{} {}", r.method, r.path);
                continue;
            }
            let reference = body["content"]["application/json"]["schema"]["$ref"]
                .as_str()
                .expect("a $ref body schema");
            let schema = doc
                .pointer(reference.trim_start_matches('#'))
                .expect("the body schema resolves");
            assert_eq!(
                schema["additionalProperties"], false,
                "{} {}: the server refuses unknown fields, so must the document",
                r.method, r.path
            );
        }
    }
}
