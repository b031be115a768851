//! Feed events for one household: background life (that should not raise serious risk), an
//! optional hardship scenario with its ground truth, and records about outsiders.

use chrono::{Datelike, Days, Months, NaiveDate, NaiveDateTime, NaiveTime, TimeDelta};
use rand::Rng;
use rand_chacha::ChaCha8Rng;

use doudi_model::event::{
    Birth, CareSetting, ContributionsStopped, DangerousHouseAppraised, Death, DisabilityCertified,
    DisabilityType, DisasterDamage, DisasterKind, Divorce, HouseGrade, HouseholdMoved, JobLost,
    JobStarted, Marriage, PropertyAction, PropertyRegistered, PropertyType, Relocated,
    RelocationReason, SeriousIllnessDiagnosed, Settlement, UnemploymentRegistered, WageChanged,
};
use doudi_model::{
    Area, Household, IdNumber, Money, Payload, RegionCode, Relation, Sex, Source, WorkCapacity,
};

use crate::names::{self, pick, weighted};
use crate::regions::{Place, Regions};
use crate::register::{birth_for_age, IdAlloc, OTHER_ADDRESS_CODES};

/// The feed window: `[start, end)`.
pub(crate) struct Window {
    pub start: NaiveDate,
    pub end: NaiveDate,
    pub days: u64,
    /// Rates are per year; this is the window length in years.
    pub scale: f64,
}

impl Window {
    pub fn new(start: NaiveDate, months: u32) -> Option<Window> {
        let end = start.checked_add_months(Months::new(months))?;
        let days = u64::try_from((end - start).num_days()).ok()?;
        Some(Window {
            start,
            end,
            days,
            scale: f64::from(months) / 12.0,
        })
    }

    fn day(&self, offset: u64) -> NaiveDate {
        add_days(self.start, offset.min(self.days.saturating_sub(1)))
    }

    /// A working-hours moment on a random day of the window.
    fn random_at(&self, rng: &mut ChaCha8Rng) -> NaiveDateTime {
        let d = self.day(rng.gen_range(0..self.days.max(1)));
        office_time(rng, d)
    }

    /// A day leaving `span` days of story after it inside the window when the window allows.
    fn story_start(&self, rng: &mut ChaCha8Rng, span: u64) -> NaiveDate {
        let room = self.days.saturating_sub(span).max(1);
        self.day(rng.gen_range(0..room))
    }

    fn clamp(&self, at: NaiveDateTime) -> NaiveDateTime {
        let last = add_days(self.start, self.days.saturating_sub(1));
        if at.date() < self.start {
            on(self.start, 8, 0, 0)
        } else if at.date() > last {
            on(last, 20, 0, 0)
        } else {
            at
        }
    }
}

pub(crate) fn add_days(d: NaiveDate, n: u64) -> NaiveDate {
    d.checked_add_days(Days::new(n)).unwrap_or(d)
}

fn sub_days(d: NaiveDate, n: u64) -> NaiveDate {
    d.checked_sub_days(Days::new(n)).unwrap_or(d)
}

fn on(d: NaiveDate, h: u32, m: u32, s: u32) -> NaiveDateTime {
    d.and_time(NaiveTime::from_hms_opt(h, m, s).unwrap_or(NaiveTime::MIN))
}

/// A working-hours moment on day `d`.
fn office_time(rng: &mut ChaCha8Rng, d: NaiveDate) -> NaiveDateTime {
    on(
        d,
        rng.gen_range(8..18),
        rng.gen_range(0..60),
        rng.gen_range(0..60),
    )
}

fn poisson(rng: &mut ChaCha8Rng, lambda: f64) -> u32 {
    if lambda <= 0.0 {
        return 0;
    }
    let l = (-lambda).exp();
    let (mut k, mut p) = (0u32, 1.0f64);
    loop {
        p *= rng.gen::<f64>();
        if p <= l || k >= 50 {
            return k;
        }
        k += 1;
    }
}

fn yuan_between(rng: &mut ChaCha8Rng, lo: i64, hi: i64) -> Money {
    Money::from_yuan(rng.gen_range(lo..=hi))
}

/// Who an event is about.
pub(crate) enum Who {
    /// Index into the household's members.
    Member(usize),
    /// A generated person who is not in the register.
    Outsider(Box<Person>),
}

pub(crate) struct Person {
    pub id: IdNumber,
    pub name: String,
    pub birth: NaiveDate,
    pub sex: Sex,
    pub region: Option<RegionCode>,
}

pub(crate) struct Draft {
    pub at: NaiveDateTime,
    pub who: Who,
    pub payload: Payload,
    /// Part of the household's hardship scenario.
    pub scenario: bool,
}

impl Draft {
    pub fn source(&self) -> Source {
        self.payload.source()
    }
}

pub(crate) struct HouseholdFeed {
    pub drafts: Vec<Draft>,
    pub scenario: Option<&'static str>,
}

pub(crate) struct Ctx<'a> {
    pub regions: &'a Regions,
    pub window: Window,
    pub hardship_share: f64,
    /// Share of all events that are about outsiders.
    pub outsiders: f64,
}

const COMMON_OUTPATIENT: &[&str] = &[
    "J06.9", "I10", "E11.9", "K29.7", "M54.5", "J20.9", "J44.9", "I25.1", "K30", "R51", "N39.0",
    "H10.9", "M17.9", "K02.9",
];
const COMMON_INPATIENT: &[&str] = &[
    "J18.9", "K80.2", "I10", "E11.9", "K35.8", "J44.1", "I20.0", "N20.0", "K29.1", "M51.2",
];
/// Serious diseases (大病): ICD-10 code and description.
const SERIOUS: &[(&str, &str)] = &[
    ("C34.9", "肺恶性肿瘤"),
    ("I63.9", "脑梗死"),
    ("N18.5", "慢性肾脏病5期"),
    ("C16.9", "胃恶性肿瘤"),
    ("C22.0", "肝细胞癌"),
    ("C50.9", "乳房恶性肿瘤"),
    ("I21.9", "急性心肌梗死"),
    ("C18.9", "结肠恶性肿瘤"),
    ("I61.9", "脑出血"),
    ("D61.9", "再生障碍性贫血"),
    ("C92.0", "急性髓样白血病"),
    ("C15.9", "食管恶性肿瘤"),
];
const INJURIES: &[&str] = &["S06.9", "T09.3", "S32.0", "S72.0", "T06.8"];
/// Causes of death with the ICD-10 code of a last hospital stay.
const DEATH_CAUSES: &[(&str, &str)] = &[
    ("交通事故", "S06.9"),
    ("突发心脏病", "I21.9"),
    ("脑出血", "I61.9"),
    ("肺恶性肿瘤", "C34.9"),
    ("工伤事故", "T06.8"),
    ("溺水", "T75.1"),
];
const EMPLOYER_WORDS: &[&str] = &[
    "恒信",
    "金瑞",
    "华通",
    "永安",
    "兴旺",
    "皖西",
    "大别山",
    "淠河",
    "宏达",
    "鑫源",
    "瑞丰",
    "嘉禾",
];
const EMPLOYER_TRADES: &[&str] = &[
    "建筑劳务",
    "制衣",
    "食品",
    "物流",
    "电子科技",
    "物业服务",
    "茶业",
    "汽车配件",
    "餐饮管理",
    "保洁服务",
];

fn employer(rng: &mut ChaCha8Rng) -> String {
    format!(
        "六安{}{}有限公司",
        pick(rng, EMPLOYER_WORDS),
        pick(rng, EMPLOYER_TRADES)
    )
}

/// Ranges, in percent of the total cost, of what the fund pays and what the patient pays.
struct Cover {
    fund_pct: (i64, i64),
    oop_pct: (i64, i64),
}

const OUTPATIENT_COVER: Cover = Cover {
    fund_pct: (35, 65),
    oop_pct: (30, 65),
};
const SMALL_STAY_COVER: Cover = Cover {
    fund_pct: (65, 82),
    oop_pct: (15, 35),
};
/// Serious illness: much is outside the catalogue, so the patient pays a large share.
const BIG_STAY_COVER: Cover = Cover {
    fund_pct: (45, 62),
    oop_pct: (30, 45),
};

/// Ongoing treatment of a serious disease in the outpatient scheme (门诊慢特病): better covered
/// than ordinary outpatient care, but drugs outside the catalogue leave a sizeable share.
const TREATMENT_COVER: Cover = Cover {
    fund_pct: (55, 70),
    oop_pct: (25, 40),
};
/// Rehabilitation after a disabling injury: partly covered.
const REHAB_COVER: Cover = Cover {
    fund_pct: (40, 60),
    oop_pct: (35, 55),
};

/// A settlement of `total`; fund and out-of-pocket shares drawn from `cover`.
fn settlement(
    rng: &mut ChaCha8Rng,
    setting: CareSetting,
    total: Money,
    cover: &Cover,
    diagnoses: Vec<String>,
    stay: Option<(NaiveDate, NaiveDate)>,
    settled_on: NaiveDate,
) -> Payload {
    let t = total.fen();
    let fund = t * rng.gen_range(cover.fund_pct.0..=cover.fund_pct.1) / 100;
    let oop_want = t * rng.gen_range(cover.oop_pct.0..=cover.oop_pct.1) / 100;
    let oop = oop_want.min(t - fund).max(0);
    Payload::Settlement(Settlement {
        setting,
        total_cost_fen: total,
        fund_paid_fen: Money::from_fen(fund),
        out_of_pocket_fen: Money::from_fen(oop),
        diagnoses,
        admitted_on: stay.map(|s| s.0),
        discharged_on: stay.map(|s| s.1),
        settled_on,
    })
}

fn outpatient(rng: &mut ChaCha8Rng, at: NaiveDateTime) -> Payload {
    // log-uniform between 30 and 800 yuan
    let fen = (3_000f64 * (rng.gen::<f64>() * (80_000f64 / 3_000f64).ln()).exp()) as i64;
    let dx = vec![pick(rng, COMMON_OUTPATIENT).to_string()];
    let settled = sub_days(at.date(), rng.gen_range(0..=1));
    settlement(
        rng,
        CareSetting::Outpatient,
        Money::from_fen(fen),
        &OUTPATIENT_COVER,
        dx,
        None,
        settled,
    )
}

fn small_inpatient(rng: &mut ChaCha8Rng, at: NaiveDateTime) -> Payload {
    let total = yuan_between(rng, 2_000, 12_000);
    let discharged = sub_days(at.date(), rng.gen_range(0..=3));
    let admitted = sub_days(discharged, rng.gen_range(3..=10));
    let dx = vec![pick(rng, COMMON_INPATIENT).to_string()];
    settlement(
        rng,
        CareSetting::Inpatient,
        total,
        &SMALL_STAY_COVER,
        dx,
        Some((admitted, discharged)),
        discharged,
    )
}

fn big_inpatient(
    rng: &mut ChaCha8Rng,
    dx: &str,
    admitted: NaiveDate,
    discharged: NaiveDate,
) -> Payload {
    let total = yuan_between(rng, 20_000, 120_000);
    settlement(
        rng,
        CareSetting::Inpatient,
        total,
        &BIG_STAY_COVER,
        vec![dx.to_string()],
        Some((admitted, discharged)),
        discharged,
    )
}

fn wage_changed(rng: &mut ChaCha8Rng, at: NaiveDateTime, previous: Money) -> Payload {
    let prev = if previous.fen() > 0 {
        previous
    } else {
        Money::from_yuan(2_000)
    };
    let new = prev.fen() * rng.gen_range(95..=112) / 100 / 100 * 100;
    Payload::WageChanged(WageChanged {
        effective_on: at.date().with_day(1).unwrap_or(at.date()),
        monthly_wage_fen: Money::from_fen(new),
        previous_wage_fen: rng.gen_bool(0.8).then_some(prev),
    })
}

fn job_started(rng: &mut ChaCha8Rng, at: NaiveDateTime) -> Payload {
    Payload::JobStarted(JobStarted {
        started_on: sub_days(at.date(), rng.gen_range(0..=10)),
        monthly_wage_fen: Money::from_yuan(rng.gen_range(15..=40) * 100),
        employer: rng.gen_bool(0.8).then(|| employer(rng)),
    })
}

fn disability_type(rng: &mut ChaCha8Rng) -> DisabilityType {
    *pick(
        rng,
        &[
            DisabilityType::Visual,
            DisabilityType::Hearing,
            DisabilityType::Speech,
            DisabilityType::Physical,
            DisabilityType::Physical,
            DisabilityType::Intellectual,
            DisabilityType::Mental,
            DisabilityType::Multiple,
        ],
    )
}

fn property_sold(rng: &mut ChaCha8Rng, at: NaiveDateTime) -> Payload {
    Payload::PropertyRegistered(PropertyRegistered {
        action: PropertyAction::Sold,
        property_type: PropertyType::Residential,
        value_fen: rng
            .gen_bool(0.8)
            .then(|| yuan_between(rng, 50_000, 300_000)),
        area_m2: rng.gen_bool(0.8).then(|| rng.gen_range(40..=120)),
        registered_on: sub_days(at.date(), rng.gen_range(0..=5)),
    })
}

/// A person not in the register, with a valid, unique ID number from outside the register's
/// counties, living (perhaps) in one of its villages.
pub(crate) fn outsider(
    rng: &mut ChaCha8Rng,
    ctx: &Ctx,
    ids: &mut IdAlloc,
    sex: Option<Sex>,
    age: Option<u32>,
) -> Option<Person> {
    let sex = sex.unwrap_or(if rng.gen_bool(0.5) {
        Sex::Male
    } else {
        Sex::Female
    });
    let age = age.unwrap_or_else(|| rng.gen_range(20..=80));
    let birth = birth_for_age(rng, ctx.window.start, age);
    let address = *pick(rng, OTHER_ADDRESS_CODES);
    let id = ids.fresh(rng, address, birth, sex)?;
    let name = format!(
        "{}{}",
        names::surname(rng),
        names::given_name(rng, sex, birth.year())
    );
    let region = rng.gen_bool(0.7).then(|| {
        let urban = rng.gen_bool(0.3);
        let p: Place = ctx.regions.pick(rng, urban);
        ctx.regions.village(p).code.clone()
    });
    Some(Person {
        id,
        name,
        birth,
        sex,
        region,
    })
}

/// Keeps a scenario's events in order and inside the window.
struct Story<'w> {
    window: &'w Window,
    last: Option<NaiveDateTime>,
}

impl Story<'_> {
    fn at(&mut self, proposed: NaiveDateTime) -> NaiveDateTime {
        let mut t = self.window.clamp(proposed);
        if let Some(l) = self.last {
            if t <= l {
                t = l + TimeDelta::minutes(1);
            }
        }
        self.last = Some(t);
        t
    }
}

/// What a scenario implies for the background events of the person concerned.
#[derive(Default)]
struct Constraints {
    /// (member, died on): nothing about them on or after that day.
    dead: Option<(usize, NaiveDate)>,
    /// (member, job lost at): no further employment records about them.
    jobless: Option<(usize, NaiveDateTime)>,
}

fn main_earner(h: &Household) -> Option<usize> {
    (0..h.members.len())
        .filter(|&i| h.members[i].employed)
        .max_by_key(|&i| (h.members[i].monthly_income, std::cmp::Reverse(i)))
}

fn scenario(
    rng: &mut ChaCha8Rng,
    h: &Household,
    ctx: &Ctx,
    out: &mut Vec<Draft>,
    cons: &mut Constraints,
) -> &'static str {
    let w = &ctx.window;
    let earner = main_earner(h);
    let start = w.start;
    let disable_candidates: Vec<usize> = (0..h.members.len())
        .filter(|&i| {
            let m = &h.members[i];
            (5..=75).contains(&m.age_on(start)) && !matches!(m.disability_grade, Some(1 | 2))
        })
        .collect();
    // A death that leaves no one behind is not a household's hardship (the file is closed).
    let survivors = h.members.len() >= 2;
    let kinds: [(&str, u32); 5] = [
        ("serious_illness", 35),
        ("job_loss", if earner.is_some() { 20 } else { 0 }),
        (
            "earner_death",
            if earner.is_some() && survivors { 15 } else { 0 },
        ),
        ("housing_crisis", 15),
        (
            "severe_disability",
            if disable_candidates.is_empty() { 0 } else { 15 },
        ),
    ];
    let kind = kinds[weighted(rng, &kinds)].0;
    let mut story = Story {
        window: w,
        last: None,
    };
    let mut push = |story: &mut Story, at: NaiveDateTime, who: usize, payload: Payload| {
        let at = story.at(at);
        out.push(Draft {
            at,
            who: Who::Member(who),
            payload,
            scenario: true,
        });
        at
    };
    let lag = |rng: &mut ChaCha8Rng, d: NaiveDate, lo: u64, hi: u64| {
        let day = add_days(d, rng.gen_range(lo..=hi));
        office_time(rng, day)
    };
    match kind {
        "earner_death" => {
            let m = earner.unwrap_or(0);
            let t0 = w.story_start(rng, 45);
            let last_day = sub_days(w.end, 1);
            let died_on = add_days(t0, rng.gen_range(10..=40)).min(last_day);
            let (cause, dx) = *pick(rng, DEATH_CAUSES);
            if rng.gen_bool(0.5) {
                let admitted = sub_days(died_on, rng.gen_range(2..=15));
                let p = big_inpatient(rng, dx, admitted, died_on);
                let at = on(died_on, rng.gen_range(9..18), rng.gen_range(0..60), 0);
                push(&mut story, at, m, p);
            }
            let at = lag(rng, died_on, 1, 6);
            let p = Payload::Death(Death {
                died_on,
                cause: rng.gen_bool(0.8).then(|| cause.to_string()),
            });
            push(&mut story, at, m, p);
            cons.dead = Some((m, died_on));
        }
        "job_loss" => {
            let m = earner.unwrap_or(0);
            let member = &h.members[m];
            let t0 = w.story_start(rng, 80);
            let at = lag(rng, t0, 1, 5);
            let wage = member.monthly_income;
            let p = Payload::JobLost(JobLost {
                last_day: t0,
                monthly_wage_fen: (wage.fen() > 0).then_some(wage),
                employer: rng.gen_bool(0.8).then(|| employer(rng)),
            });
            let lost_at = push(&mut story, at, m, p);
            cons.jobless = Some((m, lost_at));
            let reg = add_days(t0, rng.gen_range(7..=30));
            let at = lag(rng, reg, 0, 1);
            let p = Payload::UnemploymentRegistered(UnemploymentRegistered { registered_on: reg });
            push(&mut story, at, m, p);
            // contributions: reported once `k` whole months went unpaid
            let month1 = t0.with_day(1).unwrap_or(t0);
            let mut k = rng.gen_range(1..=3u32);
            let report = |k: u32| {
                month1
                    .checked_add_months(Months::new(k + 1))
                    .unwrap_or(month1)
            };
            while k > 1 && report(k) >= w.end {
                k -= 1;
            }
            let at = lag(rng, report(k), 2, 9);
            let p = Payload::ContributionsStopped(ContributionsStopped {
                last_paid_month: format!("{:04}-{:02}", t0.year(), t0.month()),
                months_unpaid: k,
            });
            push(&mut story, at, m, p);
        }
        "housing_crisis" => {
            let head = h
                .members
                .iter()
                .position(|m| m.relation == Relation::Head)
                .unwrap_or(0);
            let t0 = w.story_start(rng, 60);
            if h.area == Area::Rural && rng.gen_bool(0.6) {
                let at = lag(rng, t0, 1, 5);
                let p = Payload::DangerousHouseAppraised(DangerousHouseAppraised {
                    grade: HouseGrade::D,
                    appraised_on: t0,
                });
                push(&mut story, at, head, p);
                if rng.gen_bool(0.6) {
                    let d = add_days(t0, rng.gen_range(20..=50));
                    let at = lag(rng, d, 0, 3);
                    let p = Payload::Relocated(Relocated {
                        reason: RelocationReason::DangerousHouse,
                        forced: false,
                        relocated_on: d,
                        to_region_code: rng.gen_bool(0.5).then(|| h.region_code.clone()),
                    });
                    push(&mut story, at, head, p);
                }
            } else {
                let disaster = if h.area == Area::Urban {
                    DisasterKind::Fire
                } else {
                    *pick(
                        rng,
                        &[
                            DisasterKind::Flood,
                            DisasterKind::Flood,
                            DisasterKind::Landslide,
                            DisasterKind::Fire,
                            DisasterKind::Hail,
                        ],
                    )
                };
                let at = lag(rng, t0, 1, 4);
                let p = Payload::DisasterDamage(DisasterDamage {
                    disaster,
                    loss_fen: yuan_between(rng, 30_000, 150_000),
                    uninhabitable: true,
                    occurred_on: t0,
                });
                push(&mut story, at, head, p);
                let d = add_days(t0, rng.gen_range(3..=20));
                let at = lag(rng, d, 0, 3);
                let p = Payload::Relocated(Relocated {
                    reason: RelocationReason::Disaster,
                    forced: rng.gen_bool(0.5),
                    relocated_on: d,
                    to_region_code: rng.gen_bool(0.5).then(|| h.region_code.clone()),
                });
                push(&mut story, at, head, p);
            }
        }
        "severe_disability" => {
            let m = *pick(rng, &disable_candidates);
            let t0 = w.story_start(rng, 90);
            let certified_on = if rng.gen_bool(0.6) {
                let stay = rng.gen_range(10..=40);
                let discharged = add_days(t0, stay);
                let dx = *pick(rng, INJURIES);
                let p = big_inpatient(rng, dx, t0, discharged);
                let at = lag(rng, discharged, 0, 2);
                push(&mut story, at, m, p);
                add_days(discharged, rng.gen_range(20..=45))
            } else {
                t0
            };
            let at = lag(rng, certified_on, 0, 3);
            let p = Payload::DisabilityCertified(DisabilityCertified {
                grade: if rng.gen_bool(0.4) { 1 } else { 2 },
                disability_type: *pick(
                    rng,
                    &[
                        DisabilityType::Physical,
                        DisabilityType::Physical,
                        DisabilityType::Intellectual,
                        DisabilityType::Mental,
                        DisabilityType::Multiple,
                    ],
                ),
                certified_on,
            });
            push(&mut story, at, m, p);
            // An earner so disabled loses the job (the last working day before the injury or
            // the certificate).
            if h.members[m].employed && h.members[m].monthly_income.fen() > 0 {
                let last_day = if certified_on > t0 {
                    t0
                } else {
                    sub_days(t0, 1)
                };
                let at = lag(rng, certified_on, 0, 10);
                let wage = h.members[m].monthly_income;
                let p = Payload::JobLost(JobLost {
                    last_day,
                    monthly_wage_fen: Some(wage),
                    employer: rng.gen_bool(0.8).then(|| employer(rng)),
                });
                let lost_at = push(&mut story, at, m, p);
                cons.jobless = Some((m, lost_at));
            }
            // rehabilitation: a bill every month or so for some months
            let mut d = add_days(certified_on, rng.gen_range(10..=30));
            for _ in 0..rng.gen_range(2..=6) {
                if d >= w.end {
                    break;
                }
                let total = yuan_between(rng, 1_500, 6_000);
                let dx = pick(rng, INJURIES).to_string();
                let p = settlement(
                    rng,
                    CareSetting::Outpatient,
                    total,
                    &REHAB_COVER,
                    vec![dx],
                    None,
                    d,
                );
                let at = lag(rng, d, 0, 2);
                push(&mut story, at, m, p);
                d = add_days(d, rng.gen_range(25..=40));
            }
        }
        _ => {
            // serious_illness: the adult most at risk, else anyone
            let adults: Vec<usize> = (0..h.members.len())
                .filter(|&i| h.members[i].age_on(start) >= 18)
                .collect();
            let m = if adults.is_empty() {
                rng.gen_range(0..h.members.len().max(1))
            } else {
                *pick(rng, &adults)
            };
            let (dx, desc) = *pick(rng, SERIOUS);
            let t0 = w.story_start(rng, 100);
            let at = lag(rng, t0, 0, 2);
            let p = Payload::SeriousIllnessDiagnosed(SeriousIllnessDiagnosed {
                diagnosis: dx.to_string(),
                description: rng.gen_bool(0.7).then(|| desc.to_string()),
                diagnosed_on: t0,
            });
            push(&mut story, at, m, p);
            let mut admitted = add_days(t0, rng.gen_range(0..=5));
            let mut first_discharge = None;
            for _ in 0..rng.gen_range(1..=3) {
                let discharged = add_days(admitted, rng.gen_range(7..=28));
                first_discharge.get_or_insert(discharged);
                let p = big_inpatient(rng, dx, admitted, discharged);
                let at = lag(rng, discharged, 0, 2);
                push(&mut story, at, m, p);
                admitted = add_days(discharged, rng.gen_range(5..=25));
            }
            // A working patient stops work (因病失业) about half the time.
            let patient = &h.members[m];
            if patient.employed && patient.monthly_income.fen() > 0 && rng.gen_bool(0.5) {
                let last_day = sub_days(first_discharge.unwrap_or(t0), rng.gen_range(0..=20));
                let at = lag(rng, first_discharge.unwrap_or(t0), 1, 10);
                let p = Payload::JobLost(JobLost {
                    last_day: last_day.max(t0),
                    monthly_wage_fen: Some(patient.monthly_income),
                    employer: rng.gen_bool(0.8).then(|| employer(rng)),
                });
                let lost_at = push(&mut story, at, m, p);
                cons.jobless = Some((m, lost_at));
            }
            // Treatment goes on (chemotherapy cycles, dialysis, follow-up care under the
            // outpatient serious-disease scheme 门诊慢特病): a bill every few weeks to the end of
            // the window.
            let mut d = add_days(admitted, rng.gen_range(10..=30));
            while d < w.end {
                let total = yuan_between(rng, 2_000, 12_000);
                let p = settlement(
                    rng,
                    CareSetting::Outpatient,
                    total,
                    &TREATMENT_COVER,
                    vec![dx.to_string()],
                    None,
                    d,
                );
                let at = lag(rng, d, 0, 2);
                push(&mut story, at, m, p);
                d = add_days(d, rng.gen_range(21..=45));
            }
        }
    }
    kind
}

/// All events about one household (and the outsider records that come with them).
pub(crate) fn household(
    rng: &mut ChaCha8Rng,
    h: &Household,
    ctx: &Ctx,
    ids: &mut IdAlloc,
) -> HouseholdFeed {
    let w = &ctx.window;
    let start = w.start;
    let mut drafts = Vec::new();
    let mut cons = Constraints::default();
    let kind = if !h.members.is_empty() && rng.gen_bool(ctx.hardship_share.clamp(0.0, 1.0)) {
        Some(scenario(rng, h, ctx, &mut drafts, &mut cons))
    } else {
        None
    };

    let mut bg: Vec<(usize, NaiveDateTime, Payload)> = Vec::new();
    let s = w.scale;
    for (i, m) in h.members.iter().enumerate() {
        let age = m.age_on(start);
        let (op, ip) = match age {
            a if a >= 60 => (1.8, 0.15),
            a if a < 16 => (0.7, 0.04),
            _ => (0.55, 0.05),
        };
        for _ in 0..poisson(rng, op * s) {
            let at = w.random_at(rng);
            bg.push((i, at, outpatient(rng, at)));
        }
        for _ in 0..poisson(rng, ip * s) {
            let at = w.random_at(rng);
            bg.push((i, at, small_inpatient(rng, at)));
        }
        if m.employed {
            for _ in 0..poisson(rng, 0.5 * s) {
                let at = w.random_at(rng);
                bg.push((i, at, wage_changed(rng, at, m.monthly_income)));
            }
        } else if m.work_capacity == WorkCapacity::Full && (18..=55).contains(&age) {
            for _ in 0..poisson(rng, 0.12 * s) {
                let at = w.random_at(rng);
                bg.push((i, at, job_started(rng, at)));
            }
        }
        if m.disability_grade.is_none() && age >= 30 {
            for _ in 0..poisson(rng, 0.012 * s) {
                let at = w.random_at(rng);
                let p = Payload::DisabilityCertified(DisabilityCertified {
                    grade: rng.gen_range(3..=4),
                    disability_type: disability_type(rng),
                    certified_on: sub_days(at.date(), rng.gen_range(0..=7)),
                });
                bg.push((i, at, p));
            }
        }
        if m.relation == Relation::Child && (20..=35).contains(&age) {
            for _ in 0..poisson(rng, 0.06 * s).min(1) {
                let at = w.random_at(rng);
                let spouse_sex = match m.sex {
                    Sex::Male => Sex::Female,
                    Sex::Female => Sex::Male,
                };
                let spouse_age = (age as i64 + rng.gen_range(-4..=4)).clamp(20, 40) as u32;
                let spouse = outsider(rng, ctx, ids, Some(spouse_sex), Some(spouse_age));
                let with_id = rng.gen_bool(0.6);
                let p = Payload::Marriage(Marriage {
                    married_on: sub_days(at.date(), rng.gen_range(0..=7)),
                    spouse_name: spouse.as_ref().map(|p| p.name.clone()),
                    spouse_id_number: spouse
                        .as_ref()
                        .filter(|_| with_id)
                        .map(|p| p.id.expose().to_string()),
                });
                bg.push((i, at, p));
            }
        }
    }
    // household-level background
    let couple: Vec<usize> = (0..h.members.len())
        .filter(|&i| matches!(h.members[i].relation, Relation::Head | Relation::Spouse))
        .collect();
    let father = couple
        .iter()
        .copied()
        .find(|&i| h.members[i].sex == Sex::Male);
    let mother = couple.iter().copied().find(|&i| {
        h.members[i].sex == Sex::Female && (20..=40).contains(&h.members[i].age_on(start))
    });
    if let (Some(f), Some(mo)) = (father, mother) {
        for _ in 0..poisson(rng, 0.08 * s).min(1) {
            let at = w.random_at(rng);
            let born_on = sub_days(at.date(), rng.gen_range(3..=30));
            let child_sex = if rng.gen_bool(0.52) {
                Sex::Male
            } else {
                Sex::Female
            };
            let (sur, _) = names::split_name(&h.members[f].name);
            let child_name = format!("{sur}{}", names::given_name(rng, child_sex, born_on.year()));
            let child_id = if rng.gen_bool(0.7) {
                ids.fresh(rng, h.region_code.county().as_str(), born_on, child_sex)
            } else {
                None
            };
            let p = Payload::Birth(Birth {
                born_on,
                child_sex,
                child_name: Some(child_name),
                child_id_number: child_id.map(|id| id.expose().to_string()),
            });
            bg.push((mo, at, p));
        }
    }
    if couple.len() == 2 && couple.iter().all(|&i| h.members[i].age_on(start) < 60) {
        for _ in 0..poisson(rng, 0.006 * s).min(1) {
            let at = w.random_at(rng);
            let p = Payload::Divorce(Divorce {
                divorced_on: sub_days(at.date(), rng.gen_range(0..=10)),
            });
            bg.push((couple[0], at, p));
        }
    }
    let head = h
        .members
        .iter()
        .position(|m| m.relation == Relation::Head)
        .unwrap_or(0);
    for _ in 0..poisson(rng, 0.015 * s).min(1) {
        let at = w.random_at(rng);
        bg.push((head, at, property_sold(rng, at)));
    }
    for _ in 0..poisson(rng, 0.01 * s).min(1) {
        let at = w.random_at(rng);
        let here = ctx
            .regions
            .counties
            .iter()
            .enumerate()
            .find(|(_, c)| h.region_code.as_str().starts_with(c.code))
            .map(|(ci, _)| Place {
                county: ci,
                township: 0,
                village: 0,
            });
        if let Some(p) = here {
            let to = ctx
                .regions
                .village(ctx.regions.neighbour(rng, p))
                .code
                .clone();
            if to != h.region_code {
                let p = Payload::HouseholdMoved(HouseholdMoved {
                    moved_on: sub_days(at.date(), rng.gen_range(0..=10)),
                    to_region_code: to,
                    from_region_code: rng.gen_bool(0.7).then(|| h.region_code.clone()),
                });
                bg.push((head, at, p));
            }
        }
    }

    for (i, at, payload) in bg {
        if let Some((m, died_on)) = cons.dead {
            if m == i && at.date() >= died_on {
                continue;
            }
        }
        if let Some((m, lost_at)) = cons.jobless {
            if m == i && at >= lost_at && payload.source() == Source::Employment {
                continue;
            }
        }
        drafts.push(Draft {
            at,
            who: Who::Member(i),
            payload,
            scenario: false,
        });
    }

    // outsiders: so that they make up about `ctx.outsiders` of all events
    let o = ctx.outsiders.clamp(0.0, 0.5);
    if o > 0.0 {
        let q = o / (1.0 - o);
        let n = drafts.len();
        for _ in 0..n {
            if !rng.gen_bool(q.min(1.0)) {
                continue;
            }
            let Some(person) = outsider(rng, ctx, ids, None, None) else {
                continue;
            };
            let at = w.random_at(rng);
            let kinds = [
                (0u8, 55u32),
                (1, 12),
                (2, 5),
                (3, 8),
                (4, 8),
                (5, 4),
                (6, 4),
            ];
            let payload = match kinds[weighted(rng, &kinds)].0 {
                0 => outpatient(rng, at),
                1 => small_inpatient(rng, at),
                2 => {
                    let (dx, _) = *pick(rng, SERIOUS);
                    let discharged = sub_days(at.date(), rng.gen_range(0..=2));
                    let admitted = sub_days(discharged, rng.gen_range(7..=28));
                    big_inpatient(rng, dx, admitted, discharged)
                }
                3 => job_started(rng, at),
                4 => {
                    let prev = Money::from_yuan(rng.gen_range(20..=45) * 100);
                    wage_changed(rng, at, prev)
                }
                5 => property_sold(rng, at),
                _ => Payload::JobLost(JobLost {
                    last_day: sub_days(at.date(), rng.gen_range(1..=5)),
                    monthly_wage_fen: Some(Money::from_yuan(rng.gen_range(20..=45) * 100)),
                    employer: rng.gen_bool(0.8).then(|| employer(rng)),
                }),
            };
            drafts.push(Draft {
                at,
                who: Who::Outsider(Box::new(person)),
                payload,
                scenario: false,
            });
        }
    }

    drafts.sort_by_key(|d| d.at);
    HouseholdFeed {
        drafts,
        scenario: kind,
    }
}
