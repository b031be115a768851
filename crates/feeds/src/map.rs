//! One row's cells → one event, through the profile: skip rules, the kind, every field's text
//! (transforms, code map, default), its type, then the event model's own parser and checks, so
//! that an event made from an export is held to exactly the rules of an envelope event.

use chrono::{NaiveDateTime, TimeZone};
use doudi_model::{parse_event, Event, EventError, ParseLimits};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use crate::error::{redact, RowError};
use crate::profile::{
    normalise_header, Field, IdRule, KindRule, Other, Profile, SkipWhen, ValueSource,
};
use crate::schema::schemas;
use crate::text;

/// What became of one row.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Mapped {
    Event(Box<Event>),
    /// Passed over by a `[[skip]]` rule (or the kind's `other = "skip"`): the reason given.
    Skipped(String),
    Refused(RowError),
}

/// Reads a cell by the profile's column index; `None` when the row has no such cell.
pub(crate) trait Cells {
    fn cell(&self, column: usize) -> Option<&str>;
}

/// Cells gathered for the profile's columns, in its column order.
pub(crate) struct Gathered(pub Vec<Option<String>>);

impl Cells for Gathered {
    fn cell(&self, column: usize) -> Option<&str> {
        self.0.get(column).and_then(|c| c.as_deref())
    }
}

impl Profile {
    fn label(&self, f: &Field) -> Option<String> {
        match &f.source {
            ValueSource::Column(i) => self.columns.get(*i).cloned(),
            ValueSource::Columns(is, _) => Some(
                is.iter()
                    .filter_map(|i| self.columns.get(*i).map(String::as_str))
                    .collect::<Vec<_>>()
                    .join("+"),
            ),
            ValueSource::Constant(_) => None,
        }
    }

    fn row_error(&self, row: u64, f: &Field, reason: String) -> RowError {
        RowError {
            row,
            column: self.label(f),
            field: Some(f.path.clone()),
            reason,
        }
    }

    /// A field's text after transforms, default and code map; `None` when empty.
    fn text_of(&self, row: u64, f: &Field, cells: &dyn Cells) -> Result<Option<String>, RowError> {
        let cell = match &f.source {
            ValueSource::Column(i) => cells.cell(*i).map(|s| text::apply(s, &f.transforms)),
            ValueSource::Columns(is, join) => {
                let parts: Vec<String> = is
                    .iter()
                    .filter_map(|i| cells.cell(*i))
                    .map(|s| text::apply(s, &f.transforms))
                    .filter(|s| !s.is_empty())
                    .collect();
                Some(parts.join(join))
            }
            // Constants and defaults are the event's own values: never mapped.
            ValueSource::Constant(c) => return Ok(Some(c.clone())),
        };
        let t = match (cell.filter(|s| !s.is_empty()), &f.map) {
            (Some(t), Some(map)) => match map.get(&t) {
                Some(to) if to.is_empty() => None,
                Some(to) => Some(to.clone()),
                None => match f.other {
                    Other::Keep => Some(t),
                    Other::Empty => None,
                    Other::Refuse | Other::Skip => {
                        return Err(self.row_error(
                            row,
                            f,
                            format!(
                                "a code the profile's map does not list (it lists {})",
                                listing(map.keys())
                            ),
                        ))
                    }
                },
            },
            (t, _) => t,
        };
        let t = t.or_else(|| f.default.clone());
        if t.is_none() && f.required {
            return Err(self.row_error(row, f, "is empty, but the profile requires it".into()));
        }
        Ok(t)
    }

    fn value_of(&self, row: u64, f: &Field, cells: &dyn Cells) -> Result<Option<Value>, RowError> {
        match self.text_of(row, f, cells)? {
            None => Ok(None),
            Some(t) => f
                .convert(&t)
                .map(Some)
                .map_err(|why| self.row_error(row, f, why)),
        }
    }

    /// The row's fate under the skip rules, before anything else is read.
    fn skipped(&self, cells: &dyn Cells) -> Option<String> {
        self.skips.iter().find_map(|s| {
            let t = text::trim(cells.cell(s.column).unwrap_or(""));
            let hit = match &s.when {
                SkipWhen::Equals(v) => t == v,
                SkipWhen::In(vs) => vs.iter().any(|v| v == t),
                SkipWhen::NotIn(vs) => !vs.iter().any(|v| v == t),
                SkipWhen::Empty(e) => t.is_empty() == *e,
                SkipWhen::StartsWith(p) => t.starts_with(p.as_str()),
            };
            hit.then(|| s.reason.clone())
        })
    }

    /// Map one row. `row` is the row number shown in errors.
    pub(crate) fn map_cells(&self, row: u64, cells: &dyn Cells) -> Mapped {
        if let Some(reason) = self.skipped(cells) {
            return Mapped::Skipped(reason);
        }
        match self.build(row, cells) {
            Ok(Some(e)) => Mapped::Event(Box::new(e)),
            Ok(None) => Mapped::Skipped(
                "business the profile passes over (kind map: other = \"skip\")".into(),
            ),
            Err(e) => Mapped::Refused(e),
        }
    }

    fn build(&self, row: u64, cells: &dyn Cells) -> Result<Option<Event>, RowError> {
        let kind = match &self.kind {
            KindRule::Fixed(k) => *k,
            KindRule::ByColumn {
                column,
                transforms,
                map,
                other,
            } => {
                let t = text::apply(cells.cell(*column).unwrap_or(""), transforms);
                match map.get(&t) {
                    Some(k) => *k,
                    None if *other == Other::Skip => return Ok(None),
                    None => {
                        return Err(RowError {
                            row,
                            column: self.columns.get(*column).cloned(),
                            field: Some("kind".into()),
                            reason: if t.is_empty() {
                                "is empty: the kind of record cannot be told".into()
                            } else {
                                format!(
                                    "a kind of record the profile does not map (it maps {})",
                                    listing(map.keys())
                                )
                            },
                        })
                    }
                }
            }
        };
        let event_id = self.event_id(row, cells)?;
        let occurred = self
            .value_of(row, &self.occurred_at, cells)?
            .ok_or_else(|| {
                self.row_error(
                    row,
                    &self.occurred_at,
                    "is empty; every event needs its time".into(),
                )
            })?;
        let occurred_at = occurred
            .as_str()
            .and_then(|s| NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S").ok())
            .and_then(|n| self.tz.from_local_datetime(&n).single())
            .map(|t| t.to_rfc3339())
            .unwrap_or_default();

        let mut subject = Map::new();
        for (name, f) in &self.subject {
            if let Some(v) = self.value_of(row, f, cells)? {
                subject.insert(name.clone(), v);
            }
        }
        let mut data = Map::new();
        let def = &schemas().kinds[kind];
        for (name, f) in self.data.get(kind).map(Vec::as_slice).unwrap_or(&[]) {
            match self.value_of(row, f, cells)? {
                Some(v) => {
                    data.insert(name.clone(), v);
                }
                None if def.field(name).is_some_and(|d| d.required) => {
                    return Err(self.row_error(
                        row,
                        f,
                        format!("is empty; every {kind} event needs it"),
                    ))
                }
                None => {}
            }
        }
        let mut envelope = Map::new();
        envelope.insert("event_id".into(), Value::String(event_id));
        envelope.insert("source".into(), Value::String(self.source.code().into()));
        envelope.insert("kind".into(), Value::String(kind.into()));
        envelope.insert("occurred_at".into(), Value::String(occurred_at));
        envelope.insert("subject".into(), Value::Object(subject));
        envelope.insert("data".into(), Value::Object(data));
        let bytes = serde_json::to_vec(&Value::Object(envelope)).unwrap_or_default();
        parse_event(&bytes, &ParseLimits::default())
            .map(Some)
            .map_err(|e| self.model_error(row, kind, e))
    }

    fn event_id(&self, row: u64, cells: &dyn Cells) -> Result<String, RowError> {
        let (cols, prefix, hash) = match &self.event_id {
            IdRule::Column(c, p) => (std::slice::from_ref(c), p, false),
            IdRule::Hash(cs, p) => (cs.as_slice(), p, true),
        };
        let texts: Vec<&str> = cols
            .iter()
            .map(|c| text::trim(cells.cell(*c).unwrap_or("")))
            .collect();
        if !hash {
            let t = texts.first().copied().unwrap_or("");
            if t.is_empty() {
                return Err(RowError {
                    row,
                    column: cols.first().and_then(|c| self.columns.get(*c).cloned()),
                    field: Some("event_id".into()),
                    reason: "is empty; the record's id identifies it (a record sent twice is taken once)".into(),
                });
            }
            return Ok(format!("{prefix}{t}"));
        }
        if texts.iter().all(|t| t.is_empty()) {
            return Err(RowError {
                row,
                column: Some(
                    cols.iter()
                        .filter_map(|c| self.columns.get(*c).map(String::as_str))
                        .collect::<Vec<_>>()
                        .join("+"),
                ),
                field: Some("event_id".into()),
                reason: "all empty; the record cannot be identified".into(),
            });
        }
        Ok(format!("{prefix}-{}", hash_id(&texts)))
    }

    fn model_error(&self, row: u64, kind: &str, e: EventError) -> RowError {
        let (field, reason) = match &e {
            EventError::InvalidField { field, message } => (Some(field.clone()), redact(message)),
            other => (None, redact(&other.to_string())),
        };
        let base = field
            .as_deref()
            .map(|f| f.split('[').next().unwrap_or(f).to_string());
        let column = base.as_deref().and_then(|b| {
            let f = if let Some(name) = b.strip_prefix("data.") {
                self.data
                    .get(kind)
                    .and_then(|fs| fs.iter().find(|(n, _)| n == name))
                    .map(|(_, f)| f)
            } else if let Some(name) = b.strip_prefix("subject.") {
                self.subject.iter().find(|(n, _)| n == name).map(|(_, f)| f)
            } else {
                None
            };
            f.and_then(|f| self.label(f))
        });
        RowError {
            row,
            column,
            field,
            reason,
        }
    }

    /// Map a row kept as a dead letter (a JSON object of column → cell text, as [`crate::Row::raw`]
    /// holds it), e.g. again after the profile was fixed.
    pub fn map_raw(&self, row: u64, raw: &[u8]) -> Mapped {
        match serde_json::from_slice::<Map<String, Value>>(raw) {
            Ok(obj) => match self.gather_json(&obj) {
                Ok(g) => self.map_cells(row, &g),
                Err(column) => Mapped::Refused(RowError {
                    row,
                    column: Some(column),
                    field: None,
                    reason: "holds a list or an object; a cell must be text, a number, true/false or null".into(),
                }),
            },
            Err(_) => Mapped::Refused(RowError::new(
                row,
                "not a JSON object of column → cell (is it a row this profile wrote?)",
            )),
        }
    }

    /// The profile's columns from a JSON object (a JSON-lines record or a dead letter); the name
    /// of a column holding a list or object when there is one.
    pub(crate) fn gather_json(&self, obj: &Map<String, Value>) -> Result<Gathered, String> {
        let mut out = Vec::with_capacity(self.columns.len());
        for c in &self.columns {
            let v = obj.get(c.as_str()).or_else(|| {
                let want = normalise_header(c);
                obj.iter()
                    .find(|(k, _)| normalise_header(k) == want)
                    .map(|(_, v)| v)
            });
            out.push(match v {
                None | Some(Value::Null) => None,
                Some(Value::String(s)) => Some(s.clone()),
                Some(Value::Number(n)) => Some(n.to_string()),
                Some(Value::Bool(b)) => Some(b.to_string()),
                Some(Value::Array(_) | Value::Object(_)) => return Err(c.clone()),
            });
        }
        Ok(Gathered(out))
    }
}

/// A stable id from a record's identifying cells: the first 96 bits of SHA-256 over the trimmed
/// texts joined by U+001F, in hex. The same cells give the same id in every file and format.
pub fn hash_id(texts: &[&str]) -> String {
    let mut h = Sha256::new();
    for (i, t) in texts.iter().enumerate() {
        if i > 0 {
            h.update([0x1f]);
        }
        h.update(t.as_bytes());
    }
    hex::encode(&h.finalize()[..12])
}

fn listing<'a>(keys: impl Iterator<Item = &'a String>) -> String {
    let keys: Vec<&String> = keys.collect();
    let mut s = keys
        .iter()
        .take(12)
        .map(|k| k.as_str())
        .collect::<Vec<_>>()
        .join(", ");
    if keys.len() > 12 {
        s.push_str(&format!(", … {} in all", keys.len()));
    }
    s
}
