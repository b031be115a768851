//! Apply a batch: dedupe, link, append facts, assess, decide warnings — one transaction, with the
//! positions the batch came from.

use std::collections::btree_map::Entry;
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{Duration, Instant};

use chrono::{DateTime, FixedOffset, Utc};
use doudi_linkage::{Linker, Outcome, RegisterIndex};
use doudi_model::{Fact, Household, ParseLimits};
use doudi_risk::{assess, derive_state, Level, RuleSet};
use doudi_store::{
    transition_key, AssessmentRow, BatchTx, CurrentWarningRow, DeadLetterRow, EpisodeMark,
    EventRow, FactRow, Json, LinkRow, NewWarning, PositionRow, Store, TimelineEntry, WarningChange,
    WarningUpdate,
};
use doudi_warnings::fold::{fold, DeadlinePolicy, Episode, Step, Transition};
use doudi_warnings::routing::Directory;

use crate::cache::TimelineCache;
use crate::held::Register;
use crate::ingest::{link_event, sniff_event_id, Ingested};
use crate::versions::{check_current, RulesIndex, Versions};
use crate::PipelineError;

/// What the pipeline knows while it runs: the rule sets and identity models activated (see
/// [`crate::versions`]) and the register (held in memory, and followed while running: see
/// [`crate::register`]).
pub struct Engine {
    /// The rule set records are assessed with before any rule set is activated (the configured
    /// one); after, each record's is the one activated at its position (see [`Engine::versions`]).
    pub rules: RuleSet,
    pub limits: ParseLimits,
    /// The register's households and identity index, as one snapshot replaced on each register
    /// change; a batch works on the snapshot it took.
    register: RwLock<Arc<Register>>,
    /// Whether the index covers the register (false for [`Engine::assess_only`]).
    indexed: bool,
    /// Who is responsible for which region (empty: warnings stay unassigned).
    pub directory: Directory,
    /// How deadlines follow from event and receipt times (the `[warnings]` configuration).
    pub deadlines: DeadlinePolicy,
    cache: Mutex<TimelineCache>,
    /// Every activated rule set and model, one snapshot replaced when an activation is seen.
    pub(crate) versions: RwLock<Arc<Versions>>,
}

/// A household's facts in canonical order: `(occurred_at, source, event_id)` (then `seq`), with
/// what is known of each (its `seq`, receipt time, stored assessment). Two vectors, so that a
/// prefix of the facts is a slice `derive_state` takes as it is.
#[derive(Clone, Debug, Default)]
pub(crate) struct Timeline {
    facts: Vec<Fact>,
    meta: Vec<Meta>,
}

/// What the pipeline knows of a timeline fact besides the fact.
#[derive(Clone, Copy, Debug)]
struct Meta {
    seq: i64,
    received_at: DateTime<Utc>,
    /// The stored assessment's level and score (`None`: none stored yet).
    assessed: Option<(Level, i64)>,
    /// The rule set its record is decided with (by the record's stream position).
    rules: RulesIndex,
}

/// The canonical key of a fact: the order facts happened in, whatever order they arrived in.
type Key<'a> = (DateTime<FixedOffset>, &'static str, &'a str, i64);

fn key<'a>(f: &'a Fact, m: &Meta) -> Key<'a> {
    (f.occurred_at, f.source.code(), f.event_id.as_str(), m.seq)
}

impl Timeline {
    /// A timeline from stored entries (any order), each fact with the rule set of its record's
    /// position in `versions`.
    pub(crate) fn from_entries(entries: Vec<TimelineEntry>, versions: &Versions) -> Timeline {
        let mut t = Timeline::default();
        t.merge(entries.into_iter().map(|e| {
            let rules = versions.rules_index(&e.stream, e.line);
            (
                e.fact,
                Meta {
                    seq: e.event_seq,
                    received_at: e.received_at,
                    assessed: e.assessed,
                    rules,
                },
            )
        }));
        t
    }

    pub(crate) fn len(&self) -> usize {
        self.facts.len()
    }

    /// A timeline of `n` facts (for the cache's tests).
    #[cfg(test)]
    pub(crate) fn with_len_for_tests(n: usize) -> Timeline {
        let fact: Fact = serde_json::from_value(serde_json::json!({
            "event_id": "e", "source": "employment", "household_id": "H", "member_id": "M",
            "occurred_at": "2026-01-01T00:00:00+08:00",
            "payload": {"kind": "job_lost", "data": {"last_day": "2025-12-31"}}
        }))
        .expect("a fact");
        let meta = Meta {
            seq: 1,
            received_at: DateTime::<Utc>::default(),
            assessed: None,
            rules: RulesIndex::default(),
        };
        Timeline {
            facts: vec![fact; n],
            meta: vec![meta; n],
        }
    }

    /// Where the fact of event `seq` stands (`len()` if it is not here).
    pub(crate) fn position_of(&self, seq: i64) -> usize {
        self.meta
            .iter()
            .position(|m| m.seq == seq)
            .unwrap_or(self.len())
    }

    /// The level and score stored (or to be stored) for the fact of event `seq`.
    pub(crate) fn assessed_of(&self, seq: i64) -> Option<(Level, i64)> {
        self.meta
            .iter()
            .find(|m| m.seq == seq)
            .and_then(|m| m.assessed)
    }

    /// Add facts (new ones, or read back) in canonical order; returns the index of the earliest
    /// added one in the merged order (`len()` if none). Facts that follow every fact held (the
    /// common case) are appended without sorting.
    fn merge(&mut self, added: impl IntoIterator<Item = (Fact, Meta)>) -> usize {
        let mut added: Vec<(Fact, Meta)> = added.into_iter().collect();
        if added.is_empty() {
            return self.len();
        }
        added.sort_by(|a, b| key(&a.0, &a.1).cmp(&key(&b.0, &b.1)));
        let first = key(&added[0].0, &added[0].1);
        let in_order = match (self.facts.last(), self.meta.last()) {
            (Some(f), Some(m)) => key(f, m) < first,
            _ => true,
        };
        if in_order {
            let at = self.len();
            for (f, m) in added {
                self.facts.push(f);
                self.meta.push(m);
            }
            return at;
        }
        let (seq0, occ0, src0, id0) = (first.3, first.0, first.1, first.2.to_string());
        let mut all: Vec<(Fact, Meta)> = std::mem::take(&mut self.facts)
            .into_iter()
            .zip(std::mem::take(&mut self.meta))
            .chain(added)
            .collect();
        all.sort_by(|a, b| key(&a.0, &a.1).cmp(&key(&b.0, &b.1)));
        let at = all.partition_point(|(f, m)| key(f, m) < (occ0, src0, id0.as_str(), seq0));
        for (f, m) in all {
            self.facts.push(f);
            self.meta.push(m);
        }
        at
    }
}

impl Engine {
    pub fn new(rules: RuleSet, limits: ParseLimits, register: Vec<Household>) -> Self {
        // The prior model until a trained one is stored (see `doudi_linkage::train`).
        let index = Linker::with_prior(RegisterIndex::build(&register));
        Engine::with_index(rules, limits, register, index, true)
    }

    /// An engine that assesses and warns but links nothing (its identity index is empty): for
    /// applying facts already linked, such as a person's review decision, without building the
    /// register's index.
    pub fn assess_only(rules: RuleSet, limits: ParseLimits, register: Vec<Household>) -> Self {
        let index = Linker::with_prior(RegisterIndex::build(&[]));
        Engine::with_index(rules, limits, register, index, false)
    }

    fn with_index(
        rules: RuleSet,
        limits: ParseLimits,
        register: Vec<Household>,
        index: Linker,
        indexed: bool,
    ) -> Self {
        Engine::over(rules, limits, Register::new(register, index), indexed)
    }

    /// An engine over a register already made: its identity index over every member, and the
    /// household records it holds (see [`Register::with_households`]).
    pub fn over_register(rules: RuleSet, limits: ParseLimits, register: Register) -> Self {
        Engine::over(rules, limits, register, true)
    }

    fn over(rules: RuleSet, limits: ParseLimits, register: Register, indexed: bool) -> Self {
        Engine {
            versions: RwLock::new(Arc::new(Versions::new(rules.clone()))),
            rules,
            limits,
            register: RwLock::new(Arc::new(register)),
            indexed,
            directory: Directory::default(),
            deadlines: DeadlinePolicy::default(),
            cache: Mutex::new(TimelineCache::default()),
        }
    }

    /// Link with this model and these thresholds (instead of the prior model).
    pub fn with_model(
        self,
        model: doudi_linkage::Model,
        thresholds: doudi_linkage::Thresholds,
    ) -> Self {
        {
            let mut slot = self
                .register
                .write()
                .unwrap_or_else(PoisonError::into_inner);
            Arc::make_mut(&mut *slot).map_linker(|l| l.with_model(model, thresholds));
        }
        self
    }

    /// Link with this model from now on (the thresholds kept): the latest activated model.
    pub(crate) fn set_model(&self, model: doudi_linkage::Model) {
        let mut slot = self
            .register
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        Arc::make_mut(&mut *slot).map_linker(|l| {
            let thresholds = l.thresholds().clone();
            l.with_model(model, thresholds)
        });
    }

    /// The identity decision thresholds.
    pub fn thresholds(&self) -> doudi_linkage::Thresholds {
        self.register().linker().thresholds().clone()
    }

    /// Label the register the engine was made with as the store's version `version` (read before
    /// the register was loaded): the changes after it are what [`crate::refresh_register`] applies.
    pub fn at_register_version(self, version: i64) -> Self {
        {
            let mut slot = self
                .register
                .write()
                .unwrap_or_else(PoisonError::into_inner);
            let register = Arc::make_mut(&mut *slot);
            register.begin_version(version);
            register.linker_mut().set_register_version(version);
        }
        self
    }

    /// Hold at most this much in memory (household records, timeline facts): see
    /// [`crate::MemoryCaps`].
    pub fn with_memory(self, caps: crate::MemoryCaps) -> Self {
        self.register().set_household_cap(caps.households);
        self.cache
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .set_cap(caps.timeline_facts);
        self
    }

    /// How the timeline cache answered so far, and what it holds.
    pub fn timeline_cache_stats(&self) -> crate::TimelineCacheStats {
        self.cache
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .stats()
    }

    /// The register as it stands: households and identity index, one consistent snapshot.
    pub fn register(&self) -> Arc<Register> {
        self.register
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Change the register to version `version` with `change` (given the register, copied if a
    /// batch still holds it, and whether the index is to follow). Returns false, changing nothing,
    /// when the engine already holds `version` or a later one.
    pub(crate) fn update_register(
        &self,
        version: i64,
        change: impl FnOnce(&mut Register, bool),
    ) -> bool {
        let mut slot = self
            .register
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        if slot.version() >= version {
            return false;
        }
        // Copied only when a batch still holds the current snapshot (the household records are
        // shared, each held with the versions it holds for).
        let register = Arc::make_mut(&mut *slot);
        register.begin_version(version);
        change(register, self.indexed);
        register.linker_mut().set_register_version(version);
        true
    }

    /// Route new warnings with this officer directory.
    pub fn with_directory(mut self, directory: Directory) -> Self {
        self.directory = directory;
        self
    }

    /// Set deadlines by this policy (instead of the default one).
    pub fn with_deadlines(mut self, deadlines: DeadlinePolicy) -> Self {
        self.deadlines = deadlines;
        self
    }

    /// The register's identity linker (index, model, thresholds) as it stands: the snapshot of
    /// [`Engine::register`], which dereferences to its [`Linker`].
    pub fn index(&self) -> Arc<Register> {
        self.register()
    }
}

/// What one batch did (and, added up, what a run did).
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct BatchOutcome {
    pub received: u64,
    pub accepted: u64,
    pub duplicates: u64,
    pub dead_letters: u64,
    pub linked: u64,
    pub review: u64,
    pub unmatched: u64,
    pub warnings_opened: u64,
    pub warnings_raised: u64,
    /// Dead letters by reason code.
    pub dead_by_reason: BTreeMap<&'static str, u64>,
    /// Warnings opened and raised, by (level code, `opened` | `raised`).
    #[serde(skip)]
    pub warnings_by_level: BTreeMap<(&'static str, &'static str), u64>,
}

impl BatchOutcome {
    /// Add another batch's counts to these.
    pub fn add(&mut self, b: &BatchOutcome) {
        doudi_telemetry::add_counts!(self, b;
            received, accepted, duplicates, dead_letters, linked, review, unmatched,
            warnings_opened, warnings_raised);
        for (k, v) in &b.dead_by_reason {
            *self.dead_by_reason.entry(k).or_default() += v;
        }
        for (k, v) in &b.warnings_by_level {
            *self.warnings_by_level.entry(*k).or_default() += v;
        }
    }
}

/// Apply one batch of ingested records in a single transaction.
pub async fn apply_batch(
    store: &Store,
    engine: &Engine,
    batch: &[Ingested],
) -> Result<BatchOutcome, PipelineError> {
    apply_records(store, engine, batch, None).await
}

/// Apply dead letters that pass ingest now (after a fix: a raised limit, a corrected parser),
/// in one transaction that also marks the dead letters `replayed_ids` as replayed. Source positions
/// and receipt counters are left alone: these records were read (and counted) before. `batch`
/// should hold only records that parse; one that still fails is left out by the caller.
pub async fn apply_replayed(
    store: &Store,
    engine: &Engine,
    batch: &[Ingested],
    replayed_ids: &[i64],
) -> Result<BatchOutcome, PipelineError> {
    apply_records(store, engine, batch, Some(replayed_ids)).await
}

async fn apply_records(
    store: &Store,
    engine: &Engine,
    batch: &[Ingested],
    replayed: Option<&[i64]>,
) -> Result<BatchOutcome, PipelineError> {
    // An activation committed between staging and finishing: staged again, with it (another
    // one landing in the same window again is not a reason to give up).
    let mut attempts = 0;
    loop {
        let staged = stage(store, engine, batch, replayed.map(<[i64]>::to_vec)).await?;
        match staged.finish(engine).await {
            Err(PipelineError::VersionsChanged { seen, now }) if attempts < 10 => {
                tracing::info!(seen, now, "a version was activated while the batch was applied: applying it again with it");
                attempts += 1;
            }
            r => return r,
        }
    }
}

/// Begin a batch's transaction and write what depends on nothing but the batch itself: its
/// events (deduplicated), each new event's link decision and its dead letters. Nothing of any
/// household is read or locked yet: [`StagedBatch::finish`] does that, then assesses, writes the
/// rest (timeline facts, assessments, warnings, positions) and commits.
///
/// So a worker on PostgreSQL may stage the next batch on a second connection while the previous
/// one finishes (the consumer's backlog then keeps two database connections busy instead of
/// one). It must finish batches in the order it staged them, only after the previous one
/// committed, and drop (roll back) a staged batch whose predecessor failed: the events' `seq`
/// numbers, drawn while staging, must follow the order batches commit in. On SQLite, where one
/// writer at a time holds the database, stage and finish one batch after the other.
pub async fn stage_batch(
    store: &Store,
    engine: &Engine,
    batch: &[Ingested],
) -> Result<StagedBatch, PipelineError> {
    stage(store, engine, batch, None).await
}

/// A batch whose transaction holds its events, link decisions and dead letters; see
/// [`stage_batch`]. Dropping it rolls the transaction back.
pub struct StagedBatch {
    tx: BatchTx,
    out: BatchOutcome,
    facts: Vec<FactRow>,
    /// The rule set each fact's record is decided with.
    fact_rules: Vec<RulesIndex>,
    /// The versions the batch was staged with: it commits only if they are still current.
    versions: Arc<Versions>,
    dead: Vec<DeadLetterRow>,
    positions: Vec<PositionRow>,
    /// Records read per source (counted once the batch commits; not for replayed dead letters).
    consumed: BTreeMap<&'static str, u64>,
    replayed: Option<Vec<i64>>,
    /// Time from the start of staging to: rows prepared, events inserted, events linked, staged
    /// (link decisions and dead letters written).
    t_prepare: Duration,
    t_events: Duration,
    t_linked: Duration,
    t_staged: Duration,
}

async fn stage(
    store: &Store,
    engine: &Engine,
    batch: &[Ingested],
    replayed: Option<Vec<i64>>,
) -> Result<StagedBatch, PipelineError> {
    let mut out = BatchOutcome {
        received: batch.len() as u64,
        ..BatchOutcome::default()
    };
    let t0 = Instant::now();
    let mut tx = store.begin().await?;
    // The versions activated so far: each record is decided with those of its position.
    let versions = refresh_versions(&mut tx, engine).await?;
    // One register snapshot for the batch's identity decisions.
    let register = engine.register();
    let register_version = register.version();

    let mut dead = Vec::new();
    let mut rows = Vec::new();
    let mut events = Vec::new();
    for item in batch {
        let r = &item.record;
        match &item.result {
            Ok(event) => {
                rows.push(EventRow {
                    source: event.source.code().to_string(),
                    event_id: event.event_id.clone(),
                    kind: event.kind().to_string(),
                    occurred_at: event.occurred_at,
                    stream: r.stream.clone(),
                    position: r.line(),
                    raw: r.bytes.clone(),
                    normalised: item.normalised.clone(),
                    packed: Some(item.packed.clone()),
                    profile: item.profile.as_deref().map(str::to_string),
                });
                // The identity model of the record's position (`None`: the linker's own).
                let model = versions
                    .scorer_at(&r.stream, r.line())
                    .filter(|m| m.model().version != register.linker().model().version);
                let wanted =
                    model.map_or(&register.linker().model().version, |m| &m.model().version);
                // Linked ahead with an older register or another model: linked again below.
                let ahead = item.link.as_ref().filter(|(d, _)| {
                    item.register_version == register_version && d.evidence.model_version == *wanted
                });
                let rules = versions.rules_index(&r.stream, r.line());
                events.push((event, ahead, model, rules));
            }
            Err(e) => {
                *out.dead_by_reason.entry(e.code()).or_default() += 1;
                dead.push(DeadLetterRow {
                    source: r.source.code().to_string(),
                    stream: r.stream.clone(),
                    line: r.line(),
                    byte_offset: r.position.start(),
                    event_id: sniff_event_id(&r.bytes),
                    reason_code: e.code().to_string(),
                    reason: e.to_string(),
                    raw: r.bytes.clone(),
                    raw_len: r.full_len,
                });
            }
        }
    }
    out.dead_letters = dead.len() as u64;
    let positions = furthest_positions(batch);
    let mut consumed: BTreeMap<&'static str, u64> = BTreeMap::new();
    if replayed.is_none() {
        for item in batch {
            *consumed.entry(item.record.source.code()).or_default() += 1;
        }
    }

    let t_prepare = t0.elapsed();
    let new = tx.insert_events(&rows).await?;
    let t_events = t0.elapsed();
    out.accepted = new.len() as u64;
    out.duplicates = rows.len() as u64 - out.accepted;

    // Link every new event, in batch order.
    let mut links = Vec::with_capacity(new.len());
    let mut facts = Vec::new();
    let mut fact_rules = Vec::new();
    let mut seen = std::collections::HashSet::with_capacity(new.len());
    for (event, linked_ahead, model, rules) in events {
        let key = (event.source.code().to_string(), event.event_id.clone());
        let Some(&event_seq) = new.get(&key) else {
            continue;
        };
        // A key repeated inside the batch was inserted once: link it once.
        if !seen.insert(key) {
            continue;
        }
        let linked_here;
        let (decision, evidence) = match linked_ahead {
            Some((d, e)) => (d, e),
            None => {
                linked_here = match model {
                    None => link_event(&register, event),
                    Some(m) => {
                        let d = register.linker().link_with(m, &event.subject);
                        let e = Json::encode(&d.evidence);
                        (d, e)
                    }
                };
                (&linked_here.0, &linked_here.1)
            }
        };
        match decision.outcome {
            Outcome::Linked => out.linked += 1,
            Outcome::Review => out.review += 1,
            Outcome::Unmatched => out.unmatched += 1,
        }
        if let (Outcome::Linked, Some(hh), Some(member)) = (
            decision.outcome,
            decision.household_id.as_ref(),
            decision.member_id.as_ref(),
        ) {
            fact_rules.push(rules);
            facts.push(FactRow {
                event_seq,
                fact: Fact {
                    event_id: event.event_id.clone(),
                    source: event.source,
                    household_id: hh.clone(),
                    member_id: member.clone(),
                    occurred_at: event.occurred_at,
                    payload: event.payload.clone(),
                },
            });
        }
        links.push(LinkRow {
            event_seq,
            source: event.source.code().to_string(),
            event_id: event.event_id.clone(),
            outcome: decision.outcome,
            household_id: decision.household_id.clone(),
            member_id: decision.member_id.clone(),
            evidence: evidence.clone(),
            register_version: register.version(),
        });
    }
    let t_linked = t0.elapsed();
    tx.insert_links(&links).await?;
    tx.insert_dead_letters(&dead).await?;
    Ok(StagedBatch {
        tx,
        out,
        facts,
        fact_rules,
        versions,
        dead,
        positions,
        consumed,
        replayed,
        t_prepare,
        t_events,
        t_linked,
        t_staged: t0.elapsed(),
    })
}

/// The position each stream of the batch was read to: the furthest of its records, wherever it
/// stands in the batch (a redelivered or replayed record can come after later ones; the store
/// keeps positions from moving back, but a batch must not hold its own progress back either).
fn furthest_positions(batch: &[Ingested]) -> Vec<PositionRow> {
    let mut positions: BTreeMap<&str, PositionRow> = BTreeMap::new();
    for item in batch {
        let r = &item.record;
        let row = PositionRow {
            source: r.source.code().to_string(),
            stream: r.stream.clone(),
            byte_offset: r.position.resume_at(),
            line: r.line(),
        };
        match positions.entry(r.stream.as_str()) {
            Entry::Vacant(v) => {
                v.insert(row);
            }
            Entry::Occupied(mut o) => {
                // Excel rows have no byte offset (0): their row number decides.
                if (row.byte_offset, row.line) > (o.get().byte_offset, o.get().line) {
                    o.insert(row);
                }
            }
        }
    }
    positions.into_values().collect()
}

impl StagedBatch {
    /// Records in the batch.
    pub fn received(&self) -> u64 {
        self.out.received
    }

    /// Lock and read the households the batch's facts belong to, assess each after each of its
    /// new facts, decide its warning, write the facts, assessments, warnings, positions and
    /// counters, and commit. See [`stage_batch`] for the order batches must finish in.
    pub async fn finish(self, engine: &Engine) -> Result<BatchOutcome, PipelineError> {
        let StagedBatch {
            mut tx,
            mut out,
            facts,
            fact_rules,
            versions,
            dead,
            positions,
            consumed,
            replayed,
            t_prepare,
            t_events,
            t_linked,
            t_staged,
        } = self;
        let t0 = Instant::now();
        // Assess each household after each of its new facts, in canonical order, and decide its
        // warning.
        let mut affected: Vec<String> = facts.iter().map(|f| f.fact.household_id.clone()).collect();
        affected.sort();
        affected.dedup();
        // Several workers may share the store (PostgreSQL): hold these households until commit
        // before reading anything of them, the timeline version included.
        tx.lock_households(&affected).await?;
        let version = tx.timeline_version().await?;
        let mut timelines: HashMap<String, Timeline> = HashMap::with_capacity(affected.len());
        let missing = engine
            .cache
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take(version, &affected, &mut timelines);
        let cache_hits = affected.len() - missing.len();
        for (hh, entries) in tx.timeline_entries(&missing).await? {
            timelines.insert(hh, Timeline::from_entries(entries, &versions));
        }
        let t_read = t0.elapsed();
        // The new facts join their timelines; each household is re-derived from its earliest new
        // fact on (only the new facts, when they come after every fact it had).
        let received_at = tx.stamped_at();
        let mut from: HashMap<String, usize> = HashMap::with_capacity(affected.len());
        let mut by_household: HashMap<&str, Vec<(Fact, Meta)>> = HashMap::new();
        for (f, &rules) in facts.iter().zip(&fact_rules) {
            by_household
                .entry(f.fact.household_id.as_str())
                .or_default()
                .push((
                    f.fact.clone(),
                    Meta {
                        seq: f.event_seq,
                        received_at,
                        assessed: None,
                        rules,
                    },
                ));
        }
        for (hh, added) in by_household {
            let t = timelines.entry(hh.to_string()).or_default();
            from.insert(hh.to_string(), t.merge(added));
        }
        derive_and_warn(&mut tx, engine, &versions, &mut timelines, &from, &mut out).await?;

        let t_assess = t0.elapsed();
        // Under the lock activations take: none committed since the batch was staged, or it is
        // decided again with the new versions.
        check_current(&mut tx, &versions).await?;
        tx.insert_facts(&facts).await?;
        match &replayed {
            None => {
                tx.set_positions(&positions).await?;
                tx.add_counters(out.received, out.duplicates).await?;
            }
            Some(ids) => tx.mark_replayed(ids).await?,
        }
        tx.audit(
            "pipeline",
            if replayed.is_some() { "dead_letters_replayed" } else { "batch_applied" },
            "events",
            &serde_json::json!({
                "received": out.received, "accepted": out.accepted, "duplicates": out.duplicates,
                "dead_letters": out.dead_letters, "linked": out.linked, "review": out.review,
                "unmatched": out.unmatched, "warnings_opened": out.warnings_opened,
                "warnings_raised": out.warnings_raised, "replayed": replayed,
                "positions": positions.iter().map(|p| serde_json::json!([p.stream, p.line])).collect::<Vec<_>>(),
            }),
        )
        .await?;
        let after = tx.timeline_version().await?;
        let t_write = t0.elapsed();
        tx.commit().await?;
        let t_commit = t0.elapsed();

        // Committed: these timelines are now what the store holds.
        engine
            .cache
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .put(version, after, timelines);
        for (source, n) in consumed {
            doudi_telemetry::events_consumed(source, n);
        }
        // Stage times count the batch's own work: not the wait, if any, between staging and
        // finishing (while the batch before it finished).
        record_metrics(
            &out,
            &dead,
            [
                ("ingest", t_events),
                ("read", (t_linked - t_events) + t_read),
                ("assess", t_assess - t_read),
                ("write", (t_staged - t_linked) + (t_write - t_assess)),
                ("commit", t_commit - t_write),
                ("batch", t_staged + t_commit),
            ],
        );
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        tracing::debug!(
            received = out.received,
            accepted = out.accepted,
            households = affected.len(),
            cache_hits,
            prepare_ms = ms(t_prepare),
            events_ms = ms(t_events - t_prepare),
            link_ms = ms(t_linked - t_events),
            staged_ms = ms(t_staged),
            read_ms = ms(t_read),
            assess_ms = ms(t_assess - t_read),
            write_ms = ms(t_write - t_assess),
            commit_ms = ms(t_commit - t_write),
            total_ms = ms(t_staged + t_commit),
            "batch applied"
        );
        Ok(out)
    }
}

/// Metrics of one committed batch (never before the commit: a rolled-back batch counts nothing).
/// Label values are codes only.
fn record_metrics(
    out: &BatchOutcome,
    dead: &[DeadLetterRow],
    stages: [(&'static str, Duration); 6],
) {
    for (stage, took) in stages {
        doudi_telemetry::observe_stage(stage, took.as_secs_f64());
    }
    let mut by_source: BTreeMap<(&str, &str), u64> = BTreeMap::new();
    for d in dead {
        *by_source
            .entry((d.source.as_str(), d.reason_code.as_str()))
            .or_default() += 1;
    }
    for ((source, reason), n) in by_source {
        doudi_telemetry::dead_letters(source, reason, n);
    }
    for ((level, what), n) in &out.warnings_by_level {
        doudi_telemetry::warnings(level, what, *n);
    }
}

/// An assessment and its encoding for the store (`None` when quiet).
type Assessed = (doudi_risk::Assessment, Option<Json<doudi_risk::Assessment>>);

/// An assessment that found nothing: stored as its columns alone (most facts are routine).
fn is_quiet(a: &doudi_risk::Assessment) -> bool {
    a.score == 0
        && a.level == Level::None
        && a.contributions.is_empty()
        && a.relief.is_none()
        && a.review_needed.is_empty()
}

/// The assessment stored for the fact at `i` of a timeline: the household as of that fact's
/// event time, from the facts up to it in canonical order (issue 19: a function of the set of
/// facts, not of the order they arrived in).
fn assess_at(versions: &Versions, household: &Household, t: &Timeline, i: usize) -> Assessed {
    let as_of = t.facts[i].occurred_at;
    let state = derive_state(household, &t.facts[..=i], as_of);
    let assessment = assess(versions.rules(t.meta[i].rules), household, &state);
    let json = (!is_quiet(&assessment)).then(|| Json::encode(&assessment));
    (assessment, json)
}

/// Assess each household's facts from its index in `from` on. Households are independent, so
/// they are shared out over the cores. Returns (household, index, assessment).
fn assess_from<'a>(
    versions: &'a Versions,
    records: &'a HashMap<String, Arc<Household>>,
    timelines: &'a HashMap<String, Timeline>,
    from: &HashMap<String, usize>,
) -> Vec<(&'a str, usize, Assessed)> {
    let mut groups: Vec<(&'a str, &'a Household, &'a Timeline, usize)> = Vec::new();
    let mut total = 0;
    let mut households: Vec<&String> = from.keys().collect();
    households.sort();
    for hh in households {
        let (Some((name, t)), Some(household)) = (
            timelines.get_key_value(hh.as_str()),
            records.get(hh.as_str()),
        ) else {
            continue;
        };
        let start = from[hh].min(t.len());
        total += t.len() - start;
        groups.push((name.as_str(), household.as_ref(), t, start));
    }
    let work = |groups: &[(&'a str, &'a Household, &'a Timeline, usize)]| {
        let mut out = Vec::new();
        for &(hh, household, t, start) in groups {
            for i in start..t.len() {
                out.push((hh, i, assess_at(versions, household, t, i)));
            }
        }
        out
    };
    // Split where half of the facts to assess are on each side.
    let half = total / 2;
    let mut seen = 0;
    let split = groups
        .iter()
        .position(|g| {
            seen += g.2.len() - g.3;
            seen >= half
        })
        .map_or(groups.len(), |p| p + 1);
    let (left, right) = groups.split_at(split);
    let parallel = total >= 256 && std::thread::available_parallelism().map_or(1, |n| n.get()) > 1;
    if parallel {
        std::thread::scope(|scope| {
            let other = scope.spawn(|| work(right));
            let mut mine = work(left);
            match other.join() {
                Ok(theirs) => mine.extend(theirs),
                Err(panic) => std::panic::resume_unwind(panic),
            }
            mine
        })
    } else {
        let mut all = work(left);
        all.extend(work(right));
        all
    }
}

/// Re-derive each household of `from` from its index there on (its timeline in `timelines`
/// already holds every fact, new ones included, in canonical order): insert the assessments of
/// facts that have none stored, update stored ones whose result changed, then fold the household's
/// episode and reconcile its warning with it, all in `tx`. Keeps `timelines` in step with what
/// the store will hold.
pub(crate) async fn derive_and_warn(
    tx: &mut BatchTx,
    engine: &Engine,
    versions: &Versions,
    timelines: &mut HashMap<String, Timeline>,
    from: &HashMap<String, usize>,
    out: &mut BatchOutcome,
) -> Result<(), PipelineError> {
    let mut households: Vec<String> = from.keys().cloned().collect();
    households.sort();
    let t0 = Instant::now();
    let (current, cuts) = tx.current_warnings(&households).await?;
    let t_current = t0.elapsed();
    // One register snapshot for the whole derivation: the households' records as of it.
    let register = engine.register();
    let records = register.records(tx, &households).await?;
    let assessed = assess_from(versions, &records, timelines, from);
    let t_assessed = t0.elapsed();
    let n_assessed = assessed.len();

    let mut inserts = Vec::new();
    let mut candidates: Vec<(AssessmentRow, Option<(Level, i64)>)> = Vec::new();
    let mut latest: HashMap<(String, usize), Json<doudi_risk::Assessment>> = HashMap::new();
    let mut updates: Vec<(String, usize, Level, i64)> = Vec::with_capacity(assessed.len());
    for (hh, i, (assessment, json)) in assessed {
        let Some(t) = timelines.get(hh) else {
            continue;
        };
        let (fact, meta) = (&t.facts[i], &t.meta[i]);
        let row = AssessmentRow {
            event_seq: meta.seq,
            source: fact.source.code().to_string(),
            event_id: fact.event_id.clone(),
            household_id: hh.to_string(),
            rule_set_version: assessment.rule_set_version.clone(),
            score: assessment.score,
            level: assessment.level,
            assessment: json.clone(),
        };
        if i + 1 == t.len() {
            // The household's latest assessment: its warning's summary.
            latest.insert(
                (hh.to_string(), i),
                json.clone().unwrap_or_else(|| Json::encode(&assessment)),
            );
        }
        updates.push((hh.to_string(), i, assessment.level, assessment.score));
        match meta.assessed {
            None => inserts.push(row),
            Some(old) => candidates.push((row, Some(old))),
        }
    }
    // Stored assessments re-derived: rewrite those whose result changed.
    let mut changed = Vec::new();
    if !candidates.is_empty() {
        let seqs: Vec<i64> = candidates.iter().map(|(r, _)| r.event_seq).collect();
        let stored = tx.stored_assessments(&seqs).await?;
        for (row, old) in candidates {
            let same = old == Some((row.level, row.score))
                && stored.get(&row.event_seq).is_some_and(|(version, text)| {
                    *version == row.rule_set_version
                        && text.as_deref() == row.assessment.as_ref().map(Json::as_str)
                });
            if !same {
                changed.push(row);
            }
        }
    }
    tx.insert_assessments(&inserts).await?;
    tx.update_assessments(&changed).await?;
    let t_written = t0.elapsed();
    let (n_inserted, n_changed) = (inserts.len(), changed.len());
    for (hh, i, level, score) in updates {
        if let Some(t) = timelines.get_mut(&hh) {
            t.meta[i].assessed = Some((level, score));
        }
    }

    // Each household's episode, folded from its assessments after the last cut.
    let policy = engine.deadlines;
    for hh in &households {
        let (Some(t), Some(household)) = (timelines.get(hh), records.get(hh)) else {
            continue;
        };
        let cut = cuts.get(hh).copied().unwrap_or(0);
        let mut steps = Vec::new();
        let mut last = None;
        for (i, (f, m)) in t.facts.iter().zip(&t.meta).enumerate() {
            let Some((level, score)) = m.assessed else {
                continue;
            };
            if m.seq <= cut {
                continue;
            }
            last = Some(i);
            steps.push(Step {
                seq: m.seq,
                occurred_at: f.occurred_at,
                source: f.source.code().to_string(),
                event_id: f.event_id.clone(),
                received_at: m.received_at,
                level,
                score,
            });
        }
        // Deadlines by the rule set of the episode's latest fact (in canonical order).
        let rules = versions.rules(last.map_or(0, |i| t.meta[i].rules));
        let hours = |l: Level| rules.levels.params(l).map(|p| p.act_within_hours);
        let episode = fold(&steps, &policy, hours);
        let start = from.get(hh).copied().unwrap_or(0);
        let summary = match (&episode, last) {
            (Some(_), Some(i)) => Some(match latest.remove(&(hh.clone(), i)) {
                Some(j) => (j, i >= start),
                None => {
                    let (a, j) = assess_at(versions, household, t, i);
                    (j.unwrap_or_else(|| Json::encode(&a)), false)
                }
            }),
            _ => None,
        };
        reconcile(
            tx,
            engine,
            household,
            current.get(hh),
            episode.zip(summary),
            out,
        )
        .await?;
    }
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    tracing::debug!(
        households = households.len(),
        assessed = n_assessed,
        inserted = n_inserted,
        rewritten = n_changed,
        current_ms = ms(t_current),
        assess_ms = ms(t_assessed - t_current),
        store_ms = ms(t_written - t_assessed),
        fold_ms = ms(t0.elapsed() - t_written),
        "households derived"
    );
    Ok(())
}

/// The fold's transitions as the warning row keeps them.
fn transitions_json(ts: &[Transition]) -> String {
    serde_json::to_string(ts).unwrap_or_else(|_| "[]".to_string())
}

fn count(out: &mut BatchOutcome, level: Level, what: &'static str) {
    if what == "opened" {
        out.warnings_opened += 1;
    } else {
        out.warnings_raised += 1;
    }
    *out.warnings_by_level
        .entry((level.code(), what))
        .or_default() += 1;
}

/// Make the household's warning row say what its episode says: open it, update it, reopen a
/// withdrawn one, or withdraw one no person moved whose episode vanished. History lines and notices
/// only for transitions not yet recorded and for real changes; pending notices of transitions
/// that vanished are superseded. `episode` comes with the latest assessment's summary and whether
/// that assessment was made in this batch.
async fn reconcile(
    tx: &mut BatchTx,
    engine: &Engine,
    household: &Household,
    row: Option<&CurrentWarningRow>,
    episode: Option<(Episode, (Json<doudi_risk::Assessment>, bool))>,
    out: &mut BatchOutcome,
) -> Result<(), PipelineError> {
    let hh = &household.household_id;
    let change =
        |id: i64, action: &'static str, t: &Transition, score: i64, notify: bool| WarningChange {
            warning_id: id,
            action,
            level: t.level,
            score,
            source: t.source.clone(),
            event_id: t.event_id.clone(),
            notify: notify.then(|| transition_key(t.level, &t.source, &t.event_id)),
        };
    match (episode, row) {
        (None, None) => {}
        (None, Some(r)) => {
            // No episode any more: withdraw a warning nobody has taken up; one a person moved
            // stays for them to close.
            if r.status == "open" {
                tx.withdraw_warning(WarningChange {
                    warning_id: r.warning_id,
                    action: "withdrawn",
                    level: r.level,
                    score: r.score,
                    source: r.source.clone(),
                    event_id: r.event_id.clone(),
                    notify: None,
                });
            }
        }
        (Some((e, (summary, _))), None) => {
            let id = tx
                .put_new_warning(&NewWarning {
                    household_id: hh.clone(),
                    region_code: household.region_code.to_string(),
                    level: e.level,
                    score: e.score,
                    deadline: e.deadline,
                    source: e.source.clone(),
                    event_id: e.event_id.clone(),
                    summary,
                    assigned_to: engine
                        .directory
                        .route(&household.region_code)
                        .map(|a| a.officer_id),
                    episode: EpisodeMark {
                        occurred_at: Some(e.occurred_at),
                        late: e.late,
                        transitions: Some(transitions_json(&e.transitions)),
                    },
                })
                .await?;
            for (n, t) in e.transitions.iter().enumerate() {
                let action = if n == 0 { "opened" } else { "raised" };
                tx.record_warning_change(change(id, action, t, e.score, true));
                count(out, t.level, action);
            }
        }
        (Some((e, (summary, fresh))), Some(r)) => {
            let id = r.warning_id;
            let reopen = r.status == "withdrawn";
            let stored: Option<Vec<Transition>> = r
                .episode
                .transitions
                .as_deref()
                .and_then(|t| serde_json::from_str(t).ok());
            let mark = EpisodeMark {
                occurred_at: Some(e.occurred_at),
                late: e.late,
                transitions: Some(transitions_json(&e.transitions)),
            };
            let differs = r.level != e.level
                || r.score != e.score
                || r.source != e.source
                || r.event_id != e.event_id
                || r.deadline != e.deadline
                || r.episode != mark;
            if !(reopen || fresh || differs) {
                return Ok(());
            }
            tx.put_warning_update(&WarningUpdate {
                warning_id: id,
                level: e.level,
                score: e.score,
                raised: false,
                deadline: e.deadline,
                source: e.source.clone(),
                event_id: e.event_id.clone(),
                summary,
                episode: mark,
                reopen,
            });
            let mut lines = 0;
            if reopen {
                for (n, t) in e.transitions.iter().enumerate() {
                    let action = if n == 0 { "opened" } else { "raised" };
                    tx.record_warning_change(change(id, action, t, e.score, true));
                    count(out, t.level, action);
                    lines += 1;
                }
            } else {
                // A warning from before transitions were kept: its level counts as recorded.
                let known: Vec<Transition> = stored.clone().unwrap_or_default();
                // Every transition of the episode not yet recorded is announced as the fold has
                // it — the first opens, the others raise — so that the pending notices always
                // follow the episode, whatever order its facts came in. Only what a notice
                // already sent announced (at that level or above) is not announced again.
                for (n, t) in e.transitions.iter().enumerate() {
                    let was = known.iter().position(|k| k.same_as(t));
                    let recorded = match &stored {
                        Some(_) => was.is_some(),
                        None => t.level <= r.level,
                    };
                    if recorded {
                        // Still the episode's, but an earlier fact now opens it (or it opens it
                        // now): its pending notice says "opened" or "raised" as it stands now.
                        let moved = matches!(was, Some(p) if (p == 0) != (n == 0));
                        if !moved {
                            continue;
                        }
                        tx.supersede_notices(id, transition_key(t.level, &t.source, &t.event_id));
                    }
                    let action = if n == 0 { "opened" } else { "raised" };
                    if t.level > r.announced {
                        tx.record_warning_change(change(id, action, t, e.score, true));
                        count(out, t.level, action);
                    } else {
                        tx.record_warning_change(change(id, "rederived", t, e.score, false));
                    }
                    lines += 1;
                }
                let vanished: Vec<&Transition> = known
                    .iter()
                    .filter(|k| !e.transitions.iter().any(|t| t.same_as(k)))
                    .collect();
                for v in &vanished {
                    tx.supersede_notices(id, transition_key(v.level, &v.source, &v.event_id));
                }
                if !vanished.is_empty() && lines == 0 {
                    if let Some(t) = e.transitions.last() {
                        tx.record_warning_change(change(id, "rederived", t, e.score, false));
                        lines += 1;
                    }
                }
            }
            if lines == 0 && r.score != e.score {
                tx.record_warning_change(WarningChange {
                    warning_id: id,
                    action: "updated",
                    level: e.level,
                    score: e.score,
                    source: e.source.clone(),
                    event_id: e.event_id.clone(),
                    notify: None,
                });
            }
        }
    }
    Ok(())
}

/// Re-derive these households' assessments and warnings from all their facts, under their locks,
/// in one transaction: for a change that is not a new fact, such as a register change that adds
/// members or re-links records (the register may now hold a household it did not, or hold it
/// otherwise). `engine` must hold the register as it now is.
pub async fn rederive_households(
    store: &Store,
    engine: &Engine,
    households: &[String],
) -> Result<BatchOutcome, PipelineError> {
    let mut affected = households.to_vec();
    affected.sort();
    affected.dedup();
    let mut out = BatchOutcome::default();
    if affected.is_empty() {
        return Ok(out);
    }
    let mut tx = store.begin().await?;
    tx.lock_households(&affected).await?;
    let versions = refresh_versions(&mut tx, engine).await?;
    let mut timelines: HashMap<String, Timeline> = HashMap::with_capacity(affected.len());
    for (hh, entries) in tx.timeline_entries(&affected).await? {
        timelines.insert(hh, Timeline::from_entries(entries, &versions));
    }
    let from: HashMap<String, usize> = affected.iter().map(|h| (h.clone(), 0)).collect();
    derive_and_warn(&mut tx, engine, &versions, &mut timelines, &from, &mut out).await?;
    check_current(&mut tx, &versions).await?;
    // Every worker's cached timelines of these households hold the old assessments.
    tx.touch_timelines().await?;
    tx.audit(
        "pipeline",
        "households_rederived",
        "households",
        &serde_json::json!({
            "households": affected.len(), "warnings_opened": out.warnings_opened,
            "warnings_raised": out.warnings_raised,
        }),
    )
    .await?;
    tx.commit().await?;
    engine
        .cache
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .clear();
    Ok(out)
}

/// The engine's versions, with every activation this transaction sees: new ones are read (and
/// taken by the engine) when the last activation's id moved. Cheap when nothing changed.
pub async fn refresh_versions(
    tx: &mut BatchTx,
    engine: &Engine,
) -> Result<Arc<Versions>, PipelineError> {
    let current = engine.versions();
    let generation = tx.activation_generation().await?;
    if generation == current.generation {
        return Ok(current);
    }
    let rows = tx.activations_after(current.generation).await?;
    let mut models = Vec::new();
    for row in &rows {
        if row.kind == doudi_store::ActivationKind::Model {
            let text = tx.linkage_model(&row.content).await?;
            models.push((row.clone(), text));
        }
    }
    let latest_model = models.last().map(|(_, t)| t.is_some());
    let next = Arc::new(current.with(rows, &mut models, &engine.thresholds())?);
    for r in &next.rule_sets()[current.rule_sets().len()..] {
        tracing::info!(activation = r.activation.id, rule_set = %r.activation.version, "rule set activated: records from its positions on are assessed with it");
    }
    Ok(engine.adopt_versions(next, latest_model.is_some()))
}

impl Engine {
    /// The versions the engine holds.
    pub fn versions(&self) -> Arc<Versions> {
        self.versions
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Take `next` unless the engine already holds a later generation; with `model_changed`, the
    /// register's linker takes the latest model. Returns the versions held.
    pub(crate) fn adopt_versions(&self, next: Arc<Versions>, model_changed: bool) -> Arc<Versions> {
        let mut slot = self
            .versions
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        if slot.generation >= next.generation {
            return slot.clone();
        }
        if model_changed {
            if let Some(scorer) = next.models().last().and_then(|m| m.scorer.clone()) {
                self.set_model(scorer.model().clone());
            }
        }
        *slot = next;
        slot.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::driver::RawRecord;
    use doudi_model::Source;

    fn record(source: Source, stream: &str, line: u64, end_offset: u64) -> Ingested {
        let bytes = b"not json".to_vec();
        crate::ingest::ingest_record(
            RawRecord {
                source,
                stream: stream.to_string(),
                position: crate::driver::Position::File {
                    line,
                    start: end_offset - bytes.len() as u64 - 1,
                    end: end_offset,
                },
                full_len: bytes.len() as u64,
                bytes,
            },
            &ParseLimits::default(),
        )
    }

    #[test]
    fn each_stream_is_read_to_its_furthest_record_wherever_it_stands_in_the_batch() {
        let batch = vec![
            record(Source::Employment, "employment/a.jsonl", 1, 9),
            record(Source::Employment, "employment/a.jsonl", 3, 27),
            record(Source::Housing, "housing/b.jsonl", 2, 18),
            // A record read again (a redelivery) after later ones of its stream.
            record(Source::Employment, "employment/a.jsonl", 2, 18),
        ];
        let positions = furthest_positions(&batch);
        let got: Vec<(&str, &str, u64, u64)> = positions
            .iter()
            .map(|p| (p.source.as_str(), p.stream.as_str(), p.byte_offset, p.line))
            .collect();
        assert_eq!(
            got,
            vec![
                ("employment", "employment/a.jsonl", 27, 3),
                ("housing", "housing/b.jsonl", 18, 2),
            ]
        );
    }
}
