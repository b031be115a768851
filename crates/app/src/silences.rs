//! Setting a silence: notices (new warnings', escalations, reminders) held back for a household
//! or a region, for a stated reason and time. Only a supervisor whose region contains the
//! silenced one may set it; a refused attempt is audited.

use chrono::{DateTime, Utc};
use doudi_model::RegionCode;
use doudi_store::{ts, Store};
use doudi_warnings::routing::Role as OfficerRole;
use serde::Serialize;

use crate::error::AppError;
use crate::who::Who;

/// What a silence covers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Scope {
    /// A household of the register.
    Household(String),
    /// A region code (county, township or village): every household inside it.
    Region(String),
}

/// A silence to set.
#[derive(Clone, Debug)]
pub struct NewSilence {
    pub scope: Scope,
    pub reason: String,
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
}

/// A silence set.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Silenced {
    pub silence_id: i64,
    pub scope: &'static str,
    pub target: String,
    pub starts_at: String,
    pub ends_at: String,
    pub created_by: String,
}

/// Set silence `s` for supervisor `by` (in `who`'s region).
pub async fn add_silence(
    store: &Store,
    who: &Who,
    by: &str,
    s: &NewSilence,
) -> Result<Silenced, AppError> {
    let (scope, target, region) = match &s.scope {
        Scope::Region(r) => {
            let code = RegionCode::parse(r)
                .map_err(|e| AppError::BadRequest(format!("region: {e}")))?
                .as_str()
                .to_string();
            ("region", code.clone(), code)
        }
        Scope::Household(h) => {
            let Some(region) = store.household_region(h).await? else {
                return Err(AppError::NotFound(format!(
                    "household {h} is not in the register"
                )));
            };
            ("household", h.clone(), region)
        }
    };
    who.require_region(&region, &format!("{scope} {target}"))?;
    let directory = crate::engine::directory(store).await?;
    let allowed = directory.get(by).is_some_and(|o| {
        o.role == OfficerRole::Supervisor && region.starts_with(o.region.as_str())
    });
    if !allowed {
        let why = format!(
            "{by:?} may not silence {scope} {target}: only a supervisor whose region contains {region} may"
        );
        store
            .audit(
                by,
                "silence_refused",
                &format!("{scope}:{target}"),
                &serde_json::json!({"refused": why}),
            )
            .await?;
        return Err(AppError::Forbidden(why));
    }
    if s.reason.trim().is_empty() {
        return Err(AppError::BadRequest("a silence needs a reason".into()));
    }
    if s.end <= s.start {
        return Err(AppError::BadRequest(format!(
            "the silence ends ({}) before it starts ({})",
            s.end, s.start
        )));
    }
    let (starts_at, ends_at) = (ts(&s.start), ts(&s.end));
    let silence_id = store
        .add_silence(scope, &target, &s.reason, &starts_at, &ends_at, by)
        .await?;
    Ok(Silenced {
        silence_id,
        scope,
        target,
        starts_at,
        ends_at,
        created_by: by.to_string(),
    })
}
