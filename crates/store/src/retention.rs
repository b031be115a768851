//! Retention of raw payloads: the record as a department sent it is kept for a configured age
//! (`store.raw_retention_days`), then removed; what was read from it (the normalised event, its
//! identity decision, assessments) stays. A removed payload is marked with when it was removed,
//! which the trace shows in its place.

use chrono::{DateTime, Utc};

use crate::db::{on, Run};
use crate::error::StoreError;
use crate::open::Store;
use crate::time::{now, ts};

impl Store {
    /// Remove the raw payloads of the events received before `before` (those not removed yet),
    /// in one transaction with its audit record (by `actor`; none when nothing was removed);
    /// returns how many were removed.
    pub async fn remove_raw_before(
        &self,
        before: DateTime<Utc>,
        actor: &str,
    ) -> Result<u64, StoreError> {
        let (at, before) = (now(), ts(&before));
        let mut tx = self.write_tx("starting raw-payload retention").await?;
        let removed = on!(tx.conn(), c => {
            sqlx::query(
                "UPDATE events SET raw = $1, raw_removed_at = $2
                 WHERE received_at < $3 AND raw_removed_at IS NULL",
            )
            .bind(Vec::<u8>::new())
            .bind(&at)
            .bind(&before)
            .run(&mut *c, "removing raw payloads past retention")
            .await?
            .rows_affected()
        });
        if removed > 0 {
            crate::audit::append(
                tx.conn(),
                actor,
                "raw_removed",
                "events",
                &serde_json::json!({ "received_before": before, "events": removed }),
            )
            .await?;
        }
        tx.commit("committing raw-payload retention").await?;
        Ok(removed)
    }
}
