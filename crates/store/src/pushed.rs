//! What the HTTP push (`POST /api/feeds/{source}`) asks the store: which of a batch's event ids
//! are stored already (so that a batch pushed again is acknowledged as duplicate, not appended a
//! second time to the feed).
//!
//! Portable SQL only (`$n` placeholders).

use std::collections::HashSet;

use crate::db::{on, Fetch};
use crate::error::StoreError;
use crate::open::Store;

/// Ids asked per statement (well under both databases' limits on bound parameters).
const CHUNK: usize = 500;

impl Store {
    /// The ids among `event_ids` of events of `source` already in the store.
    pub async fn stored_event_ids(
        &self,
        source: &str,
        event_ids: &[&str],
    ) -> Result<HashSet<String>, StoreError> {
        let mut found = HashSet::new();
        for chunk in event_ids.chunks(CHUNK) {
            let marks: Vec<String> = (0..chunk.len()).map(|i| format!("${}", i + 2)).collect();
            let sql = format!(
                "SELECT event_id FROM events WHERE source = $1 AND event_id IN ({})",
                marks.join(", ")
            );
            let ids: Vec<String> = on!(self.pool(), pool => {
                let mut q = sqlx::query_scalar::<_, String>(&sql).bind(source);
                for id in chunk {
                    q = q.bind(*id);
                }
                q.all(pool, "looking up pushed event ids").await?
            });
            found.extend(ids);
        }
        Ok(found)
    }
}
