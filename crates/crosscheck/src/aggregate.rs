//! Per-register-member aggregates: what the snapshots said about the register's people, and
//! nothing about anyone else. A [`Partial`] is built per chunk of a file, merged per file (and
//! checkpointed), then merged into the night's total. Merging is commutative: chunks may finish
//! in any order. Nothing here holds an unmasked name or ID number.

use std::collections::BTreeMap;

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

use doudi_model::{mask_name, Category, Money, RegionCode};

use crate::config::CheckConfig;
use crate::index::{fnv, Index};
use crate::snapshot::{
    mask_code, CompanyRecord, CompanyRole, CompanyStatus, DeathRecord, HukouRecord, Month,
    PaymentRecord, PropertyRecord, PropertyUse, VehicleRecord, VehicleType, WageRecord,
};

/// Items kept per member and kind (all are counted; evidence lists at most this many).
const MAX_ITEMS: usize = 32;

pub(crate) const HUKOU_SEEN: u8 = 1;
pub(crate) const HUKOU_NAME_DIFFERS: u8 = 2;
pub(crate) const HUKOU_BIRTH_DIFFERS: u8 = 4;

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub(crate) struct Death {
    pub date: NaiveDate,
    pub record_id: String,
}

/// What the hukou roll says when it disagrees with the register.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub(crate) struct HukouDiff {
    pub birth_date: NaiveDate,
    pub name_masked: String,
}

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub(crate) struct VehicleItem {
    pub plate_masked: String,
    pub vehicle_type: VehicleType,
    pub value: Option<Money>,
    pub registered_on: NaiveDate,
}

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub(crate) struct PropertyItem {
    /// A hash of the certificate number: co-owners of one home count it once.
    pub certificate_key: u64,
    pub certificate_masked: String,
    pub usage: PropertyUse,
    pub area_m2: Option<u32>,
    pub value: Option<Money>,
    pub registered_on: NaiveDate,
}

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub(crate) struct CompanyItem {
    pub credit_code: String,
    pub company_name: String,
    pub role: CompanyRole,
    pub registered_capital: Money,
}

/// Payments in some months, with their total.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Paid {
    pub months: Vec<Month>,
    pub amount: Money,
    pub rows: u64,
}

impl Paid {
    fn add(&mut self, month: Month, amount: Money) {
        if let Err(i) = self.months.binary_search(&month) {
            self.months.insert(i, month);
        }
        self.amount += amount;
        self.rows += 1;
    }

    fn merge(&mut self, other: Paid) {
        for m in other.months {
            if let Err(i) = self.months.binary_search(&m) {
                self.months.insert(i, m);
            }
        }
        self.amount += other.amount;
        self.rows += other.rows;
    }
}

/// A register member paid under another household number.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct ForeignPaid {
    pub region: RegionCode,
    pub category: Category,
    pub paid: Paid,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Partial {
    /// Well-formed rows read.
    pub rows: u64,
    /// Rows about a register member.
    pub matched: u64,
    /// Per member: `HUKOU_*` flags (empty unless a hukou file was read).
    pub hukou: Vec<u8>,
    pub hukou_diff: BTreeMap<u32, HukouDiff>,
    pub deaths: BTreeMap<u32, Death>,
    pub vehicles: BTreeMap<u32, Vec<VehicleItem>>,
    pub properties: BTreeMap<u32, Vec<PropertyItem>>,
    pub companies: BTreeMap<u32, Vec<CompanyItem>>,
    /// Per household: wages per month of the income window (oldest first).
    pub wages: BTreeMap<u32, Vec<i64>>,
    /// Per member: payments to their own household for months after their death.
    pub overpaid: BTreeMap<u32, Paid>,
    /// Per household: payments for months after its last living member died.
    pub orphan_paid: BTreeMap<u32, Paid>,
    /// Per member, per other household number: payments under that number.
    pub foreign: BTreeMap<u32, BTreeMap<String, ForeignPaid>>,
}

fn push_capped<T: Ord>(list: &mut Vec<T>, item: T) {
    if list.len() < MAX_ITEMS {
        list.push(item);
    } else if let Some(max) = list.iter_mut().max() {
        // keep the smallest items whatever the order of arrival, so merges are deterministic
        if item < *max {
            *max = item;
        }
    }
}

/// Keep the least value per key (the earliest death, the first difference): the same whatever
/// order the rows and chunks come in.
fn keep_least<T: Ord>(into: &mut BTreeMap<u32, T>, k: u32, v: T) {
    match into.get_mut(&k) {
        Some(cur) if v < *cur => *cur = v,
        Some(_) => {}
        None => {
            into.insert(k, v);
        }
    }
}

fn merge_list<T: Ord>(into: &mut BTreeMap<u32, Vec<T>>, k: u32, items: Vec<T>) {
    let list = into.entry(k).or_default();
    for it in items {
        push_capped(list, it);
    }
}

/// Merge `from` into `into` entry by entry with `each`, or take `from` whole when `into` is
/// empty: the same map (every `each` keeps an entry it finds no counterpart for as it is; a
/// file's chunks, and the night's files, mostly merge into nothing).
fn merge_map<K: Ord, V>(
    into: &mut BTreeMap<K, V>,
    from: BTreeMap<K, V>,
    mut each: impl FnMut(&mut BTreeMap<K, V>, K, V),
) {
    if into.is_empty() {
        *into = from;
        return;
    }
    for (k, v) in from {
        each(into, k, v);
    }
}

impl Partial {
    pub fn merge(&mut self, other: Partial) {
        self.rows += other.rows;
        self.matched += other.matched;
        if !other.hukou.is_empty() {
            if self.hukou.is_empty() {
                self.hukou = other.hukou;
            } else {
                for (a, b) in self.hukou.iter_mut().zip(other.hukou) {
                    *a |= b;
                }
            }
        }
        merge_map(&mut self.hukou_diff, other.hukou_diff, keep_least);
        merge_map(&mut self.deaths, other.deaths, keep_least);
        merge_map(&mut self.vehicles, other.vehicles, merge_list);
        merge_map(&mut self.properties, other.properties, merge_list);
        merge_map(&mut self.companies, other.companies, merge_list);
        merge_map(&mut self.wages, other.wages, |wages, k, w| {
            match wages.get_mut(&k) {
                Some(cur) => {
                    for (a, b) in cur.iter_mut().zip(w) {
                        *a += b;
                    }
                }
                None => {
                    wages.insert(k, w);
                }
            }
        });
        merge_map(&mut self.overpaid, other.overpaid, |m, k, p| {
            m.entry(k).or_default().merge(p)
        });
        merge_map(&mut self.orphan_paid, other.orphan_paid, |m, k, p| {
            m.entry(k).or_default().merge(p)
        });
        merge_map(&mut self.foreign, other.foreign, |foreign, k, by_hh| {
            let mine = foreign.entry(k).or_default();
            for (hh, f) in by_hh {
                match mine.get_mut(&hh) {
                    Some(cur) => {
                        if f.region < cur.region {
                            cur.region = f.region.clone();
                        }
                        cur.paid.merge(f.paid);
                    }
                    None => {
                        mine.insert(hh, f);
                    }
                }
            }
        });
    }
}

/// What applying a row needs beside the row.
pub(crate) struct Cx<'a> {
    pub index: &'a Index<'a>,
    pub cfg: &'a CheckConfig,
    pub as_of: NaiveDate,
    /// First month of the income window and its length.
    pub wage_window: (Month, u32),
    /// Deaths of register members (known once the death files are read).
    pub deaths: &'a BTreeMap<u32, Death>,
    /// Households all of whose members died: the month of the last death.
    pub all_dead: &'a BTreeMap<u32, Month>,
}

/// How one kind of row changes the aggregates.
pub(crate) trait Apply {
    fn apply(self, member: Option<u32>, cx: &Cx, p: &mut Partial);
    /// What a well-formed row about no register member does: `apply(None, ..)` without the
    /// row (the reader need not make the record).
    fn unmatched(_cx: &Cx, _p: &mut Partial) {}
}

impl Apply for DeathRecord {
    fn apply(self, member: Option<u32>, cx: &Cx, p: &mut Partial) {
        let Some(m) = member else { return };
        if self.death_date > cx.as_of {
            return;
        }
        let d = Death {
            date: self.death_date,
            record_id: self.record_id.trim().to_string(),
        };
        keep_least(&mut p.deaths, m, d);
    }
}

impl Apply for HukouRecord {
    fn unmatched(cx: &Cx, p: &mut Partial) {
        if p.hukou.is_empty() {
            p.hukou = vec![0; cx.index.members.len()];
        }
    }

    fn apply(self, member: Option<u32>, cx: &Cx, p: &mut Partial) {
        Self::unmatched(cx, p);
        let Some(m) = member else { return };
        hukou_seen(&self.name, self.birth_date, m, cx, p);
    }
}

/// A register member `m` on the hukou roll under `name`, born on `birth_date`.
pub(crate) fn hukou_seen(name: &str, birth_date: NaiveDate, m: u32, cx: &Cx, p: &mut Partial) {
    HukouRecord::unmatched(cx, p);
    let (_, reg) = cx.index.member(m);
    let mut flags = HUKOU_SEEN;
    if name.trim() != reg.name.trim() {
        flags |= HUKOU_NAME_DIFFERS;
    }
    if birth_date != reg.birth_date {
        flags |= HUKOU_BIRTH_DIFFERS;
    }
    p.hukou[m as usize] |= flags;
    if flags != HUKOU_SEEN {
        let d = HukouDiff {
            birth_date,
            name_masked: mask_name(name),
        };
        keep_least(&mut p.hukou_diff, m, d);
    }
}

impl Apply for VehicleRecord {
    fn apply(self, member: Option<u32>, cx: &Cx, p: &mut Partial) {
        let Some(m) = member else { return };
        if !cx
            .cfg
            .vehicle
            .disqualifies(self.vehicle_type, self.value_fen)
        {
            return;
        }
        push_capped(
            p.vehicles.entry(m).or_default(),
            VehicleItem {
                plate_masked: mask_code(&self.plate),
                vehicle_type: self.vehicle_type,
                value: self.value_fen,
                registered_on: self.registered_on,
            },
        );
    }
}

impl Apply for PropertyRecord {
    fn apply(self, member: Option<u32>, _cx: &Cx, p: &mut Partial) {
        let Some(m) = member else { return };
        push_capped(
            p.properties.entry(m).or_default(),
            PropertyItem {
                certificate_key: fnv(self.certificate_no.trim().as_bytes()),
                certificate_masked: mask_code(&self.certificate_no),
                usage: self.usage,
                area_m2: self.area_m2,
                value: self.value_fen,
                registered_on: self.registered_on,
            },
        );
    }
}

impl Apply for CompanyRecord {
    fn apply(self, member: Option<u32>, cx: &Cx, p: &mut Partial) {
        let Some(m) = member else { return };
        if self.status != CompanyStatus::Active
            || !cx
                .cfg
                .company
                .disqualifies(self.role, self.registered_capital_fen)
        {
            return;
        }
        push_capped(
            p.companies.entry(m).or_default(),
            CompanyItem {
                credit_code: self.credit_code.trim().to_string(),
                company_name: self.company_name.trim().to_string(),
                role: self.role,
                registered_capital: self.registered_capital_fen,
            },
        );
    }
}

impl Apply for WageRecord {
    fn apply(self, member: Option<u32>, cx: &Cx, p: &mut Partial) {
        let Some(m) = member else { return };
        wage_paid(self.month, self.wage_fen, m, cx, p);
    }
}

/// A wage of `wage` to register member `m` for `month`.
pub(crate) fn wage_paid(month: Month, wage: Money, m: u32, cx: &Cx, p: &mut Partial) {
    let (first, n) = cx.wage_window;
    let k = first.until(month);
    if k < 0 || k >= n as i32 {
        return;
    }
    let h = cx.index.household_of(m);
    let row = p.wages.entry(h).or_insert_with(|| vec![0; n as usize]);
    row[k as usize] += wage.fen();
}

impl Apply for PaymentRecord {
    fn apply(self, member: Option<u32>, cx: &Cx, p: &mut Partial) {
        let Some(m) = member else { return };
        let region = self.region_code;
        let payment = Payment {
            household_id: &self.household_id,
            category: self.category,
            month: self.month,
            amount: self.amount_fen,
        };
        payment.apply(m, || Some(region), cx, p);
    }
}

/// What a payment row says, borrowed from the row.
pub(crate) struct Payment<'a> {
    pub household_id: &'a str,
    pub category: Category,
    pub month: Month,
    pub amount: Money,
}

impl Payment<'_> {
    /// A payment to register member `m`; `region` gives the paying locality (only asked for a
    /// payment under another household number).
    pub fn apply(
        &self,
        m: u32,
        region: impl FnOnce() -> Option<RegionCode>,
        cx: &Cx,
        p: &mut Partial,
    ) {
        let household_id = self.household_id.trim();
        let h = cx.index.household_of(m);
        if cx.index.is_household_id(h, household_id) {
            if let Some(d) = cx.deaths.get(&m) {
                if self.month > Month::of(d.date) {
                    p.overpaid
                        .entry(m)
                        .or_default()
                        .add(self.month, self.amount);
                }
            }
            if let Some(last) = cx.all_dead.get(&h) {
                if self.month > *last {
                    p.orphan_paid
                        .entry(h)
                        .or_default()
                        .add(self.month, self.amount);
                }
            }
        } else {
            let by_hh = p.foreign.entry(m).or_default();
            let f = match by_hh.get_mut(household_id) {
                Some(f) => f,
                None => {
                    let Some(region) = region() else { return };
                    by_hh
                        .entry(household_id.to_string())
                        .or_insert(ForeignPaid {
                            region,
                            category: self.category,
                            paid: Paid::default(),
                        })
                }
            };
            f.paid.add(self.month, self.amount);
        }
    }
}
