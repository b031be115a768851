//! The generated feeds as departments export them (`doudi gen --native`): the same events as the
//! envelope feeds, written in each department's own layout, file format and encoding, for the
//! profiles shipped in `profiles/` to read back.
//!
//! Each layout here is written by hand from the department's field list, independently of its
//! profile: the round-trip test (native files read through the profiles give the envelope
//! events) is then a real check of both.
//!
//! Layout of the output: `native/<layout>/<YYYY-MM>.<csv|xlsx|jsonl|txt>`, one file per month of
//! the envelope feeds that has records of that layout. Deterministic: a pure function of the
//! envelope files.

use std::collections::BTreeMap;
use std::fs;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};

use chrono::{Datelike, NaiveDate, NaiveDateTime, Timelike};
use doudi_model::event::{
    CareSetting, DisabilityType, DisasterKind, HouseGrade, PropertyAction, PropertyType,
    RelocationReason,
};
use doudi_model::{parse_event, Event, Money, ParseLimits, Payload, Sex, Source, ALL_SOURCES};
use rust_xlsxwriter::{DocProperties, ExcelDateTime, Format, Workbook};

use crate::{io_err, SynthError};

/// How a layout's files are written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NativeFormat {
    /// CSV in GB18030, GBK or UTF-8 (`bom`: with a byte-order mark, as Excel saves "CSV UTF-8").
    Csv {
        encoding: TextEncoding,
        bom: bool,
    },
    Xlsx,
    Jsonl,
    /// Fixed-width text in GB18030: widths in characters.
    Fixed,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TextEncoding {
    Utf8,
    Gb18030,
    Gbk,
}

/// A cell to write: text, or (in workbooks) a number or a date cell.
#[derive(Clone, Debug, PartialEq)]
pub enum Cell {
    Text(String),
    /// A number cell in a workbook (written as its decimal text elsewhere).
    Number(String),
    Date(NaiveDate),
    DateTime(NaiveDateTime),
}

impl Cell {
    fn text(&self) -> String {
        match self {
            Cell::Text(s) | Cell::Number(s) => s.clone(),
            Cell::Date(d) => d.format("%Y-%m-%d").to_string(),
            Cell::DateTime(t) => t.format("%Y-%m-%d %H:%M:%S").to_string(),
        }
    }
}

fn t(s: impl Into<String>) -> Cell {
    Cell::Text(s.into())
}

/// Makes a totals row from the data rows.
pub type TotalsRow = fn(&[Vec<Cell>]) -> Vec<Cell>;

/// One department layout.
pub struct Layout {
    /// The layout's name, the same as its profile's (`profiles/<name>.toml`).
    pub name: &'static str,
    pub source: Source,
    /// The kinds it carries.
    pub kinds: &'static [&'static str],
    pub format: NativeFormat,
    /// Header cells (JSON lines: keys; fixed width: none written).
    pub columns: &'static [&'static str],
    /// Fixed width: each column's width in characters.
    pub widths: &'static [usize],
    /// Excel: the sheet's name.
    pub sheet: &'static str,
    /// A title row above the header (CSV and Excel), with the month.
    pub title: Option<fn(NaiveDate) -> String>,
    /// A totals row at the end (the profile skips it).
    pub totals: Option<TotalsRow>,
    /// The row for one event.
    pub row: fn(&Event) -> Vec<Cell>,
}

impl Layout {
    pub fn extension(&self) -> &'static str {
        match self.format {
            NativeFormat::Csv { .. } => "csv",
            NativeFormat::Xlsx => "xlsx",
            NativeFormat::Jsonl => "jsonl",
            NativeFormat::Fixed => "txt",
        }
    }
}

// ---- subject and value helpers -------------------------------------------------------------

fn id(e: &Event) -> String {
    e.subject.id_number.clone().unwrap_or_default()
}
fn name(e: &Event) -> String {
    e.subject.name.clone().unwrap_or_default()
}
fn region(e: &Event) -> String {
    e.subject
        .region_code
        .as_ref()
        .map(|r| r.as_str().to_string())
        .unwrap_or_default()
}
/// GB/T 2261.1 codes: 1 male, 2 female.
fn sex_code(s: Option<Sex>) -> String {
    match s {
        Some(Sex::Male) => "1".into(),
        Some(Sex::Female) => "2".into(),
        None => String::new(),
    }
}
fn sex_zh(s: Option<Sex>) -> String {
    match s {
        Some(Sex::Male) => "男".into(),
        Some(Sex::Female) => "女".into(),
        None => String::new(),
    }
}
fn date(d: Option<NaiveDate>, f: &str) -> String {
    d.map(|d| d.format(f).to_string()).unwrap_or_default()
}
/// `2026/3/1`: no leading zeros, as many office systems print dates.
fn date_slash(d: Option<NaiveDate>) -> String {
    d.map(|d| format!("{}/{}/{}", d.year(), d.month(), d.day()))
        .unwrap_or_default()
}
fn local(e: &Event) -> NaiveDateTime {
    e.occurred_at.naive_local()
}
/// When the department recorded the event, as text in `format`.
fn stamp(e: &Event, format: &str) -> Cell {
    t(local(e).format(format).to_string())
}

fn yuan(m: Money) -> String {
    m.to_string()
}
fn opt_yuan(m: Option<Money>) -> String {
    m.map(yuan).unwrap_or_default()
}
/// 万元 with up to six decimals, trailing zeros dropped: exact.
fn wan_yuan(m: Money) -> String {
    let f = m.fen();
    let s = format!("{}.{:06}", f / 1_000_000, f % 1_000_000);
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}
/// The number after the envelope id's prefix (`yb-000000123` → `000000123`).
fn serial(e: &Event) -> String {
    e.event_id
        .split_once('-')
        .map(|(_, n)| n.to_string())
        .unwrap_or_else(|| e.event_id.clone())
}
/// Full-width digits, as some clerks type them.
fn fullwidth_digits(s: &str) -> String {
    s.chars()
        .map(|c| match c {
            '0'..='9' => char::from_u32(c as u32 + 0xFEE0).unwrap_or(c),
            _ => c,
        })
        .collect()
}
/// A person number (人员编号) that stays the same for the same person: not read by any profile.
fn person_no(e: &Event) -> String {
    let key = format!("{}|{}", id(e), name(e));
    let h = key.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ b as u64).wrapping_mul(0x0100_0000_01b3)
    });
    format!("3415{:012}", h % 1_000_000_000_000)
}

// ---- the layouts ----------------------------------------------------------------------------

/// How a department writes a birth date: as text in a format, or as a date cell.
#[derive(Clone, Copy)]
enum Birth {
    Text(&'static str),
    Date,
}

/// The person an event is about as most departments list them: name, ID number, sex (in the
/// department's words), birth date, region.
fn person(e: &Event, sex: fn(Option<Sex>) -> String, birth: Birth) -> [Cell; 5] {
    let born = match birth {
        Birth::Text(format) => t(date(e.subject.birth_date, format)),
        Birth::Date => e.subject.birth_date.map(Cell::Date).unwrap_or(t("")),
    };
    [
        t(name(e)),
        t(id(e)),
        t(sex(e.subject.sex)),
        born,
        t(region(e)),
    ]
}

/// A row: the department's own columns before the person, the person, its columns after.
fn cells<const B: usize, const A: usize>(
    before: [Cell; B],
    person: [Cell; 5],
    after: [Cell; A],
) -> Vec<Cell> {
    before.into_iter().chain(person).chain(after).collect()
}

const YB_SETTLEMENT: &[&str] = &[
    "结算ID",
    "人员编号",
    "人员姓名",
    "证件类型",
    "证件号码",
    "性别",
    "出生日期",
    "常住地区划",
    "医疗类别",
    "入院日期",
    "出院日期",
    "结算日期",
    "诊断编码",
    "医疗费总额",
    "基金支付总额",
    "个人负担总额",
    "经办时间",
];

fn yb_settlement(e: &Event) -> Vec<Cell> {
    let Payload::Settlement(s) = &e.payload else {
        return Vec::new();
    };
    vec![
        t(format!("JS{}", serial(e))),
        t(person_no(e)),
        t(name(e)),
        t(if e.subject.id_number.is_some() {
            "01"
        } else {
            ""
        }),
        t(id(e)),
        t(sex_code(e.subject.sex)),
        t(date(e.subject.birth_date, "%Y%m%d")),
        t(region(e)),
        t(match s.setting {
            CareSetting::Outpatient => "11",
            CareSetting::Inpatient => "21",
        }),
        t(date_slash(s.admitted_on)),
        t(date_slash(s.discharged_on)),
        t(s.settled_on.format("%Y%m%d").to_string()),
        t(s.diagnoses.join(";")),
        t(yuan(s.total_cost_fen)),
        t(yuan(s.fund_paid_fen)),
        t(yuan(s.out_of_pocket_fen)),
        stamp(e, "%Y-%m-%d %H:%M:%S"),
    ]
}

fn yb_settlement_totals(rows: &[Vec<Cell>]) -> Vec<Cell> {
    let sum = |col: usize| -> String {
        let fen: i64 = rows
            .iter()
            .filter_map(|r| r.get(col))
            .filter_map(|c| Money::parse_yuan(&c.text()).ok())
            .map(Money::fen)
            .sum();
        yuan(Money::from_fen(fen))
    };
    let mut out: Vec<Cell> = YB_SETTLEMENT.iter().map(|_| t("")).collect();
    out[0] = t("合计");
    out[2] = t(format!("{}人次", rows.len()));
    out[13] = t(sum(13));
    out[14] = t(sum(14));
    out[15] = t(sum(15));
    out
}

const YB_CHRONIC: &[&str] = &[
    "序号",
    "姓名",
    "身份证号",
    "性别",
    "出生日期",
    "参保地区划",
    "病种编码",
    "病种名称",
    "认定日期",
    "经办时间",
];

fn yb_chronic(e: &Event) -> Vec<Cell> {
    let Payload::SeriousIllnessDiagnosed(d) = &e.payload else {
        return Vec::new();
    };
    cells(
        [Cell::Number(serial(e).trim_start_matches('0').to_string())],
        person(e, sex_zh, Birth::Date),
        [
            t(&d.diagnosis),
            t(d.description.clone().unwrap_or_default()),
            Cell::Date(d.diagnosed_on),
            Cell::DateTime(local(e)),
        ],
    )
}

const RS_EMPLOYMENT: &[&str] = &[
    "业务流水号",
    "业务类型",
    "姓名",
    "公民身份号码",
    "性别",
    "出生日期",
    "户籍地区划",
    "业务日期",
    "月工资（元）",
    "原月工资（元）",
    "单位名称",
    "经办时间",
];

fn rs_employment(e: &Event) -> Vec<Cell> {
    let (kind, on, wage, previous, employer) = match &e.payload {
        Payload::UnemploymentRegistered(u) => ("失业登记", u.registered_on, None, None, None),
        Payload::JobLost(j) => (
            "解除劳动关系",
            j.last_day,
            j.monthly_wage_fen,
            None,
            j.employer.clone(),
        ),
        Payload::JobStarted(j) => (
            "就业登记",
            j.started_on,
            Some(j.monthly_wage_fen),
            None,
            j.employer.clone(),
        ),
        Payload::WageChanged(w) => (
            "工资变动",
            w.effective_on,
            Some(w.monthly_wage_fen),
            w.previous_wage_fen,
            None,
        ),
        _ => return Vec::new(),
    };
    let num = |m: Option<Money>| m.map(|m| Cell::Number(yuan(m))).unwrap_or(t(""));
    cells(
        [t(format!("RS{}", serial(e))), t(kind)],
        person(e, sex_zh, Birth::Text("%Y-%m-%d")),
        [
            t(format!("{}年{}月{}日", on.year(), on.month(), on.day())),
            num(wage),
            num(previous),
            t(employer.unwrap_or_default()),
            stamp(e, "%Y-%m-%d %H:%M:%S"),
        ],
    )
}

const RS_CONTRIBUTIONS: &[&str] = &[
    "个人编号",
    "姓名",
    "社会保障号码",
    "性别",
    "出生日期",
    "参保地区划",
    "险种类型",
    "末次缴费年月",
    "中断月数",
    "数据日期",
];

fn rs_contributions(e: &Event) -> Vec<Cell> {
    let Payload::ContributionsStopped(c) = &e.payload else {
        return Vec::new();
    };
    cells(
        [t(person_no(e))],
        person(e, sex_zh, Birth::Text("%Y.%m.%d")),
        [
            t("110 企业职工基本养老保险"),
            t(c.last_paid_month.replace('-', "")),
            t(c.months_unpaid.to_string()),
            stamp(e, "%Y%m%d%H%M%S"),
        ],
    )
}

const ZJ_DANGER: &[&str] = &[
    "户主姓名",
    "身份证号码",
    "性别",
    "出生日期",
    "所在村（社区）代码",
    "房屋地址",
    "鉴定等级",
    "鉴定日期",
    "鉴定单位",
    "录入时间",
];

fn zj_danger(e: &Event) -> Vec<Cell> {
    let Payload::DangerousHouseAppraised(d) = &e.payload else {
        return Vec::new();
    };
    cells(
        [],
        person(e, sex_zh, Birth::Date),
        [
            t(""),
            t(match d.grade {
                HouseGrade::C => "C级",
                HouseGrade::D => "D级",
            }),
            t(format!(
                "{}.{}.{}",
                d.appraised_on.year(),
                d.appraised_on.month(),
                d.appraised_on.day()
            )),
            t("六安市房屋安全鉴定中心"),
            Cell::DateTime(local(e)),
        ],
    )
}

const YJ_DISASTER: &[&str] = &[
    "受灾人姓名",
    "身份证号",
    "性别",
    "出生日期",
    "行政区划代码",
    "灾害种类",
    "直接经济损失（万元）",
    "房屋是否不可居住",
    "受灾日期",
    "填报时间",
];

fn yj_disaster(e: &Event) -> Vec<Cell> {
    let Payload::DisasterDamage(d) = &e.payload else {
        return Vec::new();
    };
    cells(
        [],
        person(e, sex_zh, Birth::Text("%Y-%m-%d")),
        [
            t(match d.disaster {
                DisasterKind::Flood => "洪涝",
                DisasterKind::Earthquake => "地震",
                DisasterKind::Fire => "火灾",
                DisasterKind::Typhoon => "台风",
                DisasterKind::Landslide => "滑坡",
                DisasterKind::Drought => "干旱",
                DisasterKind::Hail => "冰雹",
                DisasterKind::Other => "其他",
            }),
            t(wan_yuan(d.loss_fen)),
            t(if d.uninhabitable { "是" } else { "否" }),
            t(d.occurred_on.format("%Y-%m-%d").to_string()),
            stamp(e, "%Y/%m/%d %H:%M:%S"),
        ],
    )
}

const BDC_PROPERTY: &[&str] = &[
    "业务号",
    "权利人",
    "证件号",
    "性别",
    "出生日期",
    "坐落区划",
    "登记类型",
    "房屋用途",
    "成交价格（元）",
    "建筑面积（㎡）",
    "登记日期",
    "登簿时间",
];

fn bdc_property(e: &Event) -> Vec<Cell> {
    let Payload::PropertyRegistered(p) = &e.payload else {
        return Vec::new();
    };
    let area = p.area_m2.map(|a| a.to_string()).unwrap_or_default();
    // every third record with the area typed in full-width digits
    let area = if e.event_id.ends_with(['0', '3', '6']) {
        fullwidth_digits(&area)
    } else {
        area
    };
    cells(
        [t(format!("BDC{}", serial(e)))],
        person(e, sex_zh, Birth::Text("%Y-%m-%d")),
        [
            t(match p.action {
                PropertyAction::Acquired => "转移登记（买入）",
                PropertyAction::Sold => "转移登记（卖出）",
            }),
            t(match p.property_type {
                PropertyType::Residential => "住宅",
                PropertyType::Commercial => "商业",
                PropertyType::Land => "土地",
                PropertyType::Other => "其他",
            }),
            t(opt_yuan(p.value_fen)),
            t(area),
            t(date_slash(Some(p.registered_on))),
            stamp(e, "%Y-%m-%d %H:%M:%S"),
        ],
    )
}

const BQ_RELOCATION: &[&str] = &[
    "ywlsh", "xm", "sfzh", "xb", "csrq", "qhdm", "bqyy", "sfqz", "bqrq", "qrqhdm", "czsj",
];

fn bq_relocation(e: &Event) -> Vec<Cell> {
    let Payload::Relocated(r) = &e.payload else {
        return Vec::new();
    };
    cells(
        [t(format!("BQ{}", serial(e)))],
        person(e, sex_code, Birth::Text("%Y%m%d")),
        [
            t(match r.reason {
                RelocationReason::Disaster => "01",
                RelocationReason::Demolition => "02",
                RelocationReason::DangerousHouse => "03",
                RelocationReason::Ecological => "04",
                RelocationReason::Other => "99",
            }),
            Cell::Number(if r.forced { "1" } else { "0" }.into()),
            t(r.relocated_on.format("%Y-%m-%d").to_string()),
            t(r.to_region_code
                .as_ref()
                .map(|c| c.as_str().to_string())
                .unwrap_or_default()),
            stamp(e, "%Y-%m-%dT%H:%M:%S"),
        ],
    )
}

const GA_HUKOU: &[&str] = &[
    "变动流水号",
    "变动类型",
    "姓名",
    "公民身份号码",
    "性别",
    "出生日期",
    "户籍地区划",
    "变动日期",
    "死亡原因",
    "迁入地区划",
    "迁出地区划",
    "新生儿姓名",
    "新生儿性别",
    "新生儿公民身份号码",
    "登记时间",
];

fn ga_hukou(e: &Event) -> Vec<Cell> {
    let mut cause = String::new();
    let (mut to, mut from) = (String::new(), String::new());
    let (mut child, mut child_sex, mut child_id) = (String::new(), String::new(), String::new());
    let (kind, on) = match &e.payload {
        Payload::Death(d) => {
            cause = d.cause.clone().unwrap_or_default();
            ("死亡注销", d.died_on)
        }
        Payload::Birth(b) => {
            child = b.child_name.clone().unwrap_or_default();
            child_sex = sex_code(Some(b.child_sex));
            child_id = b.child_id_number.clone().unwrap_or_default();
            ("出生登记", b.born_on)
        }
        Payload::HouseholdMoved(m) => {
            to = m.to_region_code.as_str().to_string();
            from = m
                .from_region_code
                .as_ref()
                .map(|c| c.as_str().to_string())
                .unwrap_or_default();
            ("户口迁移", m.moved_on)
        }
        _ => return Vec::new(),
    };
    cells(
        [t(format!("HJ{}", serial(e))), t(kind)],
        person(e, sex_code, Birth::Text("%Y%m%d")),
        [
            t(on.format("%Y%m%d").to_string()),
            t(cause),
            t(to),
            t(from),
            t(child),
            t(child_sex),
            t(child_id),
            stamp(e, "%Y-%m-%d %H:%M:%S"),
        ],
    )
}

const MZ_MARRIAGE: &[&str] = &[
    "登记类型",
    "当事人姓名",
    "当事人身份证件号码",
    "性别",
    "出生日期",
    "户籍地区划",
    "登记日期",
    "配偶姓名",
    "配偶身份证件号码",
    "办理时间",
];

fn mz_marriage(e: &Event) -> Vec<Cell> {
    let (kind, on, spouse, spouse_id) = match &e.payload {
        Payload::Marriage(m) => (
            "结婚登记",
            m.married_on,
            m.spouse_name.clone(),
            m.spouse_id_number.clone(),
        ),
        Payload::Divorce(d) => ("离婚登记", d.divorced_on, None, None),
        _ => return Vec::new(),
    };
    cells(
        [t(kind)],
        person(e, sex_zh, Birth::Text("%Y-%m-%d")),
        [
            t(on.format("%Y-%m-%d").to_string()),
            t(spouse.unwrap_or_default()),
            t(spouse_id.unwrap_or_default()),
            stamp(e, "%Y-%m-%d %H:%M:%S"),
        ],
    )
}

const CL_DISABILITY: &[&str] = &[
    "身份证号",
    "姓名",
    "性别",
    "出生日期",
    "区划代码",
    "残疾类别",
    "残疾等级",
    "发证日期",
    "录入时间",
];
const CL_WIDTHS: &[usize] = &[18, 8, 1, 8, 12, 1, 1, 8, 14];

fn cl_disability(e: &Event) -> Vec<Cell> {
    let Payload::DisabilityCertified(d) = &e.payload else {
        return Vec::new();
    };
    vec![
        t(id(e)),
        t(name(e)),
        t(sex_code(e.subject.sex)),
        t(date(e.subject.birth_date, "%Y%m%d")),
        t(region(e)),
        // GB/T 26341-2010: 1 视力 2 听力 3 言语 4 肢体 5 智力 6 精神 7 多重
        t(match d.disability_type {
            DisabilityType::Visual => "1",
            DisabilityType::Hearing => "2",
            DisabilityType::Speech => "3",
            DisabilityType::Physical => "4",
            DisabilityType::Intellectual => "5",
            DisabilityType::Mental => "6",
            DisabilityType::Multiple => "7",
        }),
        t(d.grade.to_string()),
        t(d.certified_on.format("%Y%m%d").to_string()),
        stamp(e, "%Y%m%d%H%M%S"),
    ]
}

/// A layout with no title row, totals row, sheet name or widths.
const fn plain(
    name: &'static str,
    source: Source,
    kinds: &'static [&'static str],
    format: NativeFormat,
    columns: &'static [&'static str],
    row: fn(&Event) -> Vec<Cell>,
) -> Layout {
    Layout {
        name,
        source,
        kinds,
        format,
        columns,
        widths: &[],
        sheet: "",
        title: None,
        totals: None,
        row,
    }
}

const fn csv(encoding: TextEncoding, bom: bool) -> NativeFormat {
    NativeFormat::Csv { encoding, bom }
}

use NativeFormat::{Fixed, Jsonl, Xlsx};
use TextEncoding::{Gb18030, Gbk, Utf8};

/// Every layout, one per department export; together they carry every kind.
pub const LAYOUTS: &[Layout] = &[
    Layout {
        title: Some(|m| {
            format!(
                "六安市医疗保障局 医保结算清单（{}年{:02}月）",
                m.year(),
                m.month()
            )
        }),
        totals: Some(yb_settlement_totals),
        ..plain(
            "yibao-settlement",
            Source::HealthInsurance,
            &["settlement"],
            csv(Gb18030, false),
            YB_SETTLEMENT,
            yb_settlement,
        )
    },
    Layout {
        sheet: "认定名单",
        ..plain(
            "yibao-chronic",
            Source::HealthInsurance,
            &["serious_illness_diagnosed"],
            Xlsx,
            YB_CHRONIC,
            yb_chronic,
        )
    },
    Layout {
        sheet: "就业失业登记",
        ..plain(
            "renshe-employment",
            Source::Employment,
            &[
                "unemployment_registered",
                "job_lost",
                "job_started",
                "wage_changed",
            ],
            Xlsx,
            RS_EMPLOYMENT,
            rs_employment,
        )
    },
    plain(
        "renshe-contributions",
        Source::Employment,
        &["contributions_stopped"],
        csv(Gbk, false),
        RS_CONTRIBUTIONS,
        rs_contributions,
    ),
    Layout {
        sheet: "危房鉴定",
        title: Some(|m| format!("农村危房鉴定结果汇总表（{}年{}月）", m.year(), m.month())),
        ..plain(
            "zhujian-dangerous-house",
            Source::Housing,
            &["dangerous_house_appraised"],
            Xlsx,
            ZJ_DANGER,
            zj_danger,
        )
    },
    plain(
        "yingji-disaster",
        Source::Housing,
        &["disaster_damage"],
        csv(Gb18030, false),
        YJ_DISASTER,
        yj_disaster,
    ),
    plain(
        "budongchan-property",
        Source::Housing,
        &["property_registered"],
        csv(Utf8, true),
        BDC_PROPERTY,
        bdc_property,
    ),
    plain(
        "banqian-relocation",
        Source::Housing,
        &["relocated"],
        Jsonl,
        BQ_RELOCATION,
        bq_relocation,
    ),
    plain(
        "gongan-hukou",
        Source::CivilRegistry,
        &["death", "birth", "household_moved"],
        csv(Gb18030, false),
        GA_HUKOU,
        ga_hukou,
    ),
    plain(
        "minzheng-marriage",
        Source::CivilRegistry,
        &["marriage", "divorce"],
        csv(Utf8, false),
        MZ_MARRIAGE,
        mz_marriage,
    ),
    Layout {
        widths: CL_WIDTHS,
        ..plain(
            "canlian-disability",
            Source::CivilRegistry,
            &["disability_certified"],
            Fixed,
            CL_DISABILITY,
            cl_disability,
        )
    },
];

/// The layout that carries `kind`.
pub fn layout_for(kind: &str) -> Option<&'static Layout> {
    LAYOUTS.iter().find(|l| l.kinds.contains(&kind))
}

/// What [`write_native`] wrote: files and rows per layout.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NativeSummary {
    pub files: BTreeMap<&'static str, usize>,
    pub rows: BTreeMap<&'static str, usize>,
}

/// Read the envelope feeds under `dir/feeds/`, one month file at a time (sources in order, files
/// in name order), handing each file's month and events to `each`.
pub fn each_envelope_file(
    dir: &Path,
    each: &mut dyn FnMut(Source, NaiveDate, Vec<Event>) -> Result<(), SynthError>,
) -> Result<(), SynthError> {
    for source in ALL_SOURCES {
        let folder = dir.join("feeds").join(source.code());
        let mut files: Vec<PathBuf> = fs::read_dir(&folder)
            .map_err(io_err(&folder))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "jsonl"))
            .collect();
        files.sort();
        for file in files {
            let Some(month) = file.file_stem().and_then(|s| {
                NaiveDate::parse_from_str(&format!("{}-01", s.to_string_lossy()), "%Y-%m-%d").ok()
            }) else {
                continue;
            };
            let mut events = Vec::new();
            let f = fs::File::open(&file).map_err(io_err(&file))?;
            for line in BufReader::new(f).lines() {
                let line = line.map_err(io_err(&file))?;
                events.push(
                    parse_event(line.as_bytes(), &ParseLimits::STORED)
                        .map_err(|e| SynthError::Config(format!("{}: {e}", file.display())))?,
                );
            }
            each(source, month, events)?;
        }
    }
    Ok(())
}

/// Every envelope event under `dir/feeds/`, in file order.
pub fn envelope_events(dir: &Path) -> Result<Vec<Event>, SynthError> {
    let mut all = Vec::new();
    each_envelope_file(dir, &mut |_, _, events| {
        all.extend(events);
        Ok(())
    })?;
    Ok(all)
}

/// Read the envelope feeds under `dir/feeds/` and write them again under `dir/native/<layout>/`,
/// one file per layout and month.
pub fn write_native(dir: &Path) -> Result<NativeSummary, SynthError> {
    let mut summary = NativeSummary::default();
    each_envelope_file(dir, &mut |_, month, events| {
        let mut by_layout: BTreeMap<&'static str, Vec<Event>> = BTreeMap::new();
        for event in events {
            if let Some(l) = layout_for(event.kind()) {
                by_layout.entry(l.name).or_default().push(event);
            }
        }
        for (name, events) in by_layout {
            let Some(layout) = LAYOUTS.iter().find(|l| l.name == name) else {
                continue;
            };
            let out = dir.join("native").join(name);
            fs::create_dir_all(&out).map_err(io_err(&out))?;
            let path = out.join(format!(
                "{:04}-{:02}.{}",
                month.year(),
                month.month(),
                layout.extension()
            ));
            write_layout(layout, month, &events, &path)?;
            *summary.files.entry(name).or_insert(0) += 1;
            *summary.rows.entry(name).or_insert(0) += events.len();
        }
        Ok(())
    })?;
    Ok(summary)
}

/// Write `events` in `layout` to `path` (`month` names the title row, where there is one).
pub fn write_layout(
    layout: &Layout,
    month: NaiveDate,
    events: &[Event],
    path: &Path,
) -> Result<(), SynthError> {
    let rows: Vec<Vec<Cell>> = events.iter().map(|e| (layout.row)(e)).collect();
    match layout.format {
        NativeFormat::Csv { encoding, bom } => {
            let mut w = csv::WriterBuilder::new()
                .flexible(true)
                .from_writer(Vec::new());
            let csv_err = |e: csv::Error| SynthError::Config(format!("{}: {e}", path.display()));
            if let Some(title) = layout.title {
                w.write_record([title(month)]).map_err(csv_err)?;
            }
            w.write_record(layout.columns).map_err(csv_err)?;
            for r in &rows {
                w.write_record(r.iter().map(Cell::text)).map_err(csv_err)?;
            }
            if let Some(totals) = layout.totals {
                w.write_record(totals(&rows).iter().map(Cell::text))
                    .map_err(csv_err)?;
            }
            let utf8 = w
                .into_inner()
                .map_err(|e| SynthError::Config(format!("{}: {e}", path.display())))?;
            let text = String::from_utf8_lossy(&utf8);
            let mut bytes = Vec::with_capacity(utf8.len() + 3);
            match encoding {
                TextEncoding::Utf8 => {
                    if bom {
                        bytes.extend_from_slice(&[0xEF, 0xBB, 0xBF]);
                    }
                    bytes.extend_from_slice(&utf8);
                }
                TextEncoding::Gb18030 | TextEncoding::Gbk => {
                    let enc = if encoding == TextEncoding::Gbk {
                        encoding_rs::GBK
                    } else {
                        encoding_rs::GB18030
                    };
                    let (b, _, unmappable) = enc.encode(&text);
                    if unmappable {
                        return Err(SynthError::Config(format!(
                            "{}: a character has no {} form",
                            path.display(),
                            enc.name()
                        )));
                    }
                    bytes.extend_from_slice(&b);
                }
            }
            fs::write(path, bytes).map_err(io_err(path))
        }
        NativeFormat::Jsonl => {
            let mut out = Vec::new();
            for r in &rows {
                let mut obj = serde_json::Map::new();
                for (k, c) in layout.columns.iter().zip(r) {
                    let v = match c {
                        Cell::Number(n) => n
                            .parse::<i64>()
                            .map(serde_json::Value::from)
                            .unwrap_or_else(|_| serde_json::Value::String(n.clone())),
                        c if c.text().is_empty() => serde_json::Value::Null,
                        c => serde_json::Value::String(c.text()),
                    };
                    obj.insert((*k).to_string(), v);
                }
                serde_json::to_writer(&mut out, &obj)
                    .map_err(|e| SynthError::Config(e.to_string()))?;
                out.push(b'\n');
            }
            fs::write(path, out).map_err(io_err(path))
        }
        NativeFormat::Fixed => {
            let mut text = String::new();
            for r in &rows {
                for (c, w) in r.iter().zip(layout.widths) {
                    let s = c.text();
                    let n = s.chars().count();
                    if n > *w {
                        return Err(SynthError::Config(format!(
                            "{}: a value is wider than its column ({n} > {w})",
                            path.display()
                        )));
                    }
                    text.push_str(&s);
                    text.extend(std::iter::repeat_n(' ', w - n));
                }
                text.push_str("\r\n");
            }
            let (b, _, _) = encoding_rs::GB18030.encode(&text);
            fs::write(path, &b[..]).map_err(io_err(path))
        }
        NativeFormat::Xlsx => write_xlsx(layout, month, rows.iter().cloned(), path),
    }
}

/// Write rows to a workbook in constant memory (rows go to a temporary file as they are
/// written), so that a full 1,048,576-row sheet can be made for the bench.
pub fn write_xlsx(
    layout: &Layout,
    month: NaiveDate,
    rows: impl Iterator<Item = Vec<Cell>>,
    path: &Path,
) -> Result<(), SynthError> {
    let x = |e: rust_xlsxwriter::XlsxError| SynthError::Config(format!("{}: {e}", path.display()));
    let mut wb = Workbook::new();
    // Created "on" the first day of the month the file covers, not at the clock's time: the
    // same seed writes the same bytes (`gen --help`), workbooks included.
    let created = excel_date(month).map_err(x)?;
    wb.set_properties(&DocProperties::new().set_creation_datetime(&created));
    let date_fmt = Format::new().set_num_format("yyyy-mm-dd");
    let time_fmt = Format::new().set_num_format("yyyy-mm-dd hh:mm:ss");
    let ws = wb.add_worksheet_with_constant_memory();
    ws.set_name(layout.sheet).map_err(x)?;
    let mut r: u32 = 0;
    if let Some(title) = layout.title {
        ws.write_string(r, 0, title(month)).map_err(x)?;
        r += 1;
    }
    for (c, h) in layout.columns.iter().enumerate() {
        ws.write_string(r, c as u16, *h).map_err(x)?;
    }
    r += 1;
    for row in rows {
        for (c, cell) in row.iter().enumerate() {
            let c = c as u16;
            match cell {
                Cell::Text(s) if s.is_empty() => {}
                Cell::Text(s) => {
                    ws.write_string(r, c, s).map_err(x)?;
                }
                Cell::Number(n) => match n.parse::<f64>() {
                    Ok(f) => {
                        ws.write_number(r, c, f).map_err(x)?;
                    }
                    Err(_) => {
                        ws.write_string(r, c, n).map_err(x)?;
                    }
                },
                Cell::Date(d) => {
                    let xd = excel_date(*d).map_err(x)?;
                    ws.write_datetime_with_format(r, c, xd, &date_fmt)
                        .map_err(x)?;
                }
                Cell::DateTime(t) => {
                    let xd = excel_date(t.date())
                        .and_then(|d| d.and_hms(t.hour() as u16, t.minute() as u8, t.second()))
                        .map_err(x)?;
                    ws.write_datetime_with_format(r, c, xd, &time_fmt)
                        .map_err(x)?;
                }
            }
        }
        r += 1;
    }
    wb.save(path).map_err(x)
}

fn excel_date(d: NaiveDate) -> Result<ExcelDateTime, rust_xlsxwriter::XlsxError> {
    ExcelDateTime::from_ymd(d.year() as u16, d.month() as u8, d.day() as u8)
}
