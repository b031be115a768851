//! The pipeline's engine as the use cases need it: rules, the register, the officer directory and
//! the active identity model, read from the store — the whole register for a run or a replay
//! (linking needs its index), a few households for a request about them (a review decision).
//! Training the identity model on a sample of the feeds, people's review decisions blended in, is
//! here too: a first run trains one before it links.
//!
//! Rule sets and models are activated at stream positions (issue 19 item 2; see
//! `doudi_pipeline::versions`): [`activate_rules`] and [`activate_model`] are the one way either
//! becomes current, and running workers adopt it between two batches, for the records after the
//! positions it was stored at. A first run stores the configured rule set as the first activation
//! (from the start of every stream); a worker configured with another rule set than the active one
//! uses the active one and says so.
//!
//! A model is activated only if it is usable: a degenerate one (EM learned something other than
//! "same person", or the match share collapsed; see `doudi_linkage::em`) is refused, the last good
//! model stays active, and the refusal is logged (warn), counted (`doudi_linkage_models{outcome=
//! "refused"}`) and recorded in the audit trail (`linkage_model_refused`), where
//! `doudi linkage show` finds it. A stored model that fails the same check is not used (the prior
//! is).

use std::path::{Path, PathBuf};

use doudi_linkage::{check_model, Degenerate, LabelledPair, Model, Thresholds};
use doudi_linkage::{IndexBuilder, Linker};
use doudi_model::ParseLimits;
use doudi_pipeline::{Engine, MemoryCaps, Register};
use doudi_risk::RuleSet;
use doudi_store::{ActivationKind, ActivationRow, OfficerImport, OfficerRow, Store, StoreError};
use doudi_warnings::routing::{Directory, Officer};

use crate::error::AppError;

/// What an engine is made with besides the store.
#[derive(Clone, Debug)]
pub struct EngineSettings {
    pub rules: RuleSet,
    /// The rule set's TOML, stored with its first activation (`None` for the built-in one: its
    /// text is known; another without its text is not stored).
    pub rules_toml: Option<String>,
    pub limits: ParseLimits,
    /// Identity decision thresholds.
    pub thresholds: Thresholds,
    /// Feed records sampled to train the identity model.
    pub train_sample: usize,
    /// EM iterations of a training.
    pub train_iterations: usize,
    /// How strongly people's review decisions weigh when blended into a trained model.
    pub label_strength: f64,
    /// How warning deadlines follow from event and receipt times (`[warnings]`).
    pub deadlines: doudi_warnings::fold::DeadlinePolicy,
    /// How much a worker holds in memory (`[memory]`).
    pub memory: MemoryCaps,
    /// Where the identity index keeps its bulk (`memory.identity_members`, `memory.identity_dir`).
    pub identity_index: IdentityIndexSettings,
}

/// How much of the identity index a worker holds in memory.
#[derive(Clone, Debug, PartialEq)]
pub struct IdentityIndexSettings {
    /// Register members whose identity numbers, birth dates, sexes and blocking keys the index
    /// holds in memory (about 100 of its 130–160 bytes a member); past it, they are written to
    /// a private file and read back by positioned reads (the results are the same).
    pub members_in_memory: usize,
    /// The file's directory: `None` for beside the SQLite database (the system's temporary
    /// directory for PostgreSQL).
    pub dir: Option<PathBuf>,
}

/// Members an identity index holds in memory unless configured otherwise: a 900,000-household
/// register (about 300 MB of index).
pub const DEFAULT_IDENTITY_MEMBERS: usize = 2_000_000;

impl Default for IdentityIndexSettings {
    fn default() -> Self {
        IdentityIndexSettings {
            members_in_memory: DEFAULT_IDENTITY_MEMBERS,
            dir: None,
        }
    }
}

impl IdentityIndexSettings {
    /// The directory the index file goes in for `store`.
    fn dir(&self, store: &Store) -> PathBuf {
        if let Some(d) = &self.dir {
            return d.clone();
        }
        store
            .sqlite_file()
            .and_then(|f| f.parent().map(Path::to_path_buf))
            .map(|d| {
                if d.as_os_str().is_empty() {
                    PathBuf::from(".")
                } else {
                    d
                }
            })
            .unwrap_or_else(std::env::temp_dir)
    }
}

impl EngineSettings {
    /// Settings around a rule set, the rest as configured by default.
    pub fn with_rules(rules: RuleSet) -> EngineSettings {
        EngineSettings {
            rules,
            rules_toml: None,
            limits: ParseLimits::default(),
            thresholds: Thresholds::default(),
            train_sample: 50_000,
            train_iterations: 25,
            label_strength: 1000.0,
            deadlines: doudi_warnings::fold::DeadlinePolicy::default(),
            memory: MemoryCaps::default(),
            identity_index: IdentityIndexSettings::default(),
        }
    }
}

/// The stored officer directory.
pub async fn directory(store: &Store) -> Result<Directory, AppError> {
    let rows = store.load_officers().await?;
    let officers = rows
        .iter()
        .map(|r| {
            serde_json::from_str::<Officer>(&r.record).map_err(|e| {
                AppError::Unusable(format!(
                    "stored officer {} is unreadable: {e}",
                    r.officer_id
                ))
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    Directory::new(officers).map_err(|e| {
        AppError::Unusable(format!(
            "the stored officer directory is inconsistent ({e}); import it again"
        ))
    })
}

/// Store `officers` as the officer directory, each as its record with the columns routing reads
/// (id, role, region); officers stored before and not among them become inactive (see
/// [`Store::import_officers`]).
pub async fn import_directory(
    store: &Store,
    officers: &[Officer],
) -> Result<OfficerImport, AppError> {
    let rows = officers
        .iter()
        .map(|o| {
            Ok(OfficerRow {
                officer_id: o.officer_id.clone(),
                role: o.role.code().to_string(),
                region_code: o.region.as_str().to_string(),
                record: serde_json::to_string(o).map_err(|e| {
                    AppError::BadRequest(format!("officer {} cannot be stored: {e}", o.officer_id))
                })?,
            })
        })
        .collect::<Result<Vec<_>, AppError>>()?;
    Ok(store.import_officers(&rows).await?)
}

/// The stored active identity model, if one was stored (unchecked: see [`active_model`]).
pub async fn stored_model(store: &Store) -> Result<Option<Model>, AppError> {
    store
        .active_linkage_model()
        .await?
        .map(|m| {
            serde_json::from_str::<Model>(&m.model).map_err(|e| {
                AppError::Unusable(format!(
                    "stored linkage model {} is unreadable: {e}",
                    m.version
                ))
            })
        })
        .transpose()
}

/// The active identity model, if one was stored and it passes [`check_model`]; a stored model
/// that does not is not used (logged and counted as refused: the engine links with the prior).
pub async fn active_model(store: &Store) -> Result<Option<Model>, AppError> {
    Ok(match stored_model(store).await? {
        Some(model) => match check_model(&model) {
            Ok(()) => Some(model),
            Err(reason) => {
                tracing::warn!(model = %model.version, %reason, "the stored identity model is degenerate: not used, linking with the prior");
                doudi_telemetry::linkage_model("refused");
                None
            }
        },
        None => None,
    })
}

/// What became of a trained identity model.
#[derive(Clone, Debug)]
pub enum Activation {
    /// Stored and made the active model, at the activation's positions.
    Activated(Model, ActivationRow),
    /// Degenerate: not stored; `kept` is the version still active (`None`: the prior).
    Refused {
        reason: Degenerate,
        kept: Option<String>,
    },
    /// Nothing to train on.
    NoRecords,
}

/// Refuse a degenerate model: log, count and audit it; the active model stays.
async fn refuse(store: &Store, reason: Degenerate, records: usize) -> Result<Activation, AppError> {
    let kept = stored_model(store).await?.map(|m| m.version);
    tracing::warn!(
        %reason,
        kept = kept.as_deref().unwrap_or("prior"),
        "refused a degenerate identity model; the last good model stays active"
    );
    doudi_telemetry::linkage_model("refused");
    store
        .audit(
            "doudi",
            "linkage_model_refused",
            "linkage",
            &serde_json::json!({
                "reason": reason.to_string(),
                "field": reason.field(),
                "records": records,
                "kept": kept,
            }),
        )
        .await?;
    Ok(Activation::Refused { reason, kept })
}

/// The engine over the whole stored register, with the rules, the officer directory and the
/// active identity model. With no model stored yet and `feeds` given, one is trained on a sample
/// of the feeds first and stored, so that every later run (a restart too) links with the same
/// model.
pub async fn load_engine(
    store: &Store,
    settings: &EngineSettings,
    feeds: Option<&Path>,
) -> Result<Engine, AppError> {
    // The version first: an import landing in between is applied again by the first refresh.
    let version = store.register_version().await?;
    // Streamed: every member indexed, the records kept up to the cap (the others are read from
    // the store when a record of theirs comes), so the whole register is never held at once.
    let cap = settings.memory.households;
    let bound = &settings.identity_index;
    let mut index = IndexBuilder::on_disk_past(bound.members_in_memory, bound.dir(store));
    let mut held = Vec::new();
    let mut households = 0usize;
    store
        .load_register_in_batches(|batch| {
            for h in batch {
                index.add(&h);
                households += 1;
                if held.len() < cap {
                    held.push(h);
                }
            }
        })
        .await?;
    if households == 0 {
        tracing::warn!(
            "the register is empty: every event will be unmatched (run `doudi import FILE` first)"
        );
    }
    let complete = held.len() == households;
    // A file that cannot be written (a full or read-only disk) is named with its directory.
    let index = index
        .try_finish()
        .map_err(|e| AppError::Unusable(format!("{e} (memory.identity_dir)")))?;
    tracing::info!(
        households,
        members = index.len(),
        records_held = held.len(),
        index_heap_mib = index.heap_bytes() / (1 << 20),
        index_file_mib = index.file_bytes().map(|b| b / (1 << 20)),
        "register indexed (household records held up to memory.register_households; the identity index's bulk on disk past memory.identity_members)"
    );
    let register = Register::with_households(
        held,
        complete,
        // The prior model until a trained one is stored (see `doudi_linkage::train`).
        Linker::with_prior(index),
        cap,
    );
    let engine = with_parts(store, settings, households, |rules, limits| {
        Engine::over_register(rules, limits, register)
    })
    .await?
    .at_register_version(version);
    let model = match active_model(store).await? {
        Some(model) => Some(model),
        None => match feeds {
            Some(dir) if !engine.index().is_empty() => {
                match train_and_store(store, settings, &engine, dir).await? {
                    Activation::Activated(model, _) => Some(model),
                    Activation::Refused { .. } | Activation::NoRecords => None,
                }
            }
            _ => None,
        },
    };
    let engine = match model {
        Some(model) => {
            tracing::info!(model = %model.version, "identity model loaded");
            engine.with_model(model, settings.thresholds.clone())
        }
        None => {
            tracing::info!("identity model: the prior (none trained yet)");
            engine
        }
    };
    first_activations(store, settings).await?;
    load_versions(store, &engine).await?;
    Ok(engine)
}

/// Store what was current before activations were (a first run's configured rule set, a model
/// stored by an earlier release) as the first activation of its kind, from the start of every
/// stream; and say so when the configured rule set is not the active one.
async fn first_activations(store: &Store, settings: &EngineSettings) -> Result<(), AppError> {
    let text = match &settings.rules_toml {
        Some(t) => Some(t.as_str()),
        None if settings.rules == RuleSet::builtin() => Some(RuleSet::builtin_toml()),
        None => None,
    };
    let active = match text {
        Some(text) => {
            let (row, stored) = store
                .activate(
                    ActivationKind::Rules,
                    &settings.rules.version,
                    text,
                    "doudi",
                    true,
                )
                .await?;
            if stored {
                tracing::info!(rule_set = %row.version, "the configured rule set is the first activated one, from the start of every stream");
            }
            Some(row)
        }
        None => store
            .activations()
            .await?
            .into_iter()
            .rev()
            .find(|a| a.kind == ActivationKind::Rules),
    };
    if let Some(active) = active {
        if active.version != settings.rules.version {
            tracing::warn!(
                configured = %settings.rules.version,
                active = %active.version,
                "the configured rule set is not the active one: records are assessed with the active one (activated {}); to change it, run `doudi rules activate FILE` (every worker adopts it at one stream position)",
                active.activated_at
            );
        }
    }
    if let Some(m) = store.active_linkage_model().await? {
        let (row, stored) = store
            .activate(ActivationKind::Model, &m.version, &m.version, "doudi", true)
            .await?;
        if stored {
            tracing::info!(model = %row.version, "the stored identity model is the first activated one, from the start of every stream");
        }
    }
    Ok(())
}

/// Give the engine every activated rule set and model (running workers then follow new ones
/// between batches).
pub async fn load_versions(store: &Store, engine: &Engine) -> Result<(), AppError> {
    let mut tx = store.begin().await?;
    let versions = doudi_pipeline::apply::refresh_versions(&mut tx, engine).await?;
    drop(tx);
    tracing::info!(
        activations = versions.generation,
        rule_set = %versions.latest_rules().version,
        "activated versions loaded"
    );
    Ok(())
}

/// Validate a rule set and activate it: every worker assesses the records after the streams'
/// committed positions with it (between two batches; no restart), the records before with the
/// version they were decided with.
pub async fn activate_rules(
    store: &Store,
    text: &str,
    who: &str,
) -> Result<ActivationRow, AppError> {
    let rules = RuleSet::from_toml_str(text)
        .map_err(|e| AppError::BadRequest(format!("the rule set is invalid: {e}")))?;
    let (row, _) = store
        .activate(ActivationKind::Rules, &rules.version, text, who, false)
        .await?;
    tracing::info!(activation = row.id, rule_set = %row.version, streams = row.from.len(), "rule set activated");
    Ok(row)
}

/// Activate an identity model (the one way a model becomes current): a degenerate one is refused
/// (logged, counted, audited; the last good model stays); a usable one is stored and activated at
/// the streams' committed positions, adopted by every worker between two batches. `records`: how
/// many it was trained on.
pub async fn activate_model(
    store: &Store,
    model: Model,
    records: usize,
    who: &str,
) -> Result<Activation, AppError> {
    if let Err(reason) = check_model(&model) {
        return refuse(store, reason, records).await;
    }
    let text = serde_json::to_string(&model)
        .map_err(|e| AppError::Unusable(format!("cannot encode the identity model: {e}")))?;
    let row = store
        .activate_linkage_model(&model.version, &text, records as i64, who)
        .await?;
    doudi_telemetry::linkage_model("activated");
    Ok(Activation::Activated(model, row))
}

/// The engine for applying facts already linked to these households (a review decision): the
/// rules, the officer directory and these households of the register alone, without an identity
/// index.
pub async fn assessor_for(
    store: &Store,
    settings: &EngineSettings,
    household_ids: &[String],
) -> Result<Engine, AppError> {
    let households = store.register_households(household_ids).await?;
    with_parts(store, settings, households.len(), |rules, limits| {
        Engine::assess_only(rules, limits, households)
    })
    .await
}

/// Rules, `households` households and the officer directory, made into an engine by `build`.
async fn with_parts(
    store: &Store,
    settings: &EngineSettings,
    households: usize,
    build: impl FnOnce(RuleSet, ParseLimits) -> Engine,
) -> Result<Engine, AppError> {
    tracing::info!(households, rule_set = %settings.rules.version, "register and rules loaded");
    let directory = directory(store).await?;
    if directory.is_empty() {
        tracing::warn!(
            "no officer directory: warnings stay unassigned (run `doudi officers import FILE`)"
        );
    }
    Ok(build(settings.rules.clone(), settings.limits)
        .with_directory(directory)
        .with_deadlines(settings.deadlines)
        .with_memory(settings.memory))
}

/// Train the identity model on a sample of `feeds` (people's review decisions blended in) and make
/// it the active one if it is usable; a degenerate model is refused and the last good one kept.
pub async fn train_and_store(
    store: &Store,
    settings: &EngineSettings,
    engine: &Engine,
    feeds: &Path,
) -> Result<Activation, AppError> {
    let subjects = tokio::task::block_in_place(|| {
        doudi_pipeline::files::sample_subjects(feeds, &settings.limits, settings.train_sample)
    })?;
    train_on(store, settings, engine, &subjects, "the feeds").await
}

/// Train the identity model on `subjects` (a sample of feed records, from files or a stream),
/// blend in people's review decisions, and activate it if it is usable.
pub async fn train_on(
    store: &Store,
    settings: &EngineSettings,
    engine: &Engine,
    subjects: &[doudi_model::Subject],
    from: &str,
) -> Result<Activation, AppError> {
    let started = std::time::Instant::now();
    if subjects.is_empty() {
        return Ok(Activation::NoRecords);
    }
    let trained = tokio::task::block_in_place(|| {
        doudi_linkage::train(engine.index().index(), subjects, settings.train_iterations)
    });
    let model = match trained {
        Ok(model) => model,
        Err(reason) => return refuse(store, reason, subjects.len()).await,
    };
    // People's review decisions, where there are any, improve the estimate.
    let labels = labelled_pairs(store).await?;
    let model = if labels.is_empty() {
        model
    } else {
        let (blended, used) = doudi_linkage::blend_labels(
            &model,
            engine.index().index(),
            &labels,
            settings.label_strength,
        );
        tracing::info!(
            labels = used,
            "blended people's review decisions into the identity model"
        );
        blended
    };
    let activation = activate_model(store, model, subjects.len(), "doudi").await?;
    if let Activation::Activated(model, _) = &activation {
        tracing::info!(
            model = %model.version,
            records = subjects.len(),
            ms = started.elapsed().as_millis() as u64,
            "trained the identity model on a sample of {from}"
        );
    }
    Ok(activation)
}

/// Labelled pairs from decided reviews: the member a person linked is a match; every other
/// candidate the linker offered (all of them, for a rejection) is a non-match.
pub async fn labelled_pairs(store: &Store) -> Result<Vec<LabelledPair>, AppError> {
    let limits = ParseLimits::STORED;
    let mut out = Vec::new();
    for (event, decision, evidence) in store.decided_reviews().await? {
        let event = doudi_model::parse_event(event.as_bytes(), &limits).map_err(|e| {
            StoreError::Corrupt {
                context: "events.normalised",
                message: e.to_string(),
            }
        })?;
        let chosen = decision.member_id.as_deref();
        if let (Some(hh), Some(m)) = (&decision.household_id, chosen) {
            out.push(LabelledPair {
                subject: event.subject.clone(),
                household_id: hh.clone(),
                member_id: m.to_string(),
                is_match: true,
            });
        }
        for (hh, m) in evidence.candidate_members() {
            if Some(m) != chosen {
                out.push(LabelledPair {
                    subject: event.subject.clone(),
                    household_id: hh.to_string(),
                    member_id: m.to_string(),
                    is_match: false,
                });
            }
        }
    }
    Ok(out)
}
