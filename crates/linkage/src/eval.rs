//! Generic evaluation: link two CSV files (or deduplicate one) with the Fellegi–Sunter engine,
//! trained by EM on the files themselves, and score the result against known true pairs.
//!
//! # Spec format (TOML)
//!
//! ```toml
//! # The column holding each record's identifier (in both files).
//! id = "rec_id"
//! # Optional: a candidate pair is predicted a match when its total weight (bits, prior
//! # included) is at least this. Default 0, i.e. a match probability of at least 0.5.
//! threshold = 0.0
//! # Optional: a blocking key shared by more records than this (default 50) is split by the
//! # other blocking fields' keys (sub-blocks); a sub-block still larger is cut to this many, and
//! # the report says how many records a cut left uncompared. At least 1. Each record is then
//! # compared with at most (its blocking keys × max_block) records: candidate pairs grow
//! # linearly with the records.
//! max_block = 50
//! # Optional: EM iterations (default 30; 0 keeps the rules' estimates).
//! iterations = 30
//!
//! # One [[field]] per compared column, in any order.
//! [[field]]
//! column = "id_no"
//! type = "identity_number"   # GB 11643 numbers: exact / upgraded_15 / one_substitution /
//!                            # adjacent_swap / different / missing
//! [[field]]
//! columns = ["family", "given"]   # a field built from several columns (joined by a space)
//! name = "name"                   # optional: the field's name in reports
//! type = "person_name"       # exact / homophone (same pinyin) / close / far / missing
//! [[field]]
//! columns = ["birth_year", "birth_month", "birth_day"]   # a date from its parts
//! type = "date"              # one column: YYYY-MM-DD, YYYYMMDD, YYYY/MM/DD or YYYY.MM.DD:
//!                            # exact / day_month_swapped / close / far / missing
//! invalid = "missing"        # optional (dates, numbers): a value that does not parse counts as
//!                            # missing (and is counted in the report) instead of stopping the run
//! [[field]]
//! column = "passport"
//! type = "identifier"        # any other identifier: exact / one_edit / two_edits / different /
//!                            # missing (after folding case, width and punctuation)
//! [[field]]
//! column = "address"
//! type = "text"              # free text: exact / close / far / missing
//! block = false              # optional: also use this column as a blocking key
//! tf = false                 # optional: term-frequency adjustment of exact agreement
//! ```
//!
//! Types: `identity_number`, `identifier`, `person_name`, `given_name`, `family_name`, `date`,
//! `text` (address-like free text), `code` (exact / different / missing), `number` (exact / close
//! within 1% / far / missing). By default `identity_number`, `identifier`, `person_name` and
//! `date` fields are blocking keys (at least one field must be), and the three name types get
//! term-frequency adjustment.
//!
//! Files: CSV with a header row and at least one record. With a right file, left records are
//! linked to right records; without, the left file is deduplicated (pairs within it). The truth
//! file is CSV with a header row and two columns: the ids of a true pair (left id, right id; or two
//! left ids).
//!
//! Training: `u` from random pairs; `m` and the match share by EM ([`crate::em`]) over the counts
//! of comparison patterns of every candidate pair (memory: the distinct patterns, not the pairs);
//! pairs are compared again, one record at a time, to be scored. A degenerate fit is an error.
//! Precision is `null` (undefined) when nothing is predicted.
//!
//! Errors name the file, the line and the column; they never repeat a cell's value.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Instant;

use chrono::NaiveDate;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::compare::{self, DATE_LEVELS, NAME_LEVELS};
use crate::em::{self, Degenerate, EmInput, Patterns};
use crate::idnum::{self, IdForm};
use crate::index::fnv;
use crate::model::{FieldModel, LevelModel, Model, TfSettings};
use crate::normalise::{normalise_name, normalise_text, NormName};
use crate::train::{round_sig, u_from_counts, U_SAMPLES, U_SEED};

/// Comparator type of a column.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FieldType {
    IdentityNumber,
    Identifier,
    PersonName,
    GivenName,
    FamilyName,
    Date,
    Text,
    Code,
    Number,
}

impl FieldType {
    fn levels(self) -> &'static [&'static str] {
        match self {
            FieldType::IdentityNumber => &[
                "exact",
                "upgraded_15",
                "one_substitution",
                "adjacent_swap",
                "different",
                "missing",
            ],
            FieldType::Identifier => &["exact", "one_edit", "two_edits", "different", "missing"],
            FieldType::PersonName | FieldType::GivenName | FieldType::FamilyName => &NAME_LEVELS,
            FieldType::Date => &DATE_LEVELS,
            FieldType::Text | FieldType::Number => &["exact", "close", "far", "missing"],
            FieldType::Code => &["exact", "different", "missing"],
        }
    }

    fn blocks_by_default(self) -> bool {
        matches!(
            self,
            FieldType::IdentityNumber
                | FieldType::Identifier
                | FieldType::PersonName
                | FieldType::Date
        )
    }

    fn tf_by_default(self) -> bool {
        matches!(
            self,
            FieldType::PersonName | FieldType::GivenName | FieldType::FamilyName
        )
    }
}

/// What to do with a value that does not parse (dates, numbers).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Invalid {
    /// Stop with an error naming the file, line and column (the default).
    #[default]
    Error,
    /// Take it as missing, and count it in the report.
    Missing,
}

/// One compared field: one column, or several joined.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FieldSpec {
    #[serde(default)]
    pub column: Option<String>,
    #[serde(default)]
    pub columns: Option<Vec<String>>,
    /// The field's name in reports (default: the column, or the columns joined by `+`).
    #[serde(default)]
    pub name: Option<String>,
    #[serde(rename = "type")]
    pub kind: FieldType,
    #[serde(default)]
    pub block: Option<bool>,
    #[serde(default)]
    pub tf: Option<bool>,
    #[serde(default)]
    pub invalid: Invalid,
}

impl FieldSpec {
    /// The columns the field reads.
    pub fn source_columns(&self) -> Vec<&str> {
        match (&self.column, &self.columns) {
            (Some(c), _) => vec![c.as_str()],
            (None, Some(cs)) => cs.iter().map(String::as_str).collect(),
            (None, None) => Vec::new(),
        }
    }

    /// The field's name in reports and errors.
    pub fn label(&self) -> String {
        self.name
            .clone()
            .unwrap_or_else(|| self.source_columns().join("+"))
    }

    fn blocks(&self) -> bool {
        self.block.unwrap_or(self.kind.blocks_by_default())
    }
}

/// The evaluation spec (see the module doc for the TOML form).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Spec {
    pub id: String,
    #[serde(default)]
    pub threshold: f64,
    #[serde(default = "default_max_block")]
    pub max_block: usize,
    #[serde(default = "default_iterations")]
    pub iterations: usize,
    #[serde(rename = "field", default)]
    pub fields: Vec<FieldSpec>,
}

fn default_max_block() -> usize {
    50
}

fn default_iterations() -> usize {
    30
}

/// Most fields a spec may compare.
pub const MAX_FIELDS: usize = 64;

/// What went wrong, with the file, line and column.
#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    #[error("cannot read {}: {source}", file.display())]
    Io {
        file: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}: line {line}, column {column}: {message}", file.display())]
    Spec {
        file: PathBuf,
        line: usize,
        column: usize,
        message: String,
    },
    #[error("{}: line {line}, column {column:?}: {message}", file.display())]
    Csv {
        file: PathBuf,
        line: u64,
        column: String,
        message: String,
    },
    #[error("{}: {message}", file.display())]
    Empty { file: PathBuf, message: String },
    #[error("the model trained on these files is refused: {0}")]
    Degenerate(#[from] Degenerate),
}

/// Line and column (from 1) of a byte offset in `text`.
fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let col = before
        .rfind('\n')
        .map_or(before.chars().count(), |i| before[i + 1..].chars().count())
        + 1;
    (line, col)
}

/// Read and check a spec file.
pub fn read_spec(path: &Path) -> Result<Spec, EvalError> {
    let text = std::fs::read_to_string(path).map_err(|source| EvalError::Io {
        file: path.to_path_buf(),
        source,
    })?;
    parse_spec(&text, path)
}

/// Parse and check a spec; `path` is only used in errors.
pub fn parse_spec(text: &str, path: &Path) -> Result<Spec, EvalError> {
    let spec: Spec = toml::from_str(text).map_err(|e| {
        let (line, column) = e.span().map_or((0, 0), |s| line_col(text, s.start));
        EvalError::Spec {
            file: path.to_path_buf(),
            line,
            column,
            message: e.message().to_string(),
        }
    })?;
    let at = |needle: &str| text.find(needle).map_or((1, 1), |o| line_col(text, o));
    let err = |(line, column): (usize, usize), message: String| EvalError::Spec {
        file: path.to_path_buf(),
        line,
        column,
        message,
    };
    if spec.fields.is_empty() {
        return Err(err((1, 1), "the spec has no [[field]]".into()));
    }
    if spec.fields.len() > MAX_FIELDS {
        return Err(err(
            (1, 1),
            format!("the spec compares more than {MAX_FIELDS} fields"),
        ));
    }
    if !spec.threshold.is_finite() {
        return Err(err(
            at("threshold"),
            "threshold must be a finite number of bits".into(),
        ));
    }
    if spec.max_block == 0 {
        return Err(err(
            at("max_block"),
            "max_block must be at least 1 (0 would compare nothing)".into(),
        ));
    }
    let mut seen = HashSet::new();
    for f in &spec.fields {
        match (&f.column, &f.columns) {
            (Some(_), Some(_)) => {
                return Err(err(
                    at("columns"),
                    "a field has either column or columns, not both".into(),
                ))
            }
            (None, None) => {
                return Err(err(
                    at(&format!("{:?}", f.kind).to_lowercase()),
                    "a field needs column = \"…\" or columns = [\"…\", …]".into(),
                ))
            }
            (None, Some(cs)) if cs.is_empty() => {
                return Err(err(at("columns"), "columns is empty".into()))
            }
            (None, Some(cs)) if f.kind == FieldType::Date && cs.len() != 3 => {
                return Err(err(
                    at("columns"),
                    format!(
                        "a date from columns takes three (year, month, day), not {}",
                        cs.len()
                    ),
                ))
            }
            _ => {}
        }
        if f.invalid == Invalid::Missing && !matches!(f.kind, FieldType::Date | FieldType::Number) {
            return Err(err(
                at("invalid"),
                format!(
                    "field {:?}: invalid = \"missing\" applies to dates and numbers only",
                    f.label()
                ),
            ));
        }
        let label = f.label();
        if !seen.insert(label.clone()) {
            return Err(err(
                at(&format!("\"{label}\"")),
                format!("field {label:?} is compared twice"),
            ));
        }
    }
    if !spec.fields.iter().any(FieldSpec::blocks) {
        return Err(err(
            (1, 1),
            "no field is a blocking key: add block = true to one".into(),
        ));
    }
    Ok(spec)
}

#[derive(Clone, Debug)]
enum Value {
    Missing,
    Id(IdForm),
    Ident(String),
    Name(NormName),
    Date(NaiveDate),
    Text(String),
    Number(f64),
}

fn parse_date(s: &str) -> Option<NaiveDate> {
    ["%Y-%m-%d", "%Y%m%d", "%Y/%m/%d", "%Y.%m.%d"]
        .iter()
        .find_map(|f| NaiveDate::parse_from_str(s, f).ok())
}

/// A date from year, month and day cells (all empty: missing).
fn date_from_parts(parts: &[&str]) -> Result<Value, String> {
    let t: Vec<&str> = parts.iter().map(|p| p.trim()).collect();
    if t.iter().all(|p| p.is_empty()) {
        return Ok(Value::Missing);
    }
    let num = |s: &str| s.parse::<i64>().ok();
    match (num(t[0]), num(t[1]), num(t[2])) {
        (Some(y), Some(m), Some(d)) => i32::try_from(y)
            .ok()
            .zip(u32::try_from(m).ok())
            .zip(u32::try_from(d).ok())
            .and_then(|((y, m), d)| NaiveDate::from_ymd_opt(y, m, d))
            .map(Value::Date)
            .ok_or_else(|| "year, month and day do not make a date".to_string()),
        _ => Err("year, month and day are not all whole numbers".to_string()),
    }
}

/// An identifier folded for comparison: half-width, upper case, letters and digits only.
fn fold_identifier(s: &str) -> String {
    s.chars()
        .map(crate::normalise::half_width)
        .filter(|c| c.is_alphanumeric())
        .flat_map(char::to_uppercase)
        .collect()
}

fn parse_value(kind: FieldType, raw: &str) -> Result<Value, String> {
    let t = raw.trim();
    if t.is_empty() {
        return Ok(Value::Missing);
    }
    Ok(match kind {
        FieldType::IdentityNumber => {
            let folded: String = t
                .chars()
                .map(crate::normalise::half_width)
                .filter(|c| !c.is_whitespace())
                .map(|c| if c == 'x' { 'X' } else { c })
                .collect();
            Value::Id(idnum::id_form(Some(&folded)))
        }
        FieldType::Identifier => {
            let f = fold_identifier(t);
            if f.is_empty() {
                Value::Missing
            } else {
                Value::Ident(f)
            }
        }
        FieldType::PersonName => Value::Name(normalise_name(t)),
        FieldType::GivenName | FieldType::FamilyName => Value::Name(normalise_name(t)),
        FieldType::Date => Value::Date(
            parse_date(t).ok_or("not a date (expected YYYY-MM-DD, YYYYMMDD or YYYY/MM/DD)")?,
        ),
        FieldType::Text | FieldType::Code => Value::Text(normalise_text(t)),
        FieldType::Number => Value::Number(
            t.replace([',', '，'], "")
                .parse::<f64>()
                .ok()
                .filter(|x| x.is_finite())
                .ok_or("not a number")?,
        ),
    })
}

/// Edit distance with adjacent transpositions, stopping early above 2.
fn small_edits(a: &str, b: &str) -> usize {
    if a.len().abs_diff(b.len()) > 2 {
        return 3;
    }
    strsim::damerau_levenshtein(a, b)
}

fn compare_values(kind: FieldType, a: &Value, b: &Value) -> u8 {
    let missing = (kind.levels().len() - 1) as u8;
    match (a, b) {
        (Value::Id(x), Value::Id(y)) => match y {
            IdForm::Valid(m) | IdForm::Upgraded(m) => idnum::compare_id(x, m).index() as u8,
            IdForm::Invalid(m) => match x {
                IdForm::Valid(n) | IdForm::Upgraded(n) => idnum::compare_id(y, n).index() as u8,
                IdForm::Invalid(n) if n == m => 0,
                IdForm::Invalid(_) => idnum::IdLevel::Different as u8,
                _ => missing,
            },
            _ => missing,
        },
        (Value::Ident(x), Value::Ident(y)) => match small_edits(x, y) {
            0 => 0,
            1 => 1,
            2 => 2,
            _ => 3,
        },
        (Value::Name(x), Value::Name(y)) => compare::compare_name(x, &y.key, &y.sound, y.script),
        (Value::Date(x), Value::Date(y)) => compare::compare_date(Some(*x), Some(*y)),
        (Value::Text(x), Value::Text(y)) if kind == FieldType::Code => {
            if x.is_empty() || y.is_empty() {
                missing
            } else if x == y {
                0
            } else {
                1
            }
        }
        (Value::Text(x), Value::Text(y)) => {
            if x.is_empty() || y.is_empty() {
                missing
            } else if x == y {
                0
            } else if strsim::normalized_levenshtein(x, y) >= 0.8 {
                1
            } else {
                2
            }
        }
        (Value::Number(x), Value::Number(y)) => {
            if x == y {
                0
            } else if (x - y).abs() <= 0.01 * x.abs().max(y.abs()) {
                1
            } else {
                2
            }
        }
        _ => missing,
    }
}

/// The value an exact agreement is about (for term frequencies).
fn tf_key(v: &Value) -> Option<&str> {
    match v {
        Value::Name(n) => Some(n.key.as_str()),
        Value::Text(t) | Value::Ident(t) => Some(t.as_str()),
        _ => None,
    }
}

fn block_keys(field: usize, v: &Value, out: &mut Vec<u64>) {
    let f = (field as u64).to_le_bytes();
    match v {
        Value::Id(IdForm::Valid(id)) | Value::Id(IdForm::Upgraded(id)) => {
            out.push(fnv(&[&f, &idnum::key17(id).to_le_bytes()]));
        }
        Value::Id(IdForm::Invalid(id)) => {
            let mut keys = Vec::new();
            idnum::repair_keys(id, &mut keys);
            out.extend(keys.iter().map(|k| fnv(&[&f, &k.to_le_bytes()])));
        }
        Value::Ident(s) => out.push(fnv(&[&f, s.as_bytes()])),
        Value::Name(n) if !n.sound.is_empty() => out.push(fnv(&[&f, n.sound.as_bytes()])),
        Value::Date(d) => {
            out.push(fnv(&[&f, d.to_string().as_bytes()]));
            if let Some(s) = compare::swap_day_month(*d) {
                out.push(fnv(&[&f, s.to_string().as_bytes()]));
            }
        }
        Value::Text(t) if !t.is_empty() => out.push(fnv(&[&f, t.as_bytes()])),
        Value::Number(x) => out.push(fnv(&[&f, &x.to_bits().to_le_bytes()])),
        _ => {}
    }
}

struct Table {
    ids: Vec<String>,
    rows: Vec<Vec<Value>>,
    /// Per field: values that did not parse and were taken as missing.
    invalid: Vec<usize>,
}

fn csv_err(file: &Path, line: u64, column: &str, message: impl Into<String>) -> EvalError {
    EvalError::Csv {
        file: file.to_path_buf(),
        line,
        column: column.to_string(),
        message: message.into(),
    }
}

fn open_csv(path: &Path) -> Result<csv::Reader<std::fs::File>, EvalError> {
    let f = std::fs::File::open(path).map_err(|source| EvalError::Io {
        file: path.to_path_buf(),
        source,
    })?;
    Ok(csv::ReaderBuilder::new().has_headers(true).from_reader(f))
}

fn csv_record_err(path: &Path, e: &csv::Error) -> EvalError {
    let line = e.position().map_or(0, |p| p.line());
    let message = match e.kind() {
        csv::ErrorKind::UnequalLengths {
            expected_len, len, ..
        } => format!("the row has {len} fields, the header has {expected_len}"),
        csv::ErrorKind::Utf8 { .. } => "the row is not valid UTF-8".to_string(),
        _ => "the row cannot be read as CSV".to_string(),
    };
    csv_err(path, line, "", message)
}

fn read_table(path: &Path, spec: &Spec) -> Result<Table, EvalError> {
    let mut r = open_csv(path)?;
    let headers = r.headers().map_err(|e| csv_record_err(path, &e))?.clone();
    let find = |c: &str| {
        headers
            .iter()
            .position(|h| h.trim() == c)
            .ok_or_else(|| csv_err(path, 1, c, "the header has no such column"))
    };
    let id_col = find(&spec.id)?;
    let cols: Vec<Vec<usize>> = spec
        .fields
        .iter()
        .map(|f| f.source_columns().into_iter().map(find).collect())
        .collect::<Result<_, _>>()?;
    let labels: Vec<String> = spec.fields.iter().map(FieldSpec::label).collect();
    let mut ids = Vec::new();
    let mut rows = Vec::new();
    let mut invalid = vec![0usize; spec.fields.len()];
    let mut seen: HashMap<String, u64> = HashMap::new();
    for rec in r.records() {
        let rec = rec.map_err(|e| csv_record_err(path, &e))?;
        let line = rec.position().map_or(0, |p| p.line());
        let id = rec.get(id_col).unwrap_or("").trim().to_string();
        if id.is_empty() {
            return Err(csv_err(path, line, &spec.id, "the id is empty"));
        }
        if let Some(prev) = seen.insert(id.clone(), line) {
            return Err(csv_err(
                path,
                line,
                &spec.id,
                format!("the id repeats the one on line {prev}"),
            ));
        }
        let mut row = Vec::with_capacity(cols.len());
        for (f, (field, cs)) in spec.fields.iter().zip(&cols).enumerate() {
            let parts: Vec<&str> = cs.iter().map(|c| rec.get(*c).unwrap_or("")).collect();
            let parsed = if field.kind == FieldType::Date && parts.len() == 3 {
                date_from_parts(&parts)
            } else if parts.len() == 1 {
                parse_value(field.kind, parts[0])
            } else {
                let joined: Vec<&str> = parts
                    .iter()
                    .map(|p| p.trim())
                    .filter(|p| !p.is_empty())
                    .collect();
                parse_value(field.kind, &joined.join(" "))
            };
            let v = match parsed {
                Ok(v) => v,
                Err(_) if field.invalid == Invalid::Missing => {
                    invalid[f] += 1;
                    Value::Missing
                }
                Err(m) => {
                    let column = if cs.len() == 1 {
                        labels[f].clone()
                    } else {
                        format!("{} ({})", labels[f], field.source_columns().join(", "))
                    };
                    return Err(csv_err(path, line, &column, m));
                }
            };
            row.push(v);
        }
        ids.push(id);
        rows.push(row);
    }
    if rows.is_empty() {
        return Err(EvalError::Empty {
            file: path.to_path_buf(),
            message: "the file has a header but no records".into(),
        });
    }
    Ok(Table { ids, rows, invalid })
}

/// The result of an evaluation run.
#[derive(Clone, Debug, Serialize)]
pub struct EvalReport {
    /// `link` (two files) or `dedup` (one).
    pub mode: String,
    pub left_records: usize,
    pub right_records: usize,
    pub truth_pairs: usize,
    /// Candidate pairs compared (after blocking).
    pub candidate_pairs: usize,
    /// True pairs found among the candidates (blocking recall = this / truth_pairs).
    pub truth_pairs_in_candidates: usize,
    /// Blocking keys shared by more than `max_block` records, split by other keys.
    pub sub_blocked_keys: usize,
    /// Left records for which a block (or sub-block) was still larger than `max_block` and cut:
    /// some of their candidates were not compared.
    pub records_with_cut_blocks: usize,
    /// Per field: values that did not parse and were taken as missing (`invalid = "missing"`).
    pub invalid_values: BTreeMap<String, usize>,
    pub predicted_pairs: usize,
    pub true_positives: usize,
    pub false_positives: usize,
    pub false_negatives: usize,
    /// `None` (null in JSON) when nothing was predicted: precision is undefined.
    pub precision: Option<f64>,
    /// `None` when there are no true pairs.
    pub recall: Option<f64>,
    pub f1: f64,
    pub threshold: f64,
    pub elapsed_ms: u128,
    /// The model trained on the files.
    pub model: Model,
}

fn fmt_opt(x: Option<f64>) -> String {
    x.map_or_else(|| "undefined".to_string(), |v| format!("{v:.4}"))
}

impl fmt::Display for EvalReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "mode {}: {} left records, {} right records, {} true pairs",
            self.mode, self.left_records, self.right_records, self.truth_pairs
        )?;
        writeln!(
            f,
            "candidate pairs compared {} (blocking recall {})",
            self.candidate_pairs,
            fmt_opt(ratio(self.truth_pairs_in_candidates, self.truth_pairs))
        )?;
        if self.sub_blocked_keys > 0 || self.records_with_cut_blocks > 0 {
            writeln!(
                f,
                "blocks larger than max_block: {} keys split by other keys; {} records left with some candidates uncompared",
                self.sub_blocked_keys, self.records_with_cut_blocks
            )?;
        }
        for (field, n) in &self.invalid_values {
            if *n > 0 {
                writeln!(f, "field {field}: {n} values not valid, taken as missing")?;
            }
        }
        writeln!(
            f,
            "predicted {} pairs at threshold {:.2}: {} true positives, {} false positives, {} false negatives",
            self.predicted_pairs, self.threshold, self.true_positives, self.false_positives,
            self.false_negatives
        )?;
        writeln!(
            f,
            "precision {}  recall {}  F1 {:.4}  ({} ms)",
            fmt_opt(self.precision),
            fmt_opt(self.recall),
            self.f1,
            self.elapsed_ms
        )?;
        writeln!(
            f,
            "model {} ({}), lambda {}",
            self.model.version, self.model.method, self.model.lambda
        )?;
        let weights = self.model.weights();
        for (fm, w) in self.model.fields.iter().zip(weights) {
            let levels: Vec<String> = fm
                .levels
                .iter()
                .zip(w)
                .map(|(l, w)| format!("{} {:+.2}", l.level, w))
                .collect();
            writeln!(f, "  {}: {}", fm.field, levels.join(", "))?;
        }
        Ok(())
    }
}

fn ratio(a: usize, b: usize) -> Option<f64> {
    (b > 0).then(|| a as f64 / b as f64)
}

fn read_truth(
    path: &Path,
    left: &HashMap<&str, usize>,
    right: &HashMap<&str, usize>,
    dedup: bool,
) -> Result<HashSet<(usize, usize)>, EvalError> {
    let mut r = open_csv(path)?;
    let headers = r.headers().map_err(|e| csv_record_err(path, &e))?.clone();
    if headers.len() < 2 {
        return Err(csv_err(
            path,
            1,
            "",
            "the truth file needs two columns (left id, right id)",
        ));
    }
    let names = [
        headers.get(0).unwrap_or("").to_string(),
        headers.get(1).unwrap_or("").to_string(),
    ];
    let mut out = HashSet::new();
    for rec in r.records() {
        let rec = rec.map_err(|e| csv_record_err(path, &e))?;
        let line = rec.position().map_or(0, |p| p.line());
        let a = rec.get(0).unwrap_or("").trim();
        let b = rec.get(1).unwrap_or("").trim();
        let i = *left
            .get(a)
            .ok_or_else(|| csv_err(path, line, &names[0], "no left record has this id"))?;
        let table = if dedup { left } else { right };
        let j = *table
            .get(b)
            .ok_or_else(|| csv_err(path, line, &names[1], "no record has this id"))?;
        if dedup {
            if i != j {
                out.insert((i.min(j), i.max(j)));
            }
        } else {
            out.insert((i, j));
        }
    }
    Ok(out)
}

fn start_fields(spec: &Spec) -> Vec<FieldModel> {
    spec.fields
        .iter()
        .map(|f| {
            let names = f.kind.levels();
            let n = names.len();
            let agree = n - 2; // levels before "far/different" and "missing"
            let levels = names
                .iter()
                .enumerate()
                .map(|(i, l)| {
                    let m = if i == 0 {
                        0.85
                    } else if i < agree {
                        0.10 / (agree - 1).max(1) as f64
                    } else if i == n - 2 {
                        0.05
                    } else {
                        0.1
                    };
                    LevelModel {
                        level: l.to_string(),
                        m,
                        u: 0.5,
                    }
                })
                .collect();
            FieldModel {
                field: f.label(),
                levels,
                missing: Some(n - 1),
                tf: f.tf.unwrap_or(f.kind.tf_by_default()),
            }
        })
        .collect()
}

/// Blocking over the right table: per key, the right records that have it; keys shared by more
/// than `max_block` records are split by every other blocking field's keys.
struct Blocker {
    /// The blocking fields.
    blocking: Vec<usize>,
    blocks: HashMap<u64, Vec<u32>>,
    sub: HashMap<u64, Vec<u32>>,
    max_block: usize,
}

fn row_keys(blocking: &[usize], row: &[Value], out: &mut Vec<(usize, u64)>) {
    out.clear();
    let mut keys = Vec::new();
    for f in blocking {
        keys.clear();
        block_keys(*f, &row[*f], &mut keys);
        keys.sort_unstable();
        keys.dedup();
        out.extend(keys.iter().map(|k| (*f, *k)));
    }
}

fn sub_key(a: u64, b: u64) -> u64 {
    fnv(&[&a.to_le_bytes(), &b.to_le_bytes()])
}

impl Blocker {
    fn build(spec: &Spec, rows: &[Vec<Value>]) -> Blocker {
        let blocking: Vec<usize> = (0..spec.fields.len())
            .filter(|f| spec.fields[*f].blocks())
            .collect();
        let mut blocks: HashMap<u64, Vec<u32>> = HashMap::new();
        let mut keys = Vec::new();
        for (j, row) in rows.iter().enumerate() {
            row_keys(&blocking, row, &mut keys);
            for (_, k) in &keys {
                blocks.entry(*k).or_default().push(j as u32);
            }
        }
        let mut sub: HashMap<u64, Vec<u32>> = HashMap::new();
        for (j, row) in rows.iter().enumerate() {
            row_keys(&blocking, row, &mut keys);
            for (f, k) in &keys {
                if blocks.get(k).map_or(0, Vec::len) <= spec.max_block {
                    continue;
                }
                for (g, k2) in &keys {
                    if g != f {
                        sub.entry(sub_key(*k, *k2)).or_default().push(j as u32);
                    }
                }
            }
        }
        Blocker {
            blocking,
            blocks,
            sub,
            max_block: spec.max_block,
        }
    }

    fn oversized(&self) -> usize {
        self.blocks
            .values()
            .filter(|b| b.len() > self.max_block)
            .count()
    }

    /// Candidates of a left row (right records, sorted, each once); whether a cut left some
    /// uncompared.
    fn candidates(&self, row: &[Value], keys: &mut Vec<(usize, u64)>, out: &mut Vec<u32>) -> bool {
        row_keys(&self.blocking, row, keys);
        out.clear();
        let mut cut = false;
        for (f, k) in keys.iter() {
            let Some(b) = self.blocks.get(k) else {
                continue;
            };
            if b.len() <= self.max_block {
                out.extend_from_slice(b);
                continue;
            }
            for (g, k2) in keys.iter() {
                if g == f {
                    continue;
                }
                if let Some(s) = self.sub.get(&sub_key(*k, *k2)) {
                    if s.len() > self.max_block {
                        cut = true;
                    }
                    out.extend_from_slice(&s[..s.len().min(self.max_block)]);
                }
            }
            if keys.iter().all(|(g, _)| g == f) {
                // no other key to split by: the block is cut
                cut = true;
                out.extend_from_slice(&b[..self.max_block]);
            }
        }
        out.sort_unstable();
        out.dedup();
        cut
    }
}

/// Train on the files, link (or deduplicate), and score against the truth pairs.
pub fn run_eval(
    spec_path: &Path,
    left: &Path,
    right: Option<&Path>,
    truth: &Path,
) -> Result<EvalReport, EvalError> {
    let t0 = Instant::now();
    let spec = read_spec(spec_path)?;
    let l = read_table(left, &spec)?;
    let r = match right {
        Some(p) => Some(read_table(p, &spec)?),
        None => None,
    };
    let dedup = r.is_none();
    let rt = r.as_ref().unwrap_or(&l);
    let lmap: HashMap<&str, usize> = l
        .ids
        .iter()
        .enumerate()
        .map(|(i, s)| (s.as_str(), i))
        .collect();
    let rmap: HashMap<&str, usize> = rt
        .ids
        .iter()
        .enumerate()
        .map(|(i, s)| (s.as_str(), i))
        .collect();
    let truth_set = read_truth(truth, &lmap, &rmap, dedup)?;
    let nf = spec.fields.len();
    let kinds: Vec<FieldType> = spec.fields.iter().map(|f| f.kind).collect();
    let blocker = Blocker::build(&spec, &rt.rows);

    // Every candidate pair of every left record, one record at a time.
    let for_each_pair = |visit: &mut dyn FnMut(usize, usize, &[u8]), cut_records: &mut usize| {
        let mut keys = Vec::new();
        let mut cands = Vec::new();
        let mut levels = vec![0u8; nf];
        for (i, row) in l.rows.iter().enumerate() {
            if blocker.candidates(row, &mut keys, &mut cands) {
                *cut_records += 1;
            }
            for j in &cands {
                let j = *j as usize;
                if dedup && j <= i {
                    continue;
                }
                for (f, lv) in levels.iter_mut().enumerate() {
                    *lv = compare_values(kinds[f], &row[f], &rt.rows[j][f]);
                }
                visit(i, j, &levels);
            }
        }
    };

    // Pass 1: the counts of comparison patterns, for EM.
    let mut patterns: Patterns = BTreeMap::new();
    let mut npairs = 0usize;
    let mut cut_records = 0usize;
    for_each_pair(
        &mut |_, _, levels| {
            npairs += 1;
            match patterns.get_mut(levels) {
                Some(c) => *c += 1.0,
                None => {
                    patterns.insert(levels.to_vec(), 1.0);
                }
            }
        },
        &mut cut_records,
    );

    // u from random pairs, m by EM over candidate pairs.
    let mut fields = start_fields(&spec);
    let (nl, nr) = (l.rows.len(), rt.rows.len());
    let mut counts: Vec<Vec<f64>> = fields.iter().map(|f| vec![0.0; f.levels.len()]).collect();
    let mut rng = ChaCha8Rng::seed_from_u64(U_SEED);
    let samples = U_SAMPLES.min(nl.saturating_mul(nr));
    let id_agrees = |f: usize, lv: u8| {
        spec.fields[f].kind == FieldType::IdentityNumber && lv < idnum::IdLevel::Different as u8
    };
    let mut counted = 0usize;
    let mut levels = vec![0u8; nf];
    for _ in 0..samples {
        let i = rng.gen_range(0..nl);
        let mut j = rng.gen_range(0..nr);
        if dedup && i == j {
            // a record paired with itself is no random pair
            j = (j + 1) % nr;
        }
        for (f, lv) in levels.iter_mut().enumerate() {
            *lv = compare_values(kinds[f], &l.rows[i][f], &rt.rows[j][f]);
        }
        // agreeing identity numbers: almost surely the same person, and u is about different ones
        if levels.iter().enumerate().any(|(f, lv)| id_agrees(f, *lv)) {
            continue;
        }
        counted += 1;
        for (f, c) in counts.iter_mut().enumerate() {
            if let Some(x) = c.get_mut(levels[f] as usize) {
                *x += 1.0;
            }
        }
    }
    for fm in fields.iter_mut() {
        for lv in fm.levels.iter_mut() {
            lv.u = 1e-6;
        }
    }
    u_from_counts(&mut fields, &counts, counted as f64);
    // identity-number agreement between different people: half a pair over all pairs
    let all_pairs = (nl as f64 * nr as f64).max(1.0);
    for (f, fm) in fields.iter_mut().enumerate() {
        for (i, lv) in fm.levels.iter_mut().enumerate() {
            if id_agrees(f, i as u8) {
                lv.u = (0.5 / all_pairs).max(crate::model::P_FLOOR);
            }
        }
    }
    let random_u: Vec<Vec<f64>> = fields
        .iter()
        .map(|f| f.levels.iter().map(|l| l.u).collect())
        .collect();
    let mut em_fields = fields.clone();
    for fm in em_fields.iter_mut() {
        for lv in fm.levels.iter_mut() {
            lv.u = lv.u.max(1e-3);
        }
    }
    let input = EmInput {
        patterns: &patterns,
        fields: &em_fields,
        // each left record is one person (in a deduplication, each record)
        records: nl as f64,
        iterations: spec.iterations,
    };
    let npairs_f = npairs.max(1) as f64;
    let fit = em::fit(&input, (nl.min(nr) as f64 / npairs_f).clamp(1e-4, 0.9))?;
    drop(patterns);
    for (f, fm) in fields.iter_mut().enumerate() {
        let missing = fm.missing;
        // a field the pairs hold (nearly) no values of is neutral: every level weighs 0
        let informed = fit.informed.get(f).copied().unwrap_or(true);
        for (i, lv) in fm.levels.iter_mut().enumerate() {
            lv.u = round_sig(random_u[f][i]);
            lv.m = if informed && Some(i) != missing {
                round_sig(fit.fields[f].levels[i].m)
            } else {
                lv.u
            };
        }
    }
    crate::train::floor_m(&mut fields);
    for (f, fm) in fields.iter_mut().enumerate() {
        if !fit.informed.get(f).copied().unwrap_or(true) {
            fm.levels.iter_mut().for_each(|lv| lv.m = lv.u);
        }
    }
    let lambda = round_sig((fit.lambda * npairs_f / nl.max(1) as f64).clamp(1e-6, 0.999));
    let model = Model::new(
        lambda,
        fields,
        TfSettings::default(),
        &format!("em:{}:{}", fit.start, fit.iterations),
    );
    em::check_model(&model)?;

    // Term frequencies over the right table.
    let mut tf: Vec<HashMap<&str, u32>> = vec![HashMap::new(); nf];
    for row in &rt.rows {
        for f in 0..nf {
            if let Some(k) = tf_key(&row[f]) {
                *tf[f].entry(k).or_default() += 1;
            }
        }
    }
    let weights = model.weights();
    let prior = model.prior_weight(nr);

    // Pass 2: score every candidate pair again, one at a time.
    let mut predicted = 0usize;
    let (mut tp, mut fp) = (0usize, 0usize);
    let mut truth_in_cands = 0usize;
    let mut ignored = 0usize;
    for_each_pair(
        &mut |i, j, levels| {
            let mut total = prior;
            for f in 0..nf {
                let lv = levels[f] as usize;
                total += weights[f][lv];
                if lv == 0 && model.fields[f].tf {
                    if let Some(k) = tf_key(&rt.rows[j][f]) {
                        let u = model.fields[f].levels[0].u;
                        let count = tf[f].get(k).copied().unwrap_or(1);
                        total += model.tf_adjustment(u, Model::tf_share(count, nr, u));
                    }
                }
            }
            let is_true = truth_set.contains(&(i, j));
            if is_true {
                truth_in_cands += 1;
            }
            if total >= spec.threshold {
                predicted += 1;
                if is_true {
                    tp += 1;
                } else {
                    fp += 1;
                }
            }
        },
        &mut ignored,
    );
    let fn_ = truth_set.len() - tp;
    let precision = ratio(tp, tp + fp);
    let recall = ratio(tp, truth_set.len());
    let f1 = match (precision, recall) {
        (Some(p), Some(r)) if p + r > 0.0 => 2.0 * p * r / (p + r),
        _ => 0.0,
    };
    let mut invalid_values = BTreeMap::new();
    for (f, field) in spec.fields.iter().enumerate() {
        if field.invalid == Invalid::Missing {
            let n = l.invalid[f] + if dedup { 0 } else { rt.invalid[f] };
            invalid_values.insert(field.label(), n);
        }
    }
    Ok(EvalReport {
        mode: if dedup { "dedup" } else { "link" }.to_string(),
        left_records: nl,
        right_records: if dedup { 0 } else { nr },
        truth_pairs: truth_set.len(),
        candidate_pairs: npairs,
        truth_pairs_in_candidates: truth_in_cands,
        sub_blocked_keys: blocker.oversized(),
        records_with_cut_blocks: cut_records,
        invalid_values,
        predicted_pairs: predicted,
        true_positives: tp,
        false_positives: fp,
        false_negatives: fn_,
        precision,
        recall,
        f1,
        threshold: spec.threshold,
        elapsed_ms: t0.elapsed().as_millis(),
        model,
    })
}
