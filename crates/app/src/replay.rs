//! Replaying dead letters after a fix (a raised limit, a corrected parser): those that pass now go
//! through the pipeline once (link, assess, warn) with an engine over the whole register (linking
//! needs its index) and the active identity model; the others stay, with why. Audited.

use std::path::Path;

use doudi_pipeline::{ReplayOptions, ReplayReport};
use doudi_store::Store;

use crate::engine::{load_engine, EngineSettings};
use crate::error::AppError;
use crate::who::Who;

/// Which dead letters to replay.
#[derive(Clone, Debug)]
pub struct Replay<'a> {
    /// Only these ids (empty: all not replayed yet).
    pub ids: &'a [i64],
    /// Only this reason code.
    pub reason: Option<&'a str>,
    /// The feeds folder, to re-read records kept only in part.
    pub feeds: &'a Path,
    /// Dead letters applied per transaction.
    pub page_size: i64,
}

/// Replay the dead letters `r` selects; `None` when there is none to replay (no engine is built).
pub async fn replay(
    store: &Store,
    settings: &EngineSettings,
    who: &Who,
    r: &Replay<'_>,
) -> Result<Option<ReplayReport>, AppError> {
    if store
        .dead_letters_to_replay(r.ids, r.reason, 0, 1)
        .await?
        .is_empty()
    {
        return Ok(None);
    }
    let engine = load_engine(store, settings, None).await?;
    let opts = ReplayOptions {
        ids: r.ids,
        reason: r.reason,
        feeds: r.feeds,
        limits: settings.limits,
        page_size: r.page_size.max(1),
    };
    let report = doudi_pipeline::replay_dead_letters(store, &engine, &opts).await?;
    store
        .audit(
            &who.actor,
            "dead_letters_replayed",
            "dead_letters",
            &serde_json::json!({"replayed": report.replayed, "still_refused": report.still_refused.len()}),
        )
        .await?;
    tracing::info!(
        replayed = report.replayed,
        still_refused = report.still_refused.len(),
        "dead letters replayed"
    );
    Ok(Some(report))
}
