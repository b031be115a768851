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
//! About 140 bytes per member at a million members (see [`RegisterIndex::heap_bytes`] and
//! `benches/linkage.rs`). Built with [`IndexBuilder::on_disk_past`], an index past its bound keeps
//! the identity numbers, birth dates, sexes and blocking pairs (about 100 of those bytes) in a
//! private file ([`crate::ondisk`]) and reads them back with positioned reads: about 50 bytes a
//! member stay in memory at 4.4 million members, and every lookup and comparison gives the same
//! answer.

use std::collections::{HashMap, HashSet};

use chrono::{Datelike, NaiveDate};
use doudi_model::{Household, Sex, Subject};

use crate::compare::{self, swap_day_month};
use crate::idnum::{self, IdForm, IdLevel};
use crate::model::{F_BIRTH, F_ID, F_NAME, F_REGION, F_SEX};
use crate::normalise::{normalise_name, NormName, Script};
use crate::ondisk::{self, IndexFileError};

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
/// directory on the mixed key's top bits, so a lookup touches one directory slot and a bucket of
/// four to eight keys (at most a cache line) instead of the twenty cache misses of a binary search
/// over a million keys. A bucket per four to eight keys, not per key: the directory costs half a
/// byte to a byte a key instead of four to eight (an eighth to a fifth of the index).
///
/// In a bounded index ([`IndexBuilder::on_disk_past`]) the pairs are in the index file and only
/// the directory is in memory: a lookup reads its bucket (one positioned read of a few dozen
/// bytes).
#[derive(Clone, Debug, Default)]
pub(crate) struct Keyed {
    keys: Vec<u64>,
    members: Vec<u32>,
    /// `dir[b]` = first position whose mixed key has top bits ≥ `b`; `dir.len()` = buckets + 1.
    dir: Vec<u32>,
    shift: u32,
    /// The pairs in the index file: the file, where they start, how many.
    disk: Option<(ondisk::Shared, u64, usize)>,
}

/// splitmix64's finaliser: a bijection on u64 that spreads any key set evenly.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58476d1ce4e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d049bb133111eb);
    z ^ (z >> 31)
}

impl Keyed {
    pub(crate) fn build(pairs: Vec<(u64, u32)>) -> Self {
        let mut pairs: Vec<(u64, u32)> = pairs.into_iter().map(|(k, m)| (mix(k), m)).collect();
        pairs.sort_unstable();
        pairs.dedup();
        // log2 of the keys rounded up, less 3: four to eight keys a bucket.
        let bits = ondisk::dir_bits(pairs.len());
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
            disk: None,
        }
    }

    /// An array merged into the index file (see [`ondisk::Spill`]).
    fn on_disk(file: &ondisk::Shared, a: ondisk::DiskArray) -> Self {
        Keyed {
            keys: Vec::new(),
            members: Vec::new(),
            dir: a.dir,
            shift: a.shift,
            disk: Some((std::sync::Arc::clone(file), a.offset, a.len)),
        }
    }

    /// Append the members under key `k` to `out` (in member order), from memory or the file.
    fn get_into(&self, k: u64, out: &mut Vec<u32>) {
        let Some((file, offset, len)) = &self.disk else {
            out.extend_from_slice(self.get(k));
            return;
        };
        if *len == 0 {
            return;
        }
        let h = mix(k);
        let b = (h >> self.shift) as usize;
        let (Some(lo), Some(hi)) = (self.dir.get(b), self.dir.get(b + 1)) else {
            return;
        };
        let (lo, hi) = (*lo as usize, *hi as usize);
        if hi <= lo {
            return;
        }
        let mut buf = [0u8; 16 * ondisk::PAIR_BYTES];
        let mut heap_buf = Vec::new();
        let bytes = (hi - lo) * ondisk::PAIR_BYTES;
        let buf: &mut [u8] = if bytes <= buf.len() {
            &mut buf[..bytes]
        } else {
            heap_buf.resize(bytes, 0);
            &mut heap_buf
        };
        file.read(buf, offset + (lo * ondisk::PAIR_BYTES) as u64);
        for p in buf.chunks_exact(ondisk::PAIR_BYTES) {
            let mut key = [0u8; 8];
            key.copy_from_slice(&p[..8]);
            let key = u64::from_le_bytes(key);
            if key == h {
                let mut m = [0u8; 4];
                m.copy_from_slice(&p[8..]);
                out.push(u32::from_le_bytes(m));
            } else if key > h {
                break;
            }
        }
    }

    pub(crate) fn get(&self, k: u64) -> &[u32] {
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
        // A record that typed a (valid) number but not the birth date or sex: the number says
        // them, and the pairs it makes compare them like any record's (counted once when the
        // numbers agree, below), so a model trained on such records learns those fields too.
        let encoded = idnum::encoded_birth_and_sex(&form);
        let birth_date = s.birth_date.or_else(|| encoded.and_then(|(b, _)| b));
        let sex = s.sex.or_else(|| encoded.map(|(_, x)| x));
        let digits = match &form {
            IdForm::Valid(id) | IdForm::Upgraded(id) | IdForm::Invalid(id) => Some(id),
            IdForm::Missing | IdForm::Unusable => None,
        };
        let birth_in_id = match (digits, birth_date) {
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
        let sex_in_id = match (digits, sex) {
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
            birth: birth_date,
            sex,
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

/// The register's members, ready for blocking and comparison (`Sync`). Built at once
/// ([`RegisterIndex::build`]) and changed a household at a time
/// ([`RegisterIndex::upsert_household`], [`RegisterIndex::remove_household`]).
#[derive(Clone, Debug, Default)]
pub struct RegisterIndex {
    /// Identity number, birth date and sex of members `base..` (those before `base` are in the
    /// index file, when there is one).
    m_id: Vec<[u8; 18]>,
    m_birth: Vec<i32>,
    m_sex: Vec<u8>,
    /// Members whose identity number, birth date and sex are in `file`.
    base: usize,
    /// The file of a bounded index (see [`IndexBuilder::on_disk_past`]), shared by its clones.
    file: Option<ondisk::Shared>,
    /// Name and household of every member (`m_household.len()` is the number of members).
    m_name: Vec<u32>,
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
    /// `dead[m]`: member `m` was removed (its household removed or replaced). Empty until the first
    /// removal; members past its end are live.
    dead: Vec<bool>,
    dead_count: usize,
    /// What an incremental change needs, made at the first change (an index built once and never
    /// changed pays nothing for it).
    delta: Option<Box<Delta>>,
}

/// The blocking arrays, in [`Delta::blocks`] order.
const B_ID: usize = 0;
const B_BIRTH_FAMILY: usize = 1;
const B_BIRTH_TOWNSHIP: usize = 2;
const B_SOUND_YEAR: usize = 3;
const B_SOUND_TOWNSHIP: usize = 4;

/// The lookups and the keys of members added since the index was built.
#[derive(Clone, Debug, Default)]
struct Delta {
    /// Normalised name → its entry in `names`.
    name_ids: HashMap<Box<str>, u32>,
    /// Name sound → (live members with it, the name entries with it).
    sounds: HashMap<Box<str>, (u32, Vec<u32>)>,
    /// Household id → its live members.
    households: HashMap<String, Vec<u32>>,
    /// Blocking keys of members added since the build (key → members), one map per blocking array.
    blocks: [HashMap<u64, Vec<u32>>; 5],
    /// Members added since the build.
    added: usize,
}

/// The blocking keys of one member: identity number, birth date with family sound, birth date
/// with township; and (when the name has a sound) sound with birth year, sound with township.
fn member_keys(
    id: &[u8; 18],
    norm: &NormName,
    birth: NaiveDate,
    region: &[u8; 12],
) -> [Option<u64>; 5] {
    let days = birth.num_days_from_ce();
    let sound = (!norm.sound.is_empty()).then_some(norm.sound.as_str());
    [
        Some(idnum::key17(id)),
        Some(birth_family_key(days, norm.family_sound())),
        Some(birth_township_key(days, &region[..9])),
        sound.map(|s| sound_year_key(s, birth.year())),
        sound.map(|s| sound_township_key(s, &region[..9])),
    ]
}

fn region_bytes(h: &Household) -> [u8; 12] {
    let mut region = [b'0'; 12];
    let r = h.region_code.as_str().as_bytes();
    region[..r.len().min(12)].copy_from_slice(&r[..r.len().min(12)]);
    region
}

fn sex_code(s: Sex) -> u8 {
    match s {
        Sex::Male => 0,
        Sex::Female => 1,
    }
}

/// A [`RegisterIndex`] made a household at a time (in the order given, as
/// [`RegisterIndex::build`] does), so that the households need not all be held at once: a worker
/// loading the register indexes each batch it reads and keeps only the records it has room for.
#[derive(Default)]
pub struct IndexBuilder {
    ix: RegisterIndex,
    name_ids: HashMap<String, u32>,
    sound_counts: HashMap<Box<str>, u32>,
    /// Household id → the index of its first occurrence (a household given twice adds only the
    /// members not seen under it; other occurrences in `repeats`).
    households: HashMap<Box<str>, u32>,
    repeats: HashMap<u32, Vec<u32>>,
    /// The first member of each household occurrence (its members follow it).
    first_member: Vec<u32>,
    by_id: Vec<(u64, u32)>,
    by_birth_family: Vec<(u64, u32)>,
    by_birth_township: Vec<(u64, u32)>,
    by_sound_year: Vec<(u64, u32)>,
    by_sound_township: Vec<(u64, u32)>,
    /// Members past which the bulk goes to a file in a directory (see
    /// [`IndexBuilder::on_disk_past`]).
    bound: Option<(usize, std::path::PathBuf)>,
    /// The file being written, once past the bound.
    spill: Option<ondisk::Spill>,
    /// The first failure writing it (the build goes on counting, [`IndexBuilder::try_finish`]
    /// reports it).
    failed: Option<IndexFileError>,
}

impl IndexBuilder {
    /// A builder that keeps at most about `members` members' identity numbers, birth dates,
    /// sexes and blocking keys in memory: past that it writes them to a private file in `dir`
    /// (unlinked at once, see [`crate::ondisk`]) and the built index reads them from it. Links
    /// exactly as an index held in memory. Finish it with [`IndexBuilder::try_finish`].
    pub fn on_disk_past(members: usize, dir: impl Into<std::path::PathBuf>) -> IndexBuilder {
        IndexBuilder {
            bound: Some((members, dir.into())),
            ..IndexBuilder::default()
        }
    }

    /// Members indexed so far.
    fn members(&self) -> usize {
        self.ix.m_household.len()
    }

    /// Past the bound: move what is in memory to the file and keep writing there.
    fn start_spill(&mut self) -> Result<(), IndexFileError> {
        let Some((bound, dir)) = &self.bound else {
            return Ok(());
        };
        // Runs of a quarter of the bound's pairs per array (five arrays of 16-byte pairs).
        let mut spill = ondisk::Spill::create(dir, (*bound / 4).clamp(1 << 10, 1 << 20))?;
        let ix = &mut self.ix;
        for ((id, birth), sex) in ix.m_id.iter().zip(&ix.m_birth).zip(&ix.m_sex) {
            spill.record(id, *birth, *sex)?;
        }
        ix.base = ix.m_id.len();
        ix.m_id = Vec::new();
        ix.m_birth = Vec::new();
        ix.m_sex = Vec::new();
        for (b, pairs) in self.blocks_mut().into_iter().enumerate() {
            for (k, m) in std::mem::take(pairs) {
                spill.pair(b, (mix(k), m))?;
            }
        }
        self.spill = Some(spill);
        Ok(())
    }

    /// The blocking pairs held in memory, in [`Delta::blocks`] order.
    fn blocks_mut(&mut self) -> [&mut Vec<(u64, u32)>; 5] {
        [
            &mut self.by_id,
            &mut self.by_birth_family,
            &mut self.by_birth_township,
            &mut self.by_sound_year,
            &mut self.by_sound_township,
        ]
    }

    /// Record a member's identity number, birth date, sex and blocking keys: in memory, or in the
    /// file once past the bound.
    fn put(&mut self, id: [u8; 18], birth: i32, sex: u8, keys: [Option<u64>; 5]) {
        let idx = (self.members() - 1) as u32;
        if self.failed.is_none() && self.spill.is_none() {
            if let Some((bound, _)) = &self.bound {
                if self.members() > *bound {
                    if let Err(e) = self.start_spill() {
                        self.failed = Some(e);
                    }
                }
            }
        }
        if self.failed.is_some() {
            return;
        }
        if let Some(spill) = &mut self.spill {
            let mut r = spill.record(&id, birth, sex);
            for (b, key) in keys.into_iter().enumerate() {
                if let (Some(k), Ok(())) = (key, &r) {
                    r = spill.pair(b, (mix(k), idx));
                }
            }
            if let Err(e) = r {
                self.failed = Some(e);
            }
            return;
        }
        for (block, key) in self.blocks_mut().into_iter().zip(keys) {
            if let Some(k) = key {
                block.push((k, idx));
            }
        }
        self.ix.m_id.push(id);
        self.ix.m_birth.push(birth);
        self.ix.m_sex.push(sex);
    }

    /// Whether member `member_id` was indexed under an earlier occurrence of household
    /// `first` (its first occurrence) or of this one (`current`, once it has one).
    fn seen(&self, first: Option<u32>, current: Option<u32>, member_id: &str) -> bool {
        let Some(first) = first else {
            return false;
        };
        let occurrences = std::iter::once(first)
            .chain(self.repeats.get(&first).into_iter().flatten().copied())
            .chain(current);
        for h in occurrences {
            let start = self.first_member[h as usize] as usize;
            let end = self
                .first_member
                .get(h as usize + 1)
                .map_or(self.members(), |e| *e as usize);
            if (start..end).any(|m| self.ix.member_ids.get(m as u32) == member_id) {
                return true;
            }
        }
        false
    }

    /// Index the members of `h`.
    pub fn add(&mut self, h: &Household) {
        let region = region_bytes(h);
        let first = self.households.get(h.household_id.as_str()).copied();
        let mut hh: Option<u32> = None;
        for (i, m) in h.members.iter().enumerate() {
            let again = h.members[..i].iter().any(|o| o.member_id == m.member_id);
            if again || self.seen(first, hh, &m.member_id) {
                continue;
            }
            let hidx = match hh {
                Some(x) => x,
                None => {
                    self.ix.h_region.push(region);
                    let x = self.ix.household_ids.push(&h.household_id);
                    self.first_member.push(self.members() as u32);
                    match first {
                        Some(f) => self.repeats.entry(f).or_default().push(x),
                        None => {
                            self.households.insert(h.household_id.as_str().into(), x);
                        }
                    }
                    hh = Some(x);
                    x
                }
            };
            let ix = &mut self.ix;
            let mut id = [0u8; 18];
            id.copy_from_slice(m.id_number.expose().as_bytes());
            let norm = normalise_name(&m.name);
            let name_id = match self.name_ids.get(&norm.key) {
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
                    self.name_ids.insert(norm.key.clone(), n);
                    n
                }
            };
            ix.names[name_id as usize].key_count += 1;
            *self
                .sound_counts
                .entry(norm.sound.clone().into())
                .or_default() += 1;
            let birth = m.birth_date.num_days_from_ce();
            let keys = member_keys(&id, &norm, m.birth_date, &region);
            ix.m_name.push(name_id);
            ix.m_household.push(hidx);
            ix.member_ids.push(&m.member_id);
            self.put(id, birth, sex_code(m.sex), keys);
        }
    }

    /// The index of every household added, for a builder that keeps everything in memory (made
    /// by `default()`). A bounded builder ([`IndexBuilder::on_disk_past`]) is finished with
    /// [`IndexBuilder::try_finish`], which says what failed with its file; here such a failure
    /// panics.
    pub fn finish(self) -> RegisterIndex {
        match self.try_finish() {
            Ok(ix) => ix,
            Err(e) => panic!("{e}"),
        }
    }

    /// The index of every household added; with its bulk in a file when the members passed the
    /// bound of [`IndexBuilder::on_disk_past`].
    pub fn try_finish(self) -> Result<RegisterIndex, IndexFileError> {
        let IndexBuilder {
            mut ix,
            sound_counts,
            by_id,
            by_birth_family,
            by_birth_township,
            by_sound_year,
            by_sound_township,
            spill,
            failed,
            ..
        } = self;
        if let Some(e) = failed {
            return Err(e);
        }
        for n in &mut ix.names {
            n.sound_count = sound_counts.get(&n.sound).copied().unwrap_or(0);
        }
        match spill {
            None => {
                ix.by_id = Keyed::build(by_id);
                ix.by_birth_family = Keyed::build(by_birth_family);
                ix.by_birth_township = Keyed::build(by_birth_township);
                ix.by_sound_year = Keyed::build(by_sound_year);
                ix.by_sound_township = Keyed::build(by_sound_township);
            }
            Some(spill) => {
                ix.base = spill.records;
                let (file, [a, b, c, d, e]) = spill.finish()?;
                let file = std::sync::Arc::new(file);
                ix.by_id = Keyed::on_disk(&file, a);
                ix.by_birth_family = Keyed::on_disk(&file, b);
                ix.by_birth_township = Keyed::on_disk(&file, c);
                ix.by_sound_year = Keyed::on_disk(&file, d);
                ix.by_sound_township = Keyed::on_disk(&file, e);
                ix.file = Some(file);
            }
        }
        ix.m_id.shrink_to_fit();
        ix.m_name.shrink_to_fit();
        ix.m_birth.shrink_to_fit();
        ix.m_sex.shrink_to_fit();
        ix.m_household.shrink_to_fit();
        ix.h_region.shrink_to_fit();
        ix.names.shrink_to_fit();
        ix.member_ids.shrink();
        ix.household_ids.shrink();
        Ok(ix)
    }
}

impl RegisterIndex {
    /// Index every member of `households`. A (household, member) pair seen twice is kept once.
    pub fn build<'a>(households: impl IntoIterator<Item = &'a Household>) -> Self {
        let mut b = IndexBuilder::default();
        for h in households {
            b.add(h);
        }
        b.finish()
    }

    /// Number of members indexed (live: a removed household's members no longer count).
    pub fn len(&self) -> usize {
        self.m_household.len() - self.dead_count
    }

    /// Whether the bulk of the index is in a file (see [`IndexBuilder::on_disk_past`]), and the
    /// file's size in bytes.
    pub fn file_bytes(&self) -> Option<u64> {
        self.file.as_ref().map(|f| f.bytes)
    }

    /// Whether member `m` is indexed and not removed.
    fn is_live(&self, m: u32) -> bool {
        (m as usize) < self.m_household.len()
            && !self.dead.get(m as usize).copied().unwrap_or(false)
    }

    /// The order that decides between candidates of equal weight and which members a cut block
    /// keeps: (household id, member id). Never the member number, which depends on the order in
    /// which households were indexed and changed.
    pub(crate) fn rank_cmp(&self, a: u32, b: u32) -> std::cmp::Ordering {
        self.household_id(a)
            .cmp(self.household_id(b))
            .then_with(|| self.member_id(a).cmp(self.member_id(b)))
            .then_with(|| a.cmp(&b))
    }

    /// The live members under `key` in blocking array `block`: those indexed at the build and
    /// those added since.
    fn gather(&self, block: usize, key: u64, out: &mut Vec<u32>) {
        let base = match block {
            B_ID => &self.by_id,
            B_BIRTH_FAMILY => &self.by_birth_family,
            B_BIRTH_TOWNSHIP => &self.by_birth_township,
            B_SOUND_YEAR => &self.by_sound_year,
            _ => &self.by_sound_township,
        };
        let added = self
            .delta
            .as_ref()
            .and_then(|d| d.blocks.get(block))
            .and_then(|b| b.get(&key))
            .map_or(&[][..], Vec::as_slice);
        let start = out.len();
        base.get_into(key, out);
        out.extend_from_slice(added);
        if self.dead_count != 0 {
            let mut keep = start;
            for i in start..out.len() {
                if self.is_live(out[i]) {
                    out[keep] = out[i];
                    keep += 1;
                }
            }
            out.truncate(keep);
        }
    }

    /// The lookups an incremental change needs (made once, at the first change).
    fn delta_mut(&mut self) -> &mut Delta {
        if self.delta.is_none() {
            let mut d = Delta::default();
            for (i, n) in self.names.iter().enumerate() {
                d.name_ids.insert(n.key.clone(), i as u32);
                let e = d
                    .sounds
                    .entry(n.sound.clone())
                    .or_insert((n.sound_count, Vec::new()));
                e.1.push(i as u32);
            }
            for m in 0..self.m_household.len() as u32 {
                if self.is_live(m) {
                    d.households
                        .entry(self.household_id(m).to_string())
                        .or_default()
                        .push(m);
                }
            }
            self.delta = Some(Box::new(d));
        }
        self.delta.get_or_insert_with(Box::default)
    }

    /// Add one to (or take one from) the members counted under a name and under its sound.
    fn count_name(&mut self, name_id: u32, up: bool) {
        let step = |c: &mut u32| {
            *c = if up {
                c.saturating_add(1)
            } else {
                c.saturating_sub(1)
            }
        };
        let Some(sound) = self.names.get(name_id as usize).map(|n| n.sound.clone()) else {
            return;
        };
        if let Some(n) = self.names.get_mut(name_id as usize) {
            step(&mut n.key_count);
        }
        let d = self.delta_mut();
        let e = d.sounds.entry(sound).or_insert((0, Vec::new()));
        if !e.1.contains(&name_id) {
            e.1.push(name_id);
        }
        step(&mut e.0);
        let (count, ids) = (e.0, e.1.clone());
        for i in ids {
            if let Some(n) = self.names.get_mut(i as usize) {
                n.sound_count = count;
            }
        }
    }

    /// Index `household` in place of the version indexed before, if any: what a register import
    /// that added or changed it means for linking, without a rebuild. An index changed this way
    /// links every record exactly as [`RegisterIndex::build`] over the resulting register would
    /// (same candidates, same decisions, same evidence), whatever the order of the changes.
    pub fn upsert_household(&mut self, household: &Household) {
        self.remove_household(&household.household_id);
        let region = region_bytes(household);
        let mut hidx: Option<u32> = None;
        let mut seen: HashSet<&str> = HashSet::new();
        for m in &household.members {
            if !seen.insert(m.member_id.as_str()) {
                continue;
            }
            let Ok(id) = <[u8; 18]>::try_from(m.id_number.expose().as_bytes()) else {
                continue;
            };
            let h = *hidx.get_or_insert_with(|| {
                self.h_region.push(region);
                self.household_ids.push(&household.household_id)
            });
            let idx = self.m_household.len() as u32;
            let norm = normalise_name(&m.name);
            let known = self.delta_mut().name_ids.get(norm.key.as_str()).copied();
            let name_id = match known {
                Some(n) => n,
                None => {
                    let n = self.names.len() as u32;
                    let sound_count = self
                        .delta_mut()
                        .sounds
                        .get(norm.sound.as_str())
                        .map_or(0, |e| e.0);
                    self.names.push(NameEntry {
                        key: norm.key.clone().into_boxed_str(),
                        sound: norm.sound.clone().into_boxed_str(),
                        script: norm.script,
                        key_count: 0,
                        sound_count,
                    });
                    self.delta_mut()
                        .name_ids
                        .insert(norm.key.clone().into_boxed_str(), n);
                    n
                }
            };
            let keys = member_keys(&id, &norm, m.birth_date, &region);
            self.m_id.push(id);
            self.m_name.push(name_id);
            self.m_birth.push(m.birth_date.num_days_from_ce());
            self.m_sex.push(sex_code(m.sex));
            self.m_household.push(h);
            self.member_ids.push(&m.member_id);
            self.count_name(name_id, true);
            let d = self.delta_mut();
            for (block, key) in d.blocks.iter_mut().zip(keys) {
                if let Some(k) = key {
                    block.entry(k).or_default().push(idx);
                }
            }
            d.added += 1;
            d.households
                .entry(household.household_id.clone())
                .or_default()
                .push(idx);
        }
    }

    /// Stop linking to the members of household `household_id` (a household removed from the
    /// register, or the old version of a changed one). Returns how many members were removed.
    pub fn remove_household(&mut self, household_id: &str) -> usize {
        let members = self
            .delta_mut()
            .households
            .remove(household_id)
            .unwrap_or_default();
        if members.is_empty() {
            return 0;
        }
        if self.dead.len() < self.m_household.len() {
            self.dead.resize(self.m_household.len(), false);
        }
        let mut removed = 0;
        for m in members {
            if !self.is_live(m) {
                continue;
            }
            self.dead[m as usize] = true;
            self.dead_count += 1;
            removed += 1;
            if let Some(n) = self.m_name.get(m as usize).copied() {
                self.count_name(n, false);
            }
        }
        removed
    }

    /// Members added by [`RegisterIndex::upsert_household`] and removed since the build: a
    /// rebuild (a restart of the worker) packs them into the sorted arrays again.
    pub fn changed_since_build(&self) -> (usize, usize) {
        (self.delta.as_ref().map_or(0, |d| d.added), self.dead_count)
    }

    pub fn is_empty(&self) -> bool {
        self.m_household.is_empty()
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
            + self.dead.capacity()
            + self.delta.as_ref().map_or(0, |d| {
                // an estimate: the maps' entries and their vectors
                d.name_ids.len() * 40
                    + d.sounds.len() * 56
                    + d.households.len() * 64
                    + d.blocks.iter().map(|b| b.len() * 48).sum::<usize>()
            })
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
        (0..self.m_household.len() as u32).find(|m| {
            self.is_live(*m)
                && self.member_id(*m) == member_id
                && self.household_id(*m) == household_id
        })
    }

    pub(crate) fn name_entry(&self, m: u32) -> Option<&NameEntry> {
        self.m_name
            .get(m as usize)
            .and_then(|n| self.names.get(*n as usize))
    }

    #[cfg(test)]
    fn birth(&self, m: u32) -> Option<NaiveDate> {
        self.record(m)
            .and_then(|(_, d, _)| NaiveDate::from_num_days_from_ce_opt(d))
    }

    /// Member `m`'s identity number, birth date (days from the common era) and sex code: from
    /// the index file for the members built into it, else from memory.
    fn record(&self, m: u32) -> Option<([u8; 18], i32, u8)> {
        let m = m as usize;
        if m < self.base {
            let file = self.file.as_ref()?;
            let mut r = [0u8; ondisk::RECORD_BYTES];
            file.read(&mut r, (m * ondisk::RECORD_BYTES) as u64);
            let mut id = [0u8; 18];
            id.copy_from_slice(&r[..18]);
            let mut birth = [0u8; 4];
            birth.copy_from_slice(&r[18..22]);
            return Some((id, i32::from_le_bytes(birth), r[22]));
        }
        let i = m - self.base;
        Some((
            *self.m_id.get(i)?,
            *self.m_birth.get(i)?,
            *self.m_sex.get(i)?,
        ))
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
            self.gather(B_ID, *k, out);
        }
    }

    /// Members sharing a cheap key other than the identity number. Blocks larger than `max_block`
    /// are cut at that size (a key that common says little anyway).
    pub fn other_candidates(&self, q: &Query, max_block: usize, out: &mut Vec<u32>) {
        // The members under one key, cut at `max_block` in (household, member) id order.
        let mut take = |block: usize, key: u64| {
            let start = out.len();
            self.gather(block, key, out);
            if out.len() - start > max_block {
                out[start..].sort_unstable_by(|a, b| self.rank_cmp(*a, *b));
                out.truncate(start + max_block);
            }
        };
        if let Some(b) = q.birth {
            let dates = [Some(b), swap_day_month(b)];
            for d in dates.iter().flatten() {
                let days = d.num_days_from_ce();
                if !q.name.is_empty() {
                    take(
                        B_BIRTH_FAMILY,
                        birth_family_key(days, q.name.family_sound()),
                    );
                }
                if q.region.len() >= 9 {
                    take(
                        B_BIRTH_TOWNSHIP,
                        birth_township_key(days, &q.region.as_bytes()[..9]),
                    );
                }
            }
        }
        if !q.name.sound.is_empty() {
            if let Some(b) = q.birth {
                take(B_SOUND_YEAR, sound_year_key(&q.name.sound, b.year()));
            }
            if q.region.len() >= 9 {
                let township = &q.region.as_bytes()[..9];
                take(
                    B_SOUND_TOWNSHIP,
                    sound_township_key(&q.name.sound, township),
                );
            }
        }
    }

    /// Compare the record with member `m`, field by field.
    pub fn compare(&self, q: &Query, m: u32) -> Levels {
        let mut l = [0u8; 5];
        let record = self.record(m);
        let id = record.map_or([b'0'; 18], |r| r.0);
        l[F_ID] = idnum::compare_id(&q.form, &id).index() as u8;
        l[F_NAME] = match self.name_entry(m) {
            Some(e) => compare::compare_name(&q.name, &e.key, &e.sound, e.script),
            None => compare::NAME_MISSING,
        };
        l[F_BIRTH] = compare::compare_date(
            q.birth,
            record.and_then(|r| NaiveDate::from_num_days_from_ce_opt(r.1)),
        );
        l[F_SEX] = compare::compare_sex(
            q.sex,
            record.map(|r| if r.2 == 0 { Sex::Male } else { Sex::Female }),
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

#[cfg(test)]
mod tests {
    //! An index changed a household at a time links exactly as one built at once over the
    //! resulting register: property-style, over generated registers and seeded sequences of
    //! additions, changes and removals.

    use std::collections::BTreeMap;

    use doudi_model::{Household, RegionCode, Subject};
    use doudi_synth::{generate_register, GenConfig};
    use rand::seq::SliceRandom;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    use crate::typos;

    use super::{IndexBuilder, RegisterIndex};
    use crate::normalise::normalise_name;
    use crate::{Linker, Model, Thresholds};

    /// A generated register, and a crowd: 24 more households whose head shares one name, birth
    /// date and village (blocks larger than a small `max_block`, ties between candidates).
    fn register(households: usize, seed: u64) -> Vec<Household> {
        let mut pool = generate_register(&GenConfig {
            households,
            seed,
            ..GenConfig::default()
        });
        let born = chrono::NaiveDate::from_ymd_opt(1950, 1, 1).unwrap();
        let village = pool[0].region_code.clone();
        for i in 0..24u16 {
            let mut h = pool[i as usize].clone();
            h.household_id = format!("HC{i:02}");
            h.region_code = village.clone();
            for (j, m) in h.members.iter_mut().enumerate() {
                m.member_id = format!("HC{i:02}-{j}");
            }
            let head = &mut h.members[0];
            head.name = "王伟".into();
            head.birth_date = born;
            head.id_number =
                doudi_model::IdNumber::from_parts(&village.as_str()[..6], born, 500 + i).unwrap();
            head.sex = head.id_number.sex();
            pool.push(h);
        }
        pool
    }

    /// A record about `m` of `h` as a department might type it: fields dropped, mistyped, or
    /// taken from someone else.
    fn noisy_subject(rng: &mut ChaCha8Rng, h: &Household, pool: &[Household]) -> Subject {
        let m = &h.members[rng.gen_range(0..h.members.len())];
        let id = m.id_number.expose().to_string();
        let id_number = match rng.gen_range(0..6) {
            0 => None,
            1 => typos::digit_changed(rng, &id),
            2 => typos::digits_swapped(rng, &id),
            3 => Some(format!("{}{}", &id[..6], &id[8..17])),
            _ => Some(id),
        };
        let other = &pool[rng.gen_range(0..pool.len())];
        let name = match rng.gen_range(0..6) {
            0 => None,
            1 => Some(other.members[0].name.clone()),
            // a name that sounds the same, written otherwise (when the pool has one)
            2 => Some(homophone(&m.name, pool).unwrap_or_else(|| m.name.clone())),
            _ => Some(m.name.clone()),
        };
        let birth_date = match rng.gen_range(0..5) {
            0 => None,
            1 => m.birth_date.succ_opt(),
            _ => Some(m.birth_date),
        };
        let region_code = match rng.gen_range(0..4) {
            0 => None,
            1 => RegionCode::parse(&h.region_code.as_str()[..9]).ok(),
            _ => Some(h.region_code.clone()),
        };
        Subject {
            id_number,
            name,
            birth_date,
            sex: rng.gen_bool(0.8).then_some(m.sex),
            region_code,
        }
    }

    /// `name` with a character of its given name swapped for one that sounds the same (伟 → 玮),
    /// when it has one the table knows.
    fn homophone(name: &str, _pool: &[Household]) -> Option<String> {
        const PAIRS: &[(char, char)] = &[
            ('伟', '玮'),
            ('丽', '莉'),
            ('明', '鸣'),
            ('芳', '方'),
            ('军', '君'),
            ('强', '蔷'),
            ('红', '宏'),
            ('英', '鹰'),
            ('秀', '绣'),
            ('兰', '蓝'),
            ('娟', '鹃'),
            ('平', '萍'),
            ('玲', '铃'),
            ('杰', '洁'),
            ('涛', '滔'),
            ('燕', '艳'),
            ('刚', '钢'),
            ('林', '琳'),
            ('勇', '永'),
            ('辉', '晖'),
            ('建', '健'),
            ('文', '雯'),
            ('云', '芸'),
            ('梅', '玫'),
            ('华', '桦'),
            ('敏', '民'),
            ('霞', '侠'),
            ('静', '晶'),
            ('国', '帼'),
            ('桂', '贵'),
        ];
        let mut out: String = name.chars().take(1).collect();
        let mut swapped = false;
        for c in name.chars().skip(1) {
            match PAIRS.iter().find(|(a, b)| *a == c || *b == c) {
                Some((a, b)) if !swapped => {
                    out.push(if *a == c { *b } else { *a });
                    swapped = true;
                }
                _ => out.push(c),
            }
        }
        let (n, o) = (normalise_name(name), normalise_name(&out));
        (swapped && n.sound == o.sound && n.key != o.key).then_some(out)
    }

    /// A changed version of `h`: a member gone, a member added (someone else's person under a new
    /// member id), or a member renamed.
    fn changed(rng: &mut ChaCha8Rng, h: &Household, pool: &[Household], n: usize) -> Household {
        let mut h = h.clone();
        match rng.gen_range(0..3) {
            0 if h.members.len() > 1 => {
                let i = rng.gen_range(0..h.members.len());
                h.members.remove(i);
            }
            1 => {
                let donor = &pool[rng.gen_range(0..pool.len())];
                let mut m = donor.members[rng.gen_range(0..donor.members.len())].clone();
                m.member_id = format!("{}-new{n}", h.household_id);
                h.members.push(m);
            }
            _ => {
                let donor = &pool[rng.gen_range(0..pool.len())];
                let i = rng.gen_range(0..h.members.len());
                let name = &donor.members[0].name;
                h.members[i].name = homophone(name, pool).unwrap_or_else(|| name.clone());
            }
        }
        h
    }

    /// Link every subject with both linkers and require the same decisions and evidence.
    fn assert_same(incremental: &Linker, at_once: &Linker, subjects: &[Subject], what: &str) {
        assert_eq!(incremental.len(), at_once.len(), "{what}: members");
        for (i, s) in subjects.iter().enumerate() {
            let a = incremental.link(s);
            let b = at_once.link(s);
            assert_eq!(a, b, "{what}: subject {i} ({s:?})");
        }
    }

    fn linkers(
        inc: &RegisterIndex,
        hs: &BTreeMap<String, Household>,
        rng: &mut ChaCha8Rng,
        t: &Thresholds,
    ) -> (Linker, Linker) {
        let mut order: Vec<&Household> = hs.values().collect();
        order.shuffle(rng);
        (
            Linker::new(inc.clone(), Model::prior(), t.clone()),
            Linker::new(RegisterIndex::build(order), Model::prior(), t.clone()),
        )
    }

    /// `n` records typed by hand about members of households drawn from `pool`.
    fn noisy_subjects(rng: &mut ChaCha8Rng, pool: &[Household], n: usize) -> Vec<Subject> {
        (0..n)
            .map(|_| {
                let h = &pool[rng.gen_range(0..pool.len())];
                noisy_subject(rng, h, pool)
            })
            .collect()
    }

    #[test]
    fn an_index_changed_household_by_household_links_like_one_built_at_once() {
        let mut counts = (0, 0, 0);
        for seed in 1..=6u64 {
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            let pool = register(240, seed);
            let subjects = noisy_subjects(&mut rng, &pool, 400);
            // Start from a built index over part of the register (or from nothing).
            let start = if seed % 2 == 0 { 0 } else { 120 };
            let mut current: BTreeMap<String, Household> = pool[..start]
                .iter()
                .map(|h| (h.household_id.clone(), h.clone()))
                .collect();
            let mut inc = RegisterIndex::build(&pool[..start]);
            // Small blocks too, so that the cut of a block is exercised.
            let cut = Thresholds {
                max_block: 2,
                ..Thresholds::default()
            };
            for step in 0..300usize {
                match rng.gen_range(0..10) {
                    0..=4 => {
                        let h = &pool[rng.gen_range(0..pool.len())];
                        inc.upsert_household(h);
                        current.insert(h.household_id.clone(), h.clone());
                        counts.0 += 1;
                    }
                    5..=7 if !current.is_empty() => {
                        let keys: Vec<&String> = current.keys().collect();
                        let id = keys[rng.gen_range(0..keys.len())].clone();
                        let h = changed(&mut rng, &current[&id], &pool, step);
                        inc.upsert_household(&h);
                        current.insert(id, h);
                        counts.1 += 1;
                    }
                    _ if !current.is_empty() => {
                        let keys: Vec<&String> = current.keys().collect();
                        let id = keys[rng.gen_range(0..keys.len())].clone();
                        let n = current[&id].members.len();
                        assert_eq!(inc.remove_household(&id), n);
                        current.remove(&id);
                        counts.2 += 1;
                    }
                    _ => {}
                }
                if step % 75 == 74 {
                    for t in [Thresholds::default(), cut.clone()] {
                        let (a, b) = linkers(&inc, &current, &mut rng, &t);
                        assert_same(&a, &b, &subjects, &format!("seed {seed} step {step}"));
                    }
                }
            }
            let (a, b) = linkers(&inc, &current, &mut rng, &Thresholds::default());
            // The comparison means something: records link, go to review and stay unmatched.
            let outcomes: std::collections::HashSet<_> =
                subjects.iter().map(|s| a.link(s).outcome).collect();
            let homophones = subjects
                .iter()
                .filter(|s| {
                    a.link(s)
                        .evidence
                        .candidates
                        .first()
                        .is_some_and(|c| c.comparisons.iter().any(|c| c.level == "homophone"))
                })
                .count();
            assert!(
                homophones > 0,
                "seed {seed}: no record compared as a homophone"
            );
            assert_eq!(outcomes.len(), 3, "seed {seed}: {outcomes:?}");
            assert_same(&a, &b, &subjects, &format!("seed {seed} end"));
        }
        println!(
            "upserts {}, changes {}, removals {}",
            counts.0, counts.1, counts.2
        );
    }

    /// The same register indexed in memory and with its bulk in a file (a bound far below its
    /// members, runs small enough to merge several): the same candidates for every record, the
    /// same decisions and evidence, before and after households change; nothing left in the
    /// directory.
    #[test]
    fn an_index_with_its_bulk_on_disk_links_exactly_as_one_in_memory() {
        let dir = tempfile::tempdir().unwrap();
        for seed in [1u64, 2] {
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            let pool = register(1500, seed);
            let subjects = noisy_subjects(&mut rng, &pool, 1500);
            let memory = RegisterIndex::build(&pool);
            let mut b = IndexBuilder::on_disk_past(100, dir.path());
            for h in &pool {
                b.add(h);
            }
            let disk = b.try_finish().unwrap();
            assert_eq!(memory.file_bytes(), None);
            assert!(disk.file_bytes().is_some_and(|b| b > 0));
            // The numbers, dates, sexes and blocking pairs (83 bytes a member) are in the file.
            assert!(
                disk.heap_bytes() + 75 * disk.len() <= memory.heap_bytes(),
                "{} against {} bytes for {} members",
                disk.heap_bytes(),
                memory.heap_bytes(),
                disk.len()
            );
            assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
            let same_candidates = |a: &RegisterIndex, b: &RegisterIndex| {
                let (mut keys, mut ca, mut cb) = (Vec::new(), Vec::new(), Vec::new());
                for s in &subjects {
                    let q = super::Query::new(s);
                    ca.clear();
                    cb.clear();
                    a.id_candidates(&q, &mut keys, &mut ca);
                    b.id_candidates(&q, &mut keys, &mut cb);
                    a.other_candidates(&q, 2, &mut ca);
                    b.other_candidates(&q, 2, &mut cb);
                    assert_eq!(ca, cb, "seed {seed}: candidates of {s:?}");
                    for m in &ca {
                        assert_eq!(a.compare(&q, *m), b.compare(&q, *m));
                    }
                }
            };
            same_candidates(&memory, &disk);
            let cut = Thresholds {
                max_block: 2,
                ..Thresholds::default()
            };
            let (mut memory, mut disk) = (memory, disk);
            for round in 0..2 {
                for t in [Thresholds::default(), cut.clone()] {
                    let a = Linker::new(memory.clone(), Model::prior(), t.clone());
                    let b = Linker::new(disk.clone(), Model::prior(), t);
                    assert_same(&a, &b, &subjects, &format!("seed {seed} round {round}"));
                }
                // Households changed, removed and added, in both.
                for step in 0..200usize {
                    let h = &pool[rng.gen_range(0..pool.len())];
                    match step % 3 {
                        0 => {
                            let h = changed(&mut rng, h, &pool, step);
                            memory.upsert_household(&h);
                            disk.upsert_household(&h);
                        }
                        1 => {
                            assert_eq!(
                                memory.remove_household(&h.household_id),
                                disk.remove_household(&h.household_id)
                            );
                        }
                        _ => {
                            memory.upsert_household(h);
                            disk.upsert_household(h);
                        }
                    }
                }
                same_candidates(&memory, &disk);
            }
        }
    }

    #[test]
    fn a_household_given_twice_is_indexed_with_each_member_once() {
        let pool = register(20, 5);
        let h = pool
            .iter()
            .find(|h| h.members.len() >= 2)
            .expect("a household of several members");
        // The household again, its first member repeated and given twice more, one member new.
        let mut again = h.clone();
        let mut new = h.members[1].clone();
        new.member_id = format!("{}-new", new.member_id);
        again.members = vec![h.members[0].clone(), h.members[0].clone(), new];
        let mut given: Vec<Household> = pool.clone();
        given.push(again);
        let members: usize = pool.iter().map(|h| h.members.len()).sum();
        let ix = RegisterIndex::build(&given);
        assert_eq!(ix.len(), members + 1, "each (household, member) pair once");
        let mut b = IndexBuilder::default();
        for h in &given {
            b.add(h);
        }
        assert_eq!(b.finish().len(), ix.len());
    }

    #[test]
    fn a_removed_household_is_no_candidate_and_comes_back_when_added_again() {
        let pool = register(50, 3);
        let mut ix = RegisterIndex::build(&pool);
        let h = &pool[7];
        let m = &h.members[0];
        let subject = Subject {
            id_number: Some(m.id_number.expose().to_string()),
            name: Some(m.name.clone()),
            birth_date: Some(m.birth_date),
            sex: Some(m.sex),
            region_code: Some(h.region_code.clone()),
        };
        let before = ix.link(&subject);
        assert_eq!(
            before.household_id.as_deref(),
            Some(h.household_id.as_str())
        );
        let members = ix.len();
        assert_eq!(ix.remove_household(&h.household_id), h.members.len());
        assert_eq!(ix.remove_household(&h.household_id), 0, "removed twice");
        assert_eq!(ix.len(), members - h.members.len());
        let gone = ix.link(&subject);
        assert!(gone
            .evidence
            .candidates
            .iter()
            .all(|c| c.household_id != h.household_id));
        assert_eq!(ix.find_member(&h.household_id, &m.member_id), None);
        ix.upsert_household(h);
        assert_eq!(ix.len(), members);
        assert_eq!(ix.link(&subject), before);
        assert_eq!(ix.changed_since_build(), (h.members.len(), h.members.len()));
    }

    /// A record with a valid ID number but no birth date or sex takes them from the number: the
    /// pair with the number's own member counts them once (as missing beside the agreeing
    /// number), a pair with anybody else compares them; a number that fails its check says
    /// nothing.
    #[test]
    fn a_record_with_only_an_id_number_takes_birth_date_and_sex_from_it() {
        use crate::compare::{DATE_MISSING, SEX_MISSING};
        use crate::model::{F_BIRTH, F_SEX};
        let pool = register(50, 5);
        let ix = RegisterIndex::build(&pool);
        let m = &pool[3].members[0];
        let subject = Subject {
            id_number: Some(m.id_number.expose().to_string()),
            name: Some(m.name.clone()),
            birth_date: None,
            sex: None,
            region_code: None,
        };
        let q = super::Query::new(&subject);
        assert_eq!(q.birth, Some(m.birth_date));
        assert_eq!(q.sex, Some(m.sex));
        assert!(q.birth_in_id && q.sex_in_id);
        let own = ix.find_member(&pool[3].household_id, &m.member_id).unwrap();
        let l = ix.compare(&q, own);
        assert_eq!((l[F_BIRTH], l[F_SEX]), (DATE_MISSING, SEX_MISSING));
        let other = (0..ix.len() as u32)
            .find(|o| {
                ix.birth(*o).is_some_and(|b| b != m.birth_date)
                    && !ix.member_id(*o).is_empty()
                    && *o != own
            })
            .unwrap();
        let l = ix.compare(&q, other);
        assert_ne!(
            l[F_BIRTH], DATE_MISSING,
            "a pair with somebody else compares the birth date"
        );
        assert_ne!(l[F_SEX], SEX_MISSING);
        // a typed birth date stays the record's own
        let typed = Subject {
            birth_date: m.birth_date.succ_opt(),
            ..subject.clone()
        };
        assert_eq!(super::Query::new(&typed).birth, m.birth_date.succ_opt());
        // a number failing its check says nothing
        let mut bad = m.id_number.expose().as_bytes().to_vec();
        bad[17] = if bad[17] == b'0' { b'1' } else { b'0' };
        let invalid = Subject {
            id_number: String::from_utf8(bad).ok(),
            ..subject
        };
        let q = super::Query::new(&invalid);
        assert_eq!((q.birth, q.sex), (None, None));
    }
}
