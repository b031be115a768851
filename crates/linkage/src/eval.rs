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
//! # Optional: a blocking key shared by more records than this is cut to this many (default 500).
//! max_block = 500
//! # Optional: EM iterations (default 30).
//! iterations = 30
//!
//! # One [[field]] per compared column, in any order.
//! [[field]]
//! column = "id_no"
//! type = "identity_number"   # GB 11643 numbers: exact / upgraded_15 / one_substitution /
//!                            # adjacent_swap / different / missing
//! [[field]]
//! column = "name"
//! type = "person_name"       # exact / homophone (same pinyin) / close / far / missing
//! [[field]]
//! column = "birth"
//! type = "date"              # YYYY-MM-DD, YYYYMMDD or YYYY/MM/DD:
//!                            # exact / day_month_swapped / close / far / missing
//! [[field]]
//! column = "address"
//! type = "text"              # free text: exact / close / far / missing
//! block = false              # optional: also use this column as a blocking key
//! tf = false                 # optional: term-frequency adjustment of exact agreement
//! ```
//!
//! Types: `identity_number`, `person_name`, `given_name`, `family_name`, `date`, `text`
//! (address-like free text), `code` (exact / different / missing), `number` (exact / close within
//! 1% / far / missing). By default `identity_number`, `person_name` and `date` columns are
//! blocking keys (at least one field must be), and the three name types get term-frequency
//! adjustment.
//!
//! Files: CSV with a header row. With a right file, left records are linked to right records;
//! without, the left file is deduplicated (pairs within it). The truth file is CSV with a header
//! row and two columns: the ids of a true pair (left id, right id; or two left ids).
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
use crate::idnum::{self, IdForm};
use crate::index::fnv;
use crate::model::{FieldModel, LevelModel, Model, TfSettings};
use crate::normalise::{normalise_name, normalise_text, NormName};
use crate::train::{em, round_sig, u_from_counts, Patterns, U_SAMPLES, U_SEED};

/// Comparator type of a column.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FieldType {
    IdentityNumber,
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
            FieldType::PersonName | FieldType::GivenName | FieldType::FamilyName => &NAME_LEVELS,
            FieldType::Date => &DATE_LEVELS,
            FieldType::Text | FieldType::Number => &["exact", "close", "far", "missing"],
            FieldType::Code => &["exact", "different", "missing"],
        }
    }

    fn blocks_by_default(self) -> bool {
        matches!(
            self,
            FieldType::IdentityNumber | FieldType::PersonName | FieldType::Date
        )
    }

    fn tf_by_default(self) -> bool {
        matches!(
            self,
            FieldType::PersonName | FieldType::GivenName | FieldType::FamilyName
        )
    }
}

/// One compared column.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FieldSpec {
    pub column: String,
    #[serde(rename = "type")]
    pub kind: FieldType,
    #[serde(default)]
    pub block: Option<bool>,
    #[serde(default)]
    pub tf: Option<bool>,
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
    500
}

fn default_iterations() -> usize {
    30
}

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
    let at = |needle: &str| text.find(needle).map_or((0, 0), |o| line_col(text, o));
    let err = |(line, column): (usize, usize), message: String| EvalError::Spec {
        file: path.to_path_buf(),
        line,
        column,
        message,
    };
    if spec.fields.is_empty() {
        return Err(err((1, 1), "the spec has no [[field]]".into()));
    }
    let mut seen = HashSet::new();
    for f in &spec.fields {
        if !seen.insert(f.column.as_str()) {
            return Err(err(
                at(&format!("\"{}\"", f.column)),
                format!("column {:?} is compared twice", f.column),
            ));
        }
    }
    if !spec
        .fields
        .iter()
        .any(|f| f.block.unwrap_or(f.kind.blocks_by_default()))
    {
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
        Value::Text(t) => Some(t.as_str()),
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
    file: PathBuf,
    ids: Vec<String>,
    rows: Vec<Vec<Value>>,
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
    let cols: Vec<usize> = spec
        .fields
        .iter()
        .map(|f| find(&f.column))
        .collect::<Result<_, _>>()?;
    let mut ids = Vec::new();
    let mut rows = Vec::new();
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
        for (f, c) in spec.fields.iter().zip(&cols) {
            let v = parse_value(f.kind, rec.get(*c).unwrap_or(""))
                .map_err(|m| csv_err(path, line, &f.column, m))?;
            row.push(v);
        }
        ids.push(id);
        rows.push(row);
    }
    Ok(Table {
        file: path.to_path_buf(),
        ids,
        rows,
    })
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
    pub predicted_pairs: usize,
    pub true_positives: usize,
    pub false_positives: usize,
    pub false_negatives: usize,
    pub precision: f64,
    pub recall: f64,
    pub f1: f64,
    pub threshold: f64,
    pub elapsed_ms: u128,
    /// The model trained on the files.
    pub model: Model,
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
            "candidate pairs compared {} (blocking recall {:.4})",
            self.candidate_pairs,
            ratio(self.truth_pairs_in_candidates, self.truth_pairs)
        )?;
        writeln!(
            f,
            "predicted {} pairs at threshold {:.2}: {} true positives, {} false positives, {} false negatives",
            self.predicted_pairs, self.threshold, self.true_positives, self.false_positives,
            self.false_negatives
        )?;
        writeln!(
            f,
            "precision {:.4}  recall {:.4}  F1 {:.4}  ({} ms)",
            self.precision, self.recall, self.f1, self.elapsed_ms
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

fn ratio(a: usize, b: usize) -> f64 {
    if b == 0 {
        1.0
    } else {
        a as f64 / b as f64
    }
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
                field: f.column.clone(),
                levels,
                missing: Some(n - 1),
                tf: f.tf.unwrap_or(f.kind.tf_by_default()),
            }
        })
        .collect()
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

    // Blocking over the right table.
    let blocking: Vec<usize> = (0..nf)
        .filter(|f| {
            spec.fields[*f]
                .block
                .unwrap_or(spec.fields[*f].kind.blocks_by_default())
        })
        .collect();
    let mut blocks: HashMap<u64, Vec<u32>> = HashMap::new();
    let mut keys = Vec::new();
    for (j, row) in rt.rows.iter().enumerate() {
        keys.clear();
        for f in &blocking {
            block_keys(*f, &row[*f], &mut keys);
        }
        keys.sort_unstable();
        keys.dedup();
        for k in &keys {
            blocks.entry(*k).or_default().push(j as u32);
        }
    }
    let mut pairs: Vec<(usize, usize, Vec<u8>)> = Vec::new();
    let mut cands: Vec<u32> = Vec::new();
    for (i, row) in l.rows.iter().enumerate() {
        keys.clear();
        cands.clear();
        for f in &blocking {
            block_keys(*f, &row[*f], &mut keys);
        }
        for k in &keys {
            if let Some(b) = blocks.get(k) {
                cands.extend_from_slice(&b[..b.len().min(spec.max_block)]);
            }
        }
        cands.sort_unstable();
        cands.dedup();
        for j in &cands {
            let j = *j as usize;
            if dedup && j <= i {
                continue;
            }
            let levels: Vec<u8> = (0..nf)
                .map(|f| compare_values(spec.fields[f].kind, &row[f], &rt.rows[j][f]))
                .collect();
            pairs.push((i, j, levels));
        }
    }

    // u from random pairs, m by EM over candidate pairs.
    let mut fields = start_fields(&spec);
    let (nl, nr) = (l.rows.len(), rt.rows.len());
    let mut counts: Vec<Vec<f64>> = fields.iter().map(|f| vec![0.0; f.levels.len()]).collect();
    let mut rng = ChaCha8Rng::seed_from_u64(U_SEED);
    let samples = if nl == 0 || nr == 0 {
        0
    } else {
        U_SAMPLES.min(nl.saturating_mul(nr))
    };
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
            *lv = compare_values(spec.fields[f].kind, &l.rows[i][f], &rt.rows[j][f]);
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
    let mut patterns: Patterns = BTreeMap::new();
    for (_, _, p) in &pairs {
        *patterns.entry(p.clone()).or_default() += 1.0;
    }
    let mut em_fields = fields.clone();
    for fm in em_fields.iter_mut() {
        for lv in fm.levels.iter_mut() {
            lv.u = lv.u.max(1e-3);
        }
    }
    let npairs = pairs.len().max(1) as f64;
    let mut lambda_pairs = (nl.min(nr) as f64 / npairs).clamp(1e-4, 0.9);
    let ran = em(
        &patterns,
        &mut em_fields,
        &mut lambda_pairs,
        spec.iterations,
    );
    for (f, fm) in fields.iter_mut().enumerate() {
        let missing = fm.missing;
        for (i, lv) in fm.levels.iter_mut().enumerate() {
            lv.m = round_sig(em_fields[f].levels[i].m);
            lv.u = round_sig(random_u[f][i]);
            if Some(i) == missing {
                lv.m = lv.u;
            }
        }
    }
    crate::train::floor_m(&mut fields);
    let lambda = round_sig((lambda_pairs * npairs / nl.max(1) as f64).clamp(1e-6, 0.999));
    let model = Model::new(lambda, fields, TfSettings::default(), &format!("em:{ran}"));

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
    let mut predicted = 0usize;
    let (mut tp, mut fp) = (0usize, 0usize);
    let mut truth_in_cands = 0usize;
    for (i, j, levels) in &pairs {
        let mut total = prior;
        for f in 0..nf {
            let lv = levels[f] as usize;
            total += weights[f][lv];
            if lv == 0 && model.fields[f].tf {
                if let Some(k) = tf_key(&rt.rows[*j][f]) {
                    let u = model.fields[f].levels[0].u;
                    let count = tf[f].get(k).copied().unwrap_or(1);
                    total += model.tf_adjustment(u, Model::tf_share(count, nr, u));
                }
            }
        }
        let is_true = truth_set.contains(&(*i, *j));
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
    }
    let fn_ = truth_set.len() - tp;
    let precision = ratio(tp, tp + fp);
    let recall = ratio(tp, truth_set.len());
    let f1 = if precision + recall > 0.0 {
        2.0 * precision * recall / (precision + recall)
    } else {
        0.0
    };
    Ok(EvalReport {
        mode: if dedup { "dedup" } else { "link" }.to_string(),
        left_records: nl,
        right_records: if dedup { 0 } else { nr },
        truth_pairs: truth_set.len(),
        candidate_pairs: pairs.len(),
        truth_pairs_in_candidates: truth_in_cands,
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
    .map(|mut rep| {
        // keep the table's file names out of the report: they are in the caller's hands
        let _ = &l.file;
        rep.elapsed_ms = t0.elapsed().as_millis();
        rep
    })
}
