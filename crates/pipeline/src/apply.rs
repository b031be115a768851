//! Apply a batch: dedupe, link, append facts, assess, decide warnings — one transaction, with the
//! positions the batch came from.

use std::collections::btree_map::Entry;
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{Duration, Instant};

use chrono::Utc;
use doudi_linkage::{Linker, Outcome, RegisterIndex};
use doudi_model::{Fact, Household, ParseLimits};
use doudi_risk::{assess, derive_state, Level, RuleSet};
use doudi_store::{
    AssessmentRow, BatchTx, DeadLetterRow, EventRow, FactRow, Json, LinkRow, NewWarning,
    PositionRow, Store, WarningUpdate,
};
use doudi_warnings::routing::Directory;
use doudi_warnings::{decide, Decision, OpenWarning};

use crate::ingest::{link_event, sniff_event_id, Ingested};
use crate::register::Register;
use crate::PipelineError;

/// What the pipeline knows while it runs: the rule set and the register (held in memory, and
/// followed while running: see [`crate::register`]).
pub struct Engine {
    pub rules: RuleSet,
    pub limits: ParseLimits,
    /// The register's households and identity index, as one snapshot replaced on each register
    /// change; a batch works on the snapshot it took.
    register: RwLock<Arc<Register>>,
    /// Whether the index covers the register (false for [`Engine::assess_only`]).
    indexed: bool,
    /// Who is responsible for which region (empty: warnings stay unassigned).
    pub directory: Directory,
    cache: Mutex<TimelineCache>,
}

/// At most this many facts are kept in memory; past it the cache starts afresh.
const CACHE_MAX_FACTS: usize = 2_000_000;

/// The committed timelines of households seen lately, so that a batch need not read (and parse)
/// them back from the database. It is only trusted while the store's timeline version is the one
/// it was filled at: anything else that appends to the timeline (another process) empties it.
#[derive(Default)]
struct TimelineCache {
    version: i64,
    timelines: HashMap<String, Vec<Fact>>,
    facts: usize,
}

impl TimelineCache {
    fn clear(&mut self) {
        self.timelines.clear();
        self.facts = 0;
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
        Engine {
            rules,
            limits,
            register: RwLock::new(Arc::new(Register::new(register, index))),
            indexed,
            directory: Directory::default(),
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

    /// Label the register the engine was made with as the store's version `version` (read before
    /// the register was loaded): the changes after it are what [`crate::refresh_register`] applies.
    pub fn at_register_version(self, version: i64) -> Self {
        {
            let mut slot = self
                .register
                .write()
                .unwrap_or_else(PoisonError::into_inner);
            Arc::make_mut(&mut *slot)
                .linker_mut()
                .set_register_version(version);
        }
        self
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
        // Copied only when a batch still holds the current snapshot.
        let register = Arc::make_mut(&mut *slot);
        change(register, self.indexed);
        register.linker_mut().set_register_version(version);
        true
    }

    /// Route new warnings with this officer directory.
    pub fn with_directory(mut self, directory: Directory) -> Self {
        self.directory = directory;
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
        self.received += b.received;
        self.accepted += b.accepted;
        self.duplicates += b.duplicates;
        self.dead_letters += b.dead_letters;
        self.linked += b.linked;
        self.review += b.review;
        self.unmatched += b.unmatched;
        self.warnings_opened += b.warnings_opened;
        self.warnings_raised += b.warnings_raised;
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
    stage(store, engine, batch, replayed.map(<[i64]>::to_vec))
        .await?
        .finish(engine)
        .await
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
                    profile: item.profile.as_deref().map(str::to_string),
                });
                // Linked ahead with an older register: linked again below.
                let ahead = item
                    .link
                    .as_ref()
                    .filter(|_| item.register_version == register_version);
                events.push((event, ahead));
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
    let mut seen = std::collections::HashSet::with_capacity(new.len());
    for (event, linked_ahead) in events {
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
                linked_here = link_event(&register, event);
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
        // Assess each household after each of its new facts, and decide its warning.
        let mut affected: Vec<String> = facts.iter().map(|f| f.fact.household_id.clone()).collect();
        affected.sort();
        affected.dedup();
        // Several workers may share the store (PostgreSQL): hold these households until commit
        // before reading anything of them, the timeline version included.
        tx.lock_households(&affected).await?;
        let version = tx.timeline_version().await?;
        let mut timelines: HashMap<String, Vec<Fact>> = HashMap::with_capacity(affected.len());
        let mut missing = Vec::new();
        {
            let mut cache = engine.cache.lock().unwrap_or_else(PoisonError::into_inner);
            if cache.version != version {
                cache.clear();
                cache.version = version;
            }
            for hh in &affected {
                match cache.timelines.remove(hh) {
                    Some(t) => {
                        cache.facts -= t.len();
                        timelines.insert(hh.clone(), t);
                    }
                    None => missing.push(hh.clone()),
                }
            }
        }
        let cache_hits = affected.len() - missing.len();
        timelines.extend(tx.facts_for(&missing).await?);
        let open = open_warnings(&mut tx, &affected).await?;
        let t_read = t0.elapsed();
        let assessments =
            assess_and_warn(&mut tx, engine, &facts, &mut timelines, open, &mut out).await?;

        let t_assess = t0.elapsed();
        tx.insert_facts(&facts).await?;
        tx.insert_assessments(&assessments).await?;
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
        {
            let mut cache = engine.cache.lock().unwrap_or_else(PoisonError::into_inner);
            if cache.version == version {
                cache.version = after;
                cache.facts += timelines.values().map(Vec::len).sum::<usize>();
                cache.timelines.extend(timelines);
                if cache.facts > CACHE_MAX_FACTS {
                    cache.clear();
                }
            } else {
                cache.clear();
            }
        }
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

/// The open warnings of these households, as the warning rules see them.
pub(crate) async fn open_warnings(
    tx: &mut BatchTx,
    households: &[String],
) -> Result<HashMap<String, OpenWarning>, PipelineError> {
    Ok(tx
        .open_warnings(households)
        .await?
        .into_values()
        .map(|w| {
            (
                w.household_id.clone(),
                OpenWarning {
                    warning_id: w.warning_id,
                    household_id: w.household_id,
                    level: w.level,
                    score: w.score,
                    deadline: w.deadline,
                },
            )
        })
        .collect())
}

/// Append each fact to its household's timeline (`timelines` holds each affected household's
/// committed timeline), assess the household after it, and open or update its warning in `tx`.
/// Returns the assessments to store.
pub(crate) async fn assess_and_warn(
    tx: &mut BatchTx,
    engine: &Engine,
    facts: &[FactRow],
    timelines: &mut HashMap<String, Vec<Fact>>,
    mut open: HashMap<String, OpenWarning>,
    out: &mut BatchOutcome,
) -> Result<Vec<AssessmentRow>, PipelineError> {
    let now = Utc::now();
    let register = engine.register();
    let mut assessments = Vec::with_capacity(facts.len());
    let mut assessed = assess_all(engine, &register, facts, timelines);
    for (i, FactRow { event_seq, fact }) in facts.iter().enumerate() {
        let Some((assessment, json)) = assessed[i].take() else {
            continue;
        };
        let Some(household) = register.household(&fact.household_id) else {
            continue;
        };
        let summary = || json.clone().unwrap_or_else(|| Json::encode(&assessment));
        let decision = decide(open.get(&fact.household_id), &assessment, now);
        assessments.push(AssessmentRow {
            event_seq: *event_seq,
            source: fact.source.code().to_string(),
            event_id: fact.event_id.clone(),
            household_id: fact.household_id.clone(),
            rule_set_version: assessment.rule_set_version.clone(),
            score: assessment.score,
            level: assessment.level,
            assessment: json.clone(),
        });
        match decision {
            Decision::Nothing => {}
            Decision::Open { level, deadline } => {
                let id = tx
                    .open_warning(&NewWarning {
                        household_id: fact.household_id.clone(),
                        region_code: household.region_code.to_string(),
                        level,
                        score: assessment.score,
                        deadline,
                        source: fact.source.code().to_string(),
                        event_id: fact.event_id.clone(),
                        summary: summary(),
                        assigned_to: engine
                            .directory
                            .route(&household.region_code)
                            .map(|a| a.officer_id),
                    })
                    .await?;
                out.warnings_opened += 1;
                *out.warnings_by_level
                    .entry((level.code(), "opened"))
                    .or_default() += 1;
                open.insert(
                    fact.household_id.clone(),
                    OpenWarning {
                        warning_id: id,
                        household_id: fact.household_id.clone(),
                        level,
                        score: assessment.score,
                        deadline,
                    },
                );
            }
            Decision::Update {
                warning_id,
                level,
                raised,
                deadline,
            } => {
                tx.update_warning(&WarningUpdate {
                    warning_id,
                    level,
                    score: assessment.score,
                    raised,
                    deadline,
                    source: fact.source.code().to_string(),
                    event_id: fact.event_id.clone(),
                    summary: summary(),
                })
                .await?;
                if raised {
                    out.warnings_raised += 1;
                    *out.warnings_by_level
                        .entry((level.code(), "raised"))
                        .or_default() += 1;
                }
                if let Some(w) = open.get_mut(&fact.household_id) {
                    w.level = level;
                    w.score = assessment.score;
                    w.deadline = deadline;
                }
            }
        }
    }

    Ok(assessments)
}

/// An assessment that found nothing: stored as its columns alone (most facts are routine).
fn is_quiet(a: &doudi_risk::Assessment) -> bool {
    a.score == 0
        && a.level == Level::None
        && a.contributions.is_empty()
        && a.relief.is_none()
        && a.review_needed.is_empty()
}

/// An assessment and its encoding for the store (`None` when quiet).
type Assessed = (doudi_risk::Assessment, Option<Json<doudi_risk::Assessment>>);

/// Append each fact to its household's timeline and assess the household after it. Households are
/// independent, so they are shared out over the cores; each household's facts stay in order.
/// Returns one result per fact (`None` for a household no longer in the register).
fn assess_all(
    engine: &Engine,
    register: &Register,
    facts: &[FactRow],
    timelines: &mut HashMap<String, Vec<Fact>>,
) -> Vec<Option<Assessed>> {
    // Facts by household, in batch order.
    let mut groups: Vec<(String, Vec<usize>, Vec<Fact>)> = Vec::new();
    let mut index: HashMap<&str, usize> = HashMap::new();
    for (i, f) in facts.iter().enumerate() {
        let hh = f.fact.household_id.as_str();
        let g = *index.entry(hh).or_insert_with(|| {
            let timeline = timelines.remove(hh).unwrap_or_default();
            groups.push((hh.to_string(), Vec::new(), timeline));
            groups.len() - 1
        });
        groups[g].1.push(i);
    }
    let work = |groups: &mut [(String, Vec<usize>, Vec<Fact>)]| {
        let mut out = Vec::new();
        for (hh, indices, timeline) in groups.iter_mut() {
            let household = register.household(hh.as_str());
            for &i in indices.iter() {
                let fact = &facts[i].fact;
                timeline.push(fact.clone());
                let Some(household) = household else {
                    continue;
                };
                // Assess as of the latest fact known, so a late record with an early date still
                // sees everything that came after it.
                let as_of = timeline
                    .iter()
                    .map(|f| f.occurred_at)
                    .max()
                    .unwrap_or(fact.occurred_at);
                let state = derive_state(household, timeline, as_of);
                let assessment = assess(&engine.rules, household, &state);
                let json = (!is_quiet(&assessment)).then(|| Json::encode(&assessment));
                out.push((i, (assessment, json)));
            }
        }
        out
    };
    // Split where half of the facts are on each side.
    let half = facts.len() / 2;
    let mut seen = 0;
    let split = groups
        .iter()
        .position(|(_, idx, _)| {
            seen += idx.len();
            seen >= half
        })
        .map_or(groups.len(), |p| p + 1);
    let (left, right) = groups.split_at_mut(split);
    let parallel =
        facts.len() >= 256 && std::thread::available_parallelism().map_or(1, |n| n.get()) > 1;
    let results = if parallel {
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
    };
    let mut assessed: Vec<Option<Assessed>> = (0..facts.len()).map(|_| None).collect();
    for (i, a) in results {
        assessed[i] = Some(a);
    }
    for (hh, _, timeline) in groups {
        timelines.insert(hh, timeline);
    }
    assessed
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
