//! What each event kind's fields are, read from the JSON Schemas in `schemas/events/` (the
//! published contract of every feed), so that a profile is checked against the same field list,
//! required fields and codes that the envelope feeds are, and no table is written twice.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use doudi_model::ALL_KINDS;
use serde_json::Value;

/// How a cell's text becomes a field's JSON value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FieldType {
    /// Free text (names, ID numbers, ICD-10 codes, region codes): kept as text after transforms.
    Text,
    /// One of a fixed set of codes (the schema's `enum`).
    Code(Vec<String>),
    /// A calendar date, `YYYY-MM-DD` in the event.
    Date,
    /// A calendar month, `YYYY-MM` in the event.
    Month,
    /// An amount of money: whole fen in the event, yuan (or fen) in the export.
    Money,
    /// A whole number.
    Integer,
    /// True or false.
    Bool,
    /// A list of texts (e.g. diagnoses) split from one cell.
    List,
}

/// One field of an event's `subject` or `data`.
#[derive(Clone, Debug)]
pub struct FieldDef {
    pub name: String,
    pub ty: FieldType,
    pub required: bool,
}

/// The fields of one kind.
#[derive(Clone, Debug)]
pub struct KindDef {
    pub fields: Vec<FieldDef>,
}

impl KindDef {
    pub fn field(&self, name: &str) -> Option<&FieldDef> {
        self.fields.iter().find(|f| f.name == name)
    }

    pub fn field_names(&self) -> String {
        self.fields
            .iter()
            .map(|f| f.name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    }
}

pub struct Schemas {
    pub subject: Vec<FieldDef>,
    pub kinds: BTreeMap<&'static str, KindDef>,
}

impl Schemas {
    pub fn subject_field(&self, name: &str) -> Option<&FieldDef> {
        self.subject.iter().find(|f| f.name == name)
    }
}

macro_rules! schema_texts {
    ($($kind:literal),* $(,)?) => {
        &[$(($kind, include_str!(concat!("../../../schemas/events/", $kind, ".schema.json")))),*]
    };
}

const KIND_SCHEMAS: &[(&str, &str)] = schema_texts!(
    "settlement",
    "serious_illness_diagnosed",
    "job_lost",
    "unemployment_registered",
    "contributions_stopped",
    "job_started",
    "wage_changed",
    "property_registered",
    "dangerous_house_appraised",
    "disaster_damage",
    "relocated",
    "birth",
    "death",
    "marriage",
    "divorce",
    "household_moved",
    "disability_certified",
);
const ENVELOPE: &str = include_str!("../../../schemas/events/envelope.schema.json");

/// The field tables, parsed once.
pub fn schemas() -> &'static Schemas {
    static S: OnceLock<Schemas> = OnceLock::new();
    S.get_or_init(build)
}

fn build() -> Schemas {
    let envelope: Value = serde_json::from_str(ENVELOPE).unwrap_or(Value::Null);
    let subject = fields_of(&envelope["properties"]["subject"], &[]);
    let mut kinds = BTreeMap::new();
    for (_, kind) in ALL_KINDS {
        let text = KIND_SCHEMAS
            .iter()
            .find(|(k, _)| *k == kind)
            .map(|(_, t)| *t)
            .unwrap_or("{}");
        let v: Value = serde_json::from_str(text).unwrap_or(Value::Null);
        let data = &v["properties"]["data"];
        let required: Vec<&str> = data["required"]
            .as_array()
            .map(|a| a.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        kinds.insert(
            kind,
            KindDef {
                fields: fields_of(data, &required),
            },
        );
    }
    Schemas { subject, kinds }
}

fn fields_of(object: &Value, required: &[&str]) -> Vec<FieldDef> {
    let Some(props) = object["properties"].as_object() else {
        return Vec::new();
    };
    props
        .iter()
        .map(|(name, p)| FieldDef {
            name: name.clone(),
            ty: type_of(p),
            required: required.contains(&name.as_str()),
        })
        .collect()
}

fn type_of(p: &Value) -> FieldType {
    let def = p["$ref"]
        .as_str()
        .and_then(|r| r.rsplit('/').next())
        .unwrap_or("");
    let enum_of = |v: &Value| -> Option<Vec<String>> {
        v["enum"].as_array().map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        })
    };
    if let Some(codes) = enum_of(p) {
        return FieldType::Code(codes);
    }
    match def {
        "fen" | "fen_or_null" => return FieldType::Money,
        "date" | "date_or_null" => return FieldType::Date,
        "month" => return FieldType::Month,
        "sex" => return FieldType::Code(vec!["male".into(), "female".into()]),
        _ => {}
    }
    let types: Vec<&str> = match &p["type"] {
        Value::String(s) => vec![s.as_str()],
        Value::Array(a) => a.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    };
    if types.contains(&"integer") {
        FieldType::Integer
    } else if types.contains(&"boolean") {
        FieldType::Bool
    } else if types.contains(&"array") {
        FieldType::List
    } else {
        FieldType::Text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_has_its_fields_with_types_from_the_schemas() {
        let s = schemas();
        assert_eq!(s.kinds.len(), ALL_KINDS.len());
        let settlement = &s.kinds["settlement"];
        let total = settlement
            .field("total_cost_fen")
            .map(|f| (&f.ty, f.required));
        assert_eq!(total, Some((&FieldType::Money, true)));
        assert_eq!(
            settlement.field("admitted_on").map(|f| (&f.ty, f.required)),
            Some((&FieldType::Date, false))
        );
        assert_eq!(
            settlement.field("diagnoses").map(|f| &f.ty),
            Some(&FieldType::List)
        );
        for (kind, field, ty) in [
            ("disaster_damage", "uninhabitable", FieldType::Bool),
            (
                "dangerous_house_appraised",
                "grade",
                FieldType::Code(vec!["C".into(), "D".into()]),
            ),
            ("contributions_stopped", "last_paid_month", FieldType::Month),
            ("property_registered", "area_m2", FieldType::Integer),
        ] {
            let found = s.kinds[kind].field(field).map(|f| &f.ty);
            assert_eq!(found, Some(&ty), "{kind}.{field}");
        }
        let mut names: Vec<&str> = s.subject.iter().map(|f| f.name.as_str()).collect();
        names.sort_unstable();
        assert_eq!(
            names,
            ["birth_date", "id_number", "name", "region_code", "sex"]
        );
        assert!(
            matches!(&s.subject_field("sex").map(|f| &f.ty), Some(FieldType::Code(c)) if c == &["male", "female"])
        );
        assert_eq!(
            s.subject_field("birth_date").map(|f| &f.ty),
            Some(&FieldType::Date)
        );
        for (kind, k) in &s.kinds {
            assert!(!k.fields.is_empty(), "{kind} has no fields");
        }
    }
}
