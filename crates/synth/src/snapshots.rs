//! Full department snapshots for the nightly cross-check (`doudi crosscheck`), with planted
//! findings and their ground truth.
//!
//! [`write_snapshots`] writes, under `DIR/snapshots/`, one file set per department in the formats
//! of `schemas/snapshots/` (both CSV and JSONL are used, so both readers are exercised):
//! `deaths.jsonl`, `hukou.csv`, `vehicles.csv`, `properties.jsonl`, `companies.jsonl`,
//! `wages-YYYY-MM.csv` and `payments-YYYY-MM.csv` (one a month, as departments send them), and
//! `manifest.json` (the night `as_of`, rows per file, planted counts). `DIR/truth/findings.jsonl`
//! lists every finding the default `CheckConfig` of `doudi-crosscheck` must report: one line
//! `{"check", "household_id", "member_id"}` each (`member_id` null for household findings), sorted.
//!
//! The snapshots describe the register as written in `register.jsonl` (the feeds' own scenarios
//! are not reflected). Ordinary rows are what a clean register looks like: every member on the
//! hukou roll with the right name and birth date (a few with the legacy 15-digit number or a
//! lower-case `x`); every paid household paid each month, one row per covered member; vehicles,
//! homes and company roles under the thresholds; wages of employed members as the register has
//! them (below the line for paid households); and people outside the register in every file.
//!
//! Planted, each in its own households (about `plant_rate` of households per kind):
//! - **deaths**: in a paid household, one member dies (`deceased_still_paid`), or every member
//!   of a one- or two-member household dies (`deceased_still_paid` for each, and
//!   `no_living_member`); payments go on after the death;
//! - **vehicle** (a car or truck above 50,000 yuan), **property** (a second home or a shop),
//!   **company** (legal representative of an active company, or a role in one with capital above
//!   100,000 yuan): `disqualifying_*` for the household;
//! - **income**: a member of a 低保/特困 household earns enough to lift per-capita wages above the
//!   line for the last 3 to 6 months (`income_above_line`); near misses (2 months only, or 3
//!   months that ended earlier) are planted too and must not be reported;
//! - **duplicate enrolment**: a member also appears in the payment roll under another household
//!   number, either another register household of the same county (two households) or a
//!   household of a county outside the register (two localities) (`duplicate_enrolment`);
//! - **hukou**: a member missing from the roll (`id_unknown_to_hukou`), or listed with another
//!   given name or birth date (`hukou_mismatch`).

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use chrono::{Datelike, Days, Months, NaiveDate};
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use serde_json::json;

use doudi_model::{Area, Category, Household, IdNumber, Money, Sex};

use crate::names;
use crate::register::{birth_for_age, IdAlloc, DIBAO_RURAL, DIBAO_URBAN, OTHER_ADDRESS_CODES};
use crate::{GenConfig, SynthError};

/// What to write.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SnapshotConfig {
    pub seed: u64,
    /// The night the snapshots are taken.
    pub as_of: NaiveDate,
    /// Months of payment rolls (the months before `as_of`'s month).
    pub payment_months: u32,
    /// Months of wage records (the months before `as_of`'s month).
    pub wage_months: u32,
    /// Share of households given each kind of plant (at least 2 households per kind).
    pub plant_rate: f64,
    /// People outside the register, as a share of the register's members.
    pub outsiders: f64,
}

impl Default for SnapshotConfig {
    fn default() -> Self {
        SnapshotConfig {
            seed: 1,
            as_of: NaiveDate::from_ymd_opt(2027, 1, 1).unwrap_or_default(),
            payment_months: 12,
            wage_months: 12,
            plant_rate: 0.01,
            outsiders: 0.1,
        }
    }
}

/// What [`write_snapshots`] wrote.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SnapshotSummary {
    pub as_of: NaiveDate,
    /// Rows per file name.
    pub rows: BTreeMap<String, u64>,
    /// Truth findings per check code.
    pub findings: BTreeMap<String, usize>,
    pub dir: PathBuf,
}

impl SnapshotSummary {
    pub fn total_rows(&self) -> u64 {
        self.rows.values().sum()
    }
}

/// The income line the default cross-check configuration uses (fen a month per person).
fn line(area: Area) -> i64 {
    match area {
        Area::Urban => DIBAO_URBAN,
        Area::Rural => DIBAO_RURAL,
    }
}

/// Months the default cross-check configuration requires above the line.
const INCOME_MONTHS: i32 = 3;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Plant {
    DeathAll,
    DeathOne,
    Vehicle,
    Property,
    Company,
    Income,
    IncomeNearMiss,
    DuplicateHere,
    DuplicateElsewhere,
    HukouUnknown,
    HukouMismatch,
}

const PLANTS: [Plant; 11] = [
    Plant::DeathAll,
    Plant::DeathOne,
    Plant::Vehicle,
    Plant::Property,
    Plant::Company,
    Plant::Income,
    Plant::IncomeNearMiss,
    Plant::DuplicateHere,
    Plant::DuplicateElsewhere,
    Plant::HukouUnknown,
    Plant::HukouMismatch,
];

fn adults(h: &Household, on: NaiveDate) -> Vec<usize> {
    (0..h.members.len())
        .filter(|&i| h.members[i].age_on(on) >= 18)
        .collect()
}

fn fits(p: Plant, h: &Household, as_of: NaiveDate) -> bool {
    let paid = h.monthly_benefit > Money::ZERO;
    match p {
        Plant::DeathAll => paid && h.members.len() <= 2,
        Plant::DeathOne => paid && h.members.len() >= 2,
        Plant::Vehicle | Plant::Company => !adults(h, as_of).is_empty(),
        Plant::Property | Plant::HukouUnknown | Plant::HukouMismatch => true,
        Plant::Income | Plant::IncomeNearMiss => {
            matches!(h.category, Category::Dibao | Category::Tekun)
                && h.members
                    .iter()
                    .any(|m| (18..=59).contains(&m.age_on(as_of)))
        }
        Plant::DuplicateHere | Plant::DuplicateElsewhere => true,
    }
}

struct Csv {
    path: PathBuf,
    w: BufWriter<fs::File>,
    rows: u64,
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> SynthError + '_ {
    move |source| SynthError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Quote a CSV field if it needs it.
fn field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

impl Csv {
    /// One file a month, `<name>-<YYYY-MM>.csv` under `dir`, in the order of `months`.
    fn monthly(
        dir: &Path,
        name: &str,
        months: &[NaiveDate],
        header: &str,
    ) -> Result<Vec<Csv>, SynthError> {
        months
            .iter()
            .map(|m| Csv::create(dir.join(format!("{name}-{}.csv", month_str(*m))), header))
            .collect()
    }

    fn create(path: PathBuf, header: &str) -> Result<Csv, SynthError> {
        let f = fs::File::create(&path).map_err(io_err(&path))?;
        let mut w = BufWriter::with_capacity(1 << 17, f);
        w.write_all(header.as_bytes())
            .and_then(|()| w.write_all(b"\n"))
            .map_err(io_err(&path))?;
        Ok(Csv { path, w, rows: 0 })
    }

    fn line(&mut self, s: &str) -> Result<(), SynthError> {
        self.rows += 1;
        self.w
            .write_all(s.as_bytes())
            .and_then(|()| self.w.write_all(b"\n"))
            .map_err(io_err(&self.path))
    }

    fn json<T: Serialize>(&mut self, v: &T) -> Result<(), SynthError> {
        let s = serde_json::to_string(v).map_err(|e| SynthError::Io {
            path: self.path.clone(),
            source: e.into(),
        })?;
        self.line(&s)
    }

    fn finish(mut self) -> Result<(String, u64), SynthError> {
        self.w.flush().map_err(io_err(&self.path))?;
        let name = self
            .path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        Ok((name, self.rows))
    }
}

/// A person outside the register.
struct Outsider {
    id: IdNumber,
    name: String,
    sex: Sex,
    birth: NaiveDate,
}

fn outsider(rng: &mut ChaCha8Rng, ids: &mut IdAlloc, as_of: NaiveDate) -> Option<Outsider> {
    let sex = if rng.gen_bool(0.5) {
        Sex::Male
    } else {
        Sex::Female
    };
    let age = rng.gen_range(18..=85);
    let birth = birth_for_age(rng, as_of, age);
    let address = *names::pick(rng, OTHER_ADDRESS_CODES);
    let id = ids.fresh(rng, address, birth, sex)?;
    let name = format!(
        "{}{}",
        names::surname(rng),
        names::given_name(rng, sex, birth.year())
    );
    Some(Outsider {
        id,
        name,
        sex,
        birth,
    })
}

fn month_str(d: NaiveDate) -> String {
    format!("{:04}-{:02}", d.year(), d.month())
}

fn first_of_month(d: NaiveDate) -> NaiveDate {
    d.with_day(1).unwrap_or(d)
}

/// The `n` months before `as_of`'s month, oldest first (first days).
fn months_before(as_of: NaiveDate, n: u32) -> Vec<NaiveDate> {
    let start = first_of_month(as_of);
    (1..=n)
        .rev()
        .filter_map(|k| start.checked_sub_months(Months::new(k)))
        .collect()
}

fn sex_code(s: Sex) -> &'static str {
    match s {
        Sex::Male => "male",
        Sex::Female => "female",
    }
}

fn plate(rng: &mut ChaCha8Rng) -> String {
    const LETTERS: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZ0123456789";
    let tail: String = (0..5)
        .map(|_| LETTERS[rng.gen_range(0..LETTERS.len())] as char)
        .collect();
    format!("皖N{tail}")
}

fn certificate(rng: &mut ChaCha8Rng, n: u64) -> String {
    format!(
        "皖({})六安市不动产权第{:07}号",
        rng.gen_range(2005..=2026),
        n
    )
}

fn credit_code(n: u64) -> String {
    format!("91341500MA{:08}", n)
}

fn date_between(rng: &mut ChaCha8Rng, from: NaiveDate, to: NaiveDate) -> NaiveDate {
    let span = (to - from).num_days().max(0) as u64;
    from.checked_add_days(Days::new(rng.gen_range(0..=span)))
        .unwrap_or(from)
}

fn yuan_range(rng: &mut ChaCha8Rng, lo: i64, hi: i64) -> i64 {
    rng.gen_range(lo..=hi) * 100
}

/// Called by [`crate::write_dataset`]: snapshots for the night after the feed window.
pub(crate) fn write_for_dataset(
    dir: &Path,
    register: &[Household],
    gen: &GenConfig,
) -> Result<SnapshotSummary, SynthError> {
    let as_of = gen
        .start
        .checked_add_months(Months::new(gen.months))
        .unwrap_or(gen.start);
    let cfg = SnapshotConfig {
        seed: gen.seed,
        as_of,
        ..SnapshotConfig::default()
    };
    write_snapshots(dir, register, &cfg)
}

struct Truth(BTreeSet<(String, String, Option<String>)>);

impl Truth {
    fn add(&mut self, check: &str, h: &Household, member: Option<usize>) {
        self.0.insert((
            check.to_string(),
            h.household_id.clone(),
            member.map(|i| h.members[i].member_id.clone()),
        ));
    }
}

/// Write snapshots of `register` for the night `cfg.as_of` under `dir/snapshots/`, and their
/// ground truth in `dir/truth/findings.jsonl`. Deterministic in `cfg` and the register.
pub fn write_snapshots(
    dir: &Path,
    register: &[Household],
    cfg: &SnapshotConfig,
) -> Result<SnapshotSummary, SynthError> {
    if !(0.0..=0.05).contains(&cfg.plant_rate) {
        return Err(SynthError::Config(format!(
            "plant_rate must be between 0 and 0.05, got {}",
            cfg.plant_rate
        )));
    }
    if !(0.0..=2.0).contains(&cfg.outsiders) {
        return Err(SynthError::Config(format!(
            "outsiders must be between 0 and 2, got {}",
            cfg.outsiders
        )));
    }
    if !(INCOME_MONTHS as u32 + 4..=36).contains(&cfg.wage_months)
        || !(2..=36).contains(&cfg.payment_months)
    {
        return Err(SynthError::Config(format!(
            "wage_months must be 7 to 36 and payment_months 2 to 36, got {} and {}",
            cfg.wage_months, cfg.payment_months
        )));
    }
    let snap = dir.join("snapshots");
    let truth_dir = dir.join("truth");
    for d in [&snap, &truth_dir] {
        fs::create_dir_all(d).map_err(io_err(d))?;
    }
    let as_of = cfg.as_of;
    let mut rng = ChaCha8Rng::seed_from_u64(cfg.seed ^ 0x736e_6170_7368_6f74);
    let mut ids = IdAlloc::from_register(register);

    // Assign plants: walk the households in a shuffled order, each kind taking what fits.
    let quota = ((register.len() as f64 * cfg.plant_rate).round() as usize).max(2);
    let mut order: Vec<usize> = (0..register.len()).collect();
    order.shuffle(&mut rng);
    let mut plant: Vec<Option<Plant>> = vec![None; register.len()];
    let mut taken = [0usize; PLANTS.len()];
    for &hi in &order {
        let h = &register[hi];
        for (k, p) in PLANTS.iter().enumerate() {
            if taken[k] < quota && fits(*p, h, as_of) {
                plant[hi] = Some(*p);
                taken[k] += 1;
                break;
            }
        }
        if taken.iter().all(|t| *t >= quota) {
            break;
        }
    }
    // Same-county paid households, to carry "two households" duplicates.
    let mut paid_by_county: BTreeMap<String, Vec<usize>> = BTreeMap::new();
    for (hi, h) in register.iter().enumerate() {
        if h.monthly_benefit > Money::ZERO {
            paid_by_county
                .entry(h.region_code.county().to_string())
                .or_default()
                .push(hi);
        }
    }

    let pay_months = months_before(as_of, cfg.payment_months);
    let wage_months = months_before(as_of, cfg.wage_months);
    let jsonl = |name: &str| -> Result<Csv, SynthError> {
        let path = snap.join(name);
        let f = fs::File::create(&path).map_err(io_err(&path))?;
        Ok(Csv {
            w: BufWriter::with_capacity(1 << 17, f),
            path,
            rows: 0,
        })
    };
    let mut deaths = jsonl("deaths.jsonl")?;
    let mut properties = jsonl("properties.jsonl")?;
    let mut companies = jsonl("companies.jsonl")?;
    let mut hukou = Csv::create(
        snap.join("hukou.csv"),
        "id_number,name,sex,birth_date,region_code",
    )?;
    let mut vehicles = Csv::create(
        snap.join("vehicles.csv"),
        "plate,id_number,vehicle_type,value_fen,registered_on",
    )?;
    let mut wages = Csv::monthly(
        &snap,
        "wages",
        &wage_months,
        "id_number,month,employer,wage_fen",
    )?;
    let mut payments = Csv::monthly(
        &snap,
        "payments",
        &pay_months,
        "payment_id,household_id,region_code,id_number,category,month,amount_fen",
    )?;

    let mut truth = Truth(BTreeSet::new());
    let mut counter: u64 = 0;
    let employers = [
        "六安市恒达建材有限公司",
        "金安区福泰物流有限公司",
        "裕安区顺丰农业合作社",
        "霍邱县宏远制衣厂",
        "六安市城市保洁服务中心",
    ];
    let recent_from = first_of_month(as_of)
        .checked_sub_months(Months::new(8))
        .unwrap_or(as_of);
    let recent_to = first_of_month(as_of)
        .checked_sub_months(Months::new(1))
        .and_then(|d| d.checked_sub_days(Days::new(1)))
        .unwrap_or(as_of);

    for (hi, h) in register.iter().enumerate() {
        let p = plant[hi];
        let area_line = line(h.area);
        let size = h.members.len() as i64;

        // Deaths
        let mut death_of: BTreeMap<usize, NaiveDate> = BTreeMap::new();
        match p {
            Some(Plant::DeathAll) => {
                for i in 0..h.members.len() {
                    death_of.insert(i, date_between(&mut rng, recent_from, recent_to));
                }
                truth.add("no_living_member", h, None);
            }
            Some(Plant::DeathOne) => {
                let i = rng.gen_range(0..h.members.len());
                death_of.insert(i, date_between(&mut rng, recent_from, recent_to));
            }
            _ => {}
        }
        for (&i, &d) in &death_of {
            let m = &h.members[i];
            counter += 1;
            deaths.json(&json!({
                "record_id": format!("SW{counter:010}"),
                "id_number": m.id_number.expose(),
                "name": m.name,
                "death_date": d,
                "region_code": h.region_code,
            }))?;
            truth.add("deceased_still_paid", h, Some(i));
        }

        // Hukou roll
        let skip = (p == Some(Plant::HukouUnknown)).then(|| rng.gen_range(0..h.members.len()));
        let mismatch = (p == Some(Plant::HukouMismatch)).then(|| rng.gen_range(0..h.members.len()));
        for (i, m) in h.members.iter().enumerate() {
            if skip == Some(i) {
                truth.add("id_unknown_to_hukou", h, Some(i));
                continue;
            }
            let mut name = m.name.clone();
            let mut birth = m.birth_date;
            if mismatch == Some(i) {
                if rng.gen_bool(0.5) {
                    let (surname, given) = names::split_name(&m.name);
                    let mut other = given.to_string();
                    for _ in 0..20 {
                        other = names::given_name(&mut rng, m.sex, m.birth_date.year());
                        if other != given {
                            break;
                        }
                    }
                    name = format!("{surname}{other}");
                    if name == m.name {
                        name = format!("{surname}{given}{given}");
                    }
                } else {
                    birth = birth
                        .checked_add_days(Days::new(rng.gen_range(1..=300)))
                        .unwrap_or(birth);
                }
                truth.add("hukou_mismatch", h, Some(i));
            }
            let mut id = m.id_number.expose().to_string();
            let year = m.birth_date.year();
            let r: f64 = rng.gen();
            if r < 0.03 && (1900..=1999).contains(&year) {
                // the legacy 15-digit number: drop "19" and the check character
                id = format!("{}{}", &id[..6], &id[8..17]);
            } else if id.ends_with('X') && r < 0.5 {
                id = id.to_lowercase();
            }
            hukou.line(&format!(
                "{id},{},{},{birth},{}",
                field(&name),
                sex_code(m.sex),
                h.region_code
            ))?;
        }

        // Vehicles
        let adult_list = adults(h, as_of);
        if let Some(&owner) = adult_list.first() {
            let m = &h.members[owner];
            if p == Some(Plant::Vehicle) {
                let (t, v) = if rng.gen_bool(0.7) {
                    ("passenger_car", yuan_range(&mut rng, 60_000, 300_000))
                } else {
                    ("truck", yuan_range(&mut rng, 60_000, 180_000))
                };
                let d = date_between(
                    &mut rng,
                    NaiveDate::from_ymd_opt(2015, 1, 1).unwrap_or(as_of),
                    recent_to,
                );
                vehicles.line(&format!(
                    "{},{},{t},{v},{d}",
                    plate(&mut rng),
                    m.id_number.expose()
                ))?;
                truth.add("disqualifying_vehicle", h, None);
            } else if rng.gen_bool(0.15) {
                let (t, v) = match rng.gen_range(0..4) {
                    0 => ("motorcycle", Some(yuan_range(&mut rng, 2_000, 12_000))),
                    1 => ("tricycle", None),
                    2 => ("agricultural", Some(yuan_range(&mut rng, 5_000, 80_000))),
                    _ => ("passenger_car", Some(yuan_range(&mut rng, 15_000, 50_000))),
                };
                let d = date_between(
                    &mut rng,
                    NaiveDate::from_ymd_opt(2008, 1, 1).unwrap_or(as_of),
                    recent_to,
                );
                let v = v.map(|x| x.to_string()).unwrap_or_default();
                vehicles.line(&format!(
                    "{},{},{t},{v},{d}",
                    plate(&mut rng),
                    m.id_number.expose()
                ))?;
            }
        }

        // Properties: most rural households own their home, some co-owned by a couple.
        let owns_home = h.area == Area::Rural && rng.gen_bool(0.6) || rng.gen_bool(0.15);
        if owns_home || p == Some(Plant::Property) {
            counter += 1;
            let cert = certificate(&mut rng, counter);
            let owners: Vec<usize> = if h.members.len() >= 2 && rng.gen_bool(0.3) {
                vec![0, 1]
            } else {
                vec![0]
            };
            let area = rng.gen_range(40..=140u32);
            let value = yuan_range(&mut rng, 80_000, 400_000);
            let d = date_between(
                &mut rng,
                NaiveDate::from_ymd_opt(2005, 1, 1).unwrap_or(as_of),
                recent_to,
            );
            for o in owners {
                properties.json(&json!({
                    "certificate_no": cert,
                    "id_number": h.members[o].id_number.expose(),
                    "usage": "residential",
                    "area_m2": area,
                    "value_fen": value,
                    "region_code": h.region_code,
                    "registered_on": d,
                }))?;
            }
        }
        if p == Some(Plant::Property) {
            counter += 1;
            let usage = if rng.gen_bool(0.6) {
                "residential"
            } else {
                "commercial"
            };
            let owner = rng.gen_range(0..h.members.len());
            properties.json(&json!({
                "certificate_no": certificate(&mut rng, counter),
                "id_number": h.members[owner].id_number.expose(),
                "usage": usage,
                "area_m2": rng.gen_range(30..=160u32),
                "value_fen": yuan_range(&mut rng, 150_000, 900_000),
                "registered_on": date_between(&mut rng, NaiveDate::from_ymd_opt(2012, 1, 1).unwrap_or(as_of), recent_to),
            }))?;
            truth.add("disqualifying_property", h, None);
        }

        // Companies
        if let Some(&person) = adult_list.last() {
            let m = &h.members[person];
            let row = |n: u64, role: &str, capital: i64, status: &str| {
                json!({
                    "credit_code": credit_code(n),
                    "company_name": format!("六安市{}商贸有限公司", names::split_name(&m.name).0),
                    "id_number": m.id_number.expose(),
                    "role": role,
                    "registered_capital_fen": capital,
                    "status": status,
                })
            };
            // A planted company (disqualifying), or now and then one that is not: with the
            // probability given the first (role, capital range in yuan, status), else the second.
            let company = if p == Some(Plant::Company) {
                Some((
                    true,
                    0.6,
                    [
                        ("legal_representative", 10_000, 2_000_000, "active"),
                        ("shareholder", 100_001, 5_000_000, "active"),
                    ],
                ))
            } else if rng.gen_bool(0.03) {
                Some((
                    false,
                    0.5,
                    [
                        ("shareholder", 10_000, 100_000, "active"),
                        ("legal_representative", 10_000, 500_000, "cancelled"),
                    ],
                ))
            } else {
                None
            };
            if let Some((planted, first, two)) = company {
                counter += 1;
                let (role, lo, hi, status) = if rng.gen_bool(first) { two[0] } else { two[1] };
                companies.json(&row(counter, role, yuan_range(&mut rng, lo, hi), status))?;
                if planted {
                    truth.add("disqualifying_company", h, None);
                }
            }
        }

        // Wages: employed members every month; planted earners above the line.
        let earner = match p {
            Some(Plant::Income | Plant::IncomeNearMiss) => h
                .members
                .iter()
                .position(|m| (18..=59).contains(&m.age_on(as_of))),
            _ => None,
        };
        let n_w = wage_months.len() as i32;
        // Months (indexes into wage_months) with the planted high wage.
        let high: Vec<i32> = match p {
            Some(Plant::Income) => {
                let k = rng.gen_range(INCOME_MONTHS..=INCOME_MONTHS + 3);
                ((n_w - k)..n_w).collect()
            }
            Some(Plant::IncomeNearMiss) => {
                if rng.gen_bool(0.5) {
                    ((n_w - INCOME_MONTHS + 1)..n_w).collect()
                } else {
                    ((n_w - INCOME_MONTHS - 3)..(n_w - 2)).collect()
                }
            }
            _ => Vec::new(),
        };
        if p == Some(Plant::Income) {
            truth.add("income_above_line", h, None);
        }
        for (k, month) in wage_months.iter().enumerate() {
            let mstr = month_str(*month);
            for (i, m) in h.members.iter().enumerate() {
                let planted = earner == Some(i) && high.contains(&(k as i32));
                let wage = if planted {
                    area_line * size + yuan_range(&mut rng, 100, 1500)
                } else if m.employed && m.monthly_income > Money::ZERO {
                    m.monthly_income.fen()
                } else {
                    continue;
                };
                let employer = employers[(hi + i) % employers.len()];
                wages[k].line(&format!(
                    "{},{mstr},{employer},{wage}",
                    m.id_number.expose()
                ))?;
            }
        }

        // Payments: one row per covered member and month.
        if h.monthly_benefit > Money::ZERO && size > 0 {
            let share = h.monthly_benefit.fen() / size;
            let rest = h.monthly_benefit.fen() - share * size;
            for (k, month) in pay_months.iter().enumerate() {
                let mstr = month_str(*month);
                for (i, m) in h.members.iter().enumerate() {
                    counter += 1;
                    let amount = if i == 0 { share + rest } else { share };
                    payments[k].line(&format!(
                        "FF{counter:011},{},{},{},{},{mstr},{amount}",
                        h.household_id,
                        h.region_code,
                        m.id_number.expose(),
                        h.category.code()
                    ))?;
                }
            }
        }
        if matches!(p, Some(Plant::DuplicateHere | Plant::DuplicateElsewhere)) {
            let i = rng.gen_range(0..h.members.len());
            let m = &h.members[i];
            let here = p == Some(Plant::DuplicateHere);
            let other = if here {
                paid_by_county
                    .get(h.region_code.county().as_str())
                    .and_then(|list| {
                        let c: Vec<&usize> = list.iter().filter(|&&o| o != hi).collect();
                        (!c.is_empty()).then(|| *c[rng.gen_range(0..c.len())])
                    })
                    .map(|o| {
                        (
                            register[o].household_id.clone(),
                            register[o].region_code.to_string(),
                        )
                    })
            } else {
                None
            };
            let (other_id, other_region) = other.unwrap_or_else(|| {
                let county = *names::pick(&mut rng, OTHER_ADDRESS_CODES);
                (
                    format!("W{county}-{:06}", rng.gen_range(1..999_999)),
                    format!(
                        "{county}{:03}{:03}",
                        rng.gen_range(1..=6),
                        rng.gen_range(1..=12)
                    ),
                )
            });
            let n = rng.gen_range(2..=pay_months.len());
            let amount = yuan_range(&mut rng, 300, 900);
            for k in (pay_months.len() - n)..pay_months.len() {
                counter += 1;
                payments[k].line(&format!(
                    "FF{counter:011},{other_id},{other_region},{},dibao,{},{amount}",
                    m.id_number.expose(),
                    month_str(pay_months[k])
                ))?;
            }
            truth.add("duplicate_enrolment", h, Some(i));
        }
    }

    // People outside the register, in every file.
    let members: usize = register.iter().map(|h| h.members.len()).sum();
    let n_out = (members as f64 * cfg.outsiders).round() as usize;
    for j in 0..n_out {
        let Some(o) = outsider(&mut rng, &mut ids, as_of) else {
            continue;
        };
        let region = format!(
            "{}{:03}{:03}",
            o.id.address_code(),
            rng.gen_range(1..=6),
            rng.gen_range(1..=12)
        );
        hukou.line(&format!(
            "{},{},{},{},{region}",
            o.id.expose(),
            field(&o.name),
            sex_code(o.sex),
            o.birth
        ))?;
        if rng.gen_bool(0.05) {
            counter += 1;
            deaths.json(&json!({
                "record_id": format!("SW{counter:010}"),
                "id_number": o.id.expose(),
                "name": o.name,
                "death_date": date_between(&mut rng, recent_from, recent_to),
            }))?;
        }
        if rng.gen_bool(0.3) {
            vehicles.line(&format!(
                "{},{},passenger_car,{},{}",
                plate(&mut rng),
                o.id.expose(),
                yuan_range(&mut rng, 30_000, 400_000),
                date_between(
                    &mut rng,
                    NaiveDate::from_ymd_opt(2010, 1, 1).unwrap_or(as_of),
                    recent_to
                )
            ))?;
        }
        if rng.gen_bool(0.5) {
            for _ in 0..rng.gen_range(1..=3) {
                counter += 1;
                properties.json(&json!({
                    "certificate_no": certificate(&mut rng, counter),
                    "id_number": o.id.expose(),
                    "usage": if rng.gen_bool(0.8) { "residential" } else { "commercial" },
                    "value_fen": yuan_range(&mut rng, 100_000, 2_000_000),
                    "registered_on": date_between(&mut rng, NaiveDate::from_ymd_opt(2005, 1, 1).unwrap_or(as_of), recent_to),
                }))?;
            }
        }
        if rng.gen_bool(0.08) {
            counter += 1;
            companies.json(&json!({
                "credit_code": credit_code(counter),
                "company_name": format!("六安市{}科技有限公司", names::split_name(&o.name).0),
                "id_number": o.id.expose(),
                "role": "legal_representative",
                "registered_capital_fen": yuan_range(&mut rng, 100_000, 10_000_000),
                "status": "active",
            }))?;
        }
        if rng.gen_bool(0.6) {
            let wage = yuan_range(&mut rng, 2_500, 15_000);
            for (k, month) in wage_months.iter().enumerate() {
                wages[k].line(&format!(
                    "{},{},{},{wage}",
                    o.id.expose(),
                    month_str(*month),
                    employers[j % employers.len()]
                ))?;
            }
        }
        if rng.gen_bool(0.3) {
            // paid by another locality
            let hh = format!("W{}-{:06}", o.id.address_code(), j);
            let amount = yuan_range(&mut rng, 300, 900);
            for (k, month) in pay_months.iter().enumerate() {
                counter += 1;
                payments[k].line(&format!(
                    "FF{counter:011},{hh},{region},{},dibao,{},{amount}",
                    o.id.expose(),
                    month_str(*month)
                ))?;
            }
        }
    }

    let mut rows = BTreeMap::new();
    for f in [deaths, hukou, vehicles, properties, companies]
        .into_iter()
        .chain(wages)
        .chain(payments)
    {
        let (name, n) = f.finish()?;
        rows.insert(name, n);
    }
    let mut findings: BTreeMap<String, usize> = BTreeMap::new();
    let tpath = truth_dir.join("findings.jsonl");
    let mut t = BufWriter::new(fs::File::create(&tpath).map_err(io_err(&tpath))?);
    for (check, hh, member) in &truth.0 {
        *findings.entry(check.clone()).or_default() += 1;
        let line = json!({"check": check, "household_id": hh, "member_id": member});
        writeln!(t, "{line}").map_err(io_err(&tpath))?;
    }
    t.flush().map_err(io_err(&tpath))?;

    let manifest = json!({
        "as_of": as_of,
        "seed": cfg.seed,
        "rows": rows,
        "planted_findings": findings,
    });
    let mpath = snap.join("manifest.json");
    fs::write(&mpath, format!("{manifest:#}\n")).map_err(io_err(&mpath))?;

    Ok(SnapshotSummary {
        as_of,
        rows,
        findings,
        dir: snap,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::generate_register;

    fn all_files(dir: &Path) -> BTreeMap<String, Vec<u8>> {
        let mut out = BTreeMap::new();
        for sub in ["snapshots", "truth"] {
            for e in fs::read_dir(dir.join(sub)).unwrap() {
                let p = e.unwrap().path();
                out.insert(
                    format!("{sub}/{}", p.file_name().unwrap().to_string_lossy()),
                    fs::read(&p).unwrap(),
                );
            }
        }
        out
    }

    #[test]
    fn snapshots_are_deterministic_and_plant_every_check() {
        let register = generate_register(&GenConfig {
            households: 800,
            ..GenConfig::default()
        });
        let cfg = SnapshotConfig::default();
        let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let sa = write_snapshots(a.path(), &register, &cfg).unwrap();
        write_snapshots(b.path(), &register, &cfg).unwrap();
        assert_eq!(all_files(a.path()), all_files(b.path()));
        assert_eq!(sa.findings.len(), 9, "{:?}", sa.findings);
        assert!(sa.rows["hukou.csv"] as usize > register.len());
        let bad = SnapshotConfig {
            plant_rate: 0.5,
            ..SnapshotConfig::default()
        };
        assert!(matches!(
            write_snapshots(a.path(), &register, &bad),
            Err(SynthError::Config(_))
        ));
    }
}
