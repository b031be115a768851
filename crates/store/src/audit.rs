//! The audit trail: append-only, hash-chained records of state changes, human actions and reads of
//! personal data. A record's hash is SHA-256 over the previous record's hash and the record's own
//! fields, so any edit, deletion or reordering breaks the chain at the first record touched.
//!
//! The chain alone cannot show that its tail was cut (delete the last records and lower the
//! `audit_records` counter, and what is left verifies): a [`Checkpoint`] — the head's number and
//! hash, signed with HMAC-SHA256 under a key kept outside the database — is kept elsewhere by the
//! operator (or shipped to a log service), and [`Store::check_checkpoint`] finds a trail that no
//! longer reaches it.

use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::db::{on, Col, Conn, Fetch, Run};
use crate::error::StoreError;
use crate::locks::lock_audit_chain;
use crate::open::Store;
use crate::time::now;

/// The hash before the first record.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// One audit record.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct AuditRecord {
    pub seq: i64,
    pub at: String,
    pub actor: String,
    pub action: String,
    pub subject: String,
    pub detail: String,
    pub prev_hash: String,
    pub hash: String,
}

/// The hash of a record's fields after `prev_hash`. Fields are length-prefixed, so no two
/// different records hash the same text.
pub fn record_hash(
    prev_hash: &str,
    seq: i64,
    at: &str,
    actor: &str,
    action: &str,
    subject: &str,
    detail: &str,
) -> String {
    let mut h = Sha256::new();
    h.update(prev_hash.as_bytes());
    h.update(seq.to_be_bytes());
    for f in [at, actor, action, subject, detail] {
        h.update((f.len() as u64).to_be_bytes());
        h.update(f.as_bytes());
    }
    hex::encode(h.finalize())
}

fn audit_record(r: &impl Col) -> AuditRecord {
    AuditRecord {
        seq: r.col(0),
        at: r.col(1),
        actor: r.col(2),
        action: r.col(3),
        subject: r.col(4),
        detail: r.col(5),
        prev_hash: r.col(6),
        hash: r.col(7),
    }
}

/// Free text people typed (notes, reasons) as the trail keeps it: its length and SHA-256, never
/// the text itself, which may name people and cannot be removed from an append-only trail. The
/// text stays in the warning's or the review's own history, where it can be corrected.
pub(crate) fn text_digest(text: &str) -> serde_json::Value {
    serde_json::json!({
        "chars": text.chars().count(),
        "sha256": hex::encode(Sha256::digest(text.as_bytes())),
    })
}

/// What `verify` found.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct AuditCheck {
    pub records: i64,
    /// The first record that does not fit the chain, and how.
    pub first_broken: Option<(i64, String)>,
}

/// Append a record inside the caller's transaction (its change and its audit record commit
/// together).
pub(crate) async fn append(
    mut conn: Conn<'_>,
    actor: &str,
    action: &str,
    subject: &str,
    detail: &serde_json::Value,
) -> Result<(), StoreError> {
    // Writers do not wait for each other on PostgreSQL: one appender at a time, until its
    // transaction ends, so each record follows the last committed one. Locks are taken in one
    // order everywhere (households, the timeline counter, the audit chain): a batch bumps the
    // timeline counter before it appends its audit record, so an appender takes the counter's row
    // first too (a review decision appends facts after its record).
    lock_audit_chain(conn.reborrow()).await?;
    on!(conn, c => {
        let last: Option<(i64, String)> =
            sqlx::query_as("SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1")
                .optional(&mut *c, "reading the audit chain's head")
                .await?;
        let (seq, prev) = match last {
            Some((s, h)) => (s + 1, h),
            None => (1, GENESIS.to_string()),
        };
        let at = now();
        let detail = detail.to_string();
        let hash = record_hash(&prev, seq, &at, actor, action, subject, &detail);
        sqlx::query(
            "INSERT INTO audit_log (seq, at, actor, action, subject, detail, prev_hash, hash) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(seq)
        .bind(&at)
        .bind(actor)
        .bind(action)
        .bind(subject)
        .bind(&detail)
        .bind(&prev)
        .bind(&hash)
        .run(&mut *c, "appending to the audit trail")
        .await?;
        sqlx::query("INSERT INTO counters (name, value) VALUES ('audit_records', $1) ON CONFLICT(name) DO UPDATE SET value = excluded.value")
            .bind(seq)
            .run(&mut *c, "counting audit records")
            .await?;
    });
    Ok(())
}

/// The head of the audit trail at some moment, signed: HMAC-SHA256 under a key from the
/// configuration (`audit.checkpoint_key`), over [`Checkpoint::signed_text`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Checkpoint {
    /// Always `doudi-audit-checkpoint-v1`.
    pub format: String,
    /// The last record's number (0: an empty trail).
    pub seq: i64,
    /// The last record's hash ([`GENESIS`] for an empty trail).
    pub hash: String,
    /// When the checkpoint was taken (the store's time format).
    pub taken_at: String,
    /// Hex HMAC-SHA256 of [`Checkpoint::signed_text`].
    pub mac: String,
}

/// The format name of a [`Checkpoint`].
pub const CHECKPOINT_FORMAT: &str = "doudi-audit-checkpoint-v1";

type HmacSha256 = Hmac<Sha256>;

fn checkpoint_mac(key: &[u8], text: &str) -> HmacSha256 {
    // HMAC takes keys of any length: this cannot fail.
    let mut mac = match HmacSha256::new_from_slice(key) {
        Ok(m) => m,
        Err(_) => unreachable!("HMAC takes keys of any length"),
    };
    mac.update(text.as_bytes());
    mac
}

impl Checkpoint {
    /// Sign the head `(seq, hash)` taken at `taken_at`.
    pub fn sign(key: &[u8], seq: i64, hash: &str, taken_at: &str) -> Checkpoint {
        let mut c = Checkpoint {
            format: CHECKPOINT_FORMAT.into(),
            seq,
            hash: hash.into(),
            taken_at: taken_at.into(),
            mac: String::new(),
        };
        c.mac = hex::encode(
            checkpoint_mac(key, &c.signed_text())
                .finalize()
                .into_bytes(),
        );
        c
    }

    /// What the MAC covers: the format, the number, the hash and the time, one a line.
    pub fn signed_text(&self) -> String {
        format!(
            "{}\n{}\n{}\n{}",
            self.format, self.seq, self.hash, self.taken_at
        )
    }

    /// Whether the MAC is right for `key` (compared in constant time).
    pub fn signature_ok(&self, key: &[u8]) -> bool {
        let Ok(mac) = hex::decode(&self.mac) else {
            return false;
        };
        self.format == CHECKPOINT_FORMAT
            && checkpoint_mac(key, &self.signed_text())
                .verify_slice(&mac)
                .is_ok()
    }
}

impl Store {
    /// The head of the audit trail: the last record's number and hash (`(0, GENESIS)` when empty).
    pub async fn audit_head(&self) -> Result<(i64, String), StoreError> {
        let last: Option<(i64, String)> = on!(self.pool(), p =>
            sqlx::query_as("SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1")
                .optional(p, "reading the audit chain's head")
                .await?);
        Ok(last.unwrap_or_else(|| (0, GENESIS.to_string())))
    }

    /// Whether the trail still reaches checkpoint `c` (its signature checked by the caller): the
    /// record it names is there with the hash it names. `Some(why)` when not: the tail was cut, or
    /// the trail was rewritten. (Whether the records up to it chain is [`Store::verify_audit`].)
    pub async fn check_checkpoint(&self, c: &Checkpoint) -> Result<Option<String>, StoreError> {
        if c.seq == 0 {
            return Ok(None);
        }
        let (head, _) = self.audit_head().await?;
        let found = self.audit_records(c.seq, 1).await?;
        Ok(match found.first() {
            Some(r) if r.seq == c.seq && r.hash == c.hash => None,
            Some(r) if r.seq == c.seq => Some(format!(
                "record #{} differs from the checkpoint taken at {}: its hash is {}, the checkpoint says {} (the trail was rewritten)",
                c.seq, c.taken_at, r.hash, c.hash
            )),
            _ => Some(format!(
                "the trail ends at record #{head}, but the checkpoint taken at {} saw record #{}: records #{} to #{} were deleted from the end",
                c.taken_at,
                c.seq,
                head + 1,
                c.seq
            )),
        })
    }

    /// Append an audit record on its own (for reads of personal data and other actions without a
    /// transaction of their own).
    pub async fn audit(
        &self,
        actor: &str,
        action: &str,
        subject: &str,
        detail: &serde_json::Value,
    ) -> Result<(), StoreError> {
        let mut tx = self.write_tx("starting an audit record").await?;
        append(tx.conn(), actor, action, subject, detail).await?;
        tx.commit("committing an audit record").await
    }

    /// Recompute the chain from the first record; name the first record that was altered,
    /// deleted or reordered.
    pub async fn verify_audit(&self) -> Result<AuditCheck, StoreError> {
        // In seq order: on SQLite `seq` is the rowid, the order records were stored in.
        let rows: Vec<AuditRecord> = on!(self.pool(), p => sqlx::query(
            "SELECT seq, at, actor, action, subject, detail, prev_hash, hash FROM audit_log ORDER BY seq",
        )
        .all(p, "reading the audit trail")
        .await?
        .iter()
        .map(audit_record)
        .collect());
        let mut prev = GENESIS.to_string();
        let mut records = 0i64;
        for (expected_seq, r) in (1i64..).zip(rows) {
            records += 1;
            let rec = r;
            let broken = |why: String| {
                Ok(AuditCheck {
                    records,
                    first_broken: Some((rec.seq, why)),
                })
            };
            if rec.seq != expected_seq {
                return broken(format!(
                    "record #{expected_seq} is missing or out of place (found #{} where #{expected_seq} belongs): deleted or reordered",
                    rec.seq
                ));
            }
            if rec.prev_hash != prev {
                return broken(format!(
                    "record #{} does not follow record #{}: a record before it was deleted, reordered or altered",
                    rec.seq,
                    rec.seq - 1
                ));
            }
            let h = record_hash(
                &prev,
                rec.seq,
                &rec.at,
                &rec.actor,
                &rec.action,
                &rec.subject,
                &rec.detail,
            );
            if h != rec.hash {
                return broken(format!(
                    "record #{} was altered: its content no longer matches its hash",
                    rec.seq
                ));
            }
            prev = rec.hash;
        }
        let counted: Option<i64> = on!(self.pool(), p =>
            sqlx::query_scalar("SELECT value FROM counters WHERE name = 'audit_records'")
                .optional(p, "reading the audit count")
                .await?);
        if let Some(n) = counted.filter(|n| *n > records) {
            return Ok(AuditCheck {
                records,
                first_broken: Some((
                    records + 1,
                    format!(
                        "records #{} to #{n} are missing: the end of the trail was deleted",
                        records + 1
                    ),
                )),
            });
        }
        Ok(AuditCheck {
            records,
            first_broken: None,
        })
    }

    /// The latest audit record of an action (e.g. `linkage_model_refused`), if any.
    pub async fn last_audit_record(&self, action: &str) -> Result<Option<AuditRecord>, StoreError> {
        Ok(on!(self.pool(), p => sqlx::query(
            "SELECT seq, at, actor, action, subject, detail, prev_hash, hash FROM audit_log
             WHERE action = $1 ORDER BY seq DESC LIMIT 1",
        )
        .bind(action)
        .optional(p, "reading the audit trail")
        .await?
        .as_ref()
        .map(audit_record)))
    }

    /// The audit trail, oldest first, at most `limit` records from `from_seq`.
    pub async fn audit_records(
        &self,
        from_seq: i64,
        limit: i64,
    ) -> Result<Vec<AuditRecord>, StoreError> {
        Ok(on!(self.pool(), p => sqlx::query(
            "SELECT seq, at, actor, action, subject, detail, prev_hash, hash FROM audit_log
             WHERE seq >= $1 ORDER BY seq LIMIT $2",
        )
        .bind(from_seq)
        .bind(limit)
        .all(p, "reading the audit trail")
        .await?
        .iter()
        .map(audit_record)
        .collect()))
    }
}

#[cfg(test)]
mod checkpoint_tests {
    use super::*;

    #[test]
    fn a_checkpoint_is_signed_and_an_edit_or_another_key_fails() {
        let c = Checkpoint::sign(b"key-1", 42, "ab", "2026-12-06T00:00:00.000000Z");
        assert!(c.signature_ok(b"key-1"));
        assert!(!c.signature_ok(b"key-2"));
        let mut lowered = c.clone();
        lowered.seq = 41;
        assert!(!lowered.signature_ok(b"key-1"));
        let text = serde_json::to_string(&c).unwrap();
        let back: Checkpoint = serde_json::from_str(&text).unwrap();
        assert_eq!(back, c);
    }
}
