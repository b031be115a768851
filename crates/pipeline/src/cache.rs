//! What a worker keeps in memory besides the identity index, each bounded by configuration
//! ([`MemoryCaps`]): the register's household records ([`HouseholdCache`]) and the committed
//! timelines of households seen lately ([`TimelineCache`]). Both only save reads: a household or
//! timeline not held is read from the store, as of the same register version or timeline version,
//! so what is decided does not depend on the caps (a cap changes speed and memory, not results).
//!
//! Both evict the entries used longest ago (a use stamp per entry; when over the cap, the oldest
//! tenth is dropped at once, so eviction costs a constant per insertion).

use std::collections::HashMap;
use std::sync::Arc;

use doudi_model::Household;

use crate::apply::Timeline;

/// How much a worker keeps in memory (the `[memory]` configuration).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MemoryCaps {
    /// Register households whose records are held (the identity index covers every member
    /// whatever this is); past it, the households used longest ago are read again from the store
    /// when a record of theirs comes.
    pub households: usize,
    /// Timeline facts held for the households seen lately; past it, those of the households used
    /// longest ago are dropped (read again from the store when they are next needed). The default
    /// holds a year of a 450,000-household register (1.4M facts): past the cap, a batch reads
    /// back (from random pages, then decodes) most of the timelines it touches, a cost an event
    /// that grows with the register (issue 24).
    pub timeline_facts: usize,
}

impl Default for MemoryCaps {
    fn default() -> Self {
        MemoryCaps {
            households: 1_000_000,
            timeline_facts: 2_000_000,
        }
    }
}

/// Keep the `keep` entries used last (stamps are distinct).
fn evict_oldest<V>(map: &mut HashMap<Box<str>, V>, keep: usize, stamp: impl Fn(&V) -> u64) {
    if map.len() <= keep {
        return;
    }
    let mut stamps: Vec<u64> = map.values().map(&stamp).collect();
    let remove = map.len() - keep;
    let (_, cut, _) = stamps.select_nth_unstable(remove - 1);
    let cut = *cut;
    map.retain(|_, v| stamp(v) > cut);
}

/// The size to evict down to when `cap` is passed: nine tenths of it.
fn low_water(cap: usize) -> usize {
    cap - cap / 10
}

/// A held household: its record (`None`: removed) from register version `since` on, until the
/// engine applies a change of it; and what it was before that change, for the snapshots of the
/// version just before (kept until the next version).
#[derive(Debug)]
struct HeldHousehold {
    record: Option<Arc<Household>>,
    since: i64,
    used: u64,
    before: Option<Before>,
}

/// A household's record (`None`: not in the register) from version `since` on.
#[derive(Debug)]
struct Before {
    record: Option<Arc<Household>>,
    since: i64,
}

/// The register's household records a worker holds: every household while they fit in the cap
/// (then a household not held is not in the register), else those used last (then one not held
/// is read from the store as of the reader's register version). Shared by every register
/// snapshot of an engine; each entry says from which register version on it holds.
#[derive(Debug)]
pub(crate) struct HouseholdCache {
    cap: usize,
    /// The latest register version applied: records read from the store are kept only when read
    /// as of it.
    version: i64,
    /// Holds every household of the register at `version`.
    complete: bool,
    entries: HashMap<Box<str>, HeldHousehold>,
    /// Households changed at `version` (their entries keep what they were before).
    changed: Vec<Box<str>>,
    clock: u64,
}

/// What the cache says of a household for a reader at one register version.
#[derive(Debug)]
pub(crate) enum Held {
    Record(Arc<Household>),
    /// Not in the register at that version.
    Absent,
    /// Not known here: read it from the store.
    Unknown,
}

impl Held {
    fn of(record: &Option<Arc<Household>>) -> Held {
        match record {
            Some(h) => Held::Record(h.clone()),
            None => Held::Absent,
        }
    }
}

impl HouseholdCache {
    /// A cache of at most `cap` households, holding `households` (those past the cap are not
    /// held) as of register version 0; `complete`: these are all the register's households.
    pub(crate) fn new(cap: usize, households: Vec<Household>, complete: bool) -> Self {
        let mut c = HouseholdCache {
            cap: cap.max(1),
            version: 0,
            complete,
            entries: HashMap::with_capacity(households.len().min(cap)),
            changed: Vec::new(),
            clock: 0,
        };
        for h in households {
            c.insert(h.household_id.as_str().into(), Some(Arc::new(h)), 0, None);
        }
        c
    }

    pub(crate) fn cap(&self) -> usize {
        self.cap
    }

    /// Households held.
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    pub(crate) fn set_cap(&mut self, cap: usize) {
        self.cap = cap.max(1);
        self.trim();
    }

    /// The engine now holds register version `version` (its changes are applied with
    /// [`HouseholdCache::apply`] after this): what the households changed at the version before
    /// were until then is no longer kept (a snapshot still older reads it from the store).
    pub(crate) fn set_version(&mut self, version: i64) {
        if version <= self.version {
            return;
        }
        self.version = version;
        for id in std::mem::take(&mut self.changed) {
            let gone = match self.entries.get_mut(&id) {
                Some(e) => {
                    e.before = None;
                    e.record.is_none()
                }
                None => false,
            };
            if gone {
                self.entries.remove(&id);
            }
        }
    }

    pub(crate) fn get(&mut self, id: &str, version: i64) -> Held {
        self.clock += 1;
        let clock = self.clock;
        match self.entries.get_mut(id) {
            Some(e) if e.since <= version => {
                e.used = clock;
                Held::of(&e.record)
            }
            Some(e) => match &e.before {
                Some(b) if b.since <= version => Held::of(&b.record),
                _ => Held::Unknown,
            },
            None if self.complete && version == self.version => Held::Absent,
            None => Held::Unknown,
        }
    }

    /// Keep records read from the store as of register version `version` (only when that is the
    /// version the engine holds: a change applied meanwhile may be newer than they are).
    pub(crate) fn keep(&mut self, records: &[Arc<Household>], version: i64) {
        if version != self.version {
            return;
        }
        for r in records {
            if !self.entries.contains_key(r.household_id.as_str()) {
                self.insert(
                    r.household_id.as_str().into(),
                    Some(r.clone()),
                    version,
                    None,
                );
            }
        }
    }

    /// A change of the register applied at the current version: the household's new record, or
    /// its removal.
    pub(crate) fn apply(&mut self, id: &str, record: Option<Household>) {
        let before = match self.entries.remove(id) {
            Some(e) => Some(Before {
                record: e.record,
                since: e.since,
            }),
            // Not held: absent before if every household is held.
            None if self.complete => Some(Before {
                record: None,
                since: i64::MIN,
            }),
            None => None,
        };
        let version = self.version;
        self.changed.push(id.into());
        self.insert(id.into(), record.map(Arc::new), version, before);
    }

    fn insert(
        &mut self,
        key: Box<str>,
        record: Option<Arc<Household>>,
        since: i64,
        before: Option<Before>,
    ) {
        self.clock += 1;
        self.entries.insert(
            key,
            HeldHousehold {
                record,
                since,
                used: self.clock,
                before,
            },
        );
        self.trim();
    }

    fn trim(&mut self) {
        if self.entries.len() > self.cap {
            self.complete = false;
            evict_oldest(&mut self.entries, low_water(self.cap), |e| e.used);
        }
    }
}

/// The committed timelines of households seen lately (in canonical order, with their stored
/// assessments' levels and scores), so that a batch need not read (and parse) them back from the
/// database. It is only trusted while the store's timeline version is the one it was filled at:
/// anything else that appends to the timeline or re-derives assessments (another process) empties
/// it. At most `cap` facts are held: past it, the timelines used longest ago are dropped.
#[derive(Debug)]
pub(crate) struct TimelineCache {
    cap: usize,
    version: i64,
    timelines: HashMap<Box<str>, (Timeline, u64)>,
    facts: usize,
    clock: u64,
    /// Households asked for and found here, and not found (read from the store), since the start.
    hits: u64,
    misses: u64,
}

/// What the timeline cache held and answered (for the log at the end of a run).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TimelineCacheStats {
    /// Households whose timeline a batch found in memory.
    pub hits: u64,
    /// Households whose timeline a batch read from the store (those seen for the first time
    /// included: their timeline is empty there).
    pub misses: u64,
    /// Facts held now, and the cap.
    pub facts: usize,
    pub cap: usize,
}

impl Default for TimelineCache {
    fn default() -> Self {
        TimelineCache::new(MemoryCaps::default().timeline_facts)
    }
}

impl TimelineCache {
    pub(crate) fn new(cap: usize) -> Self {
        TimelineCache {
            cap,
            version: 0,
            timelines: HashMap::new(),
            facts: 0,
            clock: 0,
            hits: 0,
            misses: 0,
        }
    }

    pub(crate) fn stats(&self) -> TimelineCacheStats {
        TimelineCacheStats {
            hits: self.hits,
            misses: self.misses,
            facts: self.facts,
            cap: self.cap,
        }
    }

    pub(crate) fn set_cap(&mut self, cap: usize) {
        self.cap = cap;
        self.trim();
    }

    pub(crate) fn clear(&mut self) {
        self.timelines.clear();
        self.facts = 0;
    }

    /// Take these households' timelines out of the cache (as of `version`, else empty it first);
    /// returns the households it did not hold.
    pub(crate) fn take(
        &mut self,
        version: i64,
        households: &[String],
        into: &mut HashMap<String, Timeline>,
    ) -> Vec<String> {
        if self.version != version {
            self.clear();
            self.version = version;
        }
        let mut missing = Vec::new();
        for hh in households {
            match self.timelines.remove(hh.as_str()) {
                Some((t, _)) => {
                    self.facts -= t.len();
                    into.insert(hh.clone(), t);
                }
                None => missing.push(hh.clone()),
            }
        }
        self.misses += missing.len() as u64;
        self.hits += (households.len() - missing.len()) as u64;
        missing
    }

    /// Put back timelines committed at `after` (read as of `version`).
    pub(crate) fn put(&mut self, version: i64, after: i64, timelines: HashMap<String, Timeline>) {
        if self.version != version {
            self.clear();
            return;
        }
        self.version = after;
        let mut hh: Vec<(String, Timeline)> = timelines.into_iter().collect();
        // Stamped in household order: which of one batch's timelines go first does not depend
        // on the map's order.
        hh.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        for (h, t) in hh {
            self.clock += 1;
            self.facts += t.len();
            if let Some((old, _)) = self.timelines.insert(h.into(), (t, self.clock)) {
                self.facts -= old.len();
            }
        }
        self.trim();
    }

    fn trim(&mut self) {
        if self.facts <= self.cap {
            return;
        }
        // Drop timelines, oldest first, until the facts held are under nine tenths of the cap.
        let mut by_age: Vec<(u64, usize)> = self
            .timelines
            .values()
            .map(|(t, u)| (*u, t.len()))
            .collect();
        by_age.sort_unstable();
        let target = low_water(self.cap);
        let mut facts = self.facts;
        let mut cut = 0;
        for (used, len) in by_age {
            if facts <= target {
                break;
            }
            facts -= len;
            cut = used;
        }
        let mut removed = 0;
        self.timelines.retain(|_, (t, u)| {
            let go = *u <= cut;
            if go {
                removed += t.len();
            }
            !go
        });
        self.facts -= removed;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn household(id: &str) -> Household {
        serde_json::from_value(serde_json::json!({
            "household_id": id, "region_code": "341502001001", "address": "x", "category": "dibao",
            "area": "rural", "enrolled_on": "2023-05-01",
            "members": [{"member_id": format!("{id}-1"), "id_number": "11010519491231002X", "name": "王秀英", "sex": "female",
                "birth_date": "1949-12-31", "relation": "head", "work_capacity": "none"}]
        }))
        .unwrap()
    }

    fn is_record(h: &Held) -> bool {
        matches!(h, Held::Record(_))
    }

    #[test]
    fn a_full_household_cache_knows_who_is_absent_and_a_trimmed_one_does_not() {
        let mut c = HouseholdCache::new(10, vec![household("H1"), household("H2")], true);
        assert!(is_record(&c.get("H1", 0)));
        assert!(matches!(c.get("H9", 0), Held::Absent));
        let mut small = HouseholdCache::new(10, vec![], true);
        for i in 0..11 {
            small.keep(&[Arc::new(household(&format!("H{i:02}")))], 0);
        }
        assert_eq!(small.len(), 9, "trimmed to nine tenths of the cap");
        assert!(matches!(small.get("H99", 0), Held::Unknown));
        // The oldest went first.
        assert!(matches!(small.get("H00", 0), Held::Unknown));
        assert!(is_record(&small.get("H10", 0)));
    }

    #[test]
    fn a_changed_household_is_what_it_was_for_the_version_before_then_unknown() {
        let mut c = HouseholdCache::new(10, vec![household("H1"), household("H2")], true);
        c.set_version(3);
        c.apply("H1", Some(household("H1")));
        c.apply("H2", None);
        c.apply("H3", Some(household("H3")));
        // A snapshot of the version before sees the records as they were.
        assert!(is_record(&c.get("H1", 2)));
        assert!(is_record(&c.get("H2", 2)));
        assert!(matches!(c.get("H3", 2), Held::Absent));
        assert!(is_record(&c.get("H1", 3)));
        assert!(matches!(c.get("H2", 3), Held::Absent));
        // Records read as of an older version than the engine's are not kept.
        c.keep(&[Arc::new(household("H2"))], 2);
        assert!(matches!(c.get("H2", 3), Held::Absent));
        // A version later, what they were is no longer kept: read from the store.
        c.set_version(4);
        assert!(matches!(c.get("H1", 2), Held::Unknown));
        assert!(matches!(c.get("H3", 2), Held::Unknown));
        assert!(is_record(&c.get("H1", 4)));
        assert!(matches!(c.get("H2", 4), Held::Absent));
    }

    #[test]
    fn the_timeline_cache_drops_the_timelines_used_longest_ago_past_its_cap() {
        let mut c = TimelineCache::new(10);
        let put = |c: &mut TimelineCache, v: i64, ids: &[&str]| {
            let mut into = HashMap::new();
            let ids: Vec<String> = ids.iter().map(|s| s.to_string()).collect();
            c.take(v, &ids, &mut into);
            for id in &ids {
                into.entry(id.clone())
                    .or_insert_with(|| Timeline::with_len_for_tests(4));
            }
            c.put(v, v + 1, into);
        };
        put(&mut c, 0, &["A", "B"]);
        put(&mut c, 1, &["C"]);
        assert_eq!(c.facts, 8, "A (4 facts) went: 12 is over the cap");
        let mut into = HashMap::new();
        let missing = c.take(2, &["A".into(), "B".into(), "C".into()], &mut into);
        assert_eq!(missing, vec!["A".to_string()]);
        // Asked 6 times in all: A, B and C the first time, A once more after it went.
        let stats = c.stats();
        assert_eq!((stats.hits, stats.misses), (2, 4));
    }
}
