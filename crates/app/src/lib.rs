//! The use cases of doudi, between the stores and its two doors (the command line in `doudi-cli`,
//! the HTTP service in `doudi-service`): each decision is made here once, and a door only reads
//! its request, calls a use case, and maps the result to an exit code or an HTTP status
//! ([`AppError`] says which kind of refusal).
//!
//! - [`engine`]: the pipeline's engine from what is stored (rules, register, officer directory,
//!   identity model), over the whole register or a few households; training the identity model;
//! - [`warnings`]: read a warning, move it (authorised, a refusal recorded), tick escalations;
//! - [`review`]: the review queue as a role sees it, and a person's decision on an item;
//! - [`replay`]: dead letters through the pipeline again after a fix;
//! - [`household`]: a household's record, timeline and trace;
//! - [`silences`]: holding back notices for a household or region (a supervisor's);
//! - [`mask`]: the one masking policy (by role and by what is shown) and the masking itself;
//! - [`who`]: who asks (role, region, name in the audit trail).
//!
//! What it must never do: show personal data the policy masks for the asker, read a household's
//! personal data without an audit record of the read, or log personal data. It holds no state of
//! its own and knows nothing of HTTP or terminals.

pub mod engine;
pub mod error;
pub mod household;
pub mod mask;
pub mod replay;
pub mod review;
pub mod silences;
pub mod warnings;
pub mod who;

pub use engine::{EngineSettings, IdentityIndexSettings};
pub use error::AppError;
pub use who::{Role, Who};
