//! What a contribution rests on: the records of a household's state that a rule cites by their
//! event id and that count (or not) by the day they happened. A leaf beside [`crate::state`]:
//! the rules, the risk clearing and the reviews read records through it alike.

use chrono::NaiveDate;

use crate::state::{
    DangerousHouseRecord, DeathRecord, DisabilityRecord, DisasterRecord, EmploymentLoss,
    IllnessRecord, IncomePoint, RelocationRecord, SettlementRecord,
};

/// A record of the state that a contribution can cite.
pub trait Evidence {
    /// The event the record was derived from.
    fn event_id(&self) -> &str;
    /// The day it happened (by its own data, not when it was reported).
    fn on(&self) -> NaiveDate;
}

/// Each record type with the field that holds its day.
macro_rules! evidence {
    ($($record:ident => $on:ident),* $(,)?) => {
        $(
            impl Evidence for $record<'_> {
                fn event_id(&self) -> &str {
                    self.event_id
                }
                fn on(&self) -> NaiveDate {
                    self.$on
                }
            }
        )*
    };
}

evidence! {
    DeathRecord => died_on,
    SettlementRecord => settled_on,
    IllnessRecord => diagnosed_on,
    EmploymentLoss => on,
    DisabilityRecord => certified_on,
    DangerousHouseRecord => appraised_on,
    DisasterRecord => occurred_on,
    RelocationRecord => relocated_on,
    IncomePoint => on,
}

/// The event ids of `records`, in order: the evidence listed with a contribution.
pub fn event_ids<T: Evidence>(records: &[&T]) -> Vec<String> {
    records.iter().map(|r| r.event_id().to_string()).collect()
}
