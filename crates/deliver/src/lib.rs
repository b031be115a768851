//! Delivery of notices from the outbox (the `notices` table) to officers over signed webhooks.
//!
//! The pure parts — the payload ([`payload`]), its signature ([`sign`]), the retry schedule
//! ([`backoff`]) and the plan of a pass ([`plan`]: per-household order, per-recipient quota and
//! digests) — are plain functions over plain data, tested alone. [`Deliverer`] is the thin shell
//! around them: it reads pending notices from the store, sends them with an HTTP client and records
//! every attempt in the delivery log.
//!
//! Guarantees: a notice is marked delivered only after the receiver answered 2xx, so a crash
//! between the send and the record re-sends it (at least once); the receiver makes that exactly
//! one effect by the idempotency key each notice carries (`doudi-notice-<id>`). A household's later
//! notice is never sent before an earlier one. A recipient over their quota gets one digest of all
//! their pending notices: nothing is dropped, nothing waits forever.
//!
//! It never logs personal data (ID numbers, names, phone numbers), the secret, or webhook URLs
//! (which may carry tokens).

pub mod backoff;
mod error;
pub mod limits;
pub mod payload;
pub mod plan;
mod send;
pub mod sign;

pub use backoff::Backoff;
pub use error::DeliverError;
pub use limits::RecipientLimits;
pub use payload::{Item, Payload};
pub use send::{Deliverer, PassReport, Settings};
pub use sign::{key_for, sign, verify, VerifyError};
