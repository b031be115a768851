//! The register as a worker holds it at one version: its households and the identity index over
//! their members. A leaf of the crate: the applier ([`crate::apply`]) reads it, the register
//! stream ([`crate::register`]) changes it.

use std::collections::HashMap;
use std::ops::Deref;

use doudi_linkage::Linker;
use doudi_model::Household;

/// One version of the register as a worker holds it: the households (for assessing) and the
/// identity index over their members (for linking). Dereferences to its [`Linker`].
#[derive(Clone, Debug)]
pub struct Register {
    households: HashMap<String, Household>,
    linker: Linker,
}

impl Register {
    /// The register of `households`, linked with `linker` (built over the same households).
    pub fn new(households: Vec<Household>, linker: Linker) -> Register {
        Register {
            households: households
                .into_iter()
                .map(|h| (h.household_id.clone(), h))
                .collect(),
            linker,
        }
    }

    /// The store's register version this one holds (0: before the first import, or unknown).
    pub fn version(&self) -> i64 {
        self.linker.register_version()
    }

    /// The household `id`, if it is in the register.
    pub fn household(&self, id: &str) -> Option<&Household> {
        self.households.get(id)
    }

    /// Households in the register.
    pub fn households(&self) -> usize {
        self.households.len()
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

    /// Apply one household's change: its current record (`Some`) or its removal (`None`). The
    /// identity index changes only when the household is indexed (an assess-only engine indexes
    /// nothing).
    pub(crate) fn apply(&mut self, id: &str, record: Option<Household>, index: bool) {
        match record {
            Some(h) => {
                if index {
                    self.linker.upsert_household(&h);
                }
                self.households.insert(id.to_string(), h);
            }
            None => {
                if index {
                    self.linker.remove_household(id);
                }
                self.households.remove(id);
            }
        }
    }
}

impl Deref for Register {
    type Target = Linker;
    fn deref(&self) -> &Linker {
        &self.linker
    }
}
