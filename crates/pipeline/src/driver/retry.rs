//! The database retry policy of every driver: a batch (or its staging) that failed because the
//! database is away — restarting, a dropped connection, a lock held by another writer — is tried
//! again with exponential backoff until it commits; any other failure stops the driver at once.
//! Every wait between attempts ends early when the driver's stop token is cancelled: a run told
//! to stop while the database is away stops at once, its batch uncommitted (read again).

use std::future::Future;
use std::time::Duration;

use doudi_store::StoreError;

use super::CancellationToken;
use crate::PipelineError;

/// Whether a failed store operation may succeed if tried again (the database restarting, a
/// dropped connection, a lock held by another writer).
pub fn is_transient(e: &StoreError) -> bool {
    let source = match e {
        StoreError::Db { source, .. } | StoreError::Open { source, .. } => source,
        _ => return false,
    };
    match source {
        sqlx::Error::Io(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::WorkerCrashed
        | sqlx::Error::Protocol(_)
        | sqlx::Error::Tls(_) => true,
        sqlx::Error::Database(db) => {
            let code = db.code().unwrap_or_default();
            // PostgreSQL: connection exceptions, shutdown, starting up, serialization/deadlock.
            // SQLite: busy, locked.
            code.starts_with("08")
                || code.starts_with("57P")
                || code == "40001"
                || code == "40P01"
                || matches!(code.as_ref(), "5" | "6" | "261" | "262" | "517")
        }
        _ => false,
    }
}

/// Whether a pipeline failure is a transient database one.
pub fn is_transient_failure(e: &PipelineError) -> bool {
    match e {
        PipelineError::Store(s) => is_transient(s),
        // Applied again at once, with the versions just activated.
        PipelineError::VersionsChanged { .. } => true,
        _ => false,
    }
}

/// Delays between attempts: doubling from `first` up to `max`.
#[derive(Clone, Debug)]
pub struct Backoff {
    next: Duration,
    max: Duration,
}

impl Default for Backoff {
    /// 100 ms, doubling up to 5 s.
    fn default() -> Self {
        Backoff::new(Duration::from_millis(100), Duration::from_secs(5))
    }
}

impl Backoff {
    pub fn new(first: Duration, max: Duration) -> Self {
        Backoff { next: first, max }
    }

    /// The delay before the next attempt (each is twice the one before, at most `max`).
    pub fn next_delay(&mut self) -> Duration {
        let d = self.next;
        self.next = (self.next * 2).min(self.max);
        d
    }
}

/// Run `op` until it succeeds; a transient database failure is retried after the backoff's
/// delay, any other failure is returned. `what` names the operation in logs and metrics. When
/// `stop` is cancelled during a wait, returns [`PipelineError::Stopped`] without trying again.
pub async fn retry<T, F, Fut>(
    what: &'static str,
    backoff: Backoff,
    stop: Option<&CancellationToken>,
    mut op: F,
) -> Result<T, PipelineError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, PipelineError>>,
{
    match op().await {
        Ok(v) => Ok(v),
        Err(e) => retry_after(what, e, backoff, stop, op).await,
    }
}

/// `op` failed with `first`: if the database may come back, run it again with backoff until it
/// succeeds (or `stop` is cancelled: [`PipelineError::Stopped`]); otherwise return the failure.
pub async fn retry_after<T, F, Fut>(
    what: &'static str,
    first: PipelineError,
    mut backoff: Backoff,
    stop: Option<&CancellationToken>,
    mut op: F,
) -> Result<T, PipelineError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, PipelineError>>,
{
    let mut e = first;
    let mut attempt = 1u32;
    // Activations that landed while the operation ran: it is run again at once, with them (each
    // one is a committed change, so this ends; the cap only guards against a broken store).
    let mut reversioned = 0u32;
    loop {
        let delay = match &e {
            PipelineError::VersionsChanged { seen, now } if reversioned < 100 => {
                reversioned += 1;
                tracing::info!(seen, now, "a rule set or identity model was activated while {what} was applied; applying it again with it");
                Duration::ZERO
            }
            PipelineError::Store(s) if is_transient(s) => {
                doudi_telemetry::db_error("batch");
                let delay = backoff.next_delay();
                tracing::warn!(attempt, error = %s, retry_in_ms = delay.as_millis() as u64, "{what} failed on the database; retrying");
                delay
            }
            _ => return Err(e),
        };
        // No wait after an activation: a stop is then honoured at the next batch boundary.
        if !delay.is_zero() {
            match stop {
                Some(stop) => tokio::select! {
                    _ = tokio::time::sleep(delay) => {}
                    _ = stop.cancelled() => {
                        tracing::info!(attempt, "stopping while the database is away; {what} is not applied (read again on the next run)");
                        return Err(PipelineError::Stopped);
                    }
                },
                None => tokio::time::sleep(delay).await,
            }
            attempt += 1;
        }
        match op().await {
            Ok(v) => {
                if attempt > 1 {
                    tracing::info!(attempt, "the database is back; {what} done");
                }
                return Ok(v);
            }
            Err(next) => e = next,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;

    fn away() -> PipelineError {
        PipelineError::Store(StoreError::Db {
            context: "applying a batch",
            source: sqlx::Error::PoolTimedOut,
        })
    }

    fn broken() -> PipelineError {
        PipelineError::Store(StoreError::Corrupt {
            context: "a level",
            message: "unknown".into(),
        })
    }

    fn fast() -> Backoff {
        Backoff::new(Duration::from_millis(1), Duration::from_millis(4))
    }

    #[test]
    fn the_database_away_is_transient_and_corrupt_data_or_a_conflict_is_not() {
        assert!(is_transient_failure(&away()));
        assert!(!is_transient_failure(&broken()));
        assert!(!is_transient(&StoreError::Conflict(
            "already decided".into()
        )));
        assert!(!is_transient(&StoreError::Db {
            context: "x",
            source: sqlx::Error::RowNotFound,
        }));
        assert!(!is_transient_failure(&PipelineError::ReaderGone));
    }

    #[test]
    fn backoff_doubles_up_to_its_ceiling() {
        let mut b = Backoff::default();
        let ms: Vec<u128> = (0..8).map(|_| b.next_delay().as_millis()).collect();
        assert_eq!(ms, [100, 200, 400, 800, 1600, 3200, 5000, 5000]);
    }

    #[tokio::test]
    async fn a_transient_failure_is_retried_until_the_operation_succeeds() {
        let calls = Cell::new(0);
        let r = retry("a batch", fast(), None, || {
            calls.set(calls.get() + 1);
            let n = calls.get();
            async move {
                if n < 4 {
                    Err(away())
                } else {
                    Ok(n)
                }
            }
        })
        .await;
        assert_eq!(r.ok(), Some(4));
        assert_eq!(calls.get(), 4);
    }

    #[tokio::test]
    async fn any_other_failure_is_returned_at_once_even_after_transient_ones() {
        let calls = Cell::new(0);
        let r: Result<(), _> = retry("a batch", fast(), None, || {
            calls.set(calls.get() + 1);
            let n = calls.get();
            async move { Err(if n < 2 { away() } else { broken() }) }
        })
        .await;
        assert!(matches!(
            r,
            Err(PipelineError::Store(StoreError::Corrupt { .. }))
        ));
        assert_eq!(calls.get(), 2);
        // Not transient from the start: never tried again.
        let calls = Cell::new(0);
        let r: Result<(), _> = retry_after("a batch", broken(), fast(), None, || {
            calls.set(calls.get() + 1);
            async { Ok(()) }
        })
        .await;
        assert!(r.is_err());
        assert_eq!(calls.get(), 0);
    }

    #[tokio::test]
    async fn an_activation_meanwhile_is_applied_again_at_once_without_a_wait() {
        // The batch was staged with activation 2 and another worker activated 3 (its startup's
        // model, say): applied again at once, however long the database backoff would be.
        let calls = Cell::new(0);
        let slow = Backoff::new(Duration::from_secs(60), Duration::from_secs(60));
        let t = std::time::Instant::now();
        let changed = || PipelineError::VersionsChanged { seen: 2, now: 3 };
        let r = retry_after("a batch", changed(), slow, None, || {
            calls.set(calls.get() + 1);
            let n = calls.get();
            async move {
                if n < 2 {
                    Err(PipelineError::VersionsChanged { seen: 3, now: 4 })
                } else {
                    Ok(n)
                }
            }
        })
        .await;
        assert_eq!(r.ok(), Some(2));
        assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
        assert!(is_transient_failure(&changed()));
    }

    #[tokio::test]
    async fn a_stop_during_a_wait_returns_promptly_without_applying() {
        // The database stays away; the first wait is a minute long. Cancelling the token ends
        // the wait at once: nothing more is tried, and the caller is told it stopped.
        let stop = CancellationToken::new();
        let calls = Cell::new(0);
        let slow = Backoff::new(Duration::from_secs(60), Duration::from_secs(60));
        let canceller = {
            let stop = stop.clone();
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(50)).await;
                stop.cancel();
            })
        };
        let t = std::time::Instant::now();
        let r: Result<(), _> = retry("a batch", slow, Some(&stop), || {
            calls.set(calls.get() + 1);
            async { Err(away()) }
        })
        .await;
        assert!(matches!(r, Err(PipelineError::Stopped)), "{r:?}");
        assert_eq!(calls.get(), 1, "not tried again after the stop");
        assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
        canceller.await.unwrap();
        // Already stopped: the first failure's wait does not even start.
        let r: Result<(), _> =
            retry_after("a batch", away(), slow_backoff(), Some(&stop), || async {
                Ok(())
            })
            .await;
        assert!(matches!(r, Err(PipelineError::Stopped)));
    }

    fn slow_backoff() -> Backoff {
        Backoff::new(Duration::from_secs(60), Duration::from_secs(60))
    }
}
