//! `schemas/openapi.json` and the route table stay in step: every API route and probe of the
//! table is in the document with the same method and the same roles (`x-roles`), and the document
//! has no route the server lacks.

use std::collections::BTreeSet;

use doudi_service::{routes, Kind, METRICS_PATH};
use serde_json::Value;

fn document() -> Value {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../schemas/openapi.json");
    let text = std::fs::read_to_string(&path).expect("read schemas/openapi.json");
    serde_json::from_str(&text).expect("schemas/openapi.json is JSON")
}

#[test]
fn every_route_is_in_the_openapi_document_and_nothing_else_is() {
    let doc = document();
    assert_eq!(doc["openapi"], "3.1.0");
    let mut served: BTreeSet<(String, String)> = routes()
        .iter()
        .filter(|r| r.kind != Kind::Page)
        .map(|r| (r.path.to_string(), r.method.to_lowercase()))
        .collect();
    served.insert((METRICS_PATH.to_string(), "get".to_string()));
    let mut documented = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for method in item.as_object().expect("path item").keys() {
            documented.insert((path.clone(), method.clone()));
        }
    }
    let missing: Vec<_> = served.difference(&documented).collect();
    assert!(
        missing.is_empty(),
        "routes served but missing from schemas/openapi.json: {missing:?}"
    );
    let extra: Vec<_> = documented.difference(&served).collect();
    assert!(
        extra.is_empty(),
        "routes in schemas/openapi.json that the server does not serve: {extra:?}"
    );
}

#[test]
fn the_roles_the_document_names_are_the_roles_the_server_admits() {
    let doc = document();
    for r in routes().iter().filter(|r| r.kind != Kind::Page) {
        let op = &doc["paths"][r.path][r.method.to_lowercase()];
        let documented: BTreeSet<&str> = op["x-roles"]
            .as_array()
            .map(|a| a.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        let admitted: BTreeSet<&str> = r.roles.iter().map(|r| r.code()).collect();
        assert_eq!(
            documented, admitted,
            "{} {}: x-roles in schemas/openapi.json differ from the route table",
            r.method, r.path
        );
        let public = op["security"].as_array().is_some_and(Vec::is_empty);
        assert_eq!(
            public,
            r.roles.is_empty(),
            "{} {}: the document and the server disagree on whether it needs a token",
            r.method,
            r.path
        );
        assert!(
            op["summary"].as_str().is_some_and(|s| !s.is_empty()),
            "{} {} has no summary",
            r.method,
            r.path
        );
    }
}

#[test]
fn every_reference_in_the_document_resolves() {
    let doc = document();
    fn refs<'a>(v: &'a Value, out: &mut Vec<&'a str>) {
        match v {
            Value::Object(m) => {
                if let Some(r) = m.get("$ref").and_then(Value::as_str) {
                    out.push(r);
                }
                m.values().for_each(|c| refs(c, out));
            }
            Value::Array(a) => a.iter().for_each(|c| refs(c, out)),
            _ => {}
        }
    }
    let mut all = Vec::new();
    refs(&doc, &mut all);
    assert!(!all.is_empty());
    for r in all {
        let pointer = r.strip_prefix('#').expect("local reference");
        assert!(doc.pointer(pointer).is_some(), "{r} does not resolve");
    }
}

#[test]
fn the_router_builds_from_the_table() {
    // Building panics on overlapping routes or bad templates.
    let dir = tempfile::tempdir().expect("temp dir");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let store =
            doudi_store::Store::open(&format!("sqlite://{}", dir.path().join("t.db").display()))
                .await
                .expect("store");
        let _ = doudi_service::app(doudi_service::AppState::new(
            store,
            doudi_service::ServiceConfig::with_rules(doudi_risk::RuleSet::builtin()),
        ));
    });
}
