//! The pieces every stream driver shares, whatever its record source (feed files — with the
//! feed profiles' readers and the files the HTTP push writes — or a Kafka consumer group): a
//! [`RecordSource`] trait for what is source-specific, the one reading loop ([`read_records`]:
//! poll, the event-time [`Merger`], the [`InvalidWindow`] guard, the [`Batcher`] behind the
//! [`Handover`] to the applier), the one applier ([`apply_batches`]: batches in order, staging
//! ahead on PostgreSQL, retry, the source's hooks around each commit), a typed [`Position`] per
//! source, the database [`retry`] policy (its waits cancellable), the [`dead_letter`] policy, and
//! cancellation by [`CancellationToken`] instead of polled flags.

mod applier;
mod batch;
pub mod dead_letter;
mod guard;
mod handover;
mod merge;
mod position;
mod read;
mod record;
pub mod retry;
mod source;

pub use applier::{apply_batches, Batch, BatchHooks};
pub use batch::Batcher;
pub use guard::{InvalidGuard, InvalidWindow};
pub use handover::Handover;
pub use merge::{Fetch, Merger, StreamKey};
pub use position::Position;
pub use read::{read_records, ReadOptions, ReadStats};
pub use record::RawRecord;
pub use source::{Assignment, Polled, RecordSource};
pub use tokio_util::sync::CancellationToken;
