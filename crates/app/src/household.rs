//! Reading a household's personal data: its register record, its timeline, its trace — each in
//! the asker's region only, masked as the policy says for the asker's role ([`crate::mask`]),
//! and audited (who read whose data, through what, masked or not) either way.

use doudi_store::{HouseholdRecord, Store, TraceEntry};

use crate::error::AppError;
use crate::mask::{in_clear, mask_json, mask_trace_entry, View};
use crate::who::Who;

/// Record that `who` read household `household_id`'s personal data through `via` (a route, a
/// command), as `view` shows it.
pub async fn audit_read(
    store: &Store,
    who: &Who,
    household_id: &str,
    via: &str,
    view: View,
) -> Result<(), AppError> {
    let masked = !in_clear(who.role, view);
    let mut detail = serde_json::json!({"via": via, "masked": masked, "role": who.role.code()});
    if let Some(id) = who.token_id {
        detail["token_id"] = id.into();
    }
    if let Some(client) = &who.client {
        detail["client"] = client.as_str().into();
    }
    store
        .audit(
            &who.actor,
            "read_personal_data",
            &format!("household:{household_id}"),
            &detail,
        )
        .await?;
    Ok(())
}

/// What was read, and whether it is masked.
#[derive(Clone, Debug)]
pub struct Read<T> {
    pub value: T,
    pub masked: bool,
}

/// A household's register record, as the asker's role sees it.
pub async fn household(
    store: &Store,
    who: &Who,
    household_id: &str,
    via: &str,
) -> Result<Read<HouseholdRecord>, AppError> {
    let Some(mut h) = store.household(household_id).await? else {
        return Err(not_in_register(household_id));
    };
    who.require_region(&h.region_code, &not_in_register(household_id).to_string())?;
    audit_read(store, who, household_id, via, View::Household).await?;
    let masked = !in_clear(who.role, View::Household);
    if masked {
        mask_json(&mut h.record);
    }
    Ok(Read { value: h, masked })
}

/// A household's trace (`View::Trace`: everything, in order) or its timeline (`View::Timeline`:
/// its events and assessments), as the asker's role sees it.
pub async fn trace(
    store: &Store,
    who: &Who,
    household_id: &str,
    view: View,
    via: &str,
) -> Result<Read<Vec<TraceEntry>>, AppError> {
    let Some(region) = store.household_region(household_id).await? else {
        return Err(not_in_register(household_id));
    };
    who.require_region(&region, &not_in_register(household_id).to_string())?;
    let mut entries = store.trace(household_id).await?;
    if view == View::Timeline {
        entries.retain(|e| matches!(e, TraceEntry::Event { .. } | TraceEntry::Assessment { .. }));
    }
    audit_read(store, who, household_id, via, view).await?;
    let masked = !in_clear(who.role, view);
    if masked {
        entries.iter_mut().for_each(mask_trace_entry);
    }
    Ok(Read {
        value: entries,
        masked,
    })
}

fn not_in_register(household_id: &str) -> AppError {
    AppError::NotFound(format!("household {household_id} is not in the register"))
}
