//! Signatures of webhook requests: `X-Doudi-Signature: sha256=<hex HMAC-SHA256(key,
//! "{timestamp}.{body}")>` with `X-Doudi-Timestamp: <unix seconds>` and `X-Doudi-Key-Id: <id>`,
//! the id of the key that signed (`deliver.key_id`). The timestamp is signed so a captured
//! request cannot be replayed later than the receiver's tolerance.
//!
//! # Checking a request (the receiver's side)
//! [`key_for`] and [`verify`] do steps 2 to 4; in another language:
//! 1. Read the **raw body** as received (before any JSON parsing: re-serialised JSON differs).
//! 2. Find the key named by `X-Doudi-Key-Id` among the keys you hold (a request without the
//!    header was signed by a sender that predates it: use your one key). An unknown id: refuse.
//! 3. Refuse a `X-Doudi-Timestamp` more than your tolerance (300 s, say) from your clock.
//! 4. Compute `HMAC-SHA256(key, timestamp + "." + body)` and compare its hex with the part after
//!    `sha256=` of `X-Doudi-Signature` **in constant time** (`hmac.compare_digest` in Python,
//!    `crypto.timingSafeEqual` in Node.js, `hmac.Equal` in Go).
//! 5. Act once per `Idempotency-Key` (`doudi-notice-<id>`): a notice may arrive more than once.
//!
//! Answer 2xx only when the notice is safely kept; anything else is retried with backoff.
//!
//! # Changing the key (rotation)
//! Two keys are valid during a change, told apart by their ids:
//! 1. Give every receiver the new key under a new id (say `2`) **beside** the old one (`1`);
//!    they accept either, picking by `X-Doudi-Key-Id`.
//! 2. Switch doudi: the new key in the file `DOUDI_DELIVER__SECRET_FILE` names,
//!    `deliver.key_id = "2"`, restart `doudi deliver`. Requests now carry key id `2`.
//! 3. Once no request signed with `1` can still come (retries of a notice end after
//!    `deliver.max_attempts`; a day is ample), receivers drop key `1`.
//!
//! A leaked key is changed the same way, with step 3 at once.

use hmac::{Hmac, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

pub const HEADER_TIMESTAMP: &str = "X-Doudi-Timestamp";
pub const HEADER_SIGNATURE: &str = "X-Doudi-Signature";
pub const HEADER_KEY_ID: &str = "X-Doudi-Key-Id";
pub const HEADER_IDEMPOTENCY_KEY: &str = "Idempotency-Key";

fn mac(secret: &[u8], timestamp: &str, body: &[u8]) -> HmacSha256 {
    // HMAC accepts a key of any length: `new_from_slice` cannot fail.
    let mut mac = match HmacSha256::new_from_slice(secret) {
        Ok(m) => m,
        Err(_) => unreachable!("HMAC takes keys of any length"),
    };
    mac.update(timestamp.as_bytes());
    mac.update(b".");
    mac.update(body);
    mac
}

/// The `X-Doudi-Signature` value for `body` sent at `timestamp` (unix seconds).
pub fn sign(secret: &[u8], timestamp: i64, body: &[u8]) -> String {
    let tag = mac(secret, &timestamp.to_string(), body)
        .finalize()
        .into_bytes();
    format!("sha256={}", hex::encode(tag))
}

/// Why a receiver refuses a request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    #[error("the request names key {0:?}, which this receiver does not hold")]
    UnknownKey(String),
    #[error("the request names no key and this receiver holds several: which one signed it?")]
    NoKeyId,
    #[error("the timestamp header is not a number of seconds")]
    BadTimestamp,
    #[error("the request is {0} s away from now: too old or from the future (replay?)")]
    Stale(i64),
    #[error("the signature header is not sha256=<hex>")]
    BadSignatureFormat,
    #[error("the signature does not match the body")]
    Mismatch,
}

/// Check a request as a receiver: the signature matches `body` and `timestamp`, and the timestamp
/// is within `tolerance_secs` of `now_unix`. Compares in constant time.
pub fn verify(
    secret: &[u8],
    timestamp: &str,
    signature: &str,
    body: &[u8],
    now_unix: i64,
    tolerance_secs: i64,
) -> Result<(), VerifyError> {
    let ts: i64 = timestamp
        .trim()
        .parse()
        .map_err(|_| VerifyError::BadTimestamp)?;
    let skew = now_unix.saturating_sub(ts);
    if skew.abs() > tolerance_secs {
        return Err(VerifyError::Stale(skew));
    }
    let hex_tag = signature
        .trim()
        .strip_prefix("sha256=")
        .ok_or(VerifyError::BadSignatureFormat)?;
    let tag = hex::decode(hex_tag).map_err(|_| VerifyError::BadSignatureFormat)?;
    mac(secret, timestamp.trim(), body)
        .verify_slice(&tag)
        .map_err(|_| VerifyError::Mismatch)
}

/// The key a receiver holding several keys (`(id, key)`; two during a change) checks a request
/// with: the one named by `key_id` (the `X-Doudi-Key-Id` header; `None` without one, which only a
/// receiver holding a single key accepts). Then [`verify`] with it.
pub fn key_for<'k>(
    keys: &[(&str, &'k [u8])],
    key_id: Option<&str>,
) -> Result<&'k [u8], VerifyError> {
    match (key_id.map(str::trim), keys) {
        (Some(id), _) => keys
            .iter()
            .find(|(k, _)| *k == id)
            .map(|(_, key)| *key)
            .ok_or_else(|| VerifyError::UnknownKey(id.to_string())),
        (None, [(_, only)]) => Ok(only),
        (None, _) => Err(VerifyError::NoKeyId),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signature_is_hmac_sha256_over_timestamp_dot_body() {
        // Reference: HMAC-SHA256(key "secret", "1700000000.{}"), computed independently
        // (python3 -c 'import hmac,hashlib;print(hmac.new(b"secret",b"1700000000.{}",hashlib.sha256).hexdigest())').
        assert_eq!(
            sign(b"secret", 1_700_000_000, b"{}"),
            "sha256=b8569b78799ff9e3cbff0fc2d63a33a2b57f3282abd07c37ae5e8e7d79a5f163"
        );
    }

    #[test]
    fn verify_accepts_its_own_signature_and_refuses_any_change() {
        let body = br#"{"items":[]}"#;
        let sig = sign(b"k", 100, body);
        assert_eq!(verify(b"k", "100", &sig, body, 130, 300), Ok(()));
        assert_eq!(
            verify(b"k", "100", &sig, br#"{"items":[1]}"#, 130, 300),
            Err(VerifyError::Mismatch)
        );
        assert_eq!(
            verify(b"other", "100", &sig, body, 130, 300),
            Err(VerifyError::Mismatch)
        );
        assert_eq!(
            verify(b"k", "101", &sig, body, 130, 300),
            Err(VerifyError::Mismatch),
            "the timestamp is signed"
        );
        assert_eq!(
            verify(b"k", "100", &sig, body, 1000, 300),
            Err(VerifyError::Stale(900))
        );
        assert_eq!(
            verify(b"k", "x", &sig, body, 100, 300),
            Err(VerifyError::BadTimestamp)
        );
        assert_eq!(
            verify(b"k", "100", "md5=00", body, 100, 300),
            Err(VerifyError::BadSignatureFormat)
        );
    }

    #[test]
    fn during_a_key_change_both_keys_are_accepted_by_id_and_after_it_only_the_new() {
        let body = br#"{"items":[]}"#;
        let (old, new) = (&b"old-key"[..], &b"new-key"[..]);
        let by_old = sign(old, 100, body);
        let by_new = sign(new, 100, body);
        let check = |keys: &[(&str, &[u8])], id: Option<&str>, signature: &str| {
            verify(key_for(keys, id)?, "100", signature, body, 100, 300)
        };
        let during = [("1", old), ("2", new)];
        assert_eq!(check(&during, Some("1"), &by_old), Ok(()));
        assert_eq!(check(&during, Some("2"), &by_new), Ok(()));
        assert_eq!(
            check(&during, Some("2"), &by_old),
            Err(VerifyError::Mismatch),
            "the id picks the key: a signature by the other key does not pass"
        );
        assert_eq!(check(&during, None, &by_new), Err(VerifyError::NoKeyId));
        let after = [("2", new)];
        assert_eq!(
            check(&after, Some("1"), &by_old),
            Err(VerifyError::UnknownKey("1".into()))
        );
        assert_eq!(
            check(&after, None, &by_new),
            Ok(()),
            "a sender without the header, one key held"
        );
    }
}
