//! The snapshot schemas (`schemas/snapshots/`) and the cross-check's reader must agree: each
//! example passes both, each invalid example fails both, and for every kind an unknown field and
//! each missing required field are refused by both, while each optional field may be left out or
//! `null`. Schemas are loaded under their `$id`s with format assertions on; no network.

use std::fs;
use std::path::{Path, PathBuf};

use boon::{Compiler, Schemas};
use doudi_crosscheck::snapshot::{all_columns, required_columns, validate_json, Kind};
use serde_json::{json, Value};

const BASE_URL: &str = "https://doudi.example/schemas/";

fn schemas_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("schemas")
}

fn read_json(path: &Path) -> Value {
    let text = fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

struct Catalogue {
    schemas: Schemas,
    index: Vec<(Kind, boon::SchemaIndex)>,
}

fn catalogue() -> Catalogue {
    let mut compiler = Compiler::new();
    compiler.enable_format_assertions();
    let common = read_json(&schemas_dir().join("common.schema.json"));
    compiler
        .add_resource(&format!("{BASE_URL}common.schema.json"), common)
        .unwrap();
    for kind in Kind::ALL {
        let rel = format!("snapshots/{}.schema.json", kind.code());
        let doc = read_json(&schemas_dir().join(&rel));
        assert_eq!(doc["$id"], format!("{BASE_URL}{rel}"), "{rel}: $id");
        compiler
            .add_resource(&format!("{BASE_URL}{rel}"), doc)
            .unwrap();
    }
    let mut schemas = Schemas::new();
    let index = Kind::ALL
        .iter()
        .map(|k| {
            let url = format!("{BASE_URL}snapshots/{}.schema.json", k.code());
            let i = compiler
                .compile(&url, &mut schemas)
                .unwrap_or_else(|e| panic!("{url}: {e:#}"));
            (*k, i)
        })
        .collect();
    Catalogue { schemas, index }
}

impl Catalogue {
    fn schema_ok(&self, kind: Kind, v: &Value) -> Result<(), String> {
        let (_, i) = self.index.iter().find(|(k, _)| *k == kind).unwrap();
        self.schemas.validate(v, *i).map_err(|e| format!("{e}"))
    }

    fn assert_both(&self, kind: Kind, v: &Value, accept: bool, what: &str) {
        let schema = self.schema_ok(kind, v);
        let rust = validate_json(kind, &serde_json::to_vec(v).unwrap());
        assert_eq!(
            schema.is_ok(),
            accept,
            "{kind}, {what}: schema says {schema:?}"
        );
        assert_eq!(rust.is_ok(), accept, "{kind}, {what}: reader says {rust:?}");
    }
}

fn example(kind: Kind) -> Value {
    read_json(
        &schemas_dir()
            .join("snapshots/examples")
            .join(format!("{}.json", kind.code())),
    )
}

#[test]
fn each_snapshot_example_passes_and_each_invalid_one_fails_both() {
    let cat = catalogue();
    for kind in Kind::ALL {
        cat.assert_both(kind, &example(kind), true, "the example");
        let bad = read_json(
            &schemas_dir()
                .join("snapshots/examples/invalid")
                .join(format!("{}.json", kind.code())),
        );
        cat.assert_both(kind, &bad, false, "the invalid example");
    }
}

#[test]
fn unknown_missing_and_optional_fields_are_judged_alike() {
    let cat = catalogue();
    for kind in Kind::ALL {
        let ex = example(kind);
        let schema_doc =
            read_json(&schemas_dir().join(format!("snapshots/{}.schema.json", kind.code())));
        let props: Vec<String> = schema_doc["properties"]
            .as_object()
            .unwrap()
            .keys()
            .cloned()
            .collect();
        let required: Vec<String> = schema_doc["required"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap().to_string())
            .collect();
        // the CSV columns are the schema's properties
        let mut cols: Vec<&str> = all_columns(kind).to_vec();
        cols.sort_unstable();
        let mut p: Vec<&str> = props.iter().map(String::as_str).collect();
        p.sort_unstable();
        assert_eq!(cols, p, "{kind}: CSV columns and schema properties");
        let mut req: Vec<&str> = required.iter().map(String::as_str).collect();
        req.sort_unstable();
        let mut rc = required_columns(kind).to_vec();
        rc.sort_unstable();
        assert_eq!(rc, req, "{kind}: required CSV columns and schema");

        let mut unknown = ex.clone();
        unknown["remarks"] = json!("备注");
        cat.assert_both(kind, &unknown, false, "an unknown field");
        for field in &props {
            let mut without = ex.clone();
            without.as_object_mut().unwrap().remove(field);
            let optional = !required.contains(field);
            cat.assert_both(kind, &without, optional, &format!("without {field}"));
            if optional {
                let mut null = ex.clone();
                null[field.as_str()] = Value::Null;
                cat.assert_both(kind, &null, true, &format!("{field} null"));
            }
        }
        let mut bad_id = ex.clone();
        bad_id["id_number"] = json!("11010519491231002");
        cat.assert_both(kind, &bad_id, false, "a 17-character ID number");
    }
}
