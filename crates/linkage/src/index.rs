//! The register's match index: members in flat arrays (compact ids, interned names), blocking keys
//! in sorted arrays, and the term-frequency tables of names.
//!
//! Blocking keys (each a sorted `(key, member)` array searched by binary search):
//! - the first 17 digits of the identity number: exact and legacy numbers look up one key, a number
//!   that fails its check looks up every valid number one substitution or one adjacent swap away;
//! - the birth date (and the date with day and month exchanged) with the family name's sound, and
//!   with the township;
//! - the name's sound (toneless pinyin) with the birth year;
//! - the name's sound with the township (records whose region is given to the township or village).
//!
//! About 160 bytes per member at a million members (see [`RegisterIndex::heap_bytes`] and
//! `benches/linkage.rs`).

use std::collections::{HashMap, HashSet};

use chrono::{Datelike, NaiveDate};
use doudi_model::{Household, Sex, Subject};

use crate::compare::{self, swap_day_month};
use crate::idnum::{self, IdForm, IdLevel};
use crate::model::{F_BIRTH, F_ID, F_NAME, F_REGION, F_SEX};
use crate::normalise::{normalise_name, NormName, Script};

/// Strings stored end to end, addressed by number.
#[derive(Clone, Debug, Default)]
struct Arena {
    text: String,
    ends: Vec<u32>,
}

impl Arena {
    fn push(&mut self, s: &str) -> u32 {
        self.text.push_str(s);
        self.ends.push(self.text.len() as u32);
        (self.ends.len() - 1) as u32
    }

    fn get(&self, i: u32) -> &str {
        let i = i as usize;
        let start = if i == 0 { 0 } else { self.ends[i - 1] as usize };
        let end = self.ends.get(i).map_or(start, |e| *e as usize);
        self.text.get(start..end).unwrap_or("")
    }

    fn heap_bytes(&self) -> usize {
        self.text.capacity() + self.ends.capacity() * 4
    }

    fn shrink(&mut self) {
        self.text.shrink_to_fit();
        self.ends.shrink_to_fit();
    }
}

/// A blocking array: `(key, member)` pairs sorted by a bijective mix of the key, with a
/// directory on the mixed key's top bits, so a lookup touches one directory slot and (on average)
/// one or two keys instead of the twenty cache misses of a binary search over a million keys.
#[derive(Clone, Debug, Default)]
struct Keyed {
    keys: Vec<u64>,
    members: Vec<u32>,
    /// `dir[b]` = first position whose mixed key has top bits ≥ `b`; `dir.len()` = buckets + 1.
    dir: Vec<u32>,
    shift: u32,
}

/// splitmix64's finaliser: a bijection on u64 that spreads any key set evenly.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58476d1ce4e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d049bb133111eb);
    z ^ (z >> 31)
}

impl Keyed {
    fn build(pairs: Vec<(u64, u32)>) -> Self {
        let mut pairs: Vec<(u64, u32)> = pairs.into_iter().map(|(k, m)| (mix(k), m)).collect();
        pairs.sort_unstable();
        pairs.dedup();
        let n = pairs.len().max(2);
        let bits = (usize::BITS - (n - 1).leading_zeros()).clamp(1, 32);
        let shift = 64 - bits;
        let buckets = 1usize << bits;
        let mut dir = Vec::with_capacity(buckets + 1);
        let mut pos = 0usize;
        for b in 0..buckets {
            while pos < pairs.len() && ((pairs[pos].0 >> shift) as usize) < b {
                pos += 1;
            }
            dir.push(pos as u32);
        }
        dir.push(pairs.len() as u32);
        Keyed {
            keys: pairs.iter().map(|p| p.0).collect(),
            members: pairs.iter().map(|p| p.1).collect(),
            dir,
            shift,
        }
    }

    fn get(&self, k: u64) -> &[u32] {
        if self.keys.is_empty() {
            return &[];
        }
        let h = mix(k);
        let b = (h >> self.shift) as usize;
        let (Some(lo), Some(hi)) = (self.dir.get(b), self.dir.get(b + 1)) else {
            return &[];
        };
        let (lo, hi) = (*lo as usize, *hi as usize);
        let bucket = &self.keys[lo..hi];
        let start = bucket.partition_point(|x| *x < h);
        let end = start + bucket[start..].partition_point(|x| *x == h);
        &self.members[lo + start..lo + end]
    }

    fn heap_bytes(&self) -> usize {
        self.keys.capacity() * 8 + self.members.capacity() * 4 + self.dir.capacity() * 4
    }
}

/// An interned (normalised) name with its register frequencies.
#[derive(Clone, Debug)]
pub(crate) struct NameEntry {
    pub key: Box<str>,
    pub sound: Box<str>,
    pub script: Script,
    /// Members with exactly this name.
    pub key_count: u32,
    /// Members whose name sounds like this.
    pub sound_count: u32,
}

/// FNV-1a, for blocking keys (deterministic across runs and machines).
pub(crate) fn fnv(parts: &[&[u8]]) -> u64 {
    let mut h: u64 = 0xcbf29ce484222325;
    for p in parts {
        for b in *p {
            h ^= u64::from(*b);
            h = h.wrapping_mul(0x100000001b3);
        }
        h ^= 0xff;
        h = h.wrapping_mul(0x100000001b3);
    }
    h
}

fn sound_year_key(sound: &str, year: i32) -> u64 {
    fnv(&[sound.as_bytes(), &year.to_le_bytes()])
}

fn birth_family_key(days: i32, family_sound: &str) -> u64 {
    fnv(&[&days.to_le_bytes(), family_sound.as_bytes()])
}

fn birth_township_key(days: i32, township: &[u8]) -> u64 {
    fnv(&[&days.to_le_bytes(), township])
}

fn sound_township_key(sound: &str, township: &[u8]) -> u64 {
    fnv(&[sound.as_bytes(), township])
}

/// A record's subject, normalised once for all its comparisons. `Debug` masks the number and
/// the name.
#[derive(Clone)]
pub struct Query {
    pub form: IdForm,
    pub name: NormName,
    pub birth: Option<NaiveDate>,
    pub sex: Option<Sex>,
    /// Region code digits (6, 9 or 12), empty when missing.
    pub region: String,
    /// The birth date and sex typed agree with those the typed ID number encodes: when the number
    /// agrees with a member's, they add nothing the number has not said (counted once, not twice).
    pub birth_in_id: bool,
    pub sex_in_id: bool,
}

impl std::fmt::Debug for Query {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let form = match &self.form {
            IdForm::Valid(_) => "valid",
            IdForm::Upgraded(_) => "upgraded",
            IdForm::Invalid(_) => "invalid",
            IdForm::Unusable => "unusable",
            IdForm::Missing => "missing",
        };
        f.debug_struct("Query")
            .field("id", &form)
            .field("name", &doudi_model::mask_name(&self.name.key))
            .field("birth", &self.birth.map(|_| "…"))
            .field("sex", &self.sex)
            .field("region", &self.region)
            .finish()
    }
}

impl Query {
    pub fn new(s: &Subject) -> Query {
        let form = idnum::id_form(s.id_number.as_deref());
        let digits = match &form {
            IdForm::Valid(id) | IdForm::Upgraded(id) | IdForm::Invalid(id) => Some(id),
            IdForm::Missing | IdForm::Unusable => None,
        };
        let birth_in_id = match (digits, s.birth_date) {
            (Some(id), Some(b)) => {
                let num = |r: std::ops::Range<usize>| {
                    id[r]
                        .iter()
                        .fold(0i64, |a, d| a * 10 + i64::from(d.wrapping_sub(b'0')))
                };
                num(6..10) == i64::from(b.year())
                    && num(10..12) == i64::from(b.month())
                    && num(12..14) == i64::from(b.day())
            }
            _ => false,
        };
        let sex_in_id = match (digits, s.sex) {
            (Some(id), Some(sex)) => {
                let odd = id[16].wrapping_sub(b'0') % 2 == 1;
                odd == (sex == Sex::Male)
            }
            _ => false,
        };
        Query {
            birth_in_id,
            sex_in_id,
            form,
            name: normalise_name(s.name.as_deref().unwrap_or("")),
            birth: s.birth_date,
            sex: s.sex,
            region: s
                .region_code
                .as_ref()
                .map(|r| r.as_str().to_string())
                .unwrap_or_default(),
        }
    }
}

/// Comparison levels of one (record, member) pair, in register field order.
pub type Levels = [u8; 5];

/// The register's members, ready for blocking and comparison. Read-only once built (`Sync`).
#[derive(Clone, Debug, Default)]
pub struct RegisterIndex {
    m_id: Vec<[u8; 18]>,
    m_name: Vec<u32>,
    m_birth: Vec<i32>,
    m_sex: Vec<u8>,
    m_household: Vec<u32>,
    member_ids: Arena,
    household_ids: Arena,
    h_region: Vec<[u8; 12]>,
    names: Vec<NameEntry>,
    by_id: Keyed,
    by_birth_family: Keyed,
    by_birth_township: Keyed,
    by_sound_year: Keyed,
    by_sound_township: Keyed,
}

fn sex_code(s: Sex) -> u8 {
    match s {
        Sex::Male => 0,
        Sex::Female => 1,
    }
}

impl RegisterIndex {
    /// Index every member of `households`. A (household, member) pair seen twice is kept once.
    pub fn build<'a>(households: impl IntoIterator<Item = &'a Household>) -> Self {
        let mut ix = RegisterIndex::default();
        let mut name_ids: HashMap<String, u32> = HashMap::new();
        let mut sound_counts: HashMap<Box<str>, u32> = HashMap::new();
        let mut seen: HashSet<(String, String)> = HashSet::new();
        let mut by_id = Vec::new();
        let mut by_birth_family = Vec::new();
        let mut by_birth_township = Vec::new();
        let mut by_sound_year = Vec::new();
        let mut by_sound_township = Vec::new();
        for h in households {
            let mut region = [b'0'; 12];
            let r = h.region_code.as_str().as_bytes();
            region[..r.len().min(12)].copy_from_slice(&r[..r.len().min(12)]);
            let mut hh: Option<u32> = None;
            for m in &h.members {
                if !seen.insert((h.household_id.clone(), m.member_id.clone())) {
                    continue;
                }
                let hidx = *hh.get_or_insert_with(|| {
                    ix.h_region.push(region);
                    ix.household_ids.push(&h.household_id)
                });
                let idx = ix.m_id.len() as u32;
                let mut id = [0u8; 18];
                id.copy_from_slice(m.id_number.expose().as_bytes());
                let norm = normalise_name(&m.name);
                let name_id = match name_ids.get(&norm.key) {
                    Some(n) => *n,
                    None => {
                        let n = ix.names.len() as u32;
                        ix.names.push(NameEntry {
                            key: norm.key.clone().into_boxed_str(),
                            sound: norm.sound.clone().into_boxed_str(),
                            script: norm.script,
                            key_count: 0,
                            sound_count: 0,
                        });
                        name_ids.insert(norm.key.clone(), n);
                        n
                    }
                };
                ix.names[name_id as usize].key_count += 1;
                *sound_counts.entry(norm.sound.clone().into()).or_default() += 1;
                let birth = m.birth_date.num_days_from_ce();
                by_id.push((idnum::key17(&id), idx));
                by_birth_family.push((birth_family_key(birth, norm.family_sound()), idx));
                by_birth_township.push((birth_township_key(birth, &region[..9]), idx));
                if !norm.sound.is_empty() {
                    by_sound_year.push((sound_year_key(&norm.sound, m.birth_date.year()), idx));
                    by_sound_township.push((sound_township_key(&norm.sound, &region[..9]), idx));
                }
                ix.m_id.push(id);
                ix.m_name.push(name_id);
                ix.m_birth.push(birth);
                ix.m_sex.push(sex_code(m.sex));
                ix.m_household.push(hidx);
                ix.member_ids.push(&m.member_id);
            }
        }
        for n in &mut ix.names {
            n.sound_count = sound_counts.get(&n.sound).copied().unwrap_or(0);
        }
        ix.by_id = Keyed::build(by_id);
        ix.by_birth_family = Keyed::build(by_birth_family);
        ix.by_birth_township = Keyed::build(by_birth_township);
        ix.by_sound_year = Keyed::build(by_sound_year);
        ix.by_sound_township = Keyed::build(by_sound_township);
        ix.m_id.shrink_to_fit();
        ix.m_name.shrink_to_fit();
        ix.m_birth.shrink_to_fit();
        ix.m_sex.shrink_to_fit();
        ix.m_household.shrink_to_fit();
        ix.h_region.shrink_to_fit();
        ix.names.shrink_to_fit();
        ix.member_ids.shrink();
        ix.household_ids.shrink();
        ix
    }

    /// Number of members indexed.
    pub fn len(&self) -> usize {
        self.m_id.len()
    }

    pub fn is_empty(&self) -> bool {
        self.m_id.is_empty()
    }

    /// Heap memory held (exact for the arrays, the allocator's own overhead aside).
    pub fn heap_bytes(&self) -> usize {
        let names: usize = self
            .names
            .iter()
            .map(|n| n.key.len() + n.sound.len())
            .sum::<usize>()
            + self.names.capacity() * std::mem::size_of::<NameEntry>();
        self.m_id.capacity() * 18
            + self.m_name.capacity() * 4
            + self.m_birth.capacity() * 4
            + self.m_sex.capacity()
            + self.m_household.capacity() * 4
            + self.member_ids.heap_bytes()
            + self.household_ids.heap_bytes()
            + self.h_region.capacity() * 12
            + names
            + self.by_id.heap_bytes()
            + self.by_birth_family.heap_bytes()
            + self.by_birth_township.heap_bytes()
            + self.by_sound_year.heap_bytes()
            + self.by_sound_township.heap_bytes()
    }

    pub fn member_id(&self, m: u32) -> &str {
        self.member_ids.get(m)
    }

    pub fn household_id(&self, m: u32) -> &str {
        self.m_household
            .get(m as usize)
            .map_or("", |h| self.household_ids.get(*h))
    }

    /// The member number of (household, member) ids, if indexed (a linear scan: tests and labels).
    pub fn find_member(&self, household_id: &str, member_id: &str) -> Option<u32> {
        (0..self.len() as u32)
            .find(|m| self.member_id(*m) == member_id && self.household_id(*m) == household_id)
    }

    pub(crate) fn name_entry(&self, m: u32) -> Option<&NameEntry> {
        self.m_name
            .get(m as usize)
            .and_then(|n| self.names.get(*n as usize))
    }

    fn birth(&self, m: u32) -> Option<NaiveDate> {
        self.m_birth
            .get(m as usize)
            .and_then(|d| NaiveDate::from_num_days_from_ce_opt(*d))
    }

    fn region(&self, m: u32) -> &[u8] {
        self.m_household
            .get(m as usize)
            .and_then(|h| self.h_region.get(*h as usize))
            .map_or(&[][..], |r| &r[..])
    }

    /// Members whose identity number matches the record's exactly or after repair.
    pub fn id_candidates(&self, q: &Query, keys: &mut Vec<u64>, out: &mut Vec<u32>) {
        keys.clear();
        match &q.form {
            IdForm::Valid(id) | IdForm::Upgraded(id) => keys.push(idnum::key17(id)),
            IdForm::Invalid(id) => idnum::repair_keys(id, keys),
            IdForm::Missing | IdForm::Unusable => {}
        }
        for k in keys.iter() {
            out.extend_from_slice(self.by_id.get(*k));
        }
    }

    /// Members sharing a cheap key other than the identity number. Blocks larger than `max_block`
    /// are cut at that size (a key that common says little anyway).
    pub fn other_candidates(&self, q: &Query, max_block: usize, out: &mut Vec<u32>) {
        let mut take = |s: &[u32]| out.extend_from_slice(&s[..s.len().min(max_block)]);
        if let Some(b) = q.birth {
            let dates = [Some(b), swap_day_month(b)];
            for d in dates.iter().flatten() {
                let days = d.num_days_from_ce();
                if !q.name.is_empty() {
                    take(
                        self.by_birth_family
                            .get(birth_family_key(days, q.name.family_sound())),
                    );
                }
                if q.region.len() >= 9 {
                    take(
                        self.by_birth_township
                            .get(birth_township_key(days, &q.region.as_bytes()[..9])),
                    );
                }
            }
        }
        if !q.name.sound.is_empty() {
            if let Some(b) = q.birth {
                take(
                    self.by_sound_year
                        .get(sound_year_key(&q.name.sound, b.year())),
                );
            }
            if q.region.len() >= 9 {
                let township = &q.region.as_bytes()[..9];
                take(
                    self.by_sound_township
                        .get(sound_township_key(&q.name.sound, township)),
                );
            }
        }
    }

    /// Compare the record with member `m`, field by field.
    pub fn compare(&self, q: &Query, m: u32) -> Levels {
        let mut l = [0u8; 5];
        let id = self.m_id.get(m as usize).copied().unwrap_or([b'0'; 18]);
        l[F_ID] = idnum::compare_id(&q.form, &id).index() as u8;
        l[F_NAME] = match self.name_entry(m) {
            Some(e) => compare::compare_name(&q.name, &e.key, &e.sound, e.script),
            None => compare::NAME_MISSING,
        };
        l[F_BIRTH] = compare::compare_date(q.birth, self.birth(m));
        l[F_SEX] = compare::compare_sex(
            q.sex,
            self.m_sex
                .get(m as usize)
                .map(|s| if *s == 0 { Sex::Male } else { Sex::Female }),
        );
        l[F_REGION] = compare::compare_region(q.region.as_bytes(), self.region(m));
        // Birth date and sex are written inside the ID number: when the numbers agree (exactly or
        // after repair) and the typed fields say what the typed number says, count them once.
        if l[F_ID] < IdLevel::Different as u8 {
            if q.birth_in_id {
                l[F_BIRTH] = compare::DATE_MISSING;
            }
            if q.sex_in_id {
                l[F_SEX] = compare::SEX_MISSING;
            }
        }
        l
    }
}
