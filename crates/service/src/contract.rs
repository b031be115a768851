//! The API's contract at run time: a JSON body is checked against the schema its operation has in
//! `schemas/openapi.json` — the document itself, compiled into the binary — before a handler reads
//! it, so the server refuses exactly what the document forbids and admits what it allows.
//!
//! One place decides how a body is refused, the same way on every route:
//! 415 `unsupported_media_type` without `Content-Type: application/json` (or `…+json`),
//! 413 over `serve.max_body_bytes`, 400 `bad_request` for a body that is not JSON or that the
//! schema refuses (an unknown field, a `null`, a missing field, a value out of bounds), with the
//! place (`at /hours`) in the message. What a rule states only in words is the use case's: 422.

use std::collections::HashMap;
use std::sync::OnceLock;

use axum::body::Bytes;
use axum::extract::{FromRequest, MatchedPath, Request};
use axum::http::header::CONTENT_TYPE;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use boon::{Compiler, Draft, SchemaIndex, Schemas, ValidationError};
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::error::ApiError;

/// The OpenAPI document the server keeps to (`schemas/openapi.json`).
pub const DOCUMENT: &str = include_str!("../../../schemas/openapi.json");

/// The name the document is loaded under (nothing is fetched: every `$ref` is local).
const BASE: &str = "https://doudi.example/schemas/openapi.json";

/// The most schema errors named in one refusal.
const MAX_REASONS: usize = 6;

/// One operation's request body.
struct BodySpec {
    schema: SchemaIndex,
    required: bool,
}

/// The request-body schemas of the document, compiled.
pub struct Contract {
    schemas: Schemas,
    /// By lower-case method and route template (`post`, `/api/silences`).
    bodies: HashMap<(String, String), BodySpec>,
}

impl Contract {
    /// Compile every operation's `application/json` request body of [`DOCUMENT`].
    pub fn load() -> Result<Contract, String> {
        let doc: Value = serde_json::from_str(DOCUMENT)
            .map_err(|e| format!("schemas/openapi.json is not JSON: {e}"))?;
        let mut compiler = Compiler::new();
        compiler.set_default_draft(Draft::V2020_12);
        compiler.enable_format_assertions();
        compiler
            .add_resource(BASE, doc.clone())
            .map_err(|e| format!("schemas/openapi.json: {e}"))?;
        let mut schemas = Schemas::new();
        let mut bodies = HashMap::new();
        let paths = doc["paths"]
            .as_object()
            .ok_or("schemas/openapi.json has no paths")?;
        for (path, item) in paths {
            let Some(item) = item.as_object() else {
                return Err(format!("schemas/openapi.json: {path} is not an object"));
            };
            for (method, op) in item {
                let Some(body) = op.get("requestBody") else {
                    continue;
                };
                // A body of another type (the push's `application/x-ndjson`) is read and
                // checked by its handler, line by line.
                if body["content"].get("application/json").is_none()
                    && body["content"].as_object().is_some_and(|c| !c.is_empty())
                {
                    continue;
                }
                let reference = body["content"]["application/json"]["schema"]["$ref"]
                    .as_str()
                    .ok_or_else(|| {
                        format!(
                            "{method} {path}: the request body must be application/json with a \
                             $ref to #/components/schemas/…"
                        )
                    })?;
                let schema = compiler
                    .compile(&format!("{BASE}{reference}"), &mut schemas)
                    .map_err(|e| format!("{method} {path}: {reference}: {e}"))?;
                let required = body["required"].as_bool().unwrap_or(false);
                bodies.insert(
                    (method.to_ascii_lowercase(), path.clone()),
                    BodySpec { schema, required },
                );
            }
        }
        Ok(Contract { schemas, bodies })
    }

    /// Check `value` as the body of `method path`: `Err` says what is wrong and where.
    pub fn check_body(&self, method: &str, path: &str, value: &Value) -> Result<(), ApiError> {
        let spec = self.spec(method, path)?;
        self.schemas
            .validate(value, spec.schema)
            .map_err(|e| ApiError::BadRequest(refusal(&e)))
    }

    fn spec(&self, method: &str, path: &str) -> Result<&BodySpec, ApiError> {
        self.bodies
            .get(&(method.to_ascii_lowercase(), path.to_string()))
            .ok_or_else(|| {
                ApiError::Internal(format!(
                    "{method} {path} reads a body that schemas/openapi.json does not describe"
                ))
            })
    }
}

/// The compiled contract (once per process).
pub fn contract() -> Result<&'static Contract, ApiError> {
    static CONTRACT: OnceLock<Result<Contract, String>> = OnceLock::new();
    CONTRACT
        .get_or_init(Contract::load)
        .as_ref()
        .map_err(|e| ApiError::Internal(e.clone()))
}

/// The deepest reasons of a schema refusal, each with its place in the body.
fn refusal(e: &ValidationError<'_, '_>) -> String {
    fn leaves(e: &ValidationError<'_, '_>, out: &mut Vec<String>) {
        if e.causes.is_empty() {
            let at = e.instance_location.to_string();
            let at = if at.is_empty() { "/".to_string() } else { at };
            out.push(format!("at {at}: {}", e.kind));
        } else {
            e.causes.iter().for_each(|c| leaves(c, out));
        }
    }
    let mut reasons = Vec::new();
    leaves(e, &mut reasons);
    reasons.dedup();
    let more = reasons.len().saturating_sub(MAX_REASONS);
    reasons.truncate(MAX_REASONS);
    let mut text = format!(
        "the body does not match the schema in schemas/openapi.json: {}",
        reasons.join("; ")
    );
    if more > 0 {
        text.push_str(&format!(" (and {more} more)"));
    }
    text
}

/// Whether the request says its body is JSON (`application/json` or `application/…+json`).
fn is_json(headers: &HeaderMap) -> bool {
    let Some(value) = headers.get(CONTENT_TYPE).and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let essence = value
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    essence == "application/json"
        || (essence.starts_with("application/") && essence.ends_with("+json"))
}

/// JSON Schema counts `2.0` as an integer (the document says `"type": "integer"`, and its bounds
/// were checked): make integral numbers integers, so that the body reads as the schema admitted it.
fn integral(v: &mut Value) {
    match v {
        Value::Number(n) if n.is_f64() => {
            if let Some(f) = n.as_f64().filter(|f| f.fract() == 0.0) {
                // Exact below 2^53: the document bounds every integer of a body within it, so a
                // literal too long for a 64-bit integer (read as a float) was refused already.
                if f.abs() <= 9_007_199_254_740_992.0 {
                    *v = Value::from(f as i64);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(integral),
        Value::Object(fields) => fields.values_mut().for_each(integral),
        _ => {}
    }
}

/// A JSON body checked against the document (required: a missing body is refused).
pub struct Checked<T>(pub T);

/// An optional JSON body checked against the document: no body (nothing sent) is `None`.
pub struct MaybeChecked<T>(pub Option<T>);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for Checked<T> {
    type Rejection = Response;

    async fn from_request(req: Request, state: &S) -> Result<Self, Response> {
        match read(req, state).await? {
            Some(v) => Ok(Checked(v)),
            None => {
                Err(ApiError::BadRequest("this request needs a JSON body".into()).into_response())
            }
        }
    }
}

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for MaybeChecked<T> {
    type Rejection = Response;

    async fn from_request(req: Request, state: &S) -> Result<Self, Response> {
        read(req, state).await.map(MaybeChecked)
    }
}

/// Read the body of `req` as its operation in the document says: `None` for no body where the
/// body is optional.
async fn read<S: Send + Sync, T: DeserializeOwned>(
    req: Request,
    state: &S,
) -> Result<Option<T>, Response> {
    let method = req.method().as_str().to_ascii_lowercase();
    let path = req
        .extensions()
        .get::<MatchedPath>()
        .map(|m| m.as_str().to_owned())
        .unwrap_or_else(|| req.uri().path().to_owned());
    let contract = contract().map_err(IntoResponse::into_response)?;
    let spec = contract
        .spec(&method, &path)
        .map_err(IntoResponse::into_response)?;
    let json = is_json(req.headers());
    let typed = req.headers().contains_key(CONTENT_TYPE);
    // Over the body limit: axum's rejection, 413.
    let bytes = Bytes::from_request(req, state)
        .await
        .map_err(IntoResponse::into_response)?;
    if bytes.is_empty() && !spec.required && (json || !typed) {
        return Ok(None);
    }
    if !json {
        return Err(ApiError::UnsupportedMediaType(
            "send the body as JSON with `Content-Type: application/json`".into(),
        )
        .into_response());
    }
    let value: Value = serde_json::from_slice(&bytes)
        .map_err(|e| ApiError::BadRequest(format!("the body is not JSON: {e}")).into_response())?;
    contract
        .check_body(&method, &path, &value)
        .map_err(IntoResponse::into_response)?;
    let mut value = value;
    integral(&mut value);
    serde_json::from_value(value).map(Some).map_err(|e| {
        ApiError::BadRequest(format!("the body does not fit this request: {e}")).into_response()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn check(method: &str, path: &str, v: Value) -> Result<(), String> {
        Contract::load()
            .expect("the document compiles")
            .check_body(method, path, &v)
            .map_err(|e| e.to_string())
    }

    #[test]
    fn the_document_compiles_with_a_schema_for_every_request_body() {
        let c = Contract::load().expect("schemas/openapi.json compiles");
        for (method, path) in [
            ("post", "/api/warnings/{id}/acknowledge"),
            ("post", "/api/warnings/{id}/visit"),
            ("post", "/api/warnings/{id}/resolve"),
            ("post", "/api/review/{seq}/decide"),
            ("post", "/api/deadletters/replay"),
            ("post", "/api/silences"),
        ] {
            assert!(c.spec(method, path).is_ok(), "{method} {path}");
        }
        assert!(!c
            .spec("post", "/api/warnings/{id}/acknowledge")
            .map(|s| s.required)
            .unwrap_or(true));
    }

    #[test]
    fn unknown_fields_nulls_and_missing_fields_are_refused_with_their_place() {
        // Each refused body, and the place (or field) its message names.
        for (path, body, place) in [
            (
                "/api/deadletters/replay",
                json!({"reason": null}),
                "at /reason",
            ),
            ("/api/deadletters/replay", json!({"why": "x"}), "why"),
            ("/api/warnings/{id}/visit", json!({}), "note"),
            (
                "/api/warnings/{id}/visit",
                json!({"note": " \u{3000}\t"}),
                "at /note",
            ),
            (
                "/api/deadletters/replay",
                json!({"reason": "a\u{0}b"}),
                "at /reason",
            ),
        ] {
            let e = check("post", path, body).unwrap_err();
            assert!(e.contains(place), "{e}");
        }
        let visit = json!({"note": " 已入户 "});
        assert!(check("post", "/api/warnings/{id}/visit", visit).is_ok());
    }

    #[test]
    fn a_resolution_needs_what_its_disposition_needs() {
        let r = |v: Value| check("post", "/api/warnings/{id}/resolve", v);
        assert!(r(json!({"disposition": "enrolled", "note": "核实"})).is_err());
        assert!(r(json!({"disposition": "enrolled", "category": "dibao", "note": "核实"})).is_ok());
        assert!(r(json!({"disposition": "enrolled", "category": "gold", "note": "核实"})).is_err());
        assert!(r(
            json!({"disposition": "relief_granted", "amount": "1500.50", "note": "临时救助"})
        )
        .is_ok());
        for bad in ["0", "0.00", "1.234", " 20", "-5", "1e3", "1234567890123456"] {
            assert!(
                r(json!({"disposition": "relief_granted", "amount": bad, "note": "临时救助"}))
                    .is_err(),
                "amount {bad:?}"
            );
        }
        assert!(r(json!({"disposition": "referred", "department": " ", "note": "x"})).is_err());
        assert!(r(json!({"disposition": "false_alarm", "note": "x"})).is_ok());
        assert!(r(json!({"disposition": "false_alarm"})).is_err());
    }

    #[test]
    fn a_silence_names_one_target_and_one_end_within_a_year_of_hours() {
        let s = |v: Value| check("post", "/api/silences", v);
        assert!(s(json!({"region": "341502", "reason": "防汛", "hours": 8784})).is_ok());
        assert!(s(json!({"region": "341502", "reason": "防汛", "hours": 8785})).is_err());
        assert!(s(json!({"region": "341502", "reason": "防汛", "hours": 0})).is_err());
        assert!(
            s(json!({"region": "341502", "reason": "防汛"})).is_err(),
            "no end"
        );
        assert!(s(json!({"region": "341502", "reason": "防汛", "hours": 2,
            "until": "2026-01-01T00:00:00Z"}))
        .is_err());
        assert!(
            s(json!({"reason": "防汛", "hours": 2})).is_err(),
            "no target"
        );
        assert!(s(json!({"region": "3415", "reason": "防汛", "hours": 2})).is_err());
        assert!(s(json!({"household": "HZ-1", "reason": "防汛",
            "until": "2026-01-01T00:00:00+08:00"}))
        .is_ok());
        assert!(s(json!({"household": "HZ-1", "reason": "防汛", "until": "tomorrow"})).is_err());
    }

    #[test]
    fn integral_numbers_read_as_integers_as_the_schema_counts_them() {
        let mut v = json!({"ids": [1.0, -1602154.0, 2.5, 7], "hours": 48.0});
        integral(&mut v);
        assert_eq!(v, json!({"ids": [1, -1602154, 2.5, 7], "hours": 48}));
        assert!(check(
            "post",
            "/api/silences",
            json!({"region": "341502", "reason": "r", "hours": 2.0})
        )
        .is_ok());
        assert!(check(
            "post",
            "/api/silences",
            json!({"region": "341502", "reason": "r", "hours": 2.5})
        )
        .is_err());
    }

    #[test]
    fn integers_too_long_for_64_bits_are_refused_not_rounded() {
        let replay = |text: &str| {
            let v: Value = serde_json::from_str(text).expect("JSON");
            check("post", "/api/deadletters/replay", v)
        };
        assert!(replay(r#"{"ids": [-9223372036854775809]}"#).is_err());
        assert!(replay(r#"{"ids": [18446744073709551616]}"#).is_err());
        assert!(replay(r#"{"ids": [9007199254740992]}"#).is_err());
        assert!(replay(r#"{"ids": [0]}"#).is_err());
        assert!(replay(r#"{"ids": [1, 9007199254740991]}"#).is_ok());
    }

    #[test]
    fn a_review_decision_links_or_rejects() {
        let d = |v: Value| check("post", "/api/review/{seq}/decide", v);
        assert!(d(json!({"link": "M-1"})).is_ok());
        assert!(d(json!({"link": "M-1", "reject": false})).is_ok());
        assert!(d(json!({"reject": true, "note": "不是本人"})).is_ok());
        assert!(d(json!({"link": "M-1", "reject": true})).is_err());
        assert!(d(json!({"reject": false})).is_err());
        assert!(d(json!({})).is_err());
    }
}
