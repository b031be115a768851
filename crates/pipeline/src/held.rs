//! The register as a worker holds it at one version: the identity index over its members and
//! its households' records (all of them, or as many as `memory.register_households` allows: the
//! others are read from the store as of this version when a record of theirs comes). A leaf of
//! the crate: the applier ([`crate::apply`]) reads it, the register stream
//! ([`crate::register`]) changes it.

use std::collections::HashMap;
use std::ops::Deref;
use std::sync::{Arc, Mutex, PoisonError};

use doudi_linkage::Linker;
use doudi_model::Household;
use doudi_store::BatchTx;

use crate::cache::{Held, HouseholdCache, MemoryCaps};
use crate::PipelineError;

/// One version of the register as a worker holds it: the identity index over its members (for
/// linking) and the households' records (for assessing), held in a bounded cache shared by every
/// snapshot of the engine. Dereferences to its [`Linker`].
#[derive(Clone, Debug)]
pub struct Register {
    households: Arc<Mutex<HouseholdCache>>,
    linker: Linker,
}

impl Register {
    /// The register of `households`, linked with `linker` (built over the same households).
    pub fn new(households: Vec<Household>, linker: Linker) -> Register {
        Register::with_households(households, true, linker, MemoryCaps::default().households)
    }

    /// The register linked with `linker`, holding at most `cap` household records, these first;
    /// `complete`: they are the whole register (else those not held are read from the store).
    pub fn with_households(
        households: Vec<Household>,
        complete: bool,
        linker: Linker,
        cap: usize,
    ) -> Register {
        Register {
            households: Arc::new(Mutex::new(HouseholdCache::new(cap, households, complete))),
            linker,
        }
    }

    fn cache(&self) -> std::sync::MutexGuard<'_, HouseholdCache> {
        self.households
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Hold at most `cap` household records from now on.
    pub(crate) fn set_household_cap(&self, cap: usize) {
        self.cache().set_cap(cap);
    }

    /// The most household records held, and how many are held now.
    pub fn households_held(&self) -> (usize, usize) {
        let c = self.cache();
        (c.cap(), c.len())
    }

    /// The store's register version this one holds (0: before the first import, or unknown).
    pub fn version(&self) -> i64 {
        self.linker.register_version()
    }

    /// The household `id`, if it is in the register and its record is held (see
    /// [`Register::records`] for one read from the store when it is not).
    pub fn household(&self, id: &str) -> Option<Arc<Household>> {
        match self.cache().get(id, self.version()) {
            Held::Record(h) => Some(h),
            Held::Absent | Held::Unknown => None,
        }
    }

    /// The records of those of `ids` in the register at this version: held ones, the others
    /// read in `tx` as of this version (and held from then on, within the cap).
    pub async fn records(
        &self,
        tx: &mut BatchTx,
        ids: &[String],
    ) -> Result<HashMap<String, Arc<Household>>, PipelineError> {
        let (mut found, missing) = self.held(ids);
        if !missing.is_empty() {
            let read = tx.households_as_of(&missing, self.version()).await?;
            self.keep(read, &mut found);
        }
        Ok(found)
    }

    /// [`Register::records`] read through the store's pool (outside a batch).
    pub async fn records_from(
        &self,
        store: &doudi_store::Store,
        ids: &[String],
    ) -> Result<HashMap<String, Arc<Household>>, PipelineError> {
        let (mut found, missing) = self.held(ids);
        if !missing.is_empty() {
            let read = store.households_as_of(&missing, self.version()).await?;
            self.keep(read, &mut found);
        }
        Ok(found)
    }

    /// The held records of `ids`, and those not known here.
    fn held(&self, ids: &[String]) -> (HashMap<String, Arc<Household>>, Vec<String>) {
        let version = self.version();
        let mut cache = self.cache();
        let mut found = HashMap::with_capacity(ids.len());
        let mut missing = Vec::new();
        for id in ids {
            match cache.get(id, version) {
                Held::Record(h) => {
                    found.insert(id.clone(), h);
                }
                Held::Absent => {}
                Held::Unknown => missing.push(id.clone()),
            }
        }
        (found, missing)
    }

    /// Records read from the store as of this version: into `found`, and held.
    fn keep(&self, read: Vec<Household>, found: &mut HashMap<String, Arc<Household>>) {
        let read: Vec<Arc<Household>> = read.into_iter().map(Arc::new).collect();
        self.cache().keep(&read, self.version());
        for h in read {
            found.insert(h.household_id.clone(), h);
        }
    }

    /// The identity linker over the register's members.
    pub fn linker(&self) -> &Linker {
        &self.linker
    }

    /// The linker, to change in place (its register version, its members).
    pub(crate) fn linker_mut(&mut self) -> &mut Linker {
        &mut self.linker
    }

    /// Replace the linker by what `f` makes of it (another model or thresholds), without a copy.
    pub(crate) fn map_linker(&mut self, f: impl FnOnce(Linker) -> Linker) {
        let placeholder = Linker::with_prior(doudi_linkage::RegisterIndex::default());
        let linker = std::mem::replace(&mut self.linker, placeholder);
        self.linker = f(linker);
    }

    /// The register is about to become version `version`: the changes applied next are of it.
    pub(crate) fn begin_version(&mut self, version: i64) {
        self.cache().set_version(version);
    }

    /// Apply one household's change: its current record (`Some`) or its removal (`None`). The
    /// identity index changes only when the household is indexed (an assess-only engine indexes
    /// nothing).
    pub(crate) fn apply(&mut self, id: &str, record: Option<Household>, index: bool) {
        if index {
            match &record {
                Some(h) => self.linker.upsert_household(h),
                None => {
                    self.linker.remove_household(id);
                }
            }
        }
        self.cache().apply(id, record);
    }
}

impl Deref for Register {
    type Target = Linker;
    fn deref(&self) -> &Linker {
        &self.linker
    }
}
