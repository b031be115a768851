//! Feed profiles: the TOML a deployment writes once per department export, read strictly (an
//! unknown key is an error with its line) and checked against the event schemas before any row is
//! read, so that a mistake in the profile shows as one clear message, not as every row refused.
//!
//! ```toml
//! [profile]
//! name = "yibao-settlement"      # lower-case letters, digits, '-'; goes with every event made
//! version = 1                    # bump on every change: the version goes with every event too
//! source = "health_insurance"
//!
//! [file]
//! format = "csv"                 # csv | xlsx | jsonl | fixed_width
//! encoding = "gb18030"           # utf-8 (default) | gb18030 | gbk; a BOM decides when present
//! header_row = 2                 # rows before it (titles) are passed over; 0: no header
//!
//! [event]
//! kind = "settlement"            # or { column = "业务类型", map = { "死亡注销" = "death" } }
//! occurred_at = "经办时间"
//! event_id = { column = "结算ID", prefix = "yb-" }   # or { hash = ["证件号码", "结算日期"] }
//!
//! [subject]
//! id_number = { column = "证件号码", transforms = ["halfwidth", "upper"] }
//! sex = { column = "性别", map = { "1" = "male", "2" = "female" } }
//!
//! [data.settlement]
//! total_cost_fen = "医疗费总额"   # a money field: yuan with at most two decimals, to fen
//! settled_on = { column = "结算日期", formats = ["%Y%m%d"] }
//!
//! [[skip]]
//! column = "人员编号"
//! equals = "合计"
//! reason = "totals line"
//! ```

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use chrono::{FixedOffset, NaiveTime};
use doudi_model::Source;
use serde::de::{self, MapAccess, Visitor};
use serde::{Deserialize, Deserializer};
use toml::Spanned;

use crate::error::ProfileError;
use crate::schema::{schemas, FieldDef, FieldType};
use crate::text::{self, Transform, Unit};
use serde_json::Value;

/// The layout of an export file.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Format {
    Csv,
    Xlsx,
    /// One JSON object per line; its keys are the columns.
    Jsonl,
    /// Fixed-width text: `widths` in characters, `columns` naming them.
    FixedWidth,
}

impl Format {
    pub fn describe(self) -> &'static str {
        match self {
            Format::Csv => "CSV",
            Format::Xlsx => "Excel workbook",
            Format::Jsonl => "JSON lines",
            Format::FixedWidth => "fixed-width text",
        }
    }
}

/// How a text file's bytes are characters. A byte-order mark at the file's start overrides it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
pub enum Encoding {
    #[default]
    #[serde(rename = "utf-8", alias = "utf8", alias = "UTF-8")]
    Utf8,
    #[serde(rename = "gb18030", alias = "GB18030")]
    Gb18030,
    /// GBK is a subset of GB18030 and is read as such.
    #[serde(rename = "gbk", alias = "GBK")]
    Gbk,
}

impl Encoding {
    pub fn describe(self) -> &'static str {
        match self {
            Encoding::Utf8 => "UTF-8",
            Encoding::Gb18030 => "GB18030",
            Encoding::Gbk => "GBK",
        }
    }
}

/// The `[file]` table.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileSpec {
    pub format: Format,
    #[serde(default)]
    pub encoding: Encoding,
    /// CSV only; default `,`.
    #[serde(default)]
    pub delimiter: Option<char>,
    /// The row holding the column names, from 1 (default 1); rows above it are passed over.
    /// 0: no header row, `columns` names the columns.
    #[serde(default = "one")]
    pub header_row: u64,
    /// Column names, when the file has no header row (and for fixed-width files).
    #[serde(default)]
    pub columns: Option<Vec<String>>,
    /// Fixed-width files: each column's width in characters.
    #[serde(default)]
    pub widths: Option<Vec<usize>>,
    /// Excel: the sheet to read (default the first).
    #[serde(default)]
    pub sheet: Option<String>,
    /// Most data rows accepted in one file (or sheet); a file with more stops with an error
    /// at the limit. Default 1,048,576, an Excel sheet's own limit.
    #[serde(default = "max_rows")]
    pub max_rows: u64,
    /// Longest accepted row, in bytes (default 64 KiB).
    #[serde(default = "max_row_bytes")]
    pub max_row_bytes: usize,
}

fn one() -> u64 {
    1
}
fn max_rows() -> u64 {
    1_048_576
}
fn max_row_bytes() -> usize {
    64 * 1024
}

/// What to do with a value a code map does not list.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Other {
    /// Refuse the row (default): the export has a code the profile does not know.
    #[default]
    Refuse,
    /// Keep the text as it is.
    Keep,
    /// Treat as empty.
    Empty,
    /// For the kind's map only: pass the row over, counted as skipped (rows of other business).
    Skip,
}

/// A TOML scalar written as a map value, default or constant: kept as text.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Scalar(String);

impl<'de> Deserialize<'de> for Scalar {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Scalar;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string, a whole number or true/false")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Scalar, E> {
                Ok(Scalar(v.to_string()))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Scalar, E> {
                Ok(Scalar(v.to_string()))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Scalar, E> {
                Ok(Scalar(v.to_string()))
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<Scalar, E> {
                Ok(Scalar(v.to_string()))
            }
        }
        d.deserialize_any(V)
    }
}

/// One field's mapping: a column name, or a table.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FieldToml {
    /// The column read.
    column: Option<String>,
    /// Several columns, joined with `join` (default nothing): concatenation.
    columns: Option<Vec<String>>,
    join: Option<String>,
    /// A constant instead of a column.
    value: Option<Scalar>,
    #[serde(default)]
    transforms: Vec<Transform>,
    /// Code map, applied after the transforms: export's code → the event's value ("" leaves the
    /// field out).
    map: Option<BTreeMap<String, Scalar>>,
    #[serde(default)]
    other: Other,
    /// Used when the cell is empty.
    default: Option<Scalar>,
    /// An empty cell refuses the row (even for a field the event may leave out).
    #[serde(default)]
    required: bool,
    /// Dates, months, times: the accepted formats (chrono strftime), tried in order.
    formats: Option<Vec<String>>,
    /// `occurred_at` only: the time of day given to a date without one (default 00:00:00).
    time: Option<String>,
    /// Money only: yuan (default), fen or wan_yuan.
    unit: Option<Unit>,
    /// Lists only: the separator (default: any of `;` `,` `；` `，` `|`).
    split: Option<String>,
}

struct FieldOrColumn(FieldToml);

impl<'de> Deserialize<'de> for FieldOrColumn {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        string_or_table(
            d,
            "a column name, or a table such as { column = \"…\", map = { … } }",
            |column| {
                FieldOrColumn(FieldToml {
                    column: Some(column),
                    ..FieldToml::default()
                })
            },
            FieldOrColumn,
        )
    }
}

/// A key written either short, as a string (`short`), or long, as a table read as `T` (`long`).
fn string_or_table<'de, D, T, R>(
    d: D,
    expecting: &'static str,
    short: fn(String) -> R,
    long: fn(T) -> R,
) -> Result<R, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    struct V<T, R> {
        expecting: &'static str,
        short: fn(String) -> R,
        long: fn(T) -> R,
    }
    impl<'de, T: Deserialize<'de>, R> Visitor<'de> for V<T, R> {
        type Value = R;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str(self.expecting)
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<R, E> {
            Ok((self.short)(v.to_string()))
        }
        fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<R, A::Error> {
            T::deserialize(de::value::MapAccessDeserializer::new(map)).map(self.long)
        }
    }
    d.deserialize_any(V {
        expecting,
        short,
        long,
    })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Meta {
    name: Spanned<String>,
    version: Spanned<i64>,
    source: Spanned<String>,
    /// What the export is, for people (e.g. the department's name of the list).
    #[serde(default)]
    title: Option<String>,
    /// Where the department's field list comes from.
    #[serde(default)]
    reference: Option<String>,
    /// The offset of local times in the export (default `+08:00`).
    #[serde(default)]
    timezone: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct KindTable {
    column: String,
    map: BTreeMap<String, String>,
    #[serde(default)]
    other: Other,
    #[serde(default)]
    transforms: Vec<Transform>,
}

enum KindToml {
    Fixed(String),
    ByColumn(KindTable),
}

impl<'de> Deserialize<'de> for KindToml {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        string_or_table(
            d,
            "a kind such as \"settlement\", or { column = \"…\", map = { … } }",
            KindToml::Fixed,
            KindToml::ByColumn,
        )
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EventIdToml {
    column: Option<String>,
    hash: Option<Vec<String>>,
    prefix: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EventToml {
    kind: Spanned<KindToml>,
    occurred_at: Spanned<FieldOrColumn>,
    event_id: Spanned<EventIdToml>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SkipToml {
    column: String,
    equals: Option<String>,
    #[serde(rename = "in")]
    in_: Option<Vec<String>>,
    not_in: Option<Vec<String>>,
    empty: Option<bool>,
    starts_with: Option<String>,
    reason: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ProfileToml {
    profile: Meta,
    file: FileSpec,
    event: EventToml,
    #[serde(default)]
    subject: BTreeMap<Spanned<String>, Spanned<FieldOrColumn>>,
    #[serde(default)]
    data: BTreeMap<Spanned<String>, BTreeMap<Spanned<String>, Spanned<FieldOrColumn>>>,
    #[serde(default)]
    skip: Vec<Spanned<SkipToml>>,
}

/// Where a field's text comes from.
#[derive(Clone, Debug)]
pub(crate) enum ValueSource {
    /// Index into [`Profile::columns`].
    Column(usize),
    Columns(Vec<usize>, String),
    Constant(String),
}

/// A field, checked and ready.
#[derive(Clone, Debug)]
pub(crate) struct Field {
    /// `subject.id_number`, `data.settled_on`, `occurred_at`.
    pub path: String,
    pub source: ValueSource,
    pub transforms: Vec<Transform>,
    pub map: Option<BTreeMap<String, String>>,
    pub other: Other,
    pub default: Option<String>,
    pub required: bool,
    pub ty: FieldKind,
    pub formats: Vec<String>,
    pub date_formats: Vec<String>,
    pub time: NaiveTime,
    pub unit: Unit,
    pub split: Option<String>,
}

/// A field's type, with `occurred_at`'s date-and-time beside the schema's types.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum FieldKind {
    Schema(FieldType),
    DateTime,
}

#[derive(Clone, Debug)]
pub(crate) enum KindRule {
    Fixed(&'static str),
    ByColumn {
        column: usize,
        transforms: Vec<Transform>,
        map: BTreeMap<String, &'static str>,
        other: Other,
    },
}

#[derive(Clone, Debug)]
pub(crate) enum IdRule {
    Column(usize, String),
    Hash(Vec<usize>, String),
}

#[derive(Clone, Debug)]
pub(crate) enum SkipWhen {
    Equals(String),
    In(Vec<String>),
    NotIn(Vec<String>),
    Empty(bool),
    StartsWith(String),
}

#[derive(Clone, Debug)]
pub(crate) struct Skip {
    pub column: usize,
    pub when: SkipWhen,
    pub reason: String,
}

/// A profile, read and checked: ready to map rows.
#[derive(Clone, Debug)]
pub struct Profile {
    pub name: String,
    pub version: u32,
    pub source: Source,
    pub title: Option<String>,
    pub reference: Option<String>,
    pub file: FileSpec,
    pub(crate) tz: FixedOffset,
    /// Every column the profile reads, each once; fields refer to them by index.
    pub(crate) columns: Vec<String>,
    pub(crate) kind: KindRule,
    pub(crate) occurred_at: Field,
    pub(crate) event_id: IdRule,
    pub(crate) subject: Vec<(String, Field)>,
    pub(crate) data: BTreeMap<&'static str, Vec<(String, Field)>>,
    pub(crate) skips: Vec<Skip>,
}

/// A profile's identity, carried with every event it made (the store keeps it for the trace).
#[derive(Clone, Debug, PartialEq, Eq, Hash, serde::Serialize)]
pub struct Provenance {
    pub profile: String,
    pub version: u32,
}

impl fmt::Display for Provenance {
    /// `yibao-settlement@3`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}", self.profile, self.version)
    }
}

impl Profile {
    /// Read and check a profile file.
    pub fn load(path: &Path) -> Result<Profile, ProfileError> {
        let text = std::fs::read_to_string(path).map_err(|e| ProfileError::Io {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
        Profile::parse(&text, path)
    }

    /// Read and check a profile from its text; `path` names it in messages.
    pub fn parse(text: &str, path: &Path) -> Result<Profile, ProfileError> {
        let raw: ProfileToml = toml::from_str(text).map_err(|e| ProfileError::Toml {
            path: path.to_path_buf(),
            message: e.to_string().trim_end().to_string(),
        })?;
        Compiler {
            path: path.to_path_buf(),
            text,
            columns: Vec::new(),
        }
        .compile(raw)
    }

    pub fn provenance(&self) -> Provenance {
        Provenance {
            profile: self.name.clone(),
            version: self.version,
        }
    }

    /// The columns this profile reads, in first-use order.
    pub fn columns(&self) -> &[String] {
        &self.columns
    }

    /// The kinds this profile can make.
    pub fn kinds(&self) -> Vec<&'static str> {
        self.data.keys().copied().collect()
    }
}

struct Compiler<'a> {
    path: PathBuf,
    text: &'a str,
    columns: Vec<String>,
}

impl Compiler<'_> {
    fn line(&self, span: std::ops::Range<usize>) -> usize {
        self.text
            .get(..span.start)
            .map(|t| t.matches('\n').count() + 1)
            .unwrap_or(1)
    }

    fn err(&self, span: Option<std::ops::Range<usize>>, message: String) -> ProfileError {
        ProfileError::Invalid {
            path: self.path.clone(),
            line: span.map(|s| self.line(s)),
            message,
        }
    }

    fn column(&mut self, name: &str) -> usize {
        let key = normalise_header(name);
        if let Some(i) = self.columns.iter().position(|c| normalise_header(c) == key) {
            return i;
        }
        self.columns.push(name.trim().to_string());
        self.columns.len() - 1
    }

    fn compile(mut self, raw: ProfileToml) -> Result<Profile, ProfileError> {
        let m = &raw.profile;
        let name = m.name.get_ref();
        if name.is_empty()
            || name.len() > 64
            || !name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        {
            return Err(self.err(
                Some(m.name.span()),
                "name must be 1 to 64 lower-case letters, digits or '-'".into(),
            ));
        }
        let version = u32::try_from(*m.version.get_ref())
            .ok()
            .filter(|v| *v >= 1)
            .ok_or_else(|| {
                self.err(
                    Some(m.version.span()),
                    "version must be a whole number from 1 (raise it on every change)".into(),
                )
            })?;
        let source = Source::from_code(m.source.get_ref()).ok_or_else(|| {
            self.err(
                Some(m.source.span()),
                "source must be health_insurance, employment, housing or civil_registry".into(),
            )
        })?;
        let tz = match &m.timezone {
            None => FixedOffset::east_opt(8 * 3600),
            Some(t) => parse_offset(t.get_ref()),
        }
        .ok_or_else(|| {
            self.err(
                m.timezone.as_ref().map(|t| t.span()),
                "timezone must be an offset like +08:00".into(),
            )
        })?;
        self.check_file(&raw.file)?;

        // kind
        let kind_span = raw.event.kind.span();
        let kind_ok = |k: &str| -> Option<&'static str> { source.kinds().find(|x| *x == k) };
        let kinds_of_source = source.kinds().collect::<Vec<_>>().join(", ");
        let kind = match raw.event.kind.into_inner() {
            KindToml::Fixed(k) => KindRule::Fixed(kind_ok(&k).ok_or_else(|| {
                self.err(
                    Some(kind_span.clone()),
                    format!("kind {k:?} is not one that {source} sends ({kinds_of_source})"),
                )
            })?),
            KindToml::ByColumn(t) => {
                if t.other == Other::Keep || t.other == Other::Empty {
                    return Err(self.err(
                        Some(kind_span.clone()),
                        "the kind's `other` must be \"refuse\" or \"skip\"".into(),
                    ));
                }
                let mut map = BTreeMap::new();
                for (code, k) in t.map {
                    let k = kind_ok(&k).ok_or_else(|| {
                        self.err(
                            Some(kind_span.clone()),
                            format!(
                                "kind map sends {code:?} to {k:?}, which is not a kind that {source} sends ({kinds_of_source})"
                            ),
                        )
                    })?;
                    map.insert(text::apply(&code, &t.transforms), k);
                }
                KindRule::ByColumn {
                    column: self.column(&t.column),
                    transforms: t.transforms,
                    map,
                    other: t.other,
                }
            }
        };
        let made: Vec<&'static str> = match &kind {
            KindRule::Fixed(k) => vec![k],
            KindRule::ByColumn { map, .. } => {
                let mut v: Vec<_> = map.values().copied().collect();
                v.sort_unstable();
                v.dedup();
                v
            }
        };

        // occurred_at
        let occ_span = raw.event.occurred_at.span();
        let occurred_at = self.field(
            "occurred_at",
            FieldKind::DateTime,
            raw.event.occurred_at.into_inner().0,
            occ_span,
        )?;

        // event id
        let id_span = raw.event.event_id.span();
        let id = raw.event.event_id.into_inner();
        let event_id = match (id.column, id.hash) {
            (Some(c), None) => IdRule::Column(self.column(&c), id.prefix.unwrap_or_default()),
            (None, Some(cols)) if !cols.is_empty() => IdRule::Hash(
                cols.iter().map(|c| self.column(c)).collect(),
                id.prefix.unwrap_or_else(|| name.clone()),
            ),
            _ => {
                return Err(self.err(
                    Some(id_span),
                    "event_id needs either column = \"…\" (the export's own record id) or hash = [\"…\", …] (columns that together identify a record)".into(),
                ))
            }
        };

        // subject
        let mut subject = Vec::new();
        for (key, spec) in raw.subject {
            let def = schemas().subject_field(key.get_ref()).ok_or_else(|| {
                self.err(
                    Some(key.span()),
                    format!(
                        "subject has no field {:?} (fields: id_number, name, birth_date, sex, region_code)",
                        key.get_ref()
                    ),
                )
            })?;
            let span = spec.span();
            let f = self.schema_field("subject", def, spec.into_inner().0, span)?;
            subject.push((key.into_inner(), f));
        }

        // data
        let mut data = BTreeMap::new();
        for (kind_key, fields) in raw.data {
            let Some(k) = made.iter().find(|k| **k == kind_key.get_ref()) else {
                return Err(self.err(
                    Some(kind_key.span()),
                    format!(
                        "[data.{}] is not a kind this profile makes (it makes: {})",
                        kind_key.get_ref(),
                        made.join(", ")
                    ),
                ));
            };
            let def = &schemas().kinds[k];
            let mut out = Vec::new();
            for (key, spec) in fields {
                let fd = def.field(key.get_ref()).ok_or_else(|| {
                    self.err(
                        Some(key.span()),
                        format!(
                            "{k} has no field {:?} (fields: {})",
                            key.get_ref(),
                            def.field_names()
                        ),
                    )
                })?;
                let span = spec.span();
                let f = self.schema_field("data", fd, spec.into_inner().0, span)?;
                out.push((key.into_inner(), f));
            }
            for fd in def.fields.iter().filter(|f| f.required) {
                if !out.iter().any(|(n, _)| *n == fd.name) {
                    return Err(self.err(
                        Some(kind_key.span()),
                        format!("[data.{k}] lacks {}, which every {k} event needs", fd.name),
                    ));
                }
            }
            data.insert(*k, out);
        }
        for k in &made {
            if !data.contains_key(k) {
                return Err(self.err(
                    Some(kind_span.clone()),
                    format!("the profile makes {k} events but has no [data.{k}] table"),
                ));
            }
        }

        // skip rules
        let mut skips = Vec::new();
        for s in raw.skip {
            let span = s.span();
            let s = s.into_inner();
            let conds = [
                s.equals.clone().map(SkipWhen::Equals),
                s.in_.clone().map(SkipWhen::In),
                s.not_in.clone().map(SkipWhen::NotIn),
                s.empty.map(SkipWhen::Empty),
                s.starts_with.clone().map(SkipWhen::StartsWith),
            ];
            let mut conds = conds.into_iter().flatten();
            let (Some(when), None) = (conds.next(), conds.next()) else {
                return Err(self.err(
                    Some(span),
                    "a [[skip]] rule needs exactly one of equals, in, not_in, empty, starts_with"
                        .into(),
                ));
            };
            skips.push(Skip {
                column: self.column(&s.column),
                when,
                reason: s.reason,
            });
        }

        // Files without a header name their columns in the profile: every column read must be
        // one of them (found now, not as every row refused).
        if let (Some(named), true) = (&raw.file.columns, raw.file.format != Format::Jsonl) {
            let named: Vec<String> = named.iter().map(|c| normalise_header(c)).collect();
            if let Some(c) = self
                .columns
                .iter()
                .find(|c| !named.contains(&normalise_header(c)))
            {
                return Err(self.err(
                    None,
                    format!("column {c:?} is read but not among [file] columns"),
                ));
            }
        }

        Ok(Profile {
            name: name.clone(),
            version,
            source,
            title: raw.profile.title,
            reference: raw.profile.reference,
            file: raw.file,
            tz,
            columns: self.columns,
            kind,
            occurred_at,
            event_id,
            subject,
            data,
            skips,
        })
    }

    fn check_file(&self, f: &FileSpec) -> Result<(), ProfileError> {
        let bad = |m: &str| Err(self.err(None, format!("[file] {m}")));
        if f.delimiter.is_some() && f.format != Format::Csv {
            return bad("delimiter is for csv files only");
        }
        if let Some(d) = f.delimiter {
            if !d.is_ascii() || d == '"' || d == '\n' || d == '\r' {
                return bad("delimiter must be one ASCII character other than a quote or newline");
            }
        }
        if f.sheet.is_some() && f.format != Format::Xlsx {
            return bad("sheet is for xlsx files only");
        }
        if f.format == Format::Xlsx && f.encoding != Encoding::Utf8 {
            return bad("encoding does not apply to xlsx files (Excel stores text as Unicode)");
        }
        if f.format == Format::Jsonl && f.encoding != Encoding::Utf8 {
            return bad("JSON lines are UTF-8; leave encoding out");
        }
        if f.max_rows == 0 || f.max_row_bytes == 0 {
            return bad("max_rows and max_row_bytes must be at least 1");
        }
        match f.format {
            Format::FixedWidth => {
                let (Some(w), Some(c)) = (&f.widths, &f.columns) else {
                    return bad("fixed_width needs widths = [...] and columns = [...]");
                };
                if w.len() != c.len() || w.contains(&0) {
                    return bad("widths and columns must have the same length, widths at least 1");
                }
            }
            Format::Csv | Format::Xlsx => {
                if f.header_row == 0 && f.columns.is_none() {
                    return bad("header_row = 0 (no header) needs columns = [...] to name them");
                }
                if f.header_row > 0 && f.columns.is_some() {
                    return bad(
                        "columns = [...] is for files without a header row (header_row = 0)",
                    );
                }
            }
            Format::Jsonl => {
                if f.columns.is_some() || f.widths.is_some() {
                    return bad("JSON lines name their own columns (the keys); leave columns and widths out");
                }
            }
        }
        if f.widths.is_some() && f.format != Format::FixedWidth {
            return bad("widths is for fixed_width files only");
        }
        Ok(())
    }

    fn schema_field(
        &mut self,
        table: &str,
        def: &FieldDef,
        spec: FieldToml,
        span: std::ops::Range<usize>,
    ) -> Result<Field, ProfileError> {
        self.field(
            &format!("{table}.{}", def.name),
            FieldKind::Schema(def.ty.clone()),
            spec,
            span,
        )
    }

    fn field(
        &mut self,
        path: &str,
        kind: FieldKind,
        spec: FieldToml,
        span: std::ops::Range<usize>,
    ) -> Result<Field, ProfileError> {
        let err = |c: &Self, m: String| c.err(Some(span.clone()), format!("{path}: {m}"));
        let source = match (&spec.column, &spec.columns, &spec.value) {
            (Some(c), None, None) => ValueSource::Column(self.column(c)),
            (None, Some(cs), None) if !cs.is_empty() => ValueSource::Columns(
                cs.iter().map(|c| self.column(c)).collect(),
                spec.join.clone().unwrap_or_default(),
            ),
            (None, None, Some(v)) => ValueSource::Constant(v.0.clone()),
            _ => {
                return Err(err(
                    self,
                    "give exactly one of column = \"…\", columns = [\"…\", …] or value = …".into(),
                ))
            }
        };
        if spec.join.is_some() && spec.columns.is_none() {
            return Err(err(self, "join goes with columns = [...]".into()));
        }
        let ty = &kind;
        let is = |t: &FieldType| matches!(ty, FieldKind::Schema(x) if x == t);
        let dated = matches!(
            ty,
            FieldKind::DateTime | FieldKind::Schema(FieldType::Date | FieldType::Month)
        );
        if spec.formats.is_some() && !dated {
            return Err(err(self, "formats is for dates, months and times".into()));
        }
        if spec.unit.is_some() && !is(&FieldType::Money) {
            return Err(err(self, "unit is for money fields".into()));
        }
        if spec.split.is_some() && !is(&FieldType::List) {
            return Err(err(self, "split is for list fields".into()));
        }
        if spec.time.is_some() && *ty != FieldKind::DateTime {
            return Err(err(self, "time is for occurred_at".into()));
        }
        if spec.other == Other::Skip {
            return Err(err(
                self,
                "other = \"skip\" is for the kind's map; use a [[skip]] rule".into(),
            ));
        }
        if spec.other != Other::Refuse && spec.map.is_none() {
            return Err(err(self, "other goes with map".into()));
        }
        let formats = match (&spec.formats, ty) {
            (Some(f), _) if f.is_empty() => {
                return Err(err(self, "formats must list at least one format".into()))
            }
            (Some(f), _) => f.clone(),
            (None, FieldKind::DateTime) => owned(text::DEFAULT_DATETIME_FORMATS),
            (None, FieldKind::Schema(FieldType::Month)) => owned(text::DEFAULT_MONTH_FORMATS),
            (None, _) => owned(text::DEFAULT_DATE_FORMATS),
        };
        let time = match &spec.time {
            None => NaiveTime::MIN,
            Some(t) => NaiveTime::parse_from_str(t, "%H:%M:%S")
                .map_err(|_| err(self, "time must be written hh:mm:ss".into()))?,
        };
        let mut f = Field {
            path: path.to_string(),
            source,
            transforms: spec.transforms.clone(),
            map: None,
            other: spec.other,
            default: spec.default.map(|s| s.0),
            required: spec.required,
            ty: kind.clone(),
            formats,
            date_formats: owned(text::DEFAULT_DATE_FORMATS),
            time,
            unit: spec.unit.unwrap_or_default(),
            split: spec.split,
        };
        // Every value a profile writes (constants, defaults, map targets) must be one the field
        // takes: checked now, once, rather than on every row.
        let mut targets: Vec<String> = Vec::new();
        if let Some(map) = spec.map {
            let mut m = BTreeMap::new();
            for (code, to) in map {
                targets.push(to.0.clone());
                m.insert(text::apply(&code, &f.transforms), to.0);
            }
            f.map = Some(m);
        }
        if let ValueSource::Constant(c) = &f.source {
            targets.push(c.clone());
        }
        if let Some(d) = &f.default {
            targets.push(d.clone());
        }
        // An empty target means "leave the field out" (e.g. sex code 9, 未说明).
        for t in targets.into_iter().filter(|t| !t.is_empty()) {
            if let Err(why) = f.convert(&t) {
                return Err(err(
                    self,
                    format!("the profile's value {t:?} is refused: {why}"),
                ));
            }
        }
        Ok(f)
    }
}

fn owned(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

fn parse_offset(s: &str) -> Option<FixedOffset> {
    let (sign, rest) = match s.as_bytes().first()? {
        b'+' => (1, &s[1..]),
        b'-' => (-1, &s[1..]),
        _ => return None,
    };
    let (h, m) = rest.split_once(':')?;
    let (h, m): (i32, i32) = (h.parse().ok()?, m.parse().ok()?);
    if !(0..=14).contains(&h) || !(0..60).contains(&m) {
        return None;
    }
    FixedOffset::east_opt(sign * (h * 3600 + m * 60))
}

/// Header cells are matched after trimming, full-width to half-width and removing spaces, so
/// that `医疗费总额（元）` in the export matches `医疗费总额(元)` in the profile.
pub(crate) fn normalise_header(s: &str) -> String {
    text::halfwidth(s)
        .chars()
        .filter(|c| !c.is_whitespace() && *c != '\u{FEFF}')
        .collect()
}

impl Field {
    /// Convert the field's text (after transforms and code map) into the event's JSON value.
    pub(crate) fn convert(&self, t: &str) -> Result<Value, String> {
        let f = self;
        Ok(match &f.ty {
            FieldKind::DateTime => Value::String(
                text::parse_datetime(t, &f.formats, &f.date_formats, f.time)?
                    .format("%Y-%m-%dT%H:%M:%S")
                    .to_string(),
            ),
            FieldKind::Schema(ty) => match ty {
                FieldType::Text => Value::String(t.to_string()),
                FieldType::Date => Value::String(
                    text::parse_date(t, &f.formats)?
                        .format("%Y-%m-%d")
                        .to_string(),
                ),
                FieldType::Month => Value::String(text::parse_month(t, &f.formats)?),
                FieldType::Money => Value::from(text::parse_money(t, f.unit)?.fen()),
                FieldType::Integer => Value::from(text::parse_integer(t)?),
                FieldType::Bool => Value::Bool(text::parse_bool(t)?),
                FieldType::Code(codes) => {
                    if codes.iter().any(|c| c == t) {
                        Value::String(t.to_string())
                    } else {
                        return Err(format!(
                            "not one of {} (add a map from the export's codes)",
                            codes.join(", ")
                        ));
                    }
                }
                FieldType::List => Value::Array(
                    split(t, f.split.as_deref())
                        .map(|s| Value::String(s.to_string()))
                        .collect(),
                ),
            },
        })
    }
}

fn split<'a>(t: &'a str, sep: Option<&'a str>) -> Box<dyn Iterator<Item = &'a str> + 'a> {
    let parts: Box<dyn Iterator<Item = &str>> = match sep {
        Some(s) => Box::new(t.split(s)),
        None => Box::new(t.split([';', ',', '；', '，', '|'])),
    };
    Box::new(parts.map(text::trim).filter(|s| !s.is_empty()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_headerless_profile_reads_only_the_columns_it_names() {
        let text = crate::shipped::text("canlian-disability").unwrap_or_default();
        let bad = text.replace(
            "certified_on = { column = \"发证日期\"",
            "certified_on = { column = \"发证时间\"",
        );
        let e = Profile::parse(&bad, Path::new("c.toml"))
            .map(|_| ())
            .unwrap_err();
        assert!(
            e.to_string()
                .contains("\"发证时间\" is read but not among [file] columns"),
            "{e}"
        );
        assert!(Profile::parse(text, Path::new("c.toml")).is_ok());
    }
}
