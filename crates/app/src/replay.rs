//! Replaying dead letters after a fix (a raised limit, a corrected parser): those that pass now go
//! through the pipeline once (link, assess, warn) with an engine over the whole register (linking
//! needs its index) and the active identity model; the others stay, with why. Audited.

use doudi_pipeline::{ReplayOptions, ReplayReport};
use doudi_store::Store;

use crate::engine::{load_engine, EngineSettings};
use crate::error::AppError;
use crate::who::Who;

/// Replay the dead letters `opts` selects; `None` when there is none to replay (then no engine is
/// built).
pub async fn replay(
    store: &Store,
    settings: &EngineSettings,
    who: &Who,
    opts: &ReplayOptions<'_>,
) -> Result<Option<ReplayReport>, AppError> {
    if store
        .dead_letters_to_replay(opts.ids, opts.reason, 0, 1)
        .await?
        .is_empty()
    {
        return Ok(None);
    }
    let engine = load_engine(store, settings, None).await?;
    let report = doudi_pipeline::replay_dead_letters(store, &engine, opts).await?;
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
