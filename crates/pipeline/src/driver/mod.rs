//! The pieces every stream driver shares, whatever its record source (feed files, a Kafka
//! consumer group; the HTTP push and native profiles to come): the one applier
//! ([`apply_batches`]: batches in order, staging ahead on PostgreSQL, retry, the source's hooks
//! around each commit), the [`Batcher`], a typed [`Position`] per source,
//! the event-time [`Merger`], the [`InvalidWindow`] guard, the database [`retry`] policy, the [`dead_letter`] policy, and
//! cancellation by [`CancellationToken`] instead of polled flags.

mod applier;
mod batch;
pub mod dead_letter;
mod guard;
mod merge;
mod position;
mod record;
pub mod retry;

pub use applier::{apply_batches, Batch, BatchHooks};
pub use batch::Batcher;
pub use guard::{InvalidGuard, InvalidWindow};
pub use merge::{Fetch, Merger, StreamKey};
pub use position::Position;
pub use record::RawRecord;
pub use tokio_util::sync::CancellationToken;
