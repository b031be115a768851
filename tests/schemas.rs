//! The published JSON Schemas (`schemas/`) and the Rust model must say the same thing.
//!
//! Departments validate their feeds against the schemas; doudi parses with `doudi_model`. If the
//! two drift apart, a feed passes its own checks and is then refused (or the reverse), so this test
//! holds them together from both sides:
//!
//! * every kind in `ALL_KINDS` has a schema and an example, and there is no schema for a kind that
//!   does not exist;
//! * every example passes both its schema and the parser; every invalid example fails both;
//! * for each kind, an unknown `data` field, a missing required field, a missing optional field and a
//!   `null` in any field are judged the same way by the schema and by the parser;
//! * the same for the register import (`Household`).
//!
//! The schemas are loaded under their `$id`s, so relative `$ref`s resolve without any network.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use boon::{Compiler, SchemaIndex, Schemas};
use doudi_model::{parse_event, Household, ParseLimits, ALL_KINDS, ALL_SOURCES};
use serde_json::{json, Value};

const BASE_URL: &str = "https://doudi.example/schemas/";
const DRAFT_2020_12: &str = "https://json-schema.org/draft/2020-12/schema";
const ANY_EVENT: &str = "events/event.schema.json";
const ENVELOPE: &str = "events/envelope.schema.json";
const HOUSEHOLD: &str = "register/household.schema.json";

fn schemas_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("schemas")
}

fn kind_schema(kind: &str) -> String {
    format!("events/{kind}.schema.json")
}

/// Files directly in `dir` whose names end with `suffix`, by name.
fn files_in(dir: &Path, suffix: &str) -> BTreeMap<String, PathBuf> {
    let entries =
        fs::read_dir(dir).unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()));
    entries
        .map(|e| e.expect("directory entry").path())
        .filter(|p| p.is_file())
        .filter_map(|p| {
            let name = p.file_name()?.to_str()?.to_string();
            name.ends_with(suffix).then_some((name, p))
        })
        .collect()
}

fn read_json(path: &Path) -> Value {
    let bytes = fs::read(path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    serde_json::from_slice(&bytes).unwrap_or_else(|e| panic!("{} is not JSON: {e}", path.display()))
}

/// Every schema document under `schemas/` (not the examples), keyed by its path relative to
/// `schemas/` with forward slashes.
fn schema_documents() -> BTreeMap<String, Value> {
    fn walk(dir: &Path, prefix: &str, out: &mut BTreeMap<String, Value>) {
        for entry in fs::read_dir(dir).expect("list schemas dir") {
            let path = entry.expect("directory entry").path();
            let name = path
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or("")
                .to_string();
            if path.is_dir() {
                if name != "examples" {
                    walk(&path, &format!("{prefix}{name}/"), out);
                }
            } else if name.ends_with(".schema.json") {
                out.insert(format!("{prefix}{name}"), read_json(&path));
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(&schemas_dir(), "", &mut out);
    out
}

/// All schemas, compiled once with format assertions on.
struct Catalogue {
    documents: BTreeMap<String, Value>,
    schemas: Schemas,
    compiled: BTreeMap<String, SchemaIndex>,
}

impl Catalogue {
    fn get() -> &'static Catalogue {
        static CATALOGUE: OnceLock<Catalogue> = OnceLock::new();
        CATALOGUE.get_or_init(Catalogue::load)
    }

    fn load() -> Catalogue {
        let documents = schema_documents();
        let mut compiler = Compiler::new();
        compiler.enable_format_assertions();
        for (rel, doc) in &documents {
            let id = doc["$id"]
                .as_str()
                .unwrap_or_else(|| panic!("{rel} has no $id"));
            assert_eq!(
                id,
                format!("{BASE_URL}{rel}"),
                "{rel}: $id must name the file's own path"
            );
            assert_eq!(
                doc["$schema"], DRAFT_2020_12,
                "{rel}: $schema must be draft 2020-12"
            );
            compiler
                .add_resource(id, doc.clone())
                .expect("add schema resource");
        }
        let mut schemas = Schemas::new();
        let compiled = documents
            .keys()
            .map(|rel| {
                let index = compiler
                    .compile(&format!("{BASE_URL}{rel}"), &mut schemas)
                    .unwrap_or_else(|e| panic!("{rel} does not compile: {e:#}"));
                (rel.clone(), index)
            })
            .collect();
        Catalogue {
            documents,
            schemas,
            compiled,
        }
    }

    fn document(&self, rel: &str) -> &Value {
        self.documents
            .get(rel)
            .unwrap_or_else(|| panic!("no schema {rel}"))
    }

    /// What the schema `rel` says of `instance`.
    fn verdict(&self, rel: &str, instance: &Value) -> Result<(), String> {
        let index = self
            .compiled
            .get(rel)
            .unwrap_or_else(|| panic!("no schema {rel}"));
        self.schemas
            .validate(instance, *index)
            .map_err(|e| format!("{e}"))
    }

    /// The `data` schema of a kind.
    fn data_schema(&self, kind: &str) -> &Value {
        let data = &self.document(&kind_schema(kind))["properties"]["data"];
        assert!(
            data.is_object(),
            "{kind}: the schema has no properties.data"
        );
        data
    }

    fn data_required(&self, kind: &str) -> BTreeSet<String> {
        names(&self.data_schema(kind)["required"])
    }

    fn data_properties(&self, kind: &str) -> BTreeSet<String> {
        keys(&self.data_schema(kind)["properties"])
    }
}

fn names(list: &Value) -> BTreeSet<String> {
    list.as_array()
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(String::from)
                .collect()
        })
        .unwrap_or_default()
}

fn keys(object: &Value) -> BTreeSet<String> {
    object
        .as_object()
        .map(|o| o.keys().cloned().collect())
        .unwrap_or_default()
}

/// What `parse_event` says of the bytes.
fn parser_verdict(bytes: &[u8]) -> Result<doudi_model::Event, String> {
    parse_event(bytes, &ParseLimits::default()).map_err(|e| e.to_string())
}

/// What the register import says: serde, then `Household::validate`.
fn register_verdict(bytes: &[u8]) -> Result<Household, String> {
    let household: Household = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
    household.validate().map_err(|e| e.to_string())?;
    Ok(household)
}

fn kinds() -> impl Iterator<Item = &'static str> {
    ALL_KINDS.iter().map(|(_, k)| *k)
}

fn event_example(kind: &str) -> Value {
    read_json(
        &schemas_dir()
            .join("examples/events")
            .join(format!("{kind}.json")),
    )
}

fn household_example() -> Value {
    read_json(&schemas_dir().join("examples/register/household.json"))
}

/// Both the kind's schema and the parser must accept (`true`) or refuse (`false`) `event`.
fn assert_both(kind: &str, event: &Value, accept: bool, what: &str) {
    let cat = Catalogue::get();
    let schema = cat.verdict(&kind_schema(kind), event);
    let any = cat.verdict(ANY_EVENT, event);
    let parser = parser_verdict(&serde_json::to_vec(event).expect("serialise"));
    assert_eq!(
        schema.is_ok(),
        accept,
        "{kind}, {what}: kind schema says {schema:?}"
    );
    assert_eq!(
        any.is_ok(),
        accept,
        "{kind}, {what}: event.schema.json says {any:?}"
    );
    assert_eq!(
        parser.is_ok(),
        accept,
        "{kind}, {what}: parse_event says {:?}",
        parser.err()
    );
}

fn assert_both_household(household: &Value, accept: bool, what: &str) {
    let schema = Catalogue::get().verdict(HOUSEHOLD, household);
    let rust = register_verdict(&serde_json::to_vec(household).expect("serialise"));
    assert_eq!(
        schema.is_ok(),
        accept,
        "household, {what}: schema says {schema:?}"
    );
    assert_eq!(
        rust.is_ok(),
        accept,
        "household, {what}: register import says {:?}",
        rust.err()
    );
}

#[test]
fn every_schema_compiles_under_the_id_of_its_own_path() {
    let cat = Catalogue::get();
    for rel in ["common.schema.json", ENVELOPE, ANY_EVENT, HOUSEHOLD] {
        assert!(cat.compiled.contains_key(rel), "{rel} is missing");
    }
}

#[test]
fn every_kind_has_a_schema_and_an_example() {
    let known: BTreeSet<&str> = kinds().collect();
    assert_eq!(known.len(), ALL_KINDS.len(), "ALL_KINDS repeats a kind");
    // Files first, so that a new kind without a schema fails with a plain message.
    for kind in kinds() {
        let schema = schemas_dir().join(kind_schema(kind));
        assert!(
            schema.is_file(),
            "kind {kind} has no schema: add {}",
            schema.display()
        );
        let example = schemas_dir()
            .join("examples/events")
            .join(format!("{kind}.json"));
        assert!(
            example.is_file(),
            "kind {kind} has no example: add {}",
            example.display()
        );
    }

    let cat = Catalogue::get();
    for (source, kind) in ALL_KINDS {
        let rel = kind_schema(kind);
        let doc = cat.document(&rel);
        assert_eq!(
            doc["properties"]["source"]["const"],
            source.code(),
            "{rel}: source const"
        );
        assert_eq!(
            doc["properties"]["kind"]["const"], kind,
            "{rel}: kind const"
        );
        assert_eq!(
            doc["allOf"][0]["$ref"], "envelope.schema.json",
            "{rel}: must build on the envelope"
        );
        let data = cat.data_schema(kind);
        assert_eq!(
            data["additionalProperties"], false,
            "{rel}: data must refuse unknown fields"
        );
        assert!(
            cat.data_required(kind)
                .is_subset(&cat.data_properties(kind)),
            "{rel}: a required field is not described in properties"
        );
    }

    // Nothing for a kind that is not in ALL_KINDS.
    let shared: BTreeSet<&str> = ["envelope", "event"].into();
    for name in files_in(&schemas_dir().join("events"), ".schema.json").keys() {
        let stem = name.trim_end_matches(".schema.json");
        assert!(
            known.contains(stem) || shared.contains(stem),
            "schemas/events/{name} is for a kind that doudi_model::ALL_KINDS does not have"
        );
    }
    for name in files_in(&schemas_dir().join("examples/events"), "").keys() {
        let stem = name.strip_suffix(".json").unwrap_or(name);
        assert!(
            known.contains(stem),
            "schemas/examples/events/{name} is for no known kind"
        );
    }
}

#[test]
fn the_any_event_schema_lists_exactly_the_known_kinds_and_sources() {
    let cat = Catalogue::get();
    let any = cat.document(ANY_EVENT);
    let enumerated = names(&any["properties"]["kind"]["enum"]);
    let known: BTreeSet<String> = kinds().map(String::from).collect();
    assert_eq!(
        enumerated, known,
        "event.schema.json kind enum differs from ALL_KINDS"
    );

    let mut dispatched = BTreeSet::new();
    for branch in any["allOf"].as_array().expect("allOf").iter().skip(1) {
        let kind = branch["if"]["properties"]["kind"]["const"]
            .as_str()
            .expect("if kind const");
        assert_eq!(
            branch["then"]["$ref"],
            format!("{kind}.schema.json"),
            "branch for {kind}"
        );
        dispatched.insert(kind.to_string());
    }
    assert_eq!(
        dispatched, known,
        "event.schema.json does not dispatch every kind once"
    );

    let sources = names(&cat.document(ENVELOPE)["properties"]["source"]["enum"]);
    let known_sources: BTreeSet<String> =
        ALL_SOURCES.iter().map(|s| s.code().to_string()).collect();
    assert_eq!(
        sources, known_sources,
        "envelope source enum differs from ALL_SOURCES"
    );
}

#[test]
fn every_event_example_passes_its_schema_and_parses_to_the_same_kind() {
    let cat = Catalogue::get();
    for (source, kind) in ALL_KINDS {
        let path = schemas_dir()
            .join("examples/events")
            .join(format!("{kind}.json"));
        let bytes = fs::read(&path).expect("read example");
        let value: Value = serde_json::from_slice(&bytes).expect("example is JSON");
        if let Err(e) = cat.verdict(&kind_schema(kind), &value) {
            panic!("{}: {e}", path.display());
        }
        if let Err(e) = cat.verdict(ANY_EVENT, &value) {
            panic!("{} against event.schema.json: {e}", path.display());
        }
        let event = parser_verdict(&bytes).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert_eq!(event.kind(), kind, "{}", path.display());
        assert_eq!(event.source, source, "{}", path.display());

        // What doudi writes back (the normalised event) is itself a valid event.
        let normalised: Value = serde_json::from_str(&event.to_json()).expect("normalised JSON");
        if let Err(e) = cat.verdict(&kind_schema(kind), &normalised) {
            panic!("{kind}: the normalised event fails the schema: {e}");
        }
    }
}

/// Examples that fill every field the schema lists show that the schema names no field the Rust
/// type lacks (the parser refuses unknown fields).
#[test]
fn every_event_example_fills_every_field_its_schema_lists() {
    let cat = Catalogue::get();
    let subject_fields = keys(&cat.document(ENVELOPE)["properties"]["subject"]["properties"]);
    for kind in kinds() {
        let example = event_example(kind);
        for field in cat.data_properties(kind) {
            let value = &example["data"][&field];
            assert!(
                !value.is_null(),
                "examples/events/{kind}.json lacks data.{field}"
            );
        }
        for field in &subject_fields {
            let value = &example["subject"][field];
            assert!(
                !value.is_null(),
                "examples/events/{kind}.json lacks subject.{field}"
            );
        }
    }
}

#[test]
fn the_register_example_passes_the_schema_and_the_register_checks() {
    let path = schemas_dir().join("examples/register/household.json");
    let bytes = fs::read(&path).expect("read household example");
    let value: Value = serde_json::from_slice(&bytes).expect("household example is JSON");
    if let Err(e) = Catalogue::get().verdict(HOUSEHOLD, &value) {
        panic!("{}: {e}", path.display());
    }
    let household = register_verdict(&bytes).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert!(!household.members.is_empty());

    // The schema names no field the Rust types lack: the example uses them all.
    let doc = Catalogue::get().document(HOUSEHOLD);
    for field in keys(&doc["properties"]) {
        assert!(
            value.get(&field).is_some(),
            "household example lacks {field}"
        );
    }
    for field in keys(&doc["$defs"]["member"]["properties"]) {
        let used = value["members"]
            .as_array()
            .expect("members")
            .iter()
            .any(|m| m.get(&field).is_some());
        assert!(used, "household example has no member with {field}");
    }
}

/// The files named in the first column of the invalid examples' README tables (`` | `x.json` | ``).
fn notes_in_readme(readme: &str) -> BTreeSet<String> {
    readme
        .lines()
        .filter_map(|line| line.trim().strip_prefix("| `"))
        .filter_map(|rest| rest.split_once('`'))
        .map(|(name, _)| name.to_string())
        .collect()
}

#[test]
fn every_invalid_example_is_rejected_by_both_the_schema_and_the_parser() {
    let cat = Catalogue::get();
    let dir = schemas_dir().join("examples/invalid");
    let events = files_in(&dir, ".json");
    let households = files_in(&dir.join("register"), ".json");
    assert!(events.len() >= 4, "expected several invalid event examples");
    assert!(!households.is_empty(), "expected invalid register examples");

    for (name, path) in &events {
        let bytes = fs::read(path).expect("read");
        let value: Value = serde_json::from_slice(&bytes).unwrap_or_else(|e| {
            panic!("invalid/{name} must still be JSON, so both sides judge it: {e}")
        });
        assert!(
            cat.verdict(ANY_EVENT, &value).is_err(),
            "event.schema.json accepts invalid/{name}"
        );
        if let Some(kind) = value["kind"].as_str().filter(|k| kinds().any(|x| x == *k)) {
            assert!(
                cat.verdict(&kind_schema(kind), &value).is_err(),
                "{kind}.schema.json accepts invalid/{name}"
            );
        }
        if let Ok(event) = parser_verdict(&bytes) {
            panic!("parse_event accepts invalid/{name} as {}", event.kind());
        }
    }
    for (name, path) in &households {
        let bytes = fs::read(path).expect("read");
        let value: Value =
            serde_json::from_slice(&bytes).expect("invalid register example is JSON");
        assert!(
            cat.verdict(HOUSEHOLD, &value).is_err(),
            "household schema accepts invalid/register/{name}"
        );
        assert!(
            register_verdict(&bytes).is_err(),
            "register import accepts invalid/register/{name}"
        );
    }

    // Every invalid example says why in the README, and the README names no missing file.
    let readme =
        fs::read_to_string(dir.join("README.md")).expect("schemas/examples/invalid/README.md");
    let noted = notes_in_readme(&readme);
    let present: BTreeSet<String> = events
        .keys()
        .cloned()
        .chain(households.keys().map(|n| format!("register/{n}")))
        .collect();
    let unexplained: Vec<_> = present.difference(&noted).collect();
    let stale: Vec<_> = noted.difference(&present).collect();
    assert!(
        unexplained.is_empty(),
        "invalid examples without a note in README.md: {unexplained:?}"
    );
    assert!(
        stale.is_empty(),
        "README.md notes files that do not exist: {stale:?}"
    );
}

#[test]
fn an_unknown_data_field_is_rejected_by_both_for_every_kind() {
    for kind in kinds() {
        let mut event = event_example(kind);
        event["data"]["remarks_unknown_to_doudi"] = json!("备注");
        assert_both(kind, &event, false, "unknown field in data");
    }
}

#[test]
fn a_missing_required_data_field_is_rejected_by_both_for_every_kind() {
    let cat = Catalogue::get();
    for kind in kinds() {
        let required = cat.data_required(kind);
        assert!(!required.is_empty(), "{kind}: no required data fields?");
        for field in required {
            let mut event = event_example(kind);
            event["data"]
                .as_object_mut()
                .expect("data object")
                .remove(&field);
            assert_both(kind, &event, false, &format!("without data.{field}"));
        }
    }
}

#[test]
fn a_missing_optional_data_field_is_accepted_by_both_for_every_kind() {
    let cat = Catalogue::get();
    for kind in kinds() {
        let required = cat.data_required(kind);
        for field in cat.data_properties(kind).difference(&required) {
            let mut event = event_example(kind);
            event["data"]
                .as_object_mut()
                .expect("data object")
                .remove(field);
            assert_both(
                kind,
                &event,
                true,
                &format!("without optional data.{field}"),
            );
        }
    }
}

/// Rust reads `null` as absent for `Option` fields and refuses it elsewhere; the schemas must agree
/// field by field.
#[test]
fn null_in_any_data_field_is_judged_the_same_by_schema_and_parser() {
    let cat = Catalogue::get();
    for kind in kinds() {
        for field in cat.data_properties(kind) {
            let mut event = event_example(kind);
            event["data"][&field] = Value::Null;
            let schema = cat.verdict(&kind_schema(kind), &event);
            let parser = parser_verdict(&serde_json::to_vec(&event).expect("serialise"));
            assert_eq!(
                schema.is_ok(),
                parser.is_ok(),
                "{kind}: data.{field} = null: schema says {schema:?}, parse_event says {:?}",
                parser.err()
            );
        }
    }
}

#[test]
fn envelope_edge_cases_are_judged_the_same_by_schema_and_parser() {
    let base = event_example("divorce");
    let with = |pointer: &str, value: Value| {
        let mut e = base.clone();
        *e.pointer_mut(pointer)
            .unwrap_or_else(|| panic!("no {pointer} in the example")) = value;
        e
    };
    let without = |field: &str| {
        let mut e = base.clone();
        e.as_object_mut().expect("object").remove(field);
        e
    };
    #[rustfmt::skip]
    let cases: Vec<(&str, Value, bool)> = vec![
        ("the example itself", base.clone(), true),
        ("event_id of 128 characters", with("/event_id", json!("x".repeat(128))), true),
        ("event_id of 129 characters", with("/event_id", json!("x".repeat(129))), false),
        ("event_id with inner spaces", with("/event_id", json!("MZ LH 2026 47")), true),
        ("empty event_id", with("/event_id", json!("")), false),
        ("blank event_id", with("/event_id", json!("   ")), false),
        ("event_id with a control character", with("/event_id", json!("MZ\u{7}47")), false),
        ("event_id as a number", with("/event_id", json!(47)), false),
        ("source in capitals", with("/source", json!("CIVIL_REGISTRY")), false),
        ("source of another kind", with("/source", json!("housing")), false),
        ("occurred_at in UTC", with("/occurred_at", json!("2026-02-27T07:40:00Z")), true),
        ("occurred_at with fractions", with("/occurred_at", json!("2026-02-27T15:40:00.250+08:00")), true),
        ("occurred_at without offset", with("/occurred_at", json!("2026-02-27T15:40:00")), false),
        ("occurred_at as a date", with("/occurred_at", json!("2026-02-27")), false),
        ("occurred_at on 30 February", with("/occurred_at", json!("2026-02-30T15:40:00+08:00")), false),
        ("occurred_at as epoch seconds", with("/occurred_at", json!(1772178000)), false),
        ("subject null", with("/subject", Value::Null), true),
        ("subject empty", with("/subject", json!({})), true),
        ("subject as text", with("/subject", json!("李建国")), false),
        ("subject name null", with("/subject/name", Value::Null), true),
        ("subject sex null", with("/subject/sex", Value::Null), true),
        ("subject sex unknown word", with("/subject/sex", json!("unknown")), false),
        ("subject id_number invalid but kept", with("/subject/id_number", json!("34240119680722013")), true),
        ("subject county code", with("/subject/region_code", json!("341502")), true),
        ("subject township code", with("/subject/region_code", json!("341502001")), true),
        ("subject region of 7 digits", with("/subject/region_code", json!("3415020")), false),
        ("subject region with letters", with("/subject/region_code", json!("34150A")), false),
        ("subject region in full-width digits", with("/subject/region_code", json!("３４１５０２")), false),
        ("subject born 29 Feb of a common year", with("/subject/birth_date", json!("1967-02-29")), false),
        ("subject born 29 Feb of a leap year", with("/subject/birth_date", json!("1968-02-29")), true),
        ("data null", with("/data", Value::Null), false),
        ("without subject", without("subject"), true),
        ("without event_id", without("event_id"), false),
        ("without source", without("source"), false),
        ("without kind", without("kind"), false),
        ("without occurred_at", without("occurred_at"), false),
        ("without data", without("data"), false),
    ];
    for (what, event, accept) in cases {
        assert_both("divorce", &event, accept, what);
    }
}

#[test]
fn value_edge_cases_are_judged_the_same_by_schema_and_parser() {
    #[rustfmt::skip]
    let cases: Vec<(&str, &str, Value, bool)> = vec![
        ("settlement", "/data/out_of_pocket_fen", json!(0), true),
        ("settlement", "/data/total_cost_fen", json!(i64::MAX), true),
        ("settlement", "/data/out_of_pocket_fen", json!(-1), false),
        ("settlement", "/data/out_of_pocket_fen", json!(17512.5), false),
        ("settlement", "/data/out_of_pocket_fen", json!("1751200"), false),
        ("settlement", "/data/diagnoses", json!([]), true),
        ("settlement", "/data/diagnoses", json!(["C34", "I63.900", "E11.9", "C7A.0"]), true),
        ("settlement", "/data/diagnoses", json!(["C34."]), false),
        ("settlement", "/data/diagnoses", json!(["C34.12345"]), false),
        ("settlement", "/data/diagnoses", json!(["C34-9"]), false),
        ("settlement", "/data/diagnoses", json!(["34.9"]), false),
        ("settlement", "/data/diagnoses", json!("C34.9"), false),
        ("settlement", "/data/setting", json!("Inpatient"), false),
        ("settlement", "/data/settled_on", json!("2024-02-29"), true),
        ("settlement", "/data/settled_on", json!("2026-02-29"), false),
        ("settlement", "/data/settled_on", json!("2026-04-31"), false),
        ("settlement", "/data/settled_on", json!("2026-13-01"), false),
        ("settlement", "/data/settled_on", json!("20260221"), false),
        ("settlement", "/data/settled_on", json!("2026-02-21T00:00:00+08:00"), false),
        ("contributions_stopped", "/data/last_paid_month", json!("2026-12"), true),
        ("contributions_stopped", "/data/last_paid_month", json!("2026-00"), false),
        ("contributions_stopped", "/data/last_paid_month", json!("2026-1"), false),
        ("contributions_stopped", "/data/last_paid_month", json!("2026-01-01"), false),
        ("contributions_stopped", "/data/last_paid_month", json!("202601"), false),
        ("contributions_stopped", "/data/months_unpaid", json!(1), true),
        ("contributions_stopped", "/data/months_unpaid", json!(u32::MAX), true),
        ("contributions_stopped", "/data/months_unpaid", json!(u64::from(u32::MAX) + 1), false),
        ("contributions_stopped", "/data/months_unpaid", json!(-1), false),
        ("disability_certified", "/data/grade", json!(1), true),
        ("disability_certified", "/data/grade", json!(4), true),
        ("disability_certified", "/data/grade", json!(0), false),
        ("disability_certified", "/data/grade", json!(256), false),
        ("disability_certified", "/data/disability_type", json!("blind"), false),
        ("dangerous_house_appraised", "/data/grade", json!("C"), true),
        ("dangerous_house_appraised", "/data/grade", json!("B"), false),
        ("property_registered", "/data/area_m2", json!(0), true),
        ("property_registered", "/data/area_m2", json!(-89), false),
        ("property_registered", "/data/action", json!("mortgaged"), false),
        ("disaster_damage", "/data/uninhabitable", json!("true"), false),
        ("disaster_damage", "/data/disaster", json!("hail"), true),
        ("relocated", "/data/to_region_code", json!("341502"), true),
        ("relocated", "/data/to_region_code", json!("34150210200"), false),
        ("household_moved", "/data/to_region_code", json!("341502003"), true),
        ("household_moved", "/data/to_region_code", json!(341502003), false),
        ("birth", "/data/child_sex", json!("unknown"), false),
        ("birth", "/data/child_id_number", json!("not yet issued"), true),
    ];
    for (kind, pointer, value, accept) in cases {
        let mut event = event_example(kind);
        *event
            .pointer_mut(pointer)
            .unwrap_or_else(|| panic!("{kind}: no {pointer}")) = value.clone();
        assert_both(kind, &event, accept, &format!("{pointer} = {value}"));
    }
}

#[test]
fn register_drift_unknown_or_missing_fields_are_rejected_by_both() {
    let cat = Catalogue::get();
    let doc = cat.document(HOUSEHOLD);
    let base = household_example();
    assert_both_household(&base, true, "the example itself");

    let mut unknown = base.clone();
    unknown["colour"] = json!("red");
    assert_both_household(&unknown, false, "unknown household field");
    let mut unknown = base.clone();
    unknown["members"][0]["colour"] = json!("red");
    assert_both_household(&unknown, false, "unknown member field");

    let household_required = names(&doc["required"]);
    let member_required = names(&doc["$defs"]["member"]["required"]);
    assert!(household_required.contains("members") && member_required.contains("id_number"));
    for field in &household_required {
        let mut h = base.clone();
        h.as_object_mut().expect("object").remove(field);
        assert_both_household(&h, false, &format!("without {field}"));
    }
    for field in &member_required {
        let mut h = base.clone();
        h["members"][0]
            .as_object_mut()
            .expect("object")
            .remove(field);
        assert_both_household(&h, false, &format!("without members[0].{field}"));
    }
    for field in keys(&doc["properties"]).difference(&household_required) {
        let mut h = base.clone();
        h.as_object_mut().expect("object").remove(field);
        assert_both_household(&h, true, &format!("without optional {field}"));
    }
    let member_fields = keys(&doc["$defs"]["member"]["properties"]);
    for field in member_fields.difference(&member_required) {
        let mut h = base.clone();
        h["members"][0]
            .as_object_mut()
            .expect("object")
            .remove(field);
        assert_both_household(&h, true, &format!("without optional members[0].{field}"));
    }
    for field in &member_fields {
        let mut h = base.clone();
        h["members"][0][field] = Value::Null;
        let schema = cat.verdict(HOUSEHOLD, &h);
        let rust = register_verdict(&serde_json::to_vec(&h).expect("serialise"));
        assert_eq!(
            schema.is_ok(),
            rust.is_ok(),
            "members[0].{field} = null: schema says {schema:?}, register import says {:?}",
            rust.err()
        );
    }
}

#[test]
fn register_edge_cases_are_judged_the_same_by_schema_and_import() {
    let base = household_example();
    #[rustfmt::skip]
    let cases: Vec<(&str, Value, bool)> = vec![
        ("/region_code", json!("341502102"), false),
        ("/region_code", json!("341502"), false),
        ("/category", json!("tekun"), true),
        ("/category", json!("低保"), false),
        ("/area", json!("suburban"), false),
        ("/monthly_benefit_fen", json!(-1), false),
        ("/enrolled_on", json!("2023-02-29"), false),
        ("/members", json!([]), false),
        ("/household_id", json!(""), false),
        ("/members/0/name", json!(" "), false),
        ("/members/0/member_id", json!(""), false),
        ("/members/0/id_number", json!("342401196210081239"), true),
        ("/members/0/id_number", json!("34240119621008123"), false),
        ("/members/0/id_number", json!("34240119621008123A"), false),
        ("/members/0/disability_grade", json!(4), true),
        ("/members/0/disability_grade", json!(5), false),
        ("/members/0/relation", json!("spouse"), true),
        ("/members/1/relation", json!("head"), false),
        ("/members/0/work_capacity", json!("unable"), false),
        ("/members/1/employed", json!("yes"), false),
        ("/members/1/monthly_income_fen", json!(1200.5), false),
    ];
    for (pointer, value, accept) in cases {
        let mut h = base.clone();
        *h.pointer_mut(pointer)
            .unwrap_or_else(|| panic!("no {pointer}")) = value.clone();
        assert_both_household(&h, accept, &format!("{pointer} = {value}"));
    }
}
