//! PostgreSQL's locks, in the one order every transaction takes them (see the crate docs):
//! households (in key order) → the `timeline_changes` counter row → the `received` / `duplicates`
//! rows → the audit chain. On SQLite each is a no-op: `BEGIN IMMEDIATE` already serialises every
//! writer.

use sha2::{Digest, Sha256};

use crate::db::{Conn, Db, Run};
use crate::error::StoreError;

/// The first key of PostgreSQL's two-key advisory locks that serialise the audit chain; household
/// locks use the one-key space, which never overlaps it.
const LOCK_AUDIT: i32 = 0x646f_7564; // "doud"

/// The advisory-lock key of a household on PostgreSQL: the first 8 bytes of SHA-256 of its id,
/// the same in every worker and every release.
pub fn household_lock_key(household_id: &str) -> i64 {
    let d = Sha256::digest(household_id.as_bytes());
    let mut k = [0u8; 8];
    k.copy_from_slice(&d[..8]);
    i64::from_be_bytes(k)
}

/// Serialise the transaction with every other that touches these households, until it ends: one
/// transaction-scoped advisory lock per household ([`household_lock_key`]), taken in key order so
/// that two transactions never wait for each other in a cycle.
pub(crate) async fn lock_households(conn: Conn<'_>, ids: &[String]) -> Result<(), StoreError> {
    let Db::Postgres(c) = conn else {
        return Ok(());
    };
    if ids.is_empty() {
        return Ok(());
    }
    let mut keys: Vec<i64> = ids.iter().map(|id| household_lock_key(id)).collect();
    keys.sort_unstable();
    keys.dedup();
    // One statement: the set-returning scan yields the keys in array order, and each lock is
    // taken as its row is produced.
    sqlx::query("SELECT pg_advisory_xact_lock(k) FROM unnest($1::bigint[]) AS k")
        .bind(&keys)
        .run(&mut *c, "locking households")
        .await?;
    Ok(())
}

/// Take the `timeline_changes` counter's row lock, held to commit (`context`: what waits for it).
/// A transaction that appends no facts takes it here before any lock later in the order.
pub(crate) async fn lock_timeline_counter(
    conn: Conn<'_>,
    context: &'static str,
) -> Result<(), StoreError> {
    let Db::Postgres(c) = conn else {
        return Ok(());
    };
    sqlx::query("SELECT value FROM counters WHERE name = 'timeline_changes' FOR UPDATE")
        .run(&mut *c, context)
        .await?;
    Ok(())
}

/// Take the audit chain (after the timeline counter: the lock order), so each record follows the
/// last committed one.
pub(crate) async fn lock_audit_chain(mut conn: Conn<'_>) -> Result<(), StoreError> {
    lock_timeline_counter(conn.reborrow(), "waiting for the timeline counter").await?;
    let Db::Postgres(c) = conn else {
        return Ok(());
    };
    sqlx::query("SELECT pg_advisory_xact_lock($1, 0)")
        .bind(LOCK_AUDIT)
        .run(&mut *c, "waiting for the audit chain")
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn household_lock_keys_are_stable_and_distinct() {
        // The same in every worker and release: a changed key would let two versions of the
        // worker decide on one household at once during a rolling upgrade.
        assert_eq!(household_lock_key("H1"), household_lock_key("H1"));
        assert_ne!(household_lock_key("H1"), household_lock_key("H2"));
        let d = Sha256::digest(b"H00000049");
        assert_eq!(household_lock_key("H00000049").to_be_bytes(), d[..8]);
    }
}
