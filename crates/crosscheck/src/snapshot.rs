//! Snapshot formats: one record type per kind of department extract, and how files are named.
//!
//! A snapshot file is `<kind>[-<anything>].csv` (header row, one record a line, comma separated)
//! or `<kind>[-<anything>].jsonl` (one JSON object a line), e.g. `payments-2026-11.csv`. The kind
//! is the part of the name before the first `-`, `_` or `.`. Fields are the same in both formats;
//! the JSON Schemas in `schemas/snapshots/` describe one record. CSV fields must not contain line
//! breaks: the reader splits large files at line boundaries to use every core.

use std::fmt;
use std::str::FromStr;

use chrono::{Datelike, NaiveDate};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use doudi_model::{Category, Money, RegionCode, Sex};

use crate::aggregate::{Apply, Cx, Partial};
use crate::reader::Cells;

/// The kinds of snapshot, in the order they are read (deaths first: payments are judged
/// against them).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// 死亡登记 (公安/民政/卫健): one record per registered death.
    Deaths,
    /// 户籍 (公安): one record per person on the household registration roll.
    Hukou,
    /// 机动车登记 (公安交管): one record per registered vehicle and owner.
    Vehicles,
    /// 不动产登记: one record per property certificate and owner.
    Properties,
    /// 市场主体登记 (市场监管): one record per company and person (legal representative,
    /// shareholder or executive).
    Companies,
    /// 工资 / 社保缴费 (人社/税务): one record per person, month and employer.
    Wages,
    /// 救助金发放 (民政, the province's payment roll): one record per covered person and month.
    Payments,
}

impl Kind {
    pub const ALL: [Kind; 7] = [
        Kind::Deaths,
        Kind::Hukou,
        Kind::Vehicles,
        Kind::Properties,
        Kind::Companies,
        Kind::Wages,
        Kind::Payments,
    ];

    pub fn code(self) -> &'static str {
        match self {
            Kind::Deaths => "deaths",
            Kind::Hukou => "hukou",
            Kind::Vehicles => "vehicles",
            Kind::Properties => "properties",
            Kind::Companies => "companies",
            Kind::Wages => "wages",
            Kind::Payments => "payments",
        }
    }

    pub fn name_zh(self) -> &'static str {
        match self {
            Kind::Deaths => "死亡登记",
            Kind::Hukou => "户籍",
            Kind::Vehicles => "机动车登记",
            Kind::Properties => "不动产登记",
            Kind::Companies => "市场主体登记",
            Kind::Wages => "工资社保",
            Kind::Payments => "救助金发放",
        }
    }

    pub fn from_code(code: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.code() == code)
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

/// How a snapshot file is written.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Format {
    Csv,
    Jsonl,
}

/// The kind and format of a snapshot file from its name, or `None` for any other file.
pub fn classify(file_name: &str) -> Option<(Kind, Format)> {
    let (stem, ext) = file_name.rsplit_once('.')?;
    let format = match ext.to_ascii_lowercase().as_str() {
        "csv" => Format::Csv,
        "jsonl" | "ndjson" => Format::Jsonl,
        _ => return None,
    };
    let kind = stem.split(['-', '_', '.']).next().unwrap_or("");
    Kind::from_code(kind).map(|k| (k, format))
}

/// A calendar month, written `YYYY-MM`.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Month(i32);

impl Month {
    pub fn new(year: i32, month: u32) -> Option<Month> {
        (1..=12)
            .contains(&month)
            .then_some(Month(year * 12 + month as i32 - 1))
    }

    pub fn of(d: NaiveDate) -> Month {
        Month(d.year() * 12 + d.month0() as i32)
    }

    pub fn year(self) -> i32 {
        self.0.div_euclid(12)
    }

    pub fn month(self) -> u32 {
        self.0.rem_euclid(12) as u32 + 1
    }

    /// The month `n` months later (negative: earlier).
    pub fn plus(self, n: i32) -> Month {
        Month(self.0 + n)
    }

    /// Months from `self` to `later` (negative if `later` is earlier).
    pub fn until(self, later: Month) -> i32 {
        later.0 - self.0
    }

    /// The first day of the month.
    pub fn first_day(self) -> NaiveDate {
        NaiveDate::from_ymd_opt(self.year(), self.month(), 1).unwrap_or_default()
    }
}

impl fmt::Display for Month {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04}-{:02}", self.year(), self.month())
    }
}

impl fmt::Debug for Month {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Month({self})")
    }
}

impl FromStr for Month {
    type Err = String;
    fn from_str(s: &str) -> Result<Month, String> {
        let bad = || format!("month {s:?} is not written YYYY-MM");
        let (y, m) = s.trim().split_once('-').ok_or_else(bad)?;
        if y.len() != 4 || m.len() != 2 {
            return Err(bad());
        }
        let y: i32 = y.parse().map_err(|_| bad())?;
        let m: u32 = m.parse().map_err(|_| bad())?;
        Month::new(y, m).ok_or_else(bad)
    }
}

impl Serialize for Month {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Month {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Month, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum VehicleType {
    PassengerCar,
    Truck,
    Motorcycle,
    Tricycle,
    Agricultural,
    Other,
}

impl VehicleType {
    pub fn name_zh(self) -> &'static str {
        match self {
            VehicleType::PassengerCar => "小型客车",
            VehicleType::Truck => "货车",
            VehicleType::Motorcycle => "摩托车",
            VehicleType::Tricycle => "三轮车",
            VehicleType::Agricultural => "农用车",
            VehicleType::Other => "其他车辆",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PropertyUse {
    Residential,
    Commercial,
    Industrial,
    Other,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CompanyRole {
    LegalRepresentative,
    Shareholder,
    Executive,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CompanyStatus {
    Active,
    Cancelled,
    Revoked,
}

/// 死亡登记: a registered death.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeathRecord {
    pub record_id: String,
    pub id_number: String,
    pub name: String,
    pub death_date: NaiveDate,
    #[serde(default)]
    pub region_code: Option<RegionCode>,
}

/// 户籍: a person on the household registration roll.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HukouRecord {
    pub id_number: String,
    pub name: String,
    pub sex: Sex,
    pub birth_date: NaiveDate,
    /// Where the person's hukou is registered.
    pub region_code: RegionCode,
}

/// 机动车登记: a vehicle and its owner.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VehicleRecord {
    pub plate: String,
    /// The owner.
    pub id_number: String,
    pub vehicle_type: VehicleType,
    /// Assessed value, if known.
    #[serde(default)]
    pub value_fen: Option<Money>,
    pub registered_on: NaiveDate,
}

/// 不动产登记: a property certificate and one of its owners (co-owners: one record each).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PropertyRecord {
    pub certificate_no: String,
    pub id_number: String,
    pub usage: PropertyUse,
    #[serde(default)]
    pub area_m2: Option<u32>,
    #[serde(default)]
    pub value_fen: Option<Money>,
    #[serde(default)]
    pub region_code: Option<RegionCode>,
    pub registered_on: NaiveDate,
}

/// 市场主体登记: a person's role in a company.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CompanyRecord {
    /// 统一社会信用代码.
    pub credit_code: String,
    pub company_name: String,
    pub id_number: String,
    pub role: CompanyRole,
    pub registered_capital_fen: Money,
    pub status: CompanyStatus,
}

/// 工资 / 社保缴费: one month's wage from one employer.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WageRecord {
    pub id_number: String,
    pub month: Month,
    #[serde(default)]
    pub employer: Option<String>,
    pub wage_fen: Money,
}

/// 救助金发放: one covered person's share of one month's payment to a household.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PaymentRecord {
    pub payment_id: String,
    /// The paying locality's own household number (for the register's households: the
    /// register's `household_id`).
    pub household_id: String,
    /// The paying locality (county, township or village code).
    pub region_code: RegionCode,
    pub id_number: String,
    pub category: Category,
    pub month: Month,
    pub amount_fen: Money,
}

macro_rules! masked_debug {
    ($($t:ty),*) => {$(
        impl fmt::Debug for $t {
            /// Personal data stays masked in debug output.
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", stringify!($t), doudi_model::mask_id_str(&self.id_number))
            }
        }
    )*};
}
masked_debug!(
    DeathRecord,
    HukouRecord,
    VehicleRecord,
    PropertyRecord,
    CompanyRecord,
    WageRecord,
    PaymentRecord
);

/// What every record offers the reader: the ID number it is about and the checks serde cannot do.
pub(crate) trait SnapshotRow: serde::de::DeserializeOwned {
    fn id_number(&self) -> &str;
    /// Fields that must not be blank, by name (at most two; `None` past the last).
    fn required_text(&self) -> [Option<(&'static str, &str)>; 2] {
        [None, None]
    }
}

/// Each record type with the text field that must not be blank.
macro_rules! snapshot_rows {
    ($($record:ident => $required:ident),* $(,)?) => {
        $(
            impl SnapshotRow for $record {
                fn id_number(&self) -> &str {
                    &self.id_number
                }
                fn required_text(&self) -> [Option<(&'static str, &str)>; 2] {
                    [Some((stringify!($required), &self.$required)), None]
                }
            }
        )*
    };
}

snapshot_rows! {
    DeathRecord => record_id,
    HukouRecord => name,
    VehicleRecord => plate,
    PropertyRecord => certificate_no,
    CompanyRecord => credit_code,
}

impl SnapshotRow for WageRecord {
    fn id_number(&self) -> &str {
        &self.id_number
    }
}

impl SnapshotRow for PaymentRecord {
    fn id_number(&self) -> &str {
        &self.id_number
    }
    fn required_text(&self) -> [Option<(&'static str, &str)>; 2] {
        [
            Some(("payment_id", &self.payment_id)),
            Some(("household_id", &self.household_id)),
        ]
    }
}

/// A record read straight from a CSV row's cells (columns in [`all_columns`] order): the same
/// record serde would make of them, or `None` when a cell must go through serde to be accepted
/// or refused with its reason.
///
/// The reader does not make the record of a plain row: [`PlainCsv::facts`] reads what applying
/// it needs beside its text cells, without allocating, exactly when [`PlainCsv::plain`] would
/// give a record (the reader's tests hold them to it), and [`PlainCsv::apply_plain`] applies it
/// from the facts and the cells as [`Apply::apply`] applies the record. Kinds with few rows
/// make the record.
pub(crate) trait PlainCsv: Sized + Apply {
    /// The ID number's column ([`all_columns`] order).
    const ID: usize;
    /// The text columns that must not be blank, named as [`SnapshotRow::required_text`] names
    /// them, in the same order.
    const REQUIRED: &'static [(&'static str, usize)];
    /// What a plain row's cells give, read without allocating.
    type Facts: Copy;
    fn plain(c: &Cells) -> Option<Self>;
    fn facts(c: &Cells) -> Option<Self::Facts>;
    /// `plain(c)`'s record applied to register member `member`.
    fn apply_plain(_facts: Self::Facts, c: &Cells, member: u32, cx: &Cx, p: &mut Partial) {
        if let Some(r) = Self::plain(c) {
            r.apply(Some(member), cx, p);
        }
    }
}

impl PlainCsv for DeathRecord {
    type Facts = ();
    const ID: usize = 1;
    const REQUIRED: &'static [(&'static str, usize)] = &[("record_id", 0)];
    fn plain(c: &Cells) -> Option<Self> {
        Some(DeathRecord {
            record_id: c.text(0)?,
            id_number: c.text(1)?,
            name: c.text(2)?,
            death_date: c.date(3)?,
            region_code: c.optional(4, RegionCode::parse)?,
        })
    }
    fn facts(c: &Cells) -> Option<()> {
        (c.has(0) && c.has(1) && c.has(2) && c.date(3).is_some() && c.optional_region_ok(4))
            .then_some(())
    }
}

impl PlainCsv for HukouRecord {
    type Facts = NaiveDate;
    const ID: usize = 0;
    const REQUIRED: &'static [(&'static str, usize)] = &[("name", 1)];
    fn plain(c: &Cells) -> Option<Self> {
        Some(HukouRecord {
            id_number: c.text(0)?,
            name: c.text(1)?,
            sex: c.value(2)?,
            birth_date: c.date(3)?,
            region_code: c.parsed(4, RegionCode::parse)?,
        })
    }
    fn facts(c: &Cells) -> Option<NaiveDate> {
        let birth = c.date(3)?;
        (c.has(0) && c.has(1) && c.ok::<Sex>(2) && c.region_ok(4)).then_some(birth)
    }
    fn apply_plain(birth: NaiveDate, c: &Cells, member: u32, cx: &Cx, p: &mut Partial) {
        crate::aggregate::hukou_seen(c.cell(1).unwrap_or(""), birth, member, cx, p);
    }
}

impl PlainCsv for VehicleRecord {
    type Facts = ();
    const ID: usize = 1;
    const REQUIRED: &'static [(&'static str, usize)] = &[("plate", 0)];
    fn plain(c: &Cells) -> Option<Self> {
        Some(VehicleRecord {
            plate: c.text(0)?,
            id_number: c.text(1)?,
            vehicle_type: c.value(2)?,
            value_fen: c.value(3)?,
            registered_on: c.date(4)?,
        })
    }
    fn facts(c: &Cells) -> Option<()> {
        (c.has(0)
            && c.has(1)
            && c.ok::<VehicleType>(2)
            && c.ok::<Option<Money>>(3)
            && c.date(4).is_some())
        .then_some(())
    }
}

impl PlainCsv for PropertyRecord {
    type Facts = ();
    const ID: usize = 1;
    const REQUIRED: &'static [(&'static str, usize)] = &[("certificate_no", 0)];
    fn plain(c: &Cells) -> Option<Self> {
        Some(PropertyRecord {
            certificate_no: c.text(0)?,
            id_number: c.text(1)?,
            usage: c.value(2)?,
            area_m2: c.value(3)?,
            value_fen: c.value(4)?,
            region_code: c.optional(5, RegionCode::parse)?,
            registered_on: c.date(6)?,
        })
    }
    fn facts(c: &Cells) -> Option<()> {
        (c.has(0)
            && c.has(1)
            && c.ok::<PropertyUse>(2)
            && c.ok::<Option<u32>>(3)
            && c.ok::<Option<Money>>(4)
            && c.optional_region_ok(5)
            && c.date(6).is_some())
        .then_some(())
    }
}

impl PlainCsv for CompanyRecord {
    type Facts = ();
    const ID: usize = 2;
    const REQUIRED: &'static [(&'static str, usize)] = &[("credit_code", 0)];
    fn plain(c: &Cells) -> Option<Self> {
        Some(CompanyRecord {
            credit_code: c.text(0)?,
            company_name: c.text(1)?,
            id_number: c.text(2)?,
            role: c.value(3)?,
            registered_capital_fen: c.value(4)?,
            status: c.value(5)?,
        })
    }
    fn facts(c: &Cells) -> Option<()> {
        (c.has(0)
            && c.has(1)
            && c.has(2)
            && c.ok::<CompanyRole>(3)
            && c.ok::<Money>(4)
            && c.ok::<CompanyStatus>(5))
        .then_some(())
    }
}

impl PlainCsv for WageRecord {
    type Facts = (Month, Money);
    const ID: usize = 0;
    const REQUIRED: &'static [(&'static str, usize)] = &[];
    fn plain(c: &Cells) -> Option<Self> {
        Some(WageRecord {
            id_number: c.text(0)?,
            month: c.parsed(1, str::parse)?,
            employer: c.value(2)?,
            wage_fen: c.value(3)?,
        })
    }
    fn facts(c: &Cells) -> Option<(Month, Money)> {
        let month = c.parsed(1, str::parse)?;
        let wage = c.value(3)?;
        (c.has(0) && c.ok::<Option<&str>>(2)).then_some((month, wage))
    }
    fn apply_plain(
        (month, wage): (Month, Money),
        _c: &Cells,
        member: u32,
        cx: &Cx,
        p: &mut Partial,
    ) {
        crate::aggregate::wage_paid(month, wage, member, cx, p);
    }
}

impl PlainCsv for PaymentRecord {
    type Facts = (Category, Month, Money);
    const ID: usize = 3;
    const REQUIRED: &'static [(&'static str, usize)] = &[("payment_id", 0), ("household_id", 1)];
    fn plain(c: &Cells) -> Option<Self> {
        Some(PaymentRecord {
            payment_id: c.text(0)?,
            household_id: c.text(1)?,
            region_code: c.parsed(2, RegionCode::parse)?,
            id_number: c.text(3)?,
            category: c.value(4)?,
            month: c.parsed(5, str::parse)?,
            amount_fen: c.value(6)?,
        })
    }
    fn facts(c: &Cells) -> Option<(Category, Month, Money)> {
        let category = c.value(4)?;
        let month = c.parsed(5, str::parse)?;
        let amount = c.value(6)?;
        (c.has(0) && c.has(1) && c.region_ok(2) && c.has(3)).then_some((category, month, amount))
    }
    fn apply_plain(
        (category, month, amount): (Category, Month, Money),
        c: &Cells,
        member: u32,
        cx: &Cx,
        p: &mut Partial,
    ) {
        let payment = crate::aggregate::Payment {
            household_id: c.cell(1).unwrap_or(""),
            category,
            month,
            amount,
        };
        payment.apply(member, || c.parsed(2, RegionCode::parse), cx, p);
    }
}

fn validate_as<R: SnapshotRow>(json: &[u8]) -> Result<(), String> {
    let mut de = serde_json::Deserializer::from_slice(json);
    let row: R = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        format!(
            "{path}: {}",
            crate::sanitize::sanitize(&e.into_inner().to_string())
        )
    })?;
    de.end()
        .map_err(|e| crate::sanitize::sanitize(&e.to_string()))?;
    for (field, text) in row.required_text().into_iter().flatten() {
        if text.trim().is_empty() {
            return Err(format!("{field}: must not be blank"));
        }
    }
    doudi_model::IdNumber::parse(row.id_number())
        .map(|_| ())
        .map_err(|e| format!("id_number: {e}"))
}

/// Whether one JSON record of `kind` would be accepted by the reader (shape, blank fields, ID
/// number), with the reason if not. The reason holds no personal data.
pub fn validate_json(kind: Kind, json: &[u8]) -> Result<(), String> {
    match kind {
        Kind::Deaths => validate_as::<DeathRecord>(json),
        Kind::Hukou => validate_as::<HukouRecord>(json),
        Kind::Vehicles => validate_as::<VehicleRecord>(json),
        Kind::Properties => validate_as::<PropertyRecord>(json),
        Kind::Companies => validate_as::<CompanyRecord>(json),
        Kind::Wages => validate_as::<WageRecord>(json),
        Kind::Payments => validate_as::<PaymentRecord>(json),
    }
}

/// The columns a CSV file of `kind` must have (optional ones may be left out).
pub fn required_columns(kind: Kind) -> &'static [&'static str] {
    match kind {
        Kind::Deaths => &["record_id", "id_number", "name", "death_date"],
        Kind::Hukou => &["id_number", "name", "sex", "birth_date", "region_code"],
        Kind::Vehicles => &["plate", "id_number", "vehicle_type", "registered_on"],
        Kind::Properties => &["certificate_no", "id_number", "usage", "registered_on"],
        Kind::Companies => &[
            "credit_code",
            "company_name",
            "id_number",
            "role",
            "registered_capital_fen",
            "status",
        ],
        Kind::Wages => &["id_number", "month", "wage_fen"],
        Kind::Payments => &[
            "payment_id",
            "household_id",
            "region_code",
            "id_number",
            "category",
            "month",
            "amount_fen",
        ],
    }
}

/// Every column a CSV file of `kind` may have.
pub fn all_columns(kind: Kind) -> &'static [&'static str] {
    match kind {
        Kind::Deaths => &[
            "record_id",
            "id_number",
            "name",
            "death_date",
            "region_code",
        ],
        Kind::Hukou => required_columns(kind),
        Kind::Vehicles => &[
            "plate",
            "id_number",
            "vehicle_type",
            "value_fen",
            "registered_on",
        ],
        Kind::Properties => &[
            "certificate_no",
            "id_number",
            "usage",
            "area_m2",
            "value_fen",
            "region_code",
            "registered_on",
        ],
        Kind::Companies => required_columns(kind),
        Kind::Wages => &["id_number", "month", "employer", "wage_fen"],
        Kind::Payments => required_columns(kind),
    }
}

/// Mask an identifier that is not an ID number but still points at a person (a plate, a
/// certificate number): keep the first two and last two characters.
pub fn mask_code(s: &str) -> String {
    let chars: Vec<char> = s.trim().chars().collect();
    let n = chars.len();
    if n <= 4 {
        return "*".repeat(n);
    }
    let mut out: String = chars[..2].iter().collect();
    out.extend(std::iter::repeat_n('*', n - 4));
    out.extend(&chars[n - 2..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names_give_kind_and_format() {
        assert_eq!(
            classify("payments-2026-11.csv"),
            Some((Kind::Payments, Format::Csv))
        );
        assert_eq!(
            classify("deaths.jsonl"),
            Some((Kind::Deaths, Format::Jsonl))
        );
        assert_eq!(classify("hukou_full.CSV"), Some((Kind::Hukou, Format::Csv)));
        assert_eq!(classify("manifest.json"), None);
        assert_eq!(classify("cars.csv"), None);
    }

    #[test]
    fn months_parse_and_count() {
        let m: Month = "2026-11".parse().unwrap();
        assert_eq!(m.to_string(), "2026-11");
        assert_eq!(m.plus(2).to_string(), "2027-01");
        assert_eq!(m.until(m.plus(-3)), -3);
        assert!("2026-13".parse::<Month>().is_err());
        assert!("2026-1".parse::<Month>().is_err());
        assert_eq!(
            Month::of(NaiveDate::from_ymd_opt(2026, 2, 28).unwrap()).month(),
            2
        );
    }

    #[test]
    fn debug_output_masks_the_id_number() {
        let r = WageRecord {
            id_number: "11010519491231002X".into(),
            month: "2026-01".parse().unwrap(),
            employer: None,
            wage_fen: Money::from_yuan(1),
        };
        assert_eq!(format!("{r:?}"), "WageRecord(110105********002X)");
        assert_eq!(mask_code("皖N12345"), "皖N***45");
    }
}
