//! The register as a stream: a running worker follows register imports without a restart.
//!
//! Each import that changes anything bumps the store's register version and logs the households
//! it added, changed, restored or removed (`doudi_store::Store::import_register`). A worker polls
//! the version ([`follow_register`]), applies the changes to its engine's index and households
//! between batches ([`refresh_register`]: each batch works on one snapshot, [`Engine::register`]),
//! then links again the records decided with an older register that are still `unmatched` or in
//! `review` ([`relink_waiting`]): a household enrolled today links yesterday's hospital bills.
//! Every record is decided again by one worker only (claimed in the transaction that records the
//! new decision), its earlier decision kept in `link_history`; a record that now links joins its
//! household's timeline and is assessed like any other, in that same transaction.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use doudi_linkage::Outcome;
use doudi_model::{parse_event, Fact, Household, ParseLimits};
use doudi_store::{FactRow, LinkRow, Store, StoreError};

use crate::apply::refresh_versions;
use crate::apply::{derive_and_warn, rederive_households, BatchOutcome, Engine, Timeline};
use crate::driver::CancellationToken;
use crate::ingest::link_event;
use crate::versions::check_current;
use crate::PipelineError;

pub use crate::held::Register;

/// What a refresh applied (counts only: never names or ID numbers).
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct RegisterRefresh {
    pub from_version: i64,
    pub to_version: i64,
    pub added: u64,
    pub changed: u64,
    pub removed: u64,
    /// Register members after the refresh.
    pub members: u64,
    /// Households whose record changed (a member added or removed, …) or that came back after a
    /// removal: re-derived.
    pub rederived: u64,
}

/// What a pass of [`relink_waiting`] did (counts only).
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct RelinkReport {
    /// Records decided again.
    pub examined: u64,
    /// Of those, the records whose decision changed, by their new outcome.
    pub linked: u64,
    pub review: u64,
    pub unmatched: u64,
    pub warnings_opened: u64,
    pub warnings_raised: u64,
    /// Households given facts by the re-link.
    pub households: u64,
}

/// Records claimed per transaction by [`relink_waiting`].
const RELINK_CHUNK: i64 = 500;

/// Households re-derived per transaction after their register record changed.
const REDERIVE_CHUNK: usize = 500;

/// Bring the engine's register up to the store's version: read the changes since the engine's
/// version, apply them to the index and the households (a new snapshot; batches under way keep
/// theirs), and re-derive enrolled households whose record changed. Returns `None` when the engine
/// was up to date.
pub async fn refresh_register(
    store: &Store,
    engine: &Engine,
) -> Result<Option<RegisterRefresh>, PipelineError> {
    let from = engine.register().version();
    let to = store.register_version().await?;
    if to <= from {
        return Ok(None);
    }
    let changes = store.register_changes(from, to).await?;
    // The latest change of each household decides; its record is read as the store holds it now
    // (an import after `to` is applied again at the next refresh: applying is idempotent).
    let mut last: HashMap<&str, &str> = HashMap::new();
    for c in &changes {
        last.insert(c.household_id.as_str(), c.change.as_str());
    }
    let ids: Vec<String> = last.keys().map(|s| s.to_string()).collect();
    let mut records: HashMap<String, Household> = store
        .register_households(&ids)
        .await?
        .into_iter()
        .map(|h| (h.household_id.clone(), h))
        .collect();
    let mut report = RegisterRefresh {
        from_version: from,
        to_version: to,
        ..RegisterRefresh::default()
    };
    let mut changed = Vec::new();
    let mut ordered: Vec<(&str, &str)> = last.into_iter().collect();
    ordered.sort_unstable();
    // The records as the engine's register (version `from`) has them: held, or read as of it.
    let old = engine.register().records_from(store, &ids).await?;
    let applied = engine.update_register(to, |register, index| {
        for (id, change) in &ordered {
            let record = records.remove(*id);
            match (&record, old.get(*id).map(|h| h.as_ref())) {
                (None, _) => report.removed += 1,
                (Some(_), None) => {
                    report.added += 1;
                    // A household back in the register may have facts from before it left.
                    if *change == "restored" {
                        changed.push(id.to_string());
                    }
                }
                (Some(new), Some(old)) => {
                    report.changed += 1;
                    // Members added or removed (or any other field the rules read): the
                    // household's facts mean something else now.
                    if new != old {
                        changed.push(id.to_string());
                    }
                }
            }
            register.apply(id, record, index);
        }
        report.members = register.len() as u64;
    });
    if !applied {
        return Ok(None);
    }
    report.rederived = changed.len() as u64;
    doudi_telemetry::info_counts!(report, "register changes applied";
        from_version, to_version, added, changed, removed, members, rederived);
    for chunk in changed.chunks(REDERIVE_CHUNK) {
        rederive(store, engine, chunk).await?;
    }
    Ok(Some(report))
}

/// Re-derive these households' assessments and warnings from their whole timelines with the
/// register as the engine now holds it (a member added or removed changes what their facts mean):
/// [`crate::rederive_households`], in one transaction under the households' locks.
pub async fn rederive(
    store: &Store,
    engine: &Engine,
    households: &[String],
) -> Result<(), PipelineError> {
    let out = rederive_households(store, engine, households).await?;
    tracing::info!(
        households = households.len(),
        warnings_opened = out.warnings_opened,
        warnings_raised = out.warnings_raised,
        "households re-derived after their register record changed"
    );
    Ok(())
}

/// Link again, with the engine's register, every record decided with an older one that is still
/// `unmatched` or in `review` (none a person decided), a chunk per transaction until none is
/// left. A record whose decision changes keeps its earlier decision in `link_history`; one that
/// now links joins its household's timeline, is assessed and may open or raise its warning, in
/// the transaction that claimed it (so with several workers each record is decided again once).
pub async fn relink_waiting(store: &Store, engine: &Engine) -> Result<RelinkReport, PipelineError> {
    let register = engine.register();
    let versions = engine.versions();
    let version = register.version();
    let mut report = RelinkReport::default();
    let mut households = BTreeSet::new();
    loop {
        let mut tx = store.begin().await?;
        let claimed = tx.claim_waiting_links(version, RELINK_CHUNK).await?;
        if claimed.is_empty() {
            break;
        }
        report.examined += claimed.len() as u64;
        let mut keep = Vec::new();
        let mut redecided = Vec::new();
        for old in &claimed {
            let event = match parse_event(old.event.as_bytes(), &ParseLimits::STORED) {
                Ok(e) => e,
                Err(e) => {
                    return Err(StoreError::Corrupt {
                        context: "stored event",
                        message: e.to_string(),
                    }
                    .into())
                }
            };
            // Decided again with the identity model of the record's own position, as the batch
            // that first read it was (whichever worker re-links it, whenever).
            let (decision, evidence) = match versions.scorer_at(&old.stream, old.line) {
                None => link_event(&register, &event),
                Some(model) => {
                    let d = register.linker().link_with(model, &event.subject);
                    let e = doudi_store::Json::encode(&d.evidence);
                    (d, e)
                }
            };
            // The decision stands when its outcome, its member and its candidates are the same
            // (weights move a little with the register's size: not a new decision).
            let candidates = |e: &doudi_model::Evidence| -> Vec<(String, String)> {
                e.candidates
                    .iter()
                    .map(|c| (c.household_id.clone(), c.member_id.clone()))
                    .collect()
            };
            let same = decision.outcome == old.outcome
                && decision.household_id == old.household_id
                && decision.member_id == old.member_id
                && old
                    .decoded_evidence()
                    .is_ok_and(|e| candidates(&e) == candidates(&decision.evidence));
            if same {
                keep.push(old.seq);
                continue;
            }
            redecided.push((old, event, decision, evidence));
        }
        // The households the new links go to, locked before anything of them is read; then the
        // records a person decided meanwhile are left to the person.
        let mut affected: Vec<String> = redecided
            .iter()
            .filter(|(_, _, d, _)| d.outcome == Outcome::Linked)
            .filter_map(|(_, _, d, _)| d.household_id.clone())
            .collect();
        affected.sort();
        affected.dedup();
        tx.lock_households(&affected).await?;
        let seqs: Vec<i64> = redecided.iter().map(|(o, ..)| o.seq).collect();
        let reviewed: BTreeSet<i64> = tx.reviewed_among(&seqs).await?.into_iter().collect();
        let mut facts = Vec::new();
        for (old, event, decision, evidence) in redecided {
            if reviewed.contains(&old.seq) {
                continue;
            }
            match decision.outcome {
                Outcome::Linked => report.linked += 1,
                Outcome::Review => report.review += 1,
                Outcome::Unmatched => report.unmatched += 1,
            }
            let row = LinkRow {
                event_seq: old.seq,
                source: old.source.clone(),
                event_id: old.event_id.clone(),
                outcome: decision.outcome,
                household_id: decision.household_id.clone(),
                member_id: decision.member_id.clone(),
                evidence,
                register_version: version,
            };
            tx.redecide_link(old, &row, version).await?;
            if let (Outcome::Linked, Some(hh), Some(member)) =
                (decision.outcome, decision.household_id, decision.member_id)
            {
                households.insert(hh.clone());
                facts.push(FactRow {
                    event_seq: old.seq,
                    fact: Fact {
                        event_id: event.event_id,
                        source: event.source,
                        household_id: hh,
                        member_id: member,
                        occurred_at: event.occurred_at,
                        payload: event.payload,
                    },
                });
            }
        }
        tx.keep_links(&keep, version).await?;
        facts.sort_by_key(|f| f.event_seq);
        if !facts.is_empty() {
            // The facts join their timelines where they happened (usually before facts applied
            // since): each household is re-derived from its earliest new fact on.
            tx.insert_facts(&facts).await?;
            // Under the lock activations take (the facts' append took it): the versions are current.
            let versions = refresh_versions(&mut tx, engine).await?;
            let mut timelines: HashMap<String, Timeline> = HashMap::new();
            for (hh, entries) in tx.timeline_entries(&affected).await? {
                timelines.insert(hh, Timeline::from_entries(entries, &versions));
            }
            let mut from: HashMap<String, usize> = HashMap::new();
            for f in &facts {
                let hh = &f.fact.household_id;
                if let Some(t) = timelines.get(hh) {
                    let at = t.position_of(f.event_seq);
                    from.entry(hh.clone())
                        .and_modify(|p| *p = (*p).min(at))
                        .or_insert(at);
                }
            }
            let mut out = BatchOutcome::default();
            derive_and_warn(&mut tx, engine, &versions, &mut timelines, &from, &mut out).await?;
            check_current(&mut tx, &versions).await?;
            report.warnings_opened += out.warnings_opened;
            report.warnings_raised += out.warnings_raised;
            tx.audit(
                "pipeline",
                "register_relinked",
                "events",
                &serde_json::json!({
                    "register_version": version,
                    "linked": facts.len(),
                    "seqs": facts.iter().map(|f| f.event_seq).collect::<Vec<_>>(),
                    "warnings_opened": out.warnings_opened,
                    "warnings_raised": out.warnings_raised,
                }),
            )
            .await?;
        }
        tx.commit().await?;
    }
    report.households = households.len() as u64;
    if report.examined > 0 {
        doudi_telemetry::info_counts!(report, "records decided again with the new register";
            register_version = version;
            examined, linked, review, unmatched, households, warnings_opened);
    }
    Ok(report)
}

/// Follow the register until `stop`: every `every`, apply the store's register changes to the
/// engine ([`refresh_register`]) and link again the records waiting for them
/// ([`relink_waiting`]; also those another worker, still on an older register, decided since).
/// A failure is logged and tried again at the next tick: the worker keeps running.
pub async fn follow_register(
    store: Store,
    engine: Arc<Engine>,
    every: Duration,
    stop: CancellationToken,
) {
    let every = every.max(Duration::from_millis(100));
    loop {
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = stop.cancelled() => break,
        }
        let step = async {
            refresh_register(&store, &engine).await?;
            let version = engine.register().version();
            if version > 0 && store.links_waiting(version).await? {
                relink_waiting(&store, &engine).await?;
            }
            Ok::<(), PipelineError>(())
        };
        if let Err(e) = step.await {
            tracing::warn!(error = %e, "following the register failed (tried again in {} s)", every.as_secs_f64());
        }
    }
}

#[cfg(test)]
mod tests {
    use doudi_model::{Household, ParseLimits, Subject};
    use doudi_risk::RuleSet;

    use crate::apply::Engine;

    fn household(id: &str, member: &str, id_number: &str) -> Household {
        serde_json::from_value(serde_json::json!({
            "household_id": id, "region_code": "341502001001", "address": "x", "category": "dibao",
            "area": "rural", "enrolled_on": "2023-05-01",
            "members": [{"member_id": member, "id_number": id_number, "name": "王秀英", "sex": "female",
                "birth_date": "1949-12-31", "relation": "head", "work_capacity": "none"}]
        }))
        .unwrap()
    }

    fn by_id(id: &str) -> Subject {
        Subject {
            id_number: Some(id.to_string()),
            ..Subject::default()
        }
    }

    #[test]
    fn a_register_change_makes_a_new_snapshot_and_leaves_the_one_a_batch_holds() {
        let engine = Engine::new(
            RuleSet::builtin(),
            ParseLimits::default(),
            vec![household("H1", "M1", "11010519491231002X")],
        );
        let held = engine.register();
        assert_eq!(held.version(), 0);
        let second = doudi_model::IdNumber::from_parts(
            "110105",
            chrono::NaiveDate::from_ymd_opt(1949, 12, 31).unwrap(),
            3,
        )
        .unwrap()
        .expose()
        .to_string();
        let added = household("H2", "M2", &second);
        assert!(engine.update_register(1, |r, index| {
            r.apply("H2", Some(added.clone()), index);
            r.apply("H1", None, index);
        }));
        let now = engine.register();
        assert_eq!(now.version(), 1);
        assert!(now.household("H1").is_none() && now.household("H2").is_some());
        assert_eq!(
            now.link(&by_id(&second)).household_id.as_deref(),
            Some("H2")
        );
        assert_eq!(now.link(&by_id("11010519491231002X")).household_id, None);
        // The snapshot taken before is as it was.
        assert_eq!(held.version(), 0);
        assert!(held.household("H1").is_some() && held.household("H2").is_none());
        assert_eq!(
            held.link(&by_id("11010519491231002X"))
                .household_id
                .as_deref(),
            Some("H1")
        );
        // A version already held is not applied again.
        assert!(!engine.update_register(1, |_, _| panic!("applied twice")));
    }

    #[test]
    fn an_assess_only_engine_follows_households_without_an_index() {
        let engine = Engine::assess_only(RuleSet::builtin(), ParseLimits::default(), vec![]);
        let h = household("H1", "M1", "11010519491231002X");
        assert!(engine.update_register(3, |r, index| r.apply("H1", Some(h.clone()), index)));
        let r = engine.register();
        assert!(r.household("H1").is_some());
        assert!(r.is_empty(), "no index: nothing links");
    }
}
