//! The register as a compact binary file, for a night's cross-check: what `doudi crosscheck`
//! keeps beside a SQLite store so that the register loads in a fraction of the time its JSON
//! records take to read and decode (at 450,000 households, 287 MB of JSON).
//!
//! The file is a cache, never the truth. It names the register it was made from (a stamp the
//! caller takes from the store, which changes whenever the register does) and every part of it
//! carries a 64-bit hash: [`decode`] refuses a file made for another register, of another format
//! or damaged anywhere, and the caller then reads the register from the store (and makes the
//! file again). Every value is checked again as it is decoded (ID numbers by their check
//! character, dates, enumerations by their serde form), so a file that decodes gives exactly the
//! households it was made from.
//!
//! Layout (little-endian): magic, format, stamp, counts, the tables of the enumerations and
//! region codes (each distinct value once, in its JSON form), the table of blocks (offset, length,
//! households, hash of each), the hash of all that; then the blocks, each a run of households,
//! decoded on every core.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use chrono::{Datelike, NaiveDate};
use doudi_model::{
    Area, Category, Household, IdNumber, Member, Money, RegionCode, Relation, Sex, WorkCapacity,
};
use serde::de::DeserializeOwned;
use serde::Serialize;

const MAGIC: &[u8; 8] = b"DOUDIREG";
/// The layout's version: a file of another is refused (and made again).
pub const FORMAT: u32 = 1;
/// Households per block (a unit of decoding work).
const BLOCK: usize = 8192;

/// Why a register file was not used. None of these is an error of the night: the register is
/// then read from the store.
#[derive(Debug, thiserror::Error)]
pub enum RegisterFileError {
    #[error("not a register file")]
    NotAFile,
    #[error("register file of format {0} (this doudi reads format {FORMAT})")]
    Format(u32),
    #[error("register file made from another version of the register")]
    Stale,
    #[error("register file damaged: {0}")]
    Damaged(&'static str),
    #[error("register cannot be kept in a register file: {0}")]
    Unencodable(&'static str),
}

fn damaged(what: &'static str) -> RegisterFileError {
    RegisterFileError::Damaged(what)
}

/// Distinct values in the order first seen, each written once (in its JSON form) and referred
/// to by its index.
struct Table<T> {
    values: Vec<T>,
    index: HashMap<T, u32>,
}

impl<T: Clone + Eq + Hash + Serialize> Table<T> {
    fn new() -> Self {
        Table {
            values: Vec::new(),
            index: HashMap::new(),
        }
    }

    fn id(&mut self, v: &T) -> u32 {
        if let Some(&i) = self.index.get(v) {
            return i;
        }
        let i = self.values.len() as u32;
        self.values.push(v.clone());
        self.index.insert(v.clone(), i);
        i
    }

    /// An enumeration's index, in one byte.
    fn small(&mut self, v: &T) -> Result<u8, RegisterFileError> {
        u8::try_from(self.id(v))
            .map_err(|_| RegisterFileError::Unencodable("an enumeration with over 255 values"))
    }

    fn write(&self, out: &mut Vec<u8>) -> Result<(), RegisterFileError> {
        put_len(out, self.values.len());
        for v in &self.values {
            let text = serde_json::to_string(v)
                .map_err(|_| RegisterFileError::Unencodable("a value with no JSON form"))?;
            put_str(out, &text);
        }
        Ok(())
    }
}

/// A table read back: each value decoded by serde from its JSON form.
fn read_table<T: DeserializeOwned>(r: &mut Reader) -> Result<Vec<T>, RegisterFileError> {
    let n = r.len()?;
    let mut out = Vec::with_capacity(n.min(1 << 16));
    for _ in 0..n {
        let text = r.str()?;
        out.push(serde_json::from_str(text).map_err(|_| damaged("a table value"))?);
    }
    Ok(out)
}

#[derive(Default)]
struct Tables {
    categories: Vec<Category>,
    areas: Vec<Area>,
    sexes: Vec<Sex>,
    relations: Vec<Relation>,
    capacities: Vec<WorkCapacity>,
    regions: Vec<RegionCode>,
}

struct Writers {
    categories: Table<Category>,
    areas: Table<Area>,
    sexes: Table<Sex>,
    relations: Table<Relation>,
    capacities: Table<WorkCapacity>,
    regions: Table<RegionCode>,
}

/// `households` as a register file for the register named `stamp`.
pub fn encode(households: &[Household], stamp: &str) -> Result<Vec<u8>, RegisterFileError> {
    let mut t = Writers {
        categories: Table::new(),
        areas: Table::new(),
        sexes: Table::new(),
        relations: Table::new(),
        capacities: Table::new(),
        regions: Table::new(),
    };
    let mut blocks: Vec<(Vec<u8>, usize)> = Vec::new();
    for chunk in households.chunks(BLOCK) {
        let mut b = Vec::with_capacity(chunk.len() * 256);
        for h in chunk {
            encode_household(&mut b, h, &mut t)?;
        }
        blocks.push((b, chunk.len()));
    }
    let members: usize = households.iter().map(|h| h.members.len()).sum();

    let mut head = Vec::with_capacity(4096);
    head.extend_from_slice(MAGIC);
    head.extend_from_slice(&FORMAT.to_le_bytes());
    put_str(&mut head, stamp);
    put_len(&mut head, households.len());
    put_len(&mut head, members);
    t.categories.write(&mut head)?;
    t.areas.write(&mut head)?;
    t.sexes.write(&mut head)?;
    t.relations.write(&mut head)?;
    t.capacities.write(&mut head)?;
    t.regions.write(&mut head)?;
    put_len(&mut head, blocks.len());
    let mut offset = 0u64;
    for (b, n) in &blocks {
        head.extend_from_slice(&offset.to_le_bytes());
        head.extend_from_slice(&(b.len() as u64).to_le_bytes());
        put_len(&mut head, *n);
        head.extend_from_slice(&xxh64(b).to_le_bytes());
        offset += b.len() as u64;
    }
    let mut out = Vec::with_capacity(head.len() + 16 + offset as usize);
    out.extend_from_slice(&(head.len() as u64).to_le_bytes());
    out.extend_from_slice(&head);
    out.extend_from_slice(&xxh64(&head).to_le_bytes());
    for (b, _) in &blocks {
        out.extend_from_slice(b);
    }
    Ok(out)
}

fn encode_household(
    out: &mut Vec<u8>,
    h: &Household,
    t: &mut Writers,
) -> Result<(), RegisterFileError> {
    // Every field by name: a field added to the model does not compile here until it is kept.
    let Household {
        household_id,
        region_code,
        address,
        category,
        area,
        monthly_benefit,
        enrolled_on,
        members,
    } = h;
    put_str(out, household_id);
    put_len(out, t.regions.id(region_code) as usize);
    put_str(out, address);
    out.push(t.categories.small(category)?);
    out.push(t.areas.small(area)?);
    out.extend_from_slice(&monthly_benefit.fen().to_le_bytes());
    out.extend_from_slice(&enrolled_on.num_days_from_ce().to_le_bytes());
    put_len(out, members.len());
    for m in members {
        let Member {
            member_id,
            id_number,
            name,
            sex,
            birth_date,
            relation,
            work_capacity,
            disability_grade,
            employed,
            monthly_income,
        } = m;
        put_str(out, member_id);
        out.extend_from_slice(id_number.expose().as_bytes());
        put_str(out, name);
        out.push(t.sexes.small(sex)?);
        out.extend_from_slice(&birth_date.num_days_from_ce().to_le_bytes());
        out.push(t.relations.small(relation)?);
        out.push(t.capacities.small(work_capacity)?);
        match disability_grade {
            None => out.extend_from_slice(&[0, 0]),
            Some(g) => out.extend_from_slice(&[1, *g]),
        }
        out.push(u8::from(*employed));
        out.extend_from_slice(&monthly_income.fen().to_le_bytes());
    }
    Ok(())
}

/// The households of a register file made for the register named `stamp`, decoded on up to
/// `threads` threads; any difference (another register, another format, a damaged byte) is an
/// error and nothing of the file is used.
pub fn decode(
    bytes: &[u8],
    stamp: &str,
    threads: usize,
) -> Result<Vec<Household>, RegisterFileError> {
    let mut r = Reader { b: bytes, pos: 0 };
    let head_len = usize::try_from(r.u64().map_err(|_| RegisterFileError::NotAFile)?)
        .map_err(|_| RegisterFileError::NotAFile)?;
    let head = r.take(head_len).map_err(|_| RegisterFileError::NotAFile)?;
    if head.len() < MAGIC.len() + 4 || &head[..MAGIC.len()] != MAGIC {
        return Err(RegisterFileError::NotAFile);
    }
    let format = u32::from_le_bytes([head[8], head[9], head[10], head[11]]);
    if format != FORMAT {
        return Err(RegisterFileError::Format(format));
    }
    if r.u64()? != xxh64(head) {
        return Err(damaged("its header"));
    }
    let payload = &bytes[r.pos..];

    let mut h = Reader {
        b: head,
        pos: MAGIC.len() + 4,
    };
    if h.str()? != stamp {
        return Err(RegisterFileError::Stale);
    }
    let households = h.len()?;
    let members = h.len()?;
    let tables = Tables {
        categories: read_table(&mut h)?,
        areas: read_table(&mut h)?,
        sexes: read_table(&mut h)?,
        relations: read_table(&mut h)?,
        capacities: read_table(&mut h)?,
        regions: read_table(&mut h)?,
    };
    let n_blocks = h.len()?;
    let mut blocks = Vec::with_capacity(n_blocks.min(1 << 16));
    let mut expected = 0u64;
    let mut total = 0usize;
    for _ in 0..n_blocks {
        let offset = h.u64()?;
        let len = h.u64()?;
        let n = h.len()?;
        let hash = h.u64()?;
        if offset != expected {
            return Err(damaged("its table of blocks"));
        }
        expected = offset
            .checked_add(len)
            .ok_or_else(|| damaged("its table of blocks"))?;
        let start = usize::try_from(offset).map_err(|_| damaged("its table of blocks"))?;
        let end = usize::try_from(expected).map_err(|_| damaged("its table of blocks"))?;
        let block = payload
            .get(start..end)
            .ok_or_else(|| damaged("its length (cut short)"))?;
        total += n;
        blocks.push((block, n, hash));
    }
    if h.pos != head.len() || expected as usize != payload.len() || total != households {
        return Err(damaged("its table of blocks"));
    }

    let next = AtomicUsize::new(0);
    let decoded: Vec<Mutex<Option<Decoded>>> = blocks.iter().map(|_| Mutex::new(None)).collect();
    let work = || loop {
        let i = next.fetch_add(1, Ordering::Relaxed);
        let Some(&(block, n, hash)) = blocks.get(i) else {
            return;
        };
        let out = if xxh64(block) == hash {
            decode_block(block, n, &tables)
        } else {
            Err(damaged("a block's hash"))
        };
        if let Ok(mut slot) = decoded[i].lock() {
            *slot = Some(out);
        }
    };
    let threads = threads.clamp(1, 64).min(blocks.len().max(1));
    std::thread::scope(|s| {
        for _ in 1..threads {
            s.spawn(work);
        }
        work();
    });
    let mut out = Vec::with_capacity(households);
    for slot in decoded {
        let part = slot
            .into_inner()
            .ok()
            .flatten()
            .ok_or_else(|| damaged("a block left undecoded"))??;
        out.extend(part);
    }
    let decoded_members: usize = out.iter().map(|h| h.members.len()).sum();
    if decoded_members != members {
        return Err(damaged("its member count"));
    }
    Ok(out)
}

/// A block's households, or why it did not decode.
type Decoded = Result<Vec<Household>, RegisterFileError>;

fn decode_block(block: &[u8], n: usize, t: &Tables) -> Result<Vec<Household>, RegisterFileError> {
    fn pick<T: Clone>(table: &[T], i: usize) -> Result<T, RegisterFileError> {
        table
            .get(i)
            .cloned()
            .ok_or_else(|| damaged("a table index"))
    }
    let mut r = Reader { b: block, pos: 0 };
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let household_id = r.string()?;
        let region_code = pick(&t.regions, r.len()?)?;
        let address = r.string()?;
        let category = pick(&t.categories, usize::from(r.u8()?))?;
        let area = pick(&t.areas, usize::from(r.u8()?))?;
        let monthly_benefit = Money::from_fen(r.i64()?);
        let enrolled_on = r.date()?;
        let count = r.len()?;
        let mut members = Vec::with_capacity(count.min(1024));
        for _ in 0..count {
            let member_id = r.string()?;
            let id_number = IdNumber::parse18(r.take(18)?).map_err(|_| damaged("an ID number"))?;
            let name = r.string()?;
            let sex = pick(&t.sexes, usize::from(r.u8()?))?;
            let birth_date = r.date()?;
            let relation = pick(&t.relations, usize::from(r.u8()?))?;
            let work_capacity = pick(&t.capacities, usize::from(r.u8()?))?;
            let disability_grade = match (r.u8()?, r.u8()?) {
                (0, 0) => None,
                (1, g) => Some(g),
                _ => return Err(damaged("a disability grade")),
            };
            let employed = match r.u8()? {
                0 => false,
                1 => true,
                _ => return Err(damaged("an employment flag")),
            };
            let monthly_income = Money::from_fen(r.i64()?);
            members.push(Member {
                member_id,
                id_number,
                name,
                sex,
                birth_date,
                relation,
                work_capacity,
                disability_grade,
                employed,
                monthly_income,
            });
        }
        out.push(Household {
            household_id,
            region_code,
            address,
            category,
            area,
            monthly_benefit,
            enrolled_on,
            members,
        });
    }
    if r.pos != block.len() {
        return Err(damaged("a block's length"));
    }
    Ok(out)
}

/// A length or index: LEB128.
fn put_len(out: &mut Vec<u8>, mut n: usize) {
    loop {
        let b = (n & 0x7f) as u8;
        n >>= 7;
        if n == 0 {
            out.push(b);
            return;
        }
        out.push(b | 0x80);
    }
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    put_len(out, s.len());
    out.extend_from_slice(s.as_bytes());
}

struct Reader<'a> {
    b: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], RegisterFileError> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&e| e <= self.b.len())
            .ok_or_else(|| damaged("its length (cut short)"))?;
        let s = &self.b[self.pos..end];
        self.pos = end;
        Ok(s)
    }

    fn u8(&mut self) -> Result<u8, RegisterFileError> {
        Ok(self.take(1)?[0])
    }

    fn u64(&mut self) -> Result<u64, RegisterFileError> {
        let mut a = [0u8; 8];
        a.copy_from_slice(self.take(8)?);
        Ok(u64::from_le_bytes(a))
    }

    fn i64(&mut self) -> Result<i64, RegisterFileError> {
        Ok(self.u64()? as i64)
    }

    fn date(&mut self) -> Result<NaiveDate, RegisterFileError> {
        let mut a = [0u8; 4];
        a.copy_from_slice(self.take(4)?);
        NaiveDate::from_num_days_from_ce_opt(i32::from_le_bytes(a)).ok_or_else(|| damaged("a date"))
    }

    fn len(&mut self) -> Result<usize, RegisterFileError> {
        let mut n: u64 = 0;
        for shift in (0..64).step_by(7) {
            let b = self.u8()?;
            n |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return usize::try_from(n).map_err(|_| damaged("a length"));
            }
        }
        Err(damaged("a length"))
    }

    fn str(&mut self) -> Result<&'a str, RegisterFileError> {
        let n = self.len()?;
        std::str::from_utf8(self.take(n)?).map_err(|_| damaged("a text (not UTF-8)"))
    }

    fn string(&mut self) -> Result<String, RegisterFileError> {
        self.str().map(str::to_owned)
    }
}

const P1: u64 = 0x9E37_79B1_85EB_CA87;
const P2: u64 = 0xC2B2_AE3D_27D4_EB4F;
const P3: u64 = 0x1656_67B1_9E37_79F9;
const P4: u64 = 0x85EB_CA77_C2B2_AE63;
const P5: u64 = 0x27D4_EB2F_1656_67C5;

fn round(acc: u64, input: u64) -> u64 {
    acc.wrapping_add(input.wrapping_mul(P2))
        .rotate_left(31)
        .wrapping_mul(P1)
}

fn merge(acc: u64, v: u64) -> u64 {
    (acc ^ round(0, v)).wrapping_mul(P1).wrapping_add(P4)
}

fn word(b: &[u8]) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[..8]);
    u64::from_le_bytes(a)
}

/// A 64-bit hash of the XXH64 construction (seed 0): four lanes over 32-byte stripes, fast
/// enough to check a file of a hundred megabytes in a few tens of milliseconds.
fn xxh64(input: &[u8]) -> u64 {
    let len = input.len();
    let mut rest = input;
    let mut h = if len >= 32 {
        let mut v = [P1.wrapping_add(P2), P2, 0, 0u64.wrapping_sub(P1)];
        let mut stripes = rest.chunks_exact(32);
        for s in &mut stripes {
            v[0] = round(v[0], word(&s[0..]));
            v[1] = round(v[1], word(&s[8..]));
            v[2] = round(v[2], word(&s[16..]));
            v[3] = round(v[3], word(&s[24..]));
        }
        rest = stripes.remainder();
        let mut h = v[0]
            .rotate_left(1)
            .wrapping_add(v[1].rotate_left(7))
            .wrapping_add(v[2].rotate_left(12))
            .wrapping_add(v[3].rotate_left(18));
        for x in v {
            h = merge(h, x);
        }
        h
    } else {
        P5
    };
    h = h.wrapping_add(len as u64);
    let mut words = rest.chunks_exact(8);
    for w in &mut words {
        h ^= round(0, word(w));
        h = h.rotate_left(27).wrapping_mul(P1).wrapping_add(P4);
    }
    rest = words.remainder();
    if rest.len() >= 4 {
        let k = u64::from(u32::from_le_bytes([rest[0], rest[1], rest[2], rest[3]]));
        h ^= k.wrapping_mul(P1);
        h = h.rotate_left(23).wrapping_mul(P2).wrapping_add(P3);
        rest = &rest[4..];
    }
    for &b in rest {
        h ^= u64::from(b).wrapping_mul(P5);
        h = h.rotate_left(11).wrapping_mul(P1);
    }
    h ^= h >> 33;
    h = h.wrapping_mul(P2);
    h ^= h >> 29;
    h = h.wrapping_mul(P3);
    h ^ (h >> 32)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn register() -> Vec<Household> {
        let cfg = doudi_synth::GenConfig {
            households: 20_000,
            ..doudi_synth::GenConfig::default()
        };
        doudi_synth::generate_register(&cfg)
    }

    #[test]
    fn a_register_reads_back_exactly_on_any_number_of_threads() {
        let reg = register();
        assert!(reg.len() > 2 * BLOCK, "several blocks");
        assert!(reg
            .iter()
            .flat_map(|h| &h.members)
            .any(|m| m.disability_grade.is_some()));
        let bytes = encode(&reg, "v3|import 7|2026-12-07T01:00:00Z").unwrap();
        for threads in [1, 2, 5] {
            let back = decode(&bytes, "v3|import 7|2026-12-07T01:00:00Z", threads).unwrap();
            assert_eq!(back, reg, "{threads} thread(s)");
        }
        let empty = encode(&[], "v1").unwrap();
        assert_eq!(decode(&empty, "v1", 2).unwrap(), Vec::<Household>::new());
    }

    #[test]
    fn another_register_another_format_a_cut_or_a_flipped_byte_is_refused() {
        let reg: Vec<Household> = register().into_iter().take(3 * BLOCK / 2).collect();
        let bytes = encode(&reg, "v3").unwrap();
        assert!(matches!(
            decode(&bytes, "v4", 2),
            Err(RegisterFileError::Stale)
        ));
        assert!(matches!(
            decode(b"{\"household_id\": 1}", "v3", 2),
            Err(RegisterFileError::NotAFile)
        ));
        let mut other = bytes.clone();
        other[8 + 8] = 9; // the format, just past the header length and the magic
        assert!(matches!(
            decode(&other, "v3", 2),
            Err(RegisterFileError::Format(9))
        ));
        for cut in [bytes.len() - 1, bytes.len() / 2, 20] {
            assert!(decode(&bytes[..cut], "v3", 2).is_err(), "cut at {cut}");
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(decode(&longer, "v3", 2).is_err());
        // A byte changed anywhere (header, either block) is caught by a hash.
        for at in [30, bytes.len() / 3, bytes.len() - 5] {
            let mut flipped = bytes.clone();
            flipped[at] ^= 0x10;
            assert!(
                matches!(
                    decode(&flipped, "v3", 2),
                    Err(RegisterFileError::Damaged(_))
                ),
                "byte {at}"
            );
        }
    }

    #[test]
    fn the_hash_depends_on_every_byte_and_the_length() {
        let data: Vec<u8> = (0..100u32).map(|i| (i * 7) as u8).collect();
        let mut seen = std::collections::HashSet::new();
        for n in 0..data.len() {
            assert!(seen.insert(xxh64(&data[..n])), "prefix {n}");
        }
        let mut d2 = data.clone();
        d2[63] ^= 1;
        assert_ne!(xxh64(&data), xxh64(&d2));
    }
}
