//! Delivery of notices from the outbox (the `notices` table) to officers over signed webhooks,
//! WeCom (企业微信) group robots and DingTalk (钉钉) custom robots ([`wecom`], [`dingtalk`]: one
//! markdown message in Chinese, [`robot`]), the channel chosen per officer in the directory.
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
//! Robots take no idempotency key: a message whose answer was lost is posted again, and the group
//! may see it twice (at least once, as for webhooks).
//!
//! It never logs personal data (ID numbers, names, phone numbers), the secrets, or webhook URLs
//! (which may carry tokens; a robot's URL and secret live in files the directory names, read at
//! send time).

pub mod backoff;
pub mod channel;
pub mod dingtalk;
mod error;
pub mod limits;
pub mod payload;
pub mod plan;
pub mod robot;
mod send;
pub mod sign;
pub mod wecom;

pub use backoff::Backoff;
pub use channel::Channel;
pub use error::DeliverError;
pub use limits::RecipientLimits;
pub use payload::{Item, Payload};
pub use send::{Deliverer, PassReport, Settings};
pub use sign::{key_for, sign, verify, VerifyError};
