//! The synthetic register: households with plausible members, incomes and benefits.

use std::collections::HashSet;

use chrono::{Datelike, Days, NaiveDate};
use rand::Rng;
use rand_chacha::ChaCha8Rng;

use doudi_model::{
    Area, Category, Household, IdNumber, Member, Money, Relation, Sex, WorkCapacity,
};

use crate::names::{self, pick, weighted};
use crate::regions::Regions;

/// 低保 standards (fen per person per month).
pub(crate) const DIBAO_URBAN: i64 = 96_100;
pub(crate) const DIBAO_RURAL: i64 = 73_200;
/// 特困 basic support standards (fen per person per month).
pub(crate) const TEKUN_URBAN: i64 = 153_800;
pub(crate) const TEKUN_RURAL: i64 = 117_200;

/// Address codes of ID numbers first issued outside the register's counties: 叶集区, 霍山县,
/// Hefei's 蜀山区 and 肥西县, Fuyang's 颍东区, Huainan's 凤台县, Henan's 商城县, Jiangsu's 昆山市.
pub(crate) const OTHER_ADDRESS_CODES: &[&str] = &[
    "341504", "341525", "340104", "340123", "341203", "340421", "411524", "320583",
];

const CATEGORIES: &[(Category, u32)] = &[
    (Category::Dibao, 55),
    (Category::Tekun, 10),
    (Category::DibaoEdge, 12),
    (Category::Expenditure, 5),
    (Category::Unstable, 8),
    (Category::EdgeProne, 7),
    (Category::Sudden, 3),
];

pub(crate) fn dibao_standard(area: Area) -> i64 {
    match area {
        Area::Urban => DIBAO_URBAN,
        Area::Rural => DIBAO_RURAL,
    }
}

/// Keeps ID numbers unique across everything generated.
#[derive(Default)]
pub(crate) struct IdAlloc {
    used: HashSet<IdNumber>,
}

impl IdAlloc {
    pub fn from_register(households: &[Household]) -> IdAlloc {
        let used = households
            .iter()
            .flat_map(|h| h.members.iter().map(|m| m.id_number))
            .collect();
        IdAlloc { used }
    }

    /// A fresh valid number for this address code, birth date and sex. `None` only if the
    /// address code is malformed or every sequence number of that day is taken.
    pub fn fresh(
        &mut self,
        rng: &mut ChaCha8Rng,
        address: &str,
        birth: NaiveDate,
        sex: Sex,
    ) -> Option<IdNumber> {
        let parity = u16::from(sex == Sex::Male);
        for _ in 0..64 {
            let seq = rng.gen_range(0..500u16) * 2 + parity;
            let id = IdNumber::from_parts(address, birth, seq)?;
            if self.used.insert(id) {
                return Some(id);
            }
        }
        (0..500u16).find_map(|k| {
            let id = IdNumber::from_parts(address, birth, k * 2 + parity)?;
            self.used.insert(id).then_some(id)
        })
    }
}

/// A birth date making the person `age` whole years old on `on`.
pub(crate) fn birth_for_age(rng: &mut ChaCha8Rng, on: NaiveDate, age: u32) -> NaiveDate {
    let back = u64::from(age) * 365 + u64::from(age / 4) + rng.gen_range(1..=360);
    on.checked_sub_days(Days::new(back)).unwrap_or(on)
}

/// An age from 60 to 94, most often in the mid seventies.
fn elderly_age(rng: &mut ChaCha8Rng) -> u32 {
    60 + (rng.gen_range(0..=34) + rng.gen_range(0..=34)) / 2
}

fn disability_grade(rng: &mut ChaCha8Rng, severe: bool) -> u8 {
    if severe {
        if rng.gen_bool(0.4) {
            1
        } else {
            2
        }
    } else {
        [1u8, 2, 3, 4][weighted(rng, &[((), 15), ((), 25), ((), 30), ((), 30)])]
    }
}

struct Proto {
    relation: Relation,
    sex: Sex,
    age: u32,
    surname: String,
    disability: Option<u8>,
}

impl Proto {
    /// A member without a disability (arguments are evaluated in this order, as the fields were).
    fn able(relation: Relation, sex: Sex, age: u32, surname: String) -> Proto {
        Proto {
            relation,
            sex,
            age,
            surname,
            disability: None,
        }
    }
}

fn other_sex(s: Sex) -> Sex {
    match s {
        Sex::Male => Sex::Female,
        Sex::Female => Sex::Male,
    }
}

/// `likely` with probability `p`, else the other sex (one draw).
fn likely_sex(rng: &mut ChaCha8Rng, p: f64, likely: Sex) -> Sex {
    if rng.gen_bool(p) {
        likely
    } else {
        other_sex(likely)
    }
}

fn random_sex(rng: &mut ChaCha8Rng) -> Sex {
    likely_sex(rng, 0.5, Sex::Male)
}

#[derive(Clone, Copy)]
enum Template {
    ElderlyAlone,
    ElderlyCouple,
    DisabledAlone,
    DisabledWithParent,
    SingleParent,
    CoupleKids,
    ThreeGenerations,
    GrandparentsGrandchildren,
}

fn template(rng: &mut ChaCha8Rng, category: Category) -> Template {
    use Template::*;
    let table: &[(Template, u32)] = match category {
        Category::Tekun => &[(ElderlyAlone, 82), (DisabledAlone, 13), (ElderlyCouple, 5)],
        Category::Dibao => &[
            (ElderlyAlone, 34),
            (ElderlyCouple, 16),
            (DisabledAlone, 12),
            (DisabledWithParent, 5),
            (SingleParent, 10),
            (CoupleKids, 11),
            (ThreeGenerations, 5),
            (GrandparentsGrandchildren, 7),
        ],
        _ => &[
            (ElderlyAlone, 14),
            (ElderlyCouple, 15),
            (DisabledAlone, 4),
            (DisabledWithParent, 4),
            (SingleParent, 10),
            (CoupleKids, 30),
            (ThreeGenerations, 13),
            (GrandparentsGrandchildren, 10),
        ],
    };
    table[weighted(rng, table)].0
}

/// How many children: one most often, rarely three; at most `max` (at least one).
fn kids(rng: &mut ChaCha8Rng, max: usize) -> usize {
    let n = [1usize, 2, 3][weighted(rng, &[((), 55), ((), 35), ((), 10)])];
    n.min(max.max(1))
}

fn kid(rng: &mut ChaCha8Rng, relation: Relation, max_age: u32, surname: &str) -> Proto {
    Proto {
        relation,
        sex: random_sex(rng),
        age: rng.gen_range(0..=max_age),
        surname: surname.to_string(),
        disability: None,
    }
}

fn compose(rng: &mut ChaCha8Rng, category: Category) -> Vec<Proto> {
    let sur = |rng: &mut ChaCha8Rng| names::surname(rng).to_string();
    let mut out = Vec::new();
    let tekun = category == Category::Tekun;
    let tpl = template(rng, category);
    match tpl {
        Template::ElderlyAlone => {
            let sex = likely_sex(rng, 0.6, Sex::Female);
            out.push(Proto::able(Relation::Head, sex, elderly_age(rng), sur(rng)));
        }
        Template::ElderlyCouple => {
            let age = elderly_age(rng).max(62);
            let head_sex = likely_sex(rng, 0.88, Sex::Male);
            out.push(Proto::able(Relation::Head, head_sex, age, sur(rng)));
            let d: i64 = rng.gen_range(-3..=6);
            out.push(Proto::able(
                Relation::Spouse,
                other_sex(head_sex),
                (age as i64 - d).clamp(58, 96) as u32,
                sur(rng),
            ));
        }
        Template::DisabledAlone | Template::DisabledWithParent => {
            let with_parent = matches!(tpl, Template::DisabledWithParent);
            let age = rng.gen_range(20..=58);
            let sex = likely_sex(rng, 0.55, Sex::Male);
            let surname = sur(rng);
            out.push(Proto {
                relation: Relation::Head,
                sex,
                age,
                surname: surname.clone(),
                disability: {
                    let severe = tekun || rng.gen_bool(0.6);
                    Some(disability_grade(rng, severe))
                },
            });
            if with_parent && !tekun {
                let psex = likely_sex(rng, 0.6, Sex::Female);
                out.push(Proto::able(
                    Relation::Parent,
                    psex,
                    (age + rng.gen_range(22..=34)).min(94),
                    if psex == Sex::Male { surname } else { sur(rng) },
                ));
            }
        }
        Template::SingleParent => {
            let age = rng.gen_range(26..=52);
            let sex = likely_sex(rng, 0.65, Sex::Female);
            let surname = sur(rng);
            let kids_surname = if sex == Sex::Male || rng.gen_bool(0.25) {
                surname.clone()
            } else {
                sur(rng)
            };
            out.push(Proto::able(Relation::Head, sex, age, surname));
            for _ in 0..kids(rng, 3) {
                out.push(kid(rng, Relation::Child, (age - 20).min(20), &kids_surname));
            }
        }
        Template::CoupleKids | Template::ThreeGenerations => {
            let three = matches!(tpl, Template::ThreeGenerations);
            let age = if three {
                rng.gen_range(30..=55)
            } else {
                rng.gen_range(26..=55)
            };
            let head_sex = likely_sex(rng, 0.9, Sex::Male);
            let head_surname = sur(rng);
            let spouse_surname = sur(rng);
            let spouse_age = (age as i64 + rng.gen_range(-5..=3)).clamp(22, 60) as u32;
            let (father_surname, mother_age) = if head_sex == Sex::Male {
                (head_surname.clone(), spouse_age)
            } else {
                (spouse_surname.clone(), age)
            };
            out.push(Proto::able(
                Relation::Head,
                head_sex,
                age,
                head_surname.clone(),
            ));
            out.push(Proto::able(
                Relation::Spouse,
                other_sex(head_sex),
                spouse_age,
                spouse_surname.clone(),
            ));
            if three {
                let n_parents = rng.gen_range(1..=2);
                let page = (age + rng.gen_range(22..=32)).min(94);
                let mother = Proto::able(
                    Relation::Parent,
                    Sex::Female,
                    page.saturating_sub(rng.gen_range(0..=4)).max(age + 18),
                    sur(rng),
                );
                if n_parents == 2 {
                    out.push(Proto::able(
                        Relation::Parent,
                        Sex::Male,
                        page,
                        head_surname.clone(),
                    ));
                    out.push(mother);
                } else if rng.gen_bool(0.7) {
                    out.push(mother);
                } else {
                    out.push(Proto::able(
                        Relation::Parent,
                        Sex::Male,
                        page,
                        head_surname.clone(),
                    ));
                }
            }
            let room = 6 - out.len();
            let n = kids(rng, room.clamp(1, 3));
            let max_kid = mother_age.saturating_sub(20).min(22);
            for _ in 0..n {
                let s = if rng.gen_bool(0.92) {
                    &father_surname
                } else if head_sex == Sex::Male {
                    &spouse_surname
                } else {
                    &head_surname
                };
                out.push(kid(rng, Relation::Child, max_kid, s));
            }
        }
        Template::GrandparentsGrandchildren => {
            let age = rng.gen_range(55..=78);
            let head_sex = likely_sex(rng, 0.6, Sex::Male);
            let surname = sur(rng);
            out.push(Proto::able(Relation::Head, head_sex, age, surname.clone()));
            let mut grand_surname = surname.clone();
            if rng.gen_bool(0.6) {
                let ss = sur(rng);
                if head_sex == Sex::Female {
                    grand_surname = ss.clone();
                }
                out.push(Proto::able(
                    Relation::Spouse,
                    other_sex(head_sex),
                    (age as i64 + rng.gen_range(-4..=4)).clamp(50, 90) as u32,
                    ss,
                ));
            } else if head_sex == Sex::Female && rng.gen_bool(0.5) {
                grand_surname = sur(rng);
            }
            for _ in 0..kids(rng, 3) {
                let mut g = kid(rng, Relation::Grandchild, 14, &grand_surname);
                g.age += 2;
                out.push(g);
            }
        }
    }
    out
}

fn work_capacity(rng: &mut ChaCha8Rng, age: u32, disability: Option<u8>) -> WorkCapacity {
    if age < 16 {
        return WorkCapacity::None;
    }
    match disability {
        Some(1 | 2) => return WorkCapacity::None,
        Some(3) => return WorkCapacity::Partial,
        Some(_) if rng.gen_bool(0.5) => return WorkCapacity::Partial,
        _ => {}
    }
    if age >= 70 {
        WorkCapacity::None
    } else if age >= 60 {
        if rng.gen_bool(0.6) {
            WorkCapacity::Partial
        } else {
            WorkCapacity::None
        }
    } else if rng.gen_bool(0.1) {
        WorkCapacity::Partial
    } else {
        WorkCapacity::Full
    }
}

/// Per-capita income target as permille of the 低保 standard, by category.
fn income_permille(rng: &mut ChaCha8Rng, category: Category) -> i64 {
    match category {
        Category::Dibao => rng.gen_range(0..=850),
        Category::Tekun => 0,
        Category::DibaoEdge => rng.gen_range(1020..=1450),
        Category::Expenditure => rng.gen_range(1100..=2200),
        Category::Unstable => rng.gen_range(950..=1700),
        Category::EdgeProne => rng.gen_range(1000..=1480),
        Category::Sudden => rng.gen_range(500..=1600),
    }
}

fn floor_yuan(fen: i64) -> i64 {
    fen.max(0) / 100 * 100
}

/// Generate household number `index` (from 0).
pub(crate) fn household(
    rng: &mut ChaCha8Rng,
    index: usize,
    regions: &Regions,
    start: NaiveDate,
    ids: &mut IdAlloc,
) -> Household {
    let category = Category::ALL[weighted(
        rng,
        &CATEGORIES.iter().map(|(c, w)| (*c, *w)).collect::<Vec<_>>(),
    )];
    let urban = match category {
        Category::Unstable | Category::EdgeProne => false,
        _ => rng.gen_bool(0.33),
    };
    let area = if urban { Area::Urban } else { Area::Rural };
    let place = regions.pick(rng, urban);
    let village = regions.village(place);
    let county = regions.counties[place.county].code;
    let address = regions.address(rng, place, urban);
    let household_id = format!("H{:08}", index + 1);
    let dibao_rate = category == Category::Dibao;
    let tekun = category == Category::Tekun;

    let protos = compose(rng, category);
    let mut members: Vec<Member> = Vec::with_capacity(protos.len());
    for (k, p) in protos.into_iter().enumerate() {
        let disability = p.disability.or_else(|| {
            let p_dis = if dibao_rate { 0.07 } else { 0.04 };
            rng.gen_bool(p_dis).then(|| disability_grade(rng, false))
        });
        let mut capacity = work_capacity(rng, p.age, disability);
        if tekun {
            capacity = WorkCapacity::None;
        }
        let employed = match capacity {
            WorkCapacity::Full if (18..=59).contains(&p.age) => {
                let pe = if dibao_rate { 0.45 } else { 0.65 };
                let pe = if p.relation == Relation::Child && p.age <= 22 {
                    0.3
                } else {
                    pe
                };
                rng.gen_bool(pe)
            }
            WorkCapacity::Partial if (18..=64).contains(&p.age) => rng.gen_bool(0.25),
            _ => false,
        };
        let mut birth = birth_for_age(rng, start, p.age);
        let address_code = if rng.gen_bool(0.9) {
            county
        } else {
            pick(rng, OTHER_ADDRESS_CODES)
        };
        let mut id = ids.fresh(rng, address_code, birth, p.sex);
        for _ in 0..366 {
            if id.is_some() {
                break;
            }
            // every sequence number of that day taken: move the birthday by one day
            birth = birth.pred_opt().unwrap_or(birth);
            id = ids.fresh(rng, county, birth, p.sex);
        }
        let Some(id_number) = id else { continue };
        let name = format!(
            "{}{}",
            p.surname,
            names::given_name(rng, p.sex, birth.year())
        );
        members.push(Member {
            member_id: format!("{household_id}-{:02}", k + 1),
            id_number,
            name,
            sex: p.sex,
            birth_date: birth,
            relation: p.relation,
            work_capacity: capacity,
            disability_grade: disability,
            employed,
            monthly_income: Money::ZERO,
        });
    }

    // Incomes: basic pensions for the elderly, wages for earners, so that per-capita income
    // sits where the category says.
    let size = members.len() as i64;
    let standard = dibao_standard(area);
    let mut pensions = 0;
    if !tekun {
        for m in members.iter_mut() {
            if m.age_on(start) >= 60 {
                let p = rng.gen_range(120..=200) * 100;
                m.monthly_income = Money::from_fen(p);
                pensions += p;
            }
        }
    }
    let target = standard * size * income_permille(rng, category) / 1000;
    let mut earners: Vec<usize> = (0..members.len())
        .filter(|&i| members[i].employed)
        .collect();
    if earners.is_empty() && !tekun && category != Category::Dibao && target > pensions {
        // someone must be bringing the money in: the best-placed adult
        let best = (0..members.len())
            .filter(|&i| members[i].age_on(start) >= 16)
            .max_by_key(|&i| {
                let m = &members[i];
                let cap = match m.work_capacity {
                    WorkCapacity::Full => 2,
                    WorkCapacity::Partial => 1,
                    WorkCapacity::None => 0,
                };
                (cap, 100 - m.age_on(start).min(100) as i64)
            });
        if let Some(i) = best {
            let m = &mut members[i];
            if m.work_capacity == WorkCapacity::None {
                m.work_capacity = WorkCapacity::Partial;
            }
            m.employed = true;
            earners.push(i);
        }
    }
    if !earners.is_empty() {
        let mut wages = target - pensions;
        if category == Category::Dibao {
            wages = wages.max(30_000 * earners.len() as i64);
            let cap = standard * size * 95 / 100 - pensions;
            wages = wages.min(cap);
        }
        let weights: Vec<i64> = earners.iter().map(|_| rng.gen_range(1..=3)).collect();
        let wsum: i64 = weights.iter().sum();
        for (i, w) in earners.iter().zip(&weights) {
            let share = floor_yuan(wages * w / wsum.max(1)).max(10_000);
            let m = &mut members[*i];
            m.monthly_income = Money::from_fen(m.monthly_income.fen() + share);
        }
        if category == Category::Dibao {
            // keep strictly under the standard whatever the rounding did
            let total: i64 = members.iter().map(|m| m.monthly_income.fen()).sum();
            if total >= standard * size {
                for i in &earners {
                    members[*i].monthly_income = Money::from_fen(10_000);
                }
            }
        }
    }

    let total: i64 = members.iter().map(|m| m.monthly_income.fen()).sum();
    let monthly_benefit = match category {
        Category::Dibao => floor_yuan(standard * size - total),
        Category::Tekun => {
            let t = match area {
                Area::Urban => TEKUN_URBAN,
                Area::Rural => TEKUN_RURAL,
            };
            t * size
        }
        _ => 0,
    };
    let enrolled_on = start
        .checked_sub_days(Days::new(rng.gen_range(30..=2900)))
        .unwrap_or(start);

    Household {
        household_id,
        region_code: village.code.clone(),
        address,
        category,
        area,
        monthly_benefit: Money::from_fen(monthly_benefit),
        enrolled_on,
        members,
    }
}
