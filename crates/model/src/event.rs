//! Feed events: the envelope every department record arrives in, the typed data of each kind, and
//! the validating parser that turns raw bytes into an [`Event`] or says exactly what is wrong.
//!
//! Envelope (one JSON object; one per line in JSONL files):
//! `{"event_id", "source", "kind", "occurred_at" (RFC 3339), "subject": {...}, "data": {...}}`.
//! Amounts are whole numbers of fen; dates are `YYYY-MM-DD`.

use chrono::{DateTime, Datelike, FixedOffset, NaiveDate};
use serde::de::IgnoredAny;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::money::Money;
use crate::region::RegionCode;
use crate::sex::Sex;

/// The department feed an event comes from. Each source is one Kafka topic or one feed folder.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    /// 医保: settlements and diagnoses.
    HealthInsurance,
    /// 人社: jobs, unemployment, contributions, wages.
    Employment,
    /// 住建 / 不动产 / 应急: property, dangerous houses, disasters, relocation.
    Housing,
    /// 公安户籍 / 民政 / 残联: births, deaths, marriages, moves, disability.
    CivilRegistry,
}

pub const ALL_SOURCES: [Source; 4] = [
    Source::HealthInsurance,
    Source::Employment,
    Source::Housing,
    Source::CivilRegistry,
];

/// Every kind, with the source it belongs to.
pub const ALL_KINDS: [(Source, &str); 17] = [
    (Source::HealthInsurance, "settlement"),
    (Source::HealthInsurance, "serious_illness_diagnosed"),
    (Source::Employment, "job_lost"),
    (Source::Employment, "unemployment_registered"),
    (Source::Employment, "contributions_stopped"),
    (Source::Employment, "job_started"),
    (Source::Employment, "wage_changed"),
    (Source::Housing, "property_registered"),
    (Source::Housing, "dangerous_house_appraised"),
    (Source::Housing, "disaster_damage"),
    (Source::Housing, "relocated"),
    (Source::CivilRegistry, "birth"),
    (Source::CivilRegistry, "death"),
    (Source::CivilRegistry, "marriage"),
    (Source::CivilRegistry, "divorce"),
    (Source::CivilRegistry, "household_moved"),
    (Source::CivilRegistry, "disability_certified"),
];

impl Source {
    pub fn code(self) -> &'static str {
        match self {
            Source::HealthInsurance => "health_insurance",
            Source::Employment => "employment",
            Source::Housing => "housing",
            Source::CivilRegistry => "civil_registry",
        }
    }

    pub fn from_code(code: &str) -> Option<Source> {
        ALL_SOURCES.into_iter().find(|s| s.code() == code)
    }

    /// The kinds this source sends.
    pub fn kinds(self) -> impl Iterator<Item = &'static str> {
        ALL_KINDS
            .iter()
            .filter(move |(s, _)| *s == self)
            .map(|(_, k)| *k)
    }
}

display_by_code!(Source);

/// Who the record is about, as the department typed it. Every field may be missing.
/// `id_number` is kept as typed (it may be invalid): the link stage decides what it means.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Subject {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id_number: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub birth_date: Option<NaiveDate>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sex: Option<Sex>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region_code: Option<RegionCode>,
}

impl Subject {
    /// Light normalisation that loses nothing: trim, full-width digits and letters to half-width,
    /// a lower-case `x` check character to `X`, empty strings to missing.
    pub fn normalise(&mut self) {
        self.id_number = self.id_number.take().and_then(|s| {
            let t: String = s
                .chars()
                .filter(|c| !c.is_whitespace())
                .map(|c| match c {
                    '０'..='９' => {
                        char::from_u32(c as u32 - '０' as u32 + '0' as u32).unwrap_or(c)
                    }
                    'ｘ' | 'Ｘ' | 'x' => 'X',
                    _ => c,
                })
                .collect();
            (!t.is_empty()).then_some(t)
        });
        self.name = self.name.take().and_then(|s| {
            let t: String = s.chars().filter(|c| !c.is_whitespace()).collect();
            (!t.is_empty()).then_some(t)
        });
    }
}

/// Inpatient or outpatient care.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CareSetting {
    Inpatient,
    Outpatient,
}

/// `health_insurance/settlement`: a 医保 settlement of a stay or visit.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settlement {
    pub setting: CareSetting,
    pub total_cost_fen: Money,
    pub fund_paid_fen: Money,
    pub out_of_pocket_fen: Money,
    /// ICD-10 codes, e.g. `C34.9`.
    #[serde(default)]
    pub diagnoses: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub admitted_on: Option<NaiveDate>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub discharged_on: Option<NaiveDate>,
    pub settled_on: NaiveDate,
}

/// `health_insurance/serious_illness_diagnosed`: a serious or chronic disease (大病/慢病) recognised.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SeriousIllnessDiagnosed {
    /// ICD-10 code.
    pub diagnosis: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    pub diagnosed_on: NaiveDate,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobLost {
    pub last_day: NaiveDate,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub monthly_wage_fen: Option<Money>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub employer: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UnemploymentRegistered {
    pub registered_on: NaiveDate,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ContributionsStopped {
    /// The last month paid, `YYYY-MM`.
    pub last_paid_month: String,
    /// Months without a contribution since then (at least 1).
    pub months_unpaid: u32,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobStarted {
    pub started_on: NaiveDate,
    pub monthly_wage_fen: Money,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub employer: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WageChanged {
    pub effective_on: NaiveDate,
    pub monthly_wage_fen: Money,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_wage_fen: Option<Money>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PropertyAction {
    Acquired,
    Sold,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PropertyType {
    Residential,
    Commercial,
    Land,
    Other,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PropertyRegistered {
    pub action: PropertyAction,
    pub property_type: PropertyType,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value_fen: Option<Money>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub area_m2: Option<u32>,
    pub registered_on: NaiveDate,
}

/// Dangerous-house grade (危房等级): C is partly dangerous, D wholly.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum HouseGrade {
    C,
    D,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DangerousHouseAppraised {
    pub grade: HouseGrade,
    pub appraised_on: NaiveDate,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DisasterKind {
    Flood,
    Earthquake,
    Fire,
    Typhoon,
    Landslide,
    Drought,
    Hail,
    Other,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DisasterDamage {
    pub disaster: DisasterKind,
    pub loss_fen: Money,
    /// The home can no longer be lived in.
    pub uninhabitable: bool,
    pub occurred_on: NaiveDate,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RelocationReason {
    Disaster,
    Demolition,
    DangerousHouse,
    Ecological,
    Other,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Relocated {
    pub reason: RelocationReason,
    pub forced: bool,
    pub relocated_on: NaiveDate,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to_region_code: Option<RegionCode>,
}

/// `civil_registry/birth`: the subject is a parent; the child is in `data`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Birth {
    pub born_on: NaiveDate,
    pub child_sex: Sex,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub child_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub child_id_number: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Death {
    pub died_on: NaiveDate,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cause: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Marriage {
    pub married_on: NaiveDate,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spouse_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spouse_id_number: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Divorce {
    pub divorced_on: NaiveDate,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HouseholdMoved {
    pub moved_on: NaiveDate,
    pub to_region_code: RegionCode,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from_region_code: Option<RegionCode>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DisabilityType {
    Visual,
    Hearing,
    Speech,
    Physical,
    Intellectual,
    Mental,
    Multiple,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DisabilityCertified {
    /// 1 (most severe) to 4.
    pub grade: u8,
    pub disability_type: DisabilityType,
    pub certified_on: NaiveDate,
}

/// The typed `data` of an event, by kind.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "data", rename_all = "snake_case")]
pub enum Payload {
    Settlement(Settlement),
    SeriousIllnessDiagnosed(SeriousIllnessDiagnosed),
    JobLost(JobLost),
    UnemploymentRegistered(UnemploymentRegistered),
    ContributionsStopped(ContributionsStopped),
    JobStarted(JobStarted),
    WageChanged(WageChanged),
    PropertyRegistered(PropertyRegistered),
    DangerousHouseAppraised(DangerousHouseAppraised),
    DisasterDamage(DisasterDamage),
    Relocated(Relocated),
    Birth(Birth),
    Death(Death),
    Marriage(Marriage),
    Divorce(Divorce),
    HouseholdMoved(HouseholdMoved),
    DisabilityCertified(DisabilityCertified),
}

impl Payload {
    pub fn kind(&self) -> &'static str {
        match self {
            Payload::Settlement(_) => "settlement",
            Payload::SeriousIllnessDiagnosed(_) => "serious_illness_diagnosed",
            Payload::JobLost(_) => "job_lost",
            Payload::UnemploymentRegistered(_) => "unemployment_registered",
            Payload::ContributionsStopped(_) => "contributions_stopped",
            Payload::JobStarted(_) => "job_started",
            Payload::WageChanged(_) => "wage_changed",
            Payload::PropertyRegistered(_) => "property_registered",
            Payload::DangerousHouseAppraised(_) => "dangerous_house_appraised",
            Payload::DisasterDamage(_) => "disaster_damage",
            Payload::Relocated(_) => "relocated",
            Payload::Birth(_) => "birth",
            Payload::Death(_) => "death",
            Payload::Marriage(_) => "marriage",
            Payload::Divorce(_) => "divorce",
            Payload::HouseholdMoved(_) => "household_moved",
            Payload::DisabilityCertified(_) => "disability_certified",
        }
    }

    pub fn source(&self) -> Source {
        let k = self.kind();
        ALL_KINDS
            .iter()
            .find(|(_, kind)| *kind == k)
            .map(|(s, _)| *s)
            .unwrap_or(Source::CivilRegistry)
    }

    /// Parse `data` for a known kind.
    fn from_json(kind: &str, data: &str) -> Result<Payload, EventError> {
        fn de<T: serde::de::DeserializeOwned>(data: &str) -> Result<T, EventError> {
            let mut d = serde_json::Deserializer::from_str(data);
            serde_path_to_error::deserialize(&mut d).map_err(|e| {
                let path = e.path().to_string();
                let path = if path == "." || path.is_empty() {
                    "data".to_string()
                } else {
                    format!("data.{path}")
                };
                EventError::InvalidField {
                    field: path,
                    message: explain_serde(&e.into_inner().to_string()),
                }
            })
        }
        if !data.trim_start().starts_with('{') {
            return Err(EventError::InvalidField {
                field: "data".into(),
                message: "must be a JSON object".into(),
            });
        }
        Ok(match kind {
            "settlement" => Payload::Settlement(de(data)?),
            "serious_illness_diagnosed" => Payload::SeriousIllnessDiagnosed(de(data)?),
            "job_lost" => Payload::JobLost(de(data)?),
            "unemployment_registered" => Payload::UnemploymentRegistered(de(data)?),
            "contributions_stopped" => Payload::ContributionsStopped(de(data)?),
            "job_started" => Payload::JobStarted(de(data)?),
            "wage_changed" => Payload::WageChanged(de(data)?),
            "property_registered" => Payload::PropertyRegistered(de(data)?),
            "dangerous_house_appraised" => Payload::DangerousHouseAppraised(de(data)?),
            "disaster_damage" => Payload::DisasterDamage(de(data)?),
            "relocated" => Payload::Relocated(de(data)?),
            "birth" => Payload::Birth(de(data)?),
            "death" => Payload::Death(de(data)?),
            "marriage" => Payload::Marriage(de(data)?),
            "divorce" => Payload::Divorce(de(data)?),
            "household_moved" => Payload::HouseholdMoved(de(data)?),
            "disability_certified" => Payload::DisabilityCertified(de(data)?),
            other => {
                return Err(EventError::UnknownKind {
                    source_code: String::new(),
                    kind: other.to_string(),
                })
            }
        })
    }

    /// Checks serde cannot express: sums that must add up, date order, code formats.
    fn validate(&self) -> Result<(), EventError> {
        let bad = |field: &str, message: String| {
            Err(EventError::InvalidField {
                field: format!("data.{field}"),
                message,
            })
        };
        match self {
            Payload::Settlement(s) => {
                let paid = s.fund_paid_fen.fen() as i128 + s.out_of_pocket_fen.fen() as i128;
                if paid > s.total_cost_fen.fen() as i128 {
                    return bad(
                        "out_of_pocket_fen",
                        format!(
                            "fund paid ({}) plus out of pocket ({}) exceeds the total cost ({})",
                            s.fund_paid_fen.fen(),
                            s.out_of_pocket_fen.fen(),
                            s.total_cost_fen.fen()
                        ),
                    );
                }
                if let (Some(a), Some(d)) = (s.admitted_on, s.discharged_on) {
                    if d < a {
                        return bad(
                            "discharged_on",
                            format!("discharged on {d}, before admission on {a}"),
                        );
                    }
                }
                for (i, code) in s.diagnoses.iter().enumerate() {
                    if !is_icd10(code) {
                        return bad(
                            &format!("diagnoses[{i}]"),
                            format!("{code:?} is not an ICD-10 code like \"C34.9\""),
                        );
                    }
                }
            }
            Payload::SeriousIllnessDiagnosed(s) if !is_icd10(&s.diagnosis) => {
                return bad(
                    "diagnosis",
                    format!("{:?} is not an ICD-10 code like \"C34.9\"", s.diagnosis),
                );
            }
            Payload::ContributionsStopped(c) => {
                let m = c.last_paid_month.as_bytes();
                let ok = m.len() == 7
                    && m[4] == b'-'
                    && m[..4].iter().chain(&m[5..]).all(u8::is_ascii_digit)
                    && matches!(&m[5..], [b'0', b'1'..=b'9'] | [b'1', b'0'..=b'2']);
                if !ok {
                    return bad(
                        "last_paid_month",
                        format!("{:?} is not a month written YYYY-MM", c.last_paid_month),
                    );
                }
                if c.months_unpaid == 0 {
                    return bad("months_unpaid", "must be at least 1".to_string());
                }
            }
            Payload::DisabilityCertified(d) if !(1..=4).contains(&d.grade) => {
                return bad("grade", format!("must be 1 to 4, got {}", d.grade));
            }
            _ => {}
        }
        Ok(())
    }
}

/// `A00`–`Z99` with an optional `.` and 1–4 more letters or digits.
fn is_icd10(code: &str) -> bool {
    let b = code.as_bytes();
    if b.len() < 3 || !b[0].is_ascii_uppercase() || !b[1].is_ascii_digit() {
        return false;
    }
    if !(b[2].is_ascii_digit() || b[2].is_ascii_uppercase()) {
        return false;
    }
    match &b[3..] {
        [] => true,
        [b'.', rest @ ..] => {
            (1..=4).contains(&rest.len()) && rest.iter().all(|c| c.is_ascii_alphanumeric())
        }
        _ => false,
    }
}

/// A parsed, validated and normalised feed event.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Event {
    pub event_id: String,
    pub source: Source,
    pub occurred_at: DateTime<FixedOffset>,
    pub subject: Subject,
    #[serde(flatten)]
    pub payload: Payload,
}

impl Event {
    /// The event as a fact of member `member_id` of household `household_id` (once linked).
    pub fn into_fact(self, household_id: String, member_id: String) -> Fact {
        Fact {
            event_id: self.event_id,
            source: self.source,
            household_id,
            member_id,
            occurred_at: self.occurred_at,
            payload: self.payload,
        }
    }

    pub fn kind(&self) -> &'static str {
        self.payload.kind()
    }

    /// The canonical JSON form (the "normalised event" kept beside the raw bytes).
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// A linked event as applied to one household's timeline: what happened, to which member, when.
/// The household's state is a pure function of its facts (see the `risk` crate).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fact {
    pub event_id: String,
    pub source: Source,
    pub household_id: String,
    pub member_id: String,
    pub occurred_at: DateTime<FixedOffset>,
    pub payload: Payload,
}

/// The years (in UTC) an event's `occurred_at` may fall in.
pub const OCCURRED_YEARS: (i32, i32) = (1900, 2199);

/// Limits on a single event, so that one absurd record cannot exhaust memory or stack.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ParseLimits {
    /// Largest accepted event, in bytes (default 64 KiB).
    pub max_event_bytes: usize,
    /// Deepest accepted nesting of objects and arrays (default 16).
    pub max_depth: usize,
}

impl ParseLimits {
    /// For events read back from the store: they were validated on the way in, so these limits
    /// only guard against a damaged database.
    pub const STORED: ParseLimits = ParseLimits {
        max_event_bytes: 16 * 1024 * 1024,
        max_depth: 64,
    };
}

impl Default for ParseLimits {
    fn default() -> Self {
        ParseLimits {
            max_event_bytes: 64 * 1024,
            max_depth: 16,
        }
    }
}

/// Why an event was refused. Each variant has a stable [`EventError::code`] for counting and a
/// message that says what and where. Messages never quote personal data.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EventError {
    #[error("event is {len} bytes, over the limit of {limit} bytes")]
    TooLarge { len: usize, limit: usize },
    #[error("event is not valid UTF-8 (first bad byte at offset {valid_up_to})")]
    InvalidUtf8 { valid_up_to: usize },
    #[error("event nests objects/arrays deeper than {limit} levels")]
    TooDeep { limit: usize },
    #[error("event is not JSON: {0}")]
    NotJson(String),
    #[error("event must be a JSON object, found {0}")]
    NotObject(&'static str),
    #[error("event lacks required field `{0}`")]
    MissingField(&'static str),
    #[error("unknown source {0:?} (known: health_insurance, employment, housing, civil_registry)")]
    UnknownSource(String),
    #[error("unknown kind {kind:?} for source {source_code:?}")]
    UnknownKind { source_code: String, kind: String },
    #[error("{field}: {message}")]
    InvalidField { field: String, message: String },
    #[error("event says source {found:?} but arrived on the {expected:?} feed")]
    SourceMismatch { expected: String, found: String },
    /// A row of a department's export that its feed profile could not make an event of: the
    /// profile, row, column and why (never the cell's value).
    #[error("{0}")]
    RowRefused(String),
    /// A department's export file that stopped being readable (cut short, a sheet past its row
    /// limit, a header without a column the profile reads): rows before stand, the rest waits
    /// for the file or the profile to be fixed.
    #[error("{0}")]
    FileUnreadable(String),
}

impl EventError {
    /// A short stable code (a bounded set, fit for a metric label).
    pub fn code(&self) -> &'static str {
        match self {
            EventError::TooLarge { .. } => "too_large",
            EventError::InvalidUtf8 { .. } => "invalid_utf8",
            EventError::TooDeep { .. } => "too_deep",
            EventError::NotJson(_) => "not_json",
            EventError::NotObject(_) => "not_object",
            EventError::MissingField(_) => "missing_field",
            EventError::UnknownSource(_) => "unknown_source",
            EventError::UnknownKind { .. } => "unknown_kind",
            EventError::InvalidField { .. } => "invalid_field",
            EventError::SourceMismatch { .. } => "source_mismatch",
            EventError::RowRefused(_) => "row_refused",
            EventError::FileUnreadable(_) => "file_unreadable",
        }
    }
}

/// Make serde's and chrono's messages say what a person should fix.
fn explain_serde(msg: &str) -> String {
    let msg = msg.split(" at line ").next().unwrap_or(msg).to_string();
    if msg.contains("input is out of range") || msg.contains("input contains invalid characters") {
        "not a real calendar date (write dates as YYYY-MM-DD)".to_string()
    } else if msg.contains("premature end of input") || msg.contains("trailing input") {
        "not a date written YYYY-MM-DD".to_string()
    } else {
        msg
    }
}

/// The deepest nesting of `{`/`[` outside strings, stopping early once past `limit`.
fn nesting_exceeds(bytes: &[u8], limit: usize) -> bool {
    let (mut depth, mut in_str, mut esc) = (0usize, false, false);
    for &b in bytes {
        if in_str {
            if esc {
                esc = false;
            } else if b == b'\\' {
                esc = true;
            } else if b == b'"' {
                in_str = false;
            }
            continue;
        }
        match b {
            b'"' => in_str = true,
            b'{' | b'[' => {
                depth += 1;
                if depth > limit {
                    return true;
                }
            }
            b'}' | b']' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    false
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEnvelope<'a> {
    event_id: Option<String>,
    source: Option<String>,
    kind: Option<String>,
    occurred_at: Option<String>,
    #[serde(default)]
    subject: Option<Subject>,
    #[serde(borrow)]
    data: Option<&'a RawValue>,
}

/// Parse, validate and normalise one event from raw bytes.
pub fn parse_event(bytes: &[u8], limits: &ParseLimits) -> Result<Event, EventError> {
    if bytes.len() > limits.max_event_bytes {
        return Err(EventError::TooLarge {
            len: bytes.len(),
            limit: limits.max_event_bytes,
        });
    }
    let text = std::str::from_utf8(bytes).map_err(|e| EventError::InvalidUtf8 {
        valid_up_to: e.valid_up_to(),
    })?;
    if nesting_exceeds(bytes, limits.max_depth) {
        return Err(EventError::TooDeep {
            limit: limits.max_depth,
        });
    }
    let trimmed = text.trim_start();
    if !trimmed.starts_with('{') {
        return Err(match serde_json::from_str::<IgnoredAny>(text) {
            Ok(_) => EventError::NotObject(match trimmed.as_bytes().first() {
                Some(b'[') => "an array",
                Some(b'"') => "a string",
                Some(b't' | b'f') => "a boolean",
                Some(b'n') => "null",
                _ => "a number",
            }),
            Err(e) => EventError::NotJson(e.to_string()),
        });
    }
    let mut de = serde_json::Deserializer::from_str(text);
    let raw: RawEnvelope = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        if inner.is_syntax() || inner.is_eof() {
            EventError::NotJson(inner.to_string())
        } else {
            EventError::InvalidField {
                field: if path == "." { "event".into() } else { path },
                message: explain_serde(&inner.to_string()),
            }
        }
    })?;
    de.end().map_err(|e| EventError::NotJson(e.to_string()))?;

    let event_id = raw.event_id.ok_or(EventError::MissingField("event_id"))?;
    let event_id = event_id.trim().to_string();
    if event_id.is_empty()
        || event_id.chars().count() > 128
        || event_id.chars().any(char::is_control)
    {
        return Err(EventError::InvalidField {
            field: "event_id".into(),
            message: "must be 1 to 128 characters with no control characters".into(),
        });
    }
    let source_code = raw.source.ok_or(EventError::MissingField("source"))?;
    let source =
        Source::from_code(&source_code).ok_or(EventError::UnknownSource(source_code.clone()))?;
    let kind = raw.kind.ok_or(EventError::MissingField("kind"))?;
    if !source.kinds().any(|k| k == kind) {
        return Err(EventError::UnknownKind { source_code, kind });
    }
    let occurred_at = raw
        .occurred_at
        .ok_or(EventError::MissingField("occurred_at"))?;
    let occurred_at =
        DateTime::parse_from_rfc3339(&occurred_at).map_err(|_| EventError::InvalidField {
            field: "occurred_at".into(),
            message: "not an RFC 3339 timestamp like 2026-03-01T08:30:00+08:00".into(),
        })?;
    // Event time orders a household's facts and sets deadlines: a date no department can mean
    // (a typing slip such as 0202 or 9999) would sort before or after everything for ever, and
    // past year 9999 it cannot even be stored as text.
    let year = occurred_at.naive_utc().year();
    if !(OCCURRED_YEARS.0..=OCCURRED_YEARS.1).contains(&year) {
        return Err(EventError::InvalidField {
            field: "occurred_at".into(),
            message: format!(
                "year {year} (in UTC) is outside {}–{}: check the date",
                OCCURRED_YEARS.0, OCCURRED_YEARS.1
            ),
        });
    }
    let data = raw.data.ok_or(EventError::MissingField("data"))?;
    let payload = Payload::from_json(&kind, data.get())?;
    payload.validate()?;
    let mut subject = raw.subject.unwrap_or_default();
    subject.normalise();
    Ok(Event {
        event_id,
        source,
        occurred_at,
        subject,
        payload,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(data: &str) -> String {
        format!(
            r#"{{"event_id":"e1","source":"health_insurance","kind":"settlement","occurred_at":"2026-03-01T08:30:00+08:00","subject":{{"id_number":"11010519491231002x","name":" 王 秀英"}},"data":{data}}}"#
        )
    }

    const GOOD: &str = r#"{"setting":"inpatient","total_cost_fen":5000000,"fund_paid_fen":3000000,"out_of_pocket_fen":2000000,"diagnoses":["C34.9"],"settled_on":"2026-02-28"}"#;

    fn err(bytes: &[u8]) -> EventError {
        parse_event(bytes, &ParseLimits::default()).unwrap_err()
    }

    #[test]
    fn an_event_time_no_department_can_mean_is_refused_with_its_year() {
        for (at, ok) in [
            ("2026-03-01T08:00:00+08:00", true),
            ("1900-01-01T00:00:00Z", true),
            ("9999-12-31T23:00:00-10:00", false), // year 10000 in UTC
            ("0202-03-01T08:00:00+08:00", false),
            ("2200-01-01T00:00:00Z", false),
        ] {
            let line = format!(
                r#"{{"event_id":"x","source":"civil_registry","kind":"death","occurred_at":"{at}","subject":{{"name":"张三"}},"data":{{"died_on":"2026-02-28"}}}}"#
            );
            match parse_event(line.as_bytes(), &ParseLimits::default()) {
                Ok(_) => assert!(ok, "{at} accepted"),
                Err(e) => {
                    assert!(!ok, "{at}: {e}");
                    assert!(e.to_string().contains("occurred_at"), "{e}");
                }
            }
        }
    }

    #[test]
    fn parses_and_normalises_a_settlement() {
        let e = parse_event(line(GOOD).as_bytes(), &ParseLimits::default()).unwrap();
        assert_eq!(e.source, Source::HealthInsurance);
        assert_eq!(e.kind(), "settlement");
        assert_eq!(e.subject.id_number.as_deref(), Some("11010519491231002X"));
        assert_eq!(e.subject.name.as_deref(), Some("王秀英"));
        let Payload::Settlement(s) = &e.payload else {
            panic!("not a settlement")
        };
        assert_eq!(s.out_of_pocket_fen, Money::from_yuan(20000));
        // the normalised JSON parses back to the same event
        let again = parse_event(e.to_json().as_bytes(), &ParseLimits::default()).unwrap();
        assert_eq!(again, e);
    }

    #[test]
    fn facts_round_trip_through_json() {
        let e = parse_event(line(GOOD).as_bytes(), &ParseLimits::default()).unwrap();
        let f = e.into_fact("H1".into(), "M1".into());
        let back: Fact = serde_json::from_str(&serde_json::to_string(&f).unwrap()).unwrap();
        assert_eq!(back, f);
    }

    #[test]
    fn every_kind_belongs_to_one_source() {
        for (s, k) in ALL_KINDS {
            assert!(s.kinds().any(|x| x == k));
            assert_eq!(ALL_KINDS.iter().filter(|(_, x)| *x == k).count(), 1);
        }
    }

    #[test]
    fn bad_input_is_refused_with_a_reason_that_says_where() {
        assert_eq!(err(b"not json").code(), "not_json");
        assert_eq!(err(b"[1,2]"), EventError::NotObject("an array"));
        assert_eq!(err(b"42"), EventError::NotObject("a number"));
        assert_eq!(
            err(br#"{"source":"housing"}"#),
            EventError::MissingField("event_id")
        );
        assert_eq!(
            err(br#"{"event_id":"x","source":"tax","kind":"a","occurred_at":"2026-01-01T00:00:00Z","data":{}}"#)
                .code(),
            "unknown_source"
        );
        assert_eq!(
            err(br#"{"event_id":"x","source":"housing","kind":"death","occurred_at":"2026-01-01T00:00:00Z","data":{}}"#)
                .code(),
            "unknown_kind"
        );
        let neg = err(line(&GOOD.replace("2000000,", "-5,")).as_bytes());
        assert!(
            matches!(&neg, EventError::InvalidField { field, message } if field == "data.out_of_pocket_fen" && message.contains("negative")),
            "{neg}"
        );
        let wrong_type = err(line(&GOOD.replace("5000000", "\"lots\"")).as_bytes());
        assert!(
            matches!(&wrong_type, EventError::InvalidField { field, .. } if field == "data.total_cost_fen"),
            "{wrong_type}"
        );
        let date = err(line(&GOOD.replace("2026-02-28", "2026-02-30")).as_bytes());
        assert_eq!(
            date.to_string(),
            "data.settled_on: not a real calendar date (write dates as YYYY-MM-DD)"
        );
        assert_eq!(
            err(b"{\"event_id\":\"\xff\xfe\"}"),
            EventError::InvalidUtf8 { valid_up_to: 13 }
        );
        let deep = format!("{}{}", "[".repeat(100), "]".repeat(100));
        assert_eq!(err(deep.as_bytes()), EventError::TooDeep { limit: 16 });
        let big = line(&GOOD.replace("C34.9", &"A".repeat(70_000)));
        assert!(matches!(err(big.as_bytes()), EventError::TooLarge { .. }));
        let sums = err(line(&GOOD.replace("3000000", "4000000")).as_bytes());
        assert!(
            sums.to_string().contains("exceeds the total cost"),
            "{sums}"
        );
        let overflow = err(line(
            &GOOD
                .replace("3000000", "9223372036854775807")
                .replace("2000000,", "1,"),
        )
        .as_bytes());
        assert!(
            overflow.to_string().contains("exceeds the total cost"),
            "{overflow}"
        );
        let array = err(line(r#"["2026-02-27"]"#).as_bytes());
        assert_eq!(array.to_string(), "data: must be a JSON object");
        let unknown =
            err(line(&GOOD.replace("\"setting\"", "\"colour\":1,\"setting\"")).as_bytes());
        assert!(unknown.to_string().contains("colour"), "{unknown}");
    }

    #[test]
    fn nesting_scan_ignores_brackets_in_strings() {
        assert!(!nesting_exceeds(br#"{"a":"[[[[[[[[[[[[[[[[[[[[[["}"#, 2));
        assert!(nesting_exceeds(br#"{"a":[[1]]}"#, 2));
    }

    #[test]
    fn icd10_codes() {
        for ok in ["C34", "C34.9", "I63.900", "E11.9", "N18.5"] {
            assert!(is_icd10(ok), "{ok}");
        }
        for bad in ["c34", "34", "C3", "C34.", "C34.12345", "C34-9"] {
            assert!(!is_icd10(bad), "{bad}");
        }
    }
}
