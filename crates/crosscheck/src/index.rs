//! The register, indexed by normalised ID number. The only thing held in memory beside the
//! per-member aggregates.

use std::hash::Hasher;

use doudi_model::{Household, IdNumber};

/// FNV-1a, for fingerprints and digests.
pub(crate) struct Fnv(u64);

impl Default for Fnv {
    fn default() -> Self {
        Fnv(0xcbf2_9ce4_8422_2325)
    }
}

impl Hasher for Fnv {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        let mut h = self.0;
        for b in bytes {
            h ^= u64::from(*b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
        self.0 = h;
    }
}

/// A valid ID number as a number: its first 17 characters are digits and the 18th follows from
/// them, so the 17 digits name it alone (and fit in 57 bits).
fn id_key(id: &IdNumber) -> u64 {
    id.expose().as_bytes()[..17]
        .iter()
        .fold(0u64, |k, d| k * 10 + u64::from(d.wrapping_sub(b'0')))
}

/// Marks an empty slot: no 17-digit number reaches it.
const EMPTY: u64 = u64::MAX;

/// Member by ID number: an open-addressing table of packed 12-byte slots (key, member), about
/// two thirds full. Every snapshot row is looked up here, at random: at provincial scale the
/// table is tens of megabytes, and a lookup is a cache miss; the table is kept small (so more
/// of it stays in cache) and [`IdTable::get_all`] looks up many rows at once so that their
/// misses overlap.
pub(crate) struct IdTable {
    /// `[key low, key high, member]`.
    slots: Vec<[u32; 3]>,
}

impl IdTable {
    fn with_capacity(n: usize) -> IdTable {
        let len = (n + n / 2).max(16);
        IdTable {
            slots: vec![[u32::MAX, u32::MAX, 0]; len],
        }
    }

    /// The first slot to probe (multiplicative hashing, reduced by a multiply-shift).
    fn home(&self, key: u64) -> usize {
        let h = key.wrapping_mul(0x9e37_79b9_7f4a_7c15);
        ((u128::from(h) * self.slots.len() as u128) >> 64) as usize
    }

    fn key_at(&self, i: usize) -> u64 {
        let s = self.slots[i];
        u64::from(s[0]) | (u64::from(s[1]) << 32)
    }

    /// Insert unless the key is there; returns the member already holding it.
    fn insert(&mut self, key: u64, member: u32) -> Option<u32> {
        let mut i = self.home(key);
        loop {
            match self.key_at(i) {
                EMPTY => {
                    self.slots[i] = [key as u32, (key >> 32) as u32, member];
                    return None;
                }
                k if k == key => return Some(self.slots[i][2]),
                _ => i = if i + 1 == self.slots.len() { 0 } else { i + 1 },
            }
        }
    }

    fn get(&self, key: u64) -> Option<u32> {
        let mut i = self.home(key);
        loop {
            match self.key_at(i) {
                EMPTY => return None,
                k if k == key => return Some(self.slots[i][2]),
                _ => i = if i + 1 == self.slots.len() { 0 } else { i + 1 },
            }
        }
    }

    /// Look up every key of `ids` into `out` (same order). The home slots of a group of rows are
    /// computed first, then read in a loop that does nothing else, so that their cache misses
    /// are waited for together rather than one row after another.
    pub fn get_all(&self, ids: &[IdNumber], out: &mut Vec<Option<u32>>) {
        const AT_ONCE: usize = 64;
        out.clear();
        for group in ids.chunks(AT_ONCE) {
            let mut keys = [0u64; AT_ONCE];
            let mut homes = [0usize; AT_ONCE];
            for ((k, h), id) in keys.iter_mut().zip(homes.iter_mut()).zip(group) {
                *k = id_key(id);
                *h = self.home(*k);
            }
            let touched = homes[..group.len()]
                .iter()
                .fold(0u32, |t, &h| t ^ self.slots[h][2]);
            std::hint::black_box(touched);
            out.extend(keys[..group.len()].iter().map(|k| self.get(*k)));
        }
    }
}

/// A household id of up to 15 bytes packed with its length (so two pack alike only if they
/// are the same text); `None` for a longer one.
fn pack_household_id(id: &str) -> Option<u128> {
    let b = id.as_bytes();
    if b.len() > 15 {
        return None;
    }
    let mut k = [0u8; 16];
    k[..b.len()].copy_from_slice(b);
    k[15] = b.len() as u8;
    Some(u128::from_le_bytes(k))
}

/// The packed form of a household id too long to pack (no packed id has length byte 255).
const LONG_ID: u128 = u128::MAX;

/// One member of the register: its household and position.
#[derive(Clone, Copy, Debug)]
pub(crate) struct MemberRef {
    pub household: u32,
    pub position: u16,
}

pub(crate) struct Index<'r> {
    pub households: &'r [Household],
    /// Every member, in register order; a member's index is its position here.
    pub members: Vec<MemberRef>,
    /// First member index of each household.
    pub first_member: Vec<u32>,
    pub by_id: IdTable,
    /// Later members carrying an ID number an earlier member already has: (earlier, later).
    pub duplicates: Vec<(u32, u32)>,
    /// Each household's id packed ([`pack_household_id`]): every payment row is compared with
    /// its member's household id, and this small table spares reaching the register's strings.
    household_keys: Vec<u128>,
}

impl<'r> Index<'r> {
    pub fn build(households: &'r [Household]) -> Index<'r> {
        let n: usize = households.iter().map(|h| h.members.len()).sum();
        let mut members = Vec::with_capacity(n);
        let mut first_member = Vec::with_capacity(households.len());
        let mut by_id = IdTable::with_capacity(n);
        let mut duplicates = Vec::new();
        let mut household_keys = Vec::with_capacity(households.len());
        for (hi, h) in households.iter().enumerate() {
            first_member.push(members.len() as u32);
            household_keys.push(pack_household_id(&h.household_id).unwrap_or(LONG_ID));
            for (pi, m) in h.members.iter().enumerate() {
                let ix = members.len() as u32;
                members.push(MemberRef {
                    household: hi as u32,
                    position: pi as u16,
                });
                if let Some(first) = by_id.insert(id_key(&m.id_number), ix) {
                    duplicates.push((first, ix));
                }
            }
        }
        Index {
            households,
            members,
            first_member,
            by_id,
            duplicates,
            household_keys,
        }
    }

    /// Whether household `h`'s id is `id` (exactly).
    pub fn is_household_id(&self, h: u32, id: &str) -> bool {
        let key = self.household_keys[h as usize];
        match pack_household_id(id) {
            Some(k) => k == key,
            None => key == LONG_ID && self.households[h as usize].household_id == id,
        }
    }

    pub fn household_of(&self, member: u32) -> u32 {
        self.members[member as usize].household
    }

    pub fn member(&self, member: u32) -> (&'r Household, &'r doudi_model::Member) {
        let r = self.members[member as usize];
        let h = &self.households[r.household as usize];
        (h, &h.members[r.position as usize])
    }

    /// Member indexes of household `h`.
    pub fn members_of(&self, h: u32) -> std::ops::Range<u32> {
        let start = self.first_member[h as usize];
        start..start + self.households[h as usize].members.len() as u32
    }
}

/// A digest of everything the aggregates depend on (household and member order and ids), so
/// that a checkpoint made against another register is never reused.
pub(crate) fn digest(households: &[Household]) -> u64 {
    let mut f = Fnv::default();
    for h in households {
        f.write(h.household_id.as_bytes());
        f.write(&[0]);
        f.write(h.region_code.as_str().as_bytes());
        f.write(&h.monthly_benefit.fen().to_le_bytes());
        f.write(h.category.code().as_bytes());
        for m in &h.members {
            f.write(m.member_id.as_bytes());
            f.write(m.id_number.expose().as_bytes());
            f.write(m.name.as_bytes());
            f.write(&[0]);
        }
        f.write(&[1]);
    }
    f.finish()
}

/// FNV-1a of a byte string (fingerprints).
pub(crate) fn fnv(bytes: &[u8]) -> u64 {
    let mut f = Fnv::default();
    f.write(bytes);
    f.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(n: u32) -> IdNumber {
        let birth = chrono::NaiveDate::from_ymd_opt(1950, 1, 1).unwrap()
            + chrono::Days::new(u64::from(n / 1000));
        IdNumber::from_parts("341502", birth, (n % 1000) as u16).unwrap()
    }

    #[test]
    fn household_ids_compare_as_their_text() {
        let ids = [
            "H00000001",
            "",
            "H0000000100",
            "123456789012345",
            "1234567890123456",
            "住户12345",
        ];
        for a in ids {
            for b in ids {
                let (pa, pb) = (pack_household_id(a), pack_household_id(b));
                assert_eq!(pa.is_some(), a.len() <= 15);
                if let (Some(x), Some(y)) = (pa, pb) {
                    assert_eq!(x == y, a == b, "{a} {b}");
                    assert_ne!(x, LONG_ID);
                }
            }
        }
    }

    #[test]
    fn every_id_number_is_found_in_batches_the_first_holder_wins_and_strangers_are_not() {
        let mut table = IdTable::with_capacity(5000);
        for n in 0..5000 {
            assert_eq!(table.insert(id_key(&id(n)), n), None);
        }
        assert_eq!(table.insert(id_key(&id(17)), 9999), Some(17));
        let ids: Vec<IdNumber> = (0..6000).map(id).collect();
        let mut out = Vec::new();
        table.get_all(&ids, &mut out);
        assert_eq!(out.len(), 6000);
        for (n, found) in out.iter().enumerate() {
            let n = n as u32;
            assert_eq!(*found, (n < 5000).then_some(n), "{n}");
        }
    }
}
