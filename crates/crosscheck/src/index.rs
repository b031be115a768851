//! The register, indexed by normalised ID number. The only thing held in memory beside the
//! per-member aggregates.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

use doudi_model::{Household, IdNumber};

/// FNV-1a: ID numbers are short and fixed-size; SipHash's DoS resistance buys nothing here and
/// costs a third of the lookup time.
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

pub(crate) type FnvMap<K, V> = HashMap<K, V, BuildHasherDefault<Fnv>>;

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
    pub by_id: FnvMap<IdNumber, u32>,
    /// Later members carrying an ID number an earlier member already has: (earlier, later).
    pub duplicates: Vec<(u32, u32)>,
}

impl<'r> Index<'r> {
    pub fn build(households: &'r [Household]) -> Index<'r> {
        let n: usize = households.iter().map(|h| h.members.len()).sum();
        let mut members = Vec::with_capacity(n);
        let mut first_member = Vec::with_capacity(households.len());
        let mut by_id: FnvMap<IdNumber, u32> = FnvMap::default();
        by_id.reserve(n);
        let mut duplicates = Vec::new();
        for (hi, h) in households.iter().enumerate() {
            first_member.push(members.len() as u32);
            for (pi, m) in h.members.iter().enumerate() {
                let ix = members.len() as u32;
                members.push(MemberRef {
                    household: hi as u32,
                    position: pi as u16,
                });
                match by_id.get(&m.id_number) {
                    Some(&first) => duplicates.push((first, ix)),
                    None => {
                        by_id.insert(m.id_number, ix);
                    }
                }
            }
        }
        Index {
            households,
            members,
            first_member,
            by_id,
            duplicates,
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

    /// A digest of everything the aggregates depend on (household and member order and ids), so
    /// that a checkpoint made against another register is never reused.
    pub fn digest(&self) -> u64 {
        let mut f = Fnv::default();
        for h in self.households {
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
}

/// FNV-1a of a byte string (fingerprints).
pub(crate) fn fnv(bytes: &[u8]) -> u64 {
    let mut f = Fnv::default();
    f.write(bytes);
    f.finish()
}
